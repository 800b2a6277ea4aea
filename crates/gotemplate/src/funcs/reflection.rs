//! Sprig's reflection functions: typeOf, typeIs, typeIsLike, kindOf, kindIs, deepEqual.

use super::args::{self, go_kind_name, go_type_name};
use super::lists::deep_equal;
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("typeOf", type_of),
        ("typeIs", type_is),
        ("typeIsLike", type_is_like),
        ("kindOf", kind_of),
        ("kindIs", kind_is),
        ("deepEqual", deep_equal_fn),
    ]
}

fn type_of(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("typeOf", args, 1)?;
    Ok(Value::String(go_type_name(&args[0])))
}

fn type_is(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("typeIs", args, 2)?;
    let target = args::string(args, 0)?;
    Ok(Value::Bool(target == go_type_name(&args[1])))
}

fn type_is_like(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("typeIsLike", args, 2)?;
    let target = args::string(args, 0)?;
    let actual = go_type_name(&args[1]);
    Ok(Value::Bool(
        target == actual || format!("*{target}") == actual,
    ))
}

fn kind_of(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("kindOf", args, 1)?;
    Ok(Value::from(go_kind_name(&args[0])))
}

fn kind_is(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("kindIs", args, 2)?;
    let target = args::string(args, 0)?;
    Ok(Value::Bool(target == go_kind_name(&args[1])))
}

fn deep_equal_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("deepEqual", args, 2)?;
    Ok(Value::Bool(deep_equal(&args[0], &args[1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_print_like_go() {
        let t = |v: Value| match type_of(&[v]) {
            Ok(Value::String(s)) => s,
            _ => String::new(),
        };
        assert_eq!(t(Value::Float(1.0)), "float64");
        assert_eq!(t(Value::map([])), "map[string]interface {}");
        assert_eq!(t(Value::list([])), "[]interface {}");
        assert_eq!(t(Value::Nil), "<nil>");
        assert!(matches!(
            kind_is(&[Value::from("map"), Value::map([])]),
            Ok(Value::Bool(true))
        ));
        assert!(matches!(kind_of(&[Value::Nil]), Ok(Value::String(s)) if s == "invalid"));
    }
}
