//! Value paths like `image.tag`, `containers[0].image` or `annotations["a.b/c"]`: parse, get, set.
//!
//! The updater reads and writes the values named by a Keel `images[]` entry with these. Keys that
//! contain dots are written with a backslash (`a\.b`) or in brackets with quotes (`["a.b"]`).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::ValuesError;

/// One step of a [`ValuePath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A parsed value path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValuePath {
    segments: Vec<PathSegment>,
}

impl ValuePath {
    /// A path made of these segments.
    pub fn from_segments(segments: Vec<PathSegment>) -> Self {
        Self { segments }
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }

    /// The value at this path, if every step exists.
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut current = root;
        for segment in &self.segments {
            current = match (segment, current) {
                (PathSegment::Key(key), Value::Object(map)) => map.get(key)?,
                (PathSegment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// The value at this path inside a values map.
    pub fn get_in<'a>(&self, values: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let PathSegment::Key(key) = first else {
            return None;
        };
        let start = values.get(key)?;
        ValuePath {
            segments: rest.to_vec(),
        }
        .get(start)
    }

    /// Sets the value at this path, creating missing maps (and extending lists with nulls).
    /// Refuses to replace a scalar, list or map that stands where the path needs the other kind:
    /// stored values are never silently overwritten by a wrong path.
    pub fn set(&self, root: &mut Value, new_value: Value) -> Result<(), ValuesError> {
        let mut current = root;
        for (depth, segment) in self.segments.iter().enumerate() {
            let is_last = depth + 1 == self.segments.len();
            if current.is_null() {
                *current = match segment {
                    PathSegment::Key(_) => Value::Object(Map::new()),
                    PathSegment::Index(_) => Value::Array(Vec::new()),
                };
            }
            let next = match (segment, current) {
                (PathSegment::Key(key), Value::Object(map)) => {
                    map.entry(key.clone()).or_insert(Value::Null)
                }
                (PathSegment::Index(i), Value::Array(items)) => {
                    if items.len() <= *i {
                        items.resize(*i + 1, Value::Null);
                    }
                    match items.get_mut(*i) {
                        Some(slot) => slot,
                        None => return Err(self.conflict(depth, "index out of range")),
                    }
                }
                (PathSegment::Key(_), other) => {
                    let kind = kind_name(other);
                    return Err(self.conflict(depth, &format!("expected a map, found {kind}")));
                }
                (PathSegment::Index(_), other) => {
                    let kind = kind_name(other);
                    return Err(self.conflict(depth, &format!("expected a list, found {kind}")));
                }
            };
            if is_last {
                *next = new_value;
                return Ok(());
            }
            current = next;
        }
        // An empty path names the root itself.
        *current = new_value;
        Ok(())
    }

    /// Sets the value at this path inside a values map.
    pub fn set_in(
        &self,
        values: &mut Map<String, Value>,
        new_value: Value,
    ) -> Result<(), ValuesError> {
        let mut root = Value::Object(std::mem::take(values));
        let result = self.set(&mut root, new_value);
        if let Value::Object(map) = root {
            *values = map;
        }
        result
    }

    fn conflict(&self, depth: usize, message: &str) -> ValuesError {
        let prefix = ValuePath {
            segments: self.segments.iter().take(depth).cloned().collect(),
        };
        ValuesError::PathConflict {
            path: self.to_string(),
            message: format!("at {:?}: {message}", prefix.to_string()),
        }
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl FromStr for ValuePath {
    type Err = ValuesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |message: &str| ValuesError::BadPath {
            path: text.to_string(),
            message: message.to_string(),
        };
        let chars: Vec<char> = text.chars().collect();
        let mut segments = Vec::new();
        let mut key = String::new();
        let mut key_started = false;
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            match c {
                '\\' => {
                    let next = chars.get(i + 1).ok_or_else(|| bad("trailing backslash"))?;
                    key.push(*next);
                    key_started = true;
                    i += 2;
                }
                '.' => {
                    if key_started {
                        segments.push(PathSegment::Key(std::mem::take(&mut key)));
                        key_started = false;
                    } else if !matches!(chars.get(i.wrapping_sub(1)), Some(']')) || i == 0 {
                        return Err(bad("empty key"));
                    }
                    i += 1;
                    if chars.get(i).is_none() {
                        return Err(bad("path ends with '.'"));
                    }
                }
                '[' => {
                    if key_started {
                        segments.push(PathSegment::Key(std::mem::take(&mut key)));
                        key_started = false;
                    }
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| bad("missing ']'"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let quoted = inner
                        .strip_prefix('"')
                        .and_then(|s| s.strip_suffix('"'))
                        .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
                    if let Some(quoted_key) = quoted {
                        segments.push(PathSegment::Key(quoted_key.to_string()));
                    } else {
                        let index = inner
                            .trim()
                            .parse::<usize>()
                            .map_err(|_| bad(&format!("list index {inner:?} is not a number")))?;
                        segments.push(PathSegment::Index(index));
                    }
                    i = close + 1;
                    if let Some(next) = chars.get(i)
                        && *next != '.'
                        && *next != '['
                    {
                        return Err(bad("expected '.' or '[' after ']'"));
                    }
                }
                _ => {
                    key.push(c);
                    key_started = true;
                    i += 1;
                }
            }
        }
        if key_started {
            segments.push(PathSegment::Key(key));
        }
        if segments.is_empty() {
            return Err(bad("empty path"));
        }
        Ok(ValuePath { segments })
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, segment) in self.segments.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if key.contains(['.', '[', ']', '\\']) => {
                    write!(f, "[{key:?}]")?;
                }
                PathSegment::Key(key) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                PathSegment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> ValuePath {
        match text.parse() {
            Ok(p) => p,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn parses_keys_indexes_and_escaped_dots() {
        assert_eq!(
            path("a.b[0].c").segments(),
            &[
                PathSegment::Key("a".into()),
                PathSegment::Key("b".into()),
                PathSegment::Index(0),
                PathSegment::Key("c".into())
            ]
        );
        assert_eq!(
            path(r"annotations.keel\.sh/policy").segments(),
            &[
                PathSegment::Key("annotations".into()),
                PathSegment::Key("keel.sh/policy".into())
            ]
        );
        assert_eq!(
            path(r#"annotations["keel.sh/policy"]"#).segments(),
            path(r"annotations.keel\.sh/policy").segments()
        );
        assert_eq!(path("m[1][2]").segments().len(), 3);
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["", ".a", "a.", "a..b", "a[x]", "a[1", "a[0]b", "a\\"] {
            assert!(bad.parse::<ValuePath>().is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["a.b[0].c", r#"x["k.y"].z"#, "l[3]"] {
            assert_eq!(path(&path(text).to_string()), path(text));
        }
    }

    #[test]
    fn get_walks_maps_and_lists() {
        let v = json!({"a": {"b": [{"c": "x"}]}});
        assert_eq!(path("a.b[0].c").get(&v), Some(&json!("x")));
        assert_eq!(path("a.b[1].c").get(&v), None);
        assert_eq!(path("a.b.c").get(&v), None);
    }

    #[test]
    fn set_creates_missing_parts() {
        let mut v = json!({"image": {"repository": "r"}});
        assert!(path("image.tag").set(&mut v, json!("1.2")).is_ok());
        assert!(path("extra[1].name").set(&mut v, json!("n")).is_ok());
        assert_eq!(
            v,
            json!({"image": {"repository": "r", "tag": "1.2"}, "extra": [null, {"name": "n"}]})
        );
    }

    #[test]
    fn set_refuses_to_overwrite_a_different_kind() {
        let mut v = json!({"image": "nginx:1.0"});
        let before = v.clone();
        let err = path("image.tag").set(&mut v, json!("1.2")).err();
        assert!(matches!(err, Some(ValuesError::PathConflict { .. })));
        assert_eq!(v, before);
    }

    #[test]
    fn set_in_and_get_in_work_on_values_maps() {
        let mut values = Map::new();
        assert!(path("a.b").set_in(&mut values, json!(1)).is_ok());
        assert_eq!(path("a.b").get_in(&values), Some(&json!(1)));
    }
}
