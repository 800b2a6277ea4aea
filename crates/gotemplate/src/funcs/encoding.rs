//! Sprig's encodings and URL helpers: b64enc/b64dec, b32enc/b32dec, urlParse, urlJoin.

use base64::Engine as _;

use super::args;
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("b64enc", b64enc),
        ("b64dec", b64dec),
        ("b32enc", b32enc),
        ("b32dec", b32dec),
        ("urlParse", url_parse),
        ("urlJoin", url_join),
    ]
}

fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("b64enc", args, 1)?;
    let s = args::string(args, 0)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
    ))
}

/// Go's `base64.StdEncoding.DecodeString`: newlines ignored, padding required, and the
/// error names the first offending input byte.
pub fn go_base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let bytes: Vec<(usize, u8)> = s
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b != b'\n' && *b != b'\r')
        .collect();
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    let value_of = |b: u8| -> Option<u32> {
        match b {
            b'A'..=b'Z' => Some(u32::from(b - b'A')),
            b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let mut quantum = [0u32; 4];
        let mut count = 0;
        while count < 4 {
            let Some(&(pos, b)) = bytes.get(i) else {
                if count == 0 {
                    return Ok(out);
                }
                return Err(corrupt(
                    bytes
                        .get(i.saturating_sub(count))
                        .map(|x| x.0)
                        .unwrap_or(s.len()),
                ));
            };
            if b == b'=' {
                // Padding: only allowed as the 3rd/4th character of the last quantum.
                if count < 2 {
                    return Err(corrupt(pos));
                }
                if count == 2 {
                    match bytes.get(i + 1) {
                        Some(&(_, b'=')) => {}
                        Some(&(p, _)) => return Err(corrupt(p)),
                        None => return Err(corrupt(s.len())),
                    }
                    if let Some(&(p, _)) = bytes.get(i + 2) {
                        return Err(corrupt(p));
                    }
                } else if let Some(&(p, _)) = bytes.get(i + 1) {
                    return Err(corrupt(p));
                }
                let n = (quantum[0] << 18) | (quantum[1] << 12) | (quantum[2] << 6);
                out.push((n >> 16) as u8);
                if count == 3 {
                    out.push((n >> 8) as u8);
                }
                return Ok(out);
            }
            let Some(v) = value_of(b) else {
                return Err(corrupt(pos));
            };
            quantum[count] = v;
            count += 1;
            i += 1;
        }
        let n = (quantum[0] << 18) | (quantum[1] << 12) | (quantum[2] << 6) | quantum[3];
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    Ok(out)
}

fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("b64dec", args, 1)?;
    let s = args::string(args, 0)?;
    Ok(Value::String(match go_base64_decode(s) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => error,
    }))
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b32enc(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("b32enc", args, 1)?;
    let input = args::string(args, 0)?.as_bytes();
    let mut out = String::new();
    for chunk in input.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                let index = ((bits >> (35 - i * 5)) & 31) as usize;
                out.push(char::from(BASE32[index]));
            } else {
                out.push('=');
            }
        }
    }
    Ok(Value::String(out))
}

/// Go's `base32.StdEncoding.DecodeString` (newlines dropped first), with its error offsets.
fn go_base32_decode(s: &str) -> Result<Vec<u8>, String> {
    let src: Vec<u8> = s.bytes().filter(|b| *b != b'\n' && *b != b'\r').collect();
    let olen = src.len();
    let corrupt = |at: usize| format!("illegal base32 data at input byte {at}");
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < olen {
        let mut dbuf = [0u8; 8];
        let mut dlen = 8usize;
        let mut end = false;
        let mut j = 0usize;
        while j < 8 {
            if pos >= olen {
                // The end came before the quantum (and its padding) was complete.
                return Err(corrupt(olen - j));
            }
            let c = src[pos];
            pos += 1;
            let remaining = olen - pos;
            if c == b'=' && j >= 2 && remaining < 8 {
                if remaining + j < 7 {
                    return Err(corrupt(olen));
                }
                for k in 0..7 - j {
                    if remaining > k && src[pos + k] != b'=' {
                        return Err(corrupt(pos + k));
                    }
                }
                dlen = j;
                end = true;
                if matches!(dlen, 1 | 3 | 6) {
                    return Err(corrupt(pos - 1));
                }
                break;
            }
            let Some(v) = BASE32.iter().position(|b| *b == c) else {
                return Err(corrupt(pos - 1));
            };
            dbuf[j] = v as u8;
            j += 1;
        }
        let bits = dbuf.iter().fold(0u64, |acc, d| (acc << 5) | u64::from(*d));
        let bytes = match dlen {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            _ => 1,
        };
        for i in 0..bytes {
            out.push((bits >> (32 - i * 8)) as u8);
        }
        if end {
            break;
        }
    }
    Ok(out)
}

fn b32dec(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("b32dec", args, 1)?;
    let s = args::string(args, 0)?;
    Ok(Value::String(match go_base32_decode(s) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => error,
    }))
}

/// The parts of a URL as Go's `net/url.Parse` splits it (no normalization).
struct GoUrl {
    scheme: String,
    opaque: String,
    userinfo: String,
    host: String,
    path: String,
    query: String,
    fragment: String,
}

fn go_url_parse(text: &str) -> Result<GoUrl, String> {
    let (rest, fragment) = match text.split_once('#') {
        Some((r, f)) => (r, f.to_string()),
        None => (text, String::new()),
    };
    let mut url = GoUrl {
        scheme: String::new(),
        opaque: String::new(),
        userinfo: String::new(),
        host: String::new(),
        path: String::new(),
        query: String::new(),
        fragment,
    };
    let mut rest = rest;
    if let Some(colon) = rest.find(':') {
        let candidate = &rest[..colon];
        let valid = candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            url.scheme = candidate.to_ascii_lowercase();
            rest = &rest[colon + 1..];
        } else if colon == 0 {
            return Err("missing protocol scheme".to_string());
        }
    }
    if let Some((r, q)) = rest.split_once('?') {
        url.query = q.to_string();
        rest = r;
    }
    if !url.scheme.is_empty() && !rest.starts_with('/') {
        url.opaque = rest.to_string();
        return Ok(url);
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        rest = &after[end..];
        match authority.rsplit_once('@') {
            Some((user, host)) => {
                url.userinfo = user.to_string();
                url.host = host.to_string();
            }
            None => url.host = authority.to_string(),
        }
    }
    url.path = rest.to_string();
    Ok(url)
}

fn url_parse(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("urlParse", args, 1)?;
    let text = args::string(args, 0)?;
    let parsed = go_url_parse(text).map_err(|e| {
        format!(
            "unable to parse url: parse {}: {e}",
            super::gofmt::go_quote(text)
        )
    })?;
    let hostname = if parsed.host.starts_with('[') {
        parsed.host[1..].split(']').next().unwrap_or("").to_string()
    } else {
        parsed
            .host
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| parsed.host.clone())
    };
    let entries = [
        ("scheme", parsed.scheme),
        ("host", parsed.host),
        ("hostname", hostname),
        ("path", parsed.path),
        ("query", parsed.query),
        ("opaque", parsed.opaque),
        ("fragment", parsed.fragment),
        ("userinfo", parsed.userinfo),
    ];
    Ok(Value::map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v))),
    ))
}

fn url_join(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("urlJoin", args, 1)?;
    let map = args::map(args, 0)?;
    let get = |k: &str| match map.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Ok(String::new()),
        Some(_) => Err(format!("unable to parse {k} field")),
    };
    let scheme = get("scheme")?;
    let host = get("host")?;
    let path = get("path")?;
    let query = get("query")?;
    let fragment = get("fragment")?;
    let userinfo = get("userinfo")?;
    let opaque = get("opaque")?;
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(&scheme);
        out.push(':');
    }
    if !opaque.is_empty() {
        out.push_str(&opaque);
    } else {
        if !scheme.is_empty() || !host.is_empty() || !userinfo.is_empty() {
            if !host.is_empty() || !path.is_empty() || !userinfo.is_empty() {
                out.push_str("//");
            }
            if !userinfo.is_empty() {
                out.push_str(&userinfo);
                out.push('@');
            }
            out.push_str(&host);
        }
        if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
            out.push('/');
        }
        out.push_str(&path);
    }
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(&fragment);
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_reports_go_errors() {
        assert!(matches!(b64enc(&[Value::from("hello")]), Ok(Value::String(s)) if s == "aGVsbG8="));
        assert!(matches!(b64dec(&[Value::from("aGVsbG8=")]), Ok(Value::String(s)) if s == "hello"));
        assert!(
            matches!(b64dec(&[Value::from("a$")]), Ok(Value::String(s)) if s == "illegal base64 data at input byte 1")
        );
        assert!(matches!(b32enc(&[Value::from("hello")]), Ok(Value::String(s)) if s == "NBSWY3DP"));
        assert!(matches!(b32dec(&[Value::from("NBSWY3DP")]), Ok(Value::String(s)) if s == "hello"));
    }

    #[test]
    fn urls_split_and_join() {
        let parsed =
            url_parse(&[Value::from("https://u:p@example.com:8443/a/b?x=1#f")]).unwrap_or_default();
        let joined = url_join(std::slice::from_ref(&parsed));
        assert!(
            matches!(joined, Ok(Value::String(s)) if s == "https://u:p@example.com:8443/a/b?x=1#f")
        );
        assert_eq!(
            parsed.to_json()["hostname"],
            serde_json::json!("example.com")
        );
    }
}
