//! The controller's view of plain workloads: a watch per workload kind (in the same namespaces
//! as the release records) that keeps every workload carrying `keel.sh/policy`, and reports
//! those whose images or Keel settings changed so the scheduler plans them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{ApiResource, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::workloads::{Container, Kind, Workload, WorkloadKey};

/// Reports `(workload, settings changed)`; settings changes re-list the repositories.
pub type Changed = mpsc::UnboundedSender<(WorkloadKey, bool)>;

/// What decides whether a workload needs planning again: its images and Keel settings, not its
/// status (which the workload controllers rewrite all the time).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    containers: Vec<Container>,
    keel: BTreeMap<String, String>,
    helm_release: Option<String>,
}

fn fingerprint(workload: &Workload) -> Fingerprint {
    let keel = workload
        .labels
        .iter()
        .chain(workload.annotations.iter())
        .filter(|(k, _)| k.starts_with("keel.sh/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Fingerprint {
        containers: workload.containers.clone(),
        keel,
        helm_release: workload.helm_release.clone(),
    }
}

/// Workloads that carry `keel.sh/policy` (valid or not), by key.
#[derive(Default)]
pub struct Workloads {
    entries: Mutex<HashMap<WorkloadKey, Arc<Workload>>>,
}

impl Workloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadKey, Arc<Workload>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Workloads keelson may patch: valid settings and no Helm owner.
    pub fn tracked(&self) -> Vec<Arc<Workload>> {
        self.lock()
            .values()
            .filter(|w| w.helm_release.is_none() && matches!(w.settings, Ok(Some(_))))
            .cloned()
            .collect()
    }

    pub fn get(&self, key: &WorkloadKey) -> Option<Arc<Workload>> {
        self.lock().get(key).cloned()
    }

    /// Stores what a watch saw; reports it when its images or settings changed.
    fn apply(&self, workload: Workload, changed: &Changed) {
        let key = workload.key();
        let mut entries = self.lock();
        if !workload.has_keel_settings() {
            if entries.remove(&key).is_some() {
                let _ = changed.send((key, true));
            }
            return;
        }
        let settings_changed = match entries.get(&key) {
            None => Some(true),
            Some(old) => {
                let (before, after) = (fingerprint(old), fingerprint(&workload));
                if before.keel != after.keel || before.helm_release != after.helm_release {
                    Some(true)
                } else if before.containers != after.containers {
                    Some(false)
                } else {
                    None
                }
            }
        };
        if let Err(err) = &workload.settings
            && settings_changed.is_some()
        {
            warn!(workload = %workload.subject(), error = %err, "bad keel.sh labels; not tracked");
        }
        entries.insert(key.clone(), Arc::new(workload));
        if let Some(settings_changed) = settings_changed {
            let _ = changed.send((key, settings_changed));
        }
    }

    fn forget(&self, keep: impl Fn(&WorkloadKey) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }
}

/// Forgets a namespace's workloads when the watch of that namespace ends (a namespace that
/// stops matching `--namespace-selector` has its watches aborted).
pub struct NamespaceGuard {
    pub workloads: Arc<Workloads>,
    pub namespace: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        self.workloads.forget(|key| key.1 != self.namespace);
    }
}

/// The version a kind is served at (CronJobs: batch/v1, else batch/v1beta1); `None` when no
/// version is served or listing is refused (logged).
async fn served(client: &kube::Client, kind: Kind, namespace: Option<&str>) -> Option<ApiResource> {
    let mut last = String::new();
    for resource in kind.resources() {
        let api = crate::workloads::api(client, &resource, namespace);
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Some(resource),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                last = format!("{} is not served", resource.api_version);
            }
            Err(err) => {
                last = crate::cluster::api_error_text(&err);
                break;
            }
        }
    }
    warn!(kind = %kind, namespace = namespace.unwrap_or("*"), reason = %last, "not watching this workload kind");
    None
}

/// Watches the four workload kinds in one namespace (or all) until aborted.
pub async fn watch(
    client: kube::Client,
    namespace: Option<String>,
    workloads: Arc<Workloads>,
    changed: Changed,
) {
    let mut tasks = Vec::new();
    for kind in Kind::ALL {
        let Some(resource) = served(&client, kind, namespace.as_deref()).await else {
            continue;
        };
        let (client, namespace, workloads, changed) = (
            client.clone(),
            namespace.clone(),
            workloads.clone(),
            changed.clone(),
        );
        tasks.push(async move {
            watch_kind(client, kind, resource, namespace, workloads, changed).await
        });
    }
    futures::future::join_all(tasks).await;
}

async fn watch_kind(
    client: kube::Client,
    kind: Kind,
    resource: ApiResource,
    namespace: Option<String>,
    workloads: Arc<Workloads>,
    changed: Changed,
) {
    let api = crate::workloads::api(&client, &resource, namespace.as_deref());
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed: Option<Vec<WorkloadKey>> = None;
    let in_scope =
        |key: &WorkloadKey| key.0 == kind && namespace.as_ref().is_none_or(|ns| *ns == key.1);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn!(kind = %kind, namespace = namespace.as_deref().unwrap_or("*"), error = %err, "watching workloads failed; retrying");
                continue;
            }
        };
        match event {
            Event::Init => listed = Some(Vec::new()),
            Event::InitApply(object) | Event::Apply(object) => {
                if let Some(workload) = Workload::from_object(kind, &resource, object) {
                    if let Some(keys) = listed.as_mut() {
                        keys.push(workload.key());
                    }
                    workloads.apply(workload, &changed);
                }
            }
            Event::InitDone => {
                // After a re-list: forget what is gone.
                let keys = listed.take().unwrap_or_default();
                workloads.forget(|key| !in_scope(key) || keys.contains(key));
                debug!(kind = %kind, namespace = namespace.as_deref().unwrap_or("*"), listed = keys.len(), "workloads listed");
            }
            Event::Delete(object) => {
                if let Some(workload) = Workload::from_object(kind, &resource, object) {
                    let key = workload.key();
                    workloads.forget(|k| *k != key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, policy: &str, resource_version: &str) -> Workload {
        let object: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": resource_version,
                         "labels": {"keel.sh/policy": policy}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"observedGeneration": resource_version}
        }))
        .expect("a DynamicObject");
        let resource = Kind::Deployment.resources().remove(0);
        Workload::from_object(Kind::Deployment, &resource, object).expect("a workload")
    }

    #[test]
    fn only_image_and_label_changes_are_reported() {
        let store = Workloads::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        store.apply(deployment("r/app:1", "all", "1"), &tx);
        assert_eq!(rx.try_recv().ok().map(|(_, s)| s), Some(true));
        // A status update: stored (new resourceVersion), not re-planned.
        store.apply(deployment("r/app:1", "all", "2"), &tx);
        assert!(rx.try_recv().is_err());
        let key = (Kind::Deployment, "ns".to_string(), "web".to_string());
        assert_eq!(
            store.get(&key).map(|w| w.resource_version.clone()),
            Some("2".into())
        );
        // A new image: planned from listings at hand; a new policy: listed afresh.
        store.apply(deployment("r/app:2", "all", "3"), &tx);
        assert_eq!(rx.try_recv().ok().map(|(_, s)| s), Some(false));
        store.apply(deployment("r/app:2", "minor", "4"), &tx);
        assert_eq!(rx.try_recv().ok().map(|(_, s)| s), Some(true));
        // A bad label keeps the workload known but not tracked.
        store.apply(deployment("r/app:2", "sometimes", "5"), &tx);
        assert!(store.get(&key).is_some());
        assert!(store.tracked().is_empty());
    }
}
