//! Backoff after failed moves: the same value changes that ended in failed revisions are tried
//! again after 1, 2, 4 … 60 minutes, not on every poll, since each attempt adds a failed
//! revision to `helm history` and pushes good ones out of `--history-max`. A newer tag (other
//! changes), anyone's successful revision, or `reconcile --once --retry-failed` tries at once.
//! Everything is read from the history, as the rollback guard is: no state to lose.

use std::time::Duration;

use jiff::Timestamp;

use crate::storage::{Status, StoredRelease};

use super::plan::ValueChange;

/// The wait after the first failure; it doubles with each further one.
pub const FIRST_WAIT: Duration = Duration::from_secs(60);
/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The failed attempts at these changes at the top of the history, and when the next may run.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedAttempts {
    /// Consecutive failed revisions, newest first, that carried exactly these changes.
    pub failures: u32,
    /// The newest of them.
    pub revision: i64,
    /// Its description (why it failed).
    pub description: String,
    /// When the next attempt may run.
    pub retry_at: Timestamp,
}

/// The wait after `failures` consecutive failures.
pub fn wait_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_WAIT.saturating_mul(1 << doublings).min(MAX_WAIT)
}

/// Counts the newest revisions that failed while already holding every one of `changes`
/// (their user values at each path equal the new value). `None` when the newest revision is
/// not such a failure, or its time cannot be read (then nothing is held back).
pub fn failed_attempts(
    history: &[StoredRelease],
    changes: &[&ValueChange],
) -> Option<FailedAttempts> {
    if changes.is_empty() {
        return None;
    }
    let mut revisions: Vec<&StoredRelease> = history.iter().collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(r.release.version()));
    let mut failures = 0u32;
    let mut newest = None;
    for stored in &revisions {
        let release = &stored.release;
        if release.status() == Status::Failed
            && release
                .description()
                .starts_with(super::repair::INTERRUPTED)
        {
            // Its writer died mid-update: not a failure of the move.
            continue;
        }
        let config = release.config();
        let carried = changes.iter().all(|change| {
            change
                .path
                .get_in(&config)
                .is_some_and(|value| match value {
                    serde_json::Value::String(text) => *text == change.new,
                    serde_json::Value::Number(number) => number.to_string() == change.new,
                    _ => false,
                })
        });
        if release.status() != Status::Failed || !carried {
            break;
        }
        failures += 1;
        newest.get_or_insert(*stored);
    }
    let newest = newest?;
    let failed_at: Timestamp = newest
        .release
        .info
        .as_ref()
        .and_then(|info| info.last_deployed.as_deref())
        .and_then(|text| text.parse().ok())?;
    let wait = jiff::SignedDuration::try_from(wait_after(failures)).ok()?;
    Some(FailedAttempts {
        failures,
        revision: newest.release.version(),
        description: newest.release.description().to_string(),
        retry_at: failed_at.checked_add(wait).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn stored(version: i64, status: &str, tag: &str) -> StoredRelease {
        StoredRelease {
            release: serde_json::from_value(json!({
                "name": "web", "version": version, "namespace": "ns",
                "info": {"status": status, "description": format!("revision {version}"),
                         "last_deployed": format!("2026-12-06T10:0{version}:00Z")},
                "config": {"image": {"tag": tag}}
            }))
            .expect("release"),
            labels: Default::default(),
            namespace: "ns".into(),
            object_name: format!("sh.helm.release.v1.web.v{version}"),
            resource_version: None,
        }
    }

    fn change(new: &str) -> ValueChange {
        ValueChange {
            path: "image.tag".parse().expect("path"),
            old: Some("1.0.0".into()),
            new: new.into(),
        }
    }

    #[test]
    fn consecutive_failures_of_the_same_changes_set_the_next_attempt() {
        let history = [
            stored(1, "superseded", "1.0.0"),
            stored(2, "deployed", "1.0.0"),
            stored(3, "failed", "1.0.1"),
            stored(4, "failed", "1.1.0"),
            stored(5, "failed", "1.1.0"),
        ];
        let found = failed_attempts(&history, &[&change("1.1.0")]).expect("held");
        assert_eq!(found.failures, 2);
        assert_eq!(found.revision, 5);
        assert_eq!(found.description, "revision 5");
        assert_eq!(found.retry_at.to_string(), "2026-12-06T10:07:00Z");
        // A newer tag is other changes: tried at once.
        assert_eq!(failed_attempts(&history, &[&change("1.2.0")]), None);
        // Someone's successful revision on top ends the run of failures.
        let mut moved = history.to_vec();
        moved.push(stored(6, "deployed", "1.0.0"));
        assert_eq!(failed_attempts(&moved, &[&change("1.1.0")]), None);
        assert_eq!(failed_attempts(&history, &[]), None);
        // A revision whose writer died (marked failed by crash repair) is no failed attempt.
        let mut interrupted = stored(6, "failed", "1.1.0");
        interrupted.release.set_status(
            Status::Failed,
            format!(
                "{}; marked failed at restart",
                super::super::repair::INTERRUPTED
            ),
        );
        let mut crashed = history.to_vec();
        crashed.push(interrupted.clone());
        assert_eq!(
            failed_attempts(&crashed, &[&change("1.1.0")]).map(|f| f.revision),
            Some(5)
        );
        assert_eq!(
            failed_attempts(&[history[1].clone(), interrupted], &[&change("1.1.0")]),
            None
        );
    }

    #[test]
    fn the_wait_doubles_up_to_an_hour() {
        assert_eq!(wait_after(1), Duration::from_secs(60));
        assert_eq!(wait_after(2), Duration::from_secs(120));
        assert_eq!(wait_after(3), Duration::from_secs(240));
        assert_eq!(wait_after(7), Duration::from_secs(3600));
        assert_eq!(wait_after(u32::MAX), Duration::from_secs(3600));
    }
}
