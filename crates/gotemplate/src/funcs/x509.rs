//! Just enough DER, PEM and X.509 for Sprig's certificate functions: keys (RSA, ECDSA P-256,
//! Ed25519), self-signed and CA-signed certificates shaped as Go's x509.CreateCertificate
//! makes them for Sprig's templates.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;

use super::crypto::random_fill;

// ---------------------------------------------------------------------------------------------
// DER writing.

/// A DER tag-length-value (also the RSA keys' PKCS#1 encoding, rsa_keys::primes).
pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &items.concat())
}

fn set(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x31, &items.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub(super) fn uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::new();
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    tlv(0x02, &content)
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let first = arcs.first().copied().unwrap_or(0) * 40 + arcs.get(1).copied().unwrap_or(0);
    for arc in std::iter::once(first).chain(arcs.iter().skip(2).copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        chunk.reverse();
        content.extend_from_slice(&chunk);
    }
    tlv(0x06, &content)
}

fn bit_string(bytes: &[u8], unused_bits: u8) -> Vec<u8> {
    let mut content = vec![unused_bits];
    content.extend_from_slice(bytes);
    tlv(0x03, &content)
}

fn octets(bytes: &[u8]) -> Vec<u8> {
    tlv(0x04, bytes)
}

fn explicit(number: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xa0 | number, content)
}

const NULL: [u8; 2] = [0x05, 0x00];
const OID_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
const OID_SHA256_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 11];
const OID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10_045, 2, 1];
const OID_P256: &[u64] = &[1, 2, 840, 10_045, 3, 1, 7];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10_045, 4, 3, 2];
const OID_ED25519: &[u64] = &[1, 3, 101, 112];

// ---------------------------------------------------------------------------------------------
// DER reading (just walking TLVs).

/// One TLV: its tag, its content and the whole encoding.
pub(super) struct Tlv<'a> {
    pub(super) tag: u8,
    pub(super) content: &'a [u8],
    raw: &'a [u8],
}

pub(super) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let malformed = || "x509: malformed certificate".to_string();
    let tag = *input.first().ok_or_else(malformed)?;
    let first = *input.get(1).ok_or_else(malformed)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 {
            return Err(malformed());
        }
        let bytes = input.get(2..2 + count).ok_or_else(malformed)?;
        (
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize),
            2 + count,
        )
    };
    let end = header.checked_add(len).ok_or_else(malformed)?;
    let raw = input.get(..end).ok_or_else(malformed)?;
    Ok((
        Tlv {
            tag,
            content: &raw[header..],
            raw,
        },
        &input[end..],
    ))
}

pub(super) fn children(content: &[u8]) -> Result<Vec<Tlv<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (item, next) = read_tlv(rest)?;
        out.push(item);
        rest = next;
    }
    Ok(out)
}

/// What signing a certificate needs from its issuer's certificate.
pub struct IssuerInfo {
    subject: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
}

/// Parses a DER certificate far enough to sign others with it.
pub fn parse_certificate(der: &[u8]) -> Result<IssuerInfo, String> {
    let (certificate, _) = read_tlv(der)?;
    let parts = children(certificate.content)?;
    let tbs = parts
        .first()
        .ok_or_else(|| "x509: malformed certificate".to_string())?;
    let fields = children(tbs.content)?;
    // [0] version is optional; subject is the 6th field counting it.
    let offset = usize::from(fields.first().is_some_and(|f| f.tag == 0xa0));
    let subject = fields
        .get(offset + 4)
        .ok_or_else(|| "x509: malformed tbs certificate".to_string())?
        .raw
        .to_vec();
    let mut subject_key_id = None;
    if let Some(extensions) = fields.iter().find(|f| f.tag == 0xa3) {
        let list = children(extensions.content)?;
        if let Some(list) = list.first() {
            for extension in children(list.content)? {
                let items = children(extension.content)?;
                let is_skid = items
                    .first()
                    .is_some_and(|o| o.raw == oid(&[2, 5, 29, 14]).as_slice());
                if is_skid && let Some(value) = items.last() {
                    let (inner, _) = read_tlv(value.content)?;
                    subject_key_id = Some(inner.content.to_vec());
                }
            }
        }
    }
    Ok(IssuerInfo {
        subject,
        subject_key_id,
    })
}

// ---------------------------------------------------------------------------------------------
// PEM.

pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The first PEM block: its label and DER bytes.
pub fn pem_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest
        .get(body_start..body_end)?
        .lines()
        .filter(|l| !l.contains(':'))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    Some((label, der))
}

// ---------------------------------------------------------------------------------------------
// Keys.

/// A private key of one of the kinds Sprig generates.
pub enum PrivateKey {
    /// PKCS#1 DER.
    Rsa(Vec<u8>),
    /// PKCS#8 DER (what ring reads) of a P-256 key.
    EcdsaP256(Vec<u8>),
    /// The 32-byte seed.
    Ed25519([u8; 32]),
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl PrivateKey {
    pub fn generate_rsa(bits: usize) -> Result<PrivateKey, String> {
        super::rsa_keys::generate(bits).map(PrivateKey::Rsa)
    }

    pub fn generate_ecdsa() -> Result<PrivateKey, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(err)?;
        Ok(PrivateKey::EcdsaP256(pkcs8.as_ref().to_vec()))
    }

    pub fn generate_ed25519() -> Result<PrivateKey, String> {
        let mut seed = [0u8; 32];
        random_fill(&mut seed)?;
        Ok(PrivateKey::Ed25519(seed))
    }

    /// Sprig's `parsePrivateKeyPEM`.
    pub fn from_pem(text: &str) -> Result<PrivateKey, String> {
        let (label, der) = pem_decode(text).ok_or_else(|| "no PEM data in input".to_string())?;
        match label.as_str() {
            "RSA PRIVATE KEY" => {
                rsa::RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| format!("parsing RSA private key from PEM: {e}"))?;
                Ok(PrivateKey::Rsa(der))
            }
            "EC PRIVATE KEY" => {
                let pkcs8 = seq(&[
                    uint(&[0]),
                    seq(&[oid(OID_EC_PUBLIC_KEY), oid(OID_P256)]),
                    octets(&der),
                ]);
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(|e| format!("parsing EC private key from PEM: {e}"))?;
                Ok(PrivateKey::EcdsaP256(pkcs8))
            }
            "PRIVATE KEY" => {
                if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_der(&der) {
                    let pkcs1 = key.to_pkcs1_der().map_err(err)?;
                    return Ok(PrivateKey::Rsa(pkcs1.as_bytes().to_vec()));
                }
                if EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &der,
                    &SystemRandom::new(),
                )
                .is_ok()
                {
                    return Ok(PrivateKey::EcdsaP256(der));
                }
                // Ed25519 PKCS#8 v1: the seed is the last 32 bytes (an OCTET STRING in one).
                let seed: Option<[u8; 32]> = der
                    .len()
                    .checked_sub(32)
                    .and_then(|start| der[start..].try_into().ok());
                match seed {
                    Some(seed) if der.windows(5).any(|w| w == [0x06, 0x03, 0x2b, 0x65, 0x70]) => {
                        Ok(PrivateKey::Ed25519(seed))
                    }
                    _ => Err("decoding PEM as PKCS#8: x509: unknown key type".to_string()),
                }
            }
            other => Err(format!("invalid private key type {other}")),
        }
    }

    /// Sprig's `pemBlockForKey`.
    pub fn to_pem(&self) -> String {
        match self {
            PrivateKey::Rsa(der) => pem_encode("RSA PRIVATE KEY", der),
            PrivateKey::EcdsaP256(pkcs8) => {
                // The SEC1 ECPrivateKey is the PKCS#8 privateKey OCTET STRING.
                let sec1 = read_tlv(pkcs8)
                    .ok()
                    .and_then(|(outer, _)| children(outer.content).ok())
                    .and_then(|items| items.get(2).map(|i| i.content.to_vec()))
                    .unwrap_or_default();
                pem_encode("EC PRIVATE KEY", &sec1)
            }
            PrivateKey::Ed25519(seed) => {
                let der = seq(&[uint(&[0]), seq(&[oid(OID_ED25519)]), octets(&octets(seed))]);
                pem_encode("PRIVATE KEY", &der)
            }
        }
    }

    /// The SubjectPublicKeyInfo DER and the raw public key bits.
    fn public_key_info(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        match self {
            PrivateKey::Rsa(der) => {
                let bits = rsa_public_key(der)?;
                Ok((
                    seq(&[seq(&[oid(OID_RSA), NULL.to_vec()]), bit_string(&bits, 0)]),
                    bits,
                ))
            }
            PrivateKey::EcdsaP256(pkcs8) => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(err)?;
                let bits = pair.public_key().as_ref().to_vec();
                Ok((
                    seq(&[
                        seq(&[oid(OID_EC_PUBLIC_KEY), oid(OID_P256)]),
                        bit_string(&bits, 0),
                    ]),
                    bits,
                ))
            }
            PrivateKey::Ed25519(seed) => {
                let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(err)?;
                let bits = pair.public_key().as_ref().to_vec();
                Ok((seq(&[seq(&[oid(OID_ED25519)]), bit_string(&bits, 0)]), bits))
            }
        }
    }

    fn signature_algorithm(&self) -> Vec<u8> {
        match self {
            PrivateKey::Rsa(_) => seq(&[oid(OID_SHA256_RSA), NULL.to_vec()]),
            PrivateKey::EcdsaP256(_) => seq(&[oid(OID_ECDSA_SHA256)]),
            PrivateKey::Ed25519(_) => seq(&[oid(OID_ED25519)]),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match self {
            PrivateKey::Rsa(der) => {
                let pair = RsaKeyPair::from_der(der).map_err(err)?;
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(err)?;
                Ok(signature)
            }
            PrivateKey::EcdsaP256(pkcs8) => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    pkcs8,
                    &rng,
                )
                .map_err(err)?;
                Ok(pair.sign(&rng, message).map_err(err)?.as_ref().to_vec())
            }
            PrivateKey::Ed25519(seed) => {
                let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(err)?;
                Ok(pair.sign(message).as_ref().to_vec())
            }
        }
    }
}

/// The PKCS#1 `RSAPublicKey` (modulus and exponent) of a PKCS#1 `RSAPrivateKey`, taken from
/// its DER without big-number work: `from_pem` has already checked the key.
fn rsa_public_key(private_der: &[u8]) -> Result<Vec<u8>, String> {
    let malformed = || "x509: malformed RSA private key".to_string();
    let (outer, _) = read_tlv(private_der)?;
    let fields = children(outer.content)?;
    let modulus = fields
        .get(1)
        .filter(|f| f.tag == 0x02)
        .ok_or_else(malformed)?;
    let exponent = fields
        .get(2)
        .filter(|f| f.tag == 0x02)
        .ok_or_else(malformed)?;
    Ok(tlv(0x30, &[modulus.raw, exponent.raw].concat()))
}

// ---------------------------------------------------------------------------------------------
// Certificates.

/// What Sprig's `getBaseCertTemplate` (plus the CA bits) puts in a certificate.
pub struct CertificateRequest<'a> {
    pub common_name: &'a str,
    pub ips: Vec<std::net::IpAddr>,
    pub dns_names: Vec<String>,
    pub days_valid: i64,
    pub is_ca: bool,
}

fn name(common_name: &str) -> Vec<u8> {
    if common_name.is_empty() {
        return seq(&[]);
    }
    let printable = common_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
    let value = tlv(if printable { 0x13 } else { 0x0c }, common_name.as_bytes());
    seq(&[set(&[seq(&[oid(&[2, 5, 4, 3]), value])])])
}

/// UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280).
fn time(unix: i64) -> Vec<u8> {
    let t = gocompat::time::GoTime::from_unix(unix).in_zone(gocompat::time::Zone::Utc);
    let year: i64 = t.format("2006").parse().unwrap_or(0);
    if (1950..2050).contains(&year) {
        tlv(0x17, t.format("060102150405Z").as_bytes())
    } else {
        tlv(0x18, t.format("20060102150405Z").as_bytes())
    }
}

fn extension(id: &[u64], critical: bool, value: Vec<u8>) -> Vec<u8> {
    let mut items = vec![oid(id)];
    if critical {
        items.push(vec![0x01, 0x01, 0xff]);
    }
    items.push(octets(&value));
    seq(&items)
}

/// `x509.CreateCertificate` for Sprig's templates; returns the DER certificate.
pub fn create_certificate(
    request: &CertificateRequest<'_>,
    subject_key: &PrivateKey,
    issuer: Option<(&IssuerInfo, &PrivateKey)>,
) -> Result<Vec<u8>, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut serial = [0u8; 16];
    random_fill(&mut serial)?;
    let (spki, public_bits) = subject_key.public_key_info()?;
    let subject = name(request.common_name);
    let signing_key = issuer.map(|(_, key)| key).unwrap_or(subject_key);
    let issuer_name = issuer
        .map(|(info, _)| info.subject.clone())
        .unwrap_or_else(|| subject.clone());

    // digitalSignature (bit 0) | keyEncipherment (bit 2) [| keyCertSign (bit 5)].
    let key_usage = if request.is_ca {
        bit_string(&[0xa4], 2)
    } else {
        bit_string(&[0xa0], 5)
    };
    let mut extensions = vec![
        extension(&[2, 5, 29, 15], true, key_usage),
        extension(
            &[2, 5, 29, 37],
            false,
            seq(&[
                oid(&[1, 3, 6, 1, 5, 5, 7, 3, 1]),
                oid(&[1, 3, 6, 1, 5, 5, 7, 3, 2]),
            ]),
        ),
        extension(
            &[2, 5, 29, 19],
            true,
            seq(&if request.is_ca {
                vec![vec![0x01, 0x01, 0xff]]
            } else {
                vec![]
            }),
        ),
    ];
    if request.is_ca {
        let skid = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &public_bits);
        extensions.push(extension(&[2, 5, 29, 14], false, octets(skid.as_ref())));
    }
    if let Some((info, _)) = issuer
        && let Some(key_id) = &info.subject_key_id
    {
        extensions.push(extension(&[2, 5, 29, 35], false, seq(&[tlv(0x80, key_id)])));
    }
    if !request.dns_names.is_empty() || !request.ips.is_empty() {
        let mut names: Vec<Vec<u8>> = request
            .dns_names
            .iter()
            .map(|dns| tlv(0x82, dns.as_bytes()))
            .collect();
        for ip in &request.ips {
            let bytes = match ip {
                std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            names.push(tlv(0x87, &bytes));
        }
        extensions.push(extension(&[2, 5, 29, 17], false, seq(&names)));
    }

    let tbs = seq(&[
        explicit(0, &uint(&[2])),
        uint(&serial),
        signing_key.signature_algorithm(),
        issuer_name,
        seq(&[time(now), time(now + 86_400 * request.days_valid)]),
        subject,
        spki,
        explicit(3, &seq(&extensions)),
    ]);
    let signature = signing_key.sign(&tbs)?;
    Ok(seq(&[
        tbs,
        signing_key.signature_algorithm(),
        bit_string(&signature, 0),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_and_oids_encode_like_go() {
        assert_eq!(uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(uint(&[0, 0, 5]), vec![0x02, 0x01, 0x05]);
        assert_eq!(oid(&[2, 5, 29, 15]), vec![0x06, 0x03, 0x55, 0x1d, 0x0f]);
        assert_eq!(
            oid(OID_RSA),
            vec![
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01
            ]
        );
    }

    #[test]
    fn ecdsa_ca_signs_a_certificate_with_its_subject() {
        let ca_key = PrivateKey::generate_ecdsa();
        assert!(ca_key.is_ok());
        let Ok(ca_key) = ca_key else { return };
        let request = CertificateRequest {
            common_name: "test-ca",
            ips: vec![],
            dns_names: vec![],
            days_valid: 365,
            is_ca: true,
        };
        let ca_der = create_certificate(&request, &ca_key, None);
        let Ok(ca_der) = ca_der else {
            panic!("CA creation failed: {ca_der:?}", ca_der = ca_der.err());
        };
        let info = parse_certificate(&ca_der);
        let Ok(info) = info else {
            panic!("parse failed")
        };
        assert_eq!(info.subject, name("test-ca"));
        assert!(info.subject_key_id.is_some());
        let pem = pem_encode("CERTIFICATE", &ca_der);
        assert_eq!(
            pem_decode(&pem).map(|(l, d)| (l, d.len())),
            Some(("CERTIFICATE".to_string(), ca_der.len()))
        );
        let reparsed = PrivateKey::from_pem(&ca_key.to_pem());
        assert!(reparsed.is_ok());
    }
}
