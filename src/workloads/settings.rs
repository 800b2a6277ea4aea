//! Keel's `keel.sh/*` labels and annotations on a workload, read as Keel reads them (a label
//! first, else an annotation of the same name), validated field by field.

use std::collections::BTreeMap;

use crate::keel::{DEFAULT_POLL_SCHEDULE, Schedule, Trigger};

pub const POLICY: &str = "keel.sh/policy";
pub const TRIGGER: &str = "keel.sh/trigger";
pub const POLL_SCHEDULE: &str = "keel.sh/pollSchedule";
pub const MATCH_TAG: &str = "keel.sh/matchTag";
/// Keel's older spelling of `keel.sh/matchTag`, still accepted by Keel.
pub const MATCH_TAG_LEGACY: &str = "keel.sh/match-tag";
pub const MATCH_PRE_RELEASE: &str = "keel.sh/matchPreRelease";
pub const APPROVALS: &str = "keel.sh/approvals";
pub const APPROVAL_DEADLINE: &str = "keel.sh/approvalDeadline";
pub const IMAGE_PULL_SECRET: &str = "keel.sh/imagePullSecret";
pub const INIT_CONTAINERS: &str = "keel.sh/initContainers";
pub const MONITOR_CONTAINERS: &str = "keel.sh/monitorContainers";
pub const NOTIFY: &str = "keel.sh/notify";

/// A workload's Keel settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: String,
    pub trigger: Trigger,
    pub poll_schedule: Option<String>,
    /// `poll_schedule` (or Keel's default) parsed.
    pub schedule: Schedule,
    pub match_tag: bool,
    pub match_pre_release: bool,
    pub approvals: u64,
    /// Hours an approval request stays open.
    pub approval_deadline: Option<u64>,
    /// Extra pull secret for the registry (besides the pod spec's and the service account's).
    pub image_pull_secret: Option<String>,
    /// Whether init containers are updated too.
    pub init_containers: bool,
    /// Only containers whose name matches (unanchored, as Keel's `regexp.MatchString`).
    pub monitor_containers: Option<regex::Regex>,
    pub notify: Vec<String>,
}

impl Settings {
    pub fn poll_schedule(&self) -> &str {
        self.poll_schedule
            .as_deref()
            .unwrap_or(DEFAULT_POLL_SCHEDULE)
    }

    /// Whether container `name` is tracked (init containers only with `keel.sh/initContainers`).
    pub fn tracks(&self, name: &str, init: bool) -> bool {
        (!init || self.init_containers)
            && self
                .monitor_containers
                .as_ref()
                .is_none_or(|re| re.is_match(name))
    }
}

/// A bad label or annotation: which one and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct SettingsError {
    pub key: String,
    pub problem: String,
}

fn bad(key: &str, problem: impl Into<String>) -> SettingsError {
    SettingsError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// Reads the settings; `Ok(None)` when the workload has no `keel.sh/policy` (Keel ignores it).
pub fn read(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Settings>, SettingsError> {
    let get = |key: &str| {
        labels
            .get(key)
            .or_else(|| annotations.get(key))
            .map(|v| v.trim())
    };
    let Some(policy) = get(POLICY) else {
        return Ok(None);
    };
    let policy = crate::keel::validate_policy(policy).map_err(|p| bad(POLICY, p))?;
    crate::policy::Policy::parse(&policy).map_err(|err| bad(POLICY, err.to_string()))?;
    let trigger = match get(TRIGGER) {
        None | Some("") | Some("default") => Trigger::Default,
        Some("poll") => Trigger::Poll,
        Some(other) => {
            return Err(bad(
                TRIGGER,
                format!("{other:?} is not a trigger (poll or default)"),
            ));
        }
    };
    let poll_schedule = get(POLL_SCHEDULE)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let schedule = Schedule::parse(poll_schedule.as_deref().unwrap_or(DEFAULT_POLL_SCHEDULE))
        .map_err(|err| bad(POLL_SCHEDULE, err.to_string()))?;
    let boolean = |key: &str, default: bool| -> Result<bool, SettingsError> {
        match get(key) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(other) => Err(bad(key, format!("{other:?} is not true or false"))),
        }
    };
    let number = |key: &str| -> Result<Option<u64>, SettingsError> {
        match get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| bad(key, format!("{v:?} is not a whole non-negative number"))),
        }
    };
    let match_tag = if get(MATCH_TAG).is_some() {
        boolean(MATCH_TAG, false)?
    } else {
        boolean(MATCH_TAG_LEGACY, false)?
    };
    let monitor_containers = match get(MONITOR_CONTAINERS).filter(|s| !s.is_empty()) {
        None => None,
        Some(source) => Some(regex::Regex::new(source).map_err(|err| {
            bad(
                MONITOR_CONTAINERS,
                format!("{source:?} is not a regular expression: {err}"),
            )
        })?),
    };
    Ok(Some(Settings {
        policy,
        trigger,
        poll_schedule,
        schedule,
        match_tag,
        match_pre_release: boolean(MATCH_PRE_RELEASE, true)?,
        approvals: number(APPROVALS)?.unwrap_or(0),
        approval_deadline: number(APPROVAL_DEADLINE)?,
        image_pull_secret: get(IMAGE_PULL_SECRET)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        init_containers: boolean(INIT_CONTAINERS, false)?,
        monitor_containers,
        notify: get(NOTIFY)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_win_over_annotations_and_everything_is_read() {
        let labels = map(&[
            (POLICY, "minor"),
            (TRIGGER, "poll"),
            (MATCH_TAG_LEGACY, "true"),
        ]);
        let annotations = map(&[
            (POLICY, "major"),
            (POLL_SCHEDULE, "@every 30s"),
            (MONITOR_CONTAINERS, "^app$"),
            (INIT_CONTAINERS, "true"),
            (APPROVALS, "2"),
            (APPROVAL_DEADLINE, "12"),
            (IMAGE_PULL_SECRET, "regcred"),
            (NOTIFY, "chan-a, chan-b"),
            (MATCH_PRE_RELEASE, "false"),
        ]);
        let settings = read(&labels, &annotations)
            .ok()
            .flatten()
            .expect("valid settings");
        assert_eq!(settings.policy, "minor");
        assert_eq!(settings.trigger, Trigger::Poll);
        assert_eq!(settings.poll_schedule(), "@every 30s");
        assert!(settings.match_tag);
        assert!(!settings.match_pre_release);
        assert_eq!(settings.approvals, 2);
        assert_eq!(settings.approval_deadline, Some(12));
        assert_eq!(settings.image_pull_secret.as_deref(), Some("regcred"));
        assert_eq!(settings.notify, vec!["chan-a", "chan-b"]);
        assert!(settings.tracks("app", false));
        assert!(settings.tracks("app", true));
        assert!(!settings.tracks("sidecar", false));
    }

    #[test]
    fn no_policy_is_untracked() {
        assert!(matches!(
            read(&map(&[(TRIGGER, "poll")]), &map(&[])),
            Ok(None)
        ));
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (POLICY, "sometimes"),
            (TRIGGER, "often"),
            (POLL_SCHEDULE, "@every banana"),
            (MONITOR_CONTAINERS, "(unclosed"),
            (APPROVALS, "-1"),
            (INIT_CONTAINERS, "yes please"),
        ];
        for (key, value) in cases {
            let mut labels = map(&[(POLICY, "all")]);
            labels.insert(key.to_string(), value.to_string());
            match read(&labels, &map(&[])) {
                Err(err) => assert_eq!(err.key, key, "{err}"),
                Ok(_) => panic!("{key}={value} was accepted"),
            }
        }
    }
}
