//! Helm's YAML functions: toYaml (sigs.k8s.io/yaml = encoding/json then go-yaml v2's emitter),
//! toYamlPretty (go-yaml v3, indent 2), fromYaml/fromYamlArray (go-yaml v2 → JSON → float64).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::args;
use super::conv::parse_go_int;
use super::gofmt::format_float;
use super::json::{JsonError, go_json_float};
use super::{Func, FuncError};
use crate::value::Value;
use gocompat::yaml::{YamlError, go_yaml_error};
use gocompat::yaml_emit::{Node, emit_document, emit_pretty_document, go_yaml_key_order};

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
            if !in_go_yaml_order(&entries) {
                entries.sort_by(|(a, _), (b, _)| go_yaml_key_order(a, b));
            }
            Node::Map(entries)
        }
        Value::Object(object) if object.as_complex().is_some() => {
            return Err(JsonError("json: unsupported type: complex128".to_string()));
        }
        Value::Object(object) => to_node(&object.to_serializable())?,
    })
}

/// Whether keys taken in byte order (a map's order) are already in go-yaml's order, known
/// without comparing them its way: for keys of ASCII letters only the two orders agree (go-yaml
/// compares two letters by code point and puts a prefix first). Comparing keys go-yaml's way is
/// most of `toYaml`'s own cost, and most values keys are plain words.
fn in_go_yaml_order(entries: &[(String, Node)]) -> bool {
    entries
        .iter()
        .all(|(key, _)| key.bytes().all(|b| b.is_ascii_alphabetic()))
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
            if !in_go_yaml_order(&entries) {
                entries.sort_by(|(a, _), (b, _)| go_yaml_key_order(a, b));
            }
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
/// returning Helm's view of it (numbers float64). An empty document is `Nil`. This is the
/// values files' reader (`gocompat::yaml`): Helm reads both through the same go-yaml v2 path,
/// so only the error wording differs (Go's text, without keelson's file:line:column).
pub fn yaml_to_value(text: &str) -> Result<Value, String> {
    match gocompat::yaml::parse_first_document(text, "fromYaml") {
        Ok(json) => Ok(Value::from_json(&json)),
        Err(YamlError::Syntax { line, message, .. }) => Err(go_yaml_error(&message, line, text)),
        Err(other) => Err(format!("error converting YAML to JSON: {other}")),
    }
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
    fn letter_keys_in_byte_order_are_in_go_yaml_order() {
        let letters = ["", "A", "Ab", "Z", "a", "aB", "ab", "abc", "b", "zZ"];
        for pair in letters.windows(2) {
            assert_eq!(
                go_yaml_key_order(pair[0], pair[1]),
                std::cmp::Ordering::Less,
                "{pair:?}"
            );
        }
        let entries = |keys: &[&str]| -> Vec<(String, Node)> {
            keys.iter().map(|k| (k.to_string(), Node::Null)).collect()
        };
        assert!(in_go_yaml_order(&entries(&letters)));
        assert!(!in_go_yaml_order(&entries(&["a1", "a10", "a9"])));
        assert!(!in_go_yaml_order(&entries(&["A", "_x"])));
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

    /// helm 3.17.3 and 4.1.4 read these the same through `fromYaml` and values.yaml
    /// (fixtures/charts/yaml-one): merged keys overwrite, the earlier merged map wins, float
    /// keys print at 32 bits, nothing after the root node is read, a null key is refused
    /// with the value as Go's `%#v`.
    #[test]
    fn from_yaml_reads_like_the_values_loader() {
        let json = |text: &str| {
            from_yaml(&[Value::from(text)])
                .map(|v| v.to_json())
                .unwrap_or_default()
        };
        assert_eq!(
            json("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc: {x: 0, <<: [*a, *b]}\n")["c"],
            serde_json::json!({"x": 1.0, "true": 1.0, "z": 2.0})
        );
        assert_eq!(
            json("3.14159265358979: pi\n100000000.5: b\n"),
            serde_json::json!({"3.1415927": "pi", "1e+08": "b"})
        );
        assert_eq!(json("{a: 1}\nb: 2\n"), serde_json::json!({"a": 1.0}));
        assert_eq!(
            json("~: [1, x]\n")["Error"],
            serde_json::json!(
                "error converting YAML to JSON: unsupported map key of type: %!s(<nil>), key: <nil>, value: []interface {}{1, \"x\"}"
            )
        );
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
