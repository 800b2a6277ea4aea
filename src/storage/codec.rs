//! Turns a release into the bytes Helm stores (`base64(gzip(JSON))`) and back, accepting the
//! legacy payloads without gzip; the JSON is written the way Go's `encoding/json` writes it.

use std::io::{self, Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Serialize;
use serde_json::ser::Formatter;

use super::record::Release;

/// The gzip magic bytes Helm checks to tell compressed payloads from legacy plain JSON.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// A decoded payload larger than this is refused: a Secret holds at most 1 MiB, and gzip of
/// JSON rarely exceeds 1:50, so anything bigger is a decompression bomb, not a release.
const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// Why a stored payload could not be turned into a release (or a release into a payload).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("payload is not valid base64: {0}")]
    Base64(#[source] base64::DecodeError),
    #[error("payload is not valid gzip: {0}")]
    Gzip(#[source] io::Error),
    #[error("decompressed payload exceeds {MAX_DECODED_BYTES} bytes")]
    TooLarge,
    #[error("payload is not a valid release JSON (line {line}, column {column}): {source}")]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode the release as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Decodes the `release` value of a record: base64, then gzip when the magic bytes say so
/// (Helm's own rule), then JSON.
pub fn decode_release(payload: &[u8]) -> Result<Release, CodecError> {
    let json = decode_json_bytes(payload)?;
    serde_json::from_slice(&json).map_err(|source| CodecError::Json {
        line: source.line(),
        column: source.column(),
        source,
    })
}

/// The JSON bytes inside a stored payload (base64 and gzip removed).
pub fn decode_json_bytes(payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let raw = STANDARD.decode(payload).map_err(CodecError::Base64)?;
    if raw.starts_with(&GZIP_MAGIC) {
        let mut json = Vec::with_capacity(raw.len() * 8);
        GzDecoder::new(raw.as_slice())
            .take(MAX_DECODED_BYTES + 1)
            .read_to_end(&mut json)
            .map_err(CodecError::Gzip)?;
        if json.len() as u64 > MAX_DECODED_BYTES {
            return Err(CodecError::TooLarge);
        }
        Ok(json)
    } else {
        Ok(raw)
    }
}

/// Encodes a release the way Helm does: Go-style JSON, gzip at best compression, base64.
pub fn encode_release(release: &Release) -> Result<String, CodecError> {
    let json = to_go_json(release)?;
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::best());
    gz.write_all(&json)
        .map_err(|e| CodecError::Encode(serde_json::Error::io(e)))?;
    let compressed = gz
        .finish()
        .map_err(|e| CodecError::Encode(serde_json::Error::io(e)))?;
    Ok(STANDARD.encode(compressed))
}

/// Serializes like Go's `json.Marshal`: no whitespace, `<`, `>`, `&`, U+2028 and U+2029
/// escaped, floats in Go's shortest form (`1e+21`, `1e-7`).
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(4096);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut serializer)
        .map_err(CodecError::Encode)?;
    Ok(out)
}

/// serde_json formatter producing Go `encoding/json` output.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            let Some(escape) = gocompat::json::extra_escape(ch, true) else {
                continue;
            };
            writer.write_all(&fragment.as_bytes()[start..index])?;
            writer.write_all(escape.as_bytes())?;
            start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        // serde_json writes non-finite floats as null before reaching the formatter.
        let text = gocompat::json::format_float64(value).unwrap_or_else(|| "null".to_string());
        writer.write_all(text.as_bytes())
    }

    fn write_f32<W: ?Sized + Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_and_line_separators_like_go() {
        let json = to_go_json("a<b>&c\u{2028}\u{2029}\n\u{1}\"é").unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#""a\u003cb\u003e\u0026c\u2028\u2029\n\u0001\"é""#
        );
    }

    #[test]
    fn legacy_plain_json_payload_decodes() {
        let payload = STANDARD.encode(br#"{"name":"legacy","version":3}"#);
        let release = decode_release(payload.as_bytes()).unwrap();
        assert_eq!(release.name(), "legacy");
        assert_eq!(release.version(), 3);
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let release: Release = serde_json::from_str(
            r#"{"name":"r","info":{"status":"deployed","deleted":""},"config":{"b":1,"a":{"x":[1,2.5,"s"]}},"version":2,"namespace":"ns","future":{"z":1,"a":2}}"#,
        )
        .unwrap();
        let encoded = encode_release(&release).unwrap();
        assert_eq!(decode_release(encoded.as_bytes()).unwrap(), release);
    }

    #[test]
    fn corrupt_payloads_are_errors_not_panics() {
        assert!(matches!(
            decode_release(b"!!!not base64"),
            Err(CodecError::Base64(_))
        ));
        let bad_gzip = STANDARD.encode([0x1f, 0x8b, 0x08, 0, 0, 0]);
        assert!(matches!(
            decode_release(bad_gzip.as_bytes()),
            Err(CodecError::Gzip(_))
        ));
        let bad_json = STANDARD.encode(b"{\"name\": ");
        assert!(matches!(
            decode_release(bad_json.as_bytes()),
            Err(CodecError::Json { .. })
        ));
        let wrong_shape = STANDARD.encode(b"[1,2]");
        assert!(matches!(
            decode_release(wrong_shape.as_bytes()),
            Err(CodecError::Json { .. })
        ));
        assert!(decode_release(b"").is_err());
    }
}
