//! Helm release history over a storage driver: list, history, last, deployed, get, create,
//! update, delete, prune, and the revision bookkeeping of an upgrade, exactly as Helm does it.

pub mod codec;
pub mod driver;
pub mod record;
#[cfg(test)]
mod roundtrip_tests;
pub mod wire;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use driver::{
    Driver, DriverError, DriverKind, Listing, ReleaseRecords, SkippedRecord, StoredRelease,
    Undecoded, decode_releases, decode_releases_map,
};
pub use record::{Chart, Hook, Info, Release, Status, Writer};

/// Helm's default `--history-max`.
pub const DEFAULT_HISTORY_MAX: usize = 10;
/// Helm 4 refuses longer descriptions; keelson keeps every description within it.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// The description of a revision while keelson's upgrade runs (Helm writes "Preparing upgrade";
/// keelson's own wording lets a restart recognise a pending record a crash left behind).
pub const PREPARING_UPGRADE: &str = "keelson: preparing upgrade";

/// Failures of history operations, each naming the release.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("release {name:?} not found in namespace {namespace:?}")]
    NotFound { name: String, namespace: String },
    #[error("release {name:?} in namespace {namespace:?} has no deployed revision")]
    NoDeployed { name: String, namespace: String },
    #[error(
        "release {name:?} in namespace {namespace:?}: revision {version} is {status}; another operation (install/upgrade/rollback) is in progress"
    )]
    Pending {
        name: String,
        namespace: String,
        version: i64,
        status: Status,
    },
    #[error("invalid release name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
}

impl StorageError {
    /// Whether the error means another writer got there first (a pending revision, a revision
    /// number taken, a record changed since it was read): worth a fresh read, not a failure.
    pub fn is_other_writer(&self) -> bool {
        matches!(
            self,
            StorageError::Pending { .. }
                | StorageError::Driver(DriverError::AlreadyExists { .. })
                | StorageError::Driver(DriverError::Conflict { .. })
        )
    }
}

/// What an upgrade changes in a release; everything else is carried from the deployed revision.
#[derive(Debug, Clone, Default)]
pub struct RevisionChange {
    /// The new user config (the whole map, as `helm get values` will show it).
    pub config: Map<String, Value>,
    /// The re-rendered manifest.
    pub manifest: String,
    /// Re-rendered hooks; `None` keeps the deployed revision's hooks.
    pub hooks: Option<Vec<Hook>>,
    /// Re-rendered NOTES.txt; `None` keeps the deployed revision's notes.
    pub notes: Option<String>,
    /// What changed, e.g. `keelson: image.tag 3.4.5 → 4.5.6 (policy all)`; written on success.
    pub description: String,
    /// Annotations on the pending record's object (who holds it); gone once it is finished.
    pub annotations: BTreeMap<String, String>,
}

/// A revision created as `pending-upgrade`, waiting for [`Storage::complete_upgrade`] or
/// [`Storage::fail_upgrade`].
#[derive(Debug, Clone)]
pub struct PendingRevision {
    pub pending: StoredRelease,
    /// The deployed revision the new one will supersede.
    pub previous: StoredRelease,
    /// The description the revision gets once deployed.
    pub description: String,
}

/// Release history on top of a [`Driver`].
#[derive(Debug, Clone)]
pub struct Storage {
    driver: Driver,
    /// Revisions kept per release (`--history-max`); 0 keeps all.
    pub history_max: usize,
}

impl Storage {
    pub fn new(driver: Driver) -> Self {
        Self {
            driver,
            history_max: DEFAULT_HISTORY_MAX,
        }
    }

    pub fn with_history_max(mut self, history_max: usize) -> Self {
        self.history_max = history_max;
        self
    }

    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// Every revision of every release (`owner=helm`), in a namespace or all of them.
    pub async fn list(&self, namespace: Option<&str>) -> Result<Listing, StorageError> {
        Ok(self.driver.query(namespace, "owner=helm").await?)
    }

    /// The newest revision of each release (what `helm list` shows), decoding as little as it can.
    pub async fn latest_revisions(&self, namespace: Option<&str>) -> Result<Listing, StorageError> {
        let mut listing = self.driver.latest(namespace, "owner=helm").await?;
        listing.records.sort_by(|a, b| {
            (a.release.name(), a.namespace.as_str()).cmp(&(b.release.name(), b.namespace.as_str()))
        });
        Ok(listing)
    }

    /// All decodable revisions of a release, oldest first.
    pub async fn history(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<StoredRelease>, StorageError> {
        validate_release_name(name)?;
        let listing = self
            .driver
            .query(Some(namespace), &format!("name={name},owner=helm"))
            .await?;
        let mut records = listing.records;
        if records.is_empty() {
            return Err(StorageError::NotFound {
                name: name.to_string(),
                namespace: namespace.to_string(),
            });
        }
        records.sort_by_key(|r| r.release.version());
        Ok(records)
    }

    /// The newest revision, whatever its status.
    pub async fn last(&self, namespace: &str, name: &str) -> Result<StoredRelease, StorageError> {
        let history = self.history(namespace, name).await?;
        history
            .into_iter()
            .last()
            .ok_or_else(|| StorageError::NotFound {
                name: name.to_string(),
                namespace: namespace.to_string(),
            })
    }

    /// The newest revision labelled `status=deployed` (Helm looks it up by label).
    pub async fn deployed(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<StoredRelease, StorageError> {
        validate_release_name(name)?;
        let listing = self
            .driver
            .query(
                Some(namespace),
                &format!("name={name},owner=helm,status=deployed"),
            )
            .await?;
        listing
            .records
            .into_iter()
            .max_by_key(|r| r.release.version())
            .ok_or_else(|| StorageError::NoDeployed {
                name: name.to_string(),
                namespace: namespace.to_string(),
            })
    }

    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
        version: i64,
    ) -> Result<StoredRelease, StorageError> {
        validate_release_name(name)?;
        Ok(self.driver.get(namespace, name, version).await?)
    }

    /// Writes a new revision; fails when it exists already.
    pub async fn create(
        &self,
        namespace: &str,
        release: &Release,
        labels: &BTreeMap<String, String>,
    ) -> Result<StoredRelease, StorageError> {
        validate_release_name(release.name())?;
        Ok(self.driver.create(namespace, release, labels).await?)
    }

    /// Rewrites a revision read earlier, only if it is unchanged in the cluster.
    pub async fn update(&self, stored: &StoredRelease) -> Result<StoredRelease, StorageError> {
        Ok(self.driver.update(stored).await?)
    }

    /// Deletes a revision read earlier, only if it is unchanged in the cluster.
    pub async fn delete(&self, stored: &StoredRelease) -> Result<(), StorageError> {
        Ok(self.driver.delete(stored).await?)
    }

    /// Deletes the oldest revisions until at most `max` remain (0 = keep all), never the
    /// newest deployed one. Returns the deleted revision numbers. Records that could not be
    /// decoded are never deleted.
    pub async fn prune(
        &self,
        namespace: &str,
        name: &str,
        max: usize,
    ) -> Result<Vec<i64>, StorageError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let history = self.history(namespace, name).await?;
        let deployed = match self.deployed(namespace, name).await {
            Ok(d) => Some(d.release.version()),
            Err(StorageError::NoDeployed { .. }) => None,
            Err(e) => return Err(e),
        };
        let doomed = revisions_to_prune(&history, deployed, max);
        let mut deleted = Vec::with_capacity(doomed.len());
        for stored in doomed {
            self.driver.delete(stored).await?;
            deleted.push(stored.release.version());
        }
        Ok(deleted)
    }

    /// Starts an upgrade the way Helm does: refuses while the newest revision is pending,
    /// prunes history to make room, and creates revision last+1 as `pending-upgrade` from the
    /// deployed revision with `change` applied. Fails with `AlreadyExists` when another writer
    /// created that revision first. Before pruning, the apiserver is asked (dry run) whether
    /// the new record can be written at all: a record that is too large or forbidden must not
    /// cost the release its history.
    pub async fn begin_upgrade(
        &self,
        namespace: &str,
        name: &str,
        change: RevisionChange,
    ) -> Result<PendingRevision, StorageError> {
        let history = self.history(namespace, name).await?;
        let Some(last) = history.last() else {
            return Err(StorageError::NotFound {
                name: name.to_string(),
                namespace: namespace.to_string(),
            });
        };
        let last_status = last.release.status();
        if last_status.is_pending() {
            return Err(StorageError::Pending {
                name: name.to_string(),
                namespace: namespace.to_string(),
                version: last.release.version(),
                status: last_status,
            });
        }
        let previous = if last_status == Status::Deployed {
            last.clone()
        } else {
            self.deployed(namespace, name).await?
        };
        let next = next_revision(&previous.release, last.release.version() + 1, &change);
        let doomed = if self.history_max > 0 {
            // Like Helm: make room for the new revision before creating it.
            revisions_to_prune(
                &history,
                Some(previous.release.version()),
                self.history_max - 1,
            )
        } else {
            Vec::new()
        };
        if !doomed.is_empty() {
            self.driver
                .create_with(
                    namespace,
                    &next,
                    &previous.labels,
                    &change.annotations,
                    true,
                )
                .await?;
            for stored in doomed {
                match self.driver.delete(stored).await {
                    // A concurrent writer pruned it first: the goal is reached.
                    Ok(()) | Err(DriverError::NotFound { .. }) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        crate::failpoint::hit(crate::failpoint::Step::AfterPrune).await;
        let pending = self
            .driver
            .create_with(
                namespace,
                &next,
                &previous.labels,
                &change.annotations,
                false,
            )
            .await?;
        Ok(PendingRevision {
            pending,
            previous,
            description: fit_description(&change.description),
        })
    }

    /// Removes a pending record that was never applied (its writer found it planned from a
    /// revision that is no longer the deployed one): nothing in the cluster matches it, so it
    /// is not history. Only if unchanged since it was created.
    pub async fn discard_pending(&self, pending: PendingRevision) -> Result<(), StorageError> {
        Ok(self.driver.delete(&pending.pending).await?)
    }

    /// Finishes a successful upgrade: the previous revision becomes `superseded`, the new one
    /// `deployed` with the change's description.
    pub async fn complete_upgrade(
        &self,
        pending: PendingRevision,
    ) -> Result<StoredRelease, StorageError> {
        let mut previous = pending.previous;
        previous
            .release
            .info
            .get_or_insert_with(Info::default)
            .status = Some(Status::Superseded);
        if let Err(err) = self.driver.update(&previous).await {
            let reason = format!(
                "could not mark revision {} superseded: {err}",
                previous.release.version()
            );
            // Never leave the new record pending: it ends failed, saying why.
            let _ = self.fail_upgrade_record(pending.pending, &reason).await;
            return Err(err.into());
        }
        crate::failpoint::hit(crate::failpoint::Step::AfterSupersede).await;
        let mut deployed = pending.pending;
        deployed
            .release
            .set_status(Status::Deployed, pending.description);
        Ok(self.driver.update(&deployed).await?)
    }

    /// Finishes a failed upgrade: the new revision becomes `failed` with a description saying
    /// why; the previous revision stays deployed.
    pub async fn fail_upgrade(
        &self,
        pending: PendingRevision,
        reason: &str,
    ) -> Result<StoredRelease, StorageError> {
        self.fail_upgrade_record(pending.pending, reason).await
    }

    async fn fail_upgrade_record(
        &self,
        mut record: StoredRelease,
        reason: &str,
    ) -> Result<StoredRelease, StorageError> {
        let description = fit_description(&format!(
            "keelson: upgrade {:?} failed: {reason}",
            record.release.name()
        ));
        record.release.set_status(Status::Failed, description);
        Ok(self.driver.update(&record).await?)
    }
}

/// The revisions Helm's `removeLeastRecent` deletes: oldest first, skipping the deployed one,
/// until `max` remain.
fn revisions_to_prune(
    history: &[StoredRelease],
    deployed: Option<i64>,
    max: usize,
) -> Vec<&StoredRelease> {
    let mut sorted: Vec<&StoredRelease> = history.iter().collect();
    sorted.sort_by_key(|r| r.release.version());
    let mut doomed = Vec::new();
    for stored in sorted {
        if history.len() - doomed.len() <= max {
            break;
        }
        if Some(stored.release.version()) != deployed {
            doomed.push(stored);
        }
    }
    doomed
}

/// Builds the next revision from the deployed one as Helm's upgrade does: same chart and
/// carried fields, new config/manifest/hooks, `FirstDeployed` kept, `LastDeployed` now, times
/// in the conventions of the Helm that wrote the deployed revision.
fn next_revision(deployed: &Release, version: i64, change: &RevisionChange) -> Release {
    let mut next = deployed.clone();
    let old_info = deployed.info.clone().unwrap_or_default();
    let writer = deployed.writer();
    next.version = Some(version);
    next.config = if change.config.is_empty() {
        None
    } else {
        Some(change.config.clone())
    };
    next.manifest = if change.manifest.is_empty() {
        None
    } else {
        Some(change.manifest.clone())
    };
    if let Some(hooks) = &change.hooks {
        next.hooks = if hooks.is_empty() {
            None
        } else {
            Some(hooks.clone())
        };
    }
    let notes = change.notes.clone().or(old_info.notes.clone());
    next.info = Some(Info {
        first_deployed: old_info.first_deployed.clone(),
        last_deployed: Some(record::now_rfc3339_nano()),
        deleted: match writer {
            Writer::Helm3 => Some(String::new()),
            Writer::Helm4 => None,
        },
        description: Some(PREPARING_UPGRADE.to_string()),
        status: Some(Status::PendingUpgrade),
        notes: notes.filter(|n| !n.is_empty()),
        resources: None,
        extra: record::Carried::default(),
    });
    next
}

/// Keeps a description within Helm 4's limit, cutting on a character boundary with `…`.
pub fn fit_description(text: &str) -> String {
    if text.chars().count() <= MAX_DESCRIPTION_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Release names must be valid label values (Helm's rule for its label queries) so a name can
/// never widen a selector.
pub fn validate_release_name(name: &str) -> Result<(), StorageError> {
    let invalid = |reason: &str| StorageError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > 53 {
        return Err(invalid("longer than 53 characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if !name.chars().all(ok_char) {
        return Err(invalid(
            "only lowercase letters, digits, '-' and '.' are allowed",
        ));
    }
    let starts_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ends_ok = name
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !starts_ok || !ends_ok {
        return Err(invalid("must start and end with a letter or digit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(version: i64, status: &str) -> StoredRelease {
        StoredRelease {
            release: serde_json::from_value(serde_json::json!({
                "name": "web", "version": version, "namespace": "ns",
                "info": {"status": status}
            }))
            .unwrap(),
            labels: BTreeMap::new(),
            namespace: "ns".into(),
            object_name: driver::record_name("web", version),
            resource_version: Some("1".into()),
        }
    }

    fn versions(list: &[&StoredRelease]) -> Vec<i64> {
        list.iter().map(|r| r.release.version()).collect()
    }

    #[test]
    fn prune_keeps_the_deployed_revision() {
        let history: Vec<_> = (1..=5)
            .map(|v| stored(v, if v == 1 { "deployed" } else { "failed" }))
            .collect();
        assert_eq!(
            versions(&revisions_to_prune(&history, Some(1), 2)),
            vec![2, 3, 4]
        );
        assert_eq!(
            versions(&revisions_to_prune(&history, None, 2)),
            vec![1, 2, 3]
        );
        assert!(revisions_to_prune(&history, Some(1), 5).is_empty());
    }

    #[test]
    fn descriptions_fit_helm_4s_limit() {
        let long = "é".repeat(300);
        let fitted = fit_description(&long);
        assert_eq!(fitted.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(fitted.ends_with('…'));
        assert_eq!(fit_description("short"), "short");
    }

    #[test]
    fn next_revision_follows_helm_upgrade() {
        let deployed: Release = serde_json::from_value(serde_json::json!({
            "name": "web", "version": 3, "namespace": "ns",
            "info": {"first_deployed": "2026-01-01T00:00:00Z", "last_deployed": "2026-01-02T00:00:00Z",
                     "deleted": "", "description": "Upgrade complete", "status": "deployed", "notes": "hi"},
            "config": {"image": {"tag": "1"}}, "manifest": "old"
        }))
        .unwrap();
        let change = RevisionChange {
            config: serde_json::from_value(serde_json::json!({"image": {"tag": "2"}})).unwrap(),
            manifest: "new".into(),
            description: "keelson: image.tag 1 → 2".into(),
            ..RevisionChange::default()
        };
        let next = next_revision(&deployed, 5, &change);
        let info = next.info.clone().unwrap();
        assert_eq!(next.version(), 5);
        assert_eq!(next.status(), Status::PendingUpgrade);
        assert_eq!(info.first_deployed.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_ne!(info.last_deployed.as_deref(), Some("2026-01-02T00:00:00Z"));
        assert_eq!(
            info.deleted.as_deref(),
            Some(""),
            "helm 3 writes zero times as \"\""
        );
        assert_eq!(info.notes.as_deref(), Some("hi"));
        assert_eq!(next.manifest.as_deref(), Some("new"));
        assert_eq!(next.config.unwrap()["image"]["tag"], "2");
    }

    #[test]
    fn release_names_cannot_widen_selectors() {
        assert!(validate_release_name("web-1.x").is_ok());
        for bad in ["", "a,owner=x", "A", "-a", "a b", &"a".repeat(54)] {
            assert!(validate_release_name(bad).is_err(), "{bad}");
        }
    }
}
