//! Planning and writing one workload: each tracked container planned with the releases'
//! [`crate::updater::plan::decide`] (same policy, registry cache and rollback rules), then one
//! strategic merge patch that touches only the moving containers' `image` fields, plus
//! `kubernetes.io/change-cause` and keelson's [`UPDATE_ANNOTATION`].

use std::collections::HashMap;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tracing::warn;

use crate::keel::Trigger;
use crate::policy::{Policy, PolicyOptions};
use crate::registry::{Credentials, ImageRef, RegistryClient};
use crate::updater::plan::{Choice, Decision, TagKey, decide, error_chain};
use crate::updater::{TagCache, Updater};

use super::history::{self, ContainerChange, UPDATE_ANNOTATION, UpdateRecord};
use super::{Kind, Workload, WorkloadKey};

/// The annotation `kubectl rollout history` shows as CHANGE-CAUSE.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// One tracked container's plan, as `keelson check -o json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerPlan {
    pub kind: Kind,
    pub name: String,
    pub namespace: String,
    /// The Helm release the workload belongs to (then it moves only through that release).
    pub release: Option<String>,
    pub container: String,
    /// The repository as the pod spec writes it.
    pub image: String,
    /// Where the image sits (`containers[app].image`).
    pub path: String,
    pub current: String,
    pub target: Option<String>,
    pub reason: Option<String>,
    pub policy: String,
    /// The target an approval holds back.
    #[serde(skip)]
    pub held_target: Option<String>,
    /// What the approval gate just did (`approval-requested`, `approval-expired`), for
    /// notifications.
    #[serde(skip)]
    pub approval_event: Option<&'static str>,
}

/// What happened to one workload in a cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadResult {
    UpToDate,
    /// The patch was applied (or would be, for `keelson check`).
    Updated {
        changes: Vec<ContainerChange>,
    },
    /// Helm's ownership metadata names a release: only that release's revision may move it.
    ThroughRelease {
        release: String,
    },
    /// Its `keel.sh/*` labels are unusable.
    BadSettings {
        reason: String,
    },
    /// The workload changed under keelson (a 409, `conflict`), vanished, or its controller has
    /// not acted on its newest spec yet: planned again next cycle.
    Busy {
        reason: String,
        conflict: bool,
    },
    Failed {
        reason: String,
    },
}

/// One workload's plans and result.
#[derive(Debug, Clone)]
pub struct WorkloadOutcome {
    pub key: WorkloadKey,
    pub plans: Vec<ContainerPlan>,
    pub result: WorkloadResult,
}

impl WorkloadOutcome {
    /// `Deployment ns/name`.
    pub fn subject(&self) -> String {
        format!("{} {}/{}", self.key.0, self.key.1, self.key.2)
    }
}

/// The repositories a workload's tracked containers pull from, keyed as the tag cache keys them
/// (for the controller's schedules and webhooks). Scope is the workload's pull-secret scope.
pub fn repositories(workload: &Workload) -> Vec<TagKey> {
    let Ok(Some(settings)) = &workload.settings else {
        return Vec::new();
    };
    // The default credentials share the releases' listings (scope ""), as in `registry_for`.
    let scope = if named_secrets(workload).is_empty() {
        String::new()
    } else {
        secret_scope(workload)
    };
    let mut keys: Vec<TagKey> = workload
        .containers
        .iter()
        .filter(|c| settings.tracks(&c.name, c.init))
        .filter_map(|c| ImageRef::parse(&c.image).ok())
        .map(|image| TagKey {
            scope: scope.clone(),
            repository: image.repository(),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Whether the workload is checked on its poll schedule (else only by webhooks).
pub fn polls(workload: &Workload) -> bool {
    matches!(&workload.settings, Ok(Some(s)) if s.trigger == Trigger::Poll)
}

/// Every Secret whose credentials a workload's listings use: `keel.sh/imagePullSecret`, the
/// pod spec's `imagePullSecrets` and (resolved when read) its service account's.
fn named_secrets(workload: &Workload) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(settings)) = &workload.settings
        && let Some(secret) = &settings.image_pull_secret
    {
        names.push(secret.clone());
    }
    for secret in &workload.pull_secrets {
        if !names.contains(secret) {
            names.push(secret.clone());
        }
    }
    names
}

/// The tag cache scope: listings made with different credentials are kept apart.
fn secret_scope(workload: &Workload) -> String {
    let names = named_secrets(workload);
    if names.is_empty() {
        format!("{}/sa:{}", workload.namespace, workload.service_account)
    } else {
        format!(
            "{}/{}+sa:{}",
            workload.namespace,
            names.join(","),
            workload.service_account
        )
    }
}

/// A registry client with the workload's pull secrets on top of the default credentials, or the
/// default client when it has none. Secrets named by the pod spec or service account that
/// cannot be read are skipped (the kubelet skips them too); a bad `keel.sh/imagePullSecret`
/// holds the workload.
pub async fn registry_for(
    updater: &Updater,
    workload: &Workload,
) -> Result<(Arc<RegistryClient>, String), String> {
    // Workloads sharing a service account and pull secrets share one client for a minute:
    // neither the account nor the Secrets are read again for each of them.
    let credential_scope = secret_scope(workload);
    if let Some(found) = updater.pull_clients.workload_client(&credential_scope) {
        return Ok(found);
    }
    let found = build_registry_for(updater, workload).await?;
    updater
        .pull_clients
        .remember_workload_client(&credential_scope, found.0.clone(), &found.1);
    Ok(found)
}

async fn build_registry_for(
    updater: &Updater,
    workload: &Workload,
) -> Result<(Arc<RegistryClient>, String), String> {
    let namespace = &workload.namespace;
    let mut names = named_secrets(workload);
    let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(updater.client.clone(), namespace);
    match accounts.get_opt(&workload.service_account).await {
        Ok(Some(account)) => {
            for secret in account.image_pull_secrets.into_iter().flatten() {
                if !names.contains(&secret.name) {
                    names.push(secret.name);
                }
            }
        }
        Ok(None) => {}
        Err(err) => {
            warn!(workload = %workload.subject(), error = %crate::cluster::api_error_text(&err), "cannot read the service account's pull secrets")
        }
    }
    let scope = secret_scope(workload);
    if names.is_empty() {
        return Ok((Arc::new(updater.registry.clone()), String::new()));
    }
    let keel_secret = match &workload.settings {
        Ok(Some(settings)) => settings.image_pull_secret.clone(),
        _ => None,
    };
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(updater.client.clone(), namespace);
    let mut merged = Credentials::none();
    let mut used = 0;
    for name in &names {
        let read = match secrets.get(name).await {
            Ok(object) => Credentials::from_secret(&object)
                .map_err(|err| format!("pull secret {namespace}/{name}: {err}")),
            Err(err) => Err(format!(
                "cannot read pull secret {namespace}/{name}: {}",
                crate::cluster::api_error_text(&err)
            )),
        };
        match read {
            Ok(credentials) => {
                merged.merge(credentials);
                used += 1;
            }
            Err(reason) if keel_secret.as_ref() == Some(name) => {
                return Err(format!("{}: {reason}", workload.subject()));
            }
            Err(reason) => warn!(workload = %workload.subject(), %reason, "skipping a pull secret"),
        }
    }
    if used == 0 {
        return Ok((Arc::new(updater.registry.clone()), String::new()));
    }
    let mut config = updater.registry_config.clone();
    merged.merge(config.credentials.clone());
    config.credentials = merged;
    RegistryClient::new(config)
        .map(|client| (Arc::new(client), scope))
        .map_err(|err| {
            format!(
                "{}: pull secrets: {}",
                workload.subject(),
                error_chain(&err)
            )
        })
}

fn container_path(name: &str, init: bool) -> String {
    format!(
        "{}[{name}].image",
        if init { "initContainers" } else { "containers" }
    )
}

/// The registry client (and tag cache scope) a workload's listings use: see [`registry_for`].
pub type WorkloadRegistry = Result<(Arc<RegistryClient>, String), String>;

/// Plans every tracked container. Without `undone` (the history read) the rollback guard is
/// off, which only ever adds targets: enough to tell that nothing moves.
pub async fn plan(
    registry: &WorkloadRegistry,
    workload: &Workload,
    undone: Option<&HashMap<String, history::Undone>>,
    cache: &TagCache,
) -> Vec<ContainerPlan> {
    let Ok(Some(settings)) = &workload.settings else {
        return Vec::new();
    };
    let tracked: Vec<_> = workload
        .containers
        .iter()
        .filter(|c| settings.tracks(&c.name, c.init))
        .collect();
    let mut plans = Vec::with_capacity(tracked.len());
    let policy = Policy::parse_with(
        &settings.policy,
        PolicyOptions {
            match_tag: settings.match_tag,
            match_pre_release: settings.match_pre_release,
        },
    );
    for container in tracked {
        let (repository, _) = crate::keel::split_reference(&container.image);
        let mut plan = ContainerPlan {
            kind: workload.kind,
            name: workload.name.clone(),
            namespace: workload.namespace.clone(),
            release: workload.helm_release.clone(),
            container: container.name.clone(),
            image: repository.clone(),
            path: container_path(&container.name, container.init),
            current: container.image.clone(),
            target: None,
            reason: None,
            policy: settings.policy.clone(),
            held_target: None,
            approval_event: None,
        };
        let image = match ImageRef::parse(&container.image) {
            Ok(image) => image,
            Err(err) => {
                plan.reason = Some(format!("invalid image reference: {err}"));
                plans.push(plan);
                continue;
            }
        };
        let policy = match &policy {
            Ok(policy) => policy,
            Err(err) => {
                plan.reason = Some(format!("invalid policy: {err}"));
                plans.push(plan);
                continue;
            }
        };
        let (registry, scope) = match registry {
            Ok(found) => found,
            Err(reason) => {
                plan.reason = Some(reason.clone());
                plans.push(plan);
                continue;
            }
        };
        let undone = undone.and_then(|u| u.get(&container.name));
        let decision = decide(
            Choice {
                policy,
                policy_text: &settings.policy,
                image: &image,
                current_digest: image.digest.as_deref(),
                // A pinned image stays pinned; force + matchTag pins the tag's digest.
                pin_digest: image.digest.is_some(),
                digest_writable: true,
                undone: undone.map(|u| u.tags.as_slice()),
                undone_by: undone.map(|u| u.how.as_str()).unwrap_or_default(),
                registry,
                scope,
            },
            cache,
        )
        .await;
        match decision {
            Decision::Stay => {}
            Decision::Hold(reason) => plan.reason = Some(reason),
            Decision::Move { tag, digest } => {
                let mut target = format!("{repository}:{tag}");
                if let Some(digest) = digest {
                    target.push('@');
                    target.push_str(&digest);
                }
                if target != container.image {
                    plan.target = Some(target);
                }
            }
        }
        plans.push(plan);
    }
    plans
}

/// The approvals gate for a workload labelled `keel.sh/approvals`: the moving containers go
/// through [`crate::approvals`] together, as one request (the releases' gate). Held plans keep
/// their target in `held_target` with the reason; `None` when the move may be written.
async fn hold_for_approvals(
    updater: &Updater,
    workload: &Workload,
    settings: &super::Settings,
    plans: &mut [ContainerPlan],
) -> Option<()> {
    let moving: Vec<&ContainerPlan> = plans.iter().filter(|p| p.target.is_some()).collect();
    let join = |f: fn(&ContainerPlan) -> String| {
        moving.iter().map(|p| f(p)).collect::<Vec<_>>().join(", ")
    };
    let (image, current, target) = (
        join(|p| p.image.clone()),
        join(|p| p.current.clone()),
        join(|p| p.target.clone().unwrap_or_default()),
    );
    // What the patch would change, for the approval's page and `keelson approvals -o json`.
    let diff = moving
        .iter()
        .map(|p| {
            format!(
                "{} {}: {}: {} → {}",
                workload.kind,
                workload.name,
                p.path,
                p.current,
                p.target.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    drop(moving);
    let gate = crate::approvals::Approvals::new(updater.client.clone())
        .gate(
            &workload.as_subject(),
            crate::approvals::Request {
                image: &image,
                current: &current,
                target: &target,
                required: settings.approvals,
                deadline_hours: settings.approval_deadline,
                diff: &diff,
            },
            updater.config.dry_run,
        )
        .await;
    let event = match &gate {
        Ok(crate::approvals::Gate::Opened(_)) => Some("approval-requested"),
        Ok(crate::approvals::Gate::Expired(_)) => Some("approval-expired"),
        _ => None,
    };
    let reason = match gate {
        Ok(gate) => gate.hold_reason().map(str::to_string)?,
        Err(err) => format!("approval required; {err}"),
    };
    for plan in plans.iter_mut().filter(|p| p.target.is_some()) {
        plan.approval_event = event;
        plan.held_target = plan.target.take();
        plan.reason = Some(reason.clone());
    }
    Some(())
}

/// How often one workload is read again after it changed between plan and patch.
const MAX_ATTEMPTS: usize = 3;

/// Plans one workload and, unless the updater is dry-run, patches it. A Helm-owned workload is
/// never patched. When the object changed between the read and the patch (its controller
/// rewrites status all the time, which bumps the resourceVersion), it is read again and
/// planned again from what it holds now.
pub async fn reconcile(
    updater: &Updater,
    workload: &Workload,
    cache: &TagCache,
) -> WorkloadOutcome {
    let mut outcome = attempt(updater, workload, cache).await;
    for _ in 1..MAX_ATTEMPTS {
        if !matches!(outcome.result, WorkloadResult::Busy { conflict: true, .. }) {
            break;
        }
        let (kind, namespace, name) = &outcome.key;
        match super::get(&updater.client, *kind, namespace, name).await {
            Ok(Some(fresh)) => outcome = attempt(updater, &fresh, cache).await,
            Ok(None) => {
                outcome.result = WorkloadResult::Busy {
                    reason: format!("{} was deleted", outcome.subject()),
                    conflict: false,
                };
            }
            Err(reason) => outcome.result = WorkloadResult::Failed { reason },
        }
    }
    outcome
}

async fn attempt(updater: &Updater, workload: &Workload, cache: &TagCache) -> WorkloadOutcome {
    let done = |plans, result| WorkloadOutcome {
        key: workload.key(),
        plans,
        result,
    };
    if let Some(release) = &workload.helm_release {
        return done(
            Vec::new(),
            WorkloadResult::ThroughRelease {
                release: release.clone(),
            },
        );
    }
    if let Err(err) = &workload.settings {
        return done(
            Vec::new(),
            WorkloadResult::BadSettings {
                reason: err.to_string(),
            },
        );
    }
    // Most checks change nothing: plan without history first, read it only when a tag moves.
    // Pull secrets are read once per plan of the workload.
    let registry = registry_for(updater, workload).await;
    let quick = plan(&registry, workload, None, cache).await;
    if quick.iter().all(|p| p.target.is_none()) {
        return done(quick, WorkloadResult::UpToDate);
    }
    // Right after `kubectl rollout undo` the undo is in the spec but not yet in the history;
    // moving then would re-apply the very tag that was undone.
    if let Some((generation, observed)) = workload.controller_behind() {
        return done(
            quick,
            WorkloadResult::Busy {
                reason: format!(
                    "its controller has not acted on generation {generation} yet (observed {observed}); planning again next cycle"
                ),
                conflict: false,
            },
        );
    }
    let undone = match history::undone(&updater.client, workload).await {
        Ok(undone) => undone,
        Err(reason) => return done(quick, WorkloadResult::Failed { reason }),
    };
    let mut plans = plan(&registry, workload, Some(&undone), cache).await;
    if let Ok(Some(settings)) = &workload.settings
        && settings.approvals > 0
        && plans.iter().any(|p| p.target.is_some())
        && hold_for_approvals(updater, workload, settings, &mut plans)
            .await
            .is_some()
    {
        return done(plans, WorkloadResult::UpToDate);
    }
    let changes: Vec<ContainerChange> = plans
        .iter()
        .filter_map(|p| {
            p.target.as_ref().map(|t| ContainerChange {
                name: p.container.clone(),
                old: p.current.clone(),
                new: t.clone(),
            })
        })
        .collect();
    if changes.is_empty() {
        return done(plans, WorkloadResult::UpToDate);
    }
    if updater.config.dry_run {
        return done(plans, WorkloadResult::Updated { changes });
    }
    let result = match write(&updater.client, workload, &changes).await {
        Ok(()) => WorkloadResult::Updated { changes },
        Err(WriteError::Busy(reason)) => WorkloadResult::Busy {
            reason,
            conflict: true,
        },
        Err(WriteError::Failed(reason)) => WorkloadResult::Failed { reason },
    };
    done(plans, result)
}

enum WriteError {
    Busy(String),
    Failed(String),
}

/// The patch: only `image` of each moving container (strategic merge keys containers by name),
/// the change cause and keelson's record, guarded by the resourceVersion the plan was made
/// from so an edit made meanwhile is never overwritten.
pub fn patch_body(workload: &Workload, changes: &[ContainerChange], time: &str) -> Value {
    let mut lists: Map<String, Value> = Map::new();
    for change in changes {
        let init = workload
            .containers
            .iter()
            .any(|c| c.name == change.name && c.init);
        let field = if init { "initContainers" } else { "containers" };
        let entry = lists
            .entry(field.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.push(json!({"name": change.name, "image": change.new}));
        }
    }
    let cause = changes
        .iter()
        .map(|c| format!("{}: {} → {}", c.name, c.old, c.new))
        .collect::<Vec<_>>()
        .join(", ");
    let record = serde_json::to_string(&UpdateRecord {
        containers: changes.to_vec(),
        time: time.to_string(),
    })
    .unwrap_or_default();
    let mut spec = json!({"spec": Value::Object(lists)});
    for step in workload.kind.template_path().iter().rev() {
        spec = json!({ *step: spec });
    }
    if let Value::Object(map) = &mut spec {
        map.insert(
            "metadata".to_string(),
            json!({
                "resourceVersion": workload.resource_version,
                "annotations": {
                    CHANGE_CAUSE: format!("keelson: {cause}"),
                    UPDATE_ANNOTATION: record,
                },
            }),
        );
    }
    spec
}

async fn write(
    client: &kube::Client,
    workload: &Workload,
    changes: &[ContainerChange],
) -> Result<(), WriteError> {
    let body = patch_body(workload, changes, &jiff::Timestamp::now().to_string());
    let api = super::api(client, &workload.resource, Some(&workload.namespace));
    let params = PatchParams {
        field_manager: Some("keelson".to_string()),
        ..PatchParams::default()
    };
    match api
        .patch(&workload.name, &params, &Patch::Strategic(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
            Err(WriteError::Busy(format!(
                "{} changed while keelson planned ({}); planning again next cycle",
                workload.subject(),
                crate::cluster::api_status_text(&status)
            )))
        }
        Err(err) => Err(WriteError::Failed(format!(
            "cannot patch {}: {}",
            workload.subject(),
            crate::cluster::api_error_text(&err)
        ))),
    }
}

/// One pass over the workloads in `namespace` (`None`: all): every workload planned, one
/// broken workload never stopping the others; kinds the apiserver cannot list are reported.
pub async fn run_cycle(
    updater: &Updater,
    namespace: Option<&str>,
    selector: Option<&str>,
    cache: &TagCache,
) -> (Vec<WorkloadOutcome>, Vec<String>) {
    let (workloads, problems) = super::list(&updater.client, namespace, selector).await;
    let mut outcomes = Vec::with_capacity(workloads.len());
    for workload in &workloads {
        outcomes.push(reconcile(updater, workload, cache).await);
    }
    (outcomes, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_touches_only_images_and_records_the_change() {
        let object: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "batch/v1beta1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "ns", "resourceVersion": "42",
                         "labels": {"keel.sh/policy": "all"}},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "image": "r/init:1"}],
                "containers": [{"name": "app", "image": "r/app:1.0.0", "args": ["x"]}]}}}}}
        }))
        .expect("object");
        let resource = Kind::CronJob.resources().remove(1);
        let workload = Workload::from_object(Kind::CronJob, &resource, object).expect("workload");
        let changes = [ContainerChange {
            name: "app".into(),
            old: "r/app:1.0.0".into(),
            new: "r/app:1.1.0".into(),
        }];
        let body = patch_body(&workload, &changes, "2026-01-01T00:00:00Z");
        assert_eq!(
            body["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            json!({"containers": [{"name": "app", "image": "r/app:1.1.0"}]})
        );
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(
            body["metadata"]["annotations"][CHANGE_CAUSE],
            "keelson: app: r/app:1.0.0 → r/app:1.1.0"
        );
        let record: UpdateRecord = serde_json::from_str(
            body["metadata"]["annotations"][UPDATE_ANNOTATION]
                .as_str()
                .unwrap_or_default(),
        )
        .expect("the record is JSON");
        assert_eq!(record.containers, changes);
    }
}
