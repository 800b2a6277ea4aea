//! Sprig's dict functions (dict.go) and mergo's merge rules behind merge/mergeOverwrite.
//!
//! Go maps are references: `set`, `unset`, `merge` change their first argument in place and
//! return it. These functions return the changed map; the caller stores it where Go would have
//! changed it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::args::{self, go_type_name};
use super::conv::{is_empty, strval};
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("dict", dict),
        ("get", get),
        ("set", set),
        ("unset", unset),
        ("hasKey", has_key),
        ("pluck", pluck),
        ("keys", keys),
        ("pick", pick),
        ("omit", omit),
        ("merge", merge),
        ("mustMerge", merge),
        ("mergeOverwrite", merge_overwrite),
        ("mustMergeOverwrite", merge_overwrite),
        ("values", values),
        ("dig", dig),
    ]
}

fn dict(args: &[Value]) -> Result<Value, FuncError> {
    let mut map = BTreeMap::new();
    for pair in args.chunks(2) {
        let key = strval(&pair[0]);
        let value = pair.get(1).cloned().unwrap_or_else(|| Value::from(""));
        map.insert(key, value);
    }
    Ok(Value::Map(Arc::new(map)))
}

fn get(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("get", args, 2)?;
    let map = args::map(args, 0)?;
    let key = args::string(args, 1)?;
    Ok(map.get(key).cloned().unwrap_or_else(|| Value::from("")))
}

fn set(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("set", args, 3)?;
    if args[0].is_nil() {
        return Err("assignment to entry in nil map".to_string());
    }
    let map = args::map(args, 0)?;
    let key = args::string(args, 1)?;
    let mut map = Arc::unwrap_or_clone(map);
    map.insert(key.to_string(), args[2].clone());
    Ok(Value::Map(Arc::new(map)))
}

fn unset(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("unset", args, 2)?;
    let map = args::map(args, 0)?;
    let key = args::string(args, 1)?;
    let mut map = Arc::unwrap_or_clone(map);
    map.remove(key);
    Ok(Value::Map(Arc::new(map)))
}

fn has_key(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("hasKey", args, 2)?;
    let map = args::map(args, 0)?;
    let key = args::string(args, 1)?;
    Ok(Value::Bool(map.contains_key(key)))
}

fn maps_from(args: &[Value], from: usize) -> Result<Vec<Arc<BTreeMap<String, Value>>>, FuncError> {
    (from..args.len()).map(|i| args::map(args, i)).collect()
}

fn strings_from(args: &[Value], from: usize) -> Result<Vec<String>, FuncError> {
    (from..args.len())
        .map(|i| args::string(args, i).map(str::to_string))
        .collect()
}

fn pluck(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("pluck", args, 1)?;
    let key = args::string(args, 0)?;
    let maps = maps_from(args, 1)?;
    Ok(Value::list(maps.iter().filter_map(|m| m.get(key).cloned())))
}

/// Go iterates maps in random order; sorted keys are one of the orders Go can produce.
fn keys(args: &[Value]) -> Result<Value, FuncError> {
    let maps = maps_from(args, 0)?;
    Ok(Value::list(
        maps.iter()
            .flat_map(|m| m.keys().cloned().collect::<Vec<_>>())
            .map(Value::String),
    ))
}

fn values(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("values", args, 1)?;
    let map = args::map(args, 0)?;
    Ok(Value::list(map.values().cloned()))
}

fn pick(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("pick", args, 1)?;
    let map = args::map(args, 0)?;
    let wanted = strings_from(args, 1)?;
    Ok(Value::map(wanted.into_iter().filter_map(|k| {
        let value = map.get(&k).cloned();
        value.map(|v| (k, v))
    })))
}

fn omit(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("omit", args, 1)?;
    let map = args::map(args, 0)?;
    let omitted = strings_from(args, 1)?;
    Ok(Value::map(
        map.iter()
            .filter(|(k, _)| !omitted.contains(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    ))
}

/// mergo's `deepMerge` of one source map into a destination map (WithOverride when
/// `overwrite`): nested maps merge, missing or empty destination values are filled, and with
/// overwrite every source value replaces the destination's (a nil source value too).
pub fn mergo_merge(
    dst: &mut BTreeMap<String, Value>,
    src: &BTreeMap<String, Value>,
    overwrite: bool,
) {
    for (key, src_value) in src {
        if src_value.is_nil() {
            if overwrite {
                dst.insert(key.clone(), Value::Nil);
            }
            continue;
        }
        let dst_value = dst.get(key).cloned();
        if let (Value::Map(src_map), Some(Value::Map(dst_map))) = (src_value, &dst_value) {
            let mut merged = Arc::unwrap_or_clone(dst_map.clone());
            mergo_merge(&mut merged, src_map, overwrite);
            dst.insert(key.clone(), Value::Map(Arc::new(merged)));
            continue;
        }
        let dst_empty = dst_value.as_ref().is_none_or(is_empty);
        if matches!(src_value, Value::List(_)) && !dst_empty {
            if overwrite {
                dst.insert(key.clone(), src_value.clone());
            }
            continue;
        }
        if overwrite || dst_empty {
            dst.insert(key.clone(), src_value.clone());
        }
    }
}

fn merge_with(args: &[Value], name: &str, overwrite: bool) -> Result<Value, FuncError> {
    args::at_least(name, args, 1)?;
    let dst = args::map(args, 0)?;
    let srcs = maps_from(args, 1)?;
    let mut merged = Arc::unwrap_or_clone(dst);
    for src in srcs {
        mergo_merge(&mut merged, &src, overwrite);
    }
    Ok(Value::Map(Arc::new(merged)))
}

fn merge(args: &[Value]) -> Result<Value, FuncError> {
    merge_with(args, "merge", false)
}

fn merge_overwrite(args: &[Value]) -> Result<Value, FuncError> {
    merge_with(args, "mergeOverwrite", true)
}

fn interface_conversion(value: &Value, want: &str) -> FuncError {
    let got = if value.is_nil() {
        "nil".to_string()
    } else {
        go_type_name(value)
    };
    format!("interface conversion: interface {{}} is {got}, not {want}")
}

fn dig(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() < 3 {
        return Err("dig needs at least three arguments".to_string());
    }
    let (path, rest) = args.split_at(args.len() - 2);
    let default = &rest[0];
    let mut current = match &rest[1] {
        Value::Map(m) => m.clone(),
        other => return Err(interface_conversion(other, "map[string]interface {}")),
    };
    let keys = path
        .iter()
        .map(|k| match k {
            Value::String(s) => Ok(s.clone()),
            other => Err(interface_conversion(other, "string")),
        })
        .collect::<Result<Vec<String>, FuncError>>()?;
    for (i, key) in keys.iter().enumerate() {
        let Some(step) = current.get(key).cloned() else {
            return Ok(default.clone());
        };
        if i + 1 == keys.len() {
            return Ok(step);
        }
        current = match step {
            Value::Map(m) => m,
            other => return Err(interface_conversion(&other, "map[string]interface {}")),
        };
    }
    Ok(default.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(entries: &[(&str, Value)]) -> Value {
        Value::map(entries.iter().map(|(k, v)| (k.to_string(), v.clone())))
    }

    #[test]
    fn merge_keeps_destination_values() {
        let dst = m(&[("a", Value::Int(1)), ("n", m(&[("x", Value::Int(1))]))]);
        let src = m(&[
            ("a", Value::Int(2)),
            ("b", Value::Int(3)),
            ("n", m(&[("x", Value::Int(9)), ("y", Value::Int(2))])),
        ]);
        let merged = merge(&[dst.clone(), src.clone()]).unwrap_or_default();
        assert_eq!(
            merged.to_json(),
            serde_json::json!({"a": 1, "b": 3, "n": {"x": 1, "y": 2}})
        );
        let over = merge_overwrite(&[dst, src]).unwrap_or_default();
        assert_eq!(
            over.to_json(),
            serde_json::json!({"a": 2, "b": 3, "n": {"x": 9, "y": 2}})
        );
    }

    #[test]
    fn dict_and_dig() {
        let d = dict(&[Value::from("a"), Value::Int(1), Value::from("b")]).unwrap_or_default();
        assert_eq!(d.to_json(), serde_json::json!({"a": 1, "b": ""}));
        let nested = m(&[("a", m(&[("b", Value::from("c"))]))]);
        let found = dig(&[
            Value::from("a"),
            Value::from("b"),
            Value::from("d"),
            nested.clone(),
        ]);
        assert!(matches!(found, Ok(Value::String(s)) if s == "c"));
        let missing = dig(&[Value::from("x"), Value::from("d"), nested]);
        assert!(matches!(missing, Ok(Value::String(s)) if s == "d"));
    }
}
