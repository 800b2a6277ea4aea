//! Masterminds/semver v3 versions and constraints, as Helm checks dependency versions and
//! `kubeVersion` (`2.x.x`, `~1.2`, `^0.3`, `>=1.21.0-0`, `1.0 - 2.0`, `a || b`).

use std::cmp::Ordering;

/// A lenient semantic version (`v1.2`, `1` are accepted, as Masterminds' `NewVersion` does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
}

impl Version {
    fn cmp_to(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(&self.pre, &other.pre))
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(i), Ok(j)) => i.cmp(&j),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Parses a version; `None` when it is not one.
pub fn parse_version(text: &str) -> Option<Version> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let (core, _build) = text.split_once('+').unwrap_or((text, ""));
    let (core, pre) = core.split_once('-').unwrap_or((core, ""));
    let mut parts = core.split('.');
    let mut number = |required: bool| -> Option<u64> {
        match parts.next() {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
            Some(_) => None,
            None if required => None,
            None => Some(0),
        }
    };
    let major = number(true)?;
    let minor = number(false)?;
    let patch = number(false)?;
    if parts.next().is_some() {
        return None;
    }
    if !pre.is_empty()
        && !pre
            .split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
        pre: pre.to_string(),
    })
}

/// `chartutil.IsCompatibleRange`: whether `version` satisfies `constraint`. An unparsable
/// constraint or version is not compatible.
pub fn is_compatible_range(constraint: &str, version: &str) -> bool {
    let Some(version) = parse_version(version) else {
        return false;
    };
    let Some(groups) = parse_constraint(constraint) else {
        return false;
    };
    groups
        .iter()
        .any(|group| group.iter().all(|term| term.allows(&version)))
}

/// One comparison with a (possibly wildcarded) version.
#[derive(Clone, Debug)]
struct Term {
    op: String,
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: String,
}

impl Term {
    fn base(&self) -> Version {
        Version {
            major: self.major.unwrap_or(0),
            minor: self.minor.unwrap_or(0),
            patch: self.patch.unwrap_or(0),
            pre: self.pre.clone(),
        }
    }

    fn allows(&self, v: &Version) -> bool {
        // A prerelease only satisfies terms that themselves name a prerelease.
        if !v.pre.is_empty() && self.pre.is_empty() {
            return false;
        }
        let base = self.base();
        let cmp = v.cmp_to(&base);
        let wildcard_upper = || -> Option<Version> {
            match (self.major, self.minor, self.patch) {
                (None, _, _) => None,
                (Some(ma), None, _) => Some(bump(ma + 1, 0, 0)),
                (Some(ma), Some(mi), None) => Some(bump(ma, mi + 1, 0)),
                _ => None,
            }
        };
        match self.op.as_str() {
            "" | "=" => match wildcard_upper() {
                Some(upper) => cmp != Ordering::Less && v.cmp_to(&upper) == Ordering::Less,
                None if self.major.is_none() => true,
                None => cmp == Ordering::Equal,
            },
            "!=" => match wildcard_upper() {
                Some(upper) => cmp == Ordering::Less || v.cmp_to(&upper) != Ordering::Less,
                None => cmp != Ordering::Equal,
            },
            ">" => match wildcard_upper() {
                Some(upper) => v.cmp_to(&upper) != Ordering::Less,
                None => cmp == Ordering::Greater,
            },
            ">=" | "=>" => cmp != Ordering::Less,
            "<" => cmp == Ordering::Less,
            "<=" | "=<" => match wildcard_upper() {
                Some(upper) => v.cmp_to(&upper) == Ordering::Less,
                None => cmp != Ordering::Greater,
            },
            "~" | "~>" => {
                let upper = match (self.major, self.minor) {
                    (Some(ma), None) => bump(ma + 1, 0, 0),
                    (Some(ma), Some(mi)) => bump(ma, mi + 1, 0),
                    _ => return true,
                };
                cmp != Ordering::Less && v.cmp_to(&upper) == Ordering::Less
            }
            "^" => {
                let upper = match (self.major, self.minor, self.patch) {
                    (None, _, _) => return true,
                    (Some(0), None, _) => bump(1, 0, 0),
                    (Some(0), Some(0), None) => bump(0, 1, 0),
                    (Some(0), Some(0), Some(p)) => bump(0, 0, p + 1),
                    (Some(0), Some(mi), _) => bump(0, mi + 1, 0),
                    (Some(ma), _, _) => bump(ma + 1, 0, 0),
                };
                cmp != Ordering::Less && v.cmp_to(&upper) == Ordering::Less
            }
            _ => false,
        }
    }
}

/// The smallest version at or above a bound: a `-0` prerelease so prereleases of it sort above.
fn bump(major: u64, minor: u64, patch: u64) -> Version {
    Version {
        major,
        minor,
        patch,
        pre: String::new(),
    }
}

fn parse_constraint(text: &str) -> Option<Vec<Vec<Term>>> {
    let mut groups = Vec::new();
    for group in text.split("||") {
        let group = group.trim();
        let mut terms = Vec::new();
        // Hyphen ranges: "a - b".
        let tokens: Vec<&str> = group
            .split([',', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let mut i = 0;
        let mut pending_op: Option<&str> = None;
        while i < tokens.len() {
            let token = tokens[i];
            if tokens.get(i + 1) == Some(&"-") {
                let low = parse_term(&format!(">={token}"))?;
                let high_text = tokens.get(i + 2)?;
                let high = parse_term(&format!("<={high_text}"))?;
                terms.push(low);
                terms.push(high);
                i += 3;
                continue;
            }
            if token.chars().all(|c| "<>=!~^".contains(c)) {
                // An operator separated from its version by a space.
                pending_op = Some(token);
                i += 1;
                continue;
            }
            let full = match pending_op.take() {
                Some(op) => format!("{op}{token}"),
                None => token.to_string(),
            };
            terms.push(parse_term(&full)?);
            i += 1;
        }
        if terms.is_empty() {
            return None;
        }
        groups.push(terms);
    }
    Some(groups)
}

fn parse_term(text: &str) -> Option<Term> {
    let op_len = text
        .char_indices()
        .find(|(_, c)| !"<>=!~^".contains(*c))
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    let (op, version) = text.split_at(op_len);
    let version = version.trim().strip_prefix('v').unwrap_or(version.trim());
    let (core, _build) = version.split_once('+').unwrap_or((version, ""));
    let (core, pre) = core.split_once('-').unwrap_or((core, ""));
    let mut numbers = [None, None, None];
    for (slot, part) in core.split('.').enumerate() {
        if slot >= 3 {
            return None;
        }
        numbers[slot] = match part {
            "x" | "X" | "*" => None,
            p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
            _ => return None,
        };
        // After a wildcard every later part is a wildcard too.
        if numbers[slot].is_none() {
            break;
        }
    }
    Some(Term {
        op: op.to_string(),
        major: numbers[0],
        minor: numbers[1],
        patch: numbers[2],
        pre: pre.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
