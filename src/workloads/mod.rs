//! Plain workloads — Deployments, StatefulSets, DaemonSets and CronJobs — tracked by Keel's
//! `keel.sh/*` labels: read them, plan each tracked container with the releases' own policy and
//! registry code, and patch only the containers' images.

pub mod history;
pub mod settings;
pub mod update;

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;

pub use settings::{Settings, SettingsError};
pub use update::{WorkloadOutcome, WorkloadResult};

/// The workload kinds keelson patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::CronJob,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::CronJob => "CronJob",
        }
    }

    /// The kind as Kubernetes spells it (`Deployment`), as approvals store it.
    pub fn parse(text: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The API versions to try, newest first: batch/v1 CronJobs exist from Kubernetes 1.21,
    /// batch/v1beta1 until 1.24.
    pub fn resources(self) -> Vec<ApiResource> {
        let resource = |group: &str, version: &str, plural: &str| ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: format!("{group}/{version}"),
            kind: self.as_str().to_string(),
            plural: plural.to_string(),
        };
        match self {
            Kind::Deployment => vec![resource("apps", "v1", "deployments")],
            Kind::StatefulSet => vec![resource("apps", "v1", "statefulsets")],
            Kind::DaemonSet => vec![resource("apps", "v1", "daemonsets")],
            Kind::CronJob => vec![
                resource("batch", "v1", "cronjobs"),
                resource("batch", "v1beta1", "cronjobs"),
            ],
        }
    }

    /// Where the pod template sits in the object.
    pub fn template_path(self) -> &'static [&'static str] {
        match self {
            Kind::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container of a workload's pod template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// An init container.
    pub init: bool,
}

/// Helm's ownership metadata: such a workload belongs to a release and moves only through it.
pub const HELM_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";

/// A workload as read from the cluster, with its Keel settings (or why they are unusable).
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Where the object is served (`batch/v1beta1` for CronJobs on older clusters).
    pub resource: ApiResource,
    pub containers: Vec<Container>,
    /// `imagePullSecrets` of the pod spec.
    pub pull_secrets: Vec<String>,
    pub service_account: String,
    /// `metadata.generation`, and the `status.observedGeneration` its controller reported.
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// `spec.selector.matchLabels` as a label selector: the ReplicaSets and ControllerRevisions
    /// the workload owns carry these labels, so its history is listed with it.
    pub selector: Option<String>,
    /// The Helm release that owns the workload, when Helm's ownership metadata says so.
    pub helm_release: Option<String>,
    /// `Ok(None)`: no `keel.sh/policy`, not tracked.
    pub settings: Result<Option<Settings>, SettingsError>,
}

/// `(kind, namespace, name)`: how the controller and the CLI name a workload.
pub type WorkloadKey = (Kind, String, String);

impl Workload {
    pub fn key(&self) -> WorkloadKey {
        (self.kind, self.namespace.clone(), self.name.clone())
    }

    /// `Deployment ns/name`, for messages.
    pub fn subject(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// How approvals and notifications name it.
    pub fn as_subject(&self) -> crate::subject::Subject {
        crate::subject::Subject::workload(self.kind.as_str(), &self.namespace, &self.name)
    }

    /// The object a Kubernetes Event about the workload is recorded on.
    pub fn object_reference(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(self.resource.api_version.clone()),
            kind: Some(self.kind.as_str().to_string()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: Some(self.uid.clone()).filter(|u| !u.is_empty()),
            resource_version: Some(self.resource_version.clone()).filter(|v| !v.is_empty()),
            ..Default::default()
        }
    }

    /// The channels of `keel.sh/notify` (none when the labels are unusable).
    pub fn notify_channels(&self) -> Vec<String> {
        match &self.settings {
            Ok(Some(settings)) => settings.notify.clone(),
            _ => Vec::new(),
        }
    }

    /// Reads a listed object; `None` for objects without a name (never served by an apiserver).
    pub fn from_object(kind: Kind, resource: &ApiResource, object: DynamicObject) -> Option<Self> {
        let meta = object.metadata;
        let name = meta.name?;
        let labels = meta.labels.unwrap_or_default();
        let annotations = meta.annotations.unwrap_or_default();
        let mut pod = &object.data;
        for step in kind.template_path() {
            pod = pod.get(step).unwrap_or(&Value::Null);
        }
        let spec = pod.get("spec").unwrap_or(&Value::Null);
        let mut containers = Vec::new();
        for (field, init) in [("initContainers", true), ("containers", false)] {
            for container in spec
                .get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = |key: &str| {
                    container
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                containers.push(Container {
                    name: text("name"),
                    image: text("image"),
                    init,
                });
            }
        }
        let pull_secrets = spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let service_account = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let helm_release = (labels.get(HELM_MANAGED_BY).map(String::as_str) == Some("Helm"))
            .then(|| annotations.get(HELM_RELEASE_NAME).cloned())
            .flatten();
        let settings = settings::read(&labels, &annotations);
        let selector = object
            .data
            .get("spec")
            .and_then(|s| s.get("selector"))
            .and_then(|s| s.get("matchLabels"))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        Some(Self {
            kind,
            namespace: meta.namespace.unwrap_or_default(),
            name,
            uid: meta.uid.unwrap_or_default(),
            resource_version: meta.resource_version.unwrap_or_default(),
            labels,
            annotations,
            resource: resource.clone(),
            containers,
            pull_secrets,
            service_account,
            generation: meta.generation,
            observed_generation: object
                .data
                .get("status")
                .and_then(|s| s.get("observedGeneration"))
                .and_then(Value::as_i64),
            selector,
            helm_release,
            settings,
        })
    }

    /// Whether the workload's controller has not yet acted on its newest spec: its history
    /// (the ReplicaSet of the current template) may then be missing, e.g. right after
    /// `kubectl rollout undo`. Kinds whose controller reports nothing are never behind.
    pub fn controller_behind(&self) -> Option<(i64, i64)> {
        match (self.generation, self.observed_generation) {
            (Some(generation), Some(observed)) if observed < generation => {
                Some((generation, observed))
            }
            _ => None,
        }
    }

    /// Whether keelson looks at this workload at all (it has `keel.sh/policy`, valid or not).
    pub fn has_keel_settings(&self) -> bool {
        !matches!(self.settings, Ok(None))
    }
}

/// Every workload of the four kinds in `namespace` (`None`: all namespaces) that carries
/// `keel.sh/policy`, valid or not, sorted by namespace, name and kind. A kind the apiserver
/// cannot list is a problem for that kind only: it is returned beside the others.
pub async fn list(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> (Vec<Workload>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for kind in Kind::ALL {
        match list_kind(client, kind, namespace, selector).await {
            Ok(mut workloads) => found.append(&mut workloads),
            Err(problem) => problems.push(problem),
        }
    }
    found.retain(Workload::has_keel_settings);
    found.sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
    (found, problems)
}

/// The API a kind is served at, tried newest first (a 404 means that version is not served).
pub async fn list_kind(
    client: &kube::Client,
    kind: Kind,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Workload>, String> {
    let mut params = ListParams::default();
    if let Some(selector) = selector.filter(|s| !s.trim().is_empty()) {
        params = params.labels(selector);
    }
    let mut last = String::new();
    for resource in kind.resources() {
        let api = api(client, &resource, namespace);
        match api.list(&params).await {
            Ok(list) => {
                return Ok(list
                    .items
                    .into_iter()
                    .filter_map(|o| Workload::from_object(kind, &resource, o))
                    .collect());
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                last = format!(
                    "{} is not served",
                    resource.api_version.clone() + "/" + &resource.plural
                );
            }
            Err(err) => {
                return Err(format!(
                    "cannot list {}s ({}): {}",
                    kind,
                    resource.api_version,
                    crate::cluster::api_error_text(&err)
                ));
            }
        }
    }
    Err(format!("cannot list {kind}s: {last}"))
}

/// The API of a resource in one namespace or across all.
pub fn api(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Reads one workload afresh.
pub async fn get(
    client: &kube::Client,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<Option<Workload>, String> {
    let mut last = String::new();
    for resource in kind.resources() {
        let api = api(client, &resource, Some(namespace));
        match api.get_opt(name).await {
            Ok(found) => return Ok(found.and_then(|o| Workload::from_object(kind, &resource, o))),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                last = format!("{} is not served", resource.api_version);
            }
            Err(err) => {
                return Err(format!(
                    "cannot read {kind} {namespace}/{name}: {}",
                    crate::cluster::api_error_text(&err)
                ));
            }
        }
    }
    Err(format!("cannot read {kind} {namespace}/{name}: {last}"))
}
