//! What the controller last told chat receivers about each release or workload, so a planned
//! move is announced once and a failure that repeats every cycle is not repeated every cycle.
//!
//! One entry per release or workload the watches still hold: entries of deleted ones are
//! dropped when the schedules are refreshed, so the memory is bounded by what is tracked.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A failure with the same reason is told again after this long, as a reminder that the
/// release is still stuck.
pub const FAILURE_REMINDER: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
struct Said {
    /// The target last announced as planned.
    planned: Option<String>,
    /// The reason of the last failure told, and when.
    failed: Option<(String, Instant)>,
}

#[derive(Debug)]
pub struct Told<K> {
    said: HashMap<K, Said>,
}

impl<K: Eq + Hash + Clone> Default for Told<K> {
    fn default() -> Self {
        Self {
            said: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Told<K> {
    /// Whether `target` is news for `key`: true the first time it is planned, however often it
    /// is planned while it waits (for approvals, say); true again once another target came in
    /// between.
    pub fn planned(&mut self, key: &K, target: &str) -> bool {
        let said = self.said.entry(key.clone()).or_default();
        if said.planned.as_deref() == Some(target) {
            return false;
        }
        said.planned = Some(target.to_string());
        true
    }

    /// Whether a failure with `reason` is worth telling at `now`: a new reason, or the same one
    /// after [`FAILURE_REMINDER`].
    pub fn failed(&mut self, key: &K, reason: &str, now: Instant) -> bool {
        let said = self.said.entry(key.clone()).or_default();
        if let Some((last, at)) = &said.failed
            && last == reason
            && now.saturating_duration_since(*at) < FAILURE_REMINDER
        {
            return false;
        }
        said.failed = Some((reason.to_string(), now));
        true
    }

    /// The release or workload moved: a later failure, even with an old reason, is news.
    pub fn succeeded(&mut self, key: &K) {
        if let Some(said) = self.said.get_mut(key) {
            said.failed = None;
        }
    }

    /// Forgets everything about keys no longer tracked.
    pub fn retain(&mut self, mut tracked: impl FnMut(&K) -> bool) {
        self.said.retain(|key, _| tracked(key));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.said.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_target_is_told_once_until_another_comes() {
        let mut told = Told::default();
        assert!(told.planned(&"web", "1.1.0"));
        assert!(!told.planned(&"web", "1.1.0"));
        assert!(told.planned(&"api", "1.1.0"));
        assert!(told.planned(&"web", "1.2.0"));
        assert!(told.planned(&"web", "1.1.0"));
    }

    #[test]
    fn a_repeated_failure_is_told_again_only_after_the_reminder_or_a_success() {
        let mut told = Told::default();
        let start = Instant::now();
        assert!(told.failed(&"web", "apply: forbidden (403)", start));
        assert!(!told.failed(
            &"web",
            "apply: forbidden (403)",
            start + Duration::from_secs(60)
        ));
        assert!(told.failed(&"web", "render: timeout", start + Duration::from_secs(61)));
        assert!(told.failed(
            &"web",
            "apply: forbidden (403)",
            start + Duration::from_secs(62)
        ));
        assert!(told.failed(
            &"web",
            "apply: forbidden (403)",
            start + Duration::from_secs(62) + FAILURE_REMINDER
        ));
        told.succeeded(&"web");
        assert!(told.failed(
            &"web",
            "apply: forbidden (403)",
            start + Duration::from_secs(63) + FAILURE_REMINDER
        ));
    }

    #[test]
    fn untracked_keys_are_forgotten() {
        let mut told = Told::default();
        for n in 0..1000 {
            told.planned(&n, "1.0.0");
        }
        told.retain(|n| *n < 10);
        assert_eq!(told.len(), 10);
        assert!(told.planned(&500, "1.0.0"));
    }
}
