//! Number constants in templates as Go's text/template reads them (`parse.newNumber` and the
//! executor's `idealConstant`), with Go's `strconv` rules for every literal form: `0x`/`0o`/`0b`
//! prefixes, `_` separators, leading-zero octal, hex floats with `p` exponents, imaginary and
//! complex literals and character constants.
//!
//! A constant becomes `int` (integers, hex integers, characters), `float64` (a `.`, `e` or `p`
//! in the text) or `complex128` (an `i` suffix or `a+bi`). Malformed text is a parse error in
//! Go's words; an integer that fits only a uint64 parses but fails when executed
//! (`... overflows int`).

use std::sync::Arc;

use super::value::{Object, Value};

/// A constant's value, or the error executing it gives.
pub type Constant = Result<Value, String>;

/// What the lexer said the constant is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberKind {
    /// `itemNumber`: any number, imaginary ones (`2i`) included.
    Number,
    /// `itemCharConstant`: `'a'`.
    Char,
    /// `itemComplex`: `1+2i`.
    Complex,
}

/// Go's `complex128`: printed `(1+2i)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Complex {
    pub re: f64,
    pub im: f64,
}

impl Object for Complex {
    fn type_name(&self) -> &str {
        "complex128"
    }

    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn to_go_string(&self) -> String {
        let re = gocompat::strconv::format_float(self.re, 'g', None);
        let im = gocompat::strconv::format_float(self.im, 'g', None);
        let sign = if im.starts_with('-') || im.starts_with('+') {
            ""
        } else {
            "+"
        };
        format!("({re}{sign}{im}i)")
    }

    /// encoding/json cannot marshal a complex128 (the marshalers check [`Object::as_complex`]
    /// first); this printed form is only what other serializers see.
    fn to_serializable(&self) -> Value {
        Value::String(self.to_go_string())
    }

    fn as_complex(&self) -> Option<(f64, f64)> {
        Some((self.re, self.im))
    }
}

/// `strconv`'s two errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumError {
    Syntax,
    Range,
}

/// Parses a constant: `Err` is the parse error message (before Helm's cleanup), `Ok(Err)` an
/// execution error.
pub fn parse_constant(text: &str, kind: NumberKind) -> Result<Constant, String> {
    match kind {
        NumberKind::Char => char_constant(text).map(|c| Ok(Value::Int(i64::from(c)))),
        NumberKind::Complex => {
            scan_complex(text).map(|(re, im)| Ok(Value::Object(Arc::new(Complex { re, im }))))
        }
        NumberKind::Number => number(text),
    }
}

fn number(text: &str) -> Result<Constant, String> {
    // Imaginary constants are complex (unless the float part does not parse).
    if let Some(body) = text.strip_suffix('i')
        && let Ok(im) = parse_float(body)
    {
        return Ok(Ok(Value::Object(Arc::new(Complex { re: 0.0, im }))));
    }
    let uint = parse_uint(text).ok();
    let int = parse_int(text).ok();
    let float = if int.is_some() || uint.is_some() {
        None
    } else {
        match parse_float(text) {
            Ok(_) if !text.contains(['.', 'e', 'E', 'p', 'P']) => {
                return Err(format!("integer overflow: {}", quote(text)));
            }
            Ok(f) => Some(f),
            Err(_) => None,
        }
    };
    if int.is_none() && uint.is_none() && float.is_none() {
        return Err(format!("illegal number syntax: {}", quote(text)));
    }
    // idealConstant: the text decides between float64 and int.
    let hex_int = text.len() > 2
        && text.starts_with('0')
        && matches!(text.as_bytes()[1], b'x' | b'X')
        && !text.contains(['p', 'P']);
    if let Some(f) = float
        && !hex_int
    {
        return Ok(Ok(Value::Float(f)));
    }
    if let Some(i) = int {
        return Ok(Ok(Value::Int(i)));
    }
    Ok(Err(format!("{text} overflows int")))
}

fn quote(text: &str) -> String {
    super::print::go_quote(text)
}

/// Go's `underscoreOK`: `_` only between digits (a base prefix counts as a digit).
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else if saw == b'_' {
            return false;
        } else {
            saw = b'!';
        }
    }
    saw != b'_'
}

/// `strconv.ParseUint(s, 0, 64)`.
fn parse_uint(s0: &str) -> Result<u64, NumError> {
    if s0.is_empty() {
        return Err(NumError::Syntax);
    }
    let bytes = s0.as_bytes();
    let (base, digits) = if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if s0.len() >= 3 => (2, &s0[2..]),
            Some(b'o') if s0.len() >= 3 => (8, &s0[2..]),
            Some(b'x') if s0.len() >= 3 => (16, &s0[2..]),
            _ => (8, &s0[1..]),
        }
    } else {
        (10, s0)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for c in digits.chars() {
        if c == '_' {
            underscores = true;
            continue;
        }
        let d = c.to_digit(36).ok_or(NumError::Syntax)?;
        if d >= base {
            return Err(NumError::Syntax);
        }
        n = n
            .checked_mul(u64::from(base))
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(NumError::Range)?;
    }
    if underscores && !underscore_ok(s0) {
        return Err(NumError::Syntax);
    }
    Ok(n)
}

/// `strconv.ParseInt(s, 0, 64)`.
fn parse_int(s: &str) -> Result<i64, NumError> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(body)?;
    if negative {
        if u > 1 << 63 {
            return Err(NumError::Range);
        }
        Ok((u as i64).wrapping_neg())
    } else {
        i64::try_from(u).map_err(|_| NumError::Range)
    }
}

/// `strconv.ParseFloat(s, 64)` for the forms Go's number syntax has (decimal, and hexadecimal
/// with a mandatory `p` exponent; `_` between digits). Overflow is a range error; underflow
/// gives zero.
fn parse_float(s: &str) -> Result<f64, NumError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let hex = bytes.len() >= i + 2 && bytes[i] == b'0' && bytes[i + 1].eq_ignore_ascii_case(&b'x');
    if hex {
        i += 2;
    }
    let is_digit = |c: u8| {
        if hex {
            c.is_ascii_hexdigit()
        } else {
            c.is_ascii_digit()
        }
    };
    let mut underscores = false;
    let mut mantissa = String::new();
    let mut saw_digits = false;
    let mut saw_dot = false;
    let mut dot_at = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'_' {
            underscores = true;
        } else if c == b'.' && !saw_dot {
            saw_dot = true;
            dot_at = mantissa.len();
        } else if is_digit(c) {
            saw_digits = true;
            mantissa.push(c as char);
        } else {
            break;
        }
        i += 1;
    }
    if !saw_digits {
        return Err(NumError::Syntax);
    }
    let exp_char = if hex { b'p' } else { b'e' };
    let mut exponent: i64 = 0;
    if i < bytes.len() && bytes[i].to_ascii_lowercase() == exp_char {
        i += 1;
        let mut exp_negative = false;
        if i < bytes.len() && matches!(bytes[i], b'+' | b'-') {
            exp_negative = bytes[i] == b'-';
            i += 1;
        }
        if i >= bytes.len() || !bytes[i].is_ascii_digit() {
            return Err(NumError::Syntax);
        }
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
            if bytes[i] == b'_' {
                underscores = true;
            } else if exponent < 100_000 {
                exponent = exponent * 10 + i64::from(bytes[i] - b'0');
            }
            i += 1;
        }
        if exp_negative {
            exponent = -exponent;
        }
    } else if hex {
        return Err(NumError::Syntax);
    }
    if i != bytes.len() || (underscores && !underscore_ok(s)) {
        return Err(NumError::Syntax);
    }
    let magnitude = if hex {
        let point = if saw_dot { dot_at } else { mantissa.len() };
        hex_float(&mantissa, exponent - 4 * (mantissa.len() - point) as i64)
    } else {
        let point = if saw_dot { dot_at } else { mantissa.len() };
        let (whole, fraction) = mantissa.split_at(point);
        let text = format!(
            "{}.{}e{exponent}",
            if whole.is_empty() { "0" } else { whole },
            if fraction.is_empty() { "0" } else { fraction }
        );
        text.parse::<f64>().unwrap_or(f64::INFINITY)
    };
    if magnitude.is_infinite() {
        return Err(NumError::Range);
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// `strconv.ParseFloat(s, 64)` in full: Go's number syntax plus `inf`/`infinity` (signed or
/// not, any case) and an unsigned `nan`. `None` on any error (overflow included).
pub fn go_parse_float(s: &str) -> Option<f64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if s.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    parse_float(s).ok()
}

/// `digits` (hex) × 2^`exp2`, rounded to nearest even as Go's `atofHex` does.
fn hex_float(digits: &str, exp2: i64) -> f64 {
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return 0.0;
    }
    // Keep 60 significant bits and a sticky bit for the rest.
    let mut mantissa: u64 = 0;
    let mut exp2 = exp2;
    let mut sticky = false;
    for (n, c) in digits.chars().enumerate() {
        let d = u64::from(c.to_digit(16).unwrap_or(0));
        if n < 15 {
            mantissa = mantissa << 4 | d;
        } else {
            exp2 += 4;
            sticky |= d != 0;
        }
    }
    // Normalize so the top bit is bit 63 of a 64-bit frame, then round to 53 bits (fewer for
    // subnormals).
    let shift = mantissa.leading_zeros() as i64;
    mantissa <<= shift;
    exp2 -= shift;
    // value = mantissa × 2^exp2 with mantissa in [2^63, 2^64); its unbiased exponent:
    let top = exp2 + 63;
    if top > 1023 {
        return f64::INFINITY;
    }
    let keep: i64 = if top >= -1022 { 53 } else { 53 - (-1022 - top) };
    if keep <= 0 {
        // Below half the smallest subnormal (or exactly at it, rounding to even zero).
        if keep == 0 && (mantissa > 1 << 63 || sticky) {
            return f64::from_bits(1);
        }
        return 0.0;
    }
    let drop = 64 - keep as u32;
    let kept = mantissa >> drop;
    let rest = mantissa & ((1u64 << drop) - 1);
    let half = 1u64 << (drop - 1);
    let round_up = rest > half || (rest == half && (sticky || kept & 1 == 1));
    let mut kept = kept + u64::from(round_up);
    let mut exp = exp2 + i64::from(drop);
    if kept == 1 << keep {
        kept >>= 1;
        exp += 1;
    }
    // kept < 2^53: exact in f64; scale by 2^exp in two steps to stay finite.
    let value = kept as f64;
    let half_exp = exp / 2;
    let scaled = value * 2f64.powi(half_exp as i32) * 2f64.powi((exp - half_exp) as i32);
    if scaled.is_infinite() {
        return f64::INFINITY;
    }
    scaled
}

/// `strconv.UnquoteChar(text[1:], '\'')` with the tail that must be the closing quote.
fn char_constant(text: &str) -> Result<u32, String> {
    let inner = &text[1..];
    let (value, tail) = unquote_char(inner).ok_or_else(|| "invalid syntax".to_string())?;
    if tail != "'" {
        return Err(format!("malformed character constant: {text}"));
    }
    Ok(value)
}

/// One character of a single-quoted Go literal and the text after it; `None` is ErrSyntax.
fn unquote_char(s: &str) -> Option<(u32, &str)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    if c == '\'' {
        return None;
    }
    if c != '\\' {
        return Some((c as u32, chars.as_str()));
    }
    let escape = chars.next()?;
    let rest = chars.as_str();
    let simple = match escape {
        'a' => Some(7),
        'b' => Some(8),
        'f' => Some(12),
        'n' => Some(10),
        'r' => Some(13),
        't' => Some(9),
        'v' => Some(11),
        '\\' => Some(92),
        '\'' => Some(39),
        _ => None,
    };
    if let Some(v) = simple {
        return Some((v, rest));
    }
    match escape {
        'x' | 'u' | 'U' => {
            let len = match escape {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let hex = rest.get(..len)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let v = u32::from_str_radix(hex, 16).ok()?;
            if escape != 'x' && char::from_u32(v).is_none() {
                return None;
            }
            Some((v, &rest[len..]))
        }
        '0'..='7' => {
            let digits = format!("{escape}{}", rest.get(..2)?);
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let v = u32::from_str_radix(&digits, 8).ok()?;
            (v <= 255).then_some((v, &rest[2..]))
        }
        _ => None,
    }
}

const COMPLEX_ERROR: &str = "syntax error scanning complex number";

/// `fmt.Sscan(text, &complex128)` on the lexer's `a+bi` token.
fn scan_complex(text: &str) -> Result<(f64, f64), String> {
    let mut scanner = Scanner { s: text, pos: 0 };
    let parens = scanner.accept("(");
    let real = scanner.float_token();
    let sign_at = scanner.pos;
    if !scanner.accept("+-") {
        return Err(COMPLEX_ERROR.to_string());
    }
    let imag_start = sign_at;
    scanner.float_token();
    let imag = text[imag_start..scanner.pos].to_string();
    if !scanner.accept("i") || (parens && !scanner.accept(")")) {
        return Err(COMPLEX_ERROR.to_string());
    }
    Ok((convert_float(&real)?, convert_float(&imag)?))
}

struct Scanner<'a> {
    s: &'a str,
    pos: usize,
}

impl Scanner<'_> {
    fn accept(&mut self, set: &str) -> bool {
        match self.s[self.pos..].chars().next() {
            Some(c) if set.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    /// fmt's `floatToken`: what a float may look like (NaN, Inf, hex, exponents).
    fn float_token(&mut self) -> String {
        let start = self.pos;
        if self.accept("nN") && self.accept("aA") && self.accept("nN") {
            return self.s[start..self.pos].to_string();
        }
        self.accept("+-");
        if self.accept("iI") && self.accept("nN") && self.accept("fF") {
            return self.s[start..self.pos].to_string();
        }
        let mut digits = "0123456789_";
        let mut exp = "eEpP";
        if self.accept("0") && self.accept("xX") {
            digits = "0123456789aAbBcCdDeEfF_";
            exp = "pP";
        }
        while self.accept(digits) {}
        if self.accept(".") {
            while self.accept(digits) {}
        }
        if self.accept(exp) {
            self.accept("+-");
            while self.accept("0123456789_") {}
        }
        self.s[start..self.pos].to_string()
    }
}

/// fmt's `convertFloat`: a `p` exponent scales a mantissa that `ParseFloat` reads alone.
fn convert_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let special = |t: &str| -> Option<f64> {
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "nan" => Some(f64::NAN),
            "inf" | "+inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        }
    };
    // A hex mantissa's `p` is ParseFloat's own; a decimal mantissa with `p` is fmt's extension.
    if let Some(p) = s.find('p').filter(|_| !s.contains(['x', 'X'])) {
        let mantissa = special(&s[..p])
            .or_else(|| parse_float(&s[..p]).ok())
            .ok_or_else(syntax)?;
        let exp: i32 = s[p + 1..].parse().map_err(|_| {
            format!(
                "strconv.Atoi: parsing {}: invalid syntax",
                quote(&s[p + 1..])
            )
        })?;
        return Ok(mantissa * 2f64.powi(exp));
    }
    if let Some(f) = special(s) {
        return Ok(f);
    }
    parse_float(s).map_err(|e| match e {
        NumError::Syntax => syntax(),
        NumError::Range => format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote(s)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> String {
        match parse_constant(text, NumberKind::Number) {
            Ok(Ok(v)) => format!("{} {}", super::super::print::format_v(&v), type_of(&v)),
            Ok(Err(e)) => format!("exec: {e}"),
            Err(e) => format!("parse: {e}"),
        }
    }

    fn type_of(v: &Value) -> &str {
        match v {
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Object(o) => o.type_name(),
            _ => "?",
        }
    }

    /// Each expectation is what helm 3.17.3 printed for `{{ TEXT }}` and `{{ typeOf TEXT }}`.
    #[test]
    fn numbers_read_as_go_reads_them() {
        for (text, want) in [
            ("0x1p60", "1.152921504606847e+18 float64"),
            ("0x1p-2", "0.25 float64"),
            ("0x1.8p1", "3 float64"),
            ("0X1P+4", "16 float64"),
            ("0x_1F", "31 int"),
            ("0x1E", "30 int"),
            ("0o17", "15 int"),
            ("0755", "493 int"),
            ("0_755", "493 int"),
            ("0B1_0", "2 int"),
            ("1_000_000", "1000000 int"),
            ("1_0.2_5e1_0", "1.025e+11 float64"),
            ("1e3", "1000 float64"),
            (".5", "0.5 float64"),
            ("1.", "1 float64"),
            ("09.5", "9.5 float64"),
            ("-0x1p4", "-16 float64"),
            ("-0", "0 int"),
            ("+5", "5 int"),
            ("-9223372036854775808", "-9223372036854775808 int"),
            ("0x7FFFFFFFFFFFFFFF", "9223372036854775807 int"),
            ("1e308", "1e+308 float64"),
            ("1e-400", "0 float64"),
            ("1i", "(0+1i) complex128"),
            ("010i", "(0+10i) complex128"),
            ("0x1p60i", "(0+1.152921504606847e+18i) complex128"),
            (
                "9223372036854775808",
                "exec: 9223372036854775808 overflows int",
            ),
            (
                "0xFFFFFFFFFFFFFFFF",
                "exec: 0xFFFFFFFFFFFFFFFF overflows int",
            ),
            ("08", "parse: integer overflow: \"08\""),
            ("089", "parse: integer overflow: \"089\""),
            (
                "18446744073709551616",
                "parse: integer overflow: \"18446744073709551616\"",
            ),
            (
                "-9223372036854775809",
                "parse: integer overflow: \"-9223372036854775809\"",
            ),
            ("1__0", "parse: illegal number syntax: \"1__0\""),
            ("1_", "parse: illegal number syntax: \"1_\""),
            ("1_e2", "parse: illegal number syntax: \"1_e2\""),
            ("0_", "parse: illegal number syntax: \"0_\""),
            ("0x1.8", "parse: illegal number syntax: \"0x1.8\""),
            ("0x10i", "parse: illegal number syntax: \"0x10i\""),
            ("0o7i", "parse: illegal number syntax: \"0o7i\""),
            ("1e400", "parse: illegal number syntax: \"1e400\""),
        ] {
            assert_eq!(value(text), want, "{text}");
        }
    }

    #[test]
    fn hex_floats_round_to_nearest_even() {
        assert_eq!(parse_float("0x1p-1074"), Ok(f64::from_bits(1)));
        assert_eq!(parse_float("0x1p-1075"), Ok(0.0));
        assert_eq!(parse_float("0x1.8p-1075"), Ok(f64::from_bits(1)));
        assert_eq!(parse_float("0x1.fffffffffffff8p0"), Ok(2.0));
        assert_eq!(parse_float("0x1.fffffffffffffp1023"), Ok(f64::MAX));
        assert_eq!(parse_float("0x1p1024"), Err(NumError::Range));
        // Python's float.fromhex on the same text.
        for (text, want) in [
            ("0x123456789abcdef0123p0", 5.373003642731685e21),
            ("0x1.fffffffffffff7ffp0", 1.9999999999999998),
            ("0x1.00000000000008p0", 1.0),
            ("0x1.00000000000018p0", 1.0000000000000004),
            ("0x1.000000000000080001p0", 1.0000000000000002),
            ("0x0.0000000000001p-1022", 5e-324),
            ("0x3p-1076", 5e-324),
        ] {
            assert_eq!(parse_float(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn complex_and_char_constants() {
        let complex = |t: &str| match parse_constant(t, NumberKind::Complex) {
            Ok(Ok(v)) => super::super::print::format_v(&v),
            Ok(Err(e)) | Err(e) => e,
        };
        assert_eq!(complex("1+2i"), "(1+2i)");
        assert_eq!(complex("1.5-2i"), "(1.5-2i)");
        assert_eq!(complex("3+0i"), "(3+0i)");
        assert_eq!(complex("1-i"), COMPLEX_ERROR);
        assert_eq!(complex("0x1p4+2i"), "(16+2i)");
        assert_eq!(complex("1+0x1p4i"), "(1+16i)");
        let char = |t: &str| match parse_constant(t, NumberKind::Char) {
            Ok(Ok(Value::Int(i))) => i.to_string(),
            Ok(_) => "?".to_string(),
            Err(e) => e,
        };
        for (text, want) in [
            ("'a'", "97"),
            ("'\\n'", "10"),
            ("'\\x41'", "65"),
            ("'\\xff'", "255"),
            ("'\\u00e9'", "233"),
            ("'\\U0001F600'", "128512"),
            ("'\\''", "39"),
            ("'\"'", "34"),
            ("'\\101'", "65"),
            ("'é'", "233"),
            ("''", "invalid syntax"),
            ("'\\q'", "invalid syntax"),
            ("'\\\"'", "invalid syntax"),
            ("'\\400'", "invalid syntax"),
            ("'\\ud800'", "invalid syntax"),
            ("'ab'", "malformed character constant: 'ab'"),
        ] {
            assert_eq!(char(text), want, "{text}");
        }
    }
}
