//! `values.schema.json` validation as helm 3.17 runs it (gojsonschema): the common keywords
//! (type, properties, required, items, enum, const, bounds, lengths, additionalProperties,
//! allOf/anyOf/oneOf/not, local `$ref`), with gojsonschema's message wording.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value as Json};

use crate::render::chart::Chart;
use crate::values::Values;

/// `chartutil.ValidateAgainstSchema`: every chart of the tree against its own values section.
/// `Err` carries Helm's text (`chart:\n- field: message\n` per failing chart).
pub fn validate_chart_tree(chart: &Chart, values: &Values) -> Result<(), String> {
    let mut report = String::new();
    collect(chart, values, &mut report);
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

fn collect(chart: &Chart, values: &Values, report: &mut String) {
    if let Some(schema_bytes) = &chart.schema {
        match serde_json::from_slice::<Node>(schema_bytes) {
            Ok(schema) => {
                let mut errors = Vec::new();
                let checker = Checker { root: &schema };
                checker.validate(
                    &schema,
                    Instance::Object(values),
                    &Path::Root,
                    0,
                    &mut errors,
                );
                if !errors.is_empty() {
                    report.push_str(&format!("{}:\n", chart.name()));
                    for error in errors {
                        report.push_str(&format!("- {error}\n"));
                    }
                }
                if crate::render::engine::memory_goes_back_at_exit() {
                    // Freeing the schema node by node cost vault 0.27M instructions.
                    std::mem::forget(schema);
                }
            }
            Err(e) => report.push_str(&format!(
                "{}:\n- values.schema.json is not valid JSON: {e}\n",
                chart.name()
            )),
        }
    }
    let no_values = Values::new();
    for sub in &chart.dependencies {
        let section = match values.get(sub.name()) {
            Some(Json::Object(map)) => map,
            _ => &no_values,
        };
        collect(sub, section, report);
    }
}

/// A schema document as read. Strings borrow the file's bytes where they hold no escapes, and
/// each object keeps its members sorted by name, the last of a repeated name winning: what
/// serde_json's map gives, so lookups and the order of reported errors are unchanged, without a
/// tree of allocated maps and keys (a 150 KB schema took longer to read than to check).
#[derive(Debug)]
enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    fn get(&self, name: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(members) => members
                .binary_search_by(|(key, _)| key.as_ref().cmp(name))
                .ok()
                .map(|at| &members[at].1),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Node::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Node::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// serde_json's `Value::pointer` (RFC 6901) over the borrowed tree.
    fn pointer(&self, pointer: &str) -> Option<&Node<'a>> {
        if pointer.is_empty() {
            return Some(self);
        }
        if !pointer.starts_with('/') {
            return None;
        }
        pointer.split('/').skip(1).try_fold(self, |target, token| {
            let token = token.replace("~1", "/").replace("~0", "~");
            match target {
                Node::Object(_) => target.get(&token),
                Node::Array(items) => array_index(&token).and_then(|at| items.get(at)),
                _ => None,
            }
        })
    }

    /// The same value as serde_json would have read, for printing in messages.
    fn to_json(&self) -> Json {
        match self {
            Node::Null => Json::Null,
            Node::Bool(b) => Json::Bool(*b),
            Node::Number(n) => Json::Number(n.clone()),
            Node::String(s) => Json::String(s.to_string()),
            Node::Array(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Node::Object(members) => Json::Object(
                members
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_json()))
                    .collect(),
            ),
        }
    }

    /// serde_json's `==` between this node read as a `Value` and `json`.
    fn equals(&self, json: &Json) -> bool {
        match (self, json) {
            (Node::Null, Json::Null) => true,
            (Node::Bool(a), Json::Bool(b)) => a == b,
            (Node::Number(a), Json::Number(b)) => a == b,
            (Node::String(a), Json::String(b)) => a == b,
            (Node::Array(a), Json::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (Node::Object(members), Json::Object(map)) => members_equal(members, map),
            _ => false,
        }
    }
}

fn members_equal(members: &[(Cow<'_, str>, Node<'_>)], map: &Values) -> bool {
    members.len() == map.len()
        && members.iter().all(|(key, node)| {
            map.get(key.as_ref())
                .is_some_and(|value| node.equals(value))
        })
}

/// serde_json's array index rule for pointers: digits only, no sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Node<'de>, E> {
        // As serde_json's own `Value` does for a float it cannot hold.
        Ok(Number::from_f64(value).map_or(Node::Null, Node::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(value.to_string())))
    }

    fn visit_string<E>(self, value: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(value)))
    }

    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Node<'de>)> = Vec::new();
        while let Some(Name(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        // A stable sort keeps repeated names in document order, so the last one is kept.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(members.len());
        for member in members {
            if unique.last().is_some_and(|(key, _)| *key == member.0) {
                unique.pop();
            }
            unique.push(member);
        }
        Ok(Node::Object(unique))
    }
}

/// An object member's name, borrowed when it holds no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a string key")
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(value.to_string())))
            }

            fn visit_string<E>(self, value: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The value being checked. The values root is a map held by the caller, checked in place
/// instead of being copied into a `Value`.
#[derive(Clone, Copy)]
enum Instance<'v> {
    Object(&'v Values),
    Other(&'v Json),
}

impl<'v> Instance<'v> {
    fn of(value: &'v Json) -> Self {
        match value {
            Json::Object(map) => Instance::Object(map),
            other => Instance::Other(other),
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Instance::Object(_) => "object",
            Instance::Other(value) => type_name(value),
        }
    }

    /// gojsonschema's equality for enum and const: numbers by value, the rest as JSON.
    fn equals(self, expected: &Node) -> bool {
        match (self, expected) {
            (Instance::Other(Json::Number(x)), Node::Number(y)) => x.as_f64() == y.as_f64(),
            (Instance::Other(value), node) => node.equals(value),
            (Instance::Object(map), Node::Object(members)) => members_equal(members, map),
            (Instance::Object(_), _) => false,
        }
    }
}

/// Where a checked value sits, written out only when a check fails: `(root)`, then
/// dot-separated names and indexes.
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parent, key): (&Path, Cow<str>) = match self {
            Path::Root => return f.write_str("(root)"),
            Path::Key(parent, key) => (parent, Cow::Borrowed(key)),
            Path::Index(parent, index) => (parent, Cow::Owned(index.to_string())),
        };
        // A child of the root is named alone, whatever the names above it spelled.
        let above = parent.to_string();
        if above == "(root)" {
            f.write_str(&key)
        } else {
            write!(f, "{above}.{key}")
        }
    }
}

/// The keywords of one schema object that the checks read.
#[derive(Default)]
struct Keywords<'s, 'a> {
    reference: Option<&'s Node<'a>>,
    types: Option<&'s Node<'a>>,
    allowed: Option<&'s Node<'a>>,
    constant: Option<&'s Node<'a>>,
    minimum: Option<&'s Node<'a>>,
    maximum: Option<&'s Node<'a>>,
    exclusive_minimum: Option<&'s Node<'a>>,
    exclusive_maximum: Option<&'s Node<'a>>,
    min_length: Option<&'s Node<'a>>,
    max_length: Option<&'s Node<'a>>,
    required: Option<&'s Node<'a>>,
    properties: Option<&'s Node<'a>>,
    additional_properties: Option<&'s Node<'a>>,
    items: Option<&'s Node<'a>>,
    min_items: Option<&'s Node<'a>>,
    max_items: Option<&'s Node<'a>>,
    all_of: Option<&'s Node<'a>>,
    any_of: Option<&'s Node<'a>>,
    one_of: Option<&'s Node<'a>>,
    not: Option<&'s Node<'a>>,
}

impl<'s, 'a> Keywords<'s, 'a> {
    /// One pass over the members; names are unique after reading.
    fn of(members: &'s [(Cow<'a, str>, Node<'a>)]) -> Self {
        let mut keywords = Keywords::default();
        for (name, node) in members {
            let slot = match name.as_ref() {
                "$ref" => &mut keywords.reference,
                "type" => &mut keywords.types,
                "enum" => &mut keywords.allowed,
                "const" => &mut keywords.constant,
                "minimum" => &mut keywords.minimum,
                "maximum" => &mut keywords.maximum,
                "exclusiveMinimum" => &mut keywords.exclusive_minimum,
                "exclusiveMaximum" => &mut keywords.exclusive_maximum,
                "minLength" => &mut keywords.min_length,
                "maxLength" => &mut keywords.max_length,
                "required" => &mut keywords.required,
                "properties" => &mut keywords.properties,
                "additionalProperties" => &mut keywords.additional_properties,
                "items" => &mut keywords.items,
                "minItems" => &mut keywords.min_items,
                "maxItems" => &mut keywords.max_items,
                "allOf" => &mut keywords.all_of,
                "anyOf" => &mut keywords.any_of,
                "oneOf" => &mut keywords.one_of,
                "not" => &mut keywords.not,
                _ => continue,
            };
            *slot = Some(node);
        }
        keywords
    }
}

/// `$ref`s followed in a row without reaching a deeper value: only a reference cycle gets
/// this far (`{"$ref": "#"}`), where gojsonschema recurses until Go's stack limit kills helm.
const MAX_REFERENCE_CHAIN: usize = 64;

struct Checker<'s, 'a> {
    root: &'s Node<'a>,
}

impl<'s, 'a> Checker<'s, 'a> {
    fn validate(
        &self,
        schema: &'s Node<'a>,
        value: Instance,
        path: &Path,
        references: usize,
        errors: &mut Vec<String>,
    ) {
        let Node::Object(members) = schema else {
            if matches!(schema, Node::Bool(false)) {
                errors.push(format!("{path}: False always fails validation"));
            }
            return;
        };
        let rules = Keywords::of(members);
        if let Some(Node::String(reference)) = rules.reference {
            if references >= MAX_REFERENCE_CHAIN {
                errors.push(format!("{path}: $ref {reference} refers back to itself"));
            } else if let Some(target) = self.resolve(reference) {
                self.validate(target, value, path, references + 1, errors);
            }
            return;
        }
        if let Some(expected) = rules.types {
            let allowed: Vec<&str> = match expected {
                Node::String(t) => vec![t.as_ref()],
                Node::Array(ts) => ts.iter().filter_map(Node::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.is_empty() && !allowed.iter().any(|t| type_matches(t, value.type_name())) {
                errors.push(format!(
                    "{path}: Invalid type. Expected: {}, given: {}",
                    allowed.join("/"),
                    value.type_name()
                ));
                return;
            }
        }
        if let Some(Node::Array(options)) = rules.allowed
            && !options.iter().any(|o| value.equals(o))
        {
            let listed: Vec<String> = options.iter().map(|o| o.to_json().to_string()).collect();
            errors.push(format!(
                "{path}: {path} must be one of the following: {}",
                listed.join(", ")
            ));
        }
        if let Some(expected) = rules.constant
            && !value.equals(expected)
        {
            errors.push(format!(
                "{path}: {path} does not match: {}",
                expected.to_json()
            ));
        }
        match value {
            Instance::Other(Json::Number(n)) => {
                let n = n.as_f64().unwrap_or(0.0);
                let bound = |keyword: Option<&Node>| keyword.and_then(Node::as_f64);
                if let Some(min) = bound(rules.minimum)
                    && n < min
                {
                    errors.push(format!(
                        "{path}: Must be greater than or equal to {}",
                        go_number(min)
                    ));
                }
                if let Some(max) = bound(rules.maximum)
                    && n > max
                {
                    errors.push(format!(
                        "{path}: Must be less than or equal to {}",
                        go_number(max)
                    ));
                }
                if let Some(min) = bound(rules.exclusive_minimum)
                    && n <= min
                {
                    errors.push(format!("{path}: Must be greater than {}", go_number(min)));
                }
                if let Some(max) = bound(rules.exclusive_maximum)
                    && n >= max
                {
                    errors.push(format!("{path}: Must be less than {}", go_number(max)));
                }
            }
            Instance::Other(Json::String(s)) => {
                let length = s.chars().count() as u64;
                if let Some(min) = rules.min_length.and_then(Node::as_u64)
                    && length < min
                {
                    errors.push(format!(
                        "{path}: String length must be greater than or equal to {min}"
                    ));
                }
                if let Some(max) = rules.max_length.and_then(Node::as_u64)
                    && length > max
                {
                    errors.push(format!(
                        "{path}: String length must be less than or equal to {max}"
                    ));
                }
            }
            Instance::Object(map) => self.validate_object(&rules, map, path, errors),
            Instance::Other(Json::Array(items)) => {
                if let Some(item_schema @ Node::Object(_)) = rules.items {
                    for (i, item) in items.iter().enumerate() {
                        let at = Path::Index(path, i);
                        self.validate(item_schema, Instance::of(item), &at, 0, errors);
                    }
                }
                if let Some(min) = rules.min_items.and_then(Node::as_u64)
                    && (items.len() as u64) < min
                {
                    errors.push(format!("{path}: Array must have at least {min} items"));
                }
                if let Some(max) = rules.max_items.and_then(Node::as_u64)
                    && (items.len() as u64) > max
                {
                    errors.push(format!("{path}: Array must have at most {max} items"));
                }
            }
            Instance::Other(_) => {}
        }
        if let Some(Node::Array(all)) = rules.all_of {
            for sub in all {
                self.validate(sub, value, path, references, errors);
            }
        }
        if let Some(Node::Array(any)) = rules.any_of {
            let passes = any
                .iter()
                .any(|sub| self.passes(sub, value, path, references));
            if !passes {
                errors.push(format!("{path}: Must validate at least one schema (anyOf)"));
            }
        }
        if let Some(Node::Array(one)) = rules.one_of {
            let passing = one
                .iter()
                .filter(|sub| self.passes(sub, value, path, references))
                .count();
            if passing != 1 {
                errors.push(format!(
                    "{path}: Must validate one and only one schema (oneOf)"
                ));
            }
        }
        if let Some(not) = rules.not
            && self.passes(not, value, path, references)
        {
            errors.push(format!("{path}: Must not validate the schema (not)"));
        }
    }

    fn validate_object(
        &self,
        rules: &Keywords<'s, 'a>,
        map: &Values,
        path: &Path,
        errors: &mut Vec<String>,
    ) {
        if let Some(Node::Array(required)) = rules.required {
            for name in required.iter().filter_map(Node::as_str) {
                if !map.contains_key(name) {
                    errors.push(format!("{path}: {name} is required"));
                }
            }
        }
        let properties = match rules.properties {
            Some(Node::Object(members)) => Some(members),
            _ => None,
        };
        if let Some(properties) = properties {
            for (key, sub_schema) in properties {
                if let Some(sub_value) = map.get(key.as_ref()) {
                    let at = Path::Key(path, key);
                    self.validate(sub_schema, Instance::of(sub_value), &at, 0, errors);
                }
            }
        }
        let declared = |key: &str| {
            properties.is_some_and(|p| {
                p.binary_search_by(|(name, _)| name.as_ref().cmp(key))
                    .is_ok()
            })
        };
        match rules.additional_properties {
            Some(Node::Bool(false)) => {
                for key in map.keys() {
                    if !declared(key) {
                        errors.push(format!("{path}: Additional property {key} is not allowed"));
                    }
                }
            }
            Some(extra @ Node::Object(_)) => {
                for (key, sub_value) in map {
                    if !declared(key) {
                        let at = Path::Key(path, key);
                        self.validate(extra, Instance::of(sub_value), &at, 0, errors);
                    }
                }
            }
            _ => {}
        }
    }

    fn passes(
        &self,
        schema: &'s Node<'a>,
        value: Instance,
        path: &Path,
        references: usize,
    ) -> bool {
        let mut scratch = Vec::new();
        self.validate(schema, value, path, references, &mut scratch);
        scratch.is_empty()
    }

    fn resolve(&self, reference: &str) -> Option<&'s Node<'a>> {
        self.root.pointer(reference.strip_prefix('#')?)
    }
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) => {
            if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn type_matches(expected: &str, actual: &str) -> bool {
    actual == expected || (expected == "number" && actual == "integer")
}

fn go_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Json, values: Json) -> Vec<String> {
        let text = schema.to_string();
        let schema: Node = serde_json::from_str(&text).expect("a schema written by json!");
        let mut errors = Vec::new();
        let checker = Checker { root: &schema };
        checker.validate(&schema, Instance::of(&values), &Path::Root, 0, &mut errors);
        errors
    }

    #[test]
    fn types_required_and_nested_paths() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 1},
                "image": {"type": "object", "properties": {"tag": {"type": "string"}}},
                "mode": {"enum": ["a", "b"]}
            }
        });
        assert!(check(schema.clone(), json!({"name": "x", "replicas": 2.0})).is_empty());
        let errors = check(
            schema,
            json!({"replicas": 0.0, "image": {"tag": 1.0}, "mode": "c"}),
        );
        assert_eq!(
            errors,
            vec![
                "(root): name is required",
                "image.tag: Invalid type. Expected: string, given: integer",
                "mode: mode must be one of the following: \"a\", \"b\"",
                "replicas: Must be greater than or equal to 1",
            ]
        );
    }

    #[test]
    fn refs_and_additional_properties() {
        let schema = json!({
            "definitions": {"port": {"type": "integer"}},
            "properties": {"port": {"$ref": "#/definitions/port"}},
            "additionalProperties": false
        });
        assert_eq!(
            check(schema, json!({"port": "x", "other": 1})),
            vec![
                "port: Invalid type. Expected: integer, given: string",
                "(root): Additional property other is not allowed",
            ]
        );
    }

    /// Every schema file of the fixtures and of the shared corpus reads as serde_json reads it.
    #[test]
    fn schemas_read_as_serde_json_reads_them() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let corpus = std::env::var_os("KEELSON_SHARED_CHARTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| manifest.join("../shared/charts"));
        assert!(
            corpus.is_dir(),
            "the shared chart corpus is missing at {}: run `make test` or set KEELSON_SHARED_CHARTS",
            corpus.display()
        );
        let mut files = Vec::new();
        for root in [manifest.join("fixtures"), corpus] {
            let mut pending = vec![root];
            while let Some(dir) = pending.pop() {
                for entry in std::fs::read_dir(&dir).expect("readable test directory") {
                    let path = entry.expect("directory entry").path();
                    if path.is_dir() {
                        pending.push(path);
                    } else if path.file_name().is_some_and(|n| n == "values.schema.json") {
                        files.push(path);
                    }
                }
            }
        }
        assert!(files.len() >= 10, "only {} schema files found", files.len());
        for file in &files {
            let bytes = std::fs::read(file).expect("readable schema");
            let expected: Json = serde_json::from_slice(&bytes).expect("corpus schemas are JSON");
            let node: Node = serde_json::from_slice(&bytes).expect("read as a node");
            assert_eq!(node.to_json(), expected, "{}", file.display());
        }
    }

    #[test]
    fn escapes_repeated_names_numbers_and_errors_read_as_serde_json_reads_them() {
        let texts = [
            r#"{"b": 1, "a": {"x": "q\"uote\u00e9", "x": [1, -2, 2.5, 1e3, 18446744073709551615]}, "b": null}"#,
            r#"[true, false, null, "", {"": {}}, [], -0, 0.1]"#,
            r#"{"\u0061": 1, "a": 2}"#,
        ];
        for text in texts {
            let expected: Json = serde_json::from_str(text).expect("valid JSON");
            let node: Node = serde_json::from_str(text).expect("valid JSON");
            assert_eq!(node.to_json(), expected, "{text}");
            assert!(node.equals(&expected), "{text}");
        }
        for broken in [
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            "[1, 2",
            r#"{"a": 1} x"#,
            "1e400",
        ] {
            let expected = serde_json::from_str::<Json>(broken).expect_err("invalid JSON");
            let got = serde_json::from_str::<Node>(broken).expect_err("invalid JSON");
            assert_eq!(got.to_string(), expected.to_string(), "{broken}");
        }
    }

    #[test]
    fn pointers_follow_serde_json() {
        let schema = json!({
            "definitions": {"a/b": {"type": "string"}, "m~n": {"type": "integer"}, "list": [{"type": "boolean"}]},
            "properties": {
                "slash": {"$ref": "#/definitions/a~1b"},
                "tilde": {"$ref": "#/definitions/m~0n"},
                "index": {"$ref": "#/definitions/list/0"},
                "leading_zero": {"$ref": "#/definitions/list/00"},
                "missing": {"$ref": "#/nowhere"}
            }
        });
        assert_eq!(
            check(
                schema,
                json!({"slash": 1, "tilde": "x", "index": 1, "leading_zero": 1, "missing": 1})
            ),
            vec![
                "index: Invalid type. Expected: boolean, given: integer",
                "slash: Invalid type. Expected: string, given: integer",
                "tilde: Invalid type. Expected: integer, given: string",
            ]
        );
    }

    #[test]
    fn a_reference_cycle_is_reported_instead_of_recursing_forever() {
        let errors = check(json!({"$ref": "#"}), json!({"a": 1}));
        assert_eq!(errors, vec!["(root): $ref # refers back to itself"]);
        let errors = check(
            json!({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}},
                   "properties": {"x": {"$ref": "#/definitions/a"}}}),
            json!({"x": 1}),
        );
        assert_eq!(
            errors,
            vec!["x: $ref #/definitions/a refers back to itself"]
        );
    }

    #[test]
    fn the_values_root_is_checked_in_place_with_every_object_keyword() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "arr": {"items": {"type": "string"}, "maxItems": 1}},
            "additionalProperties": {"type": "boolean"},
            "enum": [{"a": 1}],
            "not": {"required": ["zzz"]}
        });
        assert_eq!(
            check(schema.clone(), json!({"a": 1})),
            Vec::<String>::new(),
            "an object equal to an enum entry passes"
        );
        assert_eq!(
            check(
                schema,
                json!({"a": 2, "arr": ["x", 3], "extra": "no", "zzz": 1})
            ),
            vec![
                "(root): (root) must be one of the following: {\"a\":1}",
                "arr.1: Invalid type. Expected: string, given: integer",
                "arr: Array must have at most 1 items",
                "extra: Invalid type. Expected: boolean, given: string",
                "zzz: Invalid type. Expected: boolean, given: integer",
                "(root): Must not validate the schema (not)",
            ]
        );
    }
}
