//! Helm's toToml/fromToml over BurntSushi/toml's encoder layout and a TOML 1.0 reader.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::args;
use super::gofmt::format_float;
use super::{Func, FuncError};
use crate::render::gotemplate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![("toToml", to_toml), ("fromToml", from_toml)]
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
                    let text = format_float(*f, 'f', None);
                    self.out.push_str(&text);
                    if !text.contains('.') {
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
pub fn toml_marshal(value: &Value) -> Result<String, String> {
    let mut encoder = TomlEncoder { out: String::new() };
    match value {
        Value::Map(map) => encoder.table(&[], map)?,
        Value::Object(o) => return toml_marshal(&o.to_serializable()),
        _ => return Err("toml: top-level values must be Go maps or structs".to_string()),
    }
    Ok(encoder.out)
}

fn to_toml(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toToml", args, 1)?;
    Ok(Value::String(match toml_marshal(&args[0]) {
        Ok(text) => text,
        Err(error) => error,
    }))
}

// ---------------------------------------------------------------------------------------------
// Decoding into map[string]interface{} (integers int64, floats float64).

struct TomlParser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
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
        format!("toml: line {}: {message}", self.line)
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
            Some(c) => {
                let quoted = super::gofmt::go_quote(&c.to_string());
                format!("'{}'", &quoted[1..quoted.len() - 1])
            }
            None => "EOF".to_string(),
        };
        // BurntSushi reports a newline on the line it ends.
        let line = self.line + usize::from(self.peek() == Some('\n'));
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
                None => return Err(self.error("unexpected EOF in string")),
                Some('"') if !multiline => return Ok(out),
                Some('\n') if !multiline => {
                    return Err(self.error("strings cannot contain newlines"));
                }
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('e') => out.push('\u{1b}'),
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
                    None => return Err(self.error("unexpected EOF in string")),
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
        match self.rest().find(quote) {
            Some(end) => {
                let content = self.rest()[..end].to_string();
                if !multiline && content.contains('\n') {
                    return Err(self.error("strings cannot contain newlines"));
                }
                for _ in 0..content.chars().count() + quote.len() {
                    self.bump();
                }
                Ok(content)
            }
            None => Err(self.error("unexpected EOF in string")),
        }
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
                        _ => {
                            return Err(
                                self.error("expected a comma (',') or array terminator (']')")
                            );
                        }
                    }
                }
            }
            Some('{') => {
                self.bump();
                let mut map = BTreeMap::new();
                self.skip_blank();
                if self.peek() == Some('}') {
                    self.bump();
                    return Ok(Value::Map(Arc::new(map)));
                }
                loop {
                    let key = self.key('=')?;
                    self.skip_blank();
                    if self.peek() != Some('=') {
                        return Err(self.unexpected('='));
                    }
                    self.bump();
                    let value = self.value()?;
                    insert_path(&mut map, &key, value).map_err(|e| self.error(&e))?;
                    self.skip_blank();
                    match self.bump() {
                        Some(',') => {}
                        Some('}') => return Ok(Value::Map(Arc::new(map))),
                        _ => {
                            return Err(
                                self.error("expected a comma or an inline table terminator '}'")
                            );
                        }
                    }
                }
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
                scalar(word).ok_or_else(|| {
                    self.error(&format!("expected value but found {word:?} instead"))
                })
            }
        }
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
        return Err(format!("key {:?} has already been defined", path.join(".")));
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
pub fn toml_unmarshal(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut parser = TomlParser {
        text,
        pos: 0,
        line: 1,
    };
    let mut root: BTreeMap<String, Value> = BTreeMap::new();
    let mut current_path: Vec<String> = Vec::new();
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
                let value = parser.value()?;
                parser.end_of_line()?;
                let table = table_at(&mut root, &current_path).map_err(|e| parser.error(&e))?;
                insert_path(table, &key, value).map_err(|e| parser.error(&e))?;
            }
        }
    }
}

fn from_toml(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("fromToml", args, 1)?;
    let text = args::string(args, 0)?;
    Ok(Value::Map(Arc::new(match toml_unmarshal(text) {
        Ok(map) => map,
        Err(error) => BTreeMap::from([("Error".to_string(), Value::String(error))]),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip() {
        let parsed = toml_unmarshal(
            "title = \"x\"\nn = 1_000\nf = 2.5\n[owner]\nname = 'Tom'\n[[items]]\na = 1\n[[items]]\na = 2\n",
        );
        let value = Value::Map(Arc::new(parsed.unwrap_or_default()));
        assert_eq!(
            value.to_json(),
            serde_json::json!({"title": "x", "n": 1000, "f": 2.5, "owner": {"name": "Tom"}, "items": [{"a": 1}, {"a": 2}]})
        );
        let text = toml_marshal(&value).unwrap_or_default();
        assert_eq!(
            text,
            "f = 2.5\nn = 1000\ntitle = \"x\"\n\n[[items]]\n  a = 1\n\n[[items]]\n  a = 2\n\n[owner]\n  name = \"Tom\"\n"
        );
        assert!(toml_unmarshal("a = ").is_err());
    }
}
