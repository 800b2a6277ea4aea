//! Crash repair: finishing a `pending-upgrade` record keelson left behind (its writer was
//! killed, or lost its connection) once its holder is gone. The record is judged applied when
//! every field keelson would have set — the parts of each document that differ from the
//! revision it was built on — holds in the live objects; fields others own (replicas set by an
//! autoscaler, defaults the apiserver fills in) are not compared. Applied: deployed. Not
//! applied: whatever part was applied is put back, and the record ends failed. Cluster not
//! readable: left pending for the next attempt.

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::apply::{ApplyMethod, ReleaseTarget};
use crate::storage::{DriverError, Status, StorageError, StoredRelease, fit_description};

/// Begins the description of a revision crash repair marked failed: its writer died, the move
/// itself did not fail (the backoff after failed moves does not count it). A prefix, since
/// descriptions are cut to fit.
pub(super) const INTERRUPTED: &str = "keelson: interrupted";

use super::holder::{self, Holder, HolderState};
use super::plan::error_chain;
use super::write::{Outcome, Updater};

/// One manifest document and what identifies it across revisions.
struct Document {
    body: Value,
    /// group, kind, namespace (`None`: the release's), name
    identity: (String, String, Option<String>, String),
    /// `helm.sh/resource-policy: keep`: Helm leaves it when it leaves the manifest.
    keep: bool,
}

impl Document {
    fn describe(&self) -> String {
        let (_, kind, namespace, name) = &self.identity;
        match namespace {
            Some(namespace) => format!("{kind} {namespace}/{name}"),
            None => format!("{kind} {name}"),
        }
    }
}

fn parse_documents(manifest: &str) -> Result<Vec<Document>, String> {
    let mut documents = Vec::new();
    // Read as Helm's kube client reads manifests (go-yaml v2, YAML 1.1), like the apply does.
    let bodies = gocompat::yaml::parse_manifest_documents(manifest, "the manifest")
        .map_err(|err| format!("the manifest is not valid YAML: {err}"))?;
    for (index, body) in bodies.into_iter().enumerate() {
        if body.is_null() {
            continue;
        }
        let text = |value: &Value| value.as_str().map(str::to_string);
        let (Some(api_version), Some(kind), Some(name)) = (
            text(&body["apiVersion"]),
            text(&body["kind"]),
            text(&body["metadata"]["name"]),
        ) else {
            return Err(format!(
                "document {index} lacks apiVersion, kind or metadata.name"
            ));
        };
        let group = api_version
            .split_once('/')
            .map(|(group, _)| group.to_string())
            .unwrap_or_default();
        let namespace = text(&body["metadata"]["namespace"]);
        let keep =
            body["metadata"]["annotations"]["helm.sh/resource-policy"].as_str() == Some("keep");
        documents.push(Document {
            identity: (group, kind, namespace, name),
            body,
            keep,
        });
    }
    Ok(documents)
}

/// A list whose elements are maps with a `name` (containers, env, ports): Kubernetes merges
/// them by name, and the live list may hold entries others added.
fn is_named_list(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|item| item["name"].is_string())
}

/// What writing `new` over `old` sets: the parts of `new` that differ from `old` (`None`: the
/// documents are the same, or differ only by removals).
fn set_fields(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut set = Map::new();
            for (key, value) in new {
                let changed = match old.get(key) {
                    Some(previous) => set_fields(previous, value),
                    None => Some(value.clone()),
                };
                if let Some(changed) = changed {
                    set.insert(key.clone(), changed);
                }
            }
            (!set.is_empty()).then_some(Value::Object(set))
        }
        (Value::Array(old), Value::Array(new)) if is_named_list(old) && is_named_list(new) => {
            let mut set = Vec::new();
            for item in new {
                match old.iter().find(|o| o["name"] == item["name"]) {
                    Some(previous) => {
                        if let Some(Value::Object(mut changed)) = set_fields(previous, item) {
                            changed.insert("name".to_string(), item["name"].clone());
                            set.push(Value::Object(changed));
                        }
                    }
                    None => set.push(item.clone()),
                }
            }
            (!set.is_empty()).then_some(Value::Array(set))
        }
        _ => Some(new.clone()),
    }
}

/// Whether `live` holds everything in `expected` (maps: every key; named lists: every named
/// entry; other lists: element by element).
fn contains(live: &Value, expected: &Value) -> bool {
    match (live, expected) {
        (Value::Object(live), Value::Object(expected)) => expected
            .iter()
            .all(|(key, value)| live.get(key).is_some_and(|l| contains(l, value))),
        (Value::Array(live), Value::Array(expected)) if is_named_list(expected) => {
            expected.iter().all(|item| {
                live.iter()
                    .any(|l| l["name"] == item["name"] && contains(l, item))
            })
        }
        (Value::Array(live), Value::Array(expected)) => {
            live.len() == expected.len() && live.iter().zip(expected).all(|(l, e)| contains(l, e))
        }
        (Value::Number(live), Value::Number(expected)) => live.as_f64() == expected.as_f64(),
        _ => live == expected,
    }
}

/// Whether the cluster holds what a pending revision would have applied.
enum Applied {
    Yes,
    No(String),
    /// A manifest cannot be read; nothing can be compared (or put back).
    Unparseable(String),
}

impl Updater {
    /// Compares every document keelson would have applied going from `base` to `pending` with
    /// the live objects. An error means the cluster could not be read.
    async fn revision_applied(
        &self,
        target: &ReleaseTarget,
        base: &str,
        pending: &str,
    ) -> Result<Applied, String> {
        let (base, pending) = match (parse_documents(base), parse_documents(pending)) {
            (Ok(base), Ok(pending)) => (base, pending),
            (Err(err), _) | (_, Err(err)) => return Ok(Applied::Unparseable(err)),
        };
        let live_object = |body: &Value| {
            let body = body.clone();
            async move {
                self.applier
                    .live_object(target, &body)
                    .await
                    .map_err(|err| error_chain(&err))
            }
        };
        for document in &pending {
            let expected = match base.iter().find(|b| b.identity == document.identity) {
                Some(old) => match set_fields(&old.body, &document.body) {
                    Some(expected) => expected,
                    None => continue,
                },
                None => json!({}),
            };
            match live_object(&document.body).await? {
                None => {
                    return Ok(Applied::No(format!(
                        "{} does not exist",
                        document.describe()
                    )));
                }
                Some(live) if !contains(&live, &expected) => {
                    return Ok(Applied::No(format!(
                        "{} does not hold what the revision sets",
                        document.describe()
                    )));
                }
                Some(_) => {}
            }
        }
        for gone in base
            .iter()
            .filter(|b| !b.keep && !pending.iter().any(|p| p.identity == b.identity))
        {
            if let Some(live) = live_object(&gone.body).await?
                && live["metadata"]["deletionTimestamp"].is_null()
            {
                return Ok(Applied::No(format!("{} still exists", gone.describe())));
            }
        }
        Ok(Applied::Yes)
    }

    /// Repairs keelson's own pending record `pending` (the newest revision in `history`) once
    /// its holder is gone: deployed when the cluster holds what it sets, else put back and
    /// failed; left pending when the cluster cannot be read. A live holder's record is Busy.
    pub(super) async fn repair_pending(
        &self,
        pending: &StoredRelease,
        history: &[StoredRelease],
    ) -> Outcome {
        let name = pending.release.name().to_string();
        let namespace = pending.release.namespace().to_string();
        let revision = pending.release.version();
        let failed = |reason: String| Outcome::Failed {
            reason,
            revision: Some(revision),
        };
        // Read fresh, with the annotations naming the holder (lists do not carry them).
        let (pending, annotations) = match self
            .storage
            .driver()
            .get_annotated(&namespace, &name, revision)
            .await
        {
            Ok(found) => found,
            Err(DriverError::NotFound { .. }) => {
                return Outcome::Busy {
                    reason: format!(
                        "pending revision {revision} was removed by its writer while keelson read it"
                    ),
                };
            }
            Err(err) => {
                return failed(format!(
                    "cannot read pending revision {revision}: {}",
                    error_chain(&err)
                ));
            }
        };
        if !pending.release.status().is_pending() {
            return Outcome::Busy {
                reason: format!(
                    "revision {revision} was finished by another writer while keelson read it"
                ),
            };
        }
        if let Some(holder) = Holder::from_annotations(&annotations) {
            if let Some(busy) = self.holder_busy(&holder, &pending, revision).await {
                return busy;
            }
        } else {
            info!(release = %name, %namespace, revision, "pending record names no holder (written by an older keelson); repairing it");
        }

        let base = base_of(history, revision);
        let base_manifest = base
            .and_then(|b| b.release.manifest.clone())
            .unwrap_or_default();
        let pending_manifest = pending.release.manifest.clone().unwrap_or_default();
        let target = ReleaseTarget {
            name: name.clone(),
            namespace: namespace.clone(),
        };
        let applied = match self
            .revision_applied(&target, &base_manifest, &pending_manifest)
            .await
        {
            Ok(applied) => applied,
            Err(reason) => {
                return failed(format!(
                    "cannot tell whether revision {revision} was applied: {reason}; left pending-upgrade for the next attempt"
                ));
            }
        };
        let result = match applied {
            Applied::Yes => {
                let description = match annotations.get(holder::DESCRIPTION_ANNOTATION) {
                    Some(planned) => format!("{planned} (finished after an interrupted run)"),
                    None => "keelson: completed after an interrupted run".to_string(),
                };
                self.finish_pending(pending, true, &fit_description(&description))
                    .await
            }
            Applied::No(why) => {
                info!(release = %name, %namespace, revision, %why, "pending revision was not fully applied; putting the cluster back");
                if base.is_some() {
                    let method = ApplyMethod::from_record(pending.release.apply_method.as_deref());
                    if let Err(err) = self
                        .applier
                        .apply(&target, &pending_manifest, &base_manifest, method)
                        .await
                    {
                        return failed(format!(
                            "revision {revision} was interrupted mid-apply ({why}) and putting back revision {} failed: {}; left pending-upgrade for the next attempt",
                            base.map(|b| b.release.version()).unwrap_or_default(),
                            error_chain(&err)
                        ));
                    }
                }
                match self.restore_base(base, &name, &namespace).await {
                    Ok(()) => {
                        self.finish_pending(
                            pending,
                            false,
                            &fit_description(&format!(
                                "{INTERRUPTED} before the apply finished ({why}); put back and marked failed at restart"
                            )),
                        )
                        .await
                    }
                    Err(err) => Err(err),
                }
            }
            Applied::Unparseable(why) => {
                self.finish_pending(
                    pending,
                    false,
                    &fit_description(&format!(
                        "{INTERRUPTED}; the manifest cannot be read ({why}); marked failed at restart"
                    )),
                )
                .await
            }
        };
        match result {
            Ok(stored) => Outcome::Repaired {
                revision,
                status: stored.release.status(),
            },
            Err(err) if err.is_other_writer() => Outcome::Busy {
                reason: format!(
                    "another writer changed release {name:?} while keelson repaired revision {revision}: {}",
                    error_chain(&err)
                ),
            },
            Err(err) => {
                warn!(release = %name, %namespace, revision, error = %error_chain(&err), "could not repair a pending revision");
                failed(error_chain(&err))
            }
        }
    }

    /// `Some(Busy)` when the record's holder is alive (or is this process, still writing it);
    /// `Some(Failed)` when that cannot be told; `None` when the record is abandoned.
    async fn holder_busy(
        &self,
        holder: &Holder,
        pending: &StoredRelease,
        revision: i64,
    ) -> Option<Outcome> {
        let own = self.config.holder.as_ref().is_some_and(|own| {
            own.identity == holder.identity
                && own.lease_namespace == holder.lease_namespace
                && own.lease_name == holder.lease_name
        });
        if own {
            if holder::is_in_flight(&pending.namespace, &pending.object_name) {
                return Some(Outcome::Busy {
                    reason: format!(
                        "revision {revision} is pending-upgrade, being written by this keelson"
                    ),
                });
            }
            // Same identity, not written by this process: an earlier incarnation left it.
            return None;
        }
        match holder::holder_state(&self.client, holder).await {
            Ok(HolderState::Alive(who)) => Some(Outcome::Busy {
                reason: format!(
                    "revision {revision} is pending-upgrade, held by live writer {who}; another operation is in progress"
                ),
            }),
            Ok(HolderState::Gone { reason, expired }) => {
                info!(release = %pending.release.name(), namespace = %pending.namespace, revision, %reason, "the holder of a pending revision is gone; repairing it");
                if expired {
                    holder::delete_expired_run_lease(&self.client, holder).await;
                }
                None
            }
            Err(err) => Some(Outcome::Failed {
                reason: format!(
                    "cannot tell whether the holder of pending revision {revision} is alive (Lease {}/{}): {}; left pending-upgrade for the next attempt",
                    holder.lease_namespace,
                    holder.lease_name,
                    error_chain(&err)
                ),
                revision: Some(revision),
            }),
        }
    }

    /// After putting the cluster back to `base`: when a crash came after `base` was superseded,
    /// it is the deployed revision again (else the release would have none).
    async fn restore_base(
        &self,
        base: Option<&StoredRelease>,
        name: &str,
        namespace: &str,
    ) -> Result<(), StorageError> {
        let Some(base) = base.filter(|b| b.release.status() == Status::Superseded) else {
            return Ok(());
        };
        match self.storage.deployed(namespace, name).await {
            Ok(_) => Ok(()),
            Err(StorageError::NoDeployed { .. }) => {
                let mut restored = base.clone();
                restored
                    .release
                    .set_status(Status::Deployed, restored.release.description().to_string());
                self.storage.update(&restored).await.map(|_| ())
            }
            Err(err) => Err(err),
        }
    }
}

/// The revision a pending one was built on: the newest deployed revision before it, or, when a
/// crash came after superseding it, the newest superseded one.
fn base_of(history: &[StoredRelease], revision: i64) -> Option<&StoredRelease> {
    let before = || {
        history
            .iter()
            .filter(move |r| r.release.version() < revision)
            .rev()
    };
    before()
        .find(|r| r.release.status() == Status::Deployed)
        .or_else(|| before().find(|r| r.release.status() == Status::Superseded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(image: &str, replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image, "command": ["sleep", "infinity"]}
            ]}}}
        })
    }

    #[test]
    fn set_fields_are_the_changed_parts_only() {
        let set = set_fields(&deployment("a:1", 1), &deployment("a:2", 1)).expect("changed");
        assert_eq!(
            set,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}}})
        );
        assert_eq!(
            set_fields(&deployment("a:1", 1), &deployment("a:1", 1)),
            None
        );
        let custom_old =
            json!({"apiVersion": "x.io/v1", "kind": "Widget", "spec": {"image": "a:1", "size": 2}});
        let custom_new =
            json!({"apiVersion": "x.io/v1", "kind": "Widget", "spec": {"image": "a:2", "size": 2}});
        assert_eq!(
            set_fields(&custom_old, &custom_new),
            Some(json!({"spec": {"image": "a:2"}}))
        );
    }

    #[test]
    fn live_objects_are_compared_on_what_keelson_set() {
        let set = set_fields(&deployment("a:1", 1), &deployment("a:2", 1)).expect("changed");
        // Scaled by someone else, defaults filled in, a sidecar injected: still applied.
        let mut live = deployment("a:2", 5);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "mesh", "image": "proxy:1"}));
        assert!(contains(&live, &set));
        assert!(!contains(&deployment("a:1", 1), &set));
        let custom = json!({"spec": {"image": "a:2"}});
        assert!(contains(
            &json!({"spec": {"image": "a:2", "size": 2}}),
            &custom
        ));
        assert!(!contains(
            &json!({"spec": {"image": "a:1", "size": 2}}),
            &custom
        ));
        assert!(contains(&json!({"n": 1.0}), &json!({"n": 1})));
    }

    #[test]
    fn the_base_is_the_deployed_revision_or_the_superseded_one_after_a_crash() {
        let stored = |version: i64, status: &str| StoredRelease {
            release: serde_json::from_value(json!({
                "name": "web", "version": version, "namespace": "ns", "info": {"status": status}
            }))
            .expect("release"),
            labels: Default::default(),
            namespace: "ns".into(),
            object_name: format!("sh.helm.release.v1.web.v{version}"),
            resource_version: None,
        };
        let normal = [
            stored(1, "superseded"),
            stored(2, "deployed"),
            stored(3, "pending-upgrade"),
        ];
        assert_eq!(base_of(&normal, 3).map(|b| b.release.version()), Some(2));
        let crashed = [
            stored(1, "superseded"),
            stored(2, "superseded"),
            stored(3, "pending-upgrade"),
        ];
        assert_eq!(base_of(&crashed, 3).map(|b| b.release.version()), Some(2));
    }
}
