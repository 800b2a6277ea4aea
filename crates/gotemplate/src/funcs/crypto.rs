//! Sprig's crypto.go: hashes, random bytes and strings, UUIDs, passwords, keys and certificates.

use std::sync::Arc;

use base64::Engine as _;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use super::args;
use super::x509::{CertificateRequest, PrivateKey, create_certificate, parse_certificate};
use super::{Func, FuncError};
use crate::value::{Object, Value};

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("sha1sum", sha1sum),
        ("sha256sum", sha256sum),
        ("sha512sum", sha512sum),
        ("adler32sum", adler32sum),
        ("randBytes", rand_bytes),
        ("uuidv4", uuidv4),
        ("bcrypt", bcrypt_fn),
        ("htpasswd", htpasswd),
        ("derivePassword", derive_password),
        ("genPrivateKey", gen_private_key),
        ("buildCustomCert", build_custom_cert),
        ("genCA", gen_ca),
        ("genCAWithKey", gen_ca_with_key),
        ("genSelfSignedCert", gen_self_signed_cert),
        ("genSelfSignedCertWithKey", gen_self_signed_cert_with_key),
        ("genSignedCert", gen_signed_cert),
        ("genSignedCertWithKey", gen_signed_cert_with_key),
        ("encryptAES", encrypt_aes),
        ("decryptAES", decrypt_aes),
    ]
}

thread_local! {
    static SPECULATIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread's executions as speculative (their outputs may be thrown away): the
/// functions that cost far more than a template usually does (RSA keys, bcrypt, scrypt) then
/// fail instead of running, which leaves them to an execution whose output counts.
pub fn set_speculative(speculative: bool) {
    SPECULATIVE.with(|flag| flag.set(speculative));
}

fn refuse_when_speculative(name: &str) -> Result<(), FuncError> {
    if SPECULATIVE.with(|flag| flag.get()) {
        Err(format!("{name} is left to a render whose output counts"))
    } else {
        Ok(())
    }
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
    let count = args::alloc_len(args::int(args, 0)?)?;
    let mut buf = vec![0u8; count];
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

/// `bcrypt.GenerateFromPassword(input, bcrypt.DefaultCost)` (cost 10, `$2a$`).
fn bcrypt_hash(input: &str) -> Result<String, FuncError> {
    let mut salt = [0u8; 16];
    random_fill(&mut salt)?;
    let parts = bcrypt::hash_with_salt(input.as_bytes(), 10, salt)
        .map_err(|e| format!("failed to encrypt string with bcrypt: {e}"))?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

fn bcrypt_fn(args: &[Value]) -> Result<Value, FuncError> {
    refuse_when_speculative("bcrypt")?;
    args::exact("bcrypt", args, 1)?;
    let input = args::string(args, 0)?;
    Ok(Value::String(bcrypt_hash(input).unwrap_or_else(|e| e)))
}

fn htpasswd(args: &[Value]) -> Result<Value, FuncError> {
    refuse_when_speculative("htpasswd")?;
    args::exact("htpasswd", args, 2)?;
    let user = args::string(args, 0)?;
    let password = args::string(args, 1)?;
    if user.contains(':') {
        return Ok(Value::String(format!("invalid username: {user}")));
    }
    let hash = bcrypt_hash(password).unwrap_or_else(|e| e);
    Ok(Value::String(format!("{user}:{hash}")))
}

// --- derivePassword: the Master Password algorithm (scrypt, then HMAC-SHA256). ---------------

/// `scrypt.Key(password, salt, n, r, p, key_len)` (golang.org/x/crypto/scrypt), with RustCrypto's
/// implementation; `n` is a power of two.
fn scrypt_key(
    password: &[u8],
    salt: &[u8],
    n: u32,
    r: u32,
    p: u32,
    key_len: usize,
) -> Result<Vec<u8>, FuncError> {
    let params =
        scrypt::Params::new(n.trailing_zeros() as u8, r, p).map_err(|e| format!("scrypt: {e}"))?;
    let mut key = vec![0u8; key_len];
    scrypt::scrypt(password, salt, &params, &mut key).map_err(|e| format!("scrypt: {e}"))?;
    Ok(key)
}

fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn template_characters(class: u8) -> &'static [u8] {
    match class {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

fn derive_password(args: &[Value]) -> Result<Value, FuncError> {
    refuse_when_speculative("derivePassword")?;
    args::exact("derivePassword", args, 5)?;
    let counter = args::int(args, 0)?;
    let kind = args::string(args, 1)?;
    let password = args::string(args, 2)?;
    let user = args::string(args, 3)?;
    let site = args::string(args, 4)?;
    let Some(templates) = password_templates(kind) else {
        return Ok(Value::String(format!(
            "cannot find password template {kind}"
        )));
    };
    const SEED: &[u8] = b"com.lyndir.masterpassword";
    let mut salt = SEED.to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(user.as_bytes());
    let key = scrypt_key(password.as_bytes(), &salt, 32768, 8, 2, 64)?;
    let mut message = SEED.to_vec();
    message.extend_from_slice(&(site.len() as u32).to_be_bytes());
    message.extend_from_slice(site.as_bytes());
    message.extend_from_slice(&(counter as u32).to_be_bytes());
    let seed = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        &message,
    );
    let seed = seed.as_ref();
    let template = templates[seed[0] as usize % templates.len()];
    let out: String = template
        .bytes()
        .enumerate()
        .map(|(i, class)| {
            let chars = template_characters(class);
            char::from(chars[seed[i + 1] as usize % chars.len()])
        })
        .collect();
    Ok(Value::String(out))
}

// --- keys and certificates -------------------------------------------------------------------

fn gen_private_key(args: &[Value]) -> Result<Value, FuncError> {
    refuse_when_speculative("genPrivateKey")?;
    args::exact("genPrivateKey", args, 1)?;
    let kind = args::string(args, 0)?;
    let key = match kind {
        "" | "rsa" => PrivateKey::generate_rsa(4096),
        "ecdsa" => PrivateKey::generate_ecdsa(),
        "ed25519" => PrivateKey::generate_ed25519(),
        // DSA (deprecated in Go) is not offered by keelson.
        other => return Ok(Value::String(format!("Unknown type {other}"))),
    };
    Ok(Value::String(match key {
        Ok(key) => key.to_pem(),
        Err(e) => format!("failed to generate private key: {e}"),
    }))
}

/// Sprig's `certificate{Cert, Key}`.
#[derive(Debug, Clone)]
pub struct Certificate {
    cert: String,
    key: String,
}

impl Object for Certificate {
    fn type_name(&self) -> &str {
        "sprig.certificate"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Cert" => Some(Value::String(self.cert.clone())),
            "Key" => Some(Value::String(self.key.clone())),
            _ => None,
        }
    }

    fn to_go_string(&self) -> String {
        format!("{{{} {}}}", self.cert, self.key)
    }

    fn to_serializable(&self) -> Value {
        Value::map([
            ("Cert".to_string(), Value::String(self.cert.clone())),
            ("Key".to_string(), Value::String(self.key.clone())),
        ])
    }
}

fn certificate_value(cert: String, key: String) -> Value {
    Value::Object(Arc::new(Certificate { cert, key }))
}

/// A `[]interface{}` of IP address strings (nil allowed).
fn ip_list(args: &[Value], index: usize) -> Result<Vec<std::net::IpAddr>, FuncError> {
    match args.get(index) {
        Some(Value::Nil) | None => Ok(Vec::new()),
        Some(Value::List(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.parse().map_err(|_| format!("error parsing ip: {s}")),
                other => Err(format!(
                    "error parsing ip: {} is not a string",
                    super::gofmt::format_value(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "wrong type for value; expected []interface {{}}; got {}",
            super::args::go_type_name(other)
        )),
    }
}

fn dns_list(args: &[Value], index: usize) -> Result<Vec<String>, FuncError> {
    match args.get(index) {
        Some(Value::Nil) | None => Ok(Vec::new()),
        Some(Value::List(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "error processing alternate dns name: {} is not a string",
                    super::gofmt::format_value(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "wrong type for value; expected []interface {{}}; got {}",
            super::args::go_type_name(other)
        )),
    }
}

fn issue(
    request: &CertificateRequest<'_>,
    key: &PrivateKey,
    issuer: Option<(&super::x509::IssuerInfo, &PrivateKey)>,
) -> Result<Value, FuncError> {
    let der = create_certificate(request, key, issuer)
        .map_err(|e| format!("error creating certificate: {e}"))?;
    Ok(certificate_value(
        super::x509::pem_encode("CERTIFICATE", &der),
        key.to_pem(),
    ))
}

fn rsa_2048() -> Result<PrivateKey, FuncError> {
    PrivateKey::generate_rsa(2048).map_err(|e| format!("error generating rsa key: {e}"))
}

fn key_param(args: &[Value], index: usize) -> Result<PrivateKey, FuncError> {
    PrivateKey::from_pem(args::string(args, index)?)
        .map_err(|e| format!("parsing private key: {e}"))
}

fn ca_request(args: &[Value]) -> Result<CertificateRequest<'_>, FuncError> {
    Ok(CertificateRequest {
        common_name: args::string(args, 0)?,
        ips: Vec::new(),
        dns_names: Vec::new(),
        days_valid: args::int(args, 1)?,
        is_ca: true,
    })
}

fn gen_ca(args: &[Value]) -> Result<Value, FuncError> {
    refuse_when_speculative("genCA")?;
    args::exact("genCA", args, 2)?;
    let request = ca_request(args)?;
    issue(&request, &rsa_2048()?, None)
}

fn gen_ca_with_key(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("genCAWithKey", args, 3)?;
    let request = ca_request(args)?;
    issue(&request, &key_param(args, 2)?, None)
}

fn leaf_request(args: &[Value]) -> Result<CertificateRequest<'_>, FuncError> {
    Ok(CertificateRequest {
        common_name: args::string(args, 0)?,
        ips: ip_list(args, 1)?,
        dns_names: dns_list(args, 2)?,
        days_valid: args::int(args, 3)?,
        is_ca: false,
    })
}

fn gen_self_signed_cert(args: &[Value]) -> Result<Value, FuncError> {
    refuse_when_speculative("genSelfSignedCert")?;
    args::exact("genSelfSignedCert", args, 4)?;
    let request = leaf_request(args)?;
    issue(&request, &rsa_2048()?, None)
}

fn gen_self_signed_cert_with_key(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("genSelfSignedCertWithKey", args, 5)?;
    let request = leaf_request(args)?;
    issue(&request, &key_param(args, 4)?, None)
}

/// The issuing CA (a `certificate` value): its parsed certificate and key.
fn ca_param(
    args: &[Value],
    index: usize,
) -> Result<(super::x509::IssuerInfo, PrivateKey), FuncError> {
    let (cert, key) = match args.get(index) {
        Some(Value::Object(o)) if o.type_name() == "sprig.certificate" => (
            o.field("Cert")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            o.field("Key")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
        Some(other) => {
            return Err(format!(
                "wrong type for value; expected sprig.certificate; got {}",
                super::args::go_type_name(other)
            ));
        }
        None => return Err("missing argument".to_string()),
    };
    let (_, der) =
        super::x509::pem_decode(&cert).ok_or_else(|| "unable to decode certificate".to_string())?;
    let info = parse_certificate(&der)
        .map_err(|e| format!("error parsing certificate: decodedSignerCert.Bytes: {e}"))?;
    let key = PrivateKey::from_pem(&key).map_err(|e| format!("error parsing private key: {e}"))?;
    Ok((info, key))
}

fn gen_signed_cert(args: &[Value]) -> Result<Value, FuncError> {
    refuse_when_speculative("genSignedCert")?;
    args::exact("genSignedCert", args, 5)?;
    let request = leaf_request(args)?;
    let (info, ca_key) = ca_param(args, 4)?;
    issue(&request, &rsa_2048()?, Some((&info, &ca_key)))
}

fn gen_signed_cert_with_key(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("genSignedCertWithKey", args, 6)?;
    let request = leaf_request(args)?;
    let (info, ca_key) = ca_param(args, 4)?;
    issue(&request, &key_param(args, 5)?, Some((&info, &ca_key)))
}

fn build_custom_cert(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("buildCustomCert", args, 2)?;
    let engine = base64::engine::general_purpose::STANDARD;
    let cert = engine
        .decode(args::string(args, 0)?)
        .map_err(|_| "unable to decode base64 certificate".to_string())?;
    let key = engine
        .decode(args::string(args, 1)?)
        .map_err(|_| "unable to decode base64 private key".to_string())?;
    let cert = String::from_utf8_lossy(&cert).into_owned();
    let key = String::from_utf8_lossy(&key).into_owned();
    let (_, der) =
        super::x509::pem_decode(&cert).ok_or_else(|| "unable to decode certificate".to_string())?;
    parse_certificate(&der)
        .map_err(|e| format!("error parsing certificate: decodedCert.Bytes: {e}"))?;
    PrivateKey::from_pem(&key).map_err(|e| format!("error parsing private key: {e}"))?;
    Ok(certificate_value(cert, key))
}

// --- AES-256-CBC as Sprig's encryptAES/decryptAES use it -------------------------------------

fn aes_key(password: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let bytes = password.as_bytes();
    let len = bytes.len().min(32);
    key[..len].copy_from_slice(&bytes[..len]);
    key
}

fn encrypt_aes(args: &[Value]) -> Result<Value, FuncError> {
    use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
    args::exact("encryptAES", args, 2)?;
    let password = args::string(args, 0)?;
    let plaintext = args::string(args, 1)?;
    if plaintext.is_empty() {
        return Ok(Value::from(""));
    }
    let cipher = aes::Aes256::new(&GenericArray::from(aes_key(password)));
    let mut content = plaintext.as_bytes().to_vec();
    let padding = 16 - content.len() % 16;
    content.extend(std::iter::repeat_n(padding as u8, padding));
    let mut out = vec![0u8; 16];
    random_fill(&mut out)?;
    let mut previous: [u8; 16] = out[..16].try_into().unwrap_or([0; 16]);
    for chunk in content.chunks(16) {
        let mut block = [0u8; 16];
        for (i, b) in block.iter_mut().enumerate() {
            *b = chunk[i] ^ previous[i];
        }
        let mut ga = GenericArray::from(block);
        cipher.encrypt_block(&mut ga);
        previous = ga.into();
        out.extend_from_slice(&previous);
    }
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(out),
    ))
}

fn decrypt_aes(args: &[Value]) -> Result<Value, FuncError> {
    use aes::cipher::{BlockDecrypt, KeyInit, generic_array::GenericArray};
    args::exact("decryptAES", args, 2)?;
    let password = args::string(args, 0)?;
    let encoded = args::string(args, 1)?;
    if encoded.is_empty() {
        return Ok(Value::from(""));
    }
    let crypt = super::encoding::go_base64_decode(encoded)?;
    if crypt.len() < 16 {
        return Err(format!(
            "runtime error: slice bounds out of range [:16] with capacity {}",
            crypt.len()
        ));
    }
    if !(crypt.len() - 16).is_multiple_of(16) {
        return Err("crypto/cipher: input not full blocks".to_string());
    }
    let cipher = aes::Aes256::new(&GenericArray::from(aes_key(password)));
    let mut previous: [u8; 16] = crypt[..16].try_into().unwrap_or([0; 16]);
    let mut plain = Vec::new();
    for chunk in crypt[16..].chunks(16) {
        let block: [u8; 16] = chunk.try_into().unwrap_or([0; 16]);
        let mut ga = GenericArray::from(block);
        cipher.decrypt_block(&mut ga);
        let decrypted: [u8; 16] = ga.into();
        plain.extend(decrypted.iter().zip(previous.iter()).map(|(d, p)| d ^ p));
        previous = block;
    }
    let Some(&pad) = plain.last() else {
        return Err("runtime error: index out of range [-1]".to_string());
    };
    let keep = plain.len().checked_sub(pad as usize).ok_or_else(|| {
        format!(
            "runtime error: slice bounds out of range [:{}]",
            plain.len() as i64 - pad as i64
        )
    })?;
    plain.truncate(keep);
    Ok(Value::String(String::from_utf8_lossy(&plain).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speculative_executions_make_no_keys_or_password_hashes() {
        set_speculative(true);
        let refused = [
            gen_private_key(&[Value::from("ecdsa")]),
            bcrypt_fn(&[Value::from("pw")]),
            htpasswd(&[Value::from("user"), Value::from("pw")]),
            gen_ca(&[Value::from("ca"), Value::Int(1)]),
        ];
        set_speculative(false);
        for result in refused {
            assert!(
                matches!(&result, Err(message) if message.contains("left to a render")),
                "{result:?}"
            );
        }
        assert!(matches!(
            gen_private_key(&[Value::from("ecdsa")]),
            Ok(Value::String(pem)) if pem.contains("EC PRIVATE KEY")
        ));
    }

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
    fn aes_round_trips() {
        let secret = encrypt_aes(&[Value::from("pw"), Value::from("hello world, this is long")]);
        let Ok(secret) = secret else {
            panic!("encrypt failed")
        };
        let plain = decrypt_aes(&[Value::from("pw"), secret]);
        assert!(matches!(plain, Ok(Value::String(s)) if s == "hello world, this is long"));
    }

    #[test]
    fn htpasswd_uses_bcrypt_2a() {
        let line = htpasswd(&[Value::from("user"), Value::from("pw")]);
        assert!(
            matches!(&line, Ok(Value::String(s)) if s.starts_with("user:$2a$10$") && s.len() == 65),
            "{line:?}"
        );
    }

    #[test]
    fn ca_and_signed_certificates_are_pem() {
        let ca = gen_ca(&[Value::from("my-ca"), Value::Int(365)]);
        let Ok(ca) = ca else {
            panic!("genCA failed: {ca:?}")
        };
        let cert = gen_signed_cert(&[
            Value::from("svc"),
            Value::list([Value::from("10.0.0.1")]),
            Value::list([Value::from("svc.example.com")]),
            Value::Int(30),
            ca.clone(),
        ]);
        let Ok(Value::Object(cert)) = cert else {
            panic!("genSignedCert failed: {cert:?}")
        };
        let pem = cert.field("Cert").unwrap_or_default();
        assert!(
            pem.as_str()
                .is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----\n"))
        );
        let key = cert.field("Key").unwrap_or_default();
        assert!(
            key.as_str()
                .is_some_and(|k| k.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"))
        );
        let Value::Object(ca) = ca else {
            panic!("not an object")
        };
        let rebuilt = build_custom_cert(&[
            Value::String(
                base64::engine::general_purpose::STANDARD.encode(
                    ca.field("Cert")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                ),
            ),
            Value::String(
                base64::engine::general_purpose::STANDARD.encode(
                    ca.field("Key")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                ),
            ),
        ]);
        assert!(rebuilt.is_ok(), "{rebuilt:?}");
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
