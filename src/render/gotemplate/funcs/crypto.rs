//! Sprig's crypto.go: hashes, random bytes and strings, UUIDs, passwords, keys and certificates.

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use super::args;
use super::{Func, FuncError};
use crate::render::gotemplate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("sha1sum", sha1sum),
        ("sha256sum", sha256sum),
        ("sha512sum", sha512sum),
        ("adler32sum", adler32sum),
        ("randBytes", rand_bytes),
        ("uuidv4", uuidv4),
    ]
}

/// Fills `buf` from the operating system's secure random source.
pub fn random_fill(buf: &mut [u8]) -> Result<(), FuncError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| "crypto/rand: failed to read random data".to_string())
}

/// A uniformly random number in `0..bound` (`bound` > 0), by rejection sampling.
pub fn random_below(bound: u64) -> Result<u64, FuncError> {
    if bound == 0 {
        return Err("invalid argument to Intn".to_string());
    }
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let mut bytes = [0u8; 8];
        random_fill(&mut bytes)?;
        let candidate = u64::from_le_bytes(bytes);
        if candidate < zone {
            return Ok(candidate % bound);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_of(
    name: &str,
    args: &[Value],
    algorithm: &'static digest::Algorithm,
) -> Result<Value, FuncError> {
    args::exact(name, args, 1)?;
    let input = args::string(args, 0)?;
    Ok(Value::String(hex(digest::digest(
        algorithm,
        input.as_bytes(),
    )
    .as_ref())))
}

fn sha1sum(args: &[Value]) -> Result<Value, FuncError> {
    digest_of("sha1sum", args, &digest::SHA1_FOR_LEGACY_USE_ONLY)
}

fn sha256sum(args: &[Value]) -> Result<Value, FuncError> {
    digest_of("sha256sum", args, &digest::SHA256)
}

fn sha512sum(args: &[Value]) -> Result<Value, FuncError> {
    digest_of("sha512sum", args, &digest::SHA512)
}

/// `hash/adler32.Checksum`.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for byte in chunk {
            a += u32::from(*byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn adler32sum(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("adler32sum", args, 1)?;
    let input = args::string(args, 0)?;
    Ok(Value::String(adler32(input.as_bytes()).to_string()))
}

fn rand_bytes(args: &[Value]) -> Result<Value, FuncError> {
    use base64::Engine as _;
    args::exact("randBytes", args, 1)?;
    let count = args::int(args, 0)?;
    if count < 0 {
        return Err("runtime error: makeslice: len out of range".to_string());
    }
    let mut buf = vec![0u8; count as usize];
    random_fill(&mut buf)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(buf),
    ))
}

fn uuidv4(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("uuidv4", args, 0)?;
    let mut b = [0u8; 16];
    random_fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    Ok(Value::String(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_values() {
        let sum = sha256sum(&[Value::from("abc")]);
        assert!(
            matches!(sum, Ok(Value::String(s)) if s == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let sum = sha1sum(&[Value::from("abc")]);
        assert!(
            matches!(sum, Ok(Value::String(s)) if s == "a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(adler32(b"Wikipedia"), 300286872);
    }

    #[test]
    fn uuid_has_version_four_layout() {
        let id = match uuidv4(&[]) {
            Ok(Value::String(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
