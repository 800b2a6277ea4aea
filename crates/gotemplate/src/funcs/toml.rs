//! Helm's toToml/fromToml over BurntSushi/toml's encoder layout and a TOML 1.0 reader.
//!
//! The two Helm versions link different BurntSushi/toml releases (see [`TomlVersion`]); the
//! registry gets [`functions`] for helm 3 and [`helm4_functions`] for helm 4.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::args;
use super::gofmt::format_float;
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![("toToml", to_toml), ("fromToml", from_toml)]
}

/// helm 4.1.4's toToml/fromToml (BurntSushi/toml v1.6.0).
pub fn helm4_functions() -> Vec<(&'static str, Func)> {
    vec![("toToml", to_toml_v16), ("fromToml", from_toml_v16)]
}

/// The BurntSushi/toml release a Helm binary links: helm 3.17.3 has v1.4.0, helm 4.1.4 has
/// v1.6.0 (read from the binaries' build info). What changed between them for Helm:
/// - floats are encoded with `FormatFloat(f, 'g', -1)` (`1.2345678e+07`, `1e-06`) instead of
///   `'f'` (`12345678.0`, `0.000001`); `.0` is still added when there is neither `.` nor `e`;
/// - "expected '.' or '='" and "expected value" errors at a newline name the line the newline
///   ends, not the next one; an error at the end of input names the last line unless the input
///   ends with a newline (v1.4 always names the line before);
/// - TOML 1.1 is on: newlines and a trailing comma inside inline tables, the `\e` and `\xHH`
///   escapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TomlVersion {
    V1_4,
    V1_6,
}

// ---------------------------------------------------------------------------------------------
// Encoding, as BurntSushi/toml's Encoder with its default two-space indent.

fn is_table(value: &Value) -> bool {
    matches!(value, Value::Map(_))
}

fn is_table_array(value: &Value) -> bool {
    matches!(value, Value::List(items) if !items.is_empty() && items.iter().all(is_table))
}

fn quote_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        quote_string(key)
    }
}

fn quote_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct TomlEncoder {
    out: String,
    version: TomlVersion,
}

impl TomlEncoder {
    fn newline(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn indent(key: &[String]) -> String {
        "  ".repeat(key.len().saturating_sub(1))
    }

    fn key_text(key: &[String]) -> String {
        key.iter()
            .map(|k| quote_key(k))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn element(&mut self, value: &Value) -> Result<(), String> {
        match value {
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => self.out.push_str(&i.to_string()),
            Value::Float(f) => {
                if f.is_nan() {
                    self.out
                        .push_str(if f.is_sign_negative() { "-nan" } else { "nan" });
                } else if f.is_infinite() {
                    self.out.push_str(if *f < 0.0 { "-inf" } else { "inf" });
                } else {
                    let form = match self.version {
                        TomlVersion::V1_4 => 'f',
                        TomlVersion::V1_6 => 'g',
                    };
                    let text = format_float(*f, form, None);
                    self.out.push_str(&text);
                    // floatAddDecimal: a float needs a `.` or (only `'g'` makes one) an exponent.
                    if !text.contains('.') && !text.contains('e') {
                        self.out.push_str(".0");
                    }
                }
            }
            Value::String(s) => self.out.push_str(&quote_string(s)),
            Value::Bytes(b) => self
                .out
                .push_str(&quote_string(&String::from_utf8_lossy(b))),
            Value::List(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    self.element(item)?;
                    if i + 1 != items.len() {
                        self.out.push_str(", ");
                    }
                }
                self.out.push(']');
            }
            Value::Map(map) => {
                self.out.push('{');
                let entries: Vec<_> = map.iter().filter(|(_, v)| !v.is_nil()).collect();
                for (i, (k, v)) in entries.iter().enumerate() {
                    self.out.push_str(&quote_key(k));
                    self.out.push_str(" = ");
                    self.element(v)?;
                    if i + 1 != entries.len() {
                        self.out.push_str(", ");
                    }
                }
                self.out.push('}');
            }
            Value::Object(o) => self.element(&o.to_serializable())?,
            Value::Nil => return Err("toml: cannot encode a nil value".to_string()),
        }
        Ok(())
    }

    fn encode(&mut self, key: &[String], value: &Value) -> Result<(), String> {
        match value {
            Value::Nil => Ok(()),
            Value::Map(map) => self.table(key, map),
            Value::List(items) if is_table_array(value) => {
                for item in items.iter() {
                    if let Value::Map(map) = item {
                        self.newline();
                        self.out.push_str(&format!(
                            "{}[[{}]]",
                            Self::indent(key),
                            Self::key_text(key)
                        ));
                        self.newline();
                        self.map_body(key, map)?;
                    }
                }
                Ok(())
            }
            other => {
                let last = key.last().map(|k| quote_key(k)).unwrap_or_default();
                self.out
                    .push_str(&format!("{}{} = ", Self::indent(key), last));
                self.element(other)?;
                self.newline();
                Ok(())
            }
        }
    }

    fn table(&mut self, key: &[String], map: &BTreeMap<String, Value>) -> Result<(), String> {
        if key.len() == 1 {
            self.newline();
        }
        if !key.is_empty() {
            self.out
                .push_str(&format!("{}[{}]", Self::indent(key), Self::key_text(key)));
            self.newline();
        }
        self.map_body(key, map)
    }

    fn map_body(&mut self, key: &[String], map: &BTreeMap<String, Value>) -> Result<(), String> {
        let (sub, direct): (Vec<_>, Vec<_>) = map
            .iter()
            .partition(|(_, v)| is_table(v) || is_table_array(v));
        for (k, v) in direct.into_iter().chain(sub) {
            let mut child = key.to_vec();
            child.push(k.clone());
            self.encode(&child, v)?;
        }
        Ok(())
    }
}

/// BurntSushi/toml's `Encoder.Encode` text, or its error text.
pub fn toml_marshal(value: &Value, version: TomlVersion) -> Result<String, String> {
    let mut encoder = TomlEncoder {
        out: String::new(),
        version,
    };
    match value {
        Value::Map(map) => encoder.table(&[], map)?,
        Value::Object(o) => return toml_marshal(&o.to_serializable(), version),
        _ => return Err("toml: top-level values must be Go maps or structs".to_string()),
    }
    Ok(encoder.out)
}

fn to_toml_with(args: &[Value], version: TomlVersion) -> Result<Value, FuncError> {
    args::exact("toToml", args, 1)?;
    Ok(Value::String(match toml_marshal(&args[0], version) {
        Ok(text) => text,
        Err(error) => error,
    }))
}

fn to_toml(args: &[Value]) -> Result<Value, FuncError> {
    to_toml_with(args, TomlVersion::V1_4)
}

fn to_toml_v16(args: &[Value]) -> Result<Value, FuncError> {
    to_toml_with(args, TomlVersion::V1_6)
}

// ---------------------------------------------------------------------------------------------
// Decoding into map[string]interface{} (integers int64, floats float64).

struct TomlParser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    version: TomlVersion,
    /// BurntSushi's parser context (table path, dotted-key parents, inline table keys) and
    /// current key: errors name them as `(last key "a.b")`.
    context: Vec<String>,
    current_key: Option<String>,
}

impl<'a> TomlParser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, message: &str) -> String {
        self.error_at(self.line, message)
    }

    fn error_at(&self, line: usize, message: &str) -> String {
        // parser.current(): the context's parts quoted where needed, the current key as is.
        let mut last: Vec<String> = self.context.iter().map(|k| quote_key(k)).collect();
        last.extend(self.current_key.iter().filter(|k| !k.is_empty()).cloned());
        if last.is_empty() {
            format!("toml: line {line}: {message}")
        } else {
            let key = last.join(".");
            format!(
                "toml: line {line} (last key {}): {message}",
                go_quoted(&key)
            )
        }
    }

    /// The line BurntSushi names for an error at the end of the input: v1.4 always the one
    /// before the lexer's line, v1.6 only when the input ends with a newline.
    fn eof_line(&self) -> usize {
        let back = match self.version {
            TomlVersion::V1_4 => true,
            TomlVersion::V1_6 => self.text.ends_with('\n'),
        };
        if back { self.line - 1 } else { self.line }
    }

    /// The line BurntSushi names for a key or value error at a newline: v1.4 counts the
    /// newline already read, v1.6 reports the line it ends (`errorPrevLine`).
    fn newline_line(&self) -> usize {
        match self.version {
            TomlVersion::V1_4 => self.line + 1,
            TomlVersion::V1_6 => self.line,
        }
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// Skips whitespace, newlines and comments.
    fn skip_all(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\n' | '\r') => {
                    self.bump();
                }
                Some('#') => {
                    while !matches!(self.peek(), Some('\n') | None) {
                        self.bump();
                    }
                }
                _ => return,
            }
        }
    }

    fn end_of_line(&mut self) -> Result<(), String> {
        self.skip_blank();
        if self.peek() == Some('#') {
            while !matches!(self.peek(), Some('\n') | None) {
                self.bump();
            }
        }
        match self.peek() {
            None | Some('\n') => Ok(()),
            Some('\r') if self.rest().starts_with("\r\n") => Ok(()),
            Some(c) => Err(self.error(&format!("expected a top-level item to end with a newline, comment, or EOF, but got {c:?} instead"))),
        }
    }

    /// A dotted key; `closer` is what must follow it (`=` or `]`), for Go's error wording.
    fn key(&mut self, closer: char) -> Result<Vec<String>, String> {
        let mut parts = Vec::new();
        loop {
            self.skip_blank();
            let part = match self.peek() {
                Some('"') => self.basic_string()?,
                Some('\'') => self.literal_string()?,
                _ => {
                    let start = self.pos;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        self.bump();
                    }
                    if start == self.pos {
                        return Err(self.unexpected(closer));
                    }
                    self.text[start..self.pos].to_string()
                }
            };
            parts.push(part);
            self.skip_blank();
            if self.peek() == Some('.') {
                self.bump();
                continue;
            }
            return Ok(parts);
        }
    }

    /// BurntSushi's "expected '.' or '=', but got 'c' instead".
    fn unexpected(&self, closer: char) -> String {
        let got = match self.peek() {
            Some(c) => go_rune(c),
            None if closer == '=' => {
                return format!(
                    "toml: line {}: unexpected EOF; expected key separator '='",
                    self.eof_line()
                );
            }
            None => "EOF".to_string(),
        };
        // BurntSushi has read the newline when it reports it.
        let line = match (self.peek(), closer) {
            (Some('\n'), '=') => self.newline_line(),
            (Some('\n'), _) => self.line + 1,
            _ => self.line,
        };
        if closer == ']' {
            format!(
                "toml: line {line}: expected '.' or ']' to end table name, but got {got} instead"
            )
        } else {
            format!("toml: line {line}: expected '.' or '{closer}', but got {got} instead")
        }
    }

    fn basic_string(&mut self) -> Result<String, String> {
        let multiline = self.rest().starts_with("\"\"\"");
        let quote_len = if multiline { 3 } else { 1 };
        for _ in 0..quote_len {
            self.bump();
        }
        if multiline && self.peek() == Some('\n') {
            self.bump();
        } else if multiline && self.rest().starts_with("\r\n") {
            self.bump();
            self.bump();
        }
        let mut out = String::new();
        loop {
            if multiline
                && self.rest().starts_with("\"\"\"")
                && !self.rest().starts_with("\"\"\"\"\"\"")
            {
                let extra = self.rest()[3..]
                    .chars()
                    .take_while(|c| *c == '"')
                    .count()
                    .min(2);
                for _ in 0..extra {
                    out.push('"');
                }
                for _ in 0..3 + extra {
                    self.bump();
                }
                return Ok(out);
            }
            match self.bump() {
                None => {
                    return Err(self.eof_in_string(if multiline { "'\"\"\"'" } else { "'\"'" }));
                }
                Some('"') if !multiline => return Ok(out),
                Some('\n') if !multiline => {
                    // errorPrevLine: the line the string is on.
                    return Err(self.error_at(self.line - 1, "strings cannot contain newlines"));
                }
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('e') if self.version == TomlVersion::V1_6 => out.push('\u{1b}'),
                    Some('x') if self.version == TomlVersion::V1_6 => {
                        let hex: String = (0..2).filter_map(|_| self.bump()).collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.error(&format!("invalid escape: '\\x{hex}'")))?;
                        out.push(code);
                    }
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some(u @ ('u' | 'U')) => {
                        let len = if u == 'u' { 4 } else { 8 };
                        let hex: String = (0..len).filter_map(|_| self.bump()).collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.error(&format!("invalid escape: '\\{u}{hex}'")))?;
                        out.push(code);
                    }
                    Some(c) if multiline && (c == '\n' || c == ' ' || c == '\t' || c == '\r') => {
                        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
                            self.bump();
                        }
                    }
                    Some(c) => return Err(self.error(&format!("invalid escape in string '\\{c}'"))),
                    None => {
                        return Err(self.eof_in_string(if multiline {
                            "'\"\"\"'"
                        } else {
                            "'\"'"
                        }));
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn literal_string(&mut self) -> Result<String, String> {
        let multiline = self.rest().starts_with("'''");
        let quote = if multiline { "'''" } else { "'" };
        for _ in 0..quote.len() {
            self.bump();
        }
        if multiline && self.peek() == Some('\n') {
            self.bump();
        }
        let end = self.rest().find(quote);
        if !multiline {
            let newline = self.rest().find('\n');
            if let Some(nl) = newline.filter(|nl| end.is_none_or(|e| *nl < e)) {
                for _ in 0..self.rest()[..nl].chars().count() {
                    self.bump();
                }
                return Err(self.error("strings cannot contain newlines"));
            }
        }
        match end {
            Some(end) => {
                let content = self.rest()[..end].to_string();
                for _ in 0..content.chars().count() + quote.len() {
                    self.bump();
                }
                Ok(content)
            }
            None => {
                while self.bump().is_some() {}
                Err(self.eof_in_string(if multiline { "\"'''\"" } else { "\"'\"" }))
            }
        }
    }

    /// BurntSushi's `unexpected EOF; expected '"'` (and the other string closers).
    fn eof_in_string(&self, closer: &str) -> String {
        self.error_at(
            self.eof_line(),
            &format!("unexpected EOF; expected {closer}"),
        )
    }

    /// An insert_path error; a duplicate key is `Key 'a.b' has already been defined.`, named
    /// by the context and current key (each part quoted when it is not bare).
    fn insert_error(&self, error: &str) -> String {
        if error != DUPLICATE {
            return self.error(error);
        }
        let mut key: Vec<String> = self.context.iter().map(|k| quote_key(k)).collect();
        key.extend(self.current_key.iter().map(|k| quote_key(k)));
        self.error(&format!(
            "Key '{}' has already been defined.",
            key.join(".")
        ))
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_blank();
        match self.peek() {
            Some('"') => self.basic_string().map(Value::String),
            Some('\'') => self.literal_string().map(Value::String),
            Some('[') => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip_all();
                    if self.peek() == Some(']') {
                        self.bump();
                        return Ok(Value::list(items));
                    }
                    items.push(self.value()?);
                    self.skip_all();
                    match self.bump() {
                        Some(',') => {}
                        Some(']') => return Ok(Value::list(items)),
                        Some(c) => {
                            return Err(self.error(&format!(
                                "expected a comma (',') or array terminator (']'), but got {}",
                                go_rune(c)
                            )));
                        }
                        None => {
                            return Err(self.error_at(
                                self.eof_line(),
                                "expected a comma (',') or array terminator (']'), but got end of file",
                            ));
                        }
                    }
                }
            }
            Some('{') => {
                self.bump();
                let (outer_context, outer_key) = (self.context.clone(), self.current_key.take());
                self.context.extend(outer_key.clone());
                let map = self.inline_table()?;
                self.context = outer_context;
                self.current_key = outer_key;
                Ok(Value::Map(Arc::new(map)))
            }
            None => Err(self.error_at(self.eof_line(), "unexpected EOF; expected value")),
            Some('\n') => Err(self.error_at(
                self.newline_line(),
                "expected value but found '\\n' instead",
            )),
            Some(c) if !(c.is_alphanumeric() || c == '+' || c == '-' || c == '.') => {
                Err(self.error(&format!("expected value but found {} instead", go_rune(c))))
            }
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(|c| {
                    !matches!(c, ',' | ']' | '}' | '\n' | '\r' | '#')
                        && (c != ' ' || self.datetime_space())
                }) {
                    self.bump();
                }
                let word = self.text[start..self.pos].trim_end();
                // A base prefix without digits: BurntSushi names the character after it.
                if let Some(kind) = match word {
                    "0x" => Some(match self.version {
                        TomlVersion::V1_4 => "hexidecimal",
                        TomlVersion::V1_6 => "hexadecimal",
                    }),
                    "0o" => Some("octal"),
                    "0b" => Some("binary"),
                    _ => None,
                } {
                    let article = if kind == "octal" { "an" } else { "a" };
                    let next = self.text[start + 2..].chars().next().unwrap_or('\u{fffd}');
                    return Err(self.error(&format!("not {article} {kind} number: '{word}{next}'")));
                }
                scalar(word).ok_or_else(|| {
                    self.error(&format!(
                        "expected value but found {} instead",
                        go_quoted(word)
                    ))
                })
            }
        }
    }

    /// The entries of an inline table after its `{`. In v1.4 a newline inside is an error and
    /// so is a trailing comma; v1.6 (TOML 1.1) allows both, and comments.
    fn inline_table(&mut self) -> Result<BTreeMap<String, Value>, String> {
        let table_context = self.context.clone();
        let mut map = BTreeMap::new();
        let mut after_comma = false;
        loop {
            self.inline_space()?;
            if self.peek() == Some('}') {
                if after_comma && self.version == TomlVersion::V1_4 {
                    return Err(self.error("trailing comma not allowed in inline tables"));
                }
                self.bump();
                return Ok(map);
            }
            let key = self.key('=')?;
            self.skip_blank();
            if self.peek() != Some('=') {
                return Err(self.unexpected('='));
            }
            self.bump();
            if let Some((last, parents)) = key.split_last() {
                self.context.extend(parents.iter().cloned());
                self.current_key = Some(last.clone());
            }
            let value = self.value()?;
            insert_path(&mut map, &key, value).map_err(|e| self.insert_error(&e))?;
            self.context = table_context.clone();
            self.inline_space()?;
            match self.bump() {
                Some(',') => after_comma = true,
                Some('}') => return Ok(map),
                _ => {
                    return Err(self.error("expected a comma or an inline table terminator '}'"));
                }
            }
        }
    }

    /// Blanks inside an inline table; newlines and comments only in v1.6.
    fn inline_space(&mut self) -> Result<(), String> {
        match self.version {
            TomlVersion::V1_6 => self.skip_all(),
            TomlVersion::V1_4 => {
                self.skip_blank();
                if matches!(self.peek(), Some('\n' | '#')) || self.rest().starts_with("\r\n") {
                    return Err(self.error("newlines not allowed within inline tables"));
                }
            }
        }
        Ok(())
    }

    /// A space inside a date-time (`1979-05-27 07:32:00`) belongs to the value.
    fn datetime_space(&self) -> bool {
        let before = &self.text[..self.pos];
        let after = &self.text[self.pos + 1..];
        before.len() >= 10
            && before[before.len() - 10..]
                .chars()
                .enumerate()
                .all(|(i, c)| {
                    if i == 4 || i == 7 {
                        c == '-'
                    } else {
                        c.is_ascii_digit()
                    }
                })
            && after.chars().take(2).all(|c| c.is_ascii_digit())
    }
}

/// A rune as Go's `%q` prints it: `'a'`, `'\n'`.
fn go_rune(c: char) -> String {
    let quoted = super::gofmt::go_quote(&c.to_string());
    format!("'{}'", &quoted[1..quoted.len() - 1])
}

/// A string as Go's `%q` prints it.
fn go_quoted(s: &str) -> String {
    super::gofmt::go_quote(s)
}

fn scalar(word: &str) -> Option<Value> {
    match word {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "inf" | "+inf" => return Some(Value::Float(f64::INFINITY)),
        "-inf" => return Some(Value::Float(f64::NEG_INFINITY)),
        "nan" | "+nan" | "-nan" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    let plain = word.replace('_', "");
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = plain.strip_prefix(prefix) {
            return i64::from_str_radix(digits, radix).ok().map(Value::Int);
        }
    }
    if let Ok(i) = plain.parse::<i64>() {
        return Some(Value::Int(i));
    }
    if plain
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && let Ok(f) = plain.parse::<f64>()
    {
        return Some(Value::Float(f));
    }
    // Dates and times stay text.
    if word.len() >= 8 && word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return Some(Value::String(word.to_string()));
    }
    None
}

/// insert_path's error for a key given twice; the caller names the key as BurntSushi does.
const DUPLICATE: &str = "duplicate";

fn insert_path(
    map: &mut BTreeMap<String, Value>,
    path: &[String],
    value: Value,
) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".to_string());
    };
    let mut current = map;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| Value::map([]));
        let Value::Map(child) = entry else {
            return Err(format!("key {part:?} is not a table"));
        };
        current = Arc::make_mut(child);
    }
    if current.contains_key(last) {
        return Err(DUPLICATE.to_string());
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// The table a `[a.b]` or `[[a.b]]` header points at (the last element of an array of tables).
fn table_at<'m>(
    root: &'m mut BTreeMap<String, Value>,
    path: &[String],
) -> Result<&'m mut BTreeMap<String, Value>, String> {
    let mut current = root;
    for part in path {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| Value::map([]));
        current = match entry {
            Value::Map(child) => Arc::make_mut(child),
            Value::List(items) => match Arc::make_mut(items).last_mut() {
                Some(Value::Map(child)) => Arc::make_mut(child),
                _ => return Err(format!("key {part:?} is not a table")),
            },
            _ => return Err(format!("key {part:?} is not a table")),
        };
    }
    Ok(current)
}

/// Reads a TOML document into a map (integers int64, floats float64, dates as text).
pub fn toml_unmarshal(text: &str, version: TomlVersion) -> Result<BTreeMap<String, Value>, String> {
    let mut parser = TomlParser {
        text,
        pos: 0,
        line: 1,
        version,
        context: Vec::new(),
        current_key: None,
    };
    let mut root: BTreeMap<String, Value> = BTreeMap::new();
    let mut current_path: Vec<String> = Vec::new();
    let mut explicit_tables: std::collections::HashSet<Vec<String>> = Default::default();
    loop {
        parser.skip_all();
        match parser.peek() {
            None => return Ok(root),
            Some('[') => {
                let array = parser.rest().starts_with("[[");
                parser.bump();
                if array {
                    parser.bump();
                }
                let path = parser.key(']')?;
                parser.skip_blank();
                let closing = if array { "]]" } else { "]" };
                if !parser.rest().starts_with(closing) {
                    return Err(parser.unexpected(']'));
                }
                for _ in 0..closing.len() {
                    parser.bump();
                }
                parser.context = path.clone();
                parser.end_of_line()?;
                if array {
                    let (last, parents) = path
                        .split_last()
                        .ok_or_else(|| parser.error("empty table name"))?;
                    let parent = table_at(&mut root, parents).map_err(|e| parser.error(&e))?;
                    let entry = parent
                        .entry(last.clone())
                        .or_insert_with(|| Value::list([]));
                    match entry {
                        Value::List(items) => Arc::make_mut(items).push(Value::map([])),
                        _ => {
                            return Err(
                                parser.error(&format!("key {last:?} is not an array of tables"))
                            );
                        }
                    }
                } else {
                    // A table defined twice by its header (one only created as a parent of
                    // another, `[a.b]` before `[a]`, may still be defined once).
                    if !explicit_tables.insert(path.clone()) {
                        parser.context = path[..path.len() - 1].to_vec();
                        parser.current_key = None;
                        let key: Vec<String> = path.iter().map(|k| quote_key(k)).collect();
                        return Err(parser.error(&format!(
                            "Key '{}' has already been defined.",
                            key.join(".")
                        )));
                    }
                    table_at(&mut root, &path).map_err(|e| parser.error(&e))?;
                }
                current_path = path;
            }
            Some(_) => {
                let key = parser.key('=')?;
                parser.skip_blank();
                if parser.peek() != Some('=') {
                    return Err(parser.unexpected('='));
                }
                parser.bump();
                if let Some((last, parents)) = key.split_last() {
                    parser.context.extend(parents.iter().cloned());
                    parser.current_key = Some(last.clone());
                }
                let value = parser.value()?;
                let table = table_at(&mut root, &current_path).map_err(|e| parser.error(&e))?;
                insert_path(table, &key, value).map_err(|e| parser.insert_error(&e))?;
                parser.context = current_path.clone();
                parser.current_key = None;
                parser.end_of_line()?;
            }
        }
    }
}

fn from_toml_with(args: &[Value], version: TomlVersion) -> Result<Value, FuncError> {
    args::exact("fromToml", args, 1)?;
    let text = args::string(args, 0)?;
    Ok(Value::Map(Arc::new(match toml_unmarshal(text, version) {
        Ok(map) => map,
        Err(error) => BTreeMap::from([("Error".to_string(), Value::String(error))]),
    })))
}

fn from_toml(args: &[Value]) -> Result<Value, FuncError> {
    from_toml_with(args, TomlVersion::V1_4)
}

fn from_toml_v16(args: &[Value]) -> Result<Value, FuncError> {
    from_toml_with(args, TomlVersion::V1_6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip() {
        let parsed = toml_unmarshal(
            "title = \"x\"\nn = 1_000\nf = 2.5\n[owner]\nname = 'Tom'\n[[items]]\na = 1\n[[items]]\na = 2\n",
            TomlVersion::V1_4,
        );
        let value = Value::Map(Arc::new(parsed.unwrap_or_default()));
        assert_eq!(
            value.to_json(),
            serde_json::json!({"title": "x", "n": 1000, "f": 2.5, "owner": {"name": "Tom"}, "items": [{"a": 1}, {"a": 2}]})
        );
        let text = toml_marshal(&value, TomlVersion::V1_4).unwrap_or_default();
        assert_eq!(
            text,
            "f = 2.5\nn = 1000\ntitle = \"x\"\n\n[[items]]\n  a = 1\n\n[[items]]\n  a = 2\n\n[owner]\n  name = \"Tom\"\n"
        );
        assert!(toml_unmarshal("a = ", TomlVersion::V1_4).is_err());
    }

    /// helm 3.17.3 (BurntSushi/toml v1.4.0) and helm 4.1.4 (v1.6.0) on the same inputs.
    #[test]
    fn versions_differ_as_helm3_and_helm4() {
        let floats = Value::map([
            ("big".to_string(), Value::Float(12345678.0)),
            ("tiny".to_string(), Value::Float(0.000001)),
            ("e5".to_string(), Value::Float(100000.0)),
            ("half".to_string(), Value::Float(0.5)),
            (
                "l".to_string(),
                Value::list([Value::Float(1e7), Value::Float(-0.0)]),
            ),
        ]);
        assert_eq!(
            toml_marshal(&floats, TomlVersion::V1_4).unwrap_or_default(),
            "big = 12345678.0\ne5 = 100000.0\nhalf = 0.5\nl = [10000000.0, -0.0]\ntiny = 0.000001\n"
        );
        assert_eq!(
            toml_marshal(&floats, TomlVersion::V1_6).unwrap_or_default(),
            "big = 1.2345678e+07\ne5 = 100000.0\nhalf = 0.5\nl = [1e+07, -0.0]\ntiny = 1e-06\n"
        );
        let cases: &[(&str, &str, &str)] = &[
            (
                "a = 1\nb\n",
                "toml: line 3: expected '.' or '=', but got '\\n' instead",
                "toml: line 2: expected '.' or '=', but got '\\n' instead",
            ),
            (
                "a = 1\nb = \n",
                "toml: line 3 (last key \"b\"): expected value but found '\\n' instead",
                "toml: line 2 (last key \"b\"): expected value but found '\\n' instead",
            ),
            (
                "a = 1\nb",
                "toml: line 1: unexpected EOF; expected key separator '='",
                "toml: line 2: unexpected EOF; expected key separator '='",
            ),
            (
                "a = 1\nb = {x = 1\n}\n",
                "toml: line 2 (last key \"b.x\"): newlines not allowed within inline tables",
                "",
            ),
            (
                "a = 1\nb = @\n",
                "toml: line 2 (last key \"b\"): expected value but found '@' instead",
                "toml: line 2 (last key \"b\"): expected value but found '@' instead",
            ),
        ];
        for (text, v14, v16) in cases {
            for (version, want) in [(TomlVersion::V1_4, v14), (TomlVersion::V1_6, v16)] {
                let got = toml_unmarshal(text, version).err().unwrap_or_default();
                assert_eq!(&got, want, "{text:?} with {version:?}");
            }
        }
        let escaped = toml_unmarshal("a = \"\\e\\x41\"\nb = {x = 1,}\n", TomlVersion::V1_6);
        assert_eq!(
            Value::Map(Arc::new(escaped.unwrap_or_default())).to_json(),
            serde_json::json!({"a": "\u{1b}A", "b": {"x": 1}})
        );
    }
}
