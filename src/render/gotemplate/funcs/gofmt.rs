//! Go's fmt printing of template values (`%v`, `%q`) and strconv's float formatting.

use crate::render::gotemplate::value::Value;

/// `fmt.Sprintf("%v", v)` as Go prints template values: the engine's printer, so functions and
/// `{{ . }}` print alike.
pub fn format_value(value: &Value) -> String {
    crate::render::gotemplate::print::format_v(value)
}

/// The shortest decimal digits of `f` (no sign) and its decimal point position: the value is
/// `0.DIGITS × 10^point`.
fn shortest_digits(f: f64) -> (String, i32) {
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if digits.chars().all(|c| c == '0') {
        return ("0".to_string(), 1);
    }
    (digits, exponent + 1)
}

/// Digits of `f` rounded to `count` significant digits (`count` ≥ 1) and the point position.
fn rounded_digits(f: f64, count: usize) -> (String, i32) {
    let sci = format!("{:.*e}", count.saturating_sub(1), f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f == 0.0 {
        return (digits, 1);
    }
    (digits, exponent + 1)
}

/// Digits of `f` with exactly `decimals` digits after the point (for `%f`), as Rust formats
/// it (both round half to even on the exact binary value, like Go).
fn fixed(f: f64, decimals: usize) -> String {
    format!("{:.*}", decimals, f.abs())
}

/// `strconv.FormatFloat(f, fmt, prec, 64)` for fmt in `e`, `E`, `f`, `g`, `G`.
pub fn format_float(f: f64, fmt: char, prec: i32) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let negative = f.is_sign_negative();
    let sign = if negative { "-" } else { "" };
    let body = match fmt {
        'f' => {
            if prec < 0 {
                let (digits, point) = shortest_digits(f);
                digits_fixed(&digits, point, None)
            } else {
                fixed(f, prec as usize)
            }
        }
        'e' | 'E' => {
            let (digits, point) = if prec < 0 {
                shortest_digits(f)
            } else {
                rounded_digits(f, prec as usize + 1)
            };
            let mut s = digits_exp(
                &digits,
                point,
                if prec < 0 { None } else { Some(prec as usize) },
            );
            if fmt == 'E' {
                s = s.to_uppercase();
            }
            s
        }
        _ => {
            let shortest = prec < 0;
            let (digits, point) = if shortest {
                shortest_digits(f)
            } else {
                rounded_digits(f, prec.max(1) as usize)
            };
            let mut eprec = if shortest { 6 } else { prec.max(1) };
            let nd = digits.len() as i32;
            if !shortest && eprec > nd && nd >= point {
                eprec = nd;
            }
            let exp = point - 1;
            let mut s = if exp < -4 || exp >= eprec {
                let trimmed = trim_trailing_zeros(&digits);
                digits_exp(&trimmed, point, None)
            } else {
                let trimmed = trim_trailing_zeros(&digits);
                digits_fixed(&trimmed, point, None)
            };
            if fmt == 'G' {
                s = s.to_uppercase();
            }
            s
        }
    };
    format!("{sign}{body}")
}

fn trim_trailing_zeros(digits: &str) -> String {
    let trimmed = digits.trim_end_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// `d.ddde±XX` from digits and point position; `decimals` pads with zeros.
fn digits_exp(digits: &str, point: i32, decimals: Option<usize>) -> String {
    let mut out = String::new();
    let mut chars = digits.chars();
    out.push(chars.next().unwrap_or('0'));
    let rest: String = chars.collect();
    let rest = match decimals {
        Some(n) => {
            let mut r = rest;
            while r.len() < n {
                r.push('0');
            }
            r.truncate(n);
            r
        }
        None => rest,
    };
    if !rest.is_empty() {
        out.push('.');
        out.push_str(&rest);
    }
    let exp = if digits == "0" { 0 } else { point - 1 };
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push('0');
    }
    out.push_str(&abs.to_string());
    out
}

/// `ddd.ddd` from digits and point position.
fn digits_fixed(digits: &str, point: i32, _decimals: Option<usize>) -> String {
    let mut out = String::new();
    if point <= 0 {
        out.push('0');
        if digits != "0" {
            out.push('.');
            for _ in 0..(-point) {
                out.push('0');
            }
            out.push_str(digits);
        }
        return out;
    }
    let point = point as usize;
    if digits.len() <= point {
        out.push_str(digits);
        for _ in digits.len()..point {
            out.push('0');
        }
    } else {
        out.push_str(&digits[..point]);
        out.push('.');
        out.push_str(&digits[point..]);
    }
    out
}

/// `strconv.Quote(s)` (what `%q` prints for a string): the engine's implementation.
pub use crate::render::gotemplate::print::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float(12345678.0, 'g', -1), "1.2345678e+07");
        assert_eq!(format_float(123456.0, 'g', -1), "123456");
        assert_eq!(format_float(1e6, 'g', -1), "1e+06");
        assert_eq!(format_float(0.0001, 'g', -1), "0.0001");
        assert_eq!(format_float(0.00001, 'g', -1), "1e-05");
        assert_eq!(format_float(1.5, 'g', -1), "1.5");
        assert_eq!(format_float(-2.25, 'g', -1), "-2.25");
        assert_eq!(format_float(0.0, 'g', -1), "0");
        assert_eq!(format_float(1e21, 'g', -1), "1e+21");
        assert_eq!(format_float(3.0, 'f', -1), "3");
        assert_eq!(format_float(0.000001, 'f', -1), "0.000001");
        assert_eq!(format_float(1e21, 'e', -1), "1e+21");
        assert_eq!(format_float(1.25, 'f', 1), "1.2");
        assert_eq!(format_float(f64::INFINITY, 'g', -1), "+Inf");
    }

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
