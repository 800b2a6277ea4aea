//! Sprig's regex functions over Go's RE2 syntax (ASCII `\d \w \s \b`, as Go's regexp).

use std::sync::Arc;

use regex_automata::meta::{self, Regex};
use regex_automata::util::captures::Captures;
use regex_automata::{Input, MatchKind};

use super::args;
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("regexMatch", regex_match),
        ("mustRegexMatch", regex_match),
        ("regexFindAll", regex_find_all),
        ("mustRegexFindAll", regex_find_all),
        ("regexFind", regex_find),
        ("mustRegexFind", regex_find),
        ("regexReplaceAll", regex_replace_all),
        ("mustRegexReplaceAll", regex_replace_all),
        ("regexReplaceAllLiteral", regex_replace_all_literal),
        ("mustRegexReplaceAllLiteral", regex_replace_all_literal),
        ("regexSplit", regex_split),
        ("mustRegexSplit", regex_split),
        ("regexQuoteMeta", regex_quote_meta),
    ]
}

/// Rewrites Go's ASCII-only Perl classes to explicit ASCII sets (Rust's are Unicode-aware).
fn go_to_rust_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('s') => out.push_str("[\\t\\n\\f\\r ]"),
            Some('S') => out.push_str("[^\\t\\n\\f\\r ]"),
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Distinct patterns kept compiled per process: charts call `regexReplaceAll` & co. with the
/// same literal pattern from helpers included hundreds of times, and building a regex (its
/// DFA) costs far more than running it (about 40% of a bitnami chart's render, profiled).
/// Bounded so a template generating patterns cannot grow it without limit.
const REGEX_CACHE_CAPACITY: usize = 512;

static REGEX_CACHE: std::sync::LazyLock<
    std::sync::Mutex<crate::functions::FastMap<String, Arc<Regex>>>,
> = std::sync::LazyLock::new(Default::default);

/// `regexp.Compile` with Go's error prefix; compiled patterns are reused.
fn compile(pattern: &str) -> Result<Arc<Regex>, FuncError> {
    if let Some(re) = REGEX_CACHE
        .lock()
        .ok()
        .and_then(|cache| cache.get(pattern).cloned())
    {
        return Ok(re);
    }
    let re = compile_uncached(pattern)?;
    if let Ok(mut cache) = REGEX_CACHE.lock()
        && cache.len() < REGEX_CACHE_CAPACITY
    {
        cache.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

/// Builds a regex as the `regex` crate's `Regex::new` does (same syntax, match semantics and
/// limits), except without the fully compiled DFA: that DFA is built only because another crate
/// in the tree (tracing-subscriber's filter) enables it, costs ~0.6M instructions per short
/// pattern (a quarter of a bitnami chart's execution, for a handful of patterns), and gains
/// nothing on the short strings templates match, which the lazy DFA handles.
fn compile_uncached(pattern: &str) -> Result<Arc<Regex>, FuncError> {
    let config = meta::Config::new()
        .nfa_size_limit(Some(10 * (1 << 20)))
        .hybrid_cache_capacity(2 * (1 << 20))
        .match_kind(MatchKind::LeftmostFirst)
        .utf8_empty(true)
        .dfa(false);
    let built = meta::Builder::new()
        .configure(config)
        .syntax(regex_automata::util::syntax::Config::new().utf8(true))
        .build(&go_to_rust_pattern(pattern));
    built.map(Arc::new).map_err(|e| {
        let detail = match (e.size_limit(), e.syntax_error()) {
            (Some(limit), _) => format!("Compiled regex exceeds size limit of {limit} bytes."),
            (None, Some(syntax)) => syntax.to_string(),
            (None, None) => e.to_string(),
        };
        let last = detail
            .lines()
            .last()
            .unwrap_or("invalid pattern")
            .trim()
            .to_string();
        format!(
            "error parsing regexp: {}: `{pattern}`",
            last.trim_start_matches("error: ")
        )
    })
}

fn regex_match(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("regexMatch", args, 2)?;
    let re = compile(args::string(args, 0)?)?;
    Ok(Value::Bool(re.is_match(args::string(args, 1)?)))
}

/// Go's `FindAllString`/`FindAllStringIndex`: empty matches right after a match are skipped.
fn find_all(re: &Regex, s: &str, n: i64) -> Vec<(usize, usize)> {
    if n == 0 {
        return Vec::new();
    }
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut previous_end: Option<usize> = None;
    for m in re.find_iter(s) {
        let m = m.range();
        if m.start == m.end && previous_end == Some(m.start) {
            continue;
        }
        out.push((m.start, m.end));
        previous_end = Some(m.end);
        if n > 0 && out.len() as i64 >= n {
            break;
        }
    }
    out
}

fn regex_find_all(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("regexFindAll", args, 3)?;
    let re = compile(args::string(args, 0)?)?;
    let s = args::string(args, 1)?;
    let n = args::int(args, 2)?;
    Ok(Value::list(
        find_all(&re, s, n)
            .into_iter()
            .map(|(a, b)| Value::from(&s[a..b])),
    ))
}

fn regex_find(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("regexFind", args, 2)?;
    let re = compile(args::string(args, 0)?)?;
    let s = args::string(args, 1)?;
    Ok(Value::from(re.find(s).map(|m| &s[m.range()]).unwrap_or("")))
}

/// Go's `Regexp.Expand` template syntax (`$1`, `${name}`, `$$`) turned into literal text.
fn expand(template: &str, caps: &Captures, haystack: &str) -> String {
    let mut out = String::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            let next = template[i..]
                .find('$')
                .map(|p| i + p)
                .unwrap_or(template.len());
            out.push_str(&template[i..next]);
            i = next;
            continue;
        }
        i += 1;
        if i < bytes.len() && bytes[i] == b'$' {
            out.push('$');
            i += 1;
            continue;
        }
        let (name, consumed) = if i < bytes.len() && bytes[i] == b'{' {
            match template[i + 1..].find('}') {
                Some(end) => {
                    let name = &template[i + 1..i + 1 + end];
                    let valid =
                        !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                    if valid {
                        (Some(name), end + 2)
                    } else {
                        (None, 0)
                    }
                }
                None => (None, 0),
            }
        } else {
            let len = template[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .map(char::len_utf8)
                .sum::<usize>();
            if len > 0 {
                (Some(&template[i..i + len]), len)
            } else {
                (None, 0)
            }
        };
        match name {
            None => out.push('$'),
            Some(name) => {
                i += consumed;
                let group = match name.parse::<usize>() {
                    Ok(index) => caps.get_group(index),
                    Err(_) => caps.get_group_by_name(name),
                };
                if let Some(text) = group.and_then(|span| haystack.get(span.range())) {
                    out.push_str(text);
                }
            }
        }
    }
    out
}

fn regex_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("regexReplaceAll", args, 3)?;
    let re = compile(args::string(args, 0)?)?;
    let s = args::string(args, 1)?;
    let replacement = args::string(args, 2)?;
    let mut out = String::new();
    let mut last = 0;
    let matches = find_all(&re, s, -1);
    let mut caps = re.create_captures();
    for (start, end) in matches {
        out.push_str(&s[last..start]);
        re.search_captures(&Input::new(s).span(start..s.len()), &mut caps);
        if caps.get_match().is_some_and(|m| m.start() == start) {
            out.push_str(&expand(replacement, &caps, s));
        }
        last = end;
    }
    out.push_str(&s[last..]);
    Ok(Value::String(out))
}

fn regex_replace_all_literal(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("regexReplaceAllLiteral", args, 3)?;
    let re = compile(args::string(args, 0)?)?;
    let s = args::string(args, 1)?;
    let replacement = args::string(args, 2)?;
    let mut out = String::new();
    let mut last = 0;
    for (start, end) in find_all(&re, s, -1) {
        out.push_str(&s[last..start]);
        out.push_str(replacement);
        last = end;
    }
    out.push_str(&s[last..]);
    Ok(Value::String(out))
}

fn regex_split(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("regexSplit", args, 3)?;
    let pattern = args::string(args, 0)?;
    let re = compile(pattern)?;
    let s = args::string(args, 1)?;
    let n = args::int(args, 2)?;
    if n == 0 {
        return Ok(Value::list([]));
    }
    if !pattern.is_empty() && s.is_empty() {
        return Ok(Value::list([Value::from("")]));
    }
    let mut parts: Vec<Value> = Vec::new();
    let (mut begin, mut end) = (0, 0);
    for (start, stop) in find_all(&re, s, n) {
        if n > 0 && parts.len() as i64 == n - 1 {
            break;
        }
        end = start;
        if stop != 0 {
            parts.push(Value::from(&s[begin..end]));
        }
        begin = stop;
    }
    if end != s.len() {
        parts.push(Value::from(&s[begin..]));
    }
    Ok(Value::list(parts))
}

fn regex_quote_meta(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("regexQuoteMeta", args, 1)?;
    let s = args::string(args, 0)?;
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    #[test]
    fn regex_functions_follow_go() {
        assert!(matches!(
            regex_match(&[s(r"^\d+$"), s("123")]),
            Ok(Value::Bool(true))
        ));
        assert!(matches!(
            regex_match(&[s(r"^\d+$"), s("١٢")]),
            Ok(Value::Bool(false))
        ));
        assert!(
            matches!(regex_replace_all(&[s("a(x*)b"), s("-ab-axxb-"), s("${1}W")]), Ok(Value::String(r)) if r == "-W-xxW-")
        );
        assert!(
            matches!(regex_replace_all(&[s("a(x*)b"), s("-ab-axxb-"), s("$1W")]), Ok(Value::String(r)) if r == "---")
        );
        assert!(
            matches!(regex_replace_all_literal(&[s("a(x*)b"), s("-ab-axxb-"), s("${1}")]), Ok(Value::String(r)) if r == "-${1}-${1}-")
        );
        assert!(
            matches!(regex_find(&[s("[a-z]+"), s("123abc456")]), Ok(Value::String(r)) if r == "abc")
        );
        assert!(
            matches!(regex_find_all(&[s("a."), s("a1a2a3"), Value::Int(2)]), Ok(Value::List(v)) if v.len() == 2)
        );
        assert!(
            matches!(regex_split(&[s("z+"), s("pizza"), Value::Int(-1)]), Ok(Value::List(v)) if v.len() == 2)
        );
        assert!(matches!(regex_quote_meta(&[s("1.5+")]), Ok(Value::String(r)) if r == r"1\.5\+"));
        assert!(regex_match(&[s("("), s("x")]).is_err());
    }
}
