//! Applies a release's new manifest to the cluster the way the release's writer did: Helm 3
//! (client-side) gets patches of just the changed documents, Helm 4 `ssa` releases get a
//! server-side apply of each changed document with field manager `helm`.

pub mod hooks;
pub mod openapi;
pub mod patch;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

use openapi::PatchSchema;

/// How the release's writer applied resources (the record's `apply_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMethod {
    /// Helm 3, or Helm 4 with `apply_method: csa`: patches computed on the client.
    ClientSide,
    /// Helm 4 with `apply_method: ssa`: server-side apply, field manager `helm`.
    ServerSide,
}

impl ApplyMethod {
    /// Reads a record's `apply_method` (absent in Helm 3 records).
    pub fn from_record(apply_method: Option<&str>) -> Self {
        match apply_method {
            Some("ssa") => ApplyMethod::ServerSide,
            _ => ApplyMethod::ClientSide,
        }
    }
}

/// Field manager Helm 4 uses for server-side apply.
pub const HELM_FIELD_MANAGER: &str = "helm";
const KEEP_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";

/// Errors while applying a manifest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {which} manifest of release {release} is not valid YAML")]
    ManifestYaml {
        release: String,
        which: &'static str,
        #[source]
        source: crate::values::ValuesError,
    },
    #[error("document {index} of the {which} manifest of release {release} lacks {field}")]
    ManifestField {
        release: String,
        which: &'static str,
        index: usize,
        field: &'static str,
    },
    #[error("the cluster does not serve {api_version} {kind} (needed by release {release})")]
    Discovery {
        release: String,
        api_version: String,
        kind: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("hook {hook} of release {release} failed: {reason}")]
    Hook {
        release: String,
        hook: String,
        reason: String,
    },
    /// Helm 3's and Helm 4's words for an object the release would take from someone else.
    #[error(
        "release {release}: {}{kind} {name:?} in namespace {namespace:?} exists and cannot be imported into the current release: invalid ownership metadata; {problems}",
        if *helm4 { "unable to continue with update: " } else { "Unable to continue with update: " }
    )]
    Ownership {
        release: String,
        helm4: bool,
        kind: String,
        name: String,
        namespace: String,
        problems: String,
    },
    #[error("cannot read the apiserver's OpenAPI document")]
    OpenApi(#[source] Box<kube::Error>),
    #[error("the apiserver's OpenAPI document is not valid JSON")]
    OpenApiJson(#[source] serde_json::Error),
    #[error("cannot {verb} {kind} {namespace}/{name} of release {release}")]
    Request {
        release: String,
        verb: &'static str,
        kind: String,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The release a manifest belongs to.
#[derive(Debug, Clone)]
pub struct ReleaseTarget {
    pub name: String,
    pub namespace: String,
}

/// What an apply did, by `Kind/namespace/name`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub created: Vec<String>,
    pub patched: Vec<String>,
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    pub unchanged: usize,
}

/// One document of a rendered manifest.
#[derive(Debug, Clone)]
struct Document {
    body: Value,
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
}

impl Document {
    /// Identity across renders: group, kind, namespace, name (a version bump is the same object).
    fn identity(&self) -> (String, String, Option<String>, String) {
        let group = self
            .api_version
            .split_once('/')
            .map(|(group, _)| group)
            .unwrap_or("")
            .to_string();
        (
            group,
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }
}

/// Splits a Helm manifest (documents separated by `---`, `# Source:` comments) into documents,
/// skipping empty ones as Helm does. Documents are read as Helm's kube client and kubectl read
/// them (go-yaml v2, YAML 1.1: `defaultMode: 0755` is 493, `on` is true), with the project's one
/// go-yaml-compatible reader.
fn parse_manifest(release: &str, which: &'static str, manifest: &str) -> Result<Vec<Document>> {
    let values = gocompat::yaml::parse_manifest_documents(
        manifest,
        &format!("{which} manifest of release {release}"),
    )
    .map_err(|source| Error::ManifestYaml {
        release: release.to_string(),
        which,
        source: source.into(),
    })?;
    let mut documents = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        let field = |path: &[&str], name: &'static str| -> Result<String> {
            let mut cursor = &value;
            for key in path {
                cursor = &cursor[*key];
            }
            cursor
                .as_str()
                .map(str::to_string)
                .ok_or(Error::ManifestField {
                    release: release.to_string(),
                    which,
                    index,
                    field: name,
                })
        };
        let api_version = field(&["apiVersion"], "apiVersion")?;
        let kind = field(&["kind"], "kind")?;
        let name = field(&["metadata", "name"], "metadata.name")?;
        let namespace = value["metadata"]["namespace"].as_str().map(str::to_string);
        documents.push(Document {
            body: value,
            api_version,
            kind,
            name,
            namespace,
        });
    }
    Ok(documents)
}

/// Applies manifests to one cluster, caching discovery and the OpenAPI merge metadata and
/// counting the API requests it makes.
pub struct Applier {
    client: Client,
    schema: OnceCell<Arc<PatchSchema>>,
    resources: Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
    requests: AtomicU64,
}

impl Applier {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            schema: OnceCell::new(),
            resources: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }
    }

    /// Kubernetes API requests made so far (discovery, OpenAPI, reads and writes).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    async fn schema(&self) -> Result<Arc<PatchSchema>> {
        self.schema
            .get_or_try_init(|| async {
                self.count();
                let request = http::Request::get("/openapi/v2")
                    .body(Vec::new())
                    .map_err(|err| Error::OpenApi(Box::new(kube::Error::HttpError(err))))?;
                let bytes = self
                    .client
                    .request_text(request)
                    .await
                    .map_err(|err| Error::OpenApi(Box::new(err)))?;
                PatchSchema::from_openapi_v2(bytes.as_bytes())
                    .map(Arc::new)
                    .map_err(Error::OpenApiJson)
            })
            .await
            .cloned()
    }

    async fn resource(
        &self,
        release: &str,
        document: &Document,
    ) -> Result<(ApiResource, ApiCapabilities)> {
        let key = (document.api_version.clone(), document.kind.clone());
        if let Some(found) = self.resources.lock().await.get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = match document.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", document.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &document.kind);
        self.count();
        let found = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| Error::Discovery {
                release: release.to_string(),
                api_version: document.api_version.clone(),
                kind: document.kind.clone(),
                source: Box::new(source),
            })?;
        self.resources.lock().await.insert(key, found.clone());
        Ok(found)
    }

    /// Moves the cluster from `old_manifest` to `new_manifest` for `target`: patches or applies
    /// changed documents, creates new ones, deletes vanished ones unless annotated
    /// `helm.sh/resource-policy: keep`. Documents whose rendered content is unchanged are not
    /// touched at all.
    pub async fn apply(
        &self,
        target: &ReleaseTarget,
        old_manifest: &str,
        new_manifest: &str,
        method: ApplyMethod,
    ) -> Result<ApplyReport> {
        let old = parse_manifest(&target.name, "current", old_manifest)?;
        let new = parse_manifest(&target.name, "new", new_manifest)?;
        let mut report = ApplyReport::default();
        let old_by_identity: HashMap<_, _> = old.iter().map(|d| (d.identity(), d)).collect();

        // As `helm upgrade` does before changing anything: an object the new manifest adds that
        // already exists is adopted only when its ownership metadata names this release;
        // otherwise the whole update is refused with Helm's message.
        let mut adopted = std::collections::HashSet::new();
        for document in new
            .iter()
            .filter(|d| !old_by_identity.contains_key(&d.identity()))
        {
            if let Some(live) = self.live_metadata(target, document).await? {
                self.check_ownership(target, document, &live, method)
                    .await?;
                adopted.insert(document.identity());
            }
        }

        for document in &new {
            match old_by_identity.get(&document.identity()) {
                Some(previous) if previous.body == document.body => {
                    // Helm re-creates an object of the release that was deleted behind its back.
                    if self.live_metadata(target, document).await?.is_none() {
                        self.create(target, document, method).await?;
                        report.created.push(describe(target, document));
                        crate::failpoint::hit(crate::failpoint::Step::MidApply).await;
                    } else {
                        report.unchanged += 1;
                    }
                }
                Some(previous) => {
                    if self.update(target, previous, document, method).await? {
                        report.patched.push(describe(target, document));
                    } else {
                        report.created.push(describe(target, document));
                    }
                    crate::failpoint::hit(crate::failpoint::Step::MidApply).await;
                }
                None if adopted.contains(&document.identity()) => {
                    self.adopt(target, document, method).await?;
                    report.patched.push(describe(target, document));
                    crate::failpoint::hit(crate::failpoint::Step::MidApply).await;
                }
                None => {
                    self.create(target, document, method).await?;
                    report.created.push(describe(target, document));
                    crate::failpoint::hit(crate::failpoint::Step::MidApply).await;
                }
            }
        }

        let new_identities: std::collections::HashSet<_> =
            new.iter().map(Document::identity).collect();
        for document in old
            .iter()
            .filter(|d| !new_identities.contains(&d.identity()))
        {
            let keep = document.body["metadata"]["annotations"][KEEP_POLICY_ANNOTATION].as_str()
                == Some("keep");
            if keep {
                report.kept.push(describe(target, document));
                continue;
            }
            self.delete(target, document).await?;
            report.deleted.push(describe(target, document));
        }
        Ok(report)
    }

    /// The live object a manifest document names (`None`: it does not exist), read for crash
    /// repair to compare with what a pending revision would have applied.
    pub async fn live_object(&self, target: &ReleaseTarget, body: &Value) -> Result<Option<Value>> {
        let field = |path: &[&str], name: &'static str| -> Result<String> {
            let mut cursor = body;
            for key in path {
                cursor = &cursor[*key];
            }
            cursor
                .as_str()
                .map(str::to_string)
                .ok_or(Error::ManifestField {
                    release: target.name.clone(),
                    which: "pending",
                    index: 0,
                    field: name,
                })
        };
        let document = Document {
            body: Value::Null,
            api_version: field(&["apiVersion"], "apiVersion")?,
            kind: field(&["kind"], "kind")?,
            name: field(&["metadata", "name"], "metadata.name")?,
            namespace: body["metadata"]["namespace"].as_str().map(str::to_string),
        };
        let (api, namespace) = self.api(target, &document).await?;
        self.count();
        let live = api
            .get_opt(&document.name)
            .await
            .map_err(|source| Error::Request {
                release: target.name.clone(),
                verb: "get",
                kind: document.kind.clone(),
                namespace,
                name: document.name.clone(),
                source: Box::new(source),
            })?;
        live.map(|object| serde_json::to_value(&object))
            .transpose()
            .map_err(|err| Error::Request {
                release: target.name.clone(),
                verb: "read",
                kind: document.kind.clone(),
                namespace: target.namespace.clone(),
                name: document.name.clone(),
                source: Box::new(kube::Error::SerdeError(err)),
            })
    }

    async fn api(
        &self,
        target: &ReleaseTarget,
        document: &Document,
    ) -> Result<(Api<DynamicObject>, String)> {
        let (resource, capabilities) = self.resource(&target.name, document).await?;
        Ok(match capabilities.scope {
            Scope::Namespaced => {
                let namespace = document
                    .namespace
                    .clone()
                    .unwrap_or_else(|| target.namespace.clone());
                (
                    Api::namespaced_with(self.client.clone(), &namespace, &resource),
                    namespace,
                )
            }
            Scope::Cluster => (Api::all_with(self.client.clone(), &resource), String::new()),
        })
    }

    /// The live object's metadata, `None` when it does not exist.
    async fn live_metadata(
        &self,
        target: &ReleaseTarget,
        document: &Document,
    ) -> Result<Option<kube::core::ObjectMeta>> {
        let (api, namespace) = self.api(target, document).await?;
        self.count();
        api.get_metadata_opt(&document.name)
            .await
            .map(|found| found.map(|object| object.metadata))
            .map_err(|source| Error::Request {
                release: target.name.clone(),
                verb: "get",
                kind: document.kind.clone(),
                namespace,
                name: document.name.clone(),
                source: Box::new(source),
            })
    }

    /// Helm's `existingResourceConflict`: the live object must carry `app.kubernetes.io/managed-by:
    /// Helm` and name this release and namespace in its annotations.
    async fn check_ownership(
        &self,
        target: &ReleaseTarget,
        document: &Document,
        live: &kube::core::ObjectMeta,
        method: ApplyMethod,
    ) -> Result<()> {
        let Some(problems) = ownership_problems(target, live) else {
            return Ok(());
        };
        let (_, namespace) = self.api(target, document).await?;
        Err(Error::Ownership {
            release: target.name.clone(),
            helm4: method == ApplyMethod::ServerSide,
            kind: document.kind.clone(),
            name: document.name.clone(),
            namespace,
            problems,
        })
    }

    /// Takes over an existing object the release owns by its metadata but did not list: Helm
    /// patches it from the live state to the rendered one (three-way with the rendered object
    /// as the original, which sets every rendered field) or server-side applies it.
    async fn adopt(
        &self,
        target: &ReleaseTarget,
        document: &Document,
        method: ApplyMethod,
    ) -> Result<()> {
        let (api, namespace) = self.api(target, document).await?;
        let body = with_ownership(target, &document.body);
        let params = match method {
            ApplyMethod::ServerSide => PatchParams::apply(HELM_FIELD_MANAGER),
            ApplyMethod::ClientSide => PatchParams::default(),
        };
        let patch = match method {
            ApplyMethod::ServerSide => Patch::Apply(&body),
            ApplyMethod::ClientSide => {
                let schema = self.schema().await?;
                match schema.definition_for(&document.api_version, &document.kind) {
                    Some(_) => Patch::Strategic(&body),
                    None => Patch::Merge(&body),
                }
            }
        };
        self.count();
        api.patch(&document.name, &params, &patch)
            .await
            .map_err(|source| Error::Request {
                release: target.name.clone(),
                verb: "patch",
                kind: document.kind.clone(),
                namespace,
                name: document.name.clone(),
                source: Box::new(source),
            })?;
        Ok(())
    }

    /// Patches (CSA) or applies (SSA) a changed document. `Ok(false)` when the object had been
    /// deleted and was created instead, as Helm does.
    async fn update(
        &self,
        target: &ReleaseTarget,
        previous: &Document,
        document: &Document,
        method: ApplyMethod,
    ) -> Result<bool> {
        let (api, namespace) = self.api(target, document).await?;
        let request_error = |source| Error::Request {
            release: target.name.clone(),
            verb: "patch",
            kind: document.kind.clone(),
            namespace: namespace.clone(),
            name: document.name.clone(),
            source: Box::new(source),
        };
        match method {
            ApplyMethod::ServerSide => {
                let body = with_ownership(target, &document.body);
                self.count();
                api.patch(
                    &document.name,
                    &PatchParams::apply(HELM_FIELD_MANAGER),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(request_error)?;
            }
            ApplyMethod::ClientSide => {
                let schema = self.schema().await?;
                let definition = schema.definition_for(&document.api_version, &document.kind);
                let patch = match definition {
                    Some(definition) => patch::strategic_merge_patch(
                        &schema,
                        Some(definition),
                        &previous.body,
                        &document.body,
                    )
                    .map(Patch::Strategic),
                    None => {
                        patch::json_merge_patch(&previous.body, &document.body).map(Patch::Merge)
                    }
                };
                if let Some(patch) = patch {
                    self.count();
                    match api
                        .patch(&document.name, &PatchParams::default(), &patch)
                        .await
                    {
                        Ok(_) => {}
                        // Deleted behind Helm's back: `helm upgrade` creates it again.
                        Err(kube::Error::Api(status)) if status.code == 404 => {
                            self.create(target, document, method).await?;
                            return Ok(false);
                        }
                        Err(source) => return Err(request_error(source)),
                    }
                }
            }
        }
        Ok(true)
    }

    async fn create(
        &self,
        target: &ReleaseTarget,
        document: &Document,
        method: ApplyMethod,
    ) -> Result<()> {
        let (api, namespace) = self.api(target, document).await?;
        let body = with_ownership(target, &document.body);
        let request_error = |verb, source| Error::Request {
            release: target.name.clone(),
            verb,
            kind: document.kind.clone(),
            namespace: namespace.clone(),
            name: document.name.clone(),
            source: Box::new(source),
        };
        self.count();
        match method {
            ApplyMethod::ServerSide => {
                api.patch(
                    &document.name,
                    &PatchParams::apply(HELM_FIELD_MANAGER),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(|source| request_error("apply", source))?;
            }
            ApplyMethod::ClientSide => {
                let object: DynamicObject = serde_json::from_value(body)
                    .map_err(|err| request_error("create", kube::Error::SerdeError(err)))?;
                api.create(&PostParams::default(), &object)
                    .await
                    .map_err(|source| request_error("create", source))?;
            }
        }
        Ok(())
    }

    async fn delete(&self, target: &ReleaseTarget, document: &Document) -> Result<()> {
        let (api, namespace) = self.api(target, document).await?;
        self.count();
        match api
            .delete(&document.name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            // Already gone: the goal is reached.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(Error::Request {
                release: target.name.clone(),
                verb: "delete",
                kind: document.kind.clone(),
                namespace,
                name: document.name.clone(),
                source: Box::new(source),
            }),
        }
    }
}

/// Helm's `checkOwnership` findings, joined with `; `, or `None` when the object is the release's.
fn ownership_problems(target: &ReleaseTarget, live: &kube::core::ObjectMeta) -> Option<String> {
    fn require(
        section: Option<&std::collections::BTreeMap<String, String>>,
        key: &str,
        wanted: &str,
    ) -> Option<String> {
        match section.and_then(|s| s.get(key)) {
            None => Some(format!("missing key {key:?}: must be set to {wanted:?}")),
            Some(actual) if actual != wanted => Some(format!(
                "key {key:?} must equal {wanted:?}: current value is {actual:?}"
            )),
            Some(_) => None,
        }
    }
    let problems: Vec<String> = [
        require(live.labels.as_ref(), "app.kubernetes.io/managed-by", "Helm")
            .map(|p| format!("label validation error: {p}")),
        require(
            live.annotations.as_ref(),
            "meta.helm.sh/release-name",
            &target.name,
        )
        .map(|p| format!("annotation validation error: {p}")),
        require(
            live.annotations.as_ref(),
            "meta.helm.sh/release-namespace",
            &target.namespace,
        )
        .map(|p| format!("annotation validation error: {p}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn describe(target: &ReleaseTarget, document: &Document) -> String {
    let namespace = document.namespace.as_deref().unwrap_or(&target.namespace);
    format!("{}/{}/{}", document.kind, namespace, document.name)
}

/// Adds the ownership metadata Helm puts on every object it creates (and, under SSA, on every
/// object it applies: leaving it out would make the `helm` manager drop those fields).
fn with_ownership(target: &ReleaseTarget, body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(metadata) = metadata.as_object_mut() {
            insert_string(metadata, "labels", "app.kubernetes.io/managed-by", "Helm");
            insert_string(
                metadata,
                "annotations",
                "meta.helm.sh/release-name",
                &target.name,
            );
            insert_string(
                metadata,
                "annotations",
                "meta.helm.sh/release-namespace",
                &target.namespace,
            );
        }
    }
    body
}

fn insert_string(
    metadata: &mut serde_json::Map<String, Value>,
    section: &str,
    key: &str,
    value: &str,
) {
    let entry = metadata
        .entry(section)
        .or_insert_with(|| Value::Object(Default::default()));
    if !entry.is_object() {
        *entry = Value::Object(Default::default());
    }
    if let Some(map) = entry.as_object_mut() {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_split_into_documents_with_identity() {
        let manifest = "---\n# Source: demo/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n# Source: demo/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: other\n";
        let documents = parse_manifest("demo", "new", manifest).expect("valid manifest");
        assert_eq!(documents.len(), 2);
        assert_eq!(
            documents[1].identity(),
            (
                "apps".to_string(),
                "Deployment".to_string(),
                Some("other".to_string()),
                "d".to_string()
            )
        );
    }

    #[test]
    fn a_document_without_kind_is_an_error_naming_it() {
        let error = parse_manifest("demo", "new", "apiVersion: v1\nmetadata:\n  name: x\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("document 0 of the new manifest of release demo lacks kind")
        );
    }

    #[test]
    fn yaml11_forms_are_read_as_helm_reads_them() {
        let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\nspec:\n  defaultMode: 0755\n  other: 0644\n  enabled: on\n  off: no\n";
        let documents = parse_manifest("demo", "new", manifest).expect("valid manifest");
        assert_eq!(
            documents[0].body["spec"],
            serde_json::json!({"defaultMode": 493, "other": 420, "enabled": true, "false": false})
        );
    }

    #[test]
    fn ownership_problems_use_helms_words() {
        let target = ReleaseTarget {
            name: "r".into(),
            namespace: "ns".into(),
        };
        let mut live = kube::core::ObjectMeta::default();
        assert_eq!(
            ownership_problems(&target, &live).as_deref(),
            Some(
                "label validation error: missing key \"app.kubernetes.io/managed-by\": must be set to \"Helm\"; annotation validation error: missing key \"meta.helm.sh/release-name\": must be set to \"r\"; annotation validation error: missing key \"meta.helm.sh/release-namespace\": must be set to \"ns\""
            )
        );
        live.labels = Some([("app.kubernetes.io/managed-by".into(), "Helm".into())].into());
        live.annotations = Some(
            [
                ("meta.helm.sh/release-name".into(), "other".into()),
                ("meta.helm.sh/release-namespace".into(), "ns".into()),
            ]
            .into(),
        );
        assert_eq!(
            ownership_problems(&target, &live).as_deref(),
            Some(
                "annotation validation error: key \"meta.helm.sh/release-name\" must equal \"r\": current value is \"other\""
            )
        );
        live.annotations = Some(
            [
                ("meta.helm.sh/release-name".into(), "r".into()),
                ("meta.helm.sh/release-namespace".into(), "ns".into()),
            ]
            .into(),
        );
        assert_eq!(ownership_problems(&target, &live), None);
    }

    #[test]
    fn ownership_metadata_is_added() {
        let target = ReleaseTarget {
            name: "r".into(),
            namespace: "ns".into(),
        };
        let body = with_ownership(&target, &serde_json::json!({"metadata": {"name": "x"}}));
        assert_eq!(
            body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm"
        );
        assert_eq!(
            body["metadata"]["annotations"]["meta.helm.sh/release-name"],
            "r"
        );
        assert_eq!(
            body["metadata"]["annotations"]["meta.helm.sh/release-namespace"],
            "ns"
        );
    }
}

#[cfg(test)]
mod error_text_tests {
    use super::*;

    /// Issue 13 item 3: a failed request shows the apiserver's message and code once.
    #[test]
    fn request_errors_carry_the_apiservers_message_not_a_debug_dump() {
        let status =
            kube::core::Status::failure("configmaps \"app-scripts\" not found", "NotFound")
                .with_code(404);
        let err = Error::Request {
            release: "app".into(),
            verb: "patch",
            kind: "ConfigMap".into(),
            namespace: "ns".into(),
            name: "app-scripts".into(),
            source: Box::new(kube::Error::Api(status.boxed())),
        };
        let text = crate::cluster::error_chain(&err);
        assert_eq!(
            text,
            "cannot patch ConfigMap ns/app-scripts of release app: configmaps \"app-scripts\" not found (404 NotFound)"
        );
        assert!(!text.contains("Status {"), "{text}");
    }
}
