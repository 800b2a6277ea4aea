//! Sprig's string functions (strings.go, goutils, xstrings) and the path/url helpers.

use super::args;
use super::conv::strval;
use super::crypto::random_below;
use super::gofmt::{format_value, go_quote};
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("hello", hello),
        ("abbrev", abbrev),
        ("abbrevboth", abbrevboth),
        ("trunc", trunc),
        ("trim", trim),
        ("upper", upper),
        ("lower", lower),
        ("title", title),
        ("untitle", untitle),
        ("substr", substr),
        ("repeat", repeat),
        ("trimall", trim_all),
        ("trimAll", trim_all),
        ("trimSuffix", trim_suffix),
        ("trimPrefix", trim_prefix),
        ("nospace", nospace),
        ("initials", initials),
        ("randAlphaNum", rand_alpha_num),
        ("randAlpha", rand_alpha),
        ("randAscii", rand_ascii),
        ("randNumeric", rand_numeric),
        ("swapcase", swapcase),
        ("shuffle", shuffle),
        ("snakecase", snakecase),
        ("camelcase", camelcase),
        ("kebabcase", kebabcase),
        ("wrap", wrap),
        ("wrapWith", wrap_with),
        ("contains", contains),
        ("hasPrefix", has_prefix),
        ("hasSuffix", has_suffix),
        ("quote", quote),
        ("squote", squote),
        ("cat", cat),
        ("indent", indent),
        ("nindent", nindent),
        ("replace", replace),
        ("plural", plural),
        ("split", split),
        ("splitList", split_list),
        ("splitn", splitn),
        ("base", path_base),
        ("dir", path_dir),
        ("clean", path_clean),
        ("ext", path_ext),
        ("isAbs", path_is_abs),
        ("osBase", path_base),
        ("osClean", path_clean),
        ("osDir", path_dir),
        ("osExt", path_ext),
        ("osIsAbs", path_is_abs),
    ]
}

/// Go's `unicode.ToUpper` (simple one-to-one case mapping).
pub fn go_upper(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Go's `unicode.ToLower` (simple one-to-one case mapping).
pub fn go_lower(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        (Some(l), Some(_)) if c == 'İ' => l,
        _ => c,
    }
}

/// Go's `unicode.IsSpace`.
pub fn go_is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Bytes sliced as Go slices strings, shown as text (a cut inside a UTF-8 sequence becomes U+FFFD).
fn byte_slice(s: &str, start: usize, end: usize) -> String {
    String::from_utf8_lossy(&s.as_bytes()[start..end]).into_owned()
}

fn hello(_: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from("Hello!"))
}

/// goutils' `AbbreviateFull` (byte offsets, as Go's).
fn abbreviate_full(s: &str, offset: i64, max_width: i64) -> String {
    let len = s.len() as i64;
    if s.is_empty() || max_width < 4 {
        return String::new();
    }
    if len <= max_width {
        return s.to_string();
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    if offset <= 4 {
        return format!("{}...", byte_slice(s, 0, (max_width - 3) as usize));
    }
    if max_width < 7 {
        return String::new();
    }
    if offset + max_width - 3 < len {
        let tail = byte_slice(s, offset.max(0) as usize, s.len());
        return format!("...{}", abbreviate_full(&tail, 0, max_width - 3));
    }
    format!(
        "...{}",
        byte_slice(s, (len - (max_width - 3)) as usize, s.len())
    )
}

fn abbrev(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("abbrev", args, 2)?;
    let width = args::int(args, 0)?;
    let s = args::string(args, 1)?;
    if width < 4 {
        return Ok(Value::from(s));
    }
    Ok(Value::String(abbreviate_full(s, 0, width)))
}

fn abbrevboth(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("abbrevboth", args, 3)?;
    let left = args::int(args, 0)?;
    let right = args::int(args, 1)?;
    let s = args::string(args, 2)?;
    if right < 4 || left > 0 && right < 7 {
        return Ok(Value::from(s));
    }
    Ok(Value::String(abbreviate_full(s, left, right)))
}

fn trunc(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("trunc", args, 2)?;
    let count = args::int(args, 0)?;
    let s = args::string(args, 1)?;
    let len = s.len() as i64;
    if count < 0 && len + count > 0 {
        return Ok(Value::String(byte_slice(
            s,
            (len + count) as usize,
            s.len(),
        )));
    }
    if count >= 0 && len > count {
        return Ok(Value::String(byte_slice(s, 0, count as usize)));
    }
    Ok(Value::from(s))
}

fn one_string<'a>(name: &str, args: &'a [Value]) -> Result<&'a str, FuncError> {
    args::exact(name, args, 1)?;
    args::string(args, 0)
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(one_string("trim", args)?.trim()))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        one_string("upper", args)?.chars().map(go_upper).collect(),
    ))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        one_string("lower", args)?.chars().map(go_lower).collect(),
    ))
}

/// Go's `strings.Title` word separators.
fn is_title_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphabetic() || c.is_numeric() {
        return false;
    }
    go_is_space(c)
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_string("title", args)?;
    let mut prev = ' ';
    let out = s
        .chars()
        .map(|c| {
            let mapped = if is_title_separator(prev) {
                go_upper(c)
            } else {
                c
            };
            prev = c;
            mapped
        })
        .collect();
    Ok(Value::String(out))
}

fn untitle(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_string("untitle", args)?;
    let mut next = true;
    let out = s
        .chars()
        .map(|c| {
            if go_is_space(c) {
                next = true;
                c
            } else if next {
                next = false;
                go_lower(c)
            } else {
                c
            }
        })
        .collect();
    Ok(Value::String(out))
}

fn substr(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("substr", args, 3)?;
    let start = args::int(args, 0)?;
    let end = args::int(args, 1)?;
    let s = args::string(args, 2)?;
    let len = s.len() as i64;
    let out_of_range =
        |detail: String| Err(format!("runtime error: slice bounds out of range {detail}"));
    if start < 0 {
        if end < 0 {
            return out_of_range(format!("[:{end}]"));
        }
        if end > len {
            return out_of_range(format!("[:{end}] with length {len}"));
        }
        return Ok(Value::String(byte_slice(s, 0, end as usize)));
    }
    if end < 0 || end > len {
        if start > len {
            return out_of_range(format!("[{start}:{len}]"));
        }
        return Ok(Value::String(byte_slice(s, start as usize, s.len())));
    }
    if start > end {
        return out_of_range(format!("[{start}:{end}]"));
    }
    Ok(Value::String(byte_slice(s, start as usize, end as usize)))
}

fn repeat(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("repeat", args, 2)?;
    let count = args::int(args, 0)?;
    let s = args::string(args, 1)?;
    if count < 0 {
        return Err("strings: negative Repeat count".to_string());
    }
    let total = (count as u128) * (s.len() as u128);
    if total > args::MAX_OUTPUT as u128 {
        return Err("strings: Repeat output length overflow".to_string());
    }
    Ok(Value::String(s.repeat(count as usize)))
}

fn trim_all(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("trimAll", args, 2)?;
    let cutset = args::string(args, 0)?;
    let s = args::string(args, 1)?;
    Ok(Value::from(s.trim_matches(|c| cutset.contains(c))))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("trimSuffix", args, 2)?;
    let suffix = args::string(args, 0)?;
    let s = args::string(args, 1)?;
    Ok(Value::from(s.strip_suffix(suffix).unwrap_or(s)))
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("trimPrefix", args, 2)?;
    let prefix = args::string(args, 0)?;
    let s = args::string(args, 1)?;
    Ok(Value::from(s.strip_prefix(prefix).unwrap_or(s)))
}

/// goutils reads strings byte by byte as runes (Latin-1) in DeleteWhiteSpace and Initials.
fn latin1_is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

fn nospace(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_string("nospace", args)?;
    if !s.bytes().any(latin1_is_space) {
        return Ok(Value::from(s));
    }
    Ok(Value::String(
        s.bytes()
            .filter(|b| !latin1_is_space(*b))
            .map(char::from)
            .collect(),
    ))
}

fn initials(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_string("initials", args)?;
    let mut out = String::new();
    let mut last_was_gap = true;
    for b in s.bytes() {
        if latin1_is_space(b) {
            last_was_gap = true;
        } else if last_was_gap {
            out.push(char::from(b));
            last_was_gap = false;
        }
    }
    Ok(Value::String(out))
}

fn random_from(name: &str, args: &[Value], alphabet: &[u8]) -> Result<Value, FuncError> {
    args::exact(name, args, 1)?;
    let count = args::int(args, 0)?;
    if count < 0 {
        return Ok(Value::from(""));
    }
    let count = args::alloc_len(count)?;
    let mut out = String::with_capacity(count);
    for _ in 0..count {
        let index = random_below(alphabet.len() as u64)? as usize;
        out.push(char::from(alphabet[index]));
    }
    Ok(Value::String(out))
}

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";

fn rand_alpha_num(args: &[Value]) -> Result<Value, FuncError> {
    random_from(
        "randAlphaNum",
        args,
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    )
}

fn rand_alpha(args: &[Value]) -> Result<Value, FuncError> {
    random_from("randAlpha", args, LETTERS)
}

fn rand_numeric(args: &[Value]) -> Result<Value, FuncError> {
    random_from("randNumeric", args, DIGITS)
}

fn rand_ascii(args: &[Value]) -> Result<Value, FuncError> {
    let printable: Vec<u8> = (32u8..127).collect();
    random_from("randAscii", args, &printable)
}

fn swapcase(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_string("swapcase", args)?;
    let mut whitespace = true;
    let out = s
        .chars()
        .map(|c| {
            // Go's unicode.IsTitle: letters like 'ǅ' that are neither upper nor lower case.
            let title = !c.is_uppercase() && !c.is_lowercase() && go_lower(c) != c;
            if c.is_uppercase() || title {
                whitespace = false;
                go_lower(c)
            } else if c.is_lowercase() {
                if whitespace {
                    whitespace = false;
                }
                go_upper(c)
            } else {
                whitespace = go_is_space(c);
                c
            }
        })
        .collect();
    Ok(Value::String(out))
}

fn shuffle(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_string("shuffle", args)?;
    let mut chars: Vec<char> = s.chars().collect();
    for i in (1..chars.len()).rev() {
        let j = random_below(i as u64 + 1)? as usize;
        chars.swap(i, j);
    }
    Ok(Value::String(chars.into_iter().collect()))
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || go_is_space(c)
}

/// xstrings' `isAlphabet`: letters other than CJK ideographs.
fn is_alphabet(c: char) -> bool {
    if !c.is_alphabetic() {
        return false;
    }
    let code = c as u32;
    !((0x4e00..=0x9fcc).contains(&code)
        || (0x3400..=0x4d85).contains(&code)
        || (0x20000..=0x2b81d).contains(&code))
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~')
        || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WordType {
    Invalid,
    Number,
    UpperCase,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// xstrings' `nextWord`: the next word of `s`, its type and the rest.
fn next_word(s: &str) -> (WordType, &str, &str) {
    let mut chars = s.char_indices().peekable();
    let Some((_, first)) = chars.next() else {
        return (WordType::Invalid, "", "");
    };
    let mut end = first.len_utf8();
    let take_while = |end: &mut usize, pred: &dyn Fn(char) -> bool| {
        for c in s[*end..].chars() {
            if !pred(c) {
                break;
            }
            *end += c.len_utf8();
        }
    };
    let kind = if is_connector(first) {
        take_while(&mut end, &is_connector);
        WordType::Connector
    } else if is_punct(first) {
        take_while(&mut end, &is_punct);
        WordType::Punct
    } else if first.is_uppercase() {
        let rest = &s[end..];
        if let Some(second) = rest.chars().next() {
            if second.is_uppercase() {
                let mut prev_size = second.len_utf8();
                end += prev_size;
                let mut stopped_on = None;
                for c in s[end..].chars() {
                    if !c.is_uppercase() {
                        stopped_on = Some(c);
                        break;
                    }
                    prev_size = c.len_utf8();
                    end += prev_size;
                }
                if let Some(c) = stopped_on
                    && is_alphabet(c)
                {
                    end -= prev_size;
                }
            } else if is_alphabet(second) {
                end += second.len_utf8();
                take_while(&mut end, &|c| is_alphabet(c) && !c.is_uppercase());
            }
        }
        WordType::UpperCase
    } else if is_alphabet(first) {
        take_while(&mut end, &|c| is_alphabet(c) && !c.is_uppercase());
        WordType::Alphabet
    } else if first.is_numeric() {
        take_while(&mut end, &|c: char| c.is_numeric());
        WordType::Number
    } else {
        take_while(&mut end, &|c| {
            !(is_connector(c) || is_alphabet(c) || c.is_numeric() || is_punct(c))
        });
        WordType::Other
    };
    (kind, &s[..end], &s[end..])
}

fn lower_word(out: &mut String, kind: WordType, word: &str, connector: char) {
    if kind != WordType::UpperCase && kind != WordType::Connector {
        out.push_str(word);
        return;
    }
    for c in word.chars() {
        if is_connector(c) {
            out.push(connector);
        } else if c.is_uppercase() {
            out.push(go_lower(c));
        } else {
            out.push(c);
        }
    }
}

/// xstrings' `camelCaseToLowerCase` (snakecase, kebabcase).
fn camel_to_lower(s: &str, connector: char) -> String {
    use WordType::*;
    let mut out = String::new();
    if s.is_empty() {
        return out;
    }
    let (mut wt, mut word, mut remaining) = next_word(s);
    while !remaining.is_empty() {
        if wt != Connector {
            lower_word(&mut out, wt, word, connector);
        }
        let prev = wt;
        let last = word;
        (wt, word, remaining) = next_word(remaining);
        match prev {
            Number => {
                while wt == Alphabet || wt == Number {
                    lower_word(&mut out, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if wt != Invalid && wt != Punct && wt != Connector {
                    out.push(connector);
                }
            }
            Connector => lower_word(&mut out, prev, last, connector),
            Punct => {}
            _ => {
                if wt != Number {
                    if wt != Connector && wt != Punct {
                        out.push(connector);
                    }
                    continue;
                }
                if remaining.is_empty() {
                    continue;
                }
                let last = word;
                (wt, word, remaining) = next_word(remaining);
                if wt != Alphabet {
                    lower_word(&mut out, Number, last, connector);
                    if wt != Connector && wt != Punct {
                        out.push(connector);
                    }
                    continue;
                }
                out.push(connector);
                lower_word(&mut out, Number, last, connector);
                while wt == Alphabet || wt == Number {
                    lower_word(&mut out, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if wt != Invalid && wt != Connector && wt != Punct {
                    out.push(connector);
                }
            }
        }
    }
    lower_word(&mut out, wt, word, connector);
    out
}

fn snakecase(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(camel_to_lower(
        one_string("snakecase", args)?,
        '_',
    )))
}

fn kebabcase(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(camel_to_lower(
        one_string("kebabcase", args)?,
        '-',
    )))
}

/// xstrings 1.5's `ToPascalCase`: connectors removed, the first letter and each letter after a
/// connector upper-cased, and the rest of a leading upper-case run lower-cased.
fn camelcase(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_string("camelcase", args)?;
    let mut out = String::new();
    let mut chars = s.chars();
    let mut first_rune_upper = false;
    let mut r0 = None;
    // Leading connectors stay.
    for c in chars.by_ref() {
        if !is_connector(c) {
            first_rune_upper = c.is_uppercase();
            r0 = Some(go_upper(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else {
        // Go writes the last connector once more when the string has nothing else.
        if let Some(last) = s.chars().last() {
            out.push(last);
        }
        return Ok(Value::String(out));
    };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            first_rune_upper = r0.is_uppercase();
            r0 = go_upper(r0);
        } else {
            if first_rune_upper {
                if r0.is_uppercase() {
                    r0 = go_lower(r0);
                } else {
                    first_rune_upper = false;
                }
            }
            out.push(r1);
        }
    }
    out.push(r0);
    Ok(Value::String(out))
}

/// goutils' `WrapCustom` (byte offsets, as Go's).
fn wrap_custom(s: &str, wrap_length: i64, newline: &str, wrap_long_words: bool) -> String {
    if s.is_empty() {
        return String::new();
    }
    let newline = if newline.is_empty() { "\n" } else { newline };
    let wrap_length = wrap_length.max(1) as usize;
    let bytes = s.as_bytes();
    let len = bytes.len();
    let mut offset = 0usize;
    let mut out: Vec<u8> = Vec::new();
    while len - offset > wrap_length {
        if bytes[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = wrap_length + offset + 1;
        let window = &bytes[offset..end];
        if let Some(space) = window.iter().rposition(|b| *b == b' ') {
            let at = offset + space;
            out.extend_from_slice(&bytes[offset..at]);
            out.extend_from_slice(newline.as_bytes());
            offset = at + 1;
        } else if wrap_long_words {
            let end = wrap_length + offset;
            out.extend_from_slice(&bytes[offset..end]);
            out.extend_from_slice(newline.as_bytes());
            offset += wrap_length;
        } else {
            let end = wrap_length + offset;
            match bytes[end..].iter().position(|b| *b == b' ') {
                None => {
                    out.extend_from_slice(&bytes[offset..]);
                    offset = len;
                }
                Some(index) => {
                    let at = index + end;
                    out.extend_from_slice(&bytes[offset..at]);
                    out.extend_from_slice(newline.as_bytes());
                    offset = at + 1;
                }
            }
        }
    }
    out.extend_from_slice(&bytes[offset..]);
    String::from_utf8_lossy(&out).into_owned()
}

fn wrap(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("wrap", args, 2)?;
    let length = args::int(args, 0)?;
    let s = args::string(args, 1)?;
    Ok(Value::String(wrap_custom(s, length, "", false)))
}

fn wrap_with(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("wrapWith", args, 3)?;
    let length = args::int(args, 0)?;
    let sep = args::string(args, 1)?;
    let s = args::string(args, 2)?;
    Ok(Value::String(wrap_custom(s, length, sep, true)))
}

fn two_strings<'a>(name: &str, args: &'a [Value]) -> Result<(&'a str, &'a str), FuncError> {
    args::exact(name, args, 2)?;
    Ok((args::string(args, 0)?, args::string(args, 1)?))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    let (needle, s) = two_strings("contains", args)?;
    Ok(Value::Bool(s.contains(needle)))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    let (prefix, s) = two_strings("hasPrefix", args)?;
    Ok(Value::Bool(s.starts_with(prefix)))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let (suffix, s) = two_strings("hasSuffix", args)?;
    Ok(Value::Bool(s.ends_with(suffix)))
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|v| !v.is_nil())
        .map(|v| go_quote(&strval(v)))
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

fn squote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|v| !v.is_nil())
        .map(|v| format!("'{}'", format_value(v)))
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

fn cat(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|v| !v.is_nil())
        .map(format_value)
        .collect();
    Ok(Value::String(parts.join(" ")))
}

fn indent_text(spaces: i64, s: &str) -> Result<String, FuncError> {
    let lines = s.matches('\n').count() as u128 + 1;
    if (spaces.max(0) as u128) * lines + s.len() as u128 > args::MAX_OUTPUT as u128 {
        return Err("strings: Repeat output length overflow".to_string());
    }
    let pad = " ".repeat(spaces.max(0) as usize);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("indent", args, 2)?;
    let spaces = args::int(args, 0)?;
    let s = args::string(args, 1)?;
    if spaces < 0 {
        return Err("strings: negative Repeat count".to_string());
    }
    Ok(Value::String(indent_text(spaces, s)?))
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("nindent", args, 2)?;
    let spaces = args::int(args, 0)?;
    let s = args::string(args, 1)?;
    if spaces < 0 {
        return Err("strings: negative Repeat count".to_string());
    }
    Ok(Value::String(format!("\n{}", indent_text(spaces, s)?)))
}

fn replace(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("replace", args, 3)?;
    let old = args::string(args, 0)?;
    let new = args::string(args, 1)?;
    let s = args::string(args, 2)?;
    Ok(Value::String(s.replace(old, new)))
}

fn plural(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("plural", args, 3)?;
    let one = args::string(args, 0)?;
    let many = args::string(args, 1)?;
    let count = args::int(args, 2)?;
    Ok(Value::from(if count == 1 { one } else { many }))
}

/// Go's `strings.SplitN` (`n < 0`: all parts; `n == 0`: none).
pub fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let limit = if n < 0 { usize::MAX } else { n as usize };
    if sep.is_empty() {
        let chars: Vec<String> = s.chars().map(String::from).collect();
        if chars.len() <= limit {
            return chars;
        }
        let mut out: Vec<String> = chars[..limit - 1].to_vec();
        let consumed: usize = out.iter().map(String::len).sum();
        out.push(s[consumed..].to_string());
        return out;
    }
    s.splitn(limit, sep).map(str::to_string).collect()
}

fn indexed_parts(parts: Vec<String>) -> Value {
    Value::map(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| (format!("_{i}"), Value::String(part))),
    )
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    let (sep, s) = two_strings("split", args)?;
    Ok(indexed_parts(go_split(s, sep, -1)))
}

fn split_list(args: &[Value]) -> Result<Value, FuncError> {
    let (sep, s) = two_strings("splitList", args)?;
    Ok(Value::list(
        go_split(s, sep, -1).into_iter().map(Value::String),
    ))
}

fn splitn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("splitn", args, 3)?;
    let sep = args::string(args, 0)?;
    let n = args::int(args, 1)?;
    let s = args::string(args, 2)?;
    Ok(indexed_parts(go_split(s, sep, n)))
}

/// Go's `path.Clean`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn path_base(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_string("base", args)?;
    if path.is_empty() {
        return Ok(Value::from("."));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(Value::from("/"));
    }
    Ok(Value::from(trimmed.rsplit('/').next().unwrap_or(trimmed)))
}

fn path_dir(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_string("dir", args)?;
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    Ok(Value::String(clean_path(dir)))
}

fn path_clean(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(clean_path(one_string("clean", args)?)))
}

fn path_ext(args: &[Value]) -> Result<Value, FuncError> {
    let path = one_string("ext", args)?;
    for (i, c) in path.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return Ok(Value::from(&path[i..]));
        }
    }
    Ok(Value::from(""))
}

fn path_is_abs(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(one_string("isAbs", args)?.starts_with('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: Func, args: &[Value]) -> String {
        match f(args) {
            Ok(Value::String(s)) => s,
            other => format!("{other:?}"),
        }
    }

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    #[test]
    fn string_functions_follow_sprig() {
        assert_eq!(call(trunc, &[Value::Int(3), s("hello")]), "hel");
        assert_eq!(call(trunc, &[Value::Int(-3), s("hello")]), "llo");
        assert_eq!(call(abbrev, &[Value::Int(5), s("hello world")]), "he...");
        assert_eq!(
            call(title, &[s("hello wORLD-foo_bar")]),
            "Hello WORLD-Foo_bar"
        );
        assert_eq!(call(untitle, &[s("Hello World")]), "hello world");
        assert_eq!(
            call(quote, &[s("a\"b"), Value::Nil, Value::Int(3)]),
            "\"a\\\"b\" \"3\""
        );
        assert_eq!(call(squote, &[s("a")]), "'a'");
        assert_eq!(call(cat, &[s("a"), Value::Nil, Value::Int(2)]), "a 2");
        assert_eq!(call(nindent, &[Value::Int(2), s("a\nb")]), "\n  a\n  b");
        assert_eq!(call(snakecase, &[s("FirstName")]), "first_name");
        assert_eq!(call(snakecase, &[s("HTTPServer")]), "http_server");
        assert_eq!(call(kebabcase, &[s("FirstName")]), "first-name");
        assert_eq!(call(camelcase, &[s("http_server")]), "HttpServer");
        assert_eq!(call(swapcase, &[s("Hello World")]), "hELLO wORLD");
        assert_eq!(call(initials, &[s("John Doe")]), "JD");
        assert_eq!(call(nospace, &[s(" a b ")]), "ab");
        assert_eq!(
            call(wrap, &[Value::Int(5), s("hello world foo")]),
            "hello\nworld\nfoo"
        );
        assert_eq!(
            call(substr, &[Value::Int(1), Value::Int(3), s("hello")]),
            "el"
        );
        assert_eq!(call(path_dir, &[s("a/b/c.yaml")]), "a/b");
        assert_eq!(call(path_base, &[s("a/b/c.yaml")]), "c.yaml");
        assert_eq!(call(path_ext, &[s("a/b/c.yaml")]), ".yaml");
        assert_eq!(call(path_clean, &[s("a/../b/./c/")]), "b/c");
        assert_eq!(go_split("a,b,c", ",", 2), vec!["a", "b,c"]);
        assert_eq!(go_split("abc", "", -1), vec!["a", "b", "c"]);
        assert!(substr(&[Value::Int(4), Value::Int(2), s("hello")]).is_err());
        assert!(trunc(&[Value::Float(3.0), s("x")]).is_err());
    }

    #[test]
    fn random_strings_use_their_alphabet() {
        let value = call(rand_alpha_num, &[Value::Int(32)]);
        assert_eq!(value.len(), 32);
        assert!(value.chars().all(|c| c.is_ascii_alphanumeric()));
        let digits = call(rand_numeric, &[Value::Int(8)]);
        assert!(digits.chars().all(|c| c.is_ascii_digit()));
    }
}
