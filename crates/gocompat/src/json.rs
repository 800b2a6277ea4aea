//! Go's `encoding/json` number and string text, shared by the template engine's `toJson` and
//! the Helm release records keelson writes.

use crate::strconv::format_float;

/// The text `encoding/json` writes for a float64: the shortest digits that read back, plain
/// for 1e-6 ≤ |f| < 1e21 and exponent form outside (`1e+21`, `1.5e-7`). `None` for NaN and
/// the infinities, which Go refuses (`json: unsupported value`).
pub fn format_float64(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let mut text = format_float(f, 'e', None);
        // Go cleans e-09 to e-9.
        let n = text.len();
        if n >= 4 && &text[n - 4..n - 2] == "e-" && &text[n - 2..n - 1] == "0" {
            text.remove(n - 2);
        }
        return Some(text);
    }
    Some(format_float(f, 'f', None))
}

/// The escape `encoding/json` writes for a character beyond JSON's own rules (quote,
/// backslash, control characters): `<`, `>` and `&` when escaping HTML (`json.Marshal`'s
/// default; `toRawJson` turns it off), U+2028 and U+2029 always.
pub fn extra_escape(c: char, escape_html: bool) -> Option<&'static str> {
    match c {
        '<' if escape_html => Some("\\u003c"),
        '>' if escape_html => Some("\\u003e"),
        '&' if escape_html => Some("\\u0026"),
        '\u{2028}' => Some("\\u2028"),
        '\u{2029}' => Some("\\u2029"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_encoding_json() {
        let text = |f: f64| format_float64(f).unwrap_or_default();
        assert_eq!(text(1.0), "1");
        assert_eq!(text(1.5), "1.5");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(-0.0), "-0");
        assert_eq!(text(1e21), "1e+21");
        assert_eq!(text(1.5e-7), "1.5e-7");
        assert_eq!(text(1e-10), "1e-10");
        assert_eq!(text(1e20), "100000000000000000000");
        assert_eq!(text(0.000001), "0.000001");
        assert_eq!(text(-2.5e22), "-2.5e+22");
        assert_eq!(text(12345678.0), "12345678");
        assert_eq!(text(5e-324), "5e-324");
        assert_eq!(text(1e100), "1e+100");
        assert_eq!(format_float64(f64::NAN), None);
    }
}
