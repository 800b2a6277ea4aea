//! Go's `strconv.FormatFloat` for float64 and float32: decimal digits laid out as `'e'`, `'f'`
//! or `'g'`, or the binary forms `'b'`, `'x'` and `'X'`. Values are Go numbers: go-yaml prints
//! float keys with it, and the renderer's fmt verbs and Sprig functions build on it.

use std::fmt::Write as _;

/// `strconv.FormatFloat(f, fmt, prec, 64)` for `fmt` in `e`, `E`, `f`, `g`, `G`, `b`, `x`, `X`; a
/// `precision` of `None` is Go's `-1`: the fewest digits that read back as `f` (`b` has none).
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
        'b' => push_binary_form(&mut out, f, single),
        'x' | 'X' => push_hex_form(&mut out, f, single, precision, fmt == 'X'),
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

/// The IEEE layout of a float64 or float32 (Go's `floatInfo`).
struct FloatLayout {
    mantissa_bits: u32,
    exponent_bits: u32,
    bias: i32,
}

const FLOAT64: FloatLayout = FloatLayout {
    mantissa_bits: 52,
    exponent_bits: 11,
    bias: -1023,
};
const FLOAT32: FloatLayout = FloatLayout {
    mantissa_bits: 23,
    exponent_bits: 8,
    bias: -127,
};

/// `|f|` (finite) as Go's `genericFtoa` unpacks it: an integer mantissa with the implicit top
/// bit added for normal numbers, and the exponent of that top bit (`|f| = mant × 2^(exp −
/// mantissa_bits)`). `single` reads `f` as the float32 it holds.
fn binary_parts(f: f64, single: bool) -> (u64, i32, &'static FloatLayout) {
    let (bits, layout) = if single {
        (u64::from((f as f32).to_bits()), &FLOAT32)
    } else {
        (f.to_bits(), &FLOAT64)
    };
    let mut mantissa = bits & ((1u64 << layout.mantissa_bits) - 1);
    let biased = (bits >> layout.mantissa_bits) & ((1u64 << layout.exponent_bits) - 1);
    let mut exponent = biased as i32;
    if biased == 0 {
        // Subnormal: no implicit bit, and the smallest normal exponent.
        exponent += 1;
    } else {
        mantissa |= 1u64 << layout.mantissa_bits;
    }
    (mantissa, exponent + layout.bias, layout)
}

/// Go's `fmtB` (`%b`): `MANTISSAp±EXP`, the integer mantissa in decimal and a power of two.
fn push_binary_form(out: &mut String, f: f64, single: bool) {
    let (mantissa, exponent, layout) = binary_parts(f, single);
    let exponent = exponent - layout.mantissa_bits as i32;
    let sign = if exponent >= 0 { "+" } else { "" };
    let _ = write!(out, "{mantissa}p{sign}{exponent}");
}

/// Go's `fmtX` (`%x`): `0x1.HEXp±DD`, the leading digit 1 (0 for zero), the fraction in hex
/// (shortest, or rounded half to even to `precision` digits) and a power of two with at least
/// two digits.
fn push_hex_form(out: &mut String, f: f64, single: bool, precision: Option<usize>, upper: bool) {
    // The mantissa is shifted so its leading 1 sits at bit 60: fifteen hex digits follow it.
    const LEADING: u64 = 1 << 60;
    let (mut mantissa, mut exponent, layout) = binary_parts(f, single);
    if mantissa == 0 {
        exponent = 0;
    }
    mantissa <<= 60 - layout.mantissa_bits;
    while mantissa != 0 && mantissa & LEADING == 0 {
        mantissa <<= 1;
        exponent -= 1;
    }
    if let Some(digits) = precision.filter(|p| *p < 15) {
        let shift = digits as u32 * 4;
        let dropped = (mantissa << shift) & (LEADING - 1);
        mantissa >>= 60 - shift;
        if dropped | (mantissa & 1) > LEADING >> 1 {
            mantissa += 1;
        }
        mantissa <<= 60 - shift;
        if mantissa & (LEADING << 1) != 0 {
            // Rounded up to 2: renormalize.
            mantissa >>= 1;
            exponent += 1;
        }
    }
    let hex: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.push_str(if upper { "0X" } else { "0x" });
    out.push(if mantissa & LEADING != 0 { '1' } else { '0' });
    // Drop the leading digit; each step then brings the next hex digit to bits 60..64.
    mantissa <<= 4;
    let push_digit = |out: &mut String, mantissa: &mut u64| {
        out.push(char::from(hex[((*mantissa >> 60) & 15) as usize]));
        *mantissa <<= 4;
    };
    match precision {
        None if mantissa != 0 => {
            out.push('.');
            while mantissa != 0 {
                push_digit(out, &mut mantissa);
            }
        }
        Some(digits) if digits > 0 => {
            out.push('.');
            for _ in 0..digits {
                push_digit(out, &mut mantissa);
            }
        }
        _ => {}
    }
    out.push(if upper { 'P' } else { 'p' });
    out.push(if exponent < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exponent.unsigned_abs());
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

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"', false);
    }
    out.push('"');
    out
}

/// Appends `c` as it appears inside a Go quoted literal delimited by `quote` (`ascii_only` is
/// `strconv.QuoteToASCII`'s rule).
pub fn push_escaped(out: &mut String, c: char, quote: char, ascii_only: bool) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x80 => out.push(c),
        c if !ascii_only && is_print(c) => out.push(c),
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `strconv.IsPrint` (letters, marks, numbers, punctuation, symbols and the ASCII space),
/// approximated over Unicode's control, format, separator, surrogate and private-use ranges.
pub fn is_print(c: char) -> bool {
    let code = c as u32;
    if code < 0x20 || (0x7f..0xa0).contains(&code) {
        return false;
    }
    if c == ' ' {
        return true;
    }
    if c.is_whitespace() {
        return false;
    }
    !matches!(code,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x2028..=0x202e | 0x2060..=0x206f | 0xd800..=0xdfff | 0xe000..=0xf8ff | 0xfeff
        | 0xfff0..=0xfffb | 0xfffe | 0xffff | 0xf0000..=0x10ffff)
}

/// `strconv.ParseInt(s, base, 64)` with base 0 (prefixes 0x, 0o, 0b, a leading 0 for octal,
/// underscores between digits) or an explicit base.
pub fn parse_int(s: &str, base: u32) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits, prefixed) = if base == 0 {
        let lower = body.to_ascii_lowercase();
        if lower.starts_with("0x") {
            (16, &body[2..], true)
        } else if lower.starts_with("0o") {
            (8, &body[2..], true)
        } else if lower.starts_with("0b") {
            (2, &body[2..], true)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..], true)
        } else {
            (10, body, false)
        }
    } else {
        (base, body, false)
    };
    let cleaned: String = if base == 0 && digits.contains('_') {
        // Go accepts underscores only between digits (or right after a base prefix).
        let bytes = digits.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'_' {
                let before_ok = i > 0 && bytes[i - 1] != b'_' || (i == 0 && prefixed);
                let after_ok = i + 1 < bytes.len() && bytes[i + 1] != b'_';
                if !before_ok || !after_ok {
                    return None;
                }
            }
        }
        digits.replace('_', "")
    } else {
        digits.to_string()
    };
    if cleaned.is_empty() {
        return None;
    }
    let magnitude = u64::from_str_radix(&cleaned, radix).ok()?;
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            None
        } else {
            Some((magnitude as i128).wrapping_neg() as i64)
        }
    } else if magnitude > i64::MAX as u64 {
        None
    } else {
        Some(magnitude as i64)
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
    fn binary_forms_format_like_go() {
        let x = |f: f64, p: Option<usize>| format_float(f, 'x', p);
        assert_eq!(x(1.5, None), "0x1.8p+00");
        assert_eq!(x(1.0, None), "0x1p+00");
        assert_eq!(x(0.0, None), "0x0p+00");
        assert_eq!(x(-0.0, None), "-0x0p+00");
        assert_eq!(x(0.1, None), "0x1.999999999999ap-04");
        assert_eq!(x(5e-324, None), "0x1p-1074");
        assert_eq!(x(f64::MAX, None), "0x1.fffffffffffffp+1023");
        assert_eq!(x(1.9999999, Some(3)), "0x1.000p+01");
        // Half to even: 1.8 (hex) rounds up to 2, 1.4 down.
        assert_eq!(x(1.5, Some(0)), "0x1p+01");
        assert_eq!(x(1.25, Some(0)), "0x1p+00");
        assert_eq!(x(1.03125, Some(1)), "0x1.0p+00");
        assert_eq!(x(1.09375, Some(1)), "0x1.2p+00");
        assert_eq!(x(1.0 / 3.0, Some(14)), "0x1.55555555555550p-02");
        assert_eq!(x(0.1, Some(20)), "0x1.999999999999a0000000p-04");
        assert_eq!(format_float(-2.75, 'X', None), "-0X1.6P+01".to_string());
        assert_eq!(format_float(0.1, 'X', Some(3)), "0X1.99AP-04");
        let b = |f: f64| format_float(f, 'b', None);
        assert_eq!(b(1.5), "6755399441055744p-52");
        assert_eq!(b(0.0), "0p-1074");
        assert_eq!(b(-2.75), "-6192449487634432p-51");
        assert_eq!(b(1e300), "6724873095247260p+944");
        assert_eq!(b(2.2250738585072014e-308), "4503599627370496p-1074");
        assert_eq!(format_float32(1.5, 'x', None), "0x1.8p+00");
        assert_eq!(format_float32(0.1, 'x', Some(3)), "0x1.99ap-04");
        assert_eq!(format_float32(0.1, 'b', None), "13421773p-27");
        assert_eq!(format_float32(1e-45, 'x', None), "0x1p-149");
        assert_eq!(format_float32(1e-45, 'b', None), "1p-149");
    }

    #[test]
    fn unknown_formats_answer_like_go() {
        assert_eq!(format_float(1.0, 'q', None), "%q");
    }
}
