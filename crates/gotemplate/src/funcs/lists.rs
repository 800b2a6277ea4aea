//! Sprig's list functions (list.go and the list parts of numeric.go) with Go's panics as errors.

use std::sync::Arc;

use super::args::{self, go_kind_name};
use super::conv::{is_empty, strslice, strval, to_int64};
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("list", list),
        ("tuple", list),
        ("append", push),
        ("push", push),
        ("mustAppend", push),
        ("mustPush", push),
        ("prepend", prepend),
        ("mustPrepend", prepend),
        ("first", first),
        ("mustFirst", first),
        ("rest", rest),
        ("mustRest", rest),
        ("last", last),
        ("mustLast", last),
        ("initial", initial),
        ("mustInitial", initial),
        ("reverse", reverse),
        ("mustReverse", reverse),
        ("uniq", uniq),
        ("mustUniq", uniq),
        ("without", without),
        ("mustWithout", without),
        ("has", has),
        ("mustHas", has),
        ("slice", slice),
        ("mustSlice", slice),
        ("concat", concat),
        ("chunk", chunk),
        ("mustChunk", chunk),
        ("compact", compact),
        ("mustCompact", compact),
        ("sortAlpha", sort_alpha),
        ("join", join),
        ("until", until),
        ("untilStep", until_step),
        ("seq", seq),
    ]
}

/// What a nil interface does under `reflect.TypeOf(x).Kind()`.
pub const NIL_DEREFERENCE: &str =
    "runtime error: invalid memory address or nil pointer dereference";

/// The items of a Go slice value, or Sprig's "Cannot … on type KIND" error.
fn items_of(value: &Value, what: &str) -> Result<Vec<Value>, FuncError> {
    match value {
        Value::List(items) => Ok(items.to_vec()),
        Value::Bytes(bytes) => Ok(bytes.iter().map(|b| Value::Int(i64::from(*b))).collect()),
        Value::Nil => Err(NIL_DEREFERENCE.to_string()),
        other => Err(format!("Cannot {what} on type {}", go_kind_name(other))),
    }
}

/// Go's `reflect.DeepEqual` over template values.
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.type_name() == y.type_name() && x.to_go_string() == y.to_go_string()
        }
        _ => false,
    }
}

fn list(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::list(args.iter().cloned()))
}

fn push(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("append", args, 2)?;
    let mut items = items_of(&args[0], "push")?;
    items.push(args[1].clone());
    Ok(Value::list(items))
}

fn prepend(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("prepend", args, 2)?;
    let mut items = items_of(&args[0], "prepend")?;
    items.insert(0, args[1].clone());
    Ok(Value::list(items))
}

fn first(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("first", args, 1)?;
    let items = items_of(&args[0], "find first")?;
    Ok(items.first().cloned().unwrap_or(Value::Nil))
}

fn last(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("last", args, 1)?;
    let items = items_of(&args[0], "find last")?;
    Ok(items.last().cloned().unwrap_or(Value::Nil))
}

fn rest(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("rest", args, 1)?;
    let items = items_of(&args[0], "find rest")?;
    if items.is_empty() {
        // Sprig returns a nil []interface{}, which prints and serializes as an empty list.
        return Ok(Value::list([]));
    }
    Ok(Value::list(items.into_iter().skip(1)))
}

fn initial(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("initial", args, 1)?;
    let mut items = items_of(&args[0], "find initial")?;
    if items.is_empty() {
        return Ok(Value::list([]));
    }
    items.pop();
    Ok(Value::list(items))
}

fn reverse(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("reverse", args, 1)?;
    let mut items = items_of(&args[0], "find reverse")?;
    items.reverse();
    Ok(Value::list(items))
}

fn uniq(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("uniq", args, 1)?;
    let items = items_of(&args[0], "find uniq")?;
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        if !out.iter().any(|seen| deep_equal(seen, &item)) {
            out.push(item);
        }
    }
    Ok(Value::list(out))
}

fn without(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("without", args, 1)?;
    let items = items_of(&args[0], "find without")?;
    let omit = &args[1..];
    Ok(Value::list(
        items
            .into_iter()
            .filter(|item| !omit.iter().any(|o| deep_equal(o, item))),
    ))
}

fn has(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("has", args, 2)?;
    if args[1].is_nil() {
        return Ok(Value::Bool(false));
    }
    let items = items_of(&args[1], "find has")?;
    Ok(Value::Bool(
        items.iter().any(|item| deep_equal(&args[0], item)),
    ))
}

fn slice(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("slice", args, 1)?;
    let items = match &args[0] {
        Value::Nil => return Err(NIL_DEREFERENCE.to_string()),
        Value::List(_) | Value::Bytes(_) => items_of(&args[0], "slice")?,
        other => {
            return Err(format!(
                "list should be type of slice or array but {}",
                go_kind_name(other)
            ));
        }
    };
    if items.is_empty() {
        return Ok(Value::Nil);
    }
    let len = items.len() as i64;
    let start = args.get(1).map(to_int64).unwrap_or(0);
    let end = if args.len() < 3 {
        len
    } else {
        to_int64(&args[2])
    };
    if start < 0 || end < start || end > len {
        return Err("reflect.Value.Slice: slice index out of range".to_string());
    }
    Ok(Value::list(
        items[start as usize..end as usize].iter().cloned(),
    ))
}

fn concat(args: &[Value]) -> Result<Value, FuncError> {
    let mut out = Vec::new();
    for list in args {
        match list {
            Value::Nil => return Err(NIL_DEREFERENCE.to_string()),
            Value::List(_) | Value::Bytes(_) => out.extend(items_of(list, "concat")?),
            other => {
                return Err(format!(
                    "Cannot concat type {} as list",
                    go_kind_name(other)
                ));
            }
        }
    }
    if out.is_empty() {
        // Go's `var res []interface{}` stays a nil slice when nothing was appended.
        return Ok(Value::list([]));
    }
    Ok(Value::list(out))
}

fn chunk(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("chunk", args, 2)?;
    let size = args::int(args, 0)?;
    let items = items_of(&args[1], "chunk type")
        .map_err(|e| e.replace("Cannot chunk type on type", "Cannot chunk type"))?;
    if size <= 0 {
        return Err("runtime error: integer divide by zero".to_string());
    }
    let chunks = items
        .chunks(size as usize)
        .map(|c| Value::list(c.iter().cloned()));
    Ok(Value::list(chunks))
}

fn compact(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("compact", args, 1)?;
    let items = items_of(&args[0], "compact")?;
    Ok(Value::list(items.into_iter().filter(|v| !is_empty(v))))
}

fn sort_alpha(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("sortAlpha", args, 1)?;
    let mut strings = match &args[0] {
        Value::List(_) | Value::Bytes(_) => strslice(&args[0]),
        other => vec![strval(other)],
    };
    strings.sort();
    Ok(Value::list(strings.into_iter().map(Value::String)))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("join", args, 2)?;
    let sep = args::string(args, 0)?;
    Ok(Value::String(strslice(&args[1]).join(sep)))
}

/// Sprig's `untilStep`, refusing ranges beyond [`args::MAX_OUTPUT`] items.
fn until_step_values(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, FuncError> {
    let mut out = Vec::new();
    let too_many = || {
        let span = (i128::from(stop) - i128::from(start)).unsigned_abs();
        span / u128::from(step.unsigned_abs().max(1)) > args::MAX_OUTPUT as u128
    };
    if stop < start {
        if step >= 0 {
            return Ok(out);
        }
        if too_many() {
            return Err("runtime error: makeslice: len out of range".to_string());
        }
        let mut i = start;
        while i > stop {
            out.push(i);
            i = i.saturating_add(step);
        }
        return Ok(out);
    }
    if step <= 0 {
        return Ok(out);
    }
    if too_many() {
        return Err("runtime error: makeslice: len out of range".to_string());
    }
    let mut i = start;
    while i < stop {
        out.push(i);
        i = i.saturating_add(step);
        if i == i64::MAX {
            break;
        }
    }
    Ok(out)
}

fn ints(values: Vec<i64>) -> Value {
    Value::List(Arc::new(values.into_iter().map(Value::Int).collect()))
}

fn until(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("until", args, 1)?;
    let count = args::int(args, 0)?;
    let step = if count < 0 { -1 } else { 1 };
    Ok(ints(until_step_values(0, count, step)?))
}

fn until_step(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("untilStep", args, 3)?;
    Ok(ints(until_step_values(
        args::int(args, 0)?,
        args::int(args, 1)?,
        args::int(args, 2)?,
    )?))
}

fn seq(args: &[Value]) -> Result<Value, FuncError> {
    let params = (0..args.len())
        .map(|i| args::int(args, i))
        .collect::<Result<Vec<i64>, FuncError>>()?;
    let values = match params.as_slice() {
        [end] => {
            let increment = if *end < 1 { -1 } else { 1 };
            until_step_values(1, end.saturating_add(increment), increment)?
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step_values(*start, end.saturating_add(step), step)?
        }
        [start, step, end] => {
            let mut increment = 1;
            if end < start {
                increment = -1;
                if *step > 0 {
                    return Ok(Value::from(""));
                }
            }
            until_step_values(*start, end.saturating_add(increment), *step)?
        }
        _ => return Ok(Value::from("")),
    };
    let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    Ok(Value::String(text.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(values: &[&str]) -> Value {
        Value::list(values.iter().map(|s| Value::from(*s)))
    }

    #[test]
    fn list_functions_follow_sprig() {
        let l = strs(&["a", "b", "a"]);
        assert!(matches!(first(std::slice::from_ref(&l)), Ok(Value::String(s)) if s == "a"));
        assert!(matches!(uniq(std::slice::from_ref(&l)), Ok(Value::List(v)) if v.len() == 2));
        assert!(matches!(
            has(&[Value::from("b"), l.clone()]),
            Ok(Value::Bool(true))
        ));
        assert!(matches!(
            has(&[Value::from("b"), Value::Nil]),
            Ok(Value::Bool(false))
        ));
        assert!(matches!(rest(&[strs(&[])]), Ok(Value::List(v)) if v.is_empty()));
        assert_eq!(
            first(&[Value::from("x")]).err().as_deref(),
            Some("Cannot find first on type string")
        );
        assert!(matches!(seq(&[Value::Int(3)]), Ok(Value::String(s)) if s == "1 2 3"));
        assert!(matches!(seq(&[Value::Int(0)]), Ok(Value::String(s)) if s == "1 0"));
        assert!(
            matches!(seq(&[Value::Int(10), Value::Int(-3), Value::Int(1)]), Ok(Value::String(s)) if s == "10 7 4 1")
        );
        assert!(matches!(until(&[Value::Int(3)]), Ok(Value::List(v)) if v.len() == 3));
        assert!(
            matches!(join(&[Value::from("-"), Value::list([Value::Int(1), Value::Nil, Value::from("x")])]), Ok(Value::String(s)) if s == "1-x")
        );
    }
}
