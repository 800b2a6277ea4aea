//! The always-on controller (`keelson run`): watches Helm's release records, checks each
//! tracked repository once per cycle on the most frequent schedule among the releases that
//! track it, takes registry webhooks, and writes new revisions through the updater — only
//! while it holds the leader Lease. Plain workloads with `keel.sh/*` labels
//! ([`workloads`]) are a second kind of tracked item on the same schedules and webhooks.

pub mod dashboard;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod releases;
mod told;
pub mod votes;
pub mod webhooks;
pub mod workloads;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::{Notify, Semaphore, watch};
use tracing::{debug, info, warn};

use crate::keel::Schedule;
use crate::notify;
use crate::registry::ImageRef;
use crate::storage::Status;
use crate::updater::{Outcome, TagCache, TagKey, Updater};

use metrics::Metrics;
use releases::{ReleaseKey, Releases, Tracking};
use workloads::Workloads;

use crate::workloads::WorkloadKey;

/// One thing the controller plans and writes: a Helm release or a plain workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    Release(ReleaseKey),
    Workload(WorkloadKey),
}

/// What started a release's plan (the `trigger` label of `keelson_checks_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Poll,
    Webhook,
    /// The release's newest revision changed (new revision, changed block, rollback).
    Change,
    /// A look at a pending newest revision (repaired when its writer is gone).
    Pending,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::Poll => "poll",
            Cause::Webhook => "webhook",
            Cause::Change => "change",
            Cause::Pending => "pending",
        }
    }
}

/// When a repository is next checked and what its last listing said.
struct RepoState {
    schedule: Schedule,
    next_due: Timestamp,
    /// The last listing and when it was fetched: reused by plans until the next check.
    last: Option<(Result<Vec<String>, String>, Timestamp)>,
}

/// Scheduling state shared by the scheduler loop, the webhooks and the workers.
#[derive(Default)]
struct Schedules {
    repos: HashMap<TagKey, RepoState>,
    /// Releases whose newest revision changed since the last wave, and whether their `keel:`
    /// settings changed (their repositories are then listed afresh).
    dirty: HashMap<ReleaseKey, bool>,
    /// The same for workloads (their images or `keel.sh/*` labels changed).
    dirty_workloads: HashMap<WorkloadKey, bool>,
    /// Webhook hints recently acted on, for collapsing duplicate deliveries.
    recent_hints: HashMap<webhooks::Hint, Instant>,
    /// When pending records were last looked at.
    last_pending_look: Option<Instant>,
}

/// Releases being planned or written, and those asked for again meanwhile.
#[derive(Default)]
struct InFlight {
    running: HashSet<Item>,
    again: HashMap<Item, (TagCache, Cause)>,
}

/// What the controller watches for: leadership, the watches' first lists, shutdown.
pub struct Signals {
    pub leading: watch::Receiver<bool>,
    /// Turns true when every watch has listed once.
    pub synced: watch::Receiver<bool>,
    pub stopping: watch::Receiver<bool>,
}

/// The controller's shared state.
pub struct Controller {
    pub updater: Updater,
    pub releases: Arc<Releases>,
    pub workloads: Arc<Workloads>,
    pub metrics: Arc<Metrics>,
    pub leading: watch::Receiver<bool>,
    /// Turns true when every watch has listed once.
    pub synced: watch::Receiver<bool>,
    schedules: Mutex<Schedules>,
    in_flight: Mutex<InFlight>,
    slots: Semaphore,
    wake: Notify,
    tz: TimeZone,
    /// Updates running now (SIGTERM waits for them).
    active: watch::Sender<usize>,
    stopping: watch::Receiver<bool>,
    /// The leader Lease, read by a standby to hand webhooks on to the leader.
    pub leader_lease: Option<(kube::Api<k8s_openapi::api::coordination::v1::Lease>, String)>,
    /// Chat/webhook notifications and Kubernetes Events.
    notifier: crate::notify::Notifier,
    /// What chat receivers were last told per release or workload (planned targets, repeated
    /// failures), so each is said once.
    told: Mutex<told::Told<Item>>,
    /// Each release's latest plan (targets, or why held), for the dashboard.
    pub last_plans: Mutex<HashMap<ReleaseKey, Vec<crate::updater::ImagePlan>>>,
}

/// How often releases with a pending newest revision are looked at (repaired when their
/// writer is gone). A live writer's Lease outlasts this, so its record is only ever skipped.
const PENDING_LOOK: Duration = Duration::from_secs(5);

/// How long a webhook delivery counts as a duplicate of an earlier identical one.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A spread of up to a tenth of the period (at most 30 s), fixed per repository, so many
/// repositories on one schedule do not all hit their registries in the same second.
fn jitter(key: &TagKey, period: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let span = (period / 10).min(Duration::from_secs(30));
    if span.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(hasher.finish() % (span.as_millis() as u64).max(1))
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

impl Controller {
    // Each argument is a distinct shared service the binary wires once; a builder would only
    // restate them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        updater: Updater,
        releases: Arc<Releases>,
        workloads: Arc<Workloads>,
        metrics: Arc<Metrics>,
        signals: Signals,
        max_concurrent_updates: usize,
        leader_lease: Option<(kube::Api<k8s_openapi::api::coordination::v1::Lease>, String)>,
        notifier: crate::notify::Notifier,
    ) -> Arc<Self> {
        let Signals {
            leading,
            synced,
            stopping,
        } = signals;
        Arc::new(Self {
            updater,
            releases,
            workloads,
            metrics,
            leading,
            synced,
            schedules: Mutex::new(Schedules::default()),
            in_flight: Mutex::new(InFlight::default()),
            slots: Semaphore::new(max_concurrent_updates.max(1)),
            wake: Notify::new(),
            tz: TimeZone::try_system().unwrap_or(TimeZone::UTC),
            active: watch::Sender::new(0),
            stopping,
            leader_lease,
            notifier,
            last_plans: Mutex::new(HashMap::new()),
            told: Mutex::new(told::Told::default()),
        })
    }

    fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// A release's newest revision changed: plan it at the next turn of the loop.
    pub fn release_changed(&self, key: ReleaseKey, settings_changed: bool) {
        *lock(&self.schedules).dirty.entry(key).or_default() |= settings_changed;
        self.wake.notify_one();
    }

    /// A workload's images or `keel.sh/*` labels changed: plan it at the next turn of the loop.
    pub fn workload_changed(&self, key: WorkloadKey, settings_changed: bool) {
        *lock(&self.schedules)
            .dirty_workloads
            .entry(key)
            .or_default() |= settings_changed;
        self.wake.notify_one();
    }

    /// Brings the repository schedules in line with the tracked releases: one entry per
    /// repository some polling release tracks, on the most frequent of their schedules.
    fn refresh_schedules(&self, now: Timestamp) {
        let mut wanted: HashMap<TagKey, Schedule> = HashMap::new();
        let releases = self.releases.tracked();
        let workloads = self.workloads.tracked();
        self.forget_untracked(&releases, &workloads);
        for release in &releases {
            if !release.polls() {
                continue;
            }
            for key in &release.repositories {
                match wanted.get(key) {
                    Some(current)
                        if current.period(&self.tz) <= release.schedule.period(&self.tz) => {}
                    _ => {
                        wanted.insert(key.clone(), release.schedule.clone());
                    }
                }
            }
        }
        for workload in &workloads {
            let Ok(Some(settings)) = &workload.settings else {
                continue;
            };
            if !crate::workloads::update::polls(workload) {
                continue;
            }
            // As for releases: no `keel.sh/pollSchedule` means `--default-schedule`.
            let schedule = if settings.poll_schedule.is_some() {
                &settings.schedule
            } else {
                self.releases.default_schedule()
            };
            for key in crate::workloads::update::repositories(workload) {
                match wanted.get(&key) {
                    Some(current) if current.period(&self.tz) <= schedule.period(&self.tz) => {}
                    _ => {
                        wanted.insert(key, schedule.clone());
                    }
                }
            }
        }
        let mut schedules = lock(&self.schedules);
        schedules.repos.retain(|key, _| wanted.contains_key(key));
        for (key, schedule) in wanted {
            let tz = self.tz.clone();
            let state = schedules
                .repos
                .entry(key.clone())
                .or_insert_with(|| RepoState {
                    schedule: schedule.clone(),
                    next_due: now,
                    last: None,
                });
            if state.schedule != schedule {
                // A more (or less) frequent schedule: the next check follows it from the last.
                let from = state.last.as_ref().map_or(now, |(_, at)| *at);
                state.next_due = next_time(&schedule, from, &tz, &key).max(now);
                state.schedule = schedule;
            }
        }
    }

    /// Drops what is remembered about releases and workloads the watches no longer track, so
    /// a long-running controller's memory follows what it tracks, not what it ever saw.
    fn forget_untracked(
        &self,
        releases: &[Arc<releases::TrackedRelease>],
        workloads: &[Arc<crate::workloads::Workload>],
    ) {
        let releases: HashSet<ReleaseKey> = releases
            .iter()
            .map(|r| (r.namespace.clone(), r.name.clone()))
            .collect();
        let workloads: HashSet<WorkloadKey> = workloads.iter().map(|w| w.key()).collect();
        lock(&self.told).retain(|item| match item {
            Item::Release(key) => releases.contains(key),
            Item::Workload(key) => workloads.contains(key),
        });
        lock(&self.last_plans).retain(|key, _| releases.contains(key));
    }

    /// The scheduler: wakes at the earliest due repository or when something changed, and
    /// starts a wave of plans. Runs until shutdown.
    pub async fn run_scheduler(self: Arc<Self>) {
        let mut leading = self.leading.clone();
        let mut stopping = self.stopping.clone();
        loop {
            if self.stopping() {
                return;
            }
            let now = Timestamp::now();
            self.refresh_schedules(now);
            let mut sleep_for = Duration::from_secs(3600);
            if self.is_leader() && *self.synced.borrow() {
                self.start_due_wave(now);
            }
            if let Some(next) = lock(&self.schedules)
                .repos
                .values()
                .map(|r| r.next_due)
                .min()
            {
                let wait = next.duration_since(Timestamp::now());
                sleep_for = Duration::try_from(wait)
                    .unwrap_or(Duration::ZERO)
                    .min(sleep_for);
            }
            if self
                .releases
                .tracked()
                .iter()
                .any(|r| r.status.is_pending())
            {
                sleep_for = sleep_for.min(PENDING_LOOK);
            }
            if !self.is_leader() {
                sleep_for = Duration::from_secs(3600);
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep_for.max(Duration::from_millis(20))) => {}
                _ = self.wake.notified() => {}
                _ = leading.changed() => {
                    if self.is_leader() {
                        // A new leader checks everything once: the old one may have died
                        // mid-cycle.
                        let mut schedules = lock(&self.schedules);
                        for repo in schedules.repos.values_mut() {
                            repo.next_due = Timestamp::now();
                        }
                        let keys: Vec<ReleaseKey> = self
                            .releases
                            .tracked()
                            .iter()
                            .map(|r| (r.namespace.clone(), r.name.clone()))
                            .collect();
                        schedules.dirty.extend(keys.into_iter().map(|k| (k, false)));
                        let keys: Vec<WorkloadKey> =
                            self.workloads.tracked().iter().map(|w| w.key()).collect();
                        schedules
                            .dirty_workloads
                            .extend(keys.into_iter().map(|k| (k, false)));
                    }
                }
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    }

    /// Plans every release that tracks a due repository (poll trigger) or changed.
    fn start_due_wave(self: &Arc<Self>, now: Timestamp) {
        let cache = TagCache::default();
        let tracked = self.releases.tracked();
        let workloads = self.workloads.tracked();
        let (due, dirty, dirty_workloads) = {
            let mut schedules = lock(&self.schedules);
            let dirty: HashMap<ReleaseKey, bool> = std::mem::take(&mut schedules.dirty);
            let dirty_workloads: HashMap<WorkloadKey, bool> =
                std::mem::take(&mut schedules.dirty_workloads);
            // A polling release whose settings changed (a new policy, say) is planned from
            // fresh listings, as if its repositories were due.
            let mut fresh: HashSet<TagKey> = HashSet::new();
            for release in &tracked {
                let key = (release.namespace.clone(), release.name.clone());
                if release.polls()
                    && !release.status.is_pending()
                    && dirty.get(&key).copied().unwrap_or(false)
                {
                    fresh.extend(release.repositories.iter().cloned());
                }
            }
            for workload in &workloads {
                if crate::workloads::update::polls(workload)
                    && dirty_workloads
                        .get(&workload.key())
                        .copied()
                        .unwrap_or(false)
                {
                    fresh.extend(crate::workloads::update::repositories(workload));
                }
            }
            let tz = self.tz.clone();
            let mut due = HashSet::new();
            for (key, repo) in schedules.repos.iter_mut() {
                if repo.next_due <= now {
                    due.insert(key.clone());
                    repo.next_due = next_time(&repo.schedule, now, &tz, key);
                } else if fresh.contains(key) {
                    due.insert(key.clone());
                } else if let Some((result, _)) = &repo.last {
                    // Fresh until its next check: plans in this wave reuse it.
                    cache.seed_tags(key.clone(), result.clone());
                }
            }
            (due, dirty, dirty_workloads)
        };
        // Pending records are looked at every PENDING_LOOK whatever the trigger: the updater
        // repairs those whose writer is gone and skips those of a live writer.
        let any_pending = tracked.iter().any(|r| r.status.is_pending());
        let pending_look = any_pending && {
            let mut schedules = lock(&self.schedules);
            let last = schedules.last_pending_look;
            let due_now = last.is_none_or(|at| at.elapsed() >= PENDING_LOOK);
            if due_now {
                schedules.last_pending_look = Some(Instant::now());
            }
            due_now
        };
        if due.is_empty() && dirty.is_empty() && dirty_workloads.is_empty() && !pending_look {
            return;
        }
        let mut wave: Vec<(Item, Cause)> = Vec::new();
        for release in tracked {
            let key = (release.namespace.clone(), release.name.clone());
            let polled = release.polls() && release.repositories.iter().any(|r| due.contains(r));
            if polled && !dirty.contains_key(&key) && !release.status.is_pending() {
                wave.push((Item::Release(key), Cause::Poll));
            } else if release.status.is_pending() {
                // Another writer is mid-upgrade: wait for its next record, keeping whether
                // the settings changed so that plan still lists afresh. A record whose writer
                // died is repaired by the periodic look below.
                if let Some(true) = dirty.get(&key) {
                    lock(&self.schedules).dirty.insert(key.clone(), true);
                }
                // Not our own update in flight: that one ends by itself.
                let ours = lock(&self.in_flight)
                    .running
                    .contains(&Item::Release(key.clone()));
                if (polled || pending_look) && !ours {
                    wave.push((Item::Release(key), Cause::Pending));
                }
            } else if dirty.contains_key(&key) {
                // A webhook-only release is re-planned on a change only from listings already
                // at hand: `trigger: default` never polls its registry.
                let cached = release.repositories.iter().all(|r| cache.has_tags(r));
                if release.polls() || cached {
                    wave.push((Item::Release(key), Cause::Change));
                }
            }
        }
        for workload in &workloads {
            let key = workload.key();
            let repositories = crate::workloads::update::repositories(workload);
            let polls = crate::workloads::update::polls(workload);
            if dirty_workloads.contains_key(&key) {
                // As for releases: webhook-only workloads re-plan only from listings at hand.
                if polls || repositories.iter().all(|r| cache.has_tags(r)) {
                    wave.push((Item::Workload(key), Cause::Change));
                }
            } else if polls && repositories.iter().any(|r| due.contains(r)) {
                wave.push((Item::Workload(key), Cause::Poll));
            }
        }
        debug!(
            due = due.len(),
            dirty = dirty.len(),
            items = wave.len(),
            "starting a wave"
        );
        self.clone().run_wave(wave, cache, due);
    }

    /// Plans (and writes) `wave`'s releases on the worker pool with one shared tag cache; the
    /// listings it fetched are kept for the next waves.
    fn run_wave(self: Arc<Self>, wave: Vec<(Item, Cause)>, cache: TagCache, due: HashSet<TagKey>) {
        tokio::spawn(async move {
            let started = Timestamp::now();
            let mut tasks = tokio::task::JoinSet::new();
            for (key, cause) in wave {
                let this = self.clone();
                let cache = cache.clone();
                tasks.spawn(async move { this.submit(key, cache, cause).await });
            }
            while tasks.join_next().await.is_some() {}
            let mut schedules = lock(&self.schedules);
            for (key, result) in cache.tag_results() {
                if let Some(repo) = schedules.repos.get_mut(&key)
                    && (due.contains(&key) || repo.last.is_none())
                {
                    repo.last = Some((result, started));
                }
            }
        });
    }

    /// Runs one item's plan now, or after the plan already running for it.
    async fn submit(self: Arc<Self>, key: Item, cache: TagCache, cause: Cause) {
        {
            let mut in_flight = lock(&self.in_flight);
            if in_flight.running.contains(&key) {
                in_flight.again.insert(key, (cache, cause));
                return;
            }
            in_flight.running.insert(key.clone());
        }
        let (mut cache, mut cause) = (cache, cause);
        loop {
            match &key {
                Item::Release(release) => self.reconcile(release, &cache, cause).await,
                Item::Workload(workload) => self.reconcile_workload(workload, &cache, cause).await,
            }
            let mut in_flight = lock(&self.in_flight);
            match in_flight.again.remove(&key) {
                Some((next_cache, next_cause)) => (cache, cause) = (next_cache, next_cause),
                None => {
                    in_flight.running.remove(&key);
                    return;
                }
            }
        }
    }

    /// One release: a plan from what the watch holds; the record is read and the revision
    /// written only when an image moves (or a pending record needs attention).
    async fn reconcile(&self, key: &ReleaseKey, cache: &TagCache, cause: Cause) {
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        if self.stopping() || !self.is_leader() {
            return;
        }
        let Some(Tracking::Tracked(release)) = self.releases.get(key) else {
            return;
        };
        let started = Instant::now();
        self.metrics
            .inc("keelson_checks_total", &[("trigger", cause.label())]);
        if release.status == Status::Deployed {
            let plans = self
                .updater
                .plan_tracked(&release.name, &release.namespace, &release.block, cache)
                .await;
            lock(&self.last_plans).insert(key.clone(), plans.clone());
            if plans.iter().all(|p| p.target.is_none()) {
                for plan in plans.iter().filter(|p| p.reason.is_some()) {
                    debug!(release = %release.name, namespace = %release.namespace, image = %plan.image, reason = plan.reason.as_deref().unwrap_or_default(), "held back");
                }
                self.metrics
                    .inc("keelson_updates_total", &[("result", "up_to_date")]);
                self.metrics
                    .observe_reconcile(started.elapsed().as_secs_f64());
                return;
            }
        }
        // Something moves (or the newest revision is not deployed): read the record itself,
        // fresh from the apiserver, and let the updater decide and write.
        self.active.send_modify(|n| *n += 1);
        let outcome = match self
            .updater
            .storage
            .driver()
            .get(&release.namespace, &release.name, release.version)
            .await
        {
            Ok(stored) => Some(self.updater.reconcile_release(stored, cache).await),
            Err(err) => {
                warn!(release = %release.name, namespace = %release.namespace, error = %crate::updater::plan::error_chain(&err), "cannot read the newest revision");
                self.metrics
                    .inc("keelson_updates_total", &[("result", "failed")]);
                None
            }
        };
        self.active.send_modify(|n| *n -= 1);
        self.metrics
            .observe_reconcile(started.elapsed().as_secs_f64());
        let Some(outcome) = outcome else {
            return;
        };
        lock(&self.last_plans).insert(key.clone(), outcome.plans.clone());
        let (name, namespace) = (&outcome.release, &outcome.namespace);
        let result = match &outcome.outcome {
            Outcome::Updated {
                revision,
                description,
                ..
            } => {
                for plan in outcome.plans.iter().filter(|p| p.target.is_some()) {
                    info!(release = %name, %namespace, image = %plan.image, old = %plan.current, new = plan.target.as_deref().unwrap_or_default(), revision, cause = cause.label(), "updated");
                }
                debug!(release = %name, %namespace, revision, %description, "revision deployed");
                "updated"
            }
            Outcome::UpToDate => "up_to_date",
            Outcome::Failed { reason, revision } => {
                warn!(release = %name, %namespace, revision = revision.unwrap_or_default(), %reason, "update failed");
                "failed"
            }
            Outcome::NotTracked { .. } => "not_tracked",
            Outcome::Busy { reason } => {
                info!(release = %name, %namespace, %reason, "busy; trying again next cycle");
                "busy"
            }
            Outcome::Repaired { revision, status } => {
                info!(release = %name, %namespace, revision, status = status.as_str(), "repaired a pending revision");
                self.metrics.inc("keelson_pending_repaired_total", &[]);
                "repaired"
            }
        };
        self.metrics
            .inc("keelson_updates_total", &[("result", result)]);
        self.tell(&release, &outcome).await;
    }

    /// Notifications and a Kubernetes Event for an update that was written or failed.
    async fn tell(
        &self,
        release: &releases::TrackedRelease,
        outcome: &crate::updater::ReleaseOutcome,
    ) {
        self.announce_planned(release, outcome);
        let item = Item::Release((outcome.namespace.clone(), outcome.release.clone()));
        match &outcome.outcome {
            Outcome::Updated { .. } => lock(&self.told).succeeded(&item),
            Outcome::Failed { reason, .. }
                if !lock(&self.told).failed(&item, reason, Instant::now()) =>
            {
                debug!(release = %outcome.release, namespace = %outcome.namespace, "failed again for the same reason; not told again");
                return;
            }
            _ => {}
        }
        let approval = outcome.plans.iter().find_map(|p| p.approval_event);
        let (kind, revision, reason) = match (&outcome.outcome, approval) {
            (Outcome::Updated { revision, .. }, _) => {
                (notify::Kind::UpdateApplied, Some(*revision), None)
            }
            (Outcome::Failed { reason, revision }, _) => {
                (notify::Kind::UpdateFailed, *revision, Some(reason.clone()))
            }
            (_, Some("approval-requested")) => (
                notify::Kind::ApprovalRequested,
                None,
                outcome.plans.iter().find_map(|p| p.reason.clone()),
            ),
            (_, Some("approval-expired")) => (
                notify::Kind::ApprovalExpired,
                None,
                outcome.plans.iter().find_map(|p| p.reason.clone()),
            ),
            _ => return,
        };
        let images: Vec<(String, String)> = outcome
            .plans
            .iter()
            .filter_map(|p| {
                p.target
                    .as_ref()
                    .or(p.held_target.as_ref())
                    .map(|t| (p.current.clone(), t.clone()))
            })
            .collect();
        let release_notes = release
            .block
            .images
            .iter()
            .filter_map(|i| i.release_notes.clone())
            .collect();
        let message = notify::Notification {
            kind,
            subject: crate::subject::Subject::release(&outcome.namespace, &outcome.release),
            images,
            revision,
            reason,
            release_notes,
            channels: release.block.notification_channels.clone(),
        };
        // The Event goes on the record of the revision it is about (the newest otherwise).
        let version = revision.unwrap_or(release.version);
        let object = self.record_reference(&outcome.namespace, &outcome.release, version);
        self.notifier.event(&message, object).await;
        self.notifier.send(message);
    }

    /// The release record an Event about `release` at `version` goes on.
    fn record_reference(
        &self,
        namespace: &str,
        release: &str,
        version: i64,
    ) -> k8s_openapi::api::core::v1::ObjectReference {
        let object_kind = match self.updater.storage.driver().kind() {
            crate::storage::DriverKind::Secret => "Secret",
            crate::storage::DriverKind::ConfigMap => "ConfigMap",
        };
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some(object_kind.to_string()),
            name: Some(crate::storage::driver::record_name(release, version)),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        }
    }

    /// Notifications and a Kubernetes Event on the workload itself for what one plan of it
    /// did: planned (once per target), applied, failed, an approval request opened or expired.
    async fn tell_workload(
        &self,
        workload: &crate::workloads::Workload,
        outcome: &crate::workloads::WorkloadOutcome,
    ) {
        use crate::workloads::WorkloadResult;
        let moves: Vec<(String, String)> = match &outcome.result {
            WorkloadResult::Updated { changes } => changes
                .iter()
                .map(|c| (c.old.clone(), c.new.clone()))
                .collect(),
            _ => outcome
                .plans
                .iter()
                .filter_map(|p| {
                    p.target
                        .as_ref()
                        .or(p.held_target.as_ref())
                        .map(|t| (p.current.clone(), t.clone()))
                })
                .collect(),
        };
        let approval = outcome.plans.iter().find_map(|p| p.approval_event);
        let held_reason = || outcome.plans.iter().find_map(|p| p.reason.clone());
        let mut kinds: Vec<(notify::Kind, Option<String>)> = Vec::new();
        let held = outcome.plans.iter().any(|p| p.held_target.is_some());
        if !moves.is_empty() && (held || matches!(outcome.result, WorkloadResult::Updated { .. })) {
            let target = moves
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if lock(&self.told).planned(&Item::Workload(outcome.key.clone()), &target) {
                kinds.push((notify::Kind::UpdatePlanned, None));
            }
        }
        let item = Item::Workload(outcome.key.clone());
        match (&outcome.result, approval) {
            (WorkloadResult::Updated { .. }, _) => {
                lock(&self.told).succeeded(&item);
                kinds.push((notify::Kind::UpdateApplied, None))
            }
            (WorkloadResult::Failed { reason }, _)
                if lock(&self.told).failed(&item, reason, Instant::now()) =>
            {
                kinds.push((notify::Kind::UpdateFailed, Some(reason.clone())))
            }
            (WorkloadResult::Failed { .. }, _) => {}
            (_, Some("approval-requested")) => {
                kinds.push((notify::Kind::ApprovalRequested, held_reason()))
            }
            (_, Some("approval-expired")) => {
                kinds.push((notify::Kind::ApprovalExpired, held_reason()))
            }
            _ => {}
        }
        for (kind, reason) in kinds {
            let message = notify::Notification {
                kind,
                subject: workload.as_subject(),
                images: moves.clone(),
                revision: None,
                reason,
                release_notes: Vec::new(),
                channels: workload.notify_channels(),
            };
            self.notifier
                .event(&message, workload.object_reference())
                .await;
            self.notifier.send(message);
        }
    }

    /// One workload: planned from what the watch holds, patched when an image moves (the patch
    /// is guarded by the resourceVersion planned from).
    async fn reconcile_workload(&self, key: &WorkloadKey, cache: &TagCache, cause: Cause) {
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        if self.stopping() || !self.is_leader() {
            return;
        }
        let Some(workload) = self.workloads.get(key) else {
            return;
        };
        let started = Instant::now();
        self.metrics
            .inc("keelson_checks_total", &[("trigger", cause.label())]);
        self.active.send_modify(|n| *n += 1);
        let outcome = crate::workloads::update::reconcile(&self.updater, &workload, cache).await;
        self.active.send_modify(|n| *n -= 1);
        self.metrics
            .observe_reconcile(started.elapsed().as_secs_f64());
        self.tell_workload(&workload, &outcome).await;
        let subject = outcome.subject();
        use crate::workloads::update::WorkloadResult;
        let result = match &outcome.result {
            WorkloadResult::Updated { changes } => {
                for change in changes {
                    info!(workload = %subject, container = %change.name, old = %change.old, new = %change.new, cause = cause.label(), "updated");
                }
                "updated"
            }
            WorkloadResult::UpToDate => {
                for plan in outcome.plans.iter().filter(|p| p.reason.is_some()) {
                    debug!(workload = %subject, container = %plan.container, reason = plan.reason.as_deref().unwrap_or_default(), "held back");
                }
                "up_to_date"
            }
            WorkloadResult::ThroughRelease { .. } | WorkloadResult::BadSettings { .. } => {
                "not_tracked"
            }
            WorkloadResult::Busy { reason, .. } => {
                info!(workload = %subject, %reason, "busy; trying again next cycle");
                "busy"
            }
            WorkloadResult::Failed { reason } => {
                warn!(workload = %subject, %reason, "update failed");
                "failed"
            }
        };
        self.metrics
            .inc("keelson_updates_total", &[("result", result)]);
    }

    /// A webhook's hints: each confirmed against the registry, then every release tracking the
    /// repository is planned with that fresh listing. Returns a short answer per hint.
    pub async fn handle_hints(self: &Arc<Self>, hints: Vec<webhooks::Hint>) -> Vec<HintAnswer> {
        let mut answers = Vec::new();
        for hint in hints {
            answers.push(self.handle_hint(hint).await);
        }
        answers
    }

    async fn handle_hint(self: &Arc<Self>, hint: webhooks::Hint) -> HintAnswer {
        let answer = |status: &'static str, releases: usize| HintAnswer {
            repository: hint.repository.clone(),
            tag: hint.tag.clone(),
            status,
            releases,
        };
        let reference = match ImageRef::parse(&hint.repository) {
            Ok(reference) => reference,
            Err(_) => return answer("invalid repository", 0),
        };
        let repository = reference.repository();
        let tracking: Vec<_> = self
            .releases
            .tracked()
            .into_iter()
            .filter(|r| r.repositories.iter().any(|k| k.repository == repository))
            .collect();
        let tracking_workloads: Vec<_> = self
            .workloads
            .tracked()
            .into_iter()
            .filter(|w| {
                crate::workloads::update::repositories(w)
                    .iter()
                    .any(|k| k.repository == repository)
            })
            .collect();
        if tracking.is_empty() && tracking_workloads.is_empty() {
            return answer("not tracked", 0);
        }
        let tracked_count = tracking.len() + tracking_workloads.len();
        {
            let mut schedules = lock(&self.schedules);
            let now = Instant::now();
            schedules
                .recent_hints
                .retain(|_, at| now.duration_since(*at) < DUPLICATE_WINDOW);
            if schedules.recent_hints.contains_key(&hint) {
                return answer("duplicate", tracked_count);
            }
        }
        // Confirm the tag with the registry: one listing, then shared by every plan below.
        let key = TagKey {
            scope: String::new(),
            repository: repository.clone(),
        };
        let cache = TagCache::default();
        let listing = self
            .updater
            .registry
            .list_tags(&reference)
            .await
            .map_err(|err| {
                format!(
                    "cannot list tags of {repository}: {}",
                    crate::updater::plan::error_chain(&err)
                )
            });
        match &listing {
            Ok(tags) if tags.contains(&hint.tag) => {}
            Ok(_) => return answer("unknown tag", 0),
            Err(reason) => {
                warn!(repository = %repository, %reason, "cannot confirm a webhook's tag");
                return answer("registry unavailable", 0);
            }
        }
        if let Some(digest) = &hint.digest
            && let Ok(found) = self.updater.registry.digest(&reference, &hint.tag).await
            && found != *digest
        {
            return answer("digest mismatch", 0);
        }
        cache.seed_tags(key.clone(), listing.clone());
        {
            let mut schedules = lock(&self.schedules);
            schedules.recent_hints.insert(hint.clone(), Instant::now());
            for (other, repo) in schedules.repos.iter_mut() {
                if *other == key {
                    repo.last = Some((listing.clone(), Timestamp::now()));
                } else if let Some((result, _)) = &repo.last {
                    cache.seed_tags(other.clone(), result.clone());
                }
            }
        }
        if !self.is_leader() {
            return answer("not the leader", tracked_count);
        }
        let mut wave: Vec<(Item, Cause)> = tracking
            .iter()
            .map(|r| {
                (
                    Item::Release((r.namespace.clone(), r.name.clone())),
                    Cause::Webhook,
                )
            })
            .collect();
        wave.extend(
            tracking_workloads
                .iter()
                .map(|w| (Item::Workload(w.key()), Cause::Webhook)),
        );
        let count = wave.len();
        self.clone().run_wave(wave, cache, HashSet::new());
        answer("accepted", count)
    }

    /// Copies the registry client's answer counts into the metrics.
    pub fn publish_registry_counts(&self) {
        for ((host, code), count) in self.updater.registry.answers_by_status() {
            let code = code.to_string();
            self.metrics.set_counter(
                "keelson_registry_requests_total",
                &[("registry", &host), ("code", &code)],
                count as f64,
            );
        }
        let stats = self.updater.subcharts.stats();
        for (source, count) in [
            ("download", stats.downloads),
            ("index", stats.index_downloads),
            ("disk", stats.disk_hits),
            ("memory", stats.memory_hits),
        ] {
            self.metrics.set_counter(
                "keelson_subchart_fetches_total",
                &[("source", source)],
                count as f64,
            );
        }
    }

    /// Waits until no update is being written (SIGTERM lets the one in flight finish).
    pub async fn drained(&self, limit: Duration) -> bool {
        let mut active = self.active.subscribe();
        tokio::time::timeout(limit, active.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }
}

/// What the controller did with one webhook hint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HintAnswer {
    pub repository: String,
    pub tag: String,
    pub status: &'static str,
    pub releases: usize,
}

fn next_time(schedule: &Schedule, from: Timestamp, tz: &TimeZone, key: &TagKey) -> Timestamp {
    match schedule.next_after(from, tz) {
        Some(next) => add(next, jitter(key, schedule.period(tz))),
        // A cron expression that never fires again: check yearly rather than never.
        None => add(from, Duration::from_secs(366 * 86_400)),
    }
}

impl Controller {
    /// A vote was cast through the controller (API or dashboard): the release or workload is
    /// planned at once (a complete approval moves it), and people are told.
    pub async fn voted(&self, approval: &crate::approvals::Approval) {
        let subject = approval.of();
        let workload_key = match &subject {
            crate::subject::Subject::Release { namespace, name } => {
                self.release_changed((namespace.clone(), name.clone()), false);
                None
            }
            crate::subject::Subject::Workload {
                kind,
                namespace,
                name,
            } => crate::workloads::Kind::parse(kind).map(|kind| {
                let key = (kind, namespace.clone(), name.clone());
                self.workload_changed(key.clone(), false);
                key
            }),
        };
        let kind = match approval.state {
            crate::approvals::State::Approved => notify::Kind::ApprovalApproved,
            crate::approvals::State::Rejected => notify::Kind::ApprovalRejected,
            _ => return,
        };
        let mut message = notify::Notification {
            kind,
            subject: subject.clone(),
            images: vec![(approval.current.clone(), approval.target.clone())],
            revision: None,
            reason: Some(format!("votes: {}", approval.votes.join(", "))),
            release_notes: Vec::new(),
            channels: Vec::new(),
        };
        // The Event goes where the subject's other Events go: the release's newest record, or
        // the workload.
        let object = match (&subject, workload_key) {
            (crate::subject::Subject::Release { namespace, name }, _) => {
                match self.releases.get(&(namespace.clone(), name.clone())) {
                    Some(Tracking::Tracked(release)) => {
                        message.channels = release.block.notification_channels.clone();
                        Some(self.record_reference(namespace, name, release.version))
                    }
                    _ => None,
                }
            }
            (_, Some(key)) => self.workloads.get(&key).map(|workload| {
                message.channels = workload.notify_channels();
                workload.object_reference()
            }),
            _ => None,
        };
        if let Some(object) = object {
            self.notifier.event(&message, object).await;
        }
        self.notifier.send(message);
    }

    /// The namespaces whose approval requests the API and the dashboard list: those of
    /// releases and workloads that ask for approvals.
    pub fn approval_namespaces(&self) -> Vec<String> {
        let mut namespaces: Vec<String> = self
            .releases
            .tracked()
            .iter()
            .filter(|r| r.block.approvals > 0)
            .map(|r| r.namespace.clone())
            .collect();
        namespaces.extend(
            self.workloads
                .tracked()
                .iter()
                .filter(|w| matches!(&w.settings, Ok(Some(s)) if s.approvals > 0))
                .map(|w| w.namespace.clone()),
        );
        namespaces.sort();
        namespaces.dedup();
        namespaces
    }
}

impl Controller {
    /// "Update planned", once per release and target, when the updater writes or an approval
    /// holds the move.
    fn announce_planned(
        &self,
        release: &releases::TrackedRelease,
        outcome: &crate::updater::ReleaseOutcome,
    ) {
        let moves: Vec<(String, String)> = outcome
            .plans
            .iter()
            .filter_map(|p| {
                p.target
                    .as_ref()
                    .or(p.held_target.as_ref())
                    .map(|t| (p.current.clone(), t.clone()))
            })
            .collect();
        let written = matches!(
            outcome.outcome,
            Outcome::Updated { .. }
                | Outcome::Failed {
                    revision: Some(_),
                    ..
                }
        );
        if moves.is_empty() || !(written || outcome.plans.iter().any(|p| p.held_target.is_some())) {
            return;
        }
        let key = Item::Release((outcome.namespace.clone(), outcome.release.clone()));
        let target = moves
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if !lock(&self.told).planned(&key, &target) {
            return;
        }
        self.notifier.send(notify::Notification {
            kind: notify::Kind::UpdatePlanned,
            subject: crate::subject::Subject::release(&outcome.namespace, &outcome.release),
            images: moves,
            revision: None,
            reason: None,
            release_notes: release
                .block
                .images
                .iter()
                .filter_map(|i| i.release_notes.clone())
                .collect(),
            channels: release.block.notification_channels.clone(),
        });
    }
}
