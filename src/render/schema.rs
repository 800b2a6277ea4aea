//! `values.schema.json` validation as helm 3.17 runs it (gojsonschema): the common keywords
//! (type, properties, required, items, enum, const, bounds, lengths, additionalProperties,
//! allOf/anyOf/oneOf/not, local `$ref`), with gojsonschema's message wording.

use serde_json::Value as Json;

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
        match serde_json::from_slice::<Json>(schema_bytes) {
            Ok(schema) => {
                let mut errors = Vec::new();
                let instance = Json::Object(values.clone());
                validate(&schema, &schema, &instance, "(root)", &mut errors);
                if !errors.is_empty() {
                    report.push_str(&format!("{}:\n", chart.name()));
                    for error in errors {
                        report.push_str(&format!("- {error}\n"));
                    }
                }
            }
            Err(e) => report.push_str(&format!(
                "{}:\n- values.schema.json is not valid JSON: {e}\n",
                chart.name()
            )),
        }
    }
    for sub in &chart.dependencies {
        let section = match values.get(sub.name()) {
            Some(Json::Object(map)) => map.clone(),
            _ => Values::new(),
        };
        collect(sub, &section, report);
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

fn type_matches(expected: &str, value: &Json) -> bool {
    let actual = type_name(value);
    actual == expected || (expected == "number" && actual == "integer")
}

fn child(path: &str, key: &str) -> String {
    if path == "(root)" {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn resolve<'a>(root: &'a Json, reference: &str) -> Option<&'a Json> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

fn validate(root: &Json, schema: &Json, value: &Json, path: &str, errors: &mut Vec<String>) {
    let Json::Object(rules) = schema else {
        if schema == &Json::Bool(false) {
            errors.push(format!("{path}: False always fails validation"));
        }
        return;
    };
    if let Some(Json::String(reference)) = rules.get("$ref") {
        if let Some(target) = resolve(root, reference) {
            validate(root, target, value, path, errors);
        }
        return;
    }
    if let Some(expected) = rules.get("type") {
        let allowed: Vec<&str> = match expected {
            Json::String(t) => vec![t.as_str()],
            Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| type_matches(t, value)) {
            errors.push(format!(
                "{path}: Invalid type. Expected: {}, given: {}",
                allowed.join("/"),
                type_name(value)
            ));
            return;
        }
    }
    if let Some(Json::Array(options)) = rules.get("enum")
        && !options.iter().any(|o| json_equal(o, value))
    {
        let listed: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        errors.push(format!(
            "{path}: {path} must be one of the following: {}",
            listed.join(", ")
        ));
    }
    if let Some(expected) = rules.get("const")
        && !json_equal(expected, value)
    {
        errors.push(format!("{path}: {path} does not match: {expected}"));
    }
    if let Json::Number(n) = value {
        let n = n.as_f64().unwrap_or(0.0);
        let bound = |key: &str| rules.get(key).and_then(Json::as_f64);
        if let Some(min) = bound("minimum")
            && n < min
        {
            errors.push(format!(
                "{path}: Must be greater than or equal to {}",
                go_number(min)
            ));
        }
        if let Some(max) = bound("maximum")
            && n > max
        {
            errors.push(format!(
                "{path}: Must be less than or equal to {}",
                go_number(max)
            ));
        }
        if let Some(min) = bound("exclusiveMinimum")
            && n <= min
        {
            errors.push(format!("{path}: Must be greater than {}", go_number(min)));
        }
        if let Some(max) = bound("exclusiveMaximum")
            && n >= max
        {
            errors.push(format!("{path}: Must be less than {}", go_number(max)));
        }
    }
    if let Json::String(s) = value {
        let length = s.chars().count() as u64;
        if let Some(min) = rules.get("minLength").and_then(Json::as_u64)
            && length < min
        {
            errors.push(format!(
                "{path}: String length must be greater than or equal to {min}"
            ));
        }
        if let Some(max) = rules.get("maxLength").and_then(Json::as_u64)
            && length > max
        {
            errors.push(format!(
                "{path}: String length must be less than or equal to {max}"
            ));
        }
    }
    if let Json::Object(map) = value {
        if let Some(Json::Array(required)) = rules.get("required") {
            for name in required.iter().filter_map(Json::as_str) {
                if !map.contains_key(name) {
                    errors.push(format!("{path}: {name} is required"));
                }
            }
        }
        let properties = rules.get("properties").and_then(Json::as_object);
        if let Some(properties) = properties {
            for (key, sub_schema) in properties {
                if let Some(sub_value) = map.get(key) {
                    validate(root, sub_schema, sub_value, &child(path, key), errors);
                }
            }
        }
        match rules.get("additionalProperties") {
            Some(Json::Bool(false)) => {
                for key in map.keys() {
                    if !properties.is_some_and(|p| p.contains_key(key)) {
                        errors.push(format!("{path}: Additional property {key} is not allowed"));
                    }
                }
            }
            Some(extra @ Json::Object(_)) => {
                for (key, sub_value) in map {
                    if !properties.is_some_and(|p| p.contains_key(key)) {
                        validate(root, extra, sub_value, &child(path, key), errors);
                    }
                }
            }
            _ => {}
        }
    }
    if let Json::Array(items) = value {
        if let Some(item_schema @ Json::Object(_)) = rules.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(
                    root,
                    item_schema,
                    item,
                    &child(path, &i.to_string()),
                    errors,
                );
            }
        }
        if let Some(min) = rules.get("minItems").and_then(Json::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{path}: Array must have at least {min} items"));
        }
        if let Some(max) = rules.get("maxItems").and_then(Json::as_u64)
            && (items.len() as u64) > max
        {
            errors.push(format!("{path}: Array must have at most {max} items"));
        }
    }
    if let Some(Json::Array(all)) = rules.get("allOf") {
        for sub in all {
            validate(root, sub, value, path, errors);
        }
    }
    if let Some(Json::Array(any)) = rules.get("anyOf") {
        let passes = any.iter().any(|sub| {
            let mut scratch = Vec::new();
            validate(root, sub, value, path, &mut scratch);
            scratch.is_empty()
        });
        if !passes {
            errors.push(format!("{path}: Must validate at least one schema (anyOf)"));
        }
    }
    if let Some(Json::Array(one)) = rules.get("oneOf") {
        let passing = one
            .iter()
            .filter(|sub| {
                let mut scratch = Vec::new();
                validate(root, sub, value, path, &mut scratch);
                scratch.is_empty()
            })
            .count();
        if passing != 1 {
            errors.push(format!(
                "{path}: Must validate one and only one schema (oneOf)"
            ));
        }
    }
    if let Some(not) = rules.get("not") {
        let mut scratch = Vec::new();
        validate(root, not, value, path, &mut scratch);
        if scratch.is_empty() {
            errors.push(format!("{path}: Must not validate the schema (not)"));
        }
    }
}

fn json_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
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
        let mut errors = Vec::new();
        validate(&schema, &schema, &values, "(root)", &mut errors);
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
}
