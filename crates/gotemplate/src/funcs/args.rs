//! Go's reflect-style argument checks for template functions, with text/template's wording.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::FuncError;
use crate::value::Value;

/// The Go type name of a value as `%T` and reflect errors print it.
pub use crate::print::type_name as go_type_name;

/// The Go reflect kind name (`kindOf`, Sprig's "Cannot push on type %s").
pub fn go_kind_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) | Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Object(object) => {
            if object.type_name() == "complex128" {
                "complex128"
            } else if object.type_name().starts_with('*') {
                "ptr"
            } else {
                "struct"
            }
        }
    }
}

/// Checks a fixed argument count: `wrong number of args for NAME: want N got M`.
pub fn exact(name: &str, args: &[Value], want: usize) -> Result<(), FuncError> {
    if args.len() != want {
        return Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// Checks a variadic argument count: `wrong number of args for NAME: want at least N got M`.
pub fn at_least(name: &str, args: &[Value], want: usize) -> Result<(), FuncError> {
    if args.len() < want {
        return Err(format!(
            "wrong number of args for {name}: want at least {want} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn wrong_type(expected: &str, got: &Value) -> FuncError {
    if got.is_nil() {
        format!("invalid value; expected {expected}")
    } else {
        format!(
            "wrong type for value; expected {expected}; got {}",
            go_type_name(got)
        )
    }
}

/// A Go `string` parameter.
pub fn string(args: &[Value], index: usize) -> Result<&str, FuncError> {
    match args.get(index) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(wrong_type("string", other)),
        None => Err("missing argument".to_string()),
    }
}

/// A Go `int` parameter (template literals without a fraction are ints).
pub fn int(args: &[Value], index: usize) -> Result<i64, FuncError> {
    match args.get(index) {
        Some(Value::Int(i)) => Ok(*i),
        Some(other) => Err(wrong_type("int", other)),
        None => Err("missing argument".to_string()),
    }
}

/// A Go `float64` parameter: a float, or an int literal Go converts at parse time.
pub fn float(args: &[Value], index: usize) -> Result<f64, FuncError> {
    match args.get(index) {
        Some(Value::Float(f)) => Ok(*f),
        Some(Value::Int(i)) => Ok(*i as f64),
        Some(other) => Err(wrong_type("float64", other)),
        None => Err("missing argument".to_string()),
    }
}

/// A Go `bool` parameter.
pub fn boolean(args: &[Value], index: usize) -> Result<bool, FuncError> {
    match args.get(index) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(wrong_type("bool", other)),
        None => Err("missing argument".to_string()),
    }
}

/// A Go `map[string]interface{}` parameter (nil is a nil map).
pub fn map(args: &[Value], index: usize) -> Result<Arc<BTreeMap<String, Value>>, FuncError> {
    match args.get(index) {
        Some(Value::Map(m)) => Ok(m.clone()),
        Some(Value::Nil) => Ok(Arc::new(BTreeMap::new())),
        Some(other) => Err(wrong_type("map[string]interface {}", other)),
        None => Err("missing argument".to_string()),
    }
}

/// The most items or bytes one function call may produce. Go would try (and a huge template
/// output is useless); keelson refuses instead of exhausting memory.
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// A size a function is asked to allocate, refused with Go's makeslice wording when negative
/// or beyond [`MAX_OUTPUT`].
pub fn alloc_len(n: i64) -> Result<usize, FuncError> {
    if n < 0 || n as u64 > MAX_OUTPUT as u64 {
        return Err("runtime error: makeslice: len out of range".to_string());
    }
    Ok(n as usize)
}
