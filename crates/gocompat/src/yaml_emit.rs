//! go-yaml's emitters as Helm reaches them: v2's `yaml.Marshal` (under sigs.k8s.io/yaml, so
//! `toYaml` and every YAML keelson prints) and v3's with indent 2 (`toYamlPretty`), over a tree
//! whose map keys are strings and whose numbers are already in their printed form; and go-yaml
//! v2's resolution of plain scalars (`resolve`), which decides what the emitter must quote.

use std::sync::LazyLock;

use regex::Regex;

/// A node as go-yaml v2 sees the JSON document it re-reads: map keys are strings, numbers
/// are already in the text form the emitter writes.
#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    /// An int, uint or float already formatted as go-yaml writes it.
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
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
    // Keys are nearly always ASCII: compare their bytes as characters without collecting.
    if a.is_ascii() && b.is_ascii() {
        return key_less_in(a.as_bytes(), b.as_bytes());
    }
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    key_less_in(&ar, &br)
}

/// go-yaml's `keyList.Less` over characters (`u8` for ASCII text, else `char`).
fn key_less_in<T: Copy + Into<char>>(ar: &[T], br: &[T]) -> bool {
    let ch = |s: &[T], k: usize| -> char { s[k].into() };
    let is_digit = |c: char| c.is_ascii_digit();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ch(ar, i) == ch(br, i) {
            i += 1;
            continue;
        }
        let al = ch(ar, i).is_alphabetic();
        let bl = ch(br, i).is_alphabetic();
        if al && bl {
            return ch(ar, i) < ch(br, i);
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ch(ar, i) == '0' || ch(br, i) == '0' {
            let mut j = i;
            while j > 0 && is_digit(ch(ar, j - 1)) {
                j -= 1;
                if ch(ar, j) != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && is_digit(ch(ar, ai)) {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ch(ar, ai).to_digit(10).unwrap_or(0)));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && is_digit(ch(br, bi)) {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(ch(br, bi).to_digit(10).unwrap_or(0)));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ch(ar, i) < ch(br, i);
    }
    ar.len() < br.len()
}

// ---------------------------------------------------------------------------------------------
// go-yaml v2's resolver, as the encoder uses it to decide whether a string may stay plain.

// go-yaml's float patterns are matched by hand (`is_yaml_style_float`, `is_base60_float`):
// compiling them cost about a million instructions per process, as much as reading a small
// chart. The timestamp pattern is compiled only for texts that start like a date.
static TIMESTAMP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2}))|(?: ([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,][0-9]+)?))?$",
    )
    .ok()
});

/// Where the run of ASCII digits (and `_` when `underscores`) starting at `from` ends.
fn digits_end(bytes: &[u8], from: usize, underscores: bool) -> usize {
    let mut at = from;
    while at < bytes.len() && (bytes[at].is_ascii_digit() || (underscores && bytes[at] == b'_')) {
        at += 1;
    }
    at
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, go-yaml v2's `yamlStyleFloat`.
fn is_yaml_style_float(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut at = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    if bytes.get(at) == Some(&b'.') {
        let end = digits_end(bytes, at + 1, false);
        if end == at + 1 {
            return false;
        }
        at = end;
    } else {
        let end = digits_end(bytes, at, false);
        if end == at {
            return false;
        }
        at = end;
        if bytes.get(at) == Some(&b'.') {
            at = digits_end(bytes, at + 1, false);
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'-' | b'+')) {
            at += 1;
        }
        let end = digits_end(bytes, at, false);
        if end == at {
            return false;
        }
        at = end;
    }
    at == bytes.len()
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`, YAML 1.1's sexagesimal float.
fn matches_base60_float(s: &str) -> bool {
    let bytes = s.as_bytes();
    let start = usize::from(matches!(bytes.first(), Some(b'-' | b'+')));
    if !bytes.get(start).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let mut at = digits_end(bytes, start, true);
    let mut groups = 0;
    while bytes.get(at) == Some(&b':') {
        // One digit, or two whose first is 0-5: a longer run cannot be followed by `:`, `.` or
        // the end, whatever the regex backtracks to.
        let end = digits_end(bytes, at + 1, false);
        match end - (at + 1) {
            1 => {}
            2 if bytes[at + 1] <= b'5' => {}
            _ => return false,
        }
        at = end;
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if bytes.get(at) == Some(&b'.') {
        at = digits_end(bytes, at + 1, true);
    }
    at == bytes.len()
}

/// What a plain scalar means to go-yaml v2.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
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

/// go-yaml v2's `parseTimestamp` through Go's `time.Parse` of its four layouts.
fn is_timestamp(s: &str) -> bool {
    // Every layout starts `YYYY-`: most scalars are refused before the regex (whose first use
    // compiles it) runs.
    let bytes = s.as_bytes();
    if bytes.len() < 8 || !bytes[..4].iter().all(u8::is_ascii_digit) || bytes[4] != b'-' {
        return false;
    }
    let Some(Some(caps)) = TIMESTAMP.as_ref().map(|r| r.captures(s)) else {
        return false;
    };
    let num = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
    let (Some(year), Some(month), Some(day)) = (num(1), num(2), num(3)) else {
        return false;
    };
    if !(1..=12).contains(&month) || day < 1 || day > crate::time::days_in_month(year, month) {
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
pub fn resolve_plain(s: &str) -> Resolved {
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
            if let Some(i) = crate::strconv::parse_int(&plain, 0) {
                return Resolved::Int(i);
            }
            if let Some(u) = parse_go_uint(&plain) {
                return Resolved::Uint(u);
            }
            if is_yaml_style_float(&plain)
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
    matches_base60_float(s)
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
        // After the first character, printable ASCII other than the space and the flow and
        // comment indicators only clears the previous-character flags: skip such runs whole.
        if i > 0 && is_unremarkable(value[i]) {
            i += value[i..]
                .iter()
                .position(|&b| !is_unremarkable(b))
                .unwrap_or(value.len() - i);
            previous_space = false;
            previous_break = false;
            preceded_by_whitespace = false;
            continue;
        }
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

/// A character that, past the first, changes nothing in `analyze_scalar` but the flags about
/// the previous character.
fn is_unremarkable(b: u8) -> bool {
    is_plain_run_byte(b) && !matches!(b, b',' | b'?' | b'[' | b']' | b'{' | b'}' | b':' | b'#')
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

    /// `write` of one character and then of every following character that `ordinary` accepts
    /// (printable ASCII only: one byte, one column each), copied at once. The writers' loops
    /// would treat each of those characters alike, so their state after the run is the same.
    fn write_run(&mut self, s: &[u8], i: &mut usize, ordinary: fn(u8) -> bool) {
        self.write(s, i);
        let rest = &s[*i..];
        let run = rest
            .iter()
            .position(|&b| !ordinary(b))
            .unwrap_or(rest.len());
        self.out.extend_from_slice(&rest[..run]);
        self.column += run as i64;
        *i += run;
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
                self.write_run(value, &mut i, is_plain_run_byte);
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
                self.write_run(value, &mut i, is_single_quoted_run_byte);
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
                self.write_run(value, &mut i, is_literal_run_byte);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// Characters a plain scalar's writer copies as they are: printable ASCII except the space.
fn is_plain_run_byte(b: u8) -> bool {
    (0x21..=0x7E).contains(&b)
}

/// As for plain scalars, and not the quote the single-quoted writer doubles.
fn is_single_quoted_run_byte(b: u8) -> bool {
    is_plain_run_byte(b) && b != b'\''
}

/// A literal block copies spaces too; only line breaks end a run.
fn is_literal_run_byte(b: u8) -> bool {
    (0x20..=0x7E).contains(&b)
}

/// `yaml_emitter_check_simple_key` for a string key.
fn check_simple_key(key: &Node) -> bool {
    match key {
        Node::Str(s) => !analyze_scalar(s.as_bytes(), false).multiline && s.len() <= 128,
        _ => true,
    }
}

/// The emitter copies whole characters of valid strings, so its output is valid UTF-8; the
/// lossy conversion only stands guard.
fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `yaml.Marshal` of go-yaml v2 over a tree (with the trailing newline).
pub fn emit_document(node: &Node) -> String {
    let mut emitter = Emitter::new(2);
    emitter.emit_node(node, true, false, false, false);
    // Document end: an implicit end just finishes the line.
    emitter.write_indent();
    into_string(emitter.out)
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

/// go-yaml v3's `Marshal` with indent 2 (Helm's `toYamlPretty`), with the final newline.
pub fn emit_pretty_document(node: &Node) -> String {
    let mut inner = Emitter::new(2);
    // go-yaml v3 does not fold long lines.
    inner.best_width = i64::MAX;
    inner.v3 = true;
    let mut emitter = PrettyEmitter { inner };
    emitter.emit(node, true, false, false);
    emitter.inner.write_indent();
    into_string(emitter.inner.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text of up to `max_len` characters over `alphabet`.
    fn all_texts(alphabet: &[char], max_len: usize) -> Vec<String> {
        let mut texts = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max_len {
            last = last
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(last.iter().cloned());
        }
        texts
    }

    #[test]
    fn hand_matched_floats_agree_with_go_yamls_patterns() {
        let float = Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$");
        let base60 = Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$");
        let (Ok(float), Ok(base60)) = (float, base60) else {
            panic!("reference patterns must compile")
        };
        let mut floats = 0;
        for text in all_texts(&['1', '7', '.', 'e', '-', '+', 'x'], 6) {
            assert_eq!(
                is_yaml_style_float(&text),
                float.is_match(&text),
                "{text:?}"
            );
            floats += usize::from(float.is_match(&text));
        }
        let mut sexagesimal = 0;
        for text in all_texts(&['1', '7', ':', '.', '_', '-', 'a'], 7) {
            assert_eq!(
                matches_base60_float(&text),
                base60.is_match(&text),
                "{text:?}"
            );
            sexagesimal += usize::from(base60.is_match(&text));
        }
        assert!(floats > 100 && sexagesimal > 100, "{floats} {sexagesimal}");
    }

    /// The hand-written float syntax and timestamp guard agree with the regexes they replace
    /// or guard, on every string of up to five characters from the relevant alphabet.
    #[test]
    fn float_syntax_and_timestamp_guard_match_the_regexes() {
        let float = Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$");
        let Ok(float) = float else {
            panic!("float regex");
        };
        let alphabet = ['0', '7', '.', 'e', 'E', '+', '-', 'x', '_'];
        let mut texts = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..5 {
            let mut longer = Vec::new();
            for text in &last {
                for c in alphabet {
                    longer.push(format!("{text}{c}"));
                }
            }
            texts.extend(longer.iter().cloned());
            last = longer;
        }
        for text in &texts {
            assert_eq!(is_yaml_style_float(text), float.is_match(text), "{text:?}");
        }
        let Some(timestamp) = TIMESTAMP.as_ref() else {
            panic!("timestamp regex");
        };
        for text in [
            "2001-12-14",
            "2001-1-1",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10",
            "201-12-14",
            "2001/12/14",
            "2001-",
            "20011-12-14",
            "1.2.3",
            "8080",
            "2001-1-",
        ] {
            let guarded = text.len() >= 8
                && text.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && text.as_bytes()[4] == b'-';
            assert!(guarded || !timestamp.is_match(text), "{text:?}");
        }
    }
}
