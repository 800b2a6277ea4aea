//! Strategic-merge metadata (patch strategy and merge key per field) read from the apiserver's
//! OpenAPI v2 document, the same facts kubectl and Helm take from the Go types.

use std::collections::HashMap;

use serde::Deserialize;

/// How a list or map field merges under a strategic merge patch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMeta {
    /// `x-kubernetes-patch-strategy` contains `merge`.
    pub merge: bool,
    /// `x-kubernetes-patch-merge-key`, for lists of objects.
    pub merge_key: Option<String>,
    /// The definition describing the field's value (or each list item / map value).
    pub definition: Option<String>,
}

/// The parts of the OpenAPI document a strategic merge patch needs.
#[derive(Debug, Default)]
pub struct PatchSchema {
    fields: HashMap<String, HashMap<String, FieldMeta>>,
    /// `group/version/Kind` → definition name, for built-in kinds only.
    kinds: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    definitions: HashMap<String, Definition>,
}

#[derive(Deserialize)]
struct Definition {
    #[serde(default)]
    properties: HashMap<String, Property>,
    #[serde(default, rename = "x-kubernetes-group-version-kind")]
    gvks: Vec<Gvk>,
}

#[derive(Deserialize)]
struct Gvk {
    #[serde(default)]
    group: String,
    version: String,
    kind: String,
}

#[derive(Deserialize)]
struct Property {
    #[serde(rename = "$ref")]
    reference: Option<String>,
    items: Option<Box<Property>>,
    #[serde(rename = "additionalProperties")]
    additional: Option<serde_json::Value>,
    #[serde(rename = "x-kubernetes-patch-strategy")]
    strategy: Option<String>,
    #[serde(rename = "x-kubernetes-patch-merge-key")]
    merge_key: Option<String>,
}

fn definition_name(reference: &str) -> String {
    reference
        .strip_prefix("#/definitions/")
        .unwrap_or(reference)
        .to_string()
}

/// Built-in API types live in Kubernetes' own Go packages; custom resources publish schemas
/// under their own group names and accept only JSON merge patches.
fn is_builtin_definition(name: &str) -> bool {
    name.starts_with("io.k8s.api.")
        || name.starts_with("io.k8s.apimachinery.")
        || name.starts_with("io.k8s.kube-aggregator.")
        || name.starts_with("io.k8s.apiextensions-apiserver.")
}

fn gvk_key(group: &str, version: &str, kind: &str) -> String {
    format!("{group}/{version}/{kind}")
}

impl PatchSchema {
    /// Parses an OpenAPI v2 document (`GET /openapi/v2`).
    pub fn from_openapi_v2(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let document: Document = serde_json::from_slice(bytes)?;
        let mut schema = PatchSchema::default();
        for (name, definition) in document.definitions {
            if !is_builtin_definition(&name) {
                continue;
            }
            for gvk in &definition.gvks {
                schema
                    .kinds
                    .insert(gvk_key(&gvk.group, &gvk.version, &gvk.kind), name.clone());
            }
            let fields = definition
                .properties
                .into_iter()
                .map(|(field, property)| {
                    let element = property
                        .items
                        .as_deref()
                        .and_then(|items| items.reference.as_deref())
                        .or(property.reference.as_deref())
                        .or_else(|| {
                            property
                                .additional
                                .as_ref()
                                .and_then(|a| a.get("$ref"))
                                .and_then(|r| r.as_str())
                        })
                        .map(definition_name);
                    let meta = FieldMeta {
                        merge: property
                            .strategy
                            .as_deref()
                            .is_some_and(|s| s.split(',').any(|part| part == "merge")),
                        merge_key: property.merge_key,
                        definition: element,
                    };
                    (field, meta)
                })
                .collect();
            schema.fields.insert(name, fields);
        }
        Ok(schema)
    }

    /// The definition of a built-in kind, or `None` for custom resources and unknown kinds.
    pub fn definition_for(&self, api_version: &str, kind: &str) -> Option<&str> {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        self.kinds
            .get(&gvk_key(group, version, kind))
            .map(String::as_str)
    }

    /// Merge metadata of `field` inside `definition`.
    pub fn field(&self, definition: Option<&str>, field: &str) -> FieldMeta {
        definition
            .and_then(|d| self.fields.get(d))
            .and_then(|fields| fields.get(field))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r##"{"definitions": {
      "io.k8s.api.apps.v1.Deployment": {
        "properties": {"spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}},
        "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}]
      },
      "io.k8s.api.core.v1.PodSpec": {"properties": {"containers": {"type": "array",
        "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
        "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}}},
      "com.example.v1.Widget": {"properties": {},
        "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Widget", "version": "v1"}]}
    }}"##;

    #[test]
    fn reads_merge_keys_and_builtin_kinds() {
        let schema = PatchSchema::from_openapi_v2(DOC.as_bytes()).expect("valid document");
        assert_eq!(
            schema.definition_for("apps/v1", "Deployment"),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        assert_eq!(schema.definition_for("example.com/v1", "Widget"), None);
        let containers = schema.field(Some("io.k8s.api.core.v1.PodSpec"), "containers");
        assert!(containers.merge);
        assert_eq!(containers.merge_key.as_deref(), Some("name"));
        assert_eq!(
            containers.definition.as_deref(),
            Some("io.k8s.api.core.v1.Container")
        );
    }
}
