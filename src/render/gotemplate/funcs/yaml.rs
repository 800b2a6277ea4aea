//! Helm's YAML functions: toYaml (sigs.k8s.io/yaml = encoding/json then go-yaml v2's emitter),
//! toYamlPretty (go-yaml v3, indent 2), fromYaml/fromYamlArray (go-yaml v2 → JSON → float64).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use saphyr_parser::{Event, Parser, ScalarStyle};

use super::args;
use super::conv::parse_go_int;
use super::gofmt::format_float;
use super::json::{JsonError, go_json_float};
use super::{Func, FuncError};
use crate::render::gotemplate::value::Value;
use crate::values::yaml::AliasGuard;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("toYaml", to_yaml_fn),
        ("mustToYaml", must_to_yaml),
        ("toYamlPretty", to_yaml_pretty_fn),
        ("fromYaml", from_yaml),
        ("fromYamlArray", from_yaml_array),
    ]
}

// ---------------------------------------------------------------------------------------------
// The tree go-yaml v2 marshals after sigs.k8s.io/yaml's JSON round trip.

/// A node as go-yaml v2 sees the JSON document it re-reads: map keys are strings, numbers
/// are already in the text form the emitter writes.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Bool(bool),
    /// An int, uint or float already formatted as go-yaml writes it.
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// Converts a template value the way `json.Marshal` then go-yaml's `Unmarshal` would.
fn to_node(value: &Value) -> Result<Node, JsonError> {
    Ok(match value {
        Value::Nil => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Int(i) => Node::Number(i.to_string()),
        Value::Float(f) => Node::Number(yaml_number_after_json(*f)?),
        Value::String(s) => Node::Str(string_after_json(s, false)?),
        Value::Bytes(bytes) => {
            use base64::Engine as _;
            Node::Str(base64::engine::general_purpose::STANDARD.encode(&**bytes))
        }
        Value::List(items) => Node::Seq(items.iter().map(to_node).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut entries = map
                .iter()
                .map(|(k, v)| Ok((string_after_json(k, true)?, to_node(v)?)))
                .collect::<Result<Vec<_>, JsonError>>()?;
            entries.sort_by(|(a, _), (b, _)| go_yaml_key_order(a, b));
            Node::Map(entries)
        }
        Value::Object(object) if object.as_complex().is_some() => {
            return Err(JsonError("json: unsupported type: complex128".to_string()));
        }
        Value::Object(object) => to_node(&object.to_serializable())?,
    })
}

/// A string as go-yaml reads it back from the JSON text encoding/json wrote: characters the
/// YAML reader rejects fail the whole document, and a raw NEL (which JSON leaves alone but
/// YAML 1.1 reads as a line break) is folded like any line break in a double-quoted scalar
/// (and breaks a key).
fn string_after_json(s: &str, key: bool) -> Result<String, JsonError> {
    let rejected = |c: char| matches!(c as u32, 0x7F..=0x84 | 0x86..=0x9F | 0xFFFE | 0xFFFF);
    if s.chars().any(rejected) {
        return Err(JsonError(
            "yaml: control characters are not allowed".to_string(),
        ));
    }
    if !s.contains('\u{85}') {
        return Ok(s.to_string());
    }
    if key {
        return Err(JsonError("yaml: could not find expected ':'".to_string()));
    }
    let parts: Vec<&str> = s.split('\u{85}').collect();
    let mut out = String::new();
    let mut pending_breaks = 0usize;
    for (i, part) in parts.iter().enumerate() {
        let mut text = *part;
        if i > 0 {
            text = text.trim_start_matches([' ', '\t']);
        }
        if i + 1 < parts.len() {
            text = text.trim_end_matches([' ', '\t']);
        }
        if i > 0 {
            pending_breaks += 1;
            if text.is_empty() && i + 1 < parts.len() {
                continue;
            }
            if pending_breaks == 1 {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(pending_breaks - 1));
            }
            pending_breaks = 0;
        }
        out.push_str(text);
    }
    Ok(out)
}

/// A float64 goes out as JSON text and comes back through go-yaml's resolver: integral JSON
/// text becomes an int (or uint), anything else a float printed with `%g`-shortest.
fn yaml_number_after_json(f: f64) -> Result<String, JsonError> {
    let json = go_json_float(f)?;
    if let Some(i) = parse_go_int(&json, 10) {
        return Ok(i.to_string());
    }
    if json.bytes().all(|b| b.is_ascii_digit()) && json.parse::<u64>().is_ok() {
        return Ok(json);
    }
    Ok(format_float(f, 'g', None))
}

/// go-yaml v2's `keyList.Less` for string keys: runs of digits compare as numbers and
/// non-letters sort before letters.
pub fn go_yaml_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let is_digit = |c: char| c.is_ascii_digit();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && is_digit(ar[j - 1]) {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && is_digit(ar[ai]) {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai].to_digit(10).unwrap_or(0)));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && is_digit(br[bi]) {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi].to_digit(10).unwrap_or(0)));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

// ---------------------------------------------------------------------------------------------
// go-yaml v2's resolver, as the encoder uses it to decide whether a string may stay plain.

static YAML_STYLE_FLOAT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").ok());
static BASE60_FLOAT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$").ok());
static TIMESTAMP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2}))|(?: ([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,][0-9]+)?))?$",
    )
    .ok()
});

fn regex_matches(regex: &LazyLock<Option<Regex>>, s: &str) -> bool {
    regex.as_ref().is_some_and(|r| r.is_match(s))
}

/// What a plain scalar means to go-yaml v2.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Timestamp,
    Merge,
    Str,
}

fn resolve_map(s: &str) -> Option<Resolved> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Resolved::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        "<<" => Resolved::Merge,
        _ => return None,
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) {
                29
            } else {
                28
            }
        }
    }
}

/// go-yaml v2's `parseTimestamp` through Go's `time.Parse` of its four layouts.
fn is_timestamp(s: &str) -> bool {
    let Some(Some(caps)) = TIMESTAMP.as_ref().map(|r| r.captures(s)) else {
        return false;
    };
    let num = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
    let (Some(year), Some(month), Some(day)) = (num(1), num(2), num(3)) else {
        return false;
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return false;
    }
    for (h, m, sec) in [(4, 5, 6), (7, 8, 9)] {
        if let (Some(hour), Some(minute), Some(second)) = (num(h), num(m), num(sec))
            && (hour > 23 || minute > 59 || second > 59)
        {
            return false;
        }
    }
    true
}

/// go-yaml v2's `resolve("", s)` for a plain scalar.
fn resolve_plain(s: &str) -> Resolved {
    let hint = s.as_bytes().first().copied();
    let hinted = match hint {
        None => true,
        Some(c) => matches!(c, b'+' | b'-' | b'.' | b'0'..=b'9') || b"yYnNtTfFoO~".contains(&c),
    };
    if !hinted {
        return Resolved::Str;
    }
    if let Some(resolved) = resolve_map(s) {
        return resolved;
    }
    match hint {
        Some(b'.') => {
            if let Some(f) = parse_float_strict(s) {
                return Resolved::Float(f);
            }
        }
        Some(b'+' | b'-' | b'0'..=b'9') => {
            if is_timestamp(s) {
                return Resolved::Timestamp;
            }
            let plain = s.replace('_', "");
            if let Some(i) = parse_go_int(&plain, 0) {
                return Resolved::Int(i);
            }
            if let Some(u) = parse_go_uint(&plain) {
                return Resolved::Uint(u);
            }
            if regex_matches(&YAML_STYLE_FLOAT, &plain)
                && let Some(f) = parse_float_strict(&plain)
            {
                return Resolved::Float(f);
            }
            if let Some(bits) = plain.strip_prefix("0b") {
                if let Ok(i) = i64::from_str_radix(bits, 2) {
                    return Resolved::Int(i);
                }
                if let Ok(u) = u64::from_str_radix(bits, 2) {
                    return Resolved::Uint(u);
                }
            } else if let Some(bits) = plain.strip_prefix("-0b")
                && let Ok(i) = i64::from_str_radix(&format!("-{bits}"), 2)
            {
                return Resolved::Int(i);
            }
        }
        _ => {}
    }
    Resolved::Str
}

/// `strconv.ParseUint(s, 0, 64)`.
fn parse_go_uint(s: &str) -> Option<u64> {
    if s.starts_with('-') || s.starts_with('+') {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

/// `strconv.ParseFloat(s, 64)` for decimal text (a range error counts as failure).
fn parse_float_strict(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return s.parse::<f64>().ok();
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    if f.is_infinite() { None } else { Some(f) }
}

fn is_base60_float(s: &str) -> bool {
    let Some(&c) = s.as_bytes().first() else {
        return false;
    };
    if !(c == b'+' || c == b'-' || c.is_ascii_digit()) || !s.contains(':') {
        return false;
    }
    regex_matches(&BASE60_FLOAT, s)
}

// ---------------------------------------------------------------------------------------------
// A port of go-yaml v2's emitter (emitterc.go) for the events its encoder produces.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

struct ScalarAnalysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn byte_at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn width(b: u8) -> usize {
    if b & 0x80 == 0 {
        1
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        3
    } else if b & 0xF8 == 0xF0 {
        4
    } else {
        1
    }
}

fn is_space(b: &[u8], i: usize) -> bool {
    byte_at(b, i) == b' '
}

fn is_break(b: &[u8], i: usize) -> bool {
    let c = byte_at(b, i);
    c == b'\r'
        || c == b'\n'
        || (c == 0xC2 && byte_at(b, i + 1) == 0x85)
        || (c == 0xE2 && byte_at(b, i + 1) == 0x80 && byte_at(b, i + 2) == 0xA8)
        || (c == 0xE2 && byte_at(b, i + 1) == 0x80 && byte_at(b, i + 2) == 0xA9)
}

fn is_blankz(b: &[u8], i: usize) -> bool {
    let c = byte_at(b, i);
    c == b' ' || c == b'\t' || is_break(b, i) || i >= b.len() || c == 0
}

fn is_blank(b: &[u8], i: usize) -> bool {
    let c = byte_at(b, i);
    c == b' ' || c == b'\t'
}

fn is_printable(b: &[u8], i: usize) -> bool {
    let c = byte_at(b, i);
    let c1 = byte_at(b, i + 1);
    let c2 = byte_at(b, i + 2);
    c == 0x0A
        || (0x20..=0x7E).contains(&c)
        || (c == 0xC2 && c1 >= 0xA0)
        || (c > 0xC2 && c < 0xED)
        || (c == 0xED && c1 < 0xA0)
        || c == 0xEE
        || (c == 0xEF && !(c1 == 0xBB && c2 == 0xBF) && !(c1 == 0xBF && (c2 == 0xBE || c2 == 0xBF)))
}

fn is_bom_start(b: &[u8]) -> bool {
    b.starts_with(&[0xEF, 0xBB, 0xBF])
}

/// `yaml_emitter_analyze_scalar`; `v3` applies go-yaml v3's rule that a tab keeps a scalar out
/// of plain and single-quoted styles but is fine in block scalars.
fn analyze_scalar(value: &[u8], v3: bool) -> ScalarAnalysis {
    if value.is_empty() {
        return ScalarAnalysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;
    let mut previous_space = false;
    let mut previous_break = false;
    let mut tabs = false;

    if value.starts_with(b"---") || value.starts_with(b"...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let mut preceded_by_whitespace = true;
    let mut i = 0;
    while i < value.len() {
        let w = width(value[i]);
        let followed_by_whitespace = i + w >= value.len() || is_blank(value, i + w);
        let c = value[i];
        if i == 0 {
            match c {
                b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>'
                | b'\'' | b'"' | b'%' | b'@' | b'`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                b'?' | b':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                b'-' if followed_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                b',' | b'?' | b'[' | b']' | b'{' | b'}' => flow_indicators = true,
                b':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                b'#' if preceded_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        }
        // The emitter is in unicode mode: only non-printable characters are special.
        if v3 && c == b'\t' {
            tabs = true;
        } else if !is_printable(value, i) {
            special_characters = true;
        }
        if is_space(value, i) {
            if i == 0 {
                leading_space = true;
            }
            if i + w == value.len() {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(value, i) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + w == value.len() {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(value, i);
        i += w;
    }
    let mut analysis = ScalarAnalysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
    }
    if trailing_space {
        analysis.block_allowed = false;
    }
    if break_space {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
        analysis.single_quoted_allowed = false;
    }
    if space_break || special_characters {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
        analysis.single_quoted_allowed = false;
        analysis.block_allowed = false;
    }
    if line_breaks || tabs {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
    }
    if tabs {
        analysis.single_quoted_allowed = false;
    }
    if flow_indicators {
        analysis.flow_plain_allowed = false;
    }
    if block_indicators {
        analysis.block_plain_allowed = false;
    }
    analysis
}

/// The emitter's state that survives between events.
struct Emitter {
    out: Vec<u8>,
    best_indent: i64,
    best_width: i64,
    indent: i64,
    indents: Vec<i64>,
    column: i64,
    whitespace: bool,
    indention: bool,
    flow_level: i64,
    /// go-yaml v3's scalar analysis (toYamlPretty) instead of v2's.
    v3: bool,
    root_context: bool,
    mapping_context: bool,
    simple_key_context: bool,
}

impl Emitter {
    fn new(best_indent: i64) -> Self {
        Emitter {
            out: Vec::new(),
            best_indent,
            best_width: 80,
            indent: -1,
            indents: Vec::new(),
            column: 0,
            whitespace: true,
            indention: true,
            flow_level: 0,
            v3: false,
            root_context: false,
            mapping_context: false,
            simple_key_context: false,
        }
    }

    fn put(&mut self, b: u8) {
        self.out.push(b);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push(b'\n');
        self.column = 0;
    }

    /// Copies one UTF-8 character, counting one column.
    fn write(&mut self, s: &[u8], i: &mut usize) {
        let w = width(s[*i]).min(s.len() - *i);
        self.out.extend_from_slice(&s[*i..*i + w]);
        self.column += 1;
        *i += w;
    }

    fn write_all(&mut self, s: &[u8]) {
        let mut i = 0;
        while i < s.len() {
            self.write(s, &mut i);
        }
    }

    fn write_break(&mut self, s: &[u8], i: &mut usize) {
        if s[*i] == b'\n' {
            self.put_break();
            *i += 1;
        } else {
            self.write(s, i);
            self.column = 0;
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { self.best_indent } else { 0 };
        } else if !indentless {
            self.indent += self.best_indent;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(b' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &[u8],
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(b' ');
        }
        self.write_all(indicator);
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn emit_node(
        &mut self,
        node: &Node,
        root: bool,
        sequence: bool,
        mapping: bool,
        simple_key: bool,
    ) {
        let _ = sequence;
        self.root_context = root;
        self.mapping_context = mapping;
        self.simple_key_context = simple_key;
        match node {
            Node::Null => self.emit_scalar(b"null", Style::Plain),
            Node::Bool(b) => self.emit_scalar(if *b { b"true" } else { b"false" }, Style::Plain),
            Node::Number(text) => self.emit_scalar(text.as_bytes(), Style::Plain),
            Node::Str(s) => {
                let can_use_plain = resolve_plain(s) == Resolved::Str && !is_base60_float(s);
                let style = if s.contains('\n') {
                    Style::Literal
                } else if can_use_plain {
                    Style::Plain
                } else {
                    Style::DoubleQuoted
                };
                self.emit_scalar(s.as_bytes(), style)
            }
            Node::Seq(items) => {
                if self.flow_level > 0 || items.is_empty() {
                    self.write_indicator(b"[", true, true, false);
                    self.increase_indent(true, false);
                    self.pop_indent();
                    self.write_indicator(b"]", false, false, false);
                    return;
                }
                let indentless = self.mapping_context && !self.indention;
                self.increase_indent(false, indentless);
                for item in items {
                    self.write_indent();
                    self.write_indicator(b"-", true, false, true);
                    self.emit_node(item, false, true, false, false);
                }
                self.pop_indent();
            }
            Node::Map(entries) => {
                if self.flow_level > 0 || entries.is_empty() {
                    self.write_indicator(b"{", true, true, false);
                    self.increase_indent(true, false);
                    self.pop_indent();
                    self.write_indicator(b"}", false, false, false);
                    return;
                }
                self.increase_indent(false, false);
                for (key, value) in entries {
                    self.write_indent();
                    let key_node = Node::Str(key.clone());
                    if check_simple_key(&key_node) {
                        self.emit_node(&key_node, false, false, true, true);
                        self.write_indicator(b":", false, false, false);
                    } else {
                        self.write_indicator(b"?", true, false, true);
                        self.emit_node(&key_node, false, false, true, false);
                        self.write_indent();
                        self.write_indicator(b":", true, false, true);
                    }
                    self.emit_node(value, false, false, true, false);
                }
                self.pop_indent();
            }
        }
    }

    fn emit_scalar(&mut self, value: &[u8], requested: Style) {
        let analysis = analyze_scalar(value, self.v3);
        let mut style = requested;
        if self.simple_key_context && analysis.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain {
            if (self.flow_level > 0 && !analysis.flow_plain_allowed)
                || (self.flow_level == 0 && !analysis.block_plain_allowed)
            {
                style = Style::SingleQuoted;
            }
            if value.is_empty() && (self.flow_level > 0 || self.simple_key_context) {
                style = Style::SingleQuoted;
            }
        }
        if style == Style::SingleQuoted && !analysis.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal
            && (!analysis.block_allowed || self.flow_level > 0 || self.simple_key_context)
        {
            style = Style::DoubleQuoted;
        }
        self.increase_indent(true, false);
        let allow_breaks = !self.simple_key_context;
        match style {
            Style::Plain => self.write_plain(value, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(value, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(value, allow_breaks),
            Style::Literal => self.write_literal(value),
        }
        self.pop_indent();
    }

    fn write_plain(&mut self, value: &[u8], allow_breaks: bool) {
        if !self.whitespace {
            self.put(b' ');
        }
        let mut spaces = false;
        let mut breaks = false;
        let mut i = 0;
        while i < value.len() {
            if is_space(value, i) {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width
                    && !is_space(value, i + 1)
                {
                    self.write_indent();
                    i += 1;
                } else {
                    self.write(value, &mut i);
                }
                spaces = true;
            } else if is_break(value, i) {
                if !breaks && value[i] == b'\n' {
                    self.put_break();
                }
                self.write_break(value, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(value, &mut i);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, value: &[u8], allow_breaks: bool) {
        self.write_indicator(b"'", true, false, false);
        let mut spaces = false;
        let mut breaks = false;
        let mut i = 0;
        while i < value.len() {
            if is_space(value, i) {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width
                    && i > 0
                    && i < value.len() - 1
                    && !is_space(value, i + 1)
                {
                    self.write_indent();
                    i += 1;
                } else {
                    self.write(value, &mut i);
                }
                spaces = true;
            } else if is_break(value, i) {
                if !breaks && value[i] == b'\n' {
                    self.put_break();
                }
                self.write_break(value, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if value[i] == b'\'' {
                    self.put(b'\'');
                }
                self.write(value, &mut i);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator(b"'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, value: &[u8], allow_breaks: bool) {
        let mut spaces = false;
        self.write_indicator(b"\"", true, false, false);
        let bom = is_bom_start(value);
        let mut i = 0;
        while i < value.len() {
            let c = value[i];
            if !is_printable(value, i) || bom || is_break(value, i) || c == b'"' || c == b'\\' {
                let w = width(c).min(value.len() - i);
                let decoded = std::str::from_utf8(&value[i..i + w])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .map(|ch| ch as u32)
                    .unwrap_or(u32::from(c));
                i += w;
                self.put(b'\\');
                match decoded {
                    0x00 => self.put(b'0'),
                    0x07 => self.put(b'a'),
                    0x08 => self.put(b'b'),
                    0x09 => self.put(b't'),
                    0x0A => self.put(b'n'),
                    0x0B => self.put(b'v'),
                    0x0C => self.put(b'f'),
                    0x0D => self.put(b'r'),
                    0x1B => self.put(b'e'),
                    0x22 => self.put(b'"'),
                    0x5C => self.put(b'\\'),
                    0x85 => self.put(b'N'),
                    0xA0 => self.put(b'_'),
                    0x2028 => self.put(b'L'),
                    0x2029 => self.put(b'P'),
                    v => {
                        let (letter, digits) = if v <= 0xFF {
                            (b'x', 2)
                        } else if v <= 0xFFFF {
                            (b'u', 4)
                        } else {
                            (b'U', 8)
                        };
                        self.put(letter);
                        for k in (0..digits).rev() {
                            let digit = ((v >> (k * 4)) & 0x0F) as u8;
                            self.put(if digit < 10 {
                                b'0' + digit
                            } else {
                                b'A' + digit - 10
                            });
                        }
                    }
                }
                spaces = false;
            } else if is_space(value, i) {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width
                    && i > 0
                    && i < value.len() - 1
                {
                    self.write_indent();
                    if is_space(value, i + 1) {
                        self.put(b'\\');
                    }
                    i += 1;
                } else {
                    self.write(value, &mut i);
                }
                spaces = true;
            } else {
                self.write(value, &mut i);
                spaces = false;
            }
        }
        self.write_indicator(b"\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_block_scalar_hints(&mut self, value: &[u8]) {
        if is_space(value, 0) || is_break(value, 0) {
            let hint = [b'0' + self.best_indent as u8];
            self.write_indicator(&hint, false, false, false);
        }
        let chomp = if value.is_empty() {
            Some(b'-')
        } else {
            let mut i = value.len() - 1;
            while i > 0 && value[i] & 0xC0 == 0x80 {
                i -= 1;
            }
            if !is_break(value, i) {
                Some(b'-')
            } else if i == 0 {
                Some(b'+')
            } else {
                i -= 1;
                while i > 0 && value[i] & 0xC0 == 0x80 {
                    i -= 1;
                }
                if is_break(value, i) { Some(b'+') } else { None }
            }
        };
        if let Some(chomp) = chomp {
            self.write_indicator(&[chomp], false, false, false);
        }
    }

    fn write_literal(&mut self, value: &[u8]) {
        self.write_indicator(b"|", true, false, false);
        self.write_block_scalar_hints(value);
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        let mut i = 0;
        while i < value.len() {
            if is_break(value, i) {
                self.write_break(value, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(value, &mut i);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// `yaml_emitter_check_simple_key` for a string key.
fn check_simple_key(key: &Node) -> bool {
    match key {
        Node::Str(s) => !analyze_scalar(s.as_bytes(), false).multiline && s.len() <= 128,
        _ => true,
    }
}

/// `yaml.Marshal` of go-yaml v2 over a tree (with the trailing newline).
fn emit_document(node: &Node) -> String {
    let mut emitter = Emitter::new(2);
    emitter.emit_node(node, true, false, false, false);
    // Document end: an implicit end just finishes the line.
    emitter.write_indent();
    String::from_utf8_lossy(&emitter.out).into_owned()
}

/// `sigs.k8s.io/yaml.Marshal(v)` (JSON first, then go-yaml v2).
pub fn yaml_marshal(value: &Value) -> Result<String, JsonError> {
    Ok(emit_document(&to_node(value)?))
}

/// Helm's `toYaml`: the YAML without its final newline, or "" when marshaling fails.
pub fn to_yaml(value: &Value) -> String {
    match yaml_marshal(value) {
        Ok(text) => text.strip_suffix('\n').map(str::to_string).unwrap_or(text),
        Err(_) => String::new(),
    }
}

fn to_yaml_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toYaml", args, 1)?;
    Ok(Value::String(to_yaml(&args[0])))
}

fn must_to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("mustToYaml", args, 1)?;
    let text = yaml_marshal(&args[0]).map_err(|e| e.to_string())?;
    Ok(Value::String(
        text.strip_suffix('\n').map(str::to_string).unwrap_or(text),
    ))
}

// ---------------------------------------------------------------------------------------------
// toYamlPretty: go-yaml v3 over the template value directly (no JSON round trip).

/// go-yaml v3 marshals Go values directly: floats keep their type, maps sort with v3's
/// natural order, sequences nested in a mapping are indented by the encoder's indent.
fn to_pretty_node(value: &Value) -> Node {
    match value {
        Value::Nil => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Int(i) => Node::Number(i.to_string()),
        Value::Float(f) => Node::Number(match format_float(*f, 'g', None).as_str() {
            "+Inf" => ".inf".to_string(),
            "-Inf" => "-.inf".to_string(),
            "NaN" => ".nan".to_string(),
            other => other.to_string(),
        }),
        Value::String(s) => Node::Str(s.clone()),
        Value::Bytes(bytes) => Node::Str(String::from_utf8_lossy(bytes).into_owned()),
        Value::List(items) => Node::Seq(items.iter().map(to_pretty_node).collect()),
        Value::Map(map) => {
            let mut entries: Vec<(String, Node)> = map
                .iter()
                .map(|(k, v)| (k.clone(), to_pretty_node(v)))
                .collect();
            entries.sort_by(|(a, _), (b, _)| go_yaml_key_order(a, b));
            Node::Map(entries)
        }
        Value::Object(object) => to_pretty_node(&object.to_serializable()),
    }
}

/// go-yaml v3's emitter differs from v2 in that block sequences inside mappings are indented
/// and in its quoting (only YAML 1.2 core-schema look-alikes and the old booleans are quoted).
struct PrettyEmitter {
    inner: Emitter,
}

impl PrettyEmitter {
    fn emit(&mut self, node: &Node, root: bool, mapping: bool, simple_key: bool) {
        self.inner.root_context = root;
        self.inner.mapping_context = mapping;
        self.inner.simple_key_context = simple_key;
        match node {
            Node::Str(s) => {
                let style = if s.contains('\n') {
                    Style::Literal
                } else if v3_needs_quotes(s) {
                    Style::DoubleQuoted
                } else {
                    Style::Plain
                };
                self.inner.emit_scalar(s.as_bytes(), style);
            }
            Node::Seq(items) if !items.is_empty() && self.inner.flow_level == 0 => {
                // v3 indents sequences under mapping keys (no indentless sequences).
                self.inner.increase_indent(false, false);
                for item in items {
                    self.inner.write_indent();
                    self.inner.write_indicator(b"-", true, false, true);
                    self.emit(item, false, false, false);
                }
                self.inner.pop_indent();
            }
            Node::Map(entries) if !entries.is_empty() && self.inner.flow_level == 0 => {
                self.inner.increase_indent(false, false);
                for (key, value) in entries {
                    self.inner.write_indent();
                    let key_node = Node::Str(key.clone());
                    if check_simple_key(&key_node) {
                        self.emit(&key_node, false, true, true);
                        self.inner.write_indicator(b":", false, false, false);
                    } else {
                        self.inner.write_indicator(b"?", true, false, true);
                        self.emit(&key_node, false, true, false);
                        self.inner.write_indent();
                        self.inner.write_indicator(b":", true, false, true);
                    }
                    self.emit(value, false, true, false);
                }
                self.inner.pop_indent();
            }
            other => self
                .inner
                .emit_node(other, root, false, mapping, simple_key),
        }
    }
}

/// go-yaml v3 quotes a string when it would resolve to another type as a plain scalar (YAML
/// 1.2 core schema plus the YAML 1.1 booleans it still reads), or looks like a base-60 float.
fn v3_needs_quotes(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "~"
            | "null"
            | "Null"
            | "NULL"
            | ".nan"
            | ".NaN"
            | ".NAN"
            | ".inf"
            | ".Inf"
            | ".INF"
            | "+.inf"
            | "+.Inf"
            | "+.INF"
            | "-.inf"
            | "-.Inf"
            | "-.INF"
    ) {
        return true;
    }
    match resolve_plain(s) {
        Resolved::Int(_) | Resolved::Uint(_) | Resolved::Float(_) | Resolved::Timestamp => true,
        _ => is_base60_float(s),
    }
}

/// Helm's `toYamlPretty`: go-yaml v3 with indent 2, without the final newline.
pub fn to_yaml_pretty(value: &Value) -> String {
    let mut inner = Emitter::new(2);
    // go-yaml v3 does not fold long lines.
    inner.best_width = i64::MAX;
    inner.v3 = true;
    let mut emitter = PrettyEmitter { inner };
    emitter.emit(&to_pretty_node(value), true, false, false);
    emitter.inner.write_indent();
    let text = String::from_utf8_lossy(&emitter.inner.out).into_owned();
    text.strip_suffix('\n').map(str::to_string).unwrap_or(text)
}

fn to_yaml_pretty_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toYamlPretty", args, 1)?;
    Ok(Value::String(to_yaml_pretty(&args[0])))
}

// ---------------------------------------------------------------------------------------------
// fromYaml: go-yaml v2 reading (YAML 1.1 resolution), then sigs.k8s.io/yaml's JSON conversion
// (map keys become strings, every number a float64).

/// Parses one YAML document as `sigs.k8s.io/yaml.Unmarshal` into `interface{}` would,
/// returning Helm's view of it (numbers float64). An empty document is `Nil`. Like go-yaml,
/// only the first document is read: anything after its root node is never looked at.
pub fn yaml_to_value(text: &str) -> Result<Value, String> {
    let relaxed = crate::values::yaml::relax_flow_indentation(text);
    let text: &str = &relaxed;
    let mut loader = Loader {
        parser: Parser::new_from_str(text),
        text,
        depth: 0,
        anchors: BTreeMap::new(),
        line: 1,
        aliases: AliasGuard::for_document(),
    };
    loop {
        match loader.next()? {
            None => return Ok(Value::Nil),
            Some(Event::DocumentStart(_)) => break,
            Some(_) => {}
        }
    }
    match loader.next()? {
        None | Some(Event::DocumentEnd) | Some(Event::StreamEnd) => Ok(Value::Nil),
        Some(event) => loader.node(event),
    }
}

/// go-yaml's wording for a saphyr parse error, with go-yaml's line rule: the 0-based line of
/// the problem (plus one for scanner errors), left out when that is line 0.
fn parse_error(error: &saphyr_parser::ScanError, text: &str) -> String {
    go_yaml_error(error.info(), error.marker().line(), text)
}

/// [`parse_error`] from saphyr's message and 1-based line (as `ValuesError::Yaml` keeps them):
/// sigs.k8s.io/yaml's `error converting YAML to JSON: yaml: line N: PROBLEM`.
pub fn go_yaml_error(info: &str, marker_line: usize, text: &str) -> String {
    // Messages keelson's readers already word as sigs.k8s.io/yaml does.
    if info.starts_with("error converting YAML to JSON") {
        return info.to_string();
    }
    let mut parser_error = info.starts_with("while parsing ");
    // Where saphyr's scanner refuses a token, go-yaml's scanner takes it and its parser fails.
    let reworded = match info {
        // A `key:` inside a flow collection left open on an earlier line.
        "illegal placement of ':' indicator" => {
            match crate::values::yaml::open_flow_bracket(text, marker_line) {
                Some('[') => Some("did not find expected ',' or ']'"),
                Some(_) => Some("did not find expected ',' or '}'"),
                None => None,
            }
        }
        // A `]` or `}` with no flow collection open: the block collection around it fails.
        "misplaced bracket" => {
            let line = text
                .lines()
                .nth(marker_line.saturating_sub(1))
                .unwrap_or_default()
                .trim_start();
            Some(if line.starts_with("- ") || line == "-" {
                "did not find expected '-' indicator"
            } else if line.contains(':') {
                "did not find expected key"
            } else {
                "did not find expected <document start>"
            })
        }
        // go-yaml ends the block scalar at a less indented line; the collection around it
        // then fails on that line's content.
        "wrongly indented line in block scalar" => {
            let lines: Vec<&str> = text.lines().collect();
            let bad = marker_line.saturating_sub(1);
            let indentation = |line: &str| line.len() - line.trim_start().len();
            let bad_indent = lines.get(bad).map(|l| indentation(l)).unwrap_or(0);
            lines[..bad.min(lines.len())]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty() && indentation(l) < bad_indent)
                .and_then(|header| {
                    let header = header.trim_start();
                    if header.starts_with("- ") || header == "-" {
                        Some("did not find expected '-' indicator")
                    } else if header.contains(':') {
                        Some("did not find expected key")
                    } else {
                        None
                    }
                })
        }
        _ => None,
    };
    let info = match reworded {
        Some(problem) => {
            parser_error = true;
            problem
        }
        None => info,
    };
    // Drop saphyr's "while scanning/parsing X, " context.
    let problem = match info.strip_prefix("while ") {
        Some(rest) => rest.split_once(", ").map(|(_, p)| p).unwrap_or(rest),
        None => info,
    };
    let problem =
        if problem.starts_with("unexpected character") || problem.starts_with("tabs disallowed") {
            "found character that cannot start any token".to_string()
        } else if problem == "simple key expected" || problem == "simple key expect ':'" {
            // A multi-line plain scalar less indented than its key.
            "could not find expected ':'".to_string()
        } else if problem.contains("unknown anchor") {
            match unknown_alias(text) {
                Some(name) => format!("unknown anchor '{name}' referenced"),
                None => "unknown anchor referenced".to_string(),
            }
        } else if let Some(rest) = problem.strip_prefix("expected ") {
            format!("did not find expected {rest}")
        } else {
            problem.to_string()
        };
    let zero_based = marker_line.saturating_sub(1);
    let line = if zero_based == 0 {
        0
    } else if parser_error {
        zero_based
    } else {
        zero_based + 1
    };
    if line == 0 || problem.starts_with("unknown anchor") {
        format!("error converting YAML to JSON: yaml: {problem}")
    } else {
        format!("error converting YAML to JSON: yaml: line {line}: {problem}")
    }
}

/// The first `*alias` in `text` without an `&anchor` before it.
fn unknown_alias(text: &str) -> Option<String> {
    let name_at = |i: usize| -> String {
        text[i..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
            .collect()
    };
    let mut defined: Vec<String> = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '&' => defined.push(name_at(i + 1)),
            '*' => {
                let name = name_at(i + 1);
                if !name.is_empty() && !defined.contains(&name) {
                    return Some(name);
                }
            }
            _ => {}
        }
    }
    None
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    text: &'a str,
    depth: usize,
    anchors: BTreeMap<usize, Value>,
    line: usize,
    /// go-yaml's alias expansion limit (the one rule, in values::yaml).
    aliases: AliasGuard,
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<Option<Event<'a>>, String> {
        match self.parser.next_event() {
            None => Ok(None),
            Some(Ok((event, span))) => {
                self.line = span.start.line();
                Ok(Some(event))
            }
            Some(Err(error)) => Err(parse_error(&error, self.text)),
        }
    }

    /// One level deeper into nested collections, refused beyond the JSON nesting limit.
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > super::json::MAX_NESTING {
            return Err(format!(
                "error converting YAML to JSON: yaml: exceeded max depth of {}",
                super::json::MAX_NESTING
            ));
        }
        Ok(())
    }

    fn next_required(&mut self) -> Result<Event<'a>, String> {
        self.next()?.ok_or_else(|| {
            "error converting YAML to JSON: yaml: unexpected end of document".to_string()
        })
    }

    /// One node, counted against go-yaml's alias expansion limit.
    fn node(&mut self, event: Event<'a>) -> Result<Value, String> {
        let refused = |message: &str| format!("error converting YAML to JSON: {message}");
        let anchor = match &event {
            Event::Alias(id) => {
                self.aliases.alias(*id).map_err(refused)?;
                return self.node_inner(event);
            }
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _) => *anchor,
            _ => 0,
        };
        let start = self.aliases.enter().map_err(refused)?;
        let result = self.node_inner(event);
        self.aliases.anchored(anchor, start);
        result
    }

    fn node_inner(&mut self, event: Event<'a>) -> Result<Value, String> {
        let line = self.line;
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar_value(&text, style, tag.as_ref().map(|t| t.suffix.as_str()))
                    .map_err(|e| {
                        if e.starts_with("json: ") {
                            format!("error converting YAML to JSON: {e}")
                        } else {
                            format!("error converting YAML to JSON: yaml: line {line}: {e}")
                        }
                    })?;
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                Ok(value)
            }
            Event::Alias(id) => self.anchors.get(&id).cloned().ok_or_else(|| {
                format!(
                    "error converting YAML to JSON: yaml: line {line}: unknown anchor referenced"
                )
            }),
            Event::SequenceStart(anchor, _) => {
                self.enter()?;
                let mut items = Vec::new();
                loop {
                    match self.next_required()? {
                        Event::SequenceEnd => break,
                        event => items.push(self.node(event)?),
                    }
                }
                self.depth -= 1;
                let value = Value::list(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                Ok(value)
            }
            Event::MappingStart(anchor, _) => {
                self.enter()?;
                let mut map: BTreeMap<String, Value> = BTreeMap::new();
                loop {
                    let key_event = self.next_required()?;
                    if matches!(key_event, Event::MappingEnd) {
                        break;
                    }
                    let is_merge = matches!(
                        &key_event,
                        Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<"
                    );
                    let key = self.node(key_event)?;
                    if is_merge {
                        self.aliases.merge_key();
                    }
                    let value_event = self.next_required()?;
                    let value = self.node(value_event)?;
                    if is_merge {
                        merge_into(&mut map, &value);
                        continue;
                    }
                    if key.is_nil() {
                        return Err(format!(
                            "error converting YAML to JSON: unsupported map key of type: %!s(<nil>), key: <nil>, value: {}",
                            super::gofmt::format_value(&value)
                        ));
                    }
                    map.insert(json_key(&key), value);
                }
                self.depth -= 1;
                let value = Value::Map(Arc::new(map));
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                Ok(value)
            }
            other => Err(format!(
                "error converting YAML to JSON: yaml: line {line}: unexpected event {other:?}"
            )),
        }
    }
}

/// `<<: *anchor` (or a list of anchors): keys not already present come from the merged maps.
fn merge_into(map: &mut BTreeMap<String, Value>, merged: &Value) {
    match merged {
        Value::Map(source) => {
            for (k, v) in source.iter() {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Value::List(items) => {
            for item in items.iter() {
                merge_into(map, item);
            }
        }
        _ => {}
    }
}

/// sigs.k8s.io/yaml turns non-string keys into their text.
fn json_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Nil => "null".to_string(),
        Value::Float(f) => format_float(*f, 'g', None),
        Value::Int(i) => i.to_string(),
        other => super::gofmt::format_value(other),
    }
}

/// One scalar as go-yaml v2 decodes it, then as JSON gives it back to Go (numbers float64).
fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    if style != ScalarStyle::Plain {
        return Ok(match tag {
            Some("int") | Some("float") => plain_value(text)?,
            _ => Value::String(text.to_string()),
        });
    }
    if let Some(tag) = tag
        && tag == "str"
    {
        return Ok(Value::String(text.to_string()));
    }
    plain_value(text)
}

fn plain_value(text: &str) -> Result<Value, String> {
    Ok(match resolve_plain(text) {
        Resolved::Null => Value::Nil,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::Float(i as f64),
        Resolved::Uint(u) => Value::Float(u as f64),
        Resolved::Float(f) => {
            if f.is_finite() {
                Value::Float(f)
            } else {
                return Err(format!(
                    "json: unsupported value: {}",
                    format_float(f, 'g', None)
                ));
            }
        }
        // go-yaml v2 decodes timestamps into interface{} as their text.
        Resolved::Timestamp | Resolved::Merge | Resolved::Str => Value::String(text.to_string()),
    })
}

fn from_yaml(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("fromYaml", args, 1)?;
    let text = args::string(args, 0)?;
    let mut map = BTreeMap::new();
    match yaml_to_value(text) {
        Ok(Value::Map(parsed)) => return Ok(Value::Map(parsed)),
        Ok(Value::Nil) => {}
        Ok(other) => {
            map.insert(
                "Error".to_string(),
                Value::String(format!(
                    "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                    json_kind(&other)
                )),
            );
        }
        Err(error) => {
            map.insert("Error".to_string(), Value::String(error));
        }
    }
    Ok(Value::Map(Arc::new(map)))
}

fn from_yaml_array(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("fromYamlArray", args, 1)?;
    let text = args::string(args, 0)?;
    match yaml_to_value(text) {
        Ok(Value::List(items)) => Ok(Value::List(items)),
        Ok(Value::Nil) => Ok(Value::list([])),
        Ok(other) => Ok(Value::list([Value::String(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
            json_kind(&other)
        ))])),
        Err(error) => Ok(Value::list([Value::String(error)])),
    }
}

/// The JSON kind word encoding/json uses in "cannot unmarshal KIND".
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Map(_) => "object",
        Value::List(_) => "array",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Float(_) => "number",
        _ => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_of(json: serde_json::Value) -> String {
        to_yaml(&json_value(&json))
    }

    /// Builds a value the way values files do: every number a float64.
    fn json_value(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::Array(items) => Value::list(items.iter().map(json_value)),
            serde_json::Value::Object(map) => {
                Value::map(map.iter().map(|(k, v)| (k.clone(), json_value(v))))
            }
            other => Value::from_json(other),
        }
    }

    #[test]
    fn maps_and_sequences_like_helm() {
        let yaml = yaml_of(serde_json::json!({
            "z": 1, "a": "x", "l": [1, 2.5, {"k": "v", "j": null}], "e": {}, "f": []
        }));
        assert_eq!(
            yaml,
            "a: x\ne: {}\nf: []\nl:\n- 1\n- 2.5\n- j: null\n  k: v\nz: 1"
        );
    }

    #[test]
    fn strings_are_quoted_like_go_yaml_v2() {
        let cases = [
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("on", "\"on\""),
            ("y", "\"y\""),
            ("1", "\"1\""),
            ("1.5", "\"1.5\""),
            ("0x1F", "\"0x1F\""),
            ("12:30", "\"12:30\""),
            ("2024-01-15", "\"2024-01-15\""),
            ("", "\"\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("hello world", "hello world"),
            ("- item", "'- item'"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            (" lead", "' lead'"),
            ("trail ", "'trail '"),
            ("*star", "'*star'"),
            ("it's", "it's"),
            ("'q'", "'''q'''"),
            ("tab\there", "\"tab\\there\""),
            ("{x}", "'{x}'"),
            ("a,b", "a,b"),
            ("http://x:80/a", "http://x:80/a"),
            ("é", "é"),
            ("😀", "\"\\U0001F600\""),
        ];
        for (input, expected) in cases {
            assert_eq!(to_yaml(&Value::from(input)), expected, "input {input:?}");
        }
    }

    #[test]
    fn multiline_strings_use_literal_blocks() {
        assert_eq!(to_yaml(&Value::from("a\nb")), "|-\n  a\n  b");
        assert_eq!(to_yaml(&Value::from("a\nb\n")), "|\n  a\n  b");
        assert_eq!(to_yaml(&Value::from("a\n\n")), "|+\n  a\n");
        assert_eq!(to_yaml(&Value::from(" a\nb")), "|2-\n   a\n  b");
        assert_eq!(to_yaml(&Value::from("a \nb")), "\"a \\nb\"");
        let nested = Value::map([("k".to_string(), Value::from("x\ny\n"))]);
        assert_eq!(to_yaml(&nested), "k: |\n  x\n  y");
    }

    #[test]
    fn numbers_go_through_json() {
        assert_eq!(yaml_of(serde_json::json!(12345678)), "12345678");
        assert_eq!(yaml_of(serde_json::json!(1.0)), "1");
        assert_eq!(yaml_of(serde_json::json!(123456789.5)), "1.234567895e+08");
        assert_eq!(yaml_of(serde_json::json!(0.000001)), "1e-06");
        assert_eq!(yaml_of(serde_json::json!(1e21)), "1e+21");
        assert_eq!(to_yaml(&Value::Float(f64::NAN)), "");
    }

    #[test]
    fn long_plain_strings_fold_at_80_columns() {
        let words = vec!["word"; 30].join(" ");
        let yaml = to_yaml(&Value::map([("k".to_string(), Value::String(words))]));
        let first_line = yaml.lines().next().unwrap_or_default();
        assert!(first_line.len() > 80 && first_line.len() < 90, "{yaml}");
        assert!(yaml.lines().nth(1).is_some_and(|l| l.starts_with("  word")));
    }

    #[test]
    fn hostile_nesting_is_an_error() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(yaml_to_value(&deep).is_err());
    }

    #[test]
    fn keys_sort_naturally() {
        let mut keys = vec!["a10", "a9", "b", "A", "_x", "a1"];
        keys.sort_by(|a, b| go_yaml_key_order(a, b));
        assert_eq!(keys, vec!["_x", "A", "a1", "a9", "a10", "b"]);
    }

    #[test]
    fn from_yaml_reads_yaml_1_1_into_floats() {
        let value = yaml_to_value("a: 1\nb: yes\nc: '1'\nd: [x, 2.5]\non: z\ne: ~\n");
        let json = value.map(|v| v.to_json()).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"a": 1.0, "b": true, "c": "1", "d": ["x", 2.5], "true": "z", "e": null})
        );
        let anchors = yaml_to_value("base: &b {x: 1}\nderived:\n  <<: *b\n  z: 2\n");
        let json = anchors.map(|v| v.to_json()).unwrap_or_default();
        assert_eq!(json["derived"], serde_json::json!({"x": 1.0, "z": 2.0}));
    }

    #[test]
    fn from_yaml_refuses_alias_bombs_like_go_yaml() {
        let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n".to_string();
        for level in 1..=9 {
            let previous = format!("*a{}", level - 1);
            text.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                [previous.as_str(); 9].join(", ")
            ));
        }
        let started = std::time::Instant::now();
        let out = from_yaml(&[Value::String(text)]).map(|v| v.to_json());
        assert_eq!(
            out.ok().map(|v| v["Error"].clone()),
            Some(serde_json::json!(
                "error converting YAML to JSON: yaml: document contains excessive aliasing"
            ))
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
