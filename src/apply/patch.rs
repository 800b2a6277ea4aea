//! Computes the patch that turns one rendered document into the next: a strategic merge patch
//! for built-in kinds (lists merged by their merge keys), a JSON merge patch (RFC 7386) for custom
//! resources. Only what changed between the two renders is in the patch, so fields other actors
//! own on the live object (replicas set by an autoscaler, injected sidecars) are left alone.

use serde_json::{Map, Value};

use super::openapi::PatchSchema;

/// RFC 7386 merge patch from `old` to `new`; `None` when they are equal.
pub fn json_merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, new_value) in new {
                match old.get(key) {
                    None => {
                        patch.insert(key.clone(), new_value.clone());
                    }
                    Some(old_value) => {
                        if let Some(sub) = json_merge_patch(old_value, new_value) {
                            patch.insert(key.clone(), sub);
                        }
                    }
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

/// Two-way strategic merge patch from `old` to `new` for a document of `definition`
/// (see [`PatchSchema::definition_for`]); `None` when nothing changed.
pub fn strategic_merge_patch(
    schema: &PatchSchema,
    definition: Option<&str>,
    old: &Value,
    new: &Value,
) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let patch = diff_maps(schema, definition, old, new);
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

fn diff_maps(
    schema: &PatchSchema,
    definition: Option<&str>,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, new_value) in new {
        let Some(old_value) = old.get(key) else {
            patch.insert(key.clone(), new_value.clone());
            continue;
        };
        if old_value == new_value {
            continue;
        }
        let meta = schema.field(definition, key);
        match (old_value, new_value) {
            (Value::Object(old_map), Value::Object(new_map)) => {
                let sub = diff_maps(schema, meta.definition.as_deref(), old_map, new_map);
                if !sub.is_empty() {
                    patch.insert(key.clone(), Value::Object(sub));
                }
            }
            (Value::Array(old_items), Value::Array(new_items)) if meta.merge => {
                match meta.merge_key.as_deref() {
                    Some(merge_key) if all_objects_with_key(old_items, new_items, merge_key) => {
                        diff_keyed_list(
                            schema,
                            meta.definition.as_deref(),
                            key,
                            merge_key,
                            old_items,
                            new_items,
                            &mut patch,
                        );
                    }
                    None if all_scalars(old_items, new_items) => {
                        diff_primitive_list(key, old_items, new_items, &mut patch);
                    }
                    // A list the schema calls mergeable but whose items do not fit the merge
                    // key (or mix kinds): replacing it whole is the only safe patch.
                    _ => {
                        patch.insert(key.clone(), new_value.clone());
                    }
                }
            }
            _ => {
                patch.insert(key.clone(), new_value.clone());
            }
        }
    }
    patch
}

fn all_objects_with_key(old: &[Value], new: &[Value], merge_key: &str) -> bool {
    old.iter()
        .chain(new)
        .all(|item| item.get(merge_key).is_some_and(|k| !k.is_null()))
}

fn all_scalars(old: &[Value], new: &[Value]) -> bool {
    old.iter()
        .chain(new)
        .all(|item| !item.is_object() && !item.is_array())
}

/// Lists merged by key (containers by `name`, ports by `containerPort`): one entry per added or
/// changed element (with its key), `$patch: delete` for removed ones, and the element order.
fn diff_keyed_list(
    schema: &PatchSchema,
    definition: Option<&str>,
    field: &str,
    merge_key: &str,
    old: &[Value],
    new: &[Value],
    patch: &mut Map<String, Value>,
) {
    let mut entries = Vec::new();
    for new_item in new {
        let key_value = &new_item[merge_key];
        match old
            .iter()
            .find(|old_item| &old_item[merge_key] == key_value)
        {
            None => entries.push(new_item.clone()),
            Some(old_item) if old_item == new_item => {}
            Some(old_item) => {
                if let (Value::Object(old_map), Value::Object(new_map)) = (old_item, new_item) {
                    let mut sub = diff_maps(schema, definition, old_map, new_map);
                    sub.insert(merge_key.to_string(), key_value.clone());
                    entries.push(Value::Object(sub));
                }
            }
        }
    }
    for old_item in old {
        let key_value = &old_item[merge_key];
        if !new.iter().any(|new_item| &new_item[merge_key] == key_value) {
            let mut deletion = Map::new();
            deletion.insert(merge_key.to_string(), key_value.clone());
            deletion.insert("$patch".to_string(), Value::String("delete".to_string()));
            entries.push(Value::Object(deletion));
        }
    }
    let old_order: Vec<&Value> = old.iter().map(|item| &item[merge_key]).collect();
    let new_order: Vec<&Value> = new.iter().map(|item| &item[merge_key]).collect();
    if entries.is_empty() && old_order == new_order {
        return;
    }
    let order = new
        .iter()
        .map(|item| {
            let mut key_only = Map::new();
            key_only.insert(merge_key.to_string(), item[merge_key].clone());
            Value::Object(key_only)
        })
        .collect();
    patch.insert(format!("$setElementOrder/{field}"), Value::Array(order));
    if !entries.is_empty() {
        patch.insert(field.to_string(), Value::Array(entries));
    }
}

/// Merged lists of scalars (`finalizers`): additions as a list, removals through
/// `$deleteFromPrimitiveList`.
fn diff_primitive_list(field: &str, old: &[Value], new: &[Value], patch: &mut Map<String, Value>) {
    let added: Vec<Value> = new.iter().filter(|v| !old.contains(v)).cloned().collect();
    let removed: Vec<Value> = old.iter().filter(|v| !new.contains(v)).cloned().collect();
    if !added.is_empty() {
        patch.insert(field.to_string(), Value::Array(added));
    }
    if !removed.is_empty() {
        patch.insert(
            format!("$deleteFromPrimitiveList/{field}"),
            Value::Array(removed),
        );
    }
    if new.iter().collect::<Vec<_>>() != old.iter().collect::<Vec<_>>() {
        patch.insert(
            format!("$setElementOrder/{field}"),
            Value::Array(new.to_vec()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> PatchSchema {
        let doc = json!({"definitions": {
            "io.k8s.api.apps.v1.Deployment": {
                "properties": {"spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}},
                "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}]},
            "io.k8s.api.apps.v1.DeploymentSpec": {"properties": {
                "template": {"$ref": "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"}}},
            "io.k8s.api.core.v1.PodTemplateSpec": {"properties": {
                "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}}},
            "io.k8s.api.core.v1.PodSpec": {"properties": {"containers": {"type": "array",
                "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
                "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}}},
            "io.k8s.api.core.v1.Container": {"properties": {"ports": {"type": "array",
                "items": {"$ref": "#/definitions/io.k8s.api.core.v1.ContainerPort"},
                "x-kubernetes-patch-merge-key": "containerPort", "x-kubernetes-patch-strategy": "merge"},
                "args": {"type": "array", "items": {"type": "string"}}}}
        }});
        PatchSchema::from_openapi_v2(&serde_json::to_vec(&doc).unwrap_or_default())
            .unwrap_or_default()
    }

    fn deployment(image: &str, replicas: u32) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image, "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "side:1"}]}}}})
    }

    #[test]
    fn image_change_patches_only_that_container_by_name() {
        let schema = schema();
        let def = schema.definition_for("apps/v1", "Deployment");
        let patch =
            strategic_merge_patch(&schema, def, &deployment("a:1", 1), &deployment("a:2", 1));
        assert_eq!(
            patch,
            Some(json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                "containers": [{"name": "app", "image": "a:2"}]}}}}))
        );
    }

    #[test]
    fn unchanged_documents_need_no_patch() {
        let schema = schema();
        let def = schema.definition_for("apps/v1", "Deployment");
        assert_eq!(
            strategic_merge_patch(&schema, def, &deployment("a:1", 3), &deployment("a:1", 3)),
            None
        );
    }

    #[test]
    fn removed_containers_and_fields_are_deleted() {
        let schema = schema();
        let def = schema.definition_for("apps/v1", "Deployment");
        let old = deployment("a:1", 1);
        let new = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "a:1", "ports": [{"containerPort": 80}]}]}}}});
        let patch = strategic_merge_patch(&schema, def, &old, &new);
        assert_eq!(
            patch,
            Some(json!({"spec": {"replicas": null, "template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"name": "sidecar", "$patch": "delete"}]}}}}))
        );
    }

    #[test]
    fn atomic_lists_are_replaced_whole() {
        let schema = schema();
        let old = json!({"name": "app", "args": ["a", "b"]});
        let new = json!({"name": "app", "args": ["a", "c"]});
        let patch =
            strategic_merge_patch(&schema, Some("io.k8s.api.core.v1.Container"), &old, &new);
        assert_eq!(patch, Some(json!({"args": ["a", "c"]})));
    }

    #[test]
    fn merge_patch_nulls_removed_keys_and_replaces_lists() {
        let old = json!({"spec": {"a": 1, "b": [1, 2], "c": {"d": 1}}});
        let new = json!({"spec": {"b": [2], "c": {"d": 1}, "e": "x"}});
        assert_eq!(
            json_merge_patch(&old, &new),
            Some(json!({"spec": {"a": null, "b": [2], "e": "x"}}))
        );
        assert_eq!(json_merge_patch(&new, &new), None);
    }
}
