//! Go's encoding/json as Helm and Sprig use it: toJson, toPrettyJson, toRawJson, fromJson,
//! fromJsonArray, mustFromJson — Go's escaping, float text, key order and error wording.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::args;
use super::gofmt::format_float;
use super::{Func, FuncError};
use crate::value::Value;

pub fn sprig_functions() -> Vec<(&'static str, Func)> {
    vec![
        ("toJson", to_json),
        ("mustToJson", must_to_json),
        ("toPrettyJson", to_pretty_json),
        ("mustToPrettyJson", must_to_pretty_json),
        ("toRawJson", must_to_raw_json),
        ("mustToRawJson", must_to_raw_json),
        ("fromJson", from_json),
        ("mustFromJson", must_from_json),
    ]
}

pub fn helm_functions() -> Vec<(&'static str, Func)> {
    vec![
        ("toJson", to_json),
        ("mustToJson", must_to_json),
        ("fromJson", from_json),
        ("fromJsonArray", from_json_array),
    ]
}

/// `json.Marshal` failing (Go's `*json.UnsupportedValueError`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonError(pub String);

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to lay out and escape the JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// `json.Marshal`: compact, HTML-safe.
    Compact,
    /// `json.MarshalIndent(v, "", "  ")`.
    Pretty,
    /// An Encoder with `SetEscapeHTML(false)`.
    Raw,
}

/// encoding/json's float text, or its error for NaN and the infinities.
pub fn go_json_float(f: f64) -> Result<String, JsonError> {
    gocompat::json::format_float64(f).ok_or_else(|| {
        JsonError(format!(
            "json: unsupported value: {}",
            format_float(f, 'g', None)
        ))
    })
}

fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => match gocompat::json::extra_escape(c, escape_html) {
                Some(escape) => out.push_str(escape),
                None => out.push(c),
            },
        }
    }
    out.push('"');
}

fn write_value(
    out: &mut String,
    value: &Value,
    style: JsonStyle,
    depth: usize,
) -> Result<(), JsonError> {
    let escape_html = style != JsonStyle::Raw;
    let pretty = style == JsonStyle::Pretty;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    match value {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&go_json_float(*f)?),
        Value::String(s) => write_string(out, s, escape_html),
        Value::Bytes(bytes) => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&**bytes);
            write_string(out, &encoded, escape_html);
        }
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    newline(out, depth + 1);
                }
                write_value(out, item, style, depth + 1)?;
            }
            if pretty {
                newline(out, depth);
            }
            out.push(']');
        }
        Value::Map(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    newline(out, depth + 1);
                }
                write_string(out, k, escape_html);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_value(out, v, style, depth + 1)?;
            }
            if pretty {
                newline(out, depth);
            }
            out.push('}');
        }
        Value::Object(object) if object.as_complex().is_some() => {
            return Err(JsonError("json: unsupported type: complex128".to_string()));
        }
        Value::Object(object) => write_value(out, &object.to_serializable(), style, depth)?,
    }
    Ok(())
}

/// Go's JSON text of a template value.
pub fn json_marshal(value: &Value, style: JsonStyle) -> Result<String, JsonError> {
    let mut out = String::new();
    write_value(&mut out, value, style, 0)?;
    Ok(out)
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toJson", args, 1)?;
    Ok(Value::String(
        json_marshal(&args[0], JsonStyle::Compact).unwrap_or_default(),
    ))
}

fn must_to_json(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("mustToJson", args, 1)?;
    json_marshal(&args[0], JsonStyle::Compact)
        .map(Value::String)
        .map_err(|e| e.0)
}

fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toPrettyJson", args, 1)?;
    Ok(Value::String(
        json_marshal(&args[0], JsonStyle::Pretty).unwrap_or_default(),
    ))
}

fn must_to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("mustToPrettyJson", args, 1)?;
    json_marshal(&args[0], JsonStyle::Pretty)
        .map(Value::String)
        .map_err(|e| e.0)
}

fn must_to_raw_json(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toRawJson", args, 1)?;
    json_marshal(&args[0], JsonStyle::Raw)
        .map(Value::String)
        .map_err(|e| e.0)
}

// ---------------------------------------------------------------------------------------------
// Go's json.Unmarshal into interface{}: syntax checked first with the scanner's wording, then
// every number a float64.

/// `'c'` as Go's scanner quotes an offending character.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        c => {
            let quoted = super::gofmt::go_quote(&c.to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// How deep fromJson's input may nest (Go allows 10000; keelson stops earlier so that parsing
/// hostile input cannot exhaust a thread's stack).
pub const MAX_NESTING: usize = 1000;

struct JsonParser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> JsonParser<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | '\n' | '\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn error(&self, context: &str) -> String {
        match self.peek() {
            None => "unexpected end of JSON input".to_string(),
            Some(c) => format!("invalid character {} {context}", quote_char(c)),
        }
    }

    fn expect_literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        for expected in word.chars() {
            match self.peek() {
                Some(c) if c == expected => self.pos += c.len_utf8(),
                None => return Err("unexpected end of JSON input".to_string()),
                Some(c) => {
                    return Err(format!(
                        "invalid character {} in literal {word} (expecting {})",
                        quote_char(c),
                        quote_char(expected)
                    ));
                }
            }
        }
        Ok(value)
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_space();
        if matches!(self.peek(), Some('[' | '{')) {
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return Err(format!("exceeded max depth of {MAX_NESTING}"));
            }
            let nested = if self.peek() == Some('[') {
                self.array()
            } else {
                self.object()
            };
            self.depth -= 1;
            return nested;
        }
        match self.peek() {
            None => Err("unexpected end of JSON input".to_string()),
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some('"') => self.string().map(Value::String),
            Some('t') => self.expect_literal("true", Value::Bool(true)),
            Some('f') => self.expect_literal("false", Value::Bool(false)),
            Some('n') => self.expect_literal("null", Value::Nil),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err(self.error("looking for beginning of value")),
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        match self.peek() {
            Some('0') => self.pos += 1,
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.error("in numeric literal")),
        }
        if self.peek() == Some('.') {
            self.pos += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error("after decimal point in numeric literal"));
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error("in exponent of numeric literal"));
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        let text = &self.text[start..self.pos];
        let value: f64 = text.parse().map_err(|_| {
            format!("json: cannot unmarshal number {text} into Go value of type float64")
        })?;
        if value.is_infinite() {
            return Err(format!(
                "json: cannot unmarshal number {text} into Go value of type float64"
            ));
        }
        Ok(Value::Float(value))
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unexpected end of JSON input".to_string());
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err("unexpected end of JSON input".to_string());
                    };
                    self.pos += e.len_utf8();
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let first = self.hex4()?;
                            if (0xD800..0xDC00).contains(&first)
                                && self.text[self.pos..].starts_with("\\u")
                            {
                                let saved = self.pos;
                                self.pos += 2;
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    let code =
                                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                                } else {
                                    out.push('\u{fffd}');
                                    self.pos = saved;
                                }
                            } else {
                                out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
                            }
                        }
                        other => {
                            return Err(format!(
                                "invalid character {} in string escape code",
                                quote_char(other)
                            ));
                        }
                    }
                }
                c if (c as u32) < 0x20 => {
                    return Err(format!(
                        "invalid character {} in string literal",
                        quote_char(c)
                    ));
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut code = 0u32;
        for _ in 0..4 {
            let Some(c) = self.peek() else {
                return Err("unexpected end of JSON input".to_string());
            };
            let Some(digit) = c.to_digit(16) else {
                return Err(format!(
                    "invalid character {} in \\u hexadecimal character escape",
                    quote_char(c)
                ));
            };
            self.pos += 1;
            code = code * 16 + digit;
        }
        Ok(code)
    }

    fn array(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(']') {
            self.pos += 1;
            return Ok(Value::list(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    return Ok(Value::list(items));
                }
                _ => return Err(self.error("after array element")),
            }
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut map = BTreeMap::new();
        self.skip_space();
        if self.peek() == Some('}') {
            self.pos += 1;
            return Ok(Value::Map(Arc::new(map)));
        }
        loop {
            self.skip_space();
            if self.peek() != Some('"') {
                return Err(self.error("looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.skip_space();
            if self.peek() != Some(':') {
                return Err(self.error("after object key"));
            }
            self.pos += 1;
            let value = self.value()?;
            map.insert(key, value);
            self.skip_space();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    return Ok(Value::Map(Arc::new(map)));
                }
                _ => return Err(self.error("after object key:value pair")),
            }
        }
    }
}

/// `json.Unmarshal` into `interface{}` (numbers float64), with Go's syntax error text.
pub fn json_unmarshal(text: &str) -> Result<Value, String> {
    let mut parser = JsonParser {
        text,
        pos: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.skip_space();
    if parser.peek().is_some() {
        return Err(parser.error("after top-level value"));
    }
    Ok(value)
}

fn from_json(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("fromJson", args, 1)?;
    let text = args::string(args, 0)?;
    let error = match json_unmarshal(text) {
        Ok(Value::Map(map)) => return Ok(Value::Map(map)),
        Ok(Value::Nil) => return Ok(Value::map([])),
        Ok(other) => format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            super::yaml::json_kind(&other)
        ),
        Err(error) => error,
    };
    Ok(Value::map([("Error".to_string(), Value::String(error))]))
}

fn from_json_array(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("fromJsonArray", args, 1)?;
    let text = args::string(args, 0)?;
    let error = match json_unmarshal(text) {
        Ok(Value::List(items)) => return Ok(Value::List(items)),
        Ok(Value::Nil) => return Ok(Value::list([])),
        Ok(other) => format!(
            "json: cannot unmarshal {} into Go value of type []interface {{}}",
            super::yaml::json_kind(&other)
        ),
        Err(error) => error,
    };
    Ok(Value::list([Value::String(error)]))
}

fn must_from_json(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("mustFromJson", args, 1)?;
    json_unmarshal(args::string(args, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marshal_like_go() {
        let value = Value::map([
            ("b".to_string(), Value::from("<a&b>")),
            (
                "a".to_string(),
                Value::list([Value::Float(1.0), Value::Float(0.5), Value::Int(3)]),
            ),
            ("c".to_string(), Value::Nil),
            ("d".to_string(), Value::Float(1e-7)),
        ]);
        assert_eq!(
            json_marshal(&value, JsonStyle::Compact).unwrap_or_default(),
            r#"{"a":[1,0.5,3],"b":"\u003ca\u0026b\u003e","c":null,"d":1e-7}"#
        );
        assert_eq!(
            json_marshal(&value, JsonStyle::Raw).unwrap_or_default(),
            r#"{"a":[1,0.5,3],"b":"<a&b>","c":null,"d":1e-7}"#
        );
        let pretty = json_marshal(
            &Value::map([
                ("a".to_string(), Value::list([Value::Int(1)])),
                ("e".to_string(), Value::map([])),
            ]),
            JsonStyle::Pretty,
        )
        .unwrap_or_default();
        assert_eq!(pretty, "{\n  \"a\": [\n    1\n  ],\n  \"e\": {}\n}");
        assert!(json_marshal(&Value::Float(f64::NAN), JsonStyle::Compact).is_err());
        assert_eq!(go_json_float(1e21).unwrap_or_default(), "1e+21");
        assert_eq!(go_json_float(12345678.0).unwrap_or_default(), "12345678");
    }

    #[test]
    fn hostile_nesting_is_an_error() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(json_unmarshal(&deep).is_err());
        let fine = format!("{}{}", "[".repeat(50), "]".repeat(50));
        assert!(json_unmarshal(&fine).is_ok());
    }

    #[test]
    fn unmarshal_like_go() {
        let value = json_unmarshal(r#"{"a": [1, "x", true, null], "b": {"c": 2.5}}"#);
        assert_eq!(
            value.map(|v| v.to_json()).unwrap_or_default(),
            serde_json::json!({"a": [1.0, "x", true, null], "b": {"c": 2.5}})
        );
        assert_eq!(
            json_unmarshal("{x}").err().as_deref(),
            Some("invalid character 'x' looking for beginning of object key string")
        );
        assert_eq!(
            json_unmarshal("[1,").err().as_deref(),
            Some("unexpected end of JSON input")
        );
        assert_eq!(
            json_unmarshal("1 2").err().as_deref(),
            Some("invalid character '2' after top-level value")
        );
    }
}
