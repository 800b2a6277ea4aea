//! Helm's YAML functions: toYaml (sigs.k8s.io/yaml = encoding/json then go-yaml v2's emitter),
//! toYamlPretty (go-yaml v3, indent 2), fromYaml/fromYamlArray (go-yaml v2 → JSON → float64).

use std::collections::BTreeMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::args;
use super::conv::parse_go_int;
use super::gofmt::format_float;
use super::json::{JsonError, go_json_float};
use super::{Func, FuncError};
use crate::value::Value;
use gocompat::yaml::{AliasGuard, go_yaml_error};
use gocompat::yaml_emit::{
    Node, Resolved, emit_document, emit_pretty_document, go_yaml_key_order, resolve_plain,
};

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

/// Helm's `toYamlPretty`: go-yaml v3 with indent 2, without the final newline.
pub fn to_yaml_pretty(value: &Value) -> String {
    let text = emit_pretty_document(&to_pretty_node(value));
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
    let relaxed = gocompat::yaml::relax_flow_indentation(text);
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

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    text: &'a str,
    depth: usize,
    anchors: BTreeMap<usize, Value>,
    line: usize,
    /// go-yaml's alias expansion limit (the one rule, in gocompat::yaml).
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
