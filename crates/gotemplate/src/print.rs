//! Go's fmt printing of template values: `%v` of maps, slices, nil and float64, and Go's
//! `Sprint`, `Sprintln` and `Sprintf` with their verbs, flags and error notations.

use std::fmt::Write as _;

use super::value::Value;
use gocompat::strconv;

/// Go's type name of a value as `%T` prints it.
pub fn type_name(value: &Value) -> String {
    match value {
        Value::Nil => "<nil>".to_string(),
        Value::Bool(_) => "bool".to_string(),
        Value::Int(_) => "int".to_string(),
        Value::Float(_) => "float64".to_string(),
        Value::String(_) => "string".to_string(),
        Value::Bytes(_) => "[]uint8".to_string(),
        Value::List(_) => "[]interface {}".to_string(),
        Value::Map(map) => super::value::named_map_type(map)
            .unwrap_or("map[string]interface {}")
            .to_string(),
        Value::Object(object) => object.type_name().to_string(),
    }
}

pub use gocompat::strconv::quote as go_quote;
use gocompat::strconv::{is_print as is_go_printable, push_escaped};

/// Go's `%#U`: `U+0023 '#'`.
pub fn go_unicode_repr(c: char) -> String {
    if is_go_printable(c) && !c.is_control() {
        format!("U+{:04X} '{}'", c as u32, c)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// Go's `%v` formatting of any value (also what `{{ . }}` prints, except top-level nil).
pub fn format_v(value: &Value) -> String {
    let mut out = String::new();
    write_v(&mut out, value);
    out
}

pub fn write_v(out: &mut String, value: &Value) {
    match value {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&strconv::format_float(*f, 'g', None)),
        Value::String(s) => out.push_str(s),
        Value::Bytes(bytes) => {
            out.push('[');
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{b}");
            }
            out.push(']');
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_v(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => out.push_str(&object.to_go_string()),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::String(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        write_v(&mut out, arg);
        prev_string = is_string;
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands and a final newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, arg);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Go's `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut arg_index = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        // Flags.
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            chars.next();
        }
        // Width.
        if let Some(&(_, '*')) = chars.peek() {
            chars.next();
            match args.get(arg_index) {
                Some(Value::Int(w)) if w.unsigned_abs() <= MAX_WIDTH_OR_PRECISION => {
                    if *w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            arg_index += 1;
        } else {
            match parse_number(&mut chars) {
                Ok(width) => spec.width = width,
                Err(TooLarge) => {
                    out.push_str("%!(NOVERB)");
                    break;
                }
            }
        }
        // Precision.
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                match args.get(arg_index) {
                    Some(Value::Int(p)) if (0..=MAX_WIDTH_OR_PRECISION as i64).contains(p) => {
                        spec.precision = Some(*p as usize)
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
                arg_index += 1;
            } else {
                match parse_number(&mut chars) {
                    Ok(precision) => spec.precision = Some(precision.unwrap_or(0)),
                    Err(TooLarge) => {
                        out.push_str("%!(NOVERB)");
                        break;
                    }
                }
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(arg_index) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        arg_index += 1;
        if verb == 'v' {
            // Go moves `%+v`'s plus to struct field names, which template values have none of.
            spec.plus = false;
        }
        if verb == 'T' {
            pad(&mut out, &type_name(arg), spec, false);
            continue;
        }
        format_arg(&mut out, arg, verb, spec, 0);
    }
    if arg_index < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args.iter().enumerate().skip(arg_index) {
            if i > arg_index {
                out.push_str(", ");
            }
            out.push_str(&type_name(arg));
            out.push('=');
            write_v(&mut out, arg);
        }
        out.push(')');
    }
    out
}

/// Go's limit on a width or precision (its `tooLarge`): beyond it a `*` argument is bad and a
/// written number ends the format.
const MAX_WIDTH_OR_PRECISION: u64 = 1_000_000;

/// A written width or precision past Go's limit.
struct TooLarge;

/// Go's `parsenum`: the decimal number at the front of `chars`, if any. A number that grows past
/// Go's limit consumes the rest of the format, as Go gives up on it (`%!(NOVERB)` follows).
fn parse_number(
    chars: &mut std::iter::Peekable<std::str::CharIndices>,
) -> Result<Option<usize>, TooLarge> {
    let mut number: Option<u64> = None;
    while let Some(&(_, c)) = chars.peek() {
        let Some(digit) = c.to_digit(10) else { break };
        let so_far = number.unwrap_or(0);
        if so_far > MAX_WIDTH_OR_PRECISION {
            chars.for_each(drop);
            return Err(TooLarge);
        }
        number = Some(so_far * 10 + u64::from(digit));
        chars.next();
    }
    Ok(number.map(|n| n as usize))
}

fn pad(out: &mut String, body: &str, spec: Spec, zero_ok: bool) {
    let len = body.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(body);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && zero_ok {
        // Zero padding goes after the sign.
        let (sign, rest) = match body.chars().next() {
            Some(c @ ('+' | '-' | ' ')) => (Some(c), &body[1..]),
            _ => (None, body),
        };
        if let Some(sign) = sign {
            out.push(sign);
        }
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

fn bad_verb(out: &mut String, arg: &Value, verb: char) {
    let _ = write!(out, "%!{verb}(");
    if arg.is_nil() {
        out.push_str("<nil>");
    } else {
        out.push_str(&type_name(arg));
        out.push('=');
        write_v(out, arg);
    }
    out.push(')');
}

/// Go's `%#v`: the value as Go syntax (`map[string]interface {}{"a":1}`).
fn write_go_syntax(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Nil => out.push_str(if depth == 0 {
            "<nil>"
        } else {
            "interface {}(nil)"
        }),
        Value::String(s) => out.push_str(&go_quote(s)),
        Value::Bytes(bytes) => {
            out.push_str("[]byte{");
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "0x{b:x}");
            }
            out.push('}');
        }
        Value::List(items) => {
            out.push_str("[]interface {}{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_go_syntax(out, item, depth + 1);
            }
            out.push('}');
        }
        Value::Map(map) => {
            out.push_str("map[string]interface {}{");
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&go_quote(key));
                out.push(':');
                write_go_syntax(out, item, depth + 1);
            }
            out.push('}');
        }
        other => write_v(out, other),
    }
}

fn format_arg(out: &mut String, arg: &Value, verb: char, spec: Spec, depth: usize) {
    if verb == 'v' && spec.sharp {
        let mut text = String::new();
        write_go_syntax(&mut text, arg, depth);
        pad(out, &text, spec, false);
        return;
    }
    match arg {
        Value::Nil => {
            if depth > 0 || verb == 'v' {
                pad(out, "<nil>", spec, false);
            } else {
                bad_verb(out, arg, verb);
            }
        }
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, spec, false),
            _ => bad_verb(out, arg, verb),
        },
        Value::Int(i) => format_int(out, arg, *i, verb, spec),
        Value::Float(f) => format_float(out, arg, *f, verb, spec),
        Value::String(s) => format_string(out, arg, s.as_bytes(), verb, spec),
        Value::Bytes(bytes) => match verb {
            's' | 'q' | 'x' | 'X' => format_string(out, arg, bytes, verb, spec),
            _ => {
                out.push('[');
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    format_int(out, &Value::Int(*b as i64), *b as i64, verb, spec);
                }
                out.push(']');
            }
        },
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, item, verb, spec, depth + 1);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_string(out, &Value::String(key.clone()), key.as_bytes(), verb, spec);
                out.push(':');
                format_arg(out, item, verb, spec, depth + 1);
            }
            out.push(']');
        }
        Value::Object(object) if object.as_complex().is_some() => {
            let (re, im) = object.as_complex().unwrap_or_default();
            // fmtComplex: each part with the float verb, the imaginary one always signed.
            match verb {
                'v' | 'b' | 'g' | 'G' | 'x' | 'X' | 'f' | 'F' | 'e' | 'E' => {
                    out.push('(');
                    format_float(out, arg, re, verb, spec);
                    format_float(out, arg, im, verb, Spec { plus: true, ..spec });
                    out.push_str("i)");
                }
                _ => bad_verb(out, arg, verb),
            }
        }
        Value::Object(object) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => {
                let text = object.to_go_string();
                format_string(
                    out,
                    &Value::String(text.clone()),
                    text.as_bytes(),
                    verb,
                    spec,
                );
            }
            _ => bad_verb(out, arg, verb),
        },
    }
}

fn format_int(out: &mut String, arg: &Value, i: i64, verb: char, spec: Spec) {
    let negative = i < 0;
    let magnitude = i.unsigned_abs();
    let digits = match verb {
        'd' | 'v' => magnitude.to_string(),
        'b' => format!("{magnitude:b}"),
        'o' | 'O' => format!("{magnitude:o}"),
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        'c' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{fffd}');
            pad(out, &c.to_string(), spec, false);
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{fffd}');
            let mut quoted = String::from("'");
            push_escaped(&mut quoted, c, '\'', spec.plus);
            quoted.push('\'');
            pad(out, &quoted, spec, false);
            return;
        }
        'U' => {
            pad(out, &format!("U+{:04X}", i), spec, false);
            return;
        }
        _ => {
            bad_verb(out, arg, verb);
            return;
        }
    };
    let mut digits = digits;
    if let Some(p) = spec.precision {
        if p == 0 && magnitude == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let mut body = String::new();
    if negative {
        body.push('-');
    } else if spec.plus {
        body.push('+');
    } else if spec.space {
        body.push(' ');
    }
    if spec.sharp {
        match verb {
            'x' => body.push_str("0x"),
            'X' => body.push_str("0X"),
            'o' if !digits.starts_with('0') => body.push('0'),
            'b' => body.push_str("0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        body.push_str("0o");
    }
    body.push_str(&digits);
    pad(out, &body, spec, spec.precision.is_none());
}

fn format_float(out: &mut String, arg: &Value, f: f64, verb: char, spec: Spec) {
    // `%v` is `%g`; `%e` and `%f` default to six decimals, `%g` and `%x` to the shortest
    // digits; `%b` has no precision.
    let number = match verb {
        'v' | 'g' => strconv::format_float(f, 'g', spec.precision),
        'G' | 'x' | 'X' => strconv::format_float(f, verb, spec.precision),
        'b' => strconv::format_float(f, 'b', None),
        'e' | 'E' => strconv::format_float(f, verb, Some(spec.precision.unwrap_or(6))),
        'f' | 'F' => strconv::format_float(f, 'f', Some(spec.precision.unwrap_or(6))),
        _ => {
            bad_verb(out, arg, verb);
            return;
        }
    };
    // Go's fmt: a sign is decided first (`+`, `-`, or a space for the space flag)...
    let (sign, magnitude) = match number.strip_prefix('-') {
        Some(rest) => ('-', rest),
        None => ('+', number.strip_prefix('+').unwrap_or(&number)),
    };
    let sign = if spec.space && sign == '+' && !spec.plus {
        ' '
    } else {
        sign
    };
    // ...infinities keep theirs and are never zero padded; NaN shows one only when asked...
    if !f.is_finite() {
        let text = if f.is_nan() && !spec.space && !spec.plus {
            magnitude.to_string()
        } else {
            format!("{sign}{magnitude}")
        };
        pad(out, &text, spec, false);
        return;
    }
    let magnitude = if spec.sharp && verb != 'b' {
        with_point_and_zeros(magnitude, verb, spec.precision)
    } else {
        magnitude.to_string()
    };
    // ...and a finite number shows it when it is not `+` or `+` is asked for.
    if spec.plus || sign != '+' {
        pad(out, &format!("{sign}{magnitude}"), spec, true);
    } else {
        pad(out, &magnitude, spec, true);
    }
}

/// Go's `#` flag on a float: a decimal point always, and for `%g` and `%x` (not `%X`) trailing
/// zeros up to the precision's significant digits (six when none is given). As in Go, the `x`
/// of `0x` counts as a digit, and `e` is a hex digit, not an exponent, for `%x`.
fn with_point_and_zeros(magnitude: &str, verb: char, precision: Option<usize>) -> String {
    let mut zeros_wanted = match verb {
        'g' | 'G' | 'x' => precision.map_or(6, |p| p as i64),
        _ => 0,
    };
    let hex = matches!(verb, 'x' | 'X');
    let exponent_start = magnitude
        .find(|c| matches!(c, 'p' | 'P') || (!hex && matches!(c, 'e' | 'E')))
        .unwrap_or(magnitude.len());
    let (mantissa, exponent) = magnitude.split_at(exponent_start);
    let mut seen_nonzero = false;
    for c in mantissa.chars().filter(|c| *c != '.') {
        seen_nonzero |= c != '0';
        if seen_nonzero {
            zeros_wanted -= 1;
        }
    }
    let mut out = mantissa.to_string();
    if !mantissa.contains('.') {
        // A lone zero counts as a significant digit.
        if mantissa == "0" {
            zeros_wanted -= 1;
        }
        out.push('.');
    }
    out.extend(std::iter::repeat_n('0', zeros_wanted.max(0) as usize));
    out.push_str(exponent);
    out
}

fn format_string(out: &mut String, arg: &Value, bytes: &[u8], verb: char, spec: Spec) {
    let text = String::from_utf8_lossy(bytes);
    match verb {
        'v' | 's' => {
            let shown: String = match spec.precision {
                Some(p) => text.chars().take(p).collect(),
                None => text.into_owned(),
            };
            pad(out, &shown, spec, false);
        }
        'q' => {
            let shown: String = match spec.precision {
                Some(p) => text.chars().take(p).collect(),
                None => text.into_owned(),
            };
            let quoted = if spec.sharp && !shown.contains('`') && !shown.contains('\r') {
                format!("`{shown}`")
            } else if spec.plus {
                let mut q = String::from("\"");
                for c in shown.chars() {
                    push_escaped(&mut q, c, '"', true);
                }
                q.push('"');
                q
            } else {
                go_quote(&shown)
            };
            pad(out, &quoted, spec, false);
        }
        'x' | 'X' => {
            let mut hex = String::new();
            let shown = match spec.precision {
                Some(p) => &bytes[..p.min(bytes.len())],
                None => bytes,
            };
            for (i, b) in shown.iter().enumerate() {
                if spec.space && i > 0 {
                    hex.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    hex.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(hex, "{b:02x}");
                } else {
                    let _ = write!(hex, "{b:02X}");
                }
            }
            pad(out, &hex, spec, false);
        }
        _ => bad_verb(out, arg, verb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        let v = |f: f64| format_v(&Value::Float(f));
        assert_eq!(v(12345678.0), "1.2345678e+07");
        assert_eq!(v(100000.0), "100000");
        assert_eq!(v(1000000.0), "1e+06");
        assert_eq!(v(2.5), "2.5");
        assert_eq!(v(0.0001), "0.0001");
        assert_eq!(v(0.00001), "1e-05");
        assert_eq!(v(-3.0), "-3");
        assert_eq!(v(0.0), "0");
        assert_eq!(v(f64::INFINITY), "+Inf");
        // Every verb of the format gets the same float.
        let s = |f: &str, x: f64| sprintf(f, &vec![Value::Float(x); f.matches('%').count()]);
        assert_eq!(s("%+.1f|%08.3f|% g", 2.25), "+2.2|0002.250| 2.25");
        assert_eq!(s("%-8.2e|%E", -1234.5), "-1.23e+03|-1.234500E+03");
        assert_eq!(
            s("%.3v|%G|%F", 123456789.0),
            "1.23e+08|1.23456789E+08|123456789.000000"
        );
        assert_eq!(s("%+v|%5v|%05v", f64::INFINITY), "+Inf| +Inf| +Inf");
    }

    #[test]
    fn floats_print_in_binary_forms_like_go() {
        let s = |f: &str, x: f64| sprintf(f, &vec![Value::Float(x); f.matches('%').count()]);
        assert_eq!(
            s("%x|%X|%b|%.3x|%.0x|%.20x", 1.5),
            "0x1.8p+00|0X1.8P+00|6755399441055744p-52|0x1.800p+00|0x1p+01|0x1.80000000000000000000p+00"
        );
        // `#` pads `%x` to six digits (the `x` counts as one), gives `%X` a point only, and
        // leaves `%b` alone; `%b` ignores the precision.
        assert_eq!(
            s("%#x|%#X|%#.0x|%#.3x|%#b|%.3b", 1.0),
            "0x1.0000p+00|0X1.P+00|0x1.p+00|0x1.000p+00|4503599627370496p-52|4503599627370496p-52"
        );
        assert_eq!(
            s("%#x|%#.10x", 0.1),
            "0x1.999999999999ap-04|0x1.999999999ap-04"
        );
        assert_eq!(
            s("%+x|% x|%012x|%-12x|%+012X|%12b", -2.75),
            "-0x1.6p+01|-0x1.6p+01|-000x1.6p+01|-0x1.6p+01  |-000X1.6P+01|-6192449487634432p-51"
        );
        assert_eq!(
            s("%+x|% x|%012x|% 030b", 0.5),
            "+0x1p-01| 0x1p-01|000000x1p-01| 0000000004503599627370496p-53"
        );
        assert_eq!(s("%x|%b", 0.0), "0x0p+00|0p-1074");
        assert_eq!(s("%x|%b", 5e-324), "0x1p-1074|1p-1074");
        assert_eq!(
            s("%x|%+x|%010x|% b", f64::INFINITY),
            "+Inf|+Inf|      +Inf| Inf"
        );
        assert_eq!(s("%x|%+x|%b", f64::NAN), "NaN|+NaN|NaN");
    }

    #[test]
    fn maps_and_lists_print_like_go() {
        let value =
            Value::from_json(&serde_json::json!({"z": 1, "a": "x", "l": [1, 2.5], "n": null}));
        assert_eq!(format_v(&value), "map[a:x l:[1 2.5] n:<nil> z:1]");
    }

    #[test]
    fn sprintf_verbs_and_errors() {
        let s = |f: &str, args: &[Value]| sprintf(f, args);
        assert_eq!(s("%d", &[Value::Float(80.0)]), "%!d(float64=80)");
        assert_eq!(s("%s-%d", &[Value::from("a"), Value::Int(3)]), "a-3");
        assert_eq!(s("%q", &[Value::from("a\"b")]), "\"a\\\"b\"");
        assert_eq!(
            s(
                "%05d|%-4s|%x",
                &[Value::Int(42), Value::from("ab"), Value::from("hi")]
            ),
            "00042|ab  |6869"
        );
        assert_eq!(s("%v %v", &[Value::Nil]), "<nil> %!v(MISSING)");
        assert_eq!(s("%s", &[Value::Nil]), "%!s(<nil>)");
        assert_eq!(s("a", &[Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(
            s(
                "%.2f %e %g",
                &[
                    Value::Float(2.41596),
                    Value::Float(1234.5),
                    Value::Float(1e21)
                ]
            ),
            "2.42 1.234500e+03 1e+21"
        );
        assert_eq!(
            s("%T %T", &[Value::list([]), Value::Float(1.0)]),
            "[]interface {} float64"
        );
        assert_eq!(
            s("%s", &[Value::list([Value::from("a"), Value::Int(1)])]),
            "[a %!s(int=1)]"
        );
        assert_eq!(s("100%%", &[]), "100%");
        // Go's limits on widths and precisions (helm prints these).
        assert_eq!(
            s("%.99999999999999999999f|", &[Value::Float(1.5)]),
            "%!(NOVERB)%!(EXTRA float64=1.5)"
        );
        assert_eq!(
            s("%99999999999999999999d|", &[Value::Int(3)]),
            "%!(NOVERB)%!(EXTRA int=3)"
        );
        assert_eq!(
            s(
                "%*d|%.*f",
                &[
                    Value::Int(1 << 40),
                    Value::Int(3),
                    Value::Int(-1),
                    Value::Float(1.5)
                ]
            ),
            "%!(BADWIDTH)3|%!(BADPREC)1.500000"
        );
        assert_eq!(s("%*d", &[Value::Int(-3), Value::Int(7)]), "7  ");
        // Float flags as helm prints them.
        let floats = |f: &str, xs: &[f64]| {
            sprintf(f, &xs.iter().map(|x| Value::Float(*x)).collect::<Vec<_>>())
        };
        assert_eq!(
            floats(
                "% v|%+v|%v|% 6v|%06v|% v|%+v|%+f",
                &[
                    f64::INFINITY,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::INFINITY
                ]
                .into_iter()
                .chain([f64::NEG_INFINITY, f64::NAN, f64::NAN, f64::NAN])
                .collect::<Vec<_>>()
            ),
            " Inf|+Inf|-Inf|   Inf|  -Inf| NaN|NaN|+NaN"
        );
        assert_eq!(
            floats(
                "%#g|%#.3g|%#e|%#.0e|%#f|%#.0f|%#g|%#g|%#G|%#.2g|%#10.3g|%#g",
                &[
                    1.0,
                    1.0,
                    2.0,
                    3.0,
                    4.0,
                    5.0,
                    0.0,
                    123456789.0,
                    1e-7,
                    100.0,
                    1.5,
                    0.000123
                ]
            ),
            "1.00000|1.00|2.000000e+00|3.e+00|4.000000|5.|0.00000|1.23456789e+08|1.00000E-07|1.0e+02|      1.50|0.000123000"
        );
        let list = Value::list([Value::Int(1), Value::Int(-2), Value::Float(2.5)]);
        assert_eq!(
            s(
                "%+v|%+v|%+v|%+d",
                &[Value::Int(3), Value::Float(1.5), list, Value::Int(4)]
            ),
            "3|1.5|[1 -2 2.5]|+4"
        );
        let map = Value::from_json(&serde_json::json!({"a": 1.0, "b": ["x", null]}));
        assert_eq!(
            s("%#v", &[map]),
            "map[string]interface {}{\"a\":1, \"b\":[]interface {}{\"x\", interface {}(nil)}}"
        );
    }

    #[test]
    fn sprint_spaces_between_non_strings() {
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                Value::from("a"),
                Value::Int(3)
            ]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Value::Int(1), Value::from("a")]), "1 a\n");
    }
}
