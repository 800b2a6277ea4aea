//! `.helmignore` rules (pkg/ignore) and Go's `filepath.Match`, which they and `--show-only` use.

/// One parsed `.helmignore` line.
#[derive(Clone, Debug)]
struct Rule {
    pattern: String,
    /// The pattern as characters, split once: every file of the chart is matched against it.
    pattern_chars: Vec<char>,
    /// A literal, or leading `*`s and then a literal: [`go_match`] needs no character vectors.
    star_suffix: bool,
    negate: bool,
    must_dir: bool,
    /// `/x`: matched against the whole path from the chart root.
    anchored: bool,
    /// Contains `/`: matched against the whole path; otherwise against the base name.
    structural: bool,
}

/// The rules of one `.helmignore` file plus Helm's default (`templates/.?*`).
#[derive(Clone, Debug)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Only Helm's default rule: hidden files under `templates/` are ignored.
    pub fn defaults() -> Self {
        let mut rules = IgnoreRules { rules: Vec::new() };
        rules.add("templates/.?*").ok();
        rules
    }

    /// Parses a `.helmignore` file (after the default rule, as Helm does).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Self::defaults();
        for line in text.lines() {
            rules.add(line)?;
        }
        Ok(rules)
    }

    fn add(&mut self, line: &str) -> Result<(), String> {
        let mut rule = line.trim();
        if rule.is_empty() || rule.starts_with('#') {
            return Ok(());
        }
        if rule.contains("**") {
            return Err("double-star (**) syntax is not supported".into());
        }
        if go_match(rule, "abc").is_err() {
            return Err(format!("syntax error in pattern {rule:?}"));
        }
        let negate = rule.starts_with('!');
        if negate {
            rule = &rule[1..];
        }
        let must_dir = rule.ends_with('/');
        if must_dir {
            rule = &rule[..rule.len() - 1];
        }
        let anchored = rule.starts_with('/');
        let structural = !anchored && rule.contains('/');
        let pattern = rule.trim_start_matches('/').to_string();
        self.rules.push(Rule {
            pattern_chars: pattern.chars().collect(),
            star_suffix: !pattern
                .trim_start_matches('*')
                .contains(['*', '?', '[', '\\']),
            pattern,
            negate,
            must_dir,
            anchored,
            structural,
        });
        Ok(())
    }

    /// `Rules.Ignore`: whether a chart-relative path is left out of the chart.
    pub fn ignore(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." || path == "./" {
            return false;
        }
        let base = path.rsplit('/').next().unwrap_or(path);
        let (mut path_chars, mut base_chars) = (None, None);
        for rule in &self.rules {
            let whole = rule.anchored || rule.structural;
            let target = if whole { path } else { base };
            // Patterns were checked when the file was read, so a malformed one cannot turn up
            // here; Go's `Match` reports it only as an error, which Helm treats as no match.
            let matched = if rule.star_suffix {
                go_match(&rule.pattern, target).unwrap_or(false)
            } else {
                let chars = if whole {
                    path_chars.get_or_insert_with(|| path.chars().collect::<Vec<char>>())
                } else {
                    base_chars.get_or_insert_with(|| base.chars().collect::<Vec<char>>())
                };
                match_from(&rule.pattern_chars, 0, chars, 0).unwrap_or(false)
            };
            if rule.negate {
                // Helm's negation: a non-match (or a file for a dir-only rule) means ignore.
                if rule.must_dir && !is_dir {
                    return true;
                }
                if !matched {
                    return true;
                }
                continue;
            }
            if rule.must_dir && !is_dir {
                continue;
            }
            if matched {
                return true;
            }
        }
        false
    }
}

/// Go's `filepath.ErrBadPattern`: a pattern with an unclosed class or a trailing backslash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Go's `path/filepath.Match` on `/`-separated names: `*`, `?`, `[...]`, `\` escapes.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    // Most .helmignore patterns are a literal name or `*` and a literal suffix: those need
    // neither the char vectors nor the backtracking below (charts load ~1000 such matches).
    let literal = pattern.trim_start_matches('*');
    if !literal.contains(['*', '?', '[', '\\']) {
        if literal.len() == pattern.len() {
            return Ok(pattern == name);
        }
        return Ok(name.ends_with(literal) && !name[..name.len() - literal.len()].contains('/'));
    }
    go_match_general(pattern, name)
}

fn go_match_general(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let matched = match_from(&p, 0, &n, 0)?;
    if !matched {
        // Go still reports a malformed pattern even when the name does not match.
        validate(&p)?;
    }
    Ok(matched)
}

fn validate(p: &[char]) -> Result<(), BadPattern> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(BadPattern);
                }
                i += 2;
            }
            '[' => {
                let (_, next) = class(p, i, None)?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn match_from(p: &[char], mut pi: usize, n: &[char], mut ni: usize) -> Result<bool, BadPattern> {
    while pi < p.len() {
        match p[pi] {
            '*' => {
                while pi < p.len() && p[pi] == '*' {
                    pi += 1;
                }
                if pi == p.len() {
                    return Ok(!n[ni..].contains(&'/'));
                }
                let mut k = ni;
                loop {
                    if match_from(p, pi, n, k)? {
                        return Ok(true);
                    }
                    if k >= n.len() || n[k] == '/' {
                        return Ok(false);
                    }
                    k += 1;
                }
            }
            '?' => {
                if ni >= n.len() || n[ni] == '/' {
                    return Ok(false);
                }
                pi += 1;
                ni += 1;
            }
            '[' => {
                let Some(&c) = n.get(ni) else {
                    class(p, pi, None)?;
                    return Ok(false);
                };
                let (ok, next) = class(p, pi, Some(c))?;
                if !ok || c == '/' {
                    return Ok(false);
                }
                pi = next;
                ni += 1;
            }
            '\\' => {
                let Some(&lit) = p.get(pi + 1) else {
                    return Err(BadPattern);
                };
                if n.get(ni) != Some(&lit) {
                    return Ok(false);
                }
                pi += 2;
                ni += 1;
            }
            lit => {
                if n.get(ni) != Some(&lit) {
                    return Ok(false);
                }
                pi += 1;
                ni += 1;
            }
        }
    }
    Ok(ni == n.len())
}

/// Parses the class starting at `p[start] == '['`; returns whether `c` is in it and the index
/// after `]`.
fn class(p: &[char], start: usize, c: Option<char>) -> Result<(bool, usize), BadPattern> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&ch) = p.get(i) else {
            return Err(BadPattern);
        };
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = class_char(p, &mut i)?;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1) != Some(&']') {
            i += 1;
            hi = class_char(p, &mut i)?;
        }
        if let Some(c) = c
            && lo <= c
            && c <= hi
        {
            matched = true;
        }
    }
    Ok((matched != negated, i))
}

fn class_char(p: &[char], i: &mut usize) -> Result<char, BadPattern> {
    match p.get(*i) {
        None | Some('-') | Some(']') => Err(BadPattern),
        Some('\\') => {
            let c = *p.get(*i + 1).ok_or(BadPattern)?;
            *i += 2;
            Ok(c)
        }
        Some(&c) => {
            *i += 1;
            Ok(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_star_suffix_patterns_match_as_the_general_matcher() {
        let patterns = [
            "", "*", "**", "a", "*.swp", "**.swp", "*~", ".git", "a/b", "*/b", "*b", "é*",
        ];
        let names = [
            "", "a", "b", "x.swp", ".swp", "d/x.swp", "a/b", "c/a/b", "ab", "b~", "~", ".git", "é",
            "x/é", "aé.swp",
        ];
        for pattern in patterns {
            for name in names {
                assert_eq!(
                    go_match(pattern, name),
                    go_match_general(pattern, name),
                    "{pattern:?} {name:?}"
                );
            }
        }
    }

    #[test]
    fn go_match_semantics() {
        assert_eq!(go_match("*.yaml", "a.yaml"), Ok(true));
        assert_eq!(go_match("*.yaml", "t/a.yaml"), Ok(false));
        assert_eq!(go_match("templates/*", "templates/a.yaml"), Ok(true));
        assert_eq!(go_match("a?c", "abc"), Ok(true));
        assert_eq!(go_match("[a-c]x", "bx"), Ok(true));
        assert_eq!(go_match("[^a-c]x", "bx"), Ok(false));
        assert_eq!(go_match("\\*", "*"), Ok(true));
        assert!(go_match("[", "x").is_err());
    }

    #[test]
    fn helmignore_rules() {
        let rules = IgnoreRules::parse("# comment\n*.tgz\nci/\n/secret.txt\ndocs/*.md\n")
            .unwrap_or_else(|_| IgnoreRules::defaults());
        assert!(rules.ignore("charts/x.tgz", false));
        assert!(rules.ignore("ci", true));
        assert!(!rules.ignore("ci", false));
        assert!(rules.ignore("secret.txt", false));
        assert!(!rules.ignore("sub/secret.txt", false));
        assert!(rules.ignore("docs/a.md", false));
        assert!(rules.ignore("templates/.hidden", false));
        assert!(!rules.ignore("templates/a.yaml", false));
        assert!(IgnoreRules::parse("a/**/b\n").is_err());
    }
}
