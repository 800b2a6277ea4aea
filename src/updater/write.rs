//! Writing a revision: new config with only the changed paths, the render-verify guard choosing
//! full render or patch mode, the pending record, the apply, and the final status.

use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::apply::hooks::{HookRun, HookSpec};
use crate::apply::{Applier, ApplyMethod, ReleaseTarget};
use crate::keel;
use crate::values::{PathSegment, ValuePath};
use std::collections::HashMap;
use std::sync::Arc;

use crate::failpoint::{self, Step};
use crate::registry::{Credentials, RegistryClient};
use crate::render::release::HelmFlavor;
use crate::storage::driver::record_name;
use crate::storage::{
    Hook, PendingRevision, RevisionChange, Status, Storage, StorageError, StoredRelease, Writer,
    fit_description,
};

use super::holder::{self, Holder};

use super::patch_mode::{self, RenderedImage};
use super::plan::{self, ImagePlan, TagCache, ValueChange, error_chain};
use super::render::{ClusterCapabilities, full_render};

use crate::storage::PREPARING_UPGRADE as PENDING_DESCRIPTION;
use crate::storage::record::GoValue;

/// Settings of the updater.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// Run the chart's pre-/post-upgrade hooks around the apply (default: off).
    pub run_hooks: bool,
    /// How long one hook (a Job or Pod) may take, like helm's `--timeout`.
    pub hook_timeout: std::time::Duration,
    /// Revisions kept per release (`--history-max`); 0 keeps all. Helm's default is 10.
    pub history_max: usize,
    /// Plan only; write nothing (`keelson check`).
    pub dry_run: bool,
    /// Try a move again at once even though it just failed (`reconcile --once --retry-failed`);
    /// otherwise failed moves wait ([`super::backoff`]).
    pub retry_failed: bool,
    /// How long one release's render may take before that release fails this cycle.
    pub render_timeout: std::time::Duration,
    /// Who writes: named on every pending record so crash repair leaves a live writer's
    /// records alone. `None` writes records that name no holder.
    pub holder: Option<Holder>,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        Self {
            run_hooks: false,
            hook_timeout: std::time::Duration::from_secs(300),
            history_max: crate::storage::DEFAULT_HISTORY_MAX,
            dry_run: false,
            retry_failed: false,
            render_timeout: std::time::Duration::from_secs(60),
            holder: None,
        }
    }
}

/// How the new manifest was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    /// The chart was re-rendered with the new values (the current revision re-rendered
    /// byte-identically first).
    FullRender,
    /// The stored manifest with exactly the old image references replaced.
    Patch,
}

impl RenderMode {
    /// How descriptions and `keelson check` name the mode.
    pub fn label(self) -> &'static str {
        match self {
            RenderMode::FullRender => "full render",
            RenderMode::Patch => "patch mode",
        }
    }
}

/// How often one release is read again after other writers changed it under keelson.
const MAX_ATTEMPTS: usize = 3;

/// The end of one read-plan-write pass.
enum Attempt {
    Done(Outcome),
    /// Another writer changed the release first (nothing of ours was applied): read again.
    Replan(String),
}

/// A new revision computed but not yet written.
struct Prepared<'h> {
    deployed: &'h StoredRelease,
    /// The revision number the new record is expected to get.
    next_version: i64,
    config: Map<String, Value>,
    manifest: String,
    hooks: Vec<Hook>,
    notes: Option<String>,
    mode: RenderMode,
    /// Why patch mode was used (`None` for a full render).
    mode_reason: Option<String>,
    description: String,
}

/// What happened to one release in a cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to do (all images current, or held back: see the plans).
    UpToDate,
    /// A new revision was deployed.
    Updated {
        revision: i64,
        description: String,
        mode: RenderMode,
    },
    /// The release could not be updated this cycle; nothing was written, or the new revision
    /// ended `failed` with this reason.
    Failed {
        reason: String,
        revision: Option<i64>,
    },
    /// The release is not tracked (no keel block) or its block is malformed.
    NotTracked { reason: Option<String> },
    /// A crashed run's pending record was repaired.
    Repaired { revision: i64, status: Status },
    /// Another writer's operation is in progress; try again next cycle.
    Busy { reason: String },
}

/// One release's plan and outcome.
#[derive(Debug, Clone)]
pub struct ReleaseOutcome {
    pub release: String,
    pub namespace: String,
    pub plans: Vec<ImagePlan>,
    pub outcome: Outcome,
}

/// Plans and writes revisions for the releases in one cluster.
pub struct Updater {
    pub storage: Storage,
    pub registry: RegistryClient,
    pub applier: Applier,
    pub client: kube::Client,
    /// The default registry configuration; pull secrets add their credentials to a copy.
    pub registry_config: crate::registry::RegistryConfig,
    pub config: UpdaterConfig,
    /// Discovered once, the first time a release needs a render.
    pub capabilities: tokio::sync::OnceCell<ClusterCapabilities>,
    /// Fetches (and caches) the subcharts of charts with dependencies for a full render.
    pub subcharts: crate::subcharts::SubchartFetcher,
    /// Registry clients built from pull secrets, reused while the Secret is unchanged.
    pub pull_clients: PullClients,
}

/// How long a pull secret read counts as current: within it, plans reuse the client without
/// reading the Secret again (a rotated secret is picked up within this time).
const PULL_SECRET_FRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// Registry clients built from pull secrets, by (namespace, Secret): reusing one keeps its
/// connections and bearer tokens, and saves a Secret read per plan of every release that names
/// it. Refreshed after [`PULL_SECRET_FRESH`]; rebuilt only when the Secret's resourceVersion
/// changed. Failed reads are not kept.
#[derive(Debug, Default)]
pub struct PullClients {
    clients: std::sync::Mutex<HashMap<(String, String), PullClient>>,
    /// Workloads' clients by credential scope (namespace, named secrets, service account),
    /// with their tag-cache scope: see [`PullClients::workload_client`].
    by_scope: std::sync::Mutex<HashMap<String, ScopedClient>>,
}

/// A workload registry client: when it was built, the client, its tag-cache scope.
type ScopedClient = (std::time::Instant, Arc<RegistryClient>, String);

#[derive(Debug, Clone)]
struct PullClient {
    read_at: std::time::Instant,
    resource_version: Option<String>,
    client: Arc<RegistryClient>,
}

impl PullClients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PullClient>> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A workload client built within [`PULL_SECRET_FRESH`] for the same credential scope
    /// (workloads sharing a service account and secrets share it, without reading them again).
    pub fn workload_client(&self, scope: &str) -> Option<(Arc<RegistryClient>, String)> {
        let mut by_scope = self
            .by_scope
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match by_scope.get(scope) {
            Some((read_at, client, cache_scope)) if read_at.elapsed() < PULL_SECRET_FRESH => {
                Some((client.clone(), cache_scope.clone()))
            }
            Some(_) => {
                by_scope.remove(scope);
                None
            }
            None => None,
        }
    }

    /// Keeps a workload client built for `scope`.
    pub fn remember_workload_client(
        &self,
        scope: &str,
        client: Arc<RegistryClient>,
        cache_scope: &str,
    ) {
        self.by_scope
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                scope.to_string(),
                (std::time::Instant::now(), client, cache_scope.to_string()),
            );
    }
}

impl Updater {
    /// One pass over the releases in `namespace` (`None`: all namespaces): plan every tracked
    /// image, then write a revision for each release with changes. One broken release never
    /// stops the others. Each repository's tags are fetched once per cycle.
    pub async fn run_cycle(
        &self,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<ReleaseOutcome>, StorageError> {
        let selector = match selector.map(str::trim) {
            Some(extra) if !extra.is_empty() => format!("owner=helm,{extra}"),
            _ => "owner=helm".to_string(),
        };
        let listing = self.storage.driver().latest(namespace, &selector).await?;
        for skipped in &listing.skipped {
            warn!(object = %skipped.object, reason = %skipped.reason, "skipped a release record that cannot be decoded");
        }
        let cache = TagCache::default();
        let mut outcomes = Vec::with_capacity(listing.records.len());
        let mut latest = listing.records;
        latest.sort_by(|a, b| {
            (a.release.namespace(), a.release.name())
                .cmp(&(b.release.namespace(), b.release.name()))
        });
        for stored in latest {
            outcomes.push(self.reconcile_release(stored, &cache).await);
        }
        Ok(outcomes)
    }

    /// Plans and (unless dry-run) writes one release, starting from its newest revision.
    pub async fn reconcile_release(
        &self,
        latest: StoredRelease,
        cache: &TagCache,
    ) -> ReleaseOutcome {
        let release = latest.release.name().to_string();
        let namespace = latest.release.namespace().to_string();
        let done = |plans, outcome| ReleaseOutcome {
            release: release.clone(),
            namespace: namespace.clone(),
            plans,
            outcome,
        };
        let block = match keel::read_release(&latest.release) {
            Ok(Some(block)) => block,
            Ok(None) => return done(Vec::new(), Outcome::NotTracked { reason: None }),
            Err(err) => {
                warn!(%release, %namespace, error = %err, "malformed keel block");
                return done(
                    Vec::new(),
                    Outcome::NotTracked {
                        reason: Some(err.to_string()),
                    },
                );
            }
        };
        for warning in &block.warnings {
            warn!(%release, %namespace, "{warning}");
        }

        // Most cycles change nothing: plan from the newest revision alone first, and read the
        // history (one more request per release) only when it is deployed and an image would
        // move, or when it is not the deployed one.
        if latest.release.status() == Status::Deployed {
            let plans = self.plan_tracked(&release, &namespace, &block, cache).await;
            if plans.iter().all(|p| p.target.is_none()) {
                return done(plans, Outcome::UpToDate);
            }
        }

        let mut lost = Vec::new();
        loop {
            let (plans, attempt) = self.attempt(&release, &namespace, cache).await;
            match attempt {
                Attempt::Done(outcome) => return done(plans, outcome),
                Attempt::Replan(reason) => {
                    info!(%release, %namespace, %reason, "another writer changed the release; reading it again");
                    lost.push(reason);
                    if lost.len() >= MAX_ATTEMPTS {
                        return done(
                            plans,
                            Outcome::Busy {
                                reason: format!(
                                    "other writers changed the release {} times while keelson planned; last: {}",
                                    lost.len(),
                                    lost.last().map(String::as_str).unwrap_or_default()
                                ),
                            },
                        );
                    }
                }
            }
        }
    }

    /// One read-plan-write pass over a release, from a fresh read of its history.
    async fn attempt(
        &self,
        release: &str,
        namespace: &str,
        cache: &TagCache,
    ) -> (Vec<ImagePlan>, Attempt) {
        let finished = |outcome| (Vec::new(), Attempt::Done(outcome));
        let history = match self.storage.history(namespace, release).await {
            Ok(history) => history,
            Err(err) => {
                return finished(Outcome::Failed {
                    reason: error_chain(&err),
                    revision: None,
                });
            }
        };
        let Some(newest) = history.last() else {
            return finished(Outcome::Failed {
                reason: "the release has no revisions".to_string(),
                revision: None,
            });
        };
        let status = newest.release.status();
        if status.is_pending() {
            if newest.release.description() == PENDING_DESCRIPTION && !self.config.dry_run {
                return finished(self.repair_pending(newest, &history).await);
            }
            return finished(Outcome::Busy {
                reason: format!(
                    "revision {} is {}; another operation is in progress",
                    newest.release.version(),
                    status.as_str()
                ),
            });
        }
        let block = match keel::read_release(&newest.release) {
            Ok(Some(block)) => block,
            Ok(None) => return finished(Outcome::NotTracked { reason: None }),
            Err(err) => {
                return finished(Outcome::NotTracked {
                    reason: Some(err.to_string()),
                });
            }
        };
        // Plan from the deployed revision: a newer failed one is not what runs, and the new
        // revision is built on the deployed one.
        let deployed = history
            .iter()
            .filter(|r| r.release.status() == Status::Deployed)
            .max_by_key(|r| r.release.version());
        let (base, block) = match deployed {
            Some(deployed) if deployed.release.version() != newest.release.version() => {
                match keel::read_release(&deployed.release) {
                    Ok(Some(block)) => (deployed, block),
                    _ => (newest, block),
                }
            }
            _ => (newest, block),
        };
        let by_secret = self.pull_secret_clients(namespace, &block).await;
        let registries = plan::Registries {
            namespace,
            default: &self.registry,
            by_secret: &by_secret,
        };
        let mut plans = plan::plan_release(
            base.release.name(),
            base.release.namespace(),
            &block,
            &history,
            &registries,
            cache,
        )
        .await;
        let changes: Vec<&ImagePlan> = plans.iter().filter(|p| p.target.is_some()).collect();
        if changes.is_empty() {
            return (plans, Attempt::Done(Outcome::UpToDate));
        }
        if !self.config.retry_failed {
            let value_changes: Vec<&ValueChange> =
                changes.iter().flat_map(|p| p.changes.iter()).collect();
            if let Some(failed) = super::backoff::failed_attempts(&history, &value_changes)
                && failed.retry_at > jiff::Timestamp::now()
            {
                let times = if failed.failures == 1 {
                    "once".to_string()
                } else {
                    format!("{} times", failed.failures)
                };
                for plan in plans.iter_mut().filter(|p| p.target.is_some()) {
                    let target = plan.target.take().unwrap_or_default();
                    plan.reason = Some(format!(
                        "the move to {target} failed {times} (revision {}: {}); next attempt at {}, sooner on a newer tag or with reconcile --once --retry-failed",
                        failed.revision,
                        failed.description,
                        failed
                            .retry_at
                            .round(jiff::Unit::Second)
                            .unwrap_or(failed.retry_at)
                    ));
                }
                return (plans, Attempt::Done(Outcome::UpToDate));
            }
        }
        let prepared = self.prepare_revision(&history, &changes).await;
        let mode = prepared.as_ref().ok().map(|p| p.mode);
        let mode_reason = prepared.as_ref().ok().and_then(|p| p.mode_reason.clone());
        // `keelson check` shows what the revision would change, document by document.
        let diff = match &prepared {
            Ok(prepared) if self.config.dry_run || block.approvals > 0 => {
                Some(super::diff::manifest_diff(
                    prepared
                        .deployed
                        .release
                        .manifest
                        .as_deref()
                        .unwrap_or_default(),
                    &prepared.manifest,
                    prepared.deployed.release.namespace(),
                ))
            }
            _ => None,
        };
        // A release that asks for approvals moves only once they are in.
        if block.approvals > 0 && prepared.is_ok() {
            let join = |f: fn(&ImagePlan) -> String| {
                changes.iter().map(|p| f(p)).collect::<Vec<_>>().join(", ")
            };
            let (image, current, target) = (
                join(|p| p.image.clone()),
                join(|p| p.current.clone()),
                join(|p| p.target.clone().unwrap_or_default()),
            );
            let gate = crate::approvals::Approvals::new(self.client.clone())
                .gate(
                    &crate::subject::Subject::release(namespace, release),
                    crate::approvals::Request {
                        image: &image,
                        current: &current,
                        target: &target,
                        required: block.approvals,
                        deadline_hours: block.approval_deadline,
                        diff: diff.as_deref().unwrap_or_default(),
                    },
                    self.config.dry_run,
                )
                .await;
            let event = match &gate {
                Ok(crate::approvals::Gate::Opened(_)) => Some("approval-requested"),
                Ok(crate::approvals::Gate::Expired(_)) => Some("approval-expired"),
                _ => None,
            };
            let hold = match gate {
                Ok(gate) => gate.hold_reason().map(str::to_string),
                Err(err) => Some(format!("approval required; {err}")),
            };
            if let Some(reason) = hold {
                drop(changes);
                for plan in plans.iter_mut().filter(|p| p.target.is_some()) {
                    plan.approval_event = event;
                    plan.held_target = plan.target.clone();
                    plan.target = None;
                    plan.changes.clear();
                    plan.diff = diff.clone();
                    plan.reason = Some(reason.clone());
                }
                return (plans, Attempt::Done(Outcome::UpToDate));
            }
        }
        let preview = if self.config.dry_run { diff } else { None };
        let attempt = match prepared {
            Ok(_) if self.config.dry_run => Attempt::Done(Outcome::UpToDate),
            Ok(prepared) => self.write_revision(prepared).await,
            Err(outcome) => Attempt::Done(outcome),
        };
        for plan in plans.iter_mut().filter(|p| p.target.is_some()) {
            plan.mode = mode.map(RenderMode::label);
            plan.mode_reason = mode_reason.clone();
            plan.diff = preview.clone();
            // A revision that cannot even be built refuses every change it would carry.
            if let (
                None,
                Attempt::Done(Outcome::Failed {
                    reason,
                    revision: None,
                }),
            ) = (mode, &attempt)
            {
                plan.reason = Some(reason.clone());
                plan.target = None;
            }
        }
        (plans, attempt)
    }

    /// Writes the revision for `changes` on top of the deployed revision.
    async fn prepare_revision<'h>(
        &self,
        history: &'h [StoredRelease],
        changes: &[&ImagePlan],
    ) -> Result<Prepared<'h>, Outcome> {
        let failed = |reason: String| Outcome::Failed {
            reason,
            revision: None,
        };
        let Some(deployed) = history
            .iter()
            .filter(|r| r.release.status() == Status::Deployed)
            .max_by_key(|r| r.release.version())
        else {
            return Err(failed("the release has no deployed revision".to_string()));
        };
        let mut config = Value::Object(deployed.release.config());
        let value_changes: Vec<&ValueChange> = changes.iter().flat_map(|p| &p.changes).collect();
        let coalesced = keel::release_values(&deployed.release);
        for change in &value_changes {
            copy_lists_from_defaults(&mut config, &coalesced, &change.path);
            set_path(&mut config, &change.path, Value::String(change.new.clone()))
                .map_err(|reason| failed(format!("cannot set {}: {reason}", change.path)))?;
        }
        let config = match config {
            Value::Object(map) => map,
            _ => Map::new(),
        };

        let old_manifest = deployed.release.manifest.clone().unwrap_or_default();
        let old_hooks = deployed.release.hooks.clone().unwrap_or_default();
        let next_version = history
            .iter()
            .map(|r| r.release.version())
            .max()
            .unwrap_or(0)
            + 1;
        let (manifest, hooks, notes, mode, mode_reason) = self
            .new_manifest(
                deployed,
                &config,
                next_version,
                changes,
                &old_manifest,
                &old_hooks,
            )
            .await?;

        Ok(Prepared {
            deployed,
            next_version,
            config,
            manifest,
            hooks,
            notes,
            mode,
            mode_reason,
            description: describe(changes, mode),
        })
    }

    /// Writes the prepared revision: pending record, apply, then deployed (or failed). A
    /// writer that finds another got there first, before it applied anything, leaves no trace
    /// and asks for a fresh read.
    async fn write_revision(&self, prepared: Prepared<'_>) -> Attempt {
        let Prepared {
            deployed,
            next_version,
            config,
            manifest,
            hooks,
            notes,
            mode,
            description,
            ..
        } = prepared;
        let name = deployed.release.name().to_string();
        let namespace = deployed.release.namespace().to_string();
        let old_manifest = deployed.release.manifest.clone().unwrap_or_default();
        let mut annotations = self
            .config
            .holder
            .as_ref()
            .map(Holder::annotations)
            .unwrap_or_default();
        annotations.insert(
            holder::DESCRIPTION_ANNOTATION.to_string(),
            fit_description(&description),
        );
        let change = RevisionChange {
            config,
            manifest: manifest.clone(),
            hooks: Some(hooks),
            notes,
            description: description.clone(),
            annotations,
        };
        let storage = self
            .storage
            .clone()
            .with_history_max(self.config.history_max);
        // Marked before the record exists, so no repair in this process ever sees it unmarked.
        let _in_flight = holder::InFlight::new(&namespace, &record_name(&name, next_version));
        failpoint::hit(Step::BeforePending).await;
        let pending = match storage.begin_upgrade(&namespace, &name, change).await {
            Ok(pending) => pending,
            Err(err) if err.is_other_writer() || matches!(err, StorageError::NoDeployed { .. }) => {
                return Attempt::Replan(error_chain(&err));
            }
            Err(err) => {
                return Attempt::Done(Outcome::Failed {
                    reason: error_chain(&err),
                    revision: None,
                });
            }
        };
        failpoint::hit(Step::AfterPending).await;
        let revision = pending.pending.release.version();
        if pending.previous.release.version() != deployed.release.version() {
            // Someone deployed another revision between our read and our write: our values
            // were computed from an older one. Nothing was applied, so the record is no
            // history: remove it and plan again from what is deployed now.
            let reason = format!(
                "revision {} was deployed while keelson planned from revision {}",
                pending.previous.release.version(),
                deployed.release.version()
            );
            return match storage.discard_pending(pending).await {
                Ok(()) => Attempt::Replan(reason),
                Err(err) => Attempt::Done(Outcome::Failed {
                    reason: format!(
                        "{reason}; removing the unapplied pending revision {revision} failed (crash repair will finish it): {}",
                        error_chain(&err)
                    ),
                    revision: Some(revision),
                }),
            };
        }
        let target = ReleaseTarget {
            name: name.clone(),
            namespace: namespace.clone(),
        };
        let method = ApplyMethod::from_record(deployed.release.apply_method.as_deref());
        let mut pending = pending;
        let mut result = self.run_hooks(&target, &mut pending, "pre-upgrade").await;
        if result.is_ok() {
            result = self
                .applier
                .apply(&target, &old_manifest, &manifest, method)
                .await
                .map(|_| ());
        }
        if result.is_ok() {
            result = self.run_hooks(&target, &mut pending, "post-upgrade").await;
        }
        if let Err(err) = result {
            let reason = error_chain(&err);
            warn!(release = %name, %namespace, revision, %reason, "upgrade failed; marking the revision failed");
            if let Err(mark) = storage.fail_upgrade(pending, &reason).await {
                warn!(release = %name, %namespace, revision, error = %error_chain(&mark), "could not mark the revision failed");
            }
            return Attempt::Done(Outcome::Failed {
                reason,
                revision: Some(revision),
            });
        }
        match storage.complete_upgrade(pending).await {
            Ok(_) => {
                failpoint::hit(Step::AfterDeploy).await;
                // History was already pruned to make room when the pending record was created,
                // as Helm's storage does; no second pass (and no extra requests) here.
                info!(release = %name, %namespace, revision, %description, "deployed");
                Attempt::Done(Outcome::Updated {
                    revision,
                    description,
                    mode,
                })
            }
            Err(err) => Attempt::Done(Outcome::Failed {
                reason: error_chain(&err),
                revision: Some(revision),
            }),
        }
    }

    /// Runs the new revision's hooks for `event` when hooks are enabled, recording each run in
    /// the pending record's `last_run` as Helm does. Off by default: an image bump re-applies
    /// the workloads, not the chart's install/upgrade jobs.
    async fn run_hooks(
        &self,
        target: &ReleaseTarget,
        pending: &mut PendingRevision,
        event: &str,
    ) -> Result<(), crate::apply::Error> {
        if !self.config.run_hooks {
            return Ok(());
        }
        let hooks = pending.pending.release.hooks.clone().unwrap_or_default();
        let specs: Vec<HookSpec> = hooks
            .iter()
            .filter(|hook| {
                hook.events
                    .as_ref()
                    .is_some_and(|events| events.iter().any(|e| e == event))
            })
            .map(|hook| HookSpec {
                name: hook.name.clone().unwrap_or_default(),
                manifest: hook.manifest.clone().unwrap_or_default(),
                weight: hook.weight.unwrap_or(0),
                delete_policies: hook.delete_policies.clone().unwrap_or_default(),
            })
            .collect();
        if specs.is_empty() {
            return Ok(());
        }
        let (runs, result) = self
            .applier
            .run_hooks(target, &specs, self.config.hook_timeout)
            .await;
        if let Some(stored_hooks) = pending.pending.release.hooks.as_mut() {
            for run in runs {
                if let Some(hook) = stored_hooks
                    .iter_mut()
                    .find(|h| h.name.as_deref() == Some(run.name.as_str()))
                {
                    hook.last_run = Some(last_run(&run));
                }
            }
        }
        result
    }

    /// The render-verify guard: re-render the deployed revision from its stored chart, config
    /// and fetched subcharts; only when that reproduces the stored manifest byte for byte is
    /// the new manifest rendered, otherwise the stored one is patched (and the reason kept).
    #[allow(clippy::type_complexity)]
    async fn new_manifest(
        &self,
        deployed: &StoredRelease,
        config: &Map<String, Value>,
        next_version: i64,
        changes: &[&ImagePlan],
        old_manifest: &str,
        old_hooks: &[Hook],
    ) -> Result<
        (
            String,
            Vec<Hook>,
            Option<String>,
            RenderMode,
            Option<String>,
        ),
        Outcome,
    > {
        // Helm keeps no subcharts in the record: fetch them at the locked versions first.
        let record_chart = deployed
            .release
            .chart
            .as_ref()
            .and_then(|chart| serde_json::to_value(chart).ok());
        let subcharts = match &record_chart {
            Some(chart) => {
                let flavor = match deployed.release.writer() {
                    Writer::Helm3 => HelmFlavor::Helm3,
                    Writer::Helm4 => HelmFlavor::Helm4,
                };
                self.subcharts.subcharts_for(chart, flavor).await
            }
            None => Ok(Vec::new()),
        };
        let rendered = match subcharts {
            Ok(subcharts) => {
                self.full_render(deployed, config, next_version, subcharts)
                    .await?
            }
            Err(reason) => Err(reason),
        };
        let reason = match rendered {
            Ok(rendered) => {
                return Ok((
                    rendered.manifest,
                    rendered.hooks,
                    Some(rendered.notes),
                    RenderMode::FullRender,
                    None,
                ));
            }
            Err(reason) => reason,
        };
        info!(release = %deployed.release.name(), namespace = %deployed.release.namespace(), %reason, "patch mode");
        let mut manifest = old_manifest.to_string();
        let mut hooks = old_hooks.to_vec();
        for plan in changes {
            let (old, new) = rendered_images(plan);
            let hook_texts: Vec<String> = hooks
                .iter()
                .map(|h| h.manifest.clone().unwrap_or_default())
                .collect();
            let (patched, patched_hooks) =
                patch_mode::patch_manifest(&manifest, &hook_texts, &old, &new).map_err(|err| {
                    Outcome::Failed {
                        reason: format!("{}: {err} ({reason})", plan.image),
                        revision: None,
                    }
                })?;
            manifest = patched;
            for (hook, text) in hooks.iter_mut().zip(patched_hooks) {
                if hook.manifest.is_some() {
                    hook.manifest = Some(text);
                }
            }
        }
        Ok((manifest, hooks, None, RenderMode::Patch, Some(reason)))
    }

    /// [`full_render`] on the blocking pool within the render time limit; the inner `Err` is
    /// the reason for patch mode, the outer one fails the release.
    async fn full_render(
        &self,
        deployed: &StoredRelease,
        config: &Map<String, Value>,
        next_version: i64,
        subcharts: Vec<crate::render::chart::Chart>,
    ) -> Result<Result<super::render::FullRender, String>, Outcome> {
        let capabilities = self
            .capabilities
            .get_or_init(|| ClusterCapabilities::discover(&self.client))
            .await;
        // Rendering is CPU work that may take long on a pathological chart: it runs on the
        // blocking pool, so other releases' updates and the controller's I/O go on meanwhile,
        // and this release fails alone when it overruns its time.
        let render_job = {
            let (deployed, config, capabilities) =
                (deployed.clone(), config.clone(), capabilities.clone());
            let limit = self.config.render_timeout;
            let lookup: Arc<dyn crate::render::engine::Lookup> =
                Arc::new(super::lookup::ClusterLookup::new(
                    self.client.clone(),
                    deployed.release.namespace(),
                ));
            tokio::task::spawn_blocking(move || {
                full_render(
                    &deployed,
                    &config,
                    next_version,
                    &capabilities,
                    limit,
                    &subcharts,
                    Some(lookup),
                )
            })
        };
        // The renderer stops itself at the limit; the margin covers reading the chart and
        // sorting the output around the templates' execution.
        let limit = self.config.render_timeout + std::time::Duration::from_secs(1);
        let rendered = match tokio::time::timeout(limit, render_job).await {
            Ok(Ok(rendered)) => rendered,
            Ok(Err(join)) => {
                return Err(Outcome::Failed {
                    reason: format!("the renderer stopped unexpectedly: {join}"),
                    revision: None,
                });
            }
            Err(_) => {
                return Err(Outcome::Failed {
                    reason: format!(
                        "rendering the chart took longer than {}s; nothing was written",
                        limit.as_secs()
                    ),
                    revision: None,
                });
            }
        };
        Ok(rendered)
    }
}

impl Updater {
    /// Plans `block`'s images without the release's history: what the registries offer under
    /// the policy, with no rollback guard. Enough to tell that nothing moves; a plan with
    /// targets must be confirmed by [`Updater::reconcile_release`], which reads the history.
    pub async fn plan_tracked(
        &self,
        release: &str,
        namespace: &str,
        block: &keel::KeelBlock,
        cache: &TagCache,
    ) -> Vec<ImagePlan> {
        let by_secret = self.pull_secret_clients(namespace, block).await;
        let registries = plan::Registries {
            namespace,
            default: &self.registry,
            by_secret: &by_secret,
        };
        plan::plan_release(release, namespace, block, &[], &registries, cache).await
    }

    /// A registry client per `imagePullSecret` the block names, with that Secret's credentials
    /// (from the release's namespace) on top of the default ones.
    async fn pull_secret_clients(
        &self,
        namespace: &str,
        block: &keel::KeelBlock,
    ) -> HashMap<String, Result<Arc<RegistryClient>, String>> {
        let secrets: Vec<String> = block
            .images
            .iter()
            .filter_map(|i| i.image_pull_secret.clone())
            .collect();
        self.secret_clients(namespace, &secrets).await
    }

    /// A registry client per named pull secret (read from `namespace`), each with that
    /// Secret's credentials on top of the default ones, or why the Secret cannot be used.
    pub async fn secret_clients(
        &self,
        namespace: &str,
        secrets: &[String],
    ) -> HashMap<String, Result<Arc<RegistryClient>, String>> {
        let mut clients = HashMap::new();
        for secret in secrets {
            if clients.contains_key(secret) {
                continue;
            }
            let key = (namespace.to_string(), secret.clone());
            let known = self.pull_clients.lock().get(&key).cloned();
            if let Some(known) = &known
                && known.read_at.elapsed() < PULL_SECRET_FRESH
            {
                clients.insert(secret.clone(), Ok(known.client.clone()));
                continue;
            }
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(self.client.clone(), namespace);
            let object = match api.get(secret).await {
                Ok(object) => object,
                Err(err) => {
                    self.pull_clients.lock().remove(&key);
                    clients.insert(
                        secret.clone(),
                        Err(format!(
                            "cannot read pull secret {namespace}/{secret}: {}",
                            error_chain(&err)
                        )),
                    );
                    continue;
                }
            };
            let resource_version = object.metadata.resource_version.clone();
            let client = match known {
                Some(known) if known.resource_version == resource_version => Ok(known.client),
                _ => self.pull_secret_client(namespace, secret, &object),
            };
            match &client {
                Ok(client) => {
                    self.pull_clients.lock().insert(
                        key,
                        PullClient {
                            read_at: std::time::Instant::now(),
                            resource_version,
                            client: client.clone(),
                        },
                    );
                }
                Err(_) => {
                    self.pull_clients.lock().remove(&key);
                }
            }
            clients.insert(secret.clone(), client);
        }
        clients
    }

    /// A registry client with the credentials of pull secret `object` on top of the default
    /// ones.
    fn pull_secret_client(
        &self,
        namespace: &str,
        secret: &str,
        object: &k8s_openapi::api::core::v1::Secret,
    ) -> Result<Arc<RegistryClient>, String> {
        let credentials = Credentials::from_secret(object)
            .map_err(|err| format!("pull secret {namespace}/{secret}: {err}"))?;
        let mut config = self.registry_config.clone();
        let mut merged = credentials;
        merged.merge(config.credentials.clone());
        config.credentials = merged;
        RegistryClient::new(config)
            .map(Arc::new)
            .map_err(|err| format!("pull secret {namespace}/{secret}: {}", error_chain(&err)))
    }

    /// Ends a pending record: deployed (the previous deployed revision superseded) or failed.
    pub(super) async fn finish_pending(
        &self,
        mut pending: StoredRelease,
        success: bool,
        description: &str,
    ) -> Result<StoredRelease, StorageError> {
        let name = pending.release.name().to_string();
        let namespace = pending.release.namespace().to_string();
        if !success {
            pending.release.set_status(Status::Failed, description);
            return self.storage.update(&pending).await;
        }
        match self.storage.deployed(&namespace, &name).await {
            Ok(mut previous) if previous.release.version() != pending.release.version() => {
                previous.release.set_status(
                    Status::Superseded,
                    previous.release.description().to_string(),
                );
                self.storage.update(&previous).await?;
            }
            Ok(_) | Err(StorageError::NoDeployed { .. }) => {}
            Err(err) => return Err(err),
        }
        pending.release.set_status(Status::Deployed, description);
        self.storage.update(&pending).await
    }
}

/// `last_run` as Helm's record writes it.
fn last_run(run: &HookRun) -> GoValue {
    use crate::storage::record::{Carried, format_rfc3339_nano};
    GoValue::Object(Carried(vec![
        (
            "started_at".to_string(),
            GoValue::String(format_rfc3339_nano(&run.started_at)),
        ),
        (
            "completed_at".to_string(),
            GoValue::String(format_rfc3339_nano(&run.completed_at)),
        ),
        (
            "phase".to_string(),
            GoValue::String(run.phase.as_str().to_string()),
        ),
    ]))
}

/// The old and new references of a plan, as a chart would render them.
fn rendered_images(plan: &ImagePlan) -> (RenderedImage, RenderedImage) {
    let split = |reference: &str| -> RenderedImage {
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_string())),
            None => (reference, None),
        };
        let (repository, tag) = match rest.rfind(':') {
            Some(colon) if !rest[colon..].contains('/') => (
                rest[..colon].to_string(),
                Some(rest[colon + 1..].to_string()),
            ),
            _ => (rest.to_string(), None),
        };
        RenderedImage {
            repository,
            tag,
            digest,
        }
    };
    let old = split(&plan.current);
    let new = split(plan.target.as_deref().unwrap_or(&plan.current));
    (old, new)
}

/// `keelson: image.tag 3.4.5 → 4.5.6 (policy all, full render)`, within Helm 4's 256 characters.
fn describe(changes: &[&ImagePlan], mode: RenderMode) -> String {
    let mut parts = Vec::new();
    let mut policies: Vec<&str> = Vec::new();
    for plan in changes {
        for change in &plan.changes {
            parts.push(format!(
                "{} {} → {}",
                change.path,
                change.old.as_deref().unwrap_or("(unset)"),
                change.new
            ));
        }
        if !policies.contains(&plan.policy.as_str()) {
            policies.push(&plan.policy);
        }
    }
    fit_description(&format!(
        "keelson: {} (policy {}, {})",
        parts.join(", "),
        policies.join("/"),
        mode.label()
    ))
}

/// A path through a list the user config does not hold (`sidecars[0].image` with `sidecars`
/// only in the chart's defaults) needs that list in the config first: lists replace defaults
/// whole when Helm coalesces, so the config gets the coalesced list, then the one change.
fn copy_lists_from_defaults(config: &mut Value, coalesced: &Value, path: &ValuePath) {
    let segments = path.segments();
    for (position, segment) in segments.iter().enumerate() {
        if !matches!(segment, PathSegment::Index(_)) {
            continue;
        }
        let prefix = ValuePath::from_segments(segments[..position].to_vec());
        if prefix.get(config).is_some() {
            continue;
        }
        if let Some(list) = prefix.get(coalesced).filter(|v| v.is_array()) {
            let _ = prefix.set(config, list.clone());
        }
    }
}

/// Sets `path` in `values` to `new`: only that path changes. A list index must name an existing
/// element: padding a list with nulls would invent entries the chart never had.
fn set_path(values: &mut Value, path: &ValuePath, new: Value) -> Result<(), String> {
    let segments = path.segments();
    for (position, segment) in segments.iter().enumerate() {
        if let PathSegment::Index(index) = segment {
            let list = ValuePath::from_segments(segments[..position].to_vec());
            let length = list.get(values).and_then(Value::as_array).map(Vec::len);
            if length.is_none_or(|length| *index >= length) {
                return Err(format!("list index {index} is out of range"));
            }
        }
    }
    path.set(values, new).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_path_changes_only_the_path() {
        let mut values = json!({"image": {"tag": "1", "pullPolicy": "Always"}, "other": [1]});
        let path = "image.tag".parse::<ValuePath>().expect("valid path");
        set_path(&mut values, &path, json!("2")).expect("set");
        assert_eq!(
            values,
            json!({"image": {"tag": "2", "pullPolicy": "Always"}, "other": [1]})
        );
    }

    #[test]
    fn set_path_creates_maps_when_the_user_config_lacks_them() {
        let mut values = json!({});
        let path = "image.tag".parse::<ValuePath>().expect("valid path");
        set_path(&mut values, &path, json!("2")).expect("set");
        assert_eq!(values, json!({"image": {"tag": "2"}}));
    }

    #[test]
    fn lists_only_in_the_chart_defaults_are_copied_before_the_change() {
        let mut config = json!({"replicaCount": 2});
        let coalesced =
            json!({"replicaCount": 2, "sidecars": [{"image": "a:1"}, {"image": "b:1"}]});
        let path = "sidecars[1].image"
            .parse::<ValuePath>()
            .expect("valid path");
        copy_lists_from_defaults(&mut config, &coalesced, &path);
        set_path(&mut config, &path, json!("b:2")).expect("set");
        assert_eq!(
            config,
            json!({"replicaCount": 2, "sidecars": [{"image": "a:1"}, {"image": "b:2"}]})
        );
    }

    #[test]
    fn set_path_follows_list_indexes() {
        let mut values = json!({"sidecars": [{"image": "a:1"}]});
        let path = "sidecars[0].image"
            .parse::<ValuePath>()
            .expect("valid path");
        set_path(&mut values, &path, json!("a:2")).expect("set");
        assert_eq!(values, json!({"sidecars": [{"image": "a:2"}]}));
        let missing = "sidecars[3].image"
            .parse::<ValuePath>()
            .expect("valid path");
        assert!(set_path(&mut values, &missing, json!("x")).is_err());
    }
}
