//! Helm's `--set` family (pkg/strvals) and `-f` merging (pkg/cli/values): the user-supplied values.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Values, ValuesError};
use gocompat::yaml;

/// Helm's limits on `--set` input (strvals.MaxIndex / MaxNestedNameLevel).
const MAX_INDEX: usize = 65536;
const MAX_NESTED_NAME_LEVEL: usize = 30;

/// Which flag a `--set`-style expression came from; it decides how values are typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    /// `--set`: `true`/`false`/`null`/integers are typed, the rest are strings.
    Typed,
    /// `--set-string`: every value is a string.
    String,
    /// `--set-json`: every value is JSON (numbers become float64).
    Json,
    /// `--set-file`: every value is the content of the named file.
    File,
    /// `--set-literal`: the whole rest after `=` is one string.
    Literal,
}

impl SetKind {
    fn flag(self) -> &'static str {
        match self {
            SetKind::Typed => "--set",
            SetKind::String => "--set-string",
            SetKind::Json => "--set-json",
            SetKind::File => "--set-file",
            SetKind::Literal => "--set-literal",
        }
    }
}

/// The value flags of `helm template` / `helm install`, applied in Helm's order.
#[derive(Clone, Debug, Default)]
pub struct ValueOptions {
    pub value_files: Vec<PathBuf>,
    pub set: Vec<String>,
    pub set_string: Vec<String>,
    pub set_json: Vec<String>,
    pub set_file: Vec<String>,
    pub set_literal: Vec<String>,
}

impl ValueOptions {
    /// `values.Options.MergeValues`: `-f` files merged in order, then `--set-json`, `--set`,
    /// `--set-string`, `--set-file`, `--set-literal`.
    pub fn merge(&self) -> Result<Values, ValuesError> {
        self.merge_files_as(false)
    }

    /// [`merge`](Self::merge) as helm 4 does it: each `-f` file is a stream of `---` documents,
    /// all of them merged (helm 4's `LoadValues`), where helm 3 reads the first only.
    pub fn merge_all_documents(&self) -> Result<Values, ValuesError> {
        self.merge_files_as(true)
    }

    fn merge_files_as(&self, all_documents: bool) -> Result<Values, ValuesError> {
        let mut base = Values::new();
        for path in &self.value_files {
            let text = read_value_file(path)?;
            let name = path.display().to_string();
            let current = if all_documents {
                super::load_values_documents(&text, &name).map_err(|reason| {
                    ValuesError::Documents {
                        path: name.clone(),
                        reason,
                    }
                })?
            } else {
                yaml::parse_values(&text, &name)?
            };
            base = merge_maps(base, current);
        }
        for (kind, exprs) in [
            (SetKind::Json, &self.set_json),
            (SetKind::Typed, &self.set),
            (SetKind::String, &self.set_string),
            (SetKind::File, &self.set_file),
            (SetKind::Literal, &self.set_literal),
        ] {
            for expr in exprs {
                parse_into(expr, kind, &mut base)?;
            }
        }
        Ok(base)
    }
}

fn read_value_file(path: &Path) -> Result<String, ValuesError> {
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
    } else {
        std::fs::read(path)
    }
    .map_err(|e| ValuesError::ReadFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Helm's `mergeMaps` for `-f` files: maps merge recursively, anything else is replaced.
pub fn merge_maps(mut base: Values, overlay: Values) -> Values {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                let merged = merge_maps(std::mem::take(existing), incoming);
                *existing = merged;
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
    base
}

/// Parses one `--set`-style expression (`a.b=1,c[0]=x`) into `dest`, overwriting existing keys.
pub fn parse_into(expr: &str, kind: SetKind, dest: &mut Values) -> Result<(), ValuesError> {
    let mut parser = SetParser {
        input: expr.chars().collect(),
        pos: 0,
        kind,
    };
    let result = loop {
        match parser.key(dest, 0) {
            Ok(()) => continue,
            Err(Stop::Eof) => break Ok(()),
            Err(Stop::NotList) => break Err("not a list".to_string()),
            Err(Stop::Fail(message)) => break Err(message),
        }
    };
    result.map_err(|message| ValuesError::Set {
        flag: kind.flag(),
        input: expr.to_string(),
        message,
    })
}

/// Why parsing stopped: the end of input (success), a value that is not `{a,b}`, or an error.
enum Stop {
    Eof,
    NotList,
    Fail(String),
}

fn fail<T>(message: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Fail(message.into()))
}

struct SetParser {
    input: Vec<char>,
    pos: usize,
    kind: SetKind,
}

impl SetParser {
    fn read(&mut self) -> Option<char> {
        let c = self.input.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    /// `runesUntil`: reads up to a stop character (backslash escapes the next one).
    fn until(&mut self, stops: &[char]) -> (String, Option<char>) {
        let mut out = String::new();
        loop {
            match self.read() {
                None => return (out, None),
                Some(c) if stops.contains(&c) => return (out, Some(c)),
                Some('\\') => match self.read() {
                    None => return (out, None),
                    Some(next) => out.push(next),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn convert(&self, raw: String) -> Result<Value, Stop> {
        match self.kind {
            SetKind::String | SetKind::Literal => Ok(Value::String(raw)),
            SetKind::Typed | SetKind::Json => Ok(typed_value(raw)),
            SetKind::File => match std::fs::read(&raw) {
                Ok(bytes) => Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
                Err(e) => fail(format!("open {raw}: {e}")),
            },
        }
    }

    fn key(&mut self, data: &mut Values, level: usize) -> Result<(), Stop> {
        let (key, last) = self.until(&['=', '[', ',', '.']);
        match last {
            None => {
                if key.is_empty() {
                    Err(Stop::Eof)
                } else {
                    fail(format!("key {key:?} has no value"))
                }
            }
            Some('[') => {
                let index = self.index()?;
                let list = match data.remove(&key) {
                    None => Vec::new(),
                    Some(Value::Array(items)) => items,
                    Some(other) => {
                        data.insert(key.clone(), other);
                        return fail(format!(
                            "unable to parse key: interface conversion: {key:?} is not a list"
                        ));
                    }
                };
                let (list, result) = self.list_item(list, index, level);
                set(data, &key, Value::Array(list));
                result
            }
            Some('=') => {
                if self.kind == SetKind::Literal {
                    let rest: String = self.input[self.pos..].iter().collect();
                    self.pos = self.input.len();
                    set(data, &key, Value::String(rest));
                    return Err(Stop::Eof);
                }
                if self.kind == SetKind::Json {
                    let value = self.json_value()?;
                    set(data, &key, value);
                    return self.skip_separator();
                }
                match self.value_list() {
                    Ok(list) => {
                        set(data, &key, Value::Array(list));
                        Ok(())
                    }
                    Err(Stop::Eof) => {
                        set(data, &key, Value::String(String::new()));
                        Err(Stop::Eof)
                    }
                    Err(Stop::NotList) => {
                        let (raw, _) = self.until(&[',']);
                        let value = self.convert(raw)?;
                        set(data, &key, value);
                        Ok(())
                    }
                    Err(other) => Err(other),
                }
            }
            Some(',') => {
                set(data, &key, Value::String(String::new()));
                fail(format!("key {key:?} has no value (cannot end with ,)"))
            }
            Some(_) => {
                // '.': a nested map.
                let level = level + 1;
                if level > MAX_NESTED_NAME_LEVEL {
                    return fail(format!(
                        "value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}"
                    ));
                }
                let mut inner = match data.get(&key) {
                    None => Map::new(),
                    Some(Value::Object(map)) => map.clone(),
                    Some(_) => {
                        return fail(format!(
                            "unable to parse key: interface conversion: {key:?} is not a map"
                        ));
                    }
                };
                let result = self.key(&mut inner, level);
                if result.is_ok() && inner.is_empty() {
                    return fail(format!("key map {key:?} has no value"));
                }
                if !inner.is_empty() {
                    set(data, &key, Value::Object(inner));
                }
                result
            }
        }
    }

    fn index(&mut self) -> Result<usize, Stop> {
        let (text, last) = self.until(&[']']);
        if last.is_none() {
            return Err(Stop::Eof);
        }
        match text.parse::<i64>() {
            Ok(i) if i < 0 => fail(format!("negative {i} index not allowed")),
            Ok(i) if i as u64 > MAX_INDEX as u64 => fail(format!(
                "index of {i} is greater than maximum supported index of {MAX_INDEX}"
            )),
            Ok(i) => Ok(i as usize),
            Err(_) => fail(format!(
                "error parsing index: strconv.Atoi: parsing {text:?}: invalid syntax"
            )),
        }
    }

    fn list_item(
        &mut self,
        mut list: Vec<Value>,
        index: usize,
        level: usize,
    ) -> (Vec<Value>, Result<(), Stop>) {
        let (rest, last) = self.until(&['[', '.', '=']);
        if !rest.is_empty() {
            return (
                list,
                fail(format!("unexpected data at end of array index: {rest:?}")),
            );
        }
        match last {
            None => (list, Err(Stop::Eof)),
            Some('=') => {
                if self.kind == SetKind::Json {
                    return match self.json_value() {
                        Ok(value) => {
                            set_index(&mut list, index, value);
                            let result = self.skip_separator();
                            (list, result)
                        }
                        Err(e) => (list, Err(e)),
                    };
                }
                match self.value_list() {
                    Ok(values) => {
                        set_index(&mut list, index, Value::Array(values));
                        (list, Ok(()))
                    }
                    Err(Stop::Eof) => {
                        set_index(&mut list, index, Value::String(String::new()));
                        (list, Ok(()))
                    }
                    Err(Stop::NotList) => {
                        let (raw, _) = self.until(&[',']);
                        match self.convert(raw) {
                            Ok(value) => {
                                set_index(&mut list, index, value);
                                (list, Ok(()))
                            }
                            Err(e) => (list, Err(e)),
                        }
                    }
                    Err(e) => (list, Err(e)),
                }
            }
            Some('[') => {
                let next = match self.index() {
                    Ok(i) => i,
                    Err(e) => return (list, Err(e)),
                };
                let current = match list.get(index) {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                let (inner, result) = self.list_item(current, next, level);
                if result.is_err() {
                    return (list, result);
                }
                set_index(&mut list, index, Value::Array(inner));
                (list, Ok(()))
            }
            Some(_) => {
                // '.': a map inside the list.
                let mut inner = match list.get(index) {
                    Some(Value::Object(map)) => map.clone(),
                    _ => Map::new(),
                };
                if let Err(e) = self.key(&mut inner, level) {
                    return (list, Err(e));
                }
                set_index(&mut list, index, Value::Object(inner));
                (list, Ok(()))
            }
        }
    }

    /// `valList`: `{a,b,c}` as a list, or `NotList` (nothing consumed) when no `{` follows.
    fn value_list(&mut self) -> Result<Vec<Value>, Stop> {
        match self.read() {
            None => return Err(Stop::Eof),
            Some('{') => {}
            Some(_) => {
                self.unread();
                return Err(Stop::NotList);
            }
        }
        let mut list = Vec::new();
        loop {
            let (raw, last) = self.until(&[',', '}']);
            match last {
                None => return fail("list must terminate with '}'"),
                Some('}') => {
                    if let Some(c) = self.read()
                        && c != ','
                    {
                        self.unread();
                    }
                    list.push(self.convert(raw)?);
                    return Ok(list);
                }
                Some(_) => list.push(self.convert(raw)?),
            }
        }
    }

    /// One JSON value from the rest of the input (an empty value is `null`).
    fn json_value(&mut self) -> Result<Value, Stop> {
        // An empty value (only blanks before a comma or the end) is null.
        let start = self.pos;
        loop {
            match self.read() {
                None => return Ok(Value::Null),
                Some(',') => return Ok(Value::Null),
                Some(c) if c.is_whitespace() => continue,
                Some(_) => {
                    self.unread();
                    break;
                }
            }
        }
        let _ = start;
        let rest: String = self.input[self.pos..].iter().collect();
        let mut stream = serde_json::Deserializer::from_str(&rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                let consumed_bytes = stream.byte_offset();
                let consumed_chars = rest
                    .get(..consumed_bytes)
                    .map(|s| s.chars().count())
                    .unwrap_or(rest.chars().count());
                self.pos += consumed_chars;
                Ok(floats_only(value))
            }
            Some(Err(e)) => fail(e.to_string()),
            None => Ok(Value::Null),
        }
    }

    /// After a JSON value: skips blanks and one comma.
    fn skip_separator(&mut self) -> Result<(), Stop> {
        loop {
            match self.read() {
                None | Some(',') => return Ok(()),
                Some(c) if c.is_whitespace() => continue,
                Some(_) => {
                    self.unread();
                    return Ok(());
                }
            }
        }
    }
}

/// JSON decoded into Go's `interface{}` holds only float64 numbers.
fn floats_only(value: Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.into_iter().map(floats_only).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, floats_only(v))).collect())
        }
        other => other,
    }
}

fn set(data: &mut Values, key: &str, value: Value) {
    if !key.is_empty() {
        data.insert(key.to_string(), value);
    }
}

fn set_index(list: &mut Vec<Value>, index: usize, value: Value) {
    if list.len() <= index {
        list.resize(index + 1, Value::Null);
    }
    if let Some(slot) = list.get_mut(index) {
        *slot = value;
    }
}

/// `typedVal`: `true`/`false`/`null` (any case), `0`, and integers not starting with 0 are typed.
fn typed_value(raw: String) -> Value {
    if raw.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if raw.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if raw.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if raw == "0" {
        return Value::from(0i64);
    }
    if !raw.starts_with('0')
        && let Some(i) = go_parse_int10(&raw)
    {
        return Value::from(i);
    }
    Value::String(raw)
}

/// `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits only.
fn go_parse_int10(s: &str) -> Option<i64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(expr: &str, kind: SetKind) -> Result<Value, ValuesError> {
        let mut dest = Values::new();
        parse_into(expr, kind, &mut dest).map(|_| Value::Object(dest))
    }

    fn ok(expr: &str, kind: SetKind) -> Value {
        match parse(expr, kind) {
            Ok(v) => v,
            Err(e) => panic!("{expr}: {e}"),
        }
    }

    #[test]
    fn typed_values_follow_helm() {
        assert_eq!(
            ok("a=1,b=true,c=NULL,d=0,e=012,f=1.5,g=-3,h=", SetKind::Typed),
            json!({"a": 1, "b": true, "c": null, "d": 0, "e": "012", "f": "1.5", "g": -3, "h": ""})
        );
    }

    #[test]
    fn nested_keys_lists_and_escapes() {
        assert_eq!(
            ok(
                "image.tag=v1,list[1].name=x,arr={a,b},dotted\\.key=y,nested[0][1]=z",
                SetKind::Typed
            ),
            json!({
                "image": {"tag": "v1"},
                "list": [null, {"name": "x"}],
                "arr": ["a", "b"],
                "dotted.key": "y",
                "nested": [[null, "z"]]
            })
        );
    }

    #[test]
    fn set_string_keeps_strings() {
        assert_eq!(
            ok("a=1,b=true", SetKind::String),
            json!({"a": "1", "b": "true"})
        );
    }

    #[test]
    fn set_json_parses_json_with_float_numbers() {
        let v = ok(r#"a={"x":[1,2]},b="s",c="#, SetKind::Json);
        assert_eq!(v, json!({"a": {"x": [1.0, 2.0]}, "b": "s", "c": null}));
        assert!(v["a"]["x"][0].is_f64());
    }

    #[test]
    fn set_literal_takes_everything_after_equals() {
        assert_eq!(
            ok("a.b=x,y=z{}", SetKind::Literal),
            json!({"a": {"b": "x,y=z{}"}})
        );
    }

    #[test]
    fn errors_use_helm_wording() {
        let no_value = parse("a", SetKind::Typed).err().map(|e| e.to_string());
        assert!(
            no_value
                .as_deref()
                .is_some_and(|t| t.contains("key \"a\" has no value"))
        );
        let trailing = parse("a,b=1", SetKind::Typed).err().map(|e| e.to_string());
        assert!(
            trailing
                .as_deref()
                .is_some_and(|t| t.contains("cannot end with ,"))
        );
        let negative = parse("a[-1]=1", SetKind::Typed)
            .err()
            .map(|e| e.to_string());
        assert!(
            negative
                .as_deref()
                .is_some_and(|t| t.contains("negative -1 index not allowed"))
        );
        assert!(parse("a[99999999]=1", SetKind::Typed).is_err());
        assert!(parse("a.b=1,a[0]=2", SetKind::Typed).is_err());
    }

    #[test]
    fn merge_maps_is_recursive_for_maps_only() {
        let base = match json!({"a": {"x": 1, "y": 2}, "l": [1]}) {
            Value::Object(m) => m,
            _ => Values::new(),
        };
        let overlay = match json!({"a": {"y": 3}, "l": [2]}) {
            Value::Object(m) => m,
            _ => Values::new(),
        };
        assert_eq!(
            Value::Object(merge_maps(base, overlay)),
            json!({"a": {"x": 1, "y": 3}, "l": [2]})
        );
    }
}
