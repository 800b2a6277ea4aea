//! Go's fmt and strconv as Sprig functions call them: `%v`, `strconv.Quote` and `FormatFloat`.

use crate::value::Value;

/// `fmt.Sprintf("%v", v)` as Go prints template values: the engine's printer, so functions and
/// `{{ . }}` print alike.
pub fn format_value(value: &Value) -> String {
    crate::print::format_v(value)
}

/// `strconv.FormatFloat(f, fmt, prec, 64)`: the engine's implementation.
pub use gocompat::strconv::format_float;

/// `strconv.Quote(s)` (what `%q` prints for a string): the engine's implementation.
pub use crate::print::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_go() {
        let value = Value::map([
            ("z".to_string(), Value::Int(1)),
            ("a".to_string(), Value::from("x")),
            (
                "l".to_string(),
                Value::list([Value::Int(1), Value::Float(2.5), Value::Nil]),
            ),
        ]);
        assert_eq!(format_value(&value), "map[a:x l:[1 2.5 <nil>] z:1]");
    }

    #[test]
    fn quote_escapes_like_strconv() {
        assert_eq!(go_quote("a\"b\\\n\té\u{1}"), "\"a\\\"b\\\\\\n\\té\\x01\"");
        assert_eq!(go_quote("\u{a0}"), "\"\\u00a0\"");
    }
}
