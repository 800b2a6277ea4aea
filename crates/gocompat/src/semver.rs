//! Masterminds/semver v3.3.0 versions and constraints (Helm 3's), as Sprig's `semver` and
//! `semverCompare` and Helm's dependency and `kubeVersion` checks use them (`2.x.x`, `~1.2`,
//! `^0.3`, `>=1.21.0-0`, `1.0 - 2.0`, `a || b`), with Masterminds' error texts.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;

#[cfg(test)]
const SEMVER: &str = r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const CONSTRAINT_VERSION: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

// Each pattern is compiled on first use only: building one costs about a million instructions,
// more than a whole small chart's render, and most processes need none or one of them (the
// common shapes below are matched by hand).
static CONSTRAINT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"^\s*({OPS})\s*({CONSTRAINT_VERSION})\s*$")).ok());
static RANGE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\s*({CONSTRAINT_VERSION})\s+-\s+({CONSTRAINT_VERSION})\s*"
    ))
    .ok()
});
static FIND: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"({OPS})\s*({CONSTRAINT_VERSION})")).ok());
static VALID: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPS})\s*({CONSTRAINT_VERSION})\s*)((?:\s+|,\s*)({OPS})\s*({CONSTRAINT_VERSION})\s*)*$"
    ))
    .ok()
});

fn pattern(regex: &'static LazyLock<Option<Regex>>) -> Result<&'static Regex, String> {
    regex
        .as_ref()
        .ok_or_else(|| "semver patterns failed to compile".to_string())
}

/// Go's `\s` (RE2 Perl class): ASCII only, without vertical tab.
fn is_go_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

/// The pieces Masterminds' version pattern captures, as slices of the text: the numeric segments
/// and the prerelease and metadata without their `-`/`+`.
struct VersionParts<'a> {
    major: &'a str,
    minor: Option<&'a str>,
    patch: Option<&'a str>,
    pre: Option<&'a str>,
    metadata: Option<&'a str>,
}

/// Where a run of bytes accepted by `allowed` ends, starting at `from`.
fn run_end(bytes: &[u8], from: usize, allowed: impl Fn(u8) -> bool) -> usize {
    let mut at = from;
    while at < bytes.len() && allowed(bytes[at]) {
        at += 1;
    }
    at
}

/// `[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*` from `from`: its end, or `None` when it is empty or a dot
/// is not followed by an identifier character (the pattern then cannot match the whole text).
fn dotted_identifiers_end(bytes: &[u8], from: usize) -> Option<usize> {
    let identifier = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let mut at = run_end(bytes, from, identifier);
    if at == from {
        return None;
    }
    while at < bytes.len() && bytes[at] == b'.' {
        let end = run_end(bytes, at + 1, identifier);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    Some(at)
}

/// `v?(SEG)(\.SEG)?(\.SEG)?(-PRE)?(\+META)?` matched against `bytes[from..to]` as a whole,
/// where SEG is a run of `segment` bytes. Every piece is delimited by a byte the piece before it
/// cannot contain, so the greedy reading here is the only one the regex can match.
fn split_version_at(
    text: &str,
    from: usize,
    to: usize,
    segment: impl Fn(u8) -> bool + Copy,
) -> Option<VersionParts<'_>> {
    let bytes = &text.as_bytes()[..to];
    let mut at = from;
    if bytes.get(at) == Some(&b'v') {
        at += 1;
    }
    let major_end = run_end(bytes, at, segment);
    if major_end == at {
        return None;
    }
    let major = &text[at..major_end];
    at = major_end;
    let numeric = |at: &mut usize| -> Option<&str> {
        if bytes.get(*at) != Some(&b'.') {
            return None;
        }
        let end = run_end(bytes, *at + 1, segment);
        if end == *at + 1 {
            return None;
        }
        let piece = &text[*at + 1..end];
        *at = end;
        Some(piece)
    };
    let minor = numeric(&mut at);
    let patch = if minor.is_some() {
        numeric(&mut at)
    } else {
        None
    };
    let tail = |at: &mut usize, marker: u8| -> Option<Option<&str>> {
        if bytes.get(*at) != Some(&marker) {
            return Some(None);
        }
        let end = dotted_identifiers_end(bytes, *at + 1)?;
        let piece = &text[*at + 1..end];
        *at = end;
        Some(Some(piece))
    };
    let pre = tail(&mut at, b'-')?;
    let metadata = tail(&mut at, b'+')?;
    (at == to).then_some(VersionParts {
        major,
        minor,
        patch,
        pre,
        metadata,
    })
}

/// `[0-9|x|X|\*]`: the constraint pattern's segment class (the `|` is literal inside it).
fn is_constraint_segment(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'|' | b'x' | b'X' | b'*')
}

/// What `^\s*(OPS)\s*(CONSTRAINT_VERSION)\s*$` captures, read by hand: the operator, the whole
/// version text, major, `.minor`, `.patch` and `-prerelease` (with their separators, as the
/// regex groups hold them). `None` when the text has another shape, or whitespace that Rust's
/// `\s` and Go's `\s` could disagree on; the caller then asks the regex.
struct ConstraintParts<'a> {
    op: &'a str,
    version: &'a str,
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    pre: &'a str,
}

fn split_constraint(text: &str) -> Option<ConstraintParts<'_>> {
    let bytes = text.as_bytes();
    if !text.is_ascii() {
        return None;
    }
    let start = run_end(bytes, 0, is_go_space);
    // Operator characters cannot begin a version, so the operator the regex settles on (after
    // trying its alternatives in order) is always the whole run of them, when the run is one.
    let op_end = run_end(bytes, start, |b| {
        matches!(b, b'=' | b'!' | b'>' | b'<' | b'~' | b'^')
    });
    let op = &text[start..op_end];
    if !matches!(
        op,
        "" | "=" | "!=" | ">" | "<" | ">=" | "=>" | "<=" | "=<" | "~" | "~>" | "^"
    ) {
        return None;
    }
    let version_start = run_end(bytes, op_end, is_go_space);
    let mut version_end = bytes.len();
    while version_end > version_start && is_go_space(bytes[version_end - 1]) {
        version_end -= 1;
    }
    let parts = split_version_at(text, version_start, version_end, is_constraint_segment)?;
    let with_separator = |piece: Option<&str>| match piece {
        // The piece is a slice of `text`, so its separator is the byte before it.
        Some(piece) => {
            let offset = piece.as_ptr() as usize - text.as_ptr() as usize;
            &text[offset - 1..offset + piece.len()]
        }
        None => "",
    };
    Some(ConstraintParts {
        op,
        version: &text[version_start..version_end],
        major: parts.major,
        minor: with_separator(parts.minor),
        patch: with_separator(parts.patch),
        pre: with_separator(parts.pre),
    })
}

/// A parsed semantic version (`*semver.Version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub metadata: String,
    /// The text it was parsed from.
    pub original: String,
}

fn only(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.chars().all(allowed)
}

fn validate_prerelease(pre: &str) -> Result<(), String> {
    for part in pre.split('.') {
        if only(part, |c| c.is_ascii_digit()) {
            if part.len() > 1 && part.starts_with('0') {
                return Err("Version segment starts with 0".to_string());
            }
        } else if !only(part, |c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("Invalid Prerelease string".to_string());
        }
    }
    Ok(())
}

impl Version {
    /// `semver.NewVersion` (lenient: `v` prefix, missing minor/patch).
    pub fn parse(text: &str) -> Result<Version, String> {
        let parts = split_version_at(text, 0, text.len(), |b| b.is_ascii_digit())
            .ok_or_else(|| "Invalid Semantic Version".to_string())?;
        let segment = |piece: Option<&str>| -> Result<u64, String> {
            match piece {
                None => Ok(0),
                Some(digits) => digits.parse::<u64>().map_err(|_| {
                    format!(
                        "Error parsing version segment: strconv.ParseUint: parsing {}: value out of range",
                        crate::strconv::quote(digits)
                    )
                }),
            }
        };
        let version = Version {
            major: segment(Some(parts.major))?,
            minor: segment(parts.minor)?,
            patch: segment(parts.patch)?,
            pre: parts.pre.unwrap_or_default().to_string(),
            metadata: parts.metadata.unwrap_or_default().to_string(),
            original: text.to_string(),
        };
        if !version.pre.is_empty() {
            validate_prerelease(&version.pre)?;
        }
        if !version.metadata.is_empty()
            && version
                .metadata
                .split('.')
                .any(|p| !only(p, |c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err("Invalid Metadata string".to_string());
        }
        Ok(version)
    }

    pub fn compare(&self, other: &Version) -> Ordering {
        self.major
            .cmp(&other.major)
            .then(self.minor.cmp(&other.minor))
            .then(self.patch.cmp(&other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let ap: Vec<&str> = a.split('.').collect();
    let bp: Vec<&str> = b.split('.').collect();
    for i in 0..ap.len().max(bp.len()) {
        let s = ap.get(i).copied().unwrap_or("");
        let o = bp.get(i).copied().unwrap_or("");
        let d = compare_pre_part(s, o);
        if d != Ordering::Equal {
            return d;
        }
    }
    Ordering::Equal
}

fn compare_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => {
            if s > o {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Ok(si), Ok(oi)) => {
            if si > oi {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
    }
}

#[derive(Debug)]
struct Constraint {
    version: Version,
    op: String,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "*" | "X")
}

/// How constraints are read: by hand wherever the text has a shape that allows it, or always
/// with Masterminds' own patterns (the reference the hand reading is tested against).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    ByHand,
    #[cfg_attr(not(test), allow(dead_code))]
    Patterns,
}

fn parse_constraint(text: &str, reading: Reading) -> Result<Constraint, String> {
    if text.is_empty() {
        return Ok(Constraint {
            version: Version::parse("0.0.0")?,
            op: String::new(),
            minor_dirty: false,
            patch_dirty: false,
            dirty: true,
        });
    }
    let by_hand = match reading {
        Reading::ByHand => split_constraint(text),
        Reading::Patterns => None,
    };
    match by_hand {
        Some(parts) => constraint_from_parts(&parts),
        None => {
            let caps = pattern(&CONSTRAINT)?
                .captures(text)
                .ok_or_else(|| format!("improper constraint: {text}"))?;
            let group = |i: usize| caps.get(i).map(|m| m.as_str()).unwrap_or("");
            constraint_from_parts(&ConstraintParts {
                op: group(1),
                version: group(2),
                major: group(3),
                minor: group(4),
                patch: group(5),
                pre: group(6),
            })
        }
    }
}

/// Masterminds' `parseConstraint` after its regex: wildcards and missing segments make the
/// constraint "dirty" and are read as zeros.
fn constraint_from_parts(parts: &ConstraintParts<'_>) -> Result<Constraint, String> {
    let (m3, m4, m5, m6) = (parts.major, parts.minor, parts.patch, parts.pre);
    let mut version_text = parts.version.to_string();
    let (mut minor_dirty, mut patch_dirty, mut dirty) = (false, false, false);
    if is_x(m3) || m3.is_empty() {
        version_text = format!("0.0.0{m6}");
        dirty = true;
    } else if is_x(m4.trim_start_matches('.')) || m4.is_empty() {
        minor_dirty = true;
        dirty = true;
        version_text = format!("{m3}.0.0{m6}");
    } else if is_x(m5.trim_start_matches('.')) || m5.is_empty() {
        dirty = true;
        patch_dirty = true;
        version_text = format!("{m3}{m4}.0{m6}");
    }
    let version =
        Version::parse(&version_text).map_err(|_| "constraint Parser Error".to_string())?;
    Ok(Constraint {
        version,
        op: parts.op.to_string(),
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

impl Constraint {
    fn check(&self, v: &Version) -> bool {
        let c = &self.version;
        let pre_blocked = !v.pre.is_empty() && c.pre.is_empty();
        match self.op.as_str() {
            "" | "=" => {
                if pre_blocked {
                    return false;
                }
                if self.dirty {
                    return self.tilde(v);
                }
                v.compare(c) == Ordering::Equal
            }
            "!=" => {
                if self.dirty {
                    if pre_blocked {
                        return false;
                    }
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            ">" => {
                if pre_blocked {
                    return false;
                }
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major > c.major {
                    true
                } else if v.major < c.major || self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    v.compare(c) == Ordering::Greater
                }
            }
            "<" => !pre_blocked && v.compare(c) == Ordering::Less,
            ">=" | "=>" => !pre_blocked && v.compare(c) != Ordering::Less,
            "<=" | "=<" => {
                if pre_blocked {
                    return false;
                }
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            "~" | "~>" => !pre_blocked && self.tilde(v),
            "^" => {
                if pre_blocked || v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if c.major == 0 && v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if c.minor == 0 && v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
            _ => false,
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if !v.pre.is_empty() && c.pre.is_empty() {
            return false;
        }
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

/// `semver.NewConstraint(text).Check(version)`.
pub fn constraint_matches(text: &str, version: &Version) -> Result<bool, String> {
    constraint_matches_read(text, version, Reading::ByHand)
}

fn constraint_matches_read(
    text: &str,
    version: &Version,
    reading: Reading,
) -> Result<bool, String> {
    let mut rewritten = text.to_string();
    if reading == Reading::Patterns || may_hold_range(text) {
        for caps in pattern(&RANGE)?.captures_iter(text) {
            let whole = caps.get(0).map(|m| m.as_str()).unwrap_or("");
            let low = caps.get(1).map(|m| m.as_str()).unwrap_or("");
            let high = caps.get(11).map(|m| m.as_str()).unwrap_or("");
            rewritten = rewritten.replacen(whole, &format!(">= {low}, <= {high} "), 1);
        }
    }
    let mut groups = Vec::new();
    for part in rewritten.split("||") {
        // A part that is one constraint as a whole is valid, and the regex finds exactly it.
        if reading == Reading::ByHand
            && let Some(parts) = split_constraint(part)
        {
            groups.push(vec![constraint_from_parts(&parts)?]);
            continue;
        }
        if !pattern(&VALID)?.is_match(part) {
            return Err(format!("improper constraint: {part}"));
        }
        let found: Vec<&str> = pattern(&FIND)?
            .find_iter(part)
            .map(|m| m.as_str())
            .collect();
        let found = if found.is_empty() { vec![part] } else { found };
        let constraints = found
            .into_iter()
            .map(|one| parse_constraint(one, reading))
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(constraints);
    }
    Ok(groups
        .iter()
        .any(|group| group.iter().all(|c| c.check(version))))
}

/// Whether the range pattern (`A - B`, a dash with whitespace on both sides) can match at all;
/// its regex is then not needed.
fn may_hold_range(text: &str) -> bool {
    let mut chars = text.chars();
    let (mut before, mut at) = (chars.next(), chars.next());
    for after in chars {
        if at == Some('-') && before.is_some_and(char::is_whitespace) && after.is_whitespace() {
            return true;
        }
        (before, at) = (at, Some(after));
    }
    false
}

/// `semver.NewVersion`; `None` when it is not a version.
pub fn parse_version(text: &str) -> Option<Version> {
    Version::parse(text).ok()
}

/// `chartutil.IsCompatibleRange`: whether `version` satisfies `constraint`. An unparsable
/// constraint or version is not compatible.
pub fn is_compatible_range(constraint: &str, version: &str) -> bool {
    parse_version(version).is_some_and(|v| constraint_matches(constraint, &v).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(constraint: &str, version: &str) -> bool {
        let v = Version::parse(version);
        assert!(v.is_ok(), "{version}");
        v.and_then(|v| constraint_matches(constraint, &v))
            .unwrap_or(false)
    }

    #[test]
    fn constraints_follow_masterminds() {
        assert!(check(">=1.19-0", "1.30.0"));
        assert!(check(">=1.19-0", "v1.30.0-gke.100"));
        assert!(!check(">=1.19", "v1.30.0-gke.100"));
        assert!(check(">=1.19", "1.30.0"));
        assert!(check("<1.19", "1.18.9"));
        assert!(check("^1.2.3", "1.9.0"));
        assert!(!check("^1.2.3", "2.0.0"));
        assert!(check("~1.2.3", "1.2.9"));
        assert!(!check("~1.2.3", "1.3.0"));
        assert!(check("1.2.x", "1.2.7"));
        assert!(check(">= 1.2, < 3.0", "2.5.0"));
        assert!(check("1.0 - 2.0", "1.5.0"));
        assert!(check("<1.0 || >=2.0", "2.1.0"));
        assert!(check("*", "4.0.0"));
        assert!(check("!=1.2.3", "1.2.4"));
        assert!(
            constraint_matches(
                "bogus",
                &Version::parse("1.0.0").unwrap_or_else(|_| unreachable!())
            )
            .is_err()
        );
        assert!(Version::parse("not-a-version").is_err());
    }

    #[test]
    fn ranges_like_masterminds() {
        assert!(is_compatible_range("2.x.x", "2.31.4"));
        assert!(!is_compatible_range("2.x.x", "3.0.0"));
        assert!(is_compatible_range("~1.2", "1.2.9"));
        assert!(!is_compatible_range("~1.2", "1.3.0"));
        assert!(is_compatible_range("^0.3.1", "0.3.5"));
        assert!(!is_compatible_range("^0.3.1", "0.4.0"));
        assert!(is_compatible_range(">=1.21.0-0", "v1.30.0"));
        assert!(is_compatible_range(">= 1.19.0 < 1.31", "1.30.0"));
        assert!(!is_compatible_range(">=1.0, <1.5", "1.5.0"));
        assert!(is_compatible_range("1.0 - 2.0", "1.7.3"));
        assert!(is_compatible_range("<1 || >=3", "3.1.0"));
        assert!(is_compatible_range("*", "5.0.0"));
        assert!(is_compatible_range("1.2.3", "1.2.3"));
        assert!(!is_compatible_range("1.2.3", "1.2.4-rc.1"));
        assert!(!is_compatible_range("not a range", "1.0.0"));
    }

    /// The regex readings the hand-written ones replace, kept as the reference.
    fn version_by_regex(text: &str) -> Option<(u64, u64, u64, String, String)> {
        let regex = Regex::new(&format!("^{SEMVER}$")).ok()?;
        let caps = regex.captures(text)?;
        let number = |i: usize| {
            caps.get(i)
                .map_or(Some(0), |m| m.as_str().trim_start_matches('.').parse().ok())
        };
        let text_of = |i: usize| {
            caps.get(i)
                .map_or(String::new(), |m| m.as_str().to_string())
        };
        Some((number(1)?, number(2)?, number(3)?, text_of(5), text_of(8)))
    }

    fn constraint_by_regex(text: &str, version: &Version) -> Result<bool, String> {
        constraint_matches_read(text, version, Reading::Patterns)
    }

    /// A small deterministic generator (xorshift) of texts over the characters the patterns
    /// care about, so both readings meet every shape: separators in odd places, wildcards,
    /// operators, whitespace, commas and `||`.
    fn odd_texts(count: usize, alphabet: &[&str]) -> Vec<String> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 12) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn hand_reading_of_versions_agrees_with_masterminds_pattern() {
        let alphabet = [
            "1", "0", "2", "9", ".", ".", "-", "+", "v", "a", "Z", "x", " ",
        ];
        let mut matched = 0;
        for text in odd_texts(10_000, &alphabet) {
            let by_hand = Version::parse(&text)
                .ok()
                .map(|v| (v.major, v.minor, v.patch, v.pre, v.metadata));
            let reference = version_by_regex(&text);
            // The regex reading has no prerelease checks; compare where the hand one accepts.
            if let Some(hand) = &by_hand {
                assert_eq!(Some(hand), reference.as_ref(), "{text:?}");
                matched += 1;
            } else if let Some(r) = &reference {
                assert!(
                    !r.3.is_empty() || !r.4.is_empty(),
                    "the pattern accepts {text:?} but the reading refused it"
                );
            }
        }
        assert!(
            matched > 300,
            "the generator must reach valid versions: {matched}"
        );
    }

    #[test]
    fn hand_reading_of_constraints_agrees_with_masterminds_patterns() {
        let alphabet = [
            "1", "0", "2", ".", ".", "-", "+", "x", "*", "|", "||", "=", ">", "<", "~", "^", "!",
            " ", ",", "v", "a", "\t", " - ",
        ];
        let versions: Vec<Version> = ["0.0.0", "1.2.3", "1.2.3-rc.1", "2.0.0", "10.1.0+b"]
            .iter()
            .filter_map(|v| Version::parse(v).ok())
            .collect();
        assert_eq!(versions.len(), 5);
        let mut accepted = 0;
        for text in odd_texts(10_000, &alphabet) {
            for version in &versions {
                let by_hand = constraint_matches(&text, version);
                let reference = constraint_by_regex(&text, version);
                assert_eq!(by_hand, reference, "{text:?} against {version}");
                accepted += usize::from(by_hand.is_ok());
            }
        }
        assert!(
            accepted > 1000,
            "the generator must reach valid constraints: {accepted}"
        );
    }

    #[test]
    fn lenient_versions() {
        assert!(parse_version("v1.2").is_some());
        assert!(parse_version("1.2.3-rc.1+build").is_some());
        assert!(parse_version("abc").is_none());
        assert!(parse_version("1.2.3.4").is_none());
    }
}
