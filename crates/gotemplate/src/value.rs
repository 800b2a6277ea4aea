//! The values templates see, modelled on the Go types Helm hands to text/template.
//!
//! Interchange with the rest of keelson is `serde_json::Value`: a number stored as f64 is a Go
//! `float64` (every number read from YAML or JSON values is one in Helm), a number stored as
//! i64/u64 is a Go `int`/`int64` (from `--set`, `.Release.Revision`, function results).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A Go value as a template sees it.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Go's untyped `nil` (a missing map key, an explicit YAML null).
    #[default]
    Nil,
    Bool(bool),
    /// Go `int` / `int64`.
    Int(i64),
    /// Go `float64`.
    Float(f64),
    String(String),
    /// Go `[]byte` (`.Files.GetBytes`, some Sprig results).
    Bytes(Arc<Vec<u8>>),
    /// Go `[]interface{}` (also stands for `[]string` and other slices).
    List(Arc<Vec<Value>>),
    /// Go `map[string]interface{}`; keys are kept sorted, as Go's templates and printing order them.
    Map(Arc<BTreeMap<String, Value>>),
    /// A Go struct or named type with fields and methods (`.Files`, `.Capabilities`, `.Chart`,
    /// a parsed semver): see [`Object`].
    Object(Arc<dyn Object>),
}

/// A Go struct or named type seen by templates: fields, methods with arguments, and how Go
/// prints and serializes it.
pub trait Object: fmt::Debug + Send + Sync {
    /// The Go type name as `printf "%T"` / `typeOf` print it, e.g. `*chartutil.Capabilities`.
    fn type_name(&self) -> &str;

    /// A field or a method without arguments (`.Capabilities.KubeVersion`, `.Chart.Name`).
    /// `None` when the type has no such field or method (a template error in Go).
    fn field(&self, name: &str) -> Option<Value>;

    /// A method called with arguments (`.Files.Get "a.txt"`, `.Capabilities.APIVersions.Has "v1"`).
    /// `None` when there is no such method; `Some(Err(message))` when the method fails.
    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let _ = (name, args);
        None
    }

    /// What Go's fmt prints for `{{ . }}` / `%v`: the `String()` method's result when the type
    /// has one, else Go's struct printing.
    fn to_go_string(&self) -> String;

    /// The value `toYaml` / `toJson` serialize (Go marshals the struct by its json tags).
    fn to_serializable(&self) -> Value;

    /// For a named Go map or slice type with methods (Helm's `engine.files` is a
    /// `map[string][]byte`, `chartutil.VersionSet` a `[]string`): its elements as a `Map` or
    /// `List`, so `range`, `len` and `index` work on it as in Go. `None` for structs.
    fn collection(&self) -> Option<Value> {
        None
    }

    /// For Go's `complex128` (a template's `1i` or `1+2i`): its real and imaginary parts, which
    /// fmt prints with the verb's float format and encoding/json refuses.
    fn as_complex(&self) -> Option<(f64, f64)> {
        None
    }
}

thread_local! {
    /// Maps Helm hands templates as its named map type `Values` (`.`, `.Values`, `.Template`),
    /// by identity, with that type's name: Go's `%T`, `typeOf` and type errors print it
    /// (`chartutil.Values` in helm 3, `common.Values` in helm 4). Held here (kept alive, so an
    /// address is never reused) for the render running on this thread.
    static NAMED_MAPS: std::cell::RefCell<Vec<NamedMap>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A map and the Go named type Helm gives it.
type NamedMap = (Arc<BTreeMap<String, Value>>, &'static str);

/// Declares `value` (a map) to be of Go's named map type `type_name` for renders on this
/// thread.
pub fn name_map_type(value: &Value, type_name: &'static str) {
    if let Value::Map(map) = value {
        NAMED_MAPS.with(|named| {
            let mut named = named.borrow_mut();
            if !named.iter().any(|(known, _)| Arc::ptr_eq(known, map)) {
                named.push((map.clone(), type_name));
            }
        });
    }
}

/// Gives `version` (a changed or resolved copy of `map`) the named type `map` has, if any: in
/// Go the map changed in place keeps its type.
pub(crate) fn keep_map_type(map: &Arc<BTreeMap<String, Value>>, version: &Value) {
    if let Some(type_name) = named_map_type(map) {
        name_map_type(version, type_name);
    }
}

/// Forgets the maps [`name_map_type`] named on this thread.
pub fn forget_map_types() {
    NAMED_MAPS.with(|named| named.borrow_mut().clear());
}

/// The Go named type of `map`, when Helm passes it as one.
pub fn named_map_type(map: &Arc<BTreeMap<String, Value>>) -> Option<&'static str> {
    NAMED_MAPS.with(|named| {
        named
            .borrow()
            .iter()
            .find(|(known, _)| Arc::ptr_eq(known, map))
            .map(|(_, name)| *name)
    })
}

impl Value {
    /// Converts interchange JSON to a template value (see the module doc for number types).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if n.is_f64() {
                    Value::Float(n.as_f64().unwrap_or(0.0))
                } else if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else {
                    // u64 beyond i64: Go would hold a uint64; a float keeps its magnitude.
                    Value::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(Arc::new(items.iter().map(Value::from_json).collect()))
            }
            serde_json::Value::Object(map) => Value::from_json_map(map),
        }
    }

    /// [`Value::from_json`] of an object, for a caller that holds the map alone.
    pub fn from_json_map(map: &serde_json::Map<String, serde_json::Value>) -> Value {
        Value::Map(Arc::new(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect(),
        ))
    }

    /// Converts back to interchange JSON. Objects become their serializable form; bytes become
    /// base64 text as Go's encoding/json writes `[]byte`. Non-finite floats (which JSON cannot
    /// hold) become null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Bytes(bytes) => {
                use base64::Engine as _;
                serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(&**bytes),
                )
            }
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
            Value::Object(object) => object.to_serializable().to_json(),
        }
    }

    /// A map value from key/value pairs.
    pub fn map(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
        Value::Map(Arc::new(entries.into_iter().collect()))
    }

    /// A list value.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(Arc::new(items.into_iter().collect()))
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_go_types() {
        let json: serde_json::Value = serde_json::json!({"f": 12345678.0, "i": 3});
        let value = Value::from_json(&json);
        let map = value.as_map().cloned().unwrap_or_default();
        assert!(matches!(map.get("f"), Some(Value::Float(f)) if *f == 12345678.0));
        assert!(matches!(map.get("i"), Some(Value::Int(3))));
        assert_eq!(value.to_json(), json);
    }
}
