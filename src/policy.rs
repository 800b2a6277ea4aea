//! Chooses the tag an image moves to under a Keel update policy (never a downgrade).
//!
//! Policy names are Keel's (`all`, `major`, `minor`, `patch`, `force`, `glob:…`, `regexp:…`,
//! `never`) so existing `keel:` blocks keep working; the ordering fixes Keel's known mistakes:
//! numeric (not string) comparison, pre-release channels, four-part versions, and candidates
//! that must be newer than the current tag under every policy.

use std::cmp::Ordering;
use std::fmt;

/// A policy string that cannot be used; names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "unknown update policy {0:?}: expected all, major, minor, patch, force, never, glob:PATTERN or regexp:PATTERN"
    )]
    Unknown(String),
    #[error("update policy {0:?} has an empty pattern")]
    EmptyPattern(String),
    #[error("update policy {value:?} has an invalid regular expression: {reason}")]
    InvalidRegexp { value: String, reason: String },
}

/// How far a semver policy may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemverLevel {
    /// Any newer version, pre-releases included (Keel's `all`).
    All,
    Major,
    /// Same major version.
    Minor,
    /// Same major and minor version.
    Patch,
}

/// The `keel:` options that modify a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOptions {
    /// `force` only: stay on the current tag and act when its digest changes.
    pub match_tag: bool,
    /// semver policies: a pre-release only replaces a pre-release of the same channel.
    pub match_pre_release: bool,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        Self {
            match_tag: false,
            match_pre_release: true,
        }
    }
}

/// An update policy, parsed from Keel's policy string.
#[derive(Debug, Clone)]
pub enum Policy {
    Never,
    Semver {
        level: SemverLevel,
        match_pre_release: bool,
    },
    Force {
        match_tag: bool,
    },
    Glob {
        pattern: String,
    },
    Regexp {
        source: String,
        regex: regex::Regex,
    },
}

/// What a policy decides for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Move to this newer tag.
    Update(String),
    /// Keep this tag; act only when the digest it points to changes (`force`).
    WatchDigest(String),
    /// Leave the image alone, for this reason.
    Hold(HoldReason),
}

impl Selection {
    /// The tag the image would point to after this decision, if it changes anything.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Selection::Update(tag) | Selection::WatchDigest(tag) => Some(tag),
            Selection::Hold(_) => None,
        }
    }
}

/// Why a policy leaves an image where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// The policy is `never`.
    PolicyNever,
    /// No candidate is newer than the current tag under the policy.
    UpToDate { current: String },
    /// `latest` moves only with `force` (it is not a version to compare).
    LatestNeedsForce,
    /// The current tag is not a version, so a semver policy cannot compare it.
    CurrentNotVersion { current: String },
    /// The current tag does not match the glob/regexp, so "newer" is undefined.
    CurrentNotMatching { current: String, pattern: String },
    /// Under a `regexp:` with a `compare` group the current tag did not capture it.
    CurrentHasNoCompareGroup { current: String, pattern: String },
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::PolicyNever => write!(f, "policy is never"),
            HoldReason::UpToDate { current } => {
                write!(f, "no tag newer than {current:?} is allowed")
            }
            HoldReason::LatestNeedsForce => {
                write!(
                    f,
                    "current tag \"latest\" is only updated by the force policy"
                )
            }
            HoldReason::CurrentNotVersion { current } => write!(
                f,
                "current tag {current:?} is not a version, so a semver policy cannot compare it"
            ),
            HoldReason::CurrentNotMatching { current, pattern } => write!(
                f,
                "current tag {current:?} does not match {pattern:?}, so no tag is known to be newer"
            ),
            HoldReason::CurrentHasNoCompareGroup { current, pattern } => write!(
                f,
                "current tag {current:?} has no `compare` group match in {pattern:?}"
            ),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Never => write!(f, "never"),
            Policy::Semver { level, .. } => write!(
                f,
                "{}",
                match level {
                    SemverLevel::All => "all",
                    SemverLevel::Major => "major",
                    SemverLevel::Minor => "minor",
                    SemverLevel::Patch => "patch",
                }
            ),
            Policy::Force { .. } => write!(f, "force"),
            Policy::Glob { pattern } => write!(f, "glob:{pattern}"),
            Policy::Regexp { source, .. } => write!(f, "regexp:{source}"),
        }
    }
}

impl Policy {
    /// Parses a Keel policy string with default options (matchTag false, matchPreRelease true).
    pub fn parse(value: &str) -> Result<Self, PolicyError> {
        Self::parse_with(value, PolicyOptions::default())
    }

    /// Parses a Keel policy string with the `keel:` block's options.
    pub fn parse_with(value: &str, options: PolicyOptions) -> Result<Self, PolicyError> {
        let trimmed = value.trim();
        if let Some(pattern) = trimmed.strip_prefix("glob:") {
            if pattern.is_empty() {
                return Err(PolicyError::EmptyPattern(value.to_string()));
            }
            return Ok(Policy::Glob {
                pattern: pattern.to_string(),
            });
        }
        if let Some(source) = trimmed.strip_prefix("regexp:") {
            if source.is_empty() {
                return Err(PolicyError::EmptyPattern(value.to_string()));
            }
            let regex = regex::Regex::new(source).map_err(|err| PolicyError::InvalidRegexp {
                value: value.to_string(),
                reason: err.to_string(),
            })?;
            return Ok(Policy::Regexp {
                source: source.to_string(),
                regex,
            });
        }
        let semver = |level| Policy::Semver {
            level,
            match_pre_release: options.match_pre_release,
        };
        match trimmed.to_ascii_lowercase().as_str() {
            "all" => Ok(semver(SemverLevel::All)),
            "major" => Ok(semver(SemverLevel::Major)),
            "minor" => Ok(semver(SemverLevel::Minor)),
            "patch" => Ok(semver(SemverLevel::Patch)),
            "force" => Ok(Policy::Force {
                match_tag: options.match_tag,
            }),
            "never" => Ok(Policy::Never),
            _ => Err(PolicyError::Unknown(value.to_string())),
        }
    }

    /// The tags this policy can rank, newest first (what `keelson tags` shows).
    pub fn order<'a>(&self, tags: &'a [String]) -> Vec<&'a str> {
        match self {
            Policy::Semver { .. } => {
                let mut versions: Vec<(&str, Version)> = tags
                    .iter()
                    .filter_map(|t| Version::parse(t).map(|v| (t.as_str(), v)))
                    .collect();
                versions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                versions.into_iter().map(|(t, _)| t).collect()
            }
            Policy::Glob { .. } | Policy::Regexp { .. } => {
                let matching: Vec<&str> = tags
                    .iter()
                    .map(String::as_str)
                    .filter(|t| self.pattern_matches(t))
                    .collect();
                let ranker = self.ranker(&matching, None);
                let mut ranked: Vec<(&str, RankKey)> = matching
                    .into_iter()
                    .filter_map(|t| ranker.key(self, t).map(|k| (t, k)))
                    .collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                ranked.into_iter().map(|(t, _)| t).collect()
            }
            Policy::Force { .. } | Policy::Never => {
                // Versions first (newest first), then every other tag in natural order.
                let mut versions: Vec<(&str, Version)> = Vec::new();
                let mut others: Vec<&str> = Vec::new();
                for tag in tags {
                    match Version::parse(tag) {
                        Some(version) => versions.push((tag, version)),
                        None => others.push(tag),
                    }
                }
                versions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                others.sort_by(|a, b| natural_cmp(b, a));
                versions.into_iter().map(|(t, _)| t).chain(others).collect()
            }
        }
    }

    /// Decides where an image currently on `current` moves among `candidates`.
    pub fn select(&self, current: &str, candidates: &[String]) -> Selection {
        // An image without a tag runs `latest`, as the container runtime pulls it.
        let current = if current.is_empty() {
            "latest"
        } else {
            current
        };
        match self {
            Policy::Never => Selection::Hold(HoldReason::PolicyNever),
            Policy::Force { match_tag: true } => Selection::WatchDigest(current.to_string()),
            Policy::Force { match_tag: false } => match Version::parse(current) {
                // Without matchTag force follows any newer version, but never downgrades.
                Some(current_version) => newest_allowed(&current_version, candidates, |_| true)
                    .map_or_else(
                        || Selection::WatchDigest(current.to_string()),
                        Selection::Update,
                    ),
                None => Selection::WatchDigest(current.to_string()),
            },
            Policy::Semver {
                level,
                match_pre_release,
            } => {
                if current == "latest" {
                    return Selection::Hold(HoldReason::LatestNeedsForce);
                }
                let Some(current_version) = Version::parse(current) else {
                    return Selection::Hold(HoldReason::CurrentNotVersion {
                        current: current.to_string(),
                    });
                };
                let allowed = |candidate: &Version| {
                    semver_allows(*level, *match_pre_release, &current_version, candidate)
                };
                newest_allowed(&current_version, candidates, allowed).map_or_else(
                    || {
                        Selection::Hold(HoldReason::UpToDate {
                            current: current.to_string(),
                        })
                    },
                    Selection::Update,
                )
            }
            Policy::Glob { .. } | Policy::Regexp { .. } => {
                self.select_by_pattern(current, candidates)
            }
        }
    }

    fn select_by_pattern(&self, current: &str, candidates: &[String]) -> Selection {
        let pattern = self.to_string();
        if current == "latest" {
            return Selection::Hold(HoldReason::LatestNeedsForce);
        }
        if !self.pattern_matches(current) {
            return Selection::Hold(HoldReason::CurrentNotMatching {
                current: current.to_string(),
                pattern,
            });
        }
        let matching: Vec<&str> = candidates
            .iter()
            .map(String::as_str)
            .filter(|t| self.pattern_matches(t))
            .collect();
        let ranker = self.ranker(&matching, Some(current));
        let Some(current_key) = ranker.key(self, current) else {
            return Selection::Hold(HoldReason::CurrentHasNoCompareGroup {
                current: current.to_string(),
                pattern,
            });
        };
        matching
            .into_iter()
            .filter_map(|t| ranker.key(self, t).map(|k| (t, k)))
            .filter(|(_, key)| *key > current_key)
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
            .map_or_else(
                || {
                    Selection::Hold(HoldReason::UpToDate {
                        current: current.to_string(),
                    })
                },
                |(tag, _)| Selection::Update(tag.to_string()),
            )
    }

    fn pattern_matches(&self, tag: &str) -> bool {
        match self {
            Policy::Glob { pattern } => glob_match(pattern, tag),
            Policy::Regexp { regex, .. } => regex.is_match(tag),
            _ => true,
        }
    }

    /// Picks one ordering for a whole set of tags, so every pair is compared the same way.
    fn ranker(&self, matching: &[&str], current: Option<&str>) -> Ranker {
        let all_versions = matching
            .iter()
            .copied()
            .chain(current)
            .all(|t| Version::parse(t).is_some());
        if all_versions {
            return Ranker::Version;
        }
        if let Policy::Regexp { regex, .. } = self
            && regex.capture_names().any(|name| name == Some("compare"))
        {
            return Ranker::CompareGroup;
        }
        Ranker::Natural
    }
}

#[derive(Debug, Clone, Copy)]
enum Ranker {
    Version,
    CompareGroup,
    Natural,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RankKey {
    Version(Version),
    Natural(NaturalKey),
}

impl Ranker {
    fn key(self, policy: &Policy, tag: &str) -> Option<RankKey> {
        match self {
            Ranker::Version => Version::parse(tag).map(RankKey::Version),
            Ranker::Natural => Some(RankKey::Natural(NaturalKey(tag.to_string()))),
            Ranker::CompareGroup => match policy {
                Policy::Regexp { regex, .. } => regex
                    .captures(tag)
                    .and_then(|caps| caps.name("compare"))
                    .map(|m| RankKey::Natural(NaturalKey(m.as_str().to_string()))),
                _ => None,
            },
        }
    }
}

/// A string ordered "naturally": digit runs compare as numbers, so `1.10` > `1.9`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NaturalKey(String);

impl PartialOrd for NaturalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NaturalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        natural_cmp(&self.0, &other.0)
    }
}

/// Compares strings by runs: digit runs numerically (any length), other runs byte-wise.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                if x.is_ascii_digit() && y.is_ascii_digit() {
                    let (run_a, rest_a) = split_run(a, true);
                    let (run_b, rest_b) = split_run(b, true);
                    let ordering = compare_digit_runs(run_a, run_b);
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                    (a, b) = (rest_a, rest_b);
                } else if x.is_ascii_digit() != y.is_ascii_digit() {
                    // Digits sort before letters and punctuation.
                    return if x.is_ascii_digit() {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                } else {
                    let (run_a, rest_a) = split_run(a, false);
                    let (run_b, rest_b) = split_run(b, false);
                    let ordering = run_a.cmp(run_b);
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                    (a, b) = (rest_a, rest_b);
                }
            }
        }
    }
}

fn split_run(bytes: &[u8], digits: bool) -> (&[u8], &[u8]) {
    let end = bytes
        .iter()
        .position(|b| b.is_ascii_digit() != digits)
        .unwrap_or(bytes.len());
    bytes.split_at(end)
}

fn compare_digit_runs(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |run: &[u8]| -> usize { run.iter().take_while(|b| **b == b'0').count() };
    let (a_zeros, b_zeros) = (strip(a), strip(b));
    let (a_value, b_value) = (
        a.get(a_zeros..).unwrap_or(&[]),
        b.get(b_zeros..).unwrap_or(&[]),
    );
    a_value
        .len()
        .cmp(&b_value.len())
        .then_with(|| a_value.cmp(b_value))
        // Equal numbers: the one written with fewer leading zeros first, for a stable order.
        .then_with(|| b_zeros.cmp(&a_zeros))
}

/// Keel's glob (`*` any run, `?` one character), matched against the whole tag.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

fn semver_allows(
    level: SemverLevel,
    match_pre_release: bool,
    current: &Version,
    candidate: &Version,
) -> bool {
    let same_major = candidate.number(0) == current.number(0);
    let same_minor = same_major && candidate.number(1) == current.number(1);
    let level_ok = match level {
        SemverLevel::All | SemverLevel::Major => true,
        SemverLevel::Minor => same_major,
        SemverLevel::Patch => same_minor,
    };
    if !level_ok {
        return false;
    }
    if level == SemverLevel::All || !match_pre_release || candidate.pre.is_empty() {
        // A stable release may always replace a pre-release it is newer than.
        return true;
    }
    // A pre-release only follows a pre-release of the same channel (-rc.1 → -rc.2).
    current.channel().is_some() && current.channel() == candidate.channel()
}

/// The newest candidate that is strictly newer than `current` and allowed.
fn newest_allowed(
    current: &Version,
    candidates: &[String],
    allowed: impl Fn(&Version) -> bool,
) -> Option<String> {
    candidates
        .iter()
        .filter_map(|t| Version::parse(t))
        .filter(|v| v > current && allowed(v))
        .max_by(|a, b| {
            a.cmp(b)
                .then_with(|| a.shape_score(current).cmp(&b.shape_score(current)))
                .then_with(|| b.original.cmp(&a.original))
        })
        .map(|v| v.original)
}

/// A version tag: optional `v`, two to four numeric parts, optional `-pre.release` and `+build`.
#[derive(Debug, Clone)]
pub struct Version {
    numbers: Vec<u64>,
    pre: Vec<PreId>,
    has_v_prefix: bool,
    original: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PreId {
    // Declaration order is the semver rule: numeric identifiers sort before alphanumeric ones.
    Numeric(u64),
    Alpha(String),
}

impl Version {
    /// Parses a tag; `None` when it is not a version (Keel's `1.2` and `1.2.3.4` both are).
    pub fn parse(tag: &str) -> Option<Self> {
        let (has_v_prefix, rest) = match tag.strip_prefix(['v', 'V']) {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let (rest, _build) = match rest.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (rest, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let numbers: Vec<u64> = core
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    part.parse().ok()
                }
            })
            .collect::<Option<_>>()?;
        if !(2..=4).contains(&numbers.len()) {
            return None;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        None
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        Some(
                            id.parse()
                                .map_or_else(|_| PreId::Alpha(id.to_string()), PreId::Numeric),
                        )
                    } else {
                        Some(PreId::Alpha(id.to_string()))
                    }
                })
                .collect::<Option<_>>()?,
        };
        Some(Self {
            numbers,
            pre,
            has_v_prefix,
            original: tag.to_string(),
        })
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    fn number(&self, index: usize) -> u64 {
        self.numbers.get(index).copied().unwrap_or(0)
    }

    /// The pre-release channel: `rc` for `-rc.1`, `-rc1` or `-rc-1`; `None` for a stable release.
    fn channel(&self) -> Option<String> {
        let first = self.pre.first()?;
        Some(match first {
            PreId::Numeric(_) => String::new(),
            PreId::Alpha(id) => id
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .trim_end_matches(['-', '_'])
                .to_ascii_lowercase(),
        })
    }

    /// Among equal versions, prefer the one written like the current tag (`v` prefix, part count).
    fn shape_score(&self, current: &Version) -> u8 {
        u8::from(self.has_v_prefix == current.has_v_prefix)
            + u8::from(self.numbers.len() == current.numbers.len())
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (0..4)
            .map(|i| self.number(i).cmp(&other.number(i)))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    fn pick(policy: &str, current: &str, candidates: &[&str]) -> Option<String> {
        let policy = Policy::parse(policy).expect("valid policy");
        match policy.select(current, &tags(candidates)) {
            Selection::Update(tag) => Some(tag),
            _ => None,
        }
    }

    #[test]
    fn semver_levels() {
        let available = [
            "1.2.3",
            "1.2.4",
            "1.3.0",
            "2.0.0",
            "0.9.0",
            "latest",
            "1.2.5-rc.1",
        ];
        let table: &[(&str, &str, Option<&str>)] = &[
            ("patch", "1.2.3", Some("1.2.4")),
            ("minor", "1.2.3", Some("1.3.0")),
            ("major", "1.2.3", Some("2.0.0")),
            ("all", "1.2.3", Some("2.0.0")),
            ("major", "2.0.0", None),
            ("patch", "1.2.4", None),
            ("minor", "0.9.0", None),
            ("major", "0.9.0", Some("2.0.0")),
        ];
        for (policy, current, want) in table {
            assert_eq!(
                pick(policy, current, &available).as_deref(),
                *want,
                "{policy} from {current}"
            );
        }
    }

    #[test]
    fn keel_bad_case_string_ordering_1_9_vs_1_10() {
        // Keel's glob/regexp policies compared strings, so 1.9 beat 1.10.
        let available = ["1.8", "1.9", "1.10", "1.11-beta"];
        assert_eq!(pick("minor", "1.8", &available).as_deref(), Some("1.10"));
        assert_eq!(
            pick("glob:1.*", "1.8", &available).as_deref(),
            Some("1.11-beta")
        );
        assert_eq!(
            pick("regexp:^1\\.[0-9]+$", "1.8", &available).as_deref(),
            Some("1.10")
        );
        let policy = Policy::parse("glob:build-*").expect("valid");
        let builds = tags(&["build-9", "build-10", "build-100", "build-2"]);
        assert_eq!(
            policy.order(&builds),
            vec!["build-100", "build-10", "build-9", "build-2"]
        );
    }

    #[test]
    fn keel_bad_case_regexp_ignoring_the_current_tag() {
        // Keel's regexp policy accepted any match, so it could move 1.5 back to 1.4.
        assert_eq!(pick("regexp:^1\\.[0-9]+$", "1.5", &["1.4", "1.3"]), None);
        assert_eq!(pick("glob:1.*", "1.5", &["1.4"]), None);
        // The current tag itself is never an update.
        assert_eq!(pick("regexp:^1\\..*$", "1.5", &["1.5"]), None);
    }

    #[test]
    fn never_downgrades_under_any_policy() {
        let older = ["1.0.0", "0.1.0", "1.1.9"];
        for policy in [
            "all",
            "major",
            "minor",
            "patch",
            "force",
            "glob:*",
            "regexp:.*",
        ] {
            assert_eq!(pick(policy, "1.2.0", &older), None, "{policy}");
        }
    }

    #[test]
    fn pre_release_channels() {
        let available = [
            "1.2.0-rc.1",
            "1.2.0-rc.2",
            "1.2.0-rc.10",
            "1.2.0-beta.5",
            "1.3.0-alpha.1",
        ];
        // -rc.10 after -rc.2 (numeric identifiers), beta ignored (another channel).
        assert_eq!(
            pick("patch", "1.2.0-rc.1", &available).as_deref(),
            Some("1.2.0-rc.10")
        );
        // A stable release replaces a pre-release of the same version.
        assert_eq!(
            pick("patch", "1.2.0-rc.2", &["1.2.0", "1.2.0-rc.3"]).as_deref(),
            Some("1.2.0")
        );
        // Keel compared pre-release strings for equality, so rc.1 never moved to rc.2.
        assert_eq!(
            pick("minor", "1.2.0-rc1", &["1.2.0-rc2", "1.2.0-beta3"]).as_deref(),
            Some("1.2.0-rc2")
        );
        // A stable current tag does not move to a pre-release when matchPreRelease is on.
        assert_eq!(pick("major", "1.1.0", &["1.2.0-rc.1"]), None);
        // `all` follows pre-releases, as in Keel.
        assert_eq!(
            pick("all", "1.1.0", &["1.2.0-rc.1"]).as_deref(),
            Some("1.2.0-rc.1")
        );
        // matchPreRelease false: any newer version, pre-release or not.
        let relaxed = Policy::parse_with(
            "major",
            PolicyOptions {
                match_pre_release: false,
                ..Default::default()
            },
        )
        .expect("valid");
        assert_eq!(
            relaxed.select("1.1.0", &tags(&["1.2.0-beta.1"])),
            Selection::Update("1.2.0-beta.1".into())
        );
    }

    #[test]
    fn semver_spec_precedence() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for pair in ordered.windows(2) {
            let (Some(a), Some(b)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            let (a, b) = (Version::parse(a).expect("a"), Version::parse(b).expect("b"));
            assert!(a < b, "{} < {}", a.as_str(), b.as_str());
        }
    }

    #[test]
    fn version_forms() {
        assert_eq!(
            pick("minor", "v1.2", &["v1.3", "v1.10"]).as_deref(),
            Some("v1.10")
        );
        assert_eq!(
            pick("patch", "v1.2.3", &["1.2.4"]).as_deref(),
            Some("1.2.4")
        );
        // Four-part versions compare numerically instead of being rejected.
        assert_eq!(
            pick("patch", "1.2.3.4", &["1.2.3.10", "1.2.3.9", "1.3.0.0"]).as_deref(),
            Some("1.2.3.10")
        );
        assert_eq!(
            pick("major", "1.2.3.4", &["1.2.4"]).as_deref(),
            Some("1.2.4")
        );
        for not_version in [
            "latest",
            "1",
            "1.2.3.4.5",
            "a.b",
            "1..2",
            "1.2-",
            "1.2.3-rc..1",
            "v",
        ] {
            assert!(Version::parse(not_version).is_none(), "{not_version}");
        }
        // Equal versions written differently: prefer the current tag's style.
        assert_eq!(
            pick("patch", "v1.2.3", &["1.2.4", "v1.2.4", "1.2.4.0"]).as_deref(),
            Some("v1.2.4")
        );
        assert_eq!(pick("patch", "1.2", &["1.2.0"]), None);
    }

    #[test]
    fn latest_moves_only_with_force() {
        for policy in ["all", "major", "minor", "patch", "glob:*", "regexp:.*"] {
            let policy = Policy::parse(policy).expect("valid");
            assert_eq!(
                policy.select("latest", &tags(&["1.0.0", "latest"])),
                Selection::Hold(HoldReason::LatestNeedsForce),
                "{policy}"
            );
        }
        let force = Policy::parse("force").expect("valid");
        assert_eq!(
            force.select("latest", &tags(&["1.0.0"])),
            Selection::WatchDigest("latest".into())
        );
        assert_eq!(
            force.select("", &tags(&["1.0.0"])),
            Selection::WatchDigest("latest".into())
        );
    }

    #[test]
    fn force_with_and_without_match_tag() {
        let force = Policy::parse("force").expect("valid");
        assert_eq!(
            force.select("1.0.0", &tags(&["1.0.0", "2.0.0-rc.1", "0.5.0"])),
            Selection::Update("2.0.0-rc.1".into())
        );
        assert_eq!(
            force.select("2.0.0", &tags(&["1.0.0"])),
            Selection::WatchDigest("2.0.0".into())
        );
        let match_tag = Policy::parse_with(
            "force",
            PolicyOptions {
                match_tag: true,
                ..Default::default()
            },
        )
        .expect("valid");
        assert_eq!(
            match_tag.select("1.0.0", &tags(&["1.0.0", "2.0.0"])),
            Selection::WatchDigest("1.0.0".into())
        );
    }

    #[test]
    fn regexp_compare_group() {
        let policy = Policy::parse(r"regexp:^build-(?P<compare>\d+)-[a-f0-9]+$").expect("valid");
        let available = tags(&["build-9-abc", "build-10-0ff", "build-100-aaa", "other"]);
        assert_eq!(
            policy.select("build-9-abc", &available),
            Selection::Update("build-100-aaa".into())
        );
        assert_eq!(
            policy.order(&available),
            vec!["build-100-aaa", "build-10-0ff", "build-9-abc"]
        );
        assert!(matches!(
            policy.select("build-1000-fff", &available),
            Selection::Hold(HoldReason::UpToDate { .. })
        ));
        let loose = Policy::parse(r"regexp:^(build-(?P<compare>\d+)|x)$").expect("valid");
        assert!(matches!(
            loose.select("x", &tags(&["build-3"])),
            Selection::Hold(HoldReason::CurrentHasNoCompareGroup { .. })
        ));
    }

    #[test]
    fn glob_and_regexp_need_a_matching_current_tag() {
        assert!(matches!(
            Policy::parse("glob:release-*")
                .expect("valid")
                .select("dev", &tags(&["release-2"])),
            Selection::Hold(HoldReason::CurrentNotMatching { .. })
        ));
        assert_eq!(
            pick(
                "glob:release-*",
                "release-2026-01-09",
                &["release-2026-01-10", "dev-2027"]
            )
            .as_deref(),
            Some("release-2026-01-10")
        );
    }

    #[test]
    fn glob_matching() {
        let table = [
            ("*", "anything", true),
            ("1.*", "1.2.3", true),
            ("1.*", "2.1", false),
            ("1.?", "1.2", true),
            ("1.?", "1.22", false),
            ("*-alpine", "1.2-alpine", true),
            ("*-alpine", "1.2-alpine3", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("", "", true),
        ];
        for (pattern, text, want) in table {
            assert_eq!(glob_match(pattern, text), want, "{pattern} vs {text}");
        }
    }

    #[test]
    fn parsing_policies() {
        for (value, name) in [
            ("all", "all"),
            (" Major ", "major"),
            ("minor", "minor"),
            ("patch", "patch"),
            ("force", "force"),
            ("never", "never"),
            ("glob:1.*", "glob:1.*"),
            ("regexp:^v\\d+$", "regexp:^v\\d+$"),
        ] {
            assert_eq!(Policy::parse(value).expect(value).to_string(), name);
        }
        assert!(matches!(
            Policy::parse("sometimes"),
            Err(PolicyError::Unknown(_))
        ));
        assert!(matches!(
            Policy::parse("glob:"),
            Err(PolicyError::EmptyPattern(_))
        ));
        let err = Policy::parse("regexp:(").expect_err("invalid regexp");
        assert!(err.to_string().contains("regexp:("), "{err}");
    }

    #[test]
    fn never_holds() {
        assert_eq!(
            Policy::parse("never")
                .expect("valid")
                .select("1.0.0", &tags(&["2.0.0"])),
            Selection::Hold(HoldReason::PolicyNever)
        );
    }

    #[test]
    fn order_lists_newest_first() {
        let available = tags(&["1.9.0", "latest", "1.10.0", "1.10.0-rc.1", "v2.0", "junk"]);
        let semver = Policy::parse("all").expect("valid");
        assert_eq!(
            semver.order(&available),
            vec!["v2.0", "1.10.0", "1.10.0-rc.1", "1.9.0"]
        );
        let force = Policy::parse("force").expect("valid");
        assert_eq!(
            force.order(&available),
            vec!["v2.0", "1.10.0", "1.10.0-rc.1", "1.9.0", "latest", "junk"]
        );
    }

    /// Deterministic pseudo-random tag sets: whatever the policy picks is a candidate, newer
    /// than the current tag, and the newest allowed one.
    #[test]
    fn selections_are_always_newer_candidates() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let shapes = [
            "{a}.{b}.{c}",
            "v{a}.{b}",
            "{a}.{b}.{c}-rc.{d}",
            "{a}.{b}.{c}.{d}",
            "x{a}",
        ];
        for round in 0..300 {
            let mut make = || {
                let shape = shapes[(next() % shapes.len() as u64) as usize];
                shape
                    .replace("{a}", &(next() % 4).to_string())
                    .replace("{b}", &(next() % 12).to_string())
                    .replace("{c}", &(next() % 12).to_string())
                    .replace("{d}", &(next() % 12).to_string())
            };
            let current = make();
            let candidates: Vec<String> = (0..20).map(|_| make()).collect();
            for text in [
                "all",
                "major",
                "minor",
                "patch",
                "force",
                "glob:*",
                "regexp:^[0-9]",
            ] {
                let policy = Policy::parse(text).expect("valid policy");
                if let Selection::Update(tag) = policy.select(&current, &candidates) {
                    assert!(
                        candidates.contains(&tag),
                        "round {round} {text}: {tag} not offered"
                    );
                    if let (Some(new), Some(old)) = (Version::parse(&tag), Version::parse(&current))
                    {
                        assert!(
                            new > old,
                            "round {round} {text}: {tag} is not newer than {current}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn natural_ordering() {
        assert_eq!(natural_cmp("1.10", "1.9"), Ordering::Greater);
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
        assert_eq!(natural_cmp("007", "7"), Ordering::Less);
        assert_eq!(
            natural_cmp("99999999999999999999999999", "100000000000000000000000000"),
            Ordering::Less
        );
    }
}
