//! Go and spf13/cast conversions as Sprig uses them: toString, int, int64, float64, atoi,
//! toDecimal, toStrings, and the emptiness rules behind default/empty/coalesce/ternary.

use std::sync::Arc;

use super::args;
use super::gofmt::format_value;
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("toString", to_string_fn),
        ("atoi", atoi),
        ("int64", int64_fn),
        ("int", int_fn),
        ("float64", float64_fn),
        ("toDecimal", to_decimal),
        ("toStrings", to_strings),
        ("default", default),
        ("empty", empty),
        ("coalesce", coalesce),
        ("all", all),
        ("any", any),
        ("ternary", ternary),
        ("deepCopy", deep_copy_fn),
        ("mustDeepCopy", deep_copy_fn),
    ]
}

/// Sprig's `strval`: strings and bytes as text, everything else as `%v`.
pub fn strval(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => format_value(other),
    }
}

/// Sprig's `empty`: Go's zero values and empty containers are empty.
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::List(items) => items.is_empty(),
        Value::Map(map) => map.is_empty(),
        Value::Object(_) => false,
    }
}

/// Go's `int64(f)` on amd64: truncation, with 0x8000000000000000 for NaN and out-of-range.
pub fn float_to_int(f: f64) -> i64 {
    if f.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

pub use gocompat::strconv::parse_int as parse_go_int;

/// `strconv.ParseFloat(s, 64)`; `None` on syntax or range errors.
pub fn parse_go_float(s: &str) -> Option<f64> {
    crate::number::go_parse_float(s)
}

/// cast's `trimZeroDecimal`: "1.00" → "1".
fn trim_zero_decimal(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut found_zero = false;
    for i in (1..=bytes.len()).rev() {
        match bytes[i - 1] {
            b'.' => {
                if found_zero {
                    return &s[..i - 1];
                }
            }
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

/// `cast.ToInt64` (and `cast.ToInt`, the same on 64-bit): 0 when the value does not convert.
pub fn to_int64(value: &Value) -> i64 {
    match value {
        Value::Int(i) => *i,
        Value::Float(f) => float_to_int(*f),
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_go_int(trim_zero_decimal(s), 0).unwrap_or(0),
        _ => 0,
    }
}

/// `cast.ToFloat64`: 0 when the value does not convert.
pub fn to_float64(value: &Value) -> f64 {
    match value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => parse_go_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

fn to_string_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toString", args, 1)?;
    Ok(Value::String(strval(&args[0])))
}

fn atoi(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("atoi", args, 1)?;
    let s = args::string(args, 0)?;
    Ok(Value::Int(parse_go_int(s, 10).unwrap_or(0)))
}

fn int64_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("int64", args, 1)?;
    Ok(Value::Int(to_int64(&args[0])))
}

fn int_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("int", args, 1)?;
    Ok(Value::Int(to_int64(&args[0])))
}

fn float64_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("float64", args, 1)?;
    Ok(Value::Float(to_float64(&args[0])))
}

fn to_decimal(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toDecimal", args, 1)?;
    let text = format_value(&args[0]);
    Ok(Value::Int(parse_go_int(&text, 8).unwrap_or(0)))
}

/// Sprig's `strslice`: a list of strings from a list (nils dropped) or one value.
pub fn strslice(value: &Value) -> Vec<String> {
    match value {
        Value::List(items) => items
            .iter()
            .filter(|item| !item.is_nil())
            .map(strval)
            .collect(),
        Value::Bytes(bytes) => bytes.iter().map(|b| b.to_string()).collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

fn to_strings(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toStrings", args, 1)?;
    Ok(Value::list(
        strslice(&args[0]).into_iter().map(Value::String),
    ))
}

fn default(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("default", args, 1)?;
    match args.get(1) {
        Some(given) if !is_empty(given) => Ok(given.clone()),
        _ => Ok(args[0].clone()),
    }
}

fn empty(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("empty", args, 1)?;
    Ok(Value::Bool(is_empty(&args[0])))
}

fn coalesce(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args
        .iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

fn all(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(args.iter().all(|v| !is_empty(v))))
}

fn any(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(args.iter().any(|v| !is_empty(v))))
}

fn ternary(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("ternary", args, 3)?;
    let condition = args::boolean(args, 2)?;
    Ok(if condition {
        args[0].clone()
    } else {
        args[1].clone()
    })
}

/// A copy sharing nothing with the original (Go's copystructure.Copy).
pub fn deep_copy(value: &Value) -> Value {
    match value {
        Value::List(items) => Value::List(Arc::new(items.iter().map(deep_copy).collect())),
        Value::Map(map) => Value::Map(Arc::new(
            map.iter().map(|(k, v)| (k.clone(), deep_copy(v))).collect(),
        )),
        Value::Bytes(bytes) => Value::Bytes(Arc::new(bytes.to_vec())),
        other => other.clone(),
    }
}

fn deep_copy_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("deepCopy", args, 1)?;
    Ok(deep_copy(&args[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_conversions_follow_go() {
        assert_eq!(to_int64(&Value::from("42")), 42);
        assert_eq!(to_int64(&Value::from("1.00")), 1);
        assert_eq!(to_int64(&Value::from("1.5")), 0);
        assert_eq!(to_int64(&Value::from("0x1F")), 31);
        assert_eq!(to_int64(&Value::from("010")), 8);
        assert_eq!(to_int64(&Value::from("abc")), 0);
        assert_eq!(to_int64(&Value::Float(3.9)), 3);
        assert_eq!(to_int64(&Value::Float(-3.9)), -3);
        assert_eq!(to_int64(&Value::Bool(true)), 1);
        assert_eq!(to_float64(&Value::from("2.5")), 2.5);
        assert_eq!(to_float64(&Value::from("x")), 0.0);
        assert_eq!(parse_go_int("-9223372036854775808", 10), Some(i64::MIN));
        assert_eq!(parse_go_int("1_000", 0), Some(1000));
        assert_eq!(parse_go_int("_1", 0), None);
    }

    #[test]
    fn emptiness_follows_sprig() {
        assert!(is_empty(&Value::Nil));
        assert!(is_empty(&Value::Int(0)));
        assert!(is_empty(&Value::from("")));
        assert!(is_empty(&Value::list([])));
        assert!(!is_empty(&Value::Float(0.1)));
        assert!(!is_empty(&Value::from("0")));
        let chosen = default(&[Value::from("d"), Value::Bool(false)]);
        assert!(matches!(chosen, Ok(Value::String(s)) if s == "d"));
        let chosen = default(&[Value::from("d")]);
        assert!(matches!(chosen, Ok(Value::String(s)) if s == "d"));
    }
}
