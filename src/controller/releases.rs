//! The controller's view of the releases: a watch on Helm's release records that keeps, per
//! release, only the records' metadata and what the newest revision's `keel:` block says.
//! A record is decoded only when the newest record's resourceVersion changes; payloads are
//! dropped at once, so memory stays small however many revisions a cluster keeps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::keel::{self, KeelBlock, Schedule, Trigger};
use crate::registry::ImageRef;
use crate::storage::driver::{RecordObject, decode_object};
use crate::storage::{DriverKind, Status, StoredRelease};
use crate::updater::TagKey;

use super::metrics::Metrics;

/// `(namespace, release name)`.
pub type ReleaseKey = (String, String);

/// What the controller knows of one release's newest revision.
#[derive(Debug, Clone)]
pub enum Tracking {
    /// No `keel:` block (or the newest record cannot be decoded: see the log).
    Untracked,
    /// A `keel:` block that is refused, and why.
    Invalid(String),
    Tracked(Arc<TrackedRelease>),
}

/// A release with a valid `keel:` block.
#[derive(Debug)]
pub struct TrackedRelease {
    pub namespace: String,
    pub name: String,
    /// The newest revision's number and status.
    pub version: i64,
    pub status: Status,
    /// The newest revision's description and time, as the last line of `helm history`.
    pub description: String,
    pub updated: String,
    pub block: KeelBlock,
    /// The repositories its images come from, as the tag cache keys them.
    pub repositories: Vec<TagKey>,
    /// The block's schedule (the controller's default when the block sets none).
    pub schedule: Schedule,
}

impl TrackedRelease {
    pub fn polls(&self) -> bool {
        self.block.trigger == Trigger::Poll
    }
}

#[derive(Debug, Clone)]
struct RecordMeta {
    version: i64,
    resource_version: String,
}

#[derive(Debug)]
struct Entry {
    /// Record object name → metadata, for every revision the watch has seen.
    records: HashMap<String, RecordMeta>,
    /// The resourceVersion of the record `tracking` was read from.
    decoded: Option<String>,
    tracking: Tracking,
}

impl Entry {
    fn newest(&self) -> Option<(&String, &RecordMeta)> {
        self.records.iter().max_by_key(|(_, meta)| meta.version)
    }
}

/// Every release the controller's watches cover.
pub struct Releases {
    entries: Mutex<HashMap<ReleaseKey, Entry>>,
    default_schedule: Schedule,
    metrics: Arc<Metrics>,
}

/// Sent when a release's tracking changed (new revision, changed block, rollback, deletion),
/// with whether its `keel:` settings changed (then its repositories are listed afresh).
pub type Changed = mpsc::UnboundedSender<(ReleaseKey, bool)>;

/// Whether two blocks track the same way. The current tags and digests are left out: every
/// update changes them, and an update should not cost a fresh listing.
fn same_settings(a: &Tracking, b: &Tracking) -> bool {
    let (Tracking::Tracked(a), Tracking::Tracked(b)) = (a, b) else {
        return false;
    };
    let (x, y) = (&a.block, &b.block);
    x.policy == y.policy
        && x.trigger == y.trigger
        && x.poll_schedule == y.poll_schedule
        && x.match_tag == y.match_tag
        && x.match_pre_release == y.match_pre_release
        && x.images.len() == y.images.len()
        && x.images.iter().zip(&y.images).all(|(i, j)| {
            i.repository == j.repository
                && i.registry_paths == j.registry_paths
                && i.repository_path == j.repository_path
                && i.tag_path == j.tag_path
                && i.digest_path == j.digest_path
                && i.image_pull_secret == j.image_pull_secret
                && i.policy == j.policy
        })
}

impl Releases {
    pub fn new(default_schedule: Schedule, metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            default_schedule,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ReleaseKey, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The poll schedule of blocks (and workloads) that set none: `--default-schedule`.
    pub fn default_schedule(&self) -> &Schedule {
        &self.default_schedule
    }

    /// The tracked releases right now.
    pub fn tracked(&self) -> Vec<Arc<TrackedRelease>> {
        self.lock()
            .values()
            .filter_map(|e| match &e.tracking {
                Tracking::Tracked(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// Releases whose block is refused, and why.
    pub fn invalid(&self) -> Vec<(ReleaseKey, String)> {
        let mut found: Vec<(ReleaseKey, String)> = self
            .lock()
            .iter()
            .filter_map(|(key, e)| match &e.tracking {
                Tracking::Invalid(reason) => Some((key.clone(), reason.clone())),
                _ => None,
            })
            .collect();
        found.sort();
        found
    }

    pub fn get(&self, key: &ReleaseKey) -> Option<Tracking> {
        self.lock().get(key).map(|e| e.tracking.clone())
    }

    /// Forgets every release of a namespace no watch covers any more.
    pub fn forget_namespace(&self, namespace: &str, changed: &Changed) {
        let mut entries = self.lock();
        let gone: Vec<ReleaseKey> = entries
            .keys()
            .filter(|(ns, _)| ns == namespace)
            .cloned()
            .collect();
        for key in gone {
            entries.remove(&key);
            let _ = changed.send((key, false));
        }
    }

    /// Counts for the gauges: tracked releases, their images, invalid blocks.
    pub fn publish_gauges(&self) {
        let (mut tracked, mut images, mut invalid) = (0usize, 0usize, 0usize);
        let mut repositories = HashSet::new();
        for entry in self.lock().values() {
            match &entry.tracking {
                Tracking::Tracked(t) => {
                    tracked += 1;
                    images += t.block.images.len();
                    repositories.extend(t.repositories.iter().cloned());
                }
                Tracking::Invalid(_) => invalid += 1,
                Tracking::Untracked => {}
            }
        }
        self.metrics
            .set_gauge("keelson_tracked_releases", &[], tracked as f64);
        self.metrics
            .set_gauge("keelson_tracked_images", &[], images as f64);
        self.metrics.set_gauge(
            "keelson_tracked_repositories",
            &[],
            repositories.len() as f64,
        );
        self.metrics
            .set_gauge("keelson_invalid_releases", &[], invalid as f64);
    }

    /// Reads what the controller needs from a decoded newest revision.
    fn tracking_of(&self, stored: &StoredRelease) -> Tracking {
        let release = &stored.release;
        let block = match keel::read_release(release) {
            Ok(Some(block)) => block,
            Ok(None) => return Tracking::Untracked,
            Err(err) => return Tracking::Invalid(err.to_string()),
        };
        let schedule = if block.poll_schedule.is_some() {
            block.schedule.clone()
        } else {
            self.default_schedule.clone()
        };
        let mut repositories = Vec::new();
        for image in &block.images {
            let Ok(reference) = ImageRef::parse(&image.repository) else {
                continue;
            };
            let scope = match &image.image_pull_secret {
                Some(secret) => format!("{}/{secret}", release.namespace()),
                None => String::new(),
            };
            let key = TagKey {
                scope,
                repository: reference.repository(),
            };
            if !repositories.contains(&key) {
                repositories.push(key);
            }
        }
        Tracking::Tracked(Arc::new(TrackedRelease {
            namespace: release.namespace().to_string(),
            name: release.name().to_string(),
            version: release.version(),
            status: release.status(),
            description: release.description().to_string(),
            updated: release
                .info
                .as_ref()
                .and_then(|i| i.last_deployed.clone())
                .unwrap_or_default(),
            block,
            repositories,
            schedule,
        }))
    }
}

/// One record as the watch shows it, payload still attached.
struct Seen {
    key: ReleaseKey,
    object_name: String,
    meta: RecordMeta,
    object: RecordObject,
}

fn seen(object: RecordObject) -> Option<Seen> {
    let meta = object.metadata();
    let labels = meta.labels.as_ref()?;
    let name = labels.get("name")?.clone();
    let version = labels.get("version")?.parse::<i64>().ok()?;
    Some(Seen {
        key: (meta.namespace.clone().unwrap_or_default(), name),
        object_name: meta.name.clone().unwrap_or_default(),
        meta: RecordMeta {
            version,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
        },
        object,
    })
}

/// Decodes on the blocking pool (many records at start-up are real CPU work) and reads each
/// newest revision's tracking.
async fn decode_all(
    releases: &Arc<Releases>,
    objects: Vec<(ReleaseKey, RecordObject)>,
) -> Vec<(ReleaseKey, Option<String>, Tracking)> {
    if objects.is_empty() {
        return Vec::new();
    }
    let releases = releases.clone();
    let job = tokio::task::spawn_blocking(move || {
        objects
            .into_iter()
            .map(|(key, object)| {
                let rv = object.metadata().resource_version.clone();
                releases.metrics.inc("keelson_records_decoded_total", &[]);
                match decode_object(object) {
                    Ok(stored) => (key, rv, releases.tracking_of(&stored)),
                    Err(skipped) => {
                        warn!(object = %skipped.object, reason = %skipped.reason, "cannot decode the newest release record; the release is not tracked until it changes");
                        (key, rv, Tracking::Invalid(format!("{}: {}", skipped.object, skipped.reason)))
                    }
                }
            })
            .collect::<Vec<_>>()
    });
    match job.await {
        Ok(decoded) => decoded,
        Err(err) => {
            warn!(error = %err, "decoding release records stopped unexpectedly");
            Vec::new()
        }
    }
}

/// Where a watch looks: one namespace or all of them.
#[derive(Debug, Clone)]
pub struct WatchScope {
    pub namespace: Option<String>,
    /// `owner=helm` plus the user's `-l`.
    pub selector: String,
}

impl WatchScope {
    fn covers(&self, key: &ReleaseKey) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == key.0)
    }
}

/// Runs one watch until the stream ends (never, unless the task is aborted). kube's watcher
/// re-lists after an expired resourceVersion (410) or a broken connection; the re-list is
/// reconciled against what is known, so nothing is lost or decoded twice.
pub async fn watch(
    client: kube::Client,
    kind: DriverKind,
    scope: WatchScope,
    releases: Arc<Releases>,
    changed: Changed,
    synced: tokio::sync::watch::Sender<bool>,
) {
    let config = watcher::Config::default().labels(&scope.selector);
    let mut init: Option<HashMap<ReleaseKey, Vec<Seen>>> = None;
    macro_rules! stream_of {
        ($ty:ty, $wrap:expr) => {{
            let api: Api<$ty> = match &scope.namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            watcher::watcher(api, config.clone())
                .default_backoff()
                .map(|event| event.map(|e| convert(e, $wrap)))
                .boxed()
        }};
    }
    let mut stream = match kind {
        DriverKind::Secret => stream_of!(Secret, RecordObject::Secret),
        DriverKind::ConfigMap => stream_of!(ConfigMap, RecordObject::ConfigMap),
    };
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn!(namespace = scope.namespace.as_deref().unwrap_or("*"), error = %err, "watching release records failed; retrying");
                continue;
            }
        };
        releases.metrics.inc("keelson_watch_events_total", &[]);
        match event {
            Event::Init => init = Some(HashMap::new()),
            Event::InitApply(object) => {
                if let (Some(pending), Some(record)) = (init.as_mut(), seen(object)) {
                    pending.entry(record.key.clone()).or_default().push(record);
                }
            }
            Event::InitDone => {
                let listed = init.take().unwrap_or_default();
                finish_relist(&releases, &scope, listed, &changed).await;
                let _ = synced.send(true);
                releases.publish_gauges();
            }
            Event::Apply(object) => {
                if let Some(record) = seen(object) {
                    apply(&releases, record, &changed).await;
                    releases.publish_gauges();
                }
            }
            Event::Delete(object) => {
                if let Some(record) = seen(object) {
                    delete(&client, kind, &releases, record, &changed).await;
                    releases.publish_gauges();
                }
            }
        }
    }
}

fn convert<K>(event: Event<K>, wrap: fn(K) -> RecordObject) -> Event<RecordObject> {
    match event {
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(wrap(object)),
        Event::InitDone => Event::InitDone,
        Event::Apply(object) => Event::Apply(wrap(object)),
        Event::Delete(object) => Event::Delete(wrap(object)),
    }
}

/// After a (re-)list: forget what is gone, decode only releases whose newest record changed.
async fn finish_relist(
    releases: &Arc<Releases>,
    scope: &WatchScope,
    listed: HashMap<ReleaseKey, Vec<Seen>>,
    changed: &Changed,
) {
    let mut to_decode = Vec::new();
    {
        let mut entries = releases.lock();
        let gone: Vec<ReleaseKey> = entries
            .keys()
            .filter(|key| scope.covers(key) && !listed.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            entries.remove(&key);
            let _ = changed.send((key, false));
        }
        for (key, records) in listed {
            let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                records: HashMap::new(),
                decoded: None,
                tracking: Tracking::Untracked,
            });
            entry.records = records
                .iter()
                .map(|r| (r.object_name.clone(), r.meta.clone()))
                .collect();
            let Some(newest) = records.into_iter().max_by_key(|r| r.meta.version) else {
                continue;
            };
            if entry.decoded.as_deref() != Some(newest.meta.resource_version.as_str()) {
                to_decode.push((key, newest.object));
            }
        }
    }
    store_decoded(releases, decode_all(releases, to_decode).await, changed);
}

fn store_decoded(
    releases: &Releases,
    decoded: Vec<(ReleaseKey, Option<String>, Tracking)>,
    changed: &Changed,
) {
    let mut entries = releases.lock();
    for (key, rv, tracking) in decoded {
        let Some(entry) = entries.get_mut(&key) else {
            continue;
        };
        // A newer event may have been stored while this one was decoding.
        let still_newest = entry
            .newest()
            .is_some_and(|(_, meta)| Some(&meta.resource_version) == rv.as_ref());
        if !still_newest {
            continue;
        }
        if let Tracking::Invalid(reason) = &tracking {
            debug!(namespace = %key.0, release = %key.1, %reason, "keel block refused");
        }
        let settings_changed = !same_settings(&entry.tracking, &tracking);
        entry.decoded = rv;
        entry.tracking = tracking;
        let _ = changed.send((key, settings_changed));
    }
}

async fn apply(releases: &Arc<Releases>, record: Seen, changed: &Changed) {
    let decode = {
        let mut entries = releases.lock();
        let entry = entries.entry(record.key.clone()).or_insert_with(|| Entry {
            records: HashMap::new(),
            decoded: None,
            tracking: Tracking::Untracked,
        });
        entry
            .records
            .insert(record.object_name.clone(), record.meta.clone());
        let is_newest = entry
            .newest()
            .is_some_and(|(name, _)| *name == record.object_name);
        is_newest && entry.decoded.as_deref() != Some(record.meta.resource_version.as_str())
    };
    if decode {
        let decoded = decode_all(releases, vec![(record.key, record.object)]).await;
        store_decoded(releases, decoded, changed);
    }
}

async fn delete(
    client: &kube::Client,
    kind: DriverKind,
    releases: &Arc<Releases>,
    record: Seen,
    changed: &Changed,
) {
    let refetch = {
        let mut entries = releases.lock();
        let Some(entry) = entries.get_mut(&record.key) else {
            return;
        };
        entry.records.remove(&record.object_name);
        match entry.newest() {
            None => {
                // `helm uninstall` deleted the last record.
                entries.remove(&record.key);
                let _ = changed.send((record.key, false));
                return;
            }
            Some((name, meta))
                if entry.decoded.as_deref() != Some(meta.resource_version.as_str()) =>
            {
                Some(name.clone())
            }
            Some(_) => None,
        }
    };
    // The newest record was deleted (rare: pruning deletes the oldest): the next newest was
    // seen but its payload not kept, so read it once.
    if let Some(object_name) = refetch {
        let namespace = record.key.0.clone();
        let object = match kind {
            DriverKind::Secret => Api::<Secret>::namespaced(client.clone(), &namespace)
                .get_opt(&object_name)
                .await
                .map(|o| o.map(RecordObject::Secret)),
            DriverKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), &namespace)
                .get_opt(&object_name)
                .await
                .map(|o| o.map(RecordObject::ConfigMap)),
        };
        match object {
            Ok(Some(object)) => {
                let decoded = decode_all(releases, vec![(record.key, object)]).await;
                store_decoded(releases, decoded, changed);
            }
            Ok(None) => {}
            Err(err) => {
                warn!(namespace = %namespace, object = %object_name, error = %crate::cluster::api_error_text(&err), "cannot read a release record");
            }
        }
    }
}

/// For a namespace selector: the namespaces it matches, kept current by a watch, each with a
/// record watch of its own.
pub async fn watch_namespaces(
    client: kube::Client,
    namespace_selector: String,
    mut start: impl FnMut(String) -> tokio::task::JoinHandle<()>,
    synced: tokio::sync::watch::Sender<bool>,
    releases: Arc<Releases>,
    changed: Changed,
) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client);
    let config = watcher::Config::default().labels(&namespace_selector);
    let mut running: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut listed: Option<Vec<String>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn!(error = %err, "watching namespaces failed; retrying");
                continue;
            }
        };
        match event {
            Event::Init => listed = Some(Vec::new()),
            Event::InitApply(ns) => {
                if let (Some(names), Some(name)) = (listed.as_mut(), ns.metadata.name) {
                    names.push(name);
                }
            }
            Event::InitDone => {
                let names = listed.take().unwrap_or_default();
                running.retain(|name, handle| {
                    let keep = names.contains(name);
                    if !keep {
                        handle.abort();
                        releases.forget_namespace(name, &changed);
                    }
                    keep
                });
                for name in names {
                    running.entry(name.clone()).or_insert_with(|| start(name));
                }
                let _ = synced.send(true);
            }
            Event::Apply(ns) => {
                if let Some(name) = ns.metadata.name {
                    running.entry(name.clone()).or_insert_with(|| start(name));
                }
            }
            Event::Delete(ns) => {
                let Some(name) = ns.metadata.name else {
                    continue;
                };
                if let Some(handle) = running.remove(&name) {
                    handle.abort();
                    // No longer selected (label removed, or deleted): its releases leave.
                    releases.forget_namespace(&name, &changed);
                    releases.publish_gauges();
                }
            }
        }
    }
}
