//! Masterminds/semver v3.3.0 versions and constraints (Helm 3's), as Sprig's `semver` and
//! `semverCompare` and Helm's dependency and `kubeVersion` checks use them (`2.x.x`, `~1.2`,
//! `^0.3`, `>=1.21.0-0`, `1.0 - 2.0`, `a || b`), with Masterminds' error texts.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;

const SEMVER: &str = r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const CONSTRAINT_VERSION: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

struct Patterns {
    version: Regex,
    constraint: Regex,
    range: Regex,
    find: Regex,
    valid: Regex,
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    Some(Patterns {
        version: Regex::new(&format!("^{SEMVER}$")).ok()?,
        constraint: Regex::new(&format!(r"^\s*({OPS})\s*({CONSTRAINT_VERSION})\s*$")).ok()?,
        range: Regex::new(&format!(
            r"\s*({CONSTRAINT_VERSION})\s+-\s+({CONSTRAINT_VERSION})\s*"
        ))
        .ok()?,
        find: Regex::new(&format!(r"({OPS})\s*({CONSTRAINT_VERSION})")).ok()?,
        valid: Regex::new(&format!(
            r"^(\s*({OPS})\s*({CONSTRAINT_VERSION})\s*)((?:\s+|,\s*)({OPS})\s*({CONSTRAINT_VERSION})\s*)*$"
        ))
        .ok()?,
    })
});

fn patterns() -> Result<&'static Patterns, String> {
    PATTERNS
        .as_ref()
        .ok_or_else(|| "semver patterns failed to compile".to_string())
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
        let caps = patterns()?
            .version
            .captures(text)
            .ok_or_else(|| "Invalid Semantic Version".to_string())?;
        let segment = |i: usize| -> Result<u64, String> {
            match caps.get(i) {
                None => Ok(0),
                Some(m) => m.as_str().trim_start_matches('.').parse::<u64>().map_err(|_| {
                    format!(
                        "Error parsing version segment: strconv.ParseUint: parsing {}: value out of range",
                        crate::strconv::quote(m.as_str().trim_start_matches('.'))
                    )
                }),
            }
        };
        let version = Version {
            major: segment(1)?,
            minor: segment(2)?,
            patch: segment(3)?,
            pre: caps
                .get(5)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            metadata: caps
                .get(8)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
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

fn parse_constraint(text: &str) -> Result<Constraint, String> {
    let p = patterns()?;
    if text.is_empty() {
        return Ok(Constraint {
            version: Version::parse("0.0.0")?,
            op: String::new(),
            minor_dirty: false,
            patch_dirty: false,
            dirty: true,
        });
    }
    let caps = p
        .constraint
        .captures(text)
        .ok_or_else(|| format!("improper constraint: {text}"))?;
    let group = |i: usize| caps.get(i).map(|m| m.as_str()).unwrap_or("");
    let (m3, m4, m5, m6) = (group(3), group(4), group(5), group(6));
    let mut version_text = group(2).to_string();
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
        op: group(1).to_string(),
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
    let p = patterns()?;
    let mut rewritten = text.to_string();
    for caps in p.range.captures_iter(text) {
        let whole = caps.get(0).map(|m| m.as_str()).unwrap_or("");
        let low = caps.get(1).map(|m| m.as_str()).unwrap_or("");
        let high = caps.get(11).map(|m| m.as_str()).unwrap_or("");
        rewritten = rewritten.replacen(whole, &format!(">= {low}, <= {high} "), 1);
    }
    let mut groups = Vec::new();
    for part in rewritten.split("||") {
        if !p.valid.is_match(part) {
            return Err(format!("improper constraint: {part}"));
        }
        let found: Vec<&str> = p.find.find_iter(part).map(|m| m.as_str()).collect();
        let found = if found.is_empty() { vec![part] } else { found };
        let constraints = found
            .into_iter()
            .map(parse_constraint)
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(constraints);
    }
    Ok(groups
        .iter()
        .any(|group| group.iter().all(|c| c.check(version))))
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

    #[test]
    fn lenient_versions() {
        assert!(parse_version("v1.2").is_some());
        assert!(parse_version("1.2.3-rc.1+build").is_some());
        assert!(parse_version("abc").is_none());
        assert!(parse_version("1.2.3.4").is_none());
    }
}
