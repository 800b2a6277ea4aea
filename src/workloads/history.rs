//! "`kubectl rollout undo` sticks" for workloads: the tags an undo took away are derived from
//! the cluster's own history — a Deployment's ReplicaSets (`deployment.kubernetes.io/revision`
//! and `revision-history`), a StatefulSet's or DaemonSet's ControllerRevisions — and from
//! keelson's own annotation on the workload (the only record a CronJob has). No other store.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::updater::rollback::{RevisionImage, rolled_back_tags};

use super::{Kind, Workload};

/// keelson's record of its last change on a workload: per container the old and new reference.
pub const UPDATE_ANNOTATION: &str = "keelson.sh/image-update";
const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// The value of [`UPDATE_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub containers: Vec<ContainerChange>,
    /// RFC 3339.
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerChange {
    pub name: String,
    pub old: String,
    pub new: String,
}

/// Tags undone for one container, and how to say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undone {
    pub tags: Vec<String>,
    pub how: String,
}

fn tag_of(image: &str) -> Option<String> {
    crate::keel::split_reference(image).1
}

/// Per container name, the tags that an undo took away and that only a strictly newer tag
/// may replace. Reads ReplicaSets or ControllerRevisions owned by the workload.
pub async fn undone(
    client: &kube::Client,
    workload: &Workload,
) -> Result<HashMap<String, Undone>, String> {
    let mut found = from_annotation(workload);
    // Owned history carries the workload's selector labels; ownership is checked below anyway.
    let params = match &workload.selector {
        Some(selector) => ListParams::default().labels(selector),
        None => ListParams::default(),
    };
    let from_cluster = match workload.kind {
        Kind::Deployment => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &workload.namespace);
            let sets = api.list(&params).await.map_err(|err| {
                format!(
                    "cannot list the ReplicaSets of {}: {}",
                    workload.subject(),
                    crate::cluster::api_error_text(&err)
                )
            })?;
            let owned: Vec<(BTreeMap<String, String>, Value)> = sets
                .items
                .into_iter()
                .filter(|rs| owned_by(&rs.metadata, &workload.uid))
                .map(|rs| {
                    let template = serde_json::to_value(rs.spec.and_then(|s| s.template))
                        .unwrap_or(Value::Null);
                    (rs.metadata.annotations.unwrap_or_default(), template)
                })
                .collect();
            from_replica_sets(workload, &owned)
        }
        Kind::StatefulSet | Kind::DaemonSet => {
            let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &workload.namespace);
            let revisions = api.list(&params).await.map_err(|err| {
                format!(
                    "cannot list the ControllerRevisions of {}: {}",
                    workload.subject(),
                    crate::cluster::api_error_text(&err)
                )
            })?;
            let owned: Vec<(i64, String, Value)> = revisions
                .items
                .into_iter()
                .filter(|cr| owned_by(&cr.metadata, &workload.uid))
                .map(|cr| {
                    let created = cr
                        .metadata
                        .creation_timestamp
                        .map(|t| t.0.to_string())
                        .unwrap_or_default();
                    let template = cr
                        .data
                        .map(|d| d.0)
                        .and_then(|d| d.get("spec").and_then(|s| s.get("template")).cloned())
                        .unwrap_or(Value::Null);
                    (cr.revision, created, template)
                })
                .collect();
            from_controller_revisions(workload, &owned)
        }
        Kind::CronJob => HashMap::new(),
    };
    // The cluster's history is more precise; the annotation fills in what it cannot tell.
    found.extend(from_cluster);
    Ok(found)
}

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == uid)
}

/// The image of container `name` in a pod template (as JSON).
fn image_in(template: &Value, name: &str) -> Option<String> {
    let spec = template.get("spec")?;
    ["containers", "initContainers"]
        .iter()
        .filter_map(|field| spec.get(field).and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|c| c.get("image").and_then(Value::as_str))
        .map(str::to_string)
}

/// keelson moved a container from `old` to `new`, and it runs `old`'s tag again: someone undid
/// the update, so `new` waits for something newer.
fn from_annotation(workload: &Workload) -> HashMap<String, Undone> {
    let mut found = HashMap::new();
    let Some(record) = workload
        .annotations
        .get(UPDATE_ANNOTATION)
        .and_then(|text| serde_json::from_str::<UpdateRecord>(text).ok())
    else {
        return found;
    };
    for change in record.containers {
        let Some(current) = workload.containers.iter().find(|c| c.name == change.name) else {
            continue;
        };
        let (current_tag, old_tag, new_tag) = (
            tag_of(&current.image),
            tag_of(&change.old),
            tag_of(&change.new),
        );
        if let Some(new_tag) = new_tag
            && current_tag == old_tag
            && current_tag.as_ref() != Some(&new_tag)
        {
            found.insert(
                change.name.clone(),
                Undone {
                    tags: vec![new_tag],
                    how: format!(
                        "undone (keelson set {} at {}; the workload runs {} again)",
                        change.new, record.time, current.image
                    ),
                },
            );
        }
    }
    found
}

/// A Deployment's ReplicaSets as revisions: `kubectl rollout undo` gives the restored
/// ReplicaSet the next revision number and keeps its former ones in `revision-history`, which
/// reads exactly like Helm's `Rollback to N`.
fn from_replica_sets(
    workload: &Workload,
    sets: &[(BTreeMap<String, String>, Value)],
) -> HashMap<String, Undone> {
    let mut found = HashMap::new();
    for container in &workload.containers {
        let mut revisions = Vec::new();
        for (annotations, template) in sets {
            let Some(version) = annotations
                .get(REVISION)
                .and_then(|r| r.parse::<i64>().ok())
            else {
                continue;
            };
            let tag = image_in(template, &container.name).and_then(|i| tag_of(&i));
            let earlier: Vec<i64> = annotations
                .get(REVISION_HISTORY)
                .map(|h| h.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                .unwrap_or_default();
            let description = earlier
                .iter()
                .max()
                .map(|n| format!("Rollback to {n}"))
                .unwrap_or_default();
            for n in &earlier {
                revisions.push(RevisionImage {
                    version: *n,
                    description: String::new(),
                    rollback_revision: None,
                    tag: tag.clone(),
                });
            }
            revisions.push(RevisionImage {
                version,
                description,
                rollback_revision: None,
                tag,
            });
        }
        // The deployment controller may not have made the ReplicaSet of the current template
        // yet: history only counts while its newest revision is what the workload runs.
        let current = tag_of(&container.image);
        let newest = revisions.iter().max_by_key(|r| r.version);
        if newest.is_none_or(|r| r.tag != current) {
            // Right after `kubectl rollout undo` the workload runs an older ReplicaSet's
            // template before the deployment controller renumbers it: the tags of the
            // revisions after the newest one holding the current tag were just undone. (A
            // template no ReplicaSet holds yet is a fresh change, not an undo.)
            let restored = revisions
                .iter()
                .filter(|r| r.tag == current)
                .map(|r| r.version)
                .max();
            if let Some(restored) = restored {
                let mut tags: Vec<String> = revisions
                    .iter()
                    .filter(|r| r.version > restored)
                    .filter_map(|r| r.tag.clone())
                    .filter(|t| Some(t) != current.as_ref())
                    .collect();
                tags.sort();
                tags.dedup();
                if !tags.is_empty() {
                    found.insert(
                        container.name.clone(),
                        Undone {
                            tags,
                            how: format!(
                                "undone (kubectl rollout undo to ReplicaSet revision {restored}, not yet renumbered)"
                            ),
                        },
                    );
                }
            }
            continue;
        }
        if let Some(rolled) = rolled_back_tags(&revisions) {
            found.insert(
                container.name.clone(),
                Undone {
                    tags: rolled.tags,
                    how: format!(
                        "undone (kubectl rollout undo: ReplicaSet revision {} returned to revision {})",
                        rolled.rollback, rolled.target
                    ),
                },
            );
        }
    }
    found
}

/// ControllerRevisions keep no former numbers: an undo bumps the restored revision's number
/// but not its creation time, so revisions created after it with lower numbers were undone.
fn from_controller_revisions(
    workload: &Workload,
    revisions: &[(i64, String, Value)],
) -> HashMap<String, Undone> {
    let mut found = HashMap::new();
    let Some((newest, created, template)) = revisions.iter().max_by_key(|r| r.0) else {
        return found;
    };
    for container in &workload.containers {
        let current = image_in(template, &container.name).and_then(|i| tag_of(&i));
        if current != tag_of(&container.image) {
            continue;
        }
        let mut tags: Vec<String> = Vec::new();
        let mut undone_revisions = Vec::new();
        for (revision, other_created, other) in revisions {
            // RFC 3339 times in UTC compare as text.
            if revision < newest && other_created > created {
                if let Some(tag) = image_in(other, &container.name).and_then(|i| tag_of(&i))
                    && Some(&tag) != current.as_ref()
                    && !tags.contains(&tag)
                {
                    tags.push(tag);
                }
                undone_revisions.push(*revision);
            }
        }
        if !tags.is_empty() {
            undone_revisions.sort_unstable();
            found.insert(
                container.name.clone(),
                Undone {
                    tags,
                    how: format!(
                        "undone (kubectl rollout undo: ControllerRevision {newest} restored an older template over revisions {undone_revisions:?})"
                    ),
                },
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload(image: &str, annotations: &[(&str, &str)]) -> Workload {
        let object: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1",
                         "labels": {"keel.sh/policy": "all"},
                         "annotations": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}
        }))
        .expect("a DynamicObject");
        let resource = Kind::Deployment.resources().remove(0);
        Workload::from_object(Kind::Deployment, &resource, object).expect("a workload")
    }

    fn template(image: &str) -> Value {
        json!({"spec": {"containers": [{"name": "app", "image": image}]}})
    }

    fn rs(revision: &str, history: Option<&str>, image: &str) -> (BTreeMap<String, String>, Value) {
        let mut annotations = BTreeMap::from([(REVISION.to_string(), revision.to_string())]);
        if let Some(history) = history {
            annotations.insert(REVISION_HISTORY.to_string(), history.to_string());
        }
        (annotations, template(image))
    }

    #[test]
    fn rollout_undo_on_replica_sets_blocks_the_undone_tag() {
        let w = workload("r/app:3.4.5", &[]);
        let sets = [
            rs("3", Some("1"), "r/app:3.4.5"),
            rs("2", None, "r/app:4.5.6"),
        ];
        let found = from_replica_sets(&w, &sets);
        assert_eq!(
            found.get("app").map(|u| u.tags.clone()),
            Some(vec!["4.5.6".to_string()])
        );
        // A later move forward ends the block.
        let w = workload("r/app:4.5.7", &[]);
        let sets = [
            rs("3", Some("1"), "r/app:3.4.5"),
            rs("2", None, "r/app:4.5.6"),
            rs("4", None, "r/app:4.5.7"),
        ];
        assert!(from_replica_sets(&w, &sets).is_empty());
    }

    #[test]
    fn the_annotation_tells_an_undo_where_the_cluster_keeps_no_history() {
        let record = serde_json::to_string(&UpdateRecord {
            containers: vec![ContainerChange {
                name: "app".into(),
                old: "r/app:1.0.0".into(),
                new: "r/app:2.0.0".into(),
            }],
            time: "2026-01-01T00:00:00Z".into(),
        })
        .expect("json");
        let undone = from_annotation(&workload("r/app:1.0.0", &[(UPDATE_ANNOTATION, &record)]));
        assert_eq!(
            undone.get("app").map(|u| u.tags.clone()),
            Some(vec!["2.0.0".to_string()])
        );
        assert!(
            from_annotation(&workload("r/app:2.0.0", &[(UPDATE_ANNOTATION, &record)])).is_empty()
        );
    }

    #[test]
    fn a_reused_controller_revision_marks_the_newer_ones_undone() {
        let w = workload("r/app:1.0.0", &[]);
        let revisions = [
            (
                3,
                "2026-01-01T00:00:00Z".to_string(),
                template("r/app:1.0.0"),
            ),
            (
                2,
                "2026-01-02T00:00:00Z".to_string(),
                template("r/app:2.0.0"),
            ),
        ];
        assert_eq!(
            from_controller_revisions(&w, &revisions)
                .get("app")
                .map(|u| u.tags.clone()),
            Some(vec!["2.0.0".to_string()])
        );
    }
}
