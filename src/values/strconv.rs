//! Go's `strconv.FormatFloat` for float64 and float32: decimal digits laid out as `'e'`, `'f'`
//! or `'g'`. Values are Go numbers: go-yaml prints float keys with it, and the renderer's fmt
//! verbs and Sprig functions build on it.

use std::fmt::Write as _;

/// `strconv.FormatFloat(f, fmt, prec, 64)` for `fmt` in `e`, `E`, `f`, `g`, `G`; a `precision` of
/// `None` is Go's `-1`: the fewest digits that read back as `f`.
pub fn format_float(f: f64, fmt: char, precision: Option<usize>) -> String {
    format_sized(f, fmt, precision, false)
}

/// `strconv.FormatFloat(f, fmt, prec, 32)`: `f` rounded to a float32 first, and `None` precision
/// giving the fewest digits that read back as that float32 (sigs.k8s.io/yaml's float keys).
pub fn format_float32(f: f64, fmt: char, precision: Option<usize>) -> String {
    format_sized(f64::from(f as f32), fmt, precision, true)
}

/// Formats `f`; `single` asks for float32's shortest digits (`f` is then a float32's value).
fn format_sized(f: f64, fmt: char, precision: Option<usize>, single: bool) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let mut out = String::new();
    // Go keeps the sign of negative zero.
    if f.is_sign_negative() {
        out.push('-');
    }
    match fmt {
        'e' | 'E' => {
            let (digits, point) = decimal_digits(f, precision.map(|p| p + 1), single);
            let fraction_digits = precision.unwrap_or(digits.len() - 1);
            push_exponent_form(&mut out, &digits, point, fraction_digits, fmt == 'E');
        }
        'f' => match precision {
            // Rust rounds the exact binary value half to even at a decimal place, as Go does.
            Some(p) => {
                let _ = write!(out, "{:.*}", p, f.abs());
            }
            None => {
                let (digits, point) = decimal_digits(f, None, single);
                let fraction_digits = (digits.len() as i32 - point).max(0) as usize;
                push_fixed_form(&mut out, &digits, point, fraction_digits);
            }
        },
        'g' | 'G' => {
            // Go rounds `%.0g` to one digit.
            let significant = precision.map(|p| p.max(1));
            let (digits, point) = decimal_digits(f, significant, single);
            let digit_count = digits.len() as i32;
            // The exponent form is used when the exponent is below -4 or reaches the precision;
            // shortest digits decide with precision 6, and a precision beyond the digits of an
            // integer counts only those digits.
            let exponent_limit = match significant {
                None => 6,
                Some(p) => {
                    let p = i32::try_from(p).unwrap_or(i32::MAX);
                    if p > digit_count && digit_count >= point {
                        digit_count
                    } else {
                        p
                    }
                }
            };
            let exponent = point - 1;
            if exponent < -4 || exponent >= exponent_limit {
                push_exponent_form(&mut out, &digits, point, digits.len() - 1, fmt == 'G');
            } else {
                let fraction_digits = (digit_count - point).max(0) as usize;
                push_fixed_form(&mut out, &digits, point, fraction_digits);
            }
        }
        // Go's answer to a format it does not know.
        other => {
            out.clear();
            out.push('%');
            out.push(other);
        }
    }
    out
}

/// The decimal digits of `|f|` (at least one, no trailing zeros) and the decimal point's
/// position (the value is `0.DIGITS × 10^point`): the shortest that read back as `f` (as a
/// float32 when `single`), or rounded to `significant` digits.
fn decimal_digits(f: f64, significant: Option<usize>, single: bool) -> (String, i32) {
    // Rust's `{:e}` gives the shortest round-tripping digits, and `{:.Ne}` rounds the exact
    // binary value half to even, both as Go's strconv does.
    let formatted = match significant {
        None if single => format!("{:e}", (f as f32).abs()),
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), f.abs()),
    };
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (digits, 1);
    }
    (digits, exponent + 1)
}

/// `d.ddde±XX`: the first digit, then `fraction_digits` more (padded with zeros), then the
/// exponent with at least two digits.
fn push_exponent_form(
    out: &mut String,
    digits: &str,
    point: i32,
    fraction_digits: usize,
    upper: bool,
) {
    let mut chars = digits.chars();
    out.push(chars.next().unwrap_or('0'));
    if fraction_digits > 0 {
        out.push('.');
        let mut written = 0;
        for c in chars.take(fraction_digits) {
            out.push(c);
            written += 1;
        }
        out.extend(std::iter::repeat_n('0', fraction_digits - written));
    }
    let exponent = if digits == "0" { 0 } else { point - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exponent < 0 { '-' } else { '+' });
    let magnitude = exponent.unsigned_abs();
    if magnitude < 10 {
        out.push('0');
    }
    let _ = write!(out, "{magnitude}");
}

/// `ddd.ddd`: the integer part (at least `0`), then `fraction_digits` digits after the point,
/// zeros where the digits run out.
fn push_fixed_form(out: &mut String, digits: &str, point: i32, fraction_digits: usize) {
    let bytes = digits.as_bytes();
    let digit_at = |index: i32| -> char {
        usize::try_from(index)
            .ok()
            .and_then(|i| bytes.get(i))
            .map_or('0', |b| *b as char)
    };
    if point <= 0 {
        out.push('0');
    } else {
        out.extend((0..point).map(digit_at));
    }
    if fraction_digits > 0 {
        out.push('.');
        out.extend((0..fraction_digits as i32).map(|i| digit_at(point + i)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_floats_format_like_go() {
        let g = |f: f64| format_float(f, 'g', None);
        assert_eq!(g(12345678.0), "1.2345678e+07");
        assert_eq!(g(123456.0), "123456");
        assert_eq!(g(100000.0), "100000");
        assert_eq!(g(1e6), "1e+06");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.00001), "1e-05");
        assert_eq!(g(1.5), "1.5");
        assert_eq!(g(-2.25), "-2.25");
        assert_eq!(g(-3.0), "-3");
        assert_eq!(g(0.0), "0");
        assert_eq!(g(-0.0), "-0");
        assert_eq!(g(1e21), "1e+21");
        assert_eq!(g(f64::INFINITY), "+Inf");
        assert_eq!(g(f64::NEG_INFINITY), "-Inf");
        assert_eq!(g(f64::NAN), "NaN");
        assert_eq!(format_float(3.0, 'f', None), "3");
        assert_eq!(format_float(0.000001, 'f', None), "0.000001");
        assert_eq!(format_float(1234.5, 'f', None), "1234.5");
        assert_eq!(format_float(1e21, 'e', None), "1e+21");
        assert_eq!(format_float(0.0, 'e', None), "0e+00");
        assert_eq!(format_float(1.2345e-7, 'E', None), "1.2345E-07");
    }

    #[test]
    fn rounded_floats_format_like_go() {
        assert_eq!(format_float(1.25, 'f', Some(1)), "1.2");
        assert_eq!(format_float(2.41596, 'f', Some(2)), "2.42");
        assert_eq!(format_float(-0.0, 'f', Some(2)), "-0.00");
        assert_eq!(format_float(1234.5, 'e', Some(6)), "1.234500e+03");
        assert_eq!(format_float(0.0, 'e', Some(2)), "0.00e+00");
        assert_eq!(format_float(9.99, 'e', Some(0)), "1e+01");
        assert_eq!(format_float(123.0, 'g', Some(2)), "1.2e+02");
        assert_eq!(format_float(1.0, 'g', Some(3)), "1");
        assert_eq!(format_float(100.0, 'g', Some(5)), "100");
        assert_eq!(format_float(0.5, 'g', Some(0)), "0.5");
        assert_eq!(format_float(123456789.0, 'G', Some(3)), "1.23E+08");
    }

    #[test]
    fn float32_formats_like_go() {
        let g = |f: f64| format_float32(f, 'g', None);
        assert_eq!(g(1234567.5), "1.2345675e+06");
        assert_eq!(g(123456.7), "123456.7");
        assert_eq!(g(0.1234567891), "0.12345679");
        assert_eq!(g(1e20), "1e+20");
        assert_eq!(g(0.00001), "1e-05");
        assert_eq!(g(1.1), "1.1");
        assert_eq!(g(3.0), "3");
        assert_eq!(g(1e300), "+Inf");
        assert_eq!(format_float32(0.1, 'f', Some(10)), "0.1000000015");
    }

    #[test]
    fn unknown_formats_answer_like_go() {
        assert_eq!(format_float(1.0, 'x', None), "%x");
    }
}
