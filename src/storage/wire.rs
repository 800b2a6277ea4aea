//! Reads the apiserver's protobuf form of Secret and ConfigMap lists (and of its error Status).
//!
//! A LIST of release records is megabytes of payload. In JSON the apiserver base64-encodes every
//! Secret's bytes and keelson parses it all back; in protobuf the payload travels as it is
//! stored and the apiserver answers sooner. Only the few fields a record needs are read; every
//! other field is skipped by its wire type, so objects from newer apiservers still read.
//! docs/dependencies.md says why this small reader is hand-written rather than generated.

use std::collections::BTreeMap;

/// The media type to ask for; the apiserver falls back to JSON when a resource has no protobuf.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// Every protobuf response starts with these four bytes, then a `runtime.Unknown` envelope.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf response at byte {offset}: {problem}")]
pub struct WireError {
    pub offset: usize,
    pub problem: String,
}

/// The object kinds a release record can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Secret,
    ConfigMap,
}

/// What keelson reads of one listed object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedObject {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub resource_version: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    /// Secrets only; ConfigMaps have no type.
    pub secret_type: Option<String>,
    /// The value of the wanted data key, as stored (Helm's base64 text).
    pub payload: Option<Vec<u8>>,
}

/// What keelson reads of a `Status` (the body of an error response).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSummary {
    pub status: String,
    pub message: String,
    pub reason: String,
    pub code: u16,
}

/// Decodes a `SecretList` or `ConfigMapList` response, keeping of each object's data only the
/// value under `data_key`.
pub fn decode_list(
    body: &[u8],
    kind: ObjectKind,
    data_key: &str,
) -> Result<Vec<ListedObject>, WireError> {
    let (raw, base) = unwrap_envelope(body)?;
    let mut items = Vec::new();
    let mut list = Reader::new(raw, base);
    while let Some((field, value)) = list.next_field()? {
        if field == 2 {
            let (bytes, offset) = value.bytes(list.offset)?;
            items.push(decode_object(bytes, offset, kind, data_key)?);
        }
    }
    Ok(items)
}

/// Decodes a `Status` response; `None` when the body is not protobuf.
pub fn decode_status(body: &[u8]) -> Option<StatusSummary> {
    let (raw, base) = unwrap_envelope(body).ok()?;
    let mut status = StatusSummary::default();
    let mut reader = Reader::new(raw, base);
    while let Some((field, value)) = reader.next_field().ok()? {
        match field {
            2 => status.status = value.string(reader.offset).ok()?,
            3 => status.message = value.string(reader.offset).ok()?,
            4 => status.reason = value.string(reader.offset).ok()?,
            6 => status.code = u16::try_from(value.varint(reader.offset).ok()?).unwrap_or(0),
            _ => {}
        }
    }
    Some(status)
}

/// Checks the magic prefix and returns the `raw` bytes of the `runtime.Unknown` envelope (and
/// their offset in the body, for error messages).
fn unwrap_envelope(body: &[u8]) -> Result<(&[u8], usize), WireError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(WireError {
            offset: 0,
            problem: "the body does not start with the protobuf magic \"k8s\\0\"".to_string(),
        });
    };
    let mut reader = Reader::new(envelope, MAGIC.len());
    let mut raw = None;
    let mut encoding = String::new();
    while let Some((field, value)) = reader.next_field()? {
        match field {
            2 => raw = Some(value.bytes(reader.offset)?),
            3 => encoding = value.string(reader.offset)?,
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(WireError {
            offset: 0,
            problem: format!("unsupported content encoding {encoding:?}"),
        });
    }
    raw.ok_or_else(|| WireError {
        offset: 0,
        problem: "the envelope has no object".to_string(),
    })
}

fn decode_object(
    body: &[u8],
    base: usize,
    kind: ObjectKind,
    data_key: &str,
) -> Result<ListedObject, WireError> {
    let mut object = ListedObject::default();
    let mut reader = Reader::new(body, base);
    while let Some((field, value)) = reader.next_field()? {
        match field {
            1 => {
                let (meta, offset) = value.bytes(reader.offset)?;
                decode_meta(meta, offset, &mut object)?;
            }
            2 => {
                let (entry, offset) = value.bytes(reader.offset)?;
                let (key, data) = map_entry(entry, offset)?;
                if key == data_key {
                    object.payload = Some(data.to_vec());
                }
            }
            3 if kind == ObjectKind::Secret => {
                object.secret_type = Some(value.string(reader.offset)?);
            }
            _ => {}
        }
    }
    Ok(object)
}

fn decode_meta(body: &[u8], base: usize, object: &mut ListedObject) -> Result<(), WireError> {
    let mut reader = Reader::new(body, base);
    while let Some((field, value)) = reader.next_field()? {
        match field {
            1 => object.name = Some(value.string(reader.offset)?),
            3 => object.namespace = Some(value.string(reader.offset)?),
            6 => object.resource_version = Some(value.string(reader.offset)?),
            11 => {
                let (entry, offset) = value.bytes(reader.offset)?;
                let (key, label) = map_entry(entry, offset)?;
                let label = utf8(label, offset)?;
                object
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, label);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A map entry: key (field 1, a string) and value (field 2), either of which may be absent.
fn map_entry(body: &[u8], base: usize) -> Result<(String, &[u8]), WireError> {
    let mut reader = Reader::new(body, base);
    let mut key = String::new();
    let mut value: &[u8] = &[];
    while let Some((field, item)) = reader.next_field()? {
        match field {
            1 => key = item.string(reader.offset)?,
            2 => value = item.bytes(reader.offset)?.0,
            _ => {}
        }
    }
    Ok((key, value))
}

fn utf8(bytes: &[u8], offset: usize) -> Result<String, WireError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError {
        offset,
        problem: "a string field is not UTF-8".to_string(),
    })
}

/// One field's value, by wire type.
enum Value<'a> {
    Varint(u64),
    /// Length-delimited, with the offset of its first byte in the whole body.
    Bytes(&'a [u8], usize),
    /// Fixed 32- or 64-bit values; no field keelson reads has them.
    Fixed,
}

impl<'a> Value<'a> {
    fn bytes(self, offset: usize) -> Result<(&'a [u8], usize), WireError> {
        match self {
            Value::Bytes(bytes, start) => Ok((bytes, start)),
            _ => Err(WireError {
                offset,
                problem: "expected a length-delimited field".to_string(),
            }),
        }
    }

    fn string(self, offset: usize) -> Result<String, WireError> {
        let (bytes, start) = self.bytes(offset)?;
        utf8(bytes, start)
    }

    fn varint(self, offset: usize) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(WireError {
                offset,
                problem: "expected a varint field".to_string(),
            }),
        }
    }
}

/// Walks the fields of one message. `base` is the message's offset in the whole body, so
/// errors point at the byte that is wrong.
struct Reader<'a> {
    body: &'a [u8],
    base: usize,
    pos: usize,
    /// Offset (in the whole body) of the field last returned.
    offset: usize,
}

impl<'a> Reader<'a> {
    fn new(body: &'a [u8], base: usize) -> Self {
        Reader {
            body,
            base,
            pos: 0,
            offset: base,
        }
    }

    fn error(&self, problem: &str) -> WireError {
        WireError {
            offset: self.base + self.pos,
            problem: problem.to_string(),
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.body.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.body.len())
            .ok_or_else(|| self.error("a field runs past the end of its message"))?;
        let bytes = &self.body[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next field number and value, or `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, WireError> {
        if self.pos >= self.body.len() {
            return Ok(None);
        }
        self.offset = self.base + self.pos;
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(self.error("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let len = self.varint()?;
                let start = self.base + self.pos;
                Value::Bytes(self.take(len)?, start)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            other => return Err(self.error(&format!("unsupported wire type {other}"))),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf writer for building test bodies.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        field(1, key.as_bytes(), &mut out);
        field(2, value, &mut out);
        out
    }

    fn secret(name: &str, labels: &[(&str, &str)], data: &[(&str, &[u8])]) -> Vec<u8> {
        let mut meta = Vec::new();
        field(1, name.as_bytes(), &mut meta);
        field(3, b"ns", &mut meta);
        field(6, b"42", &mut meta);
        // A field keelson does not read (generation, a varint) must be skipped.
        varint(7 << 3, &mut meta);
        varint(300, &mut meta);
        for (k, v) in labels {
            field(11, &entry(k, v.as_bytes()), &mut meta);
        }
        let mut out = Vec::new();
        field(1, &meta, &mut out);
        for (k, v) in data {
            field(2, &entry(k, v), &mut out);
        }
        field(3, b"helm.sh/release.v1", &mut out);
        out
    }

    fn envelope(raw: &[u8]) -> Vec<u8> {
        let mut unknown = Vec::new();
        let mut type_meta = Vec::new();
        field(1, b"v1", &mut type_meta);
        field(2, b"SecretList", &mut type_meta);
        field(1, &type_meta, &mut unknown);
        field(2, raw, &mut unknown);
        let mut out = MAGIC.to_vec();
        out.extend(unknown);
        out
    }

    #[test]
    fn reads_a_secret_list() {
        let mut list = Vec::new();
        field(1, b"", &mut list);
        field(
            2,
            &secret(
                "sh.helm.release.v1.web.v1",
                &[("name", "web"), ("owner", "helm")],
                &[("other", b"x"), ("release", b"H4sIAAAA")],
            ),
            &mut list,
        );
        field(2, &secret("plain", &[], &[]), &mut list);
        let items = decode_list(&envelope(&list), ObjectKind::Secret, "release").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name.as_deref(), Some("sh.helm.release.v1.web.v1"));
        assert_eq!(items[0].namespace.as_deref(), Some("ns"));
        assert_eq!(items[0].resource_version.as_deref(), Some("42"));
        assert_eq!(items[0].secret_type.as_deref(), Some("helm.sh/release.v1"));
        assert_eq!(items[0].payload.as_deref(), Some(&b"H4sIAAAA"[..]));
        let labels = items[0].labels.as_ref().unwrap();
        assert_eq!(labels.get("owner").map(String::as_str), Some("helm"));
        assert_eq!(items[1].payload, None);
        assert_eq!(items[1].labels, None);
    }

    #[test]
    fn config_map_field_3_is_not_a_type() {
        let mut cm = Vec::new();
        let mut meta = Vec::new();
        field(1, b"cm", &mut meta);
        field(1, &meta, &mut cm);
        field(2, &entry("release", b"abc"), &mut cm);
        // binaryData: a map entry message, not a string.
        field(3, &entry("blob", &[0xff, 0x00]), &mut cm);
        let mut list = Vec::new();
        field(2, &cm, &mut list);
        let items = decode_list(&envelope(&list), ObjectKind::ConfigMap, "release").unwrap();
        assert_eq!(items[0].secret_type, None);
        assert_eq!(items[0].payload.as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn reads_a_status() {
        let mut status = Vec::new();
        field(2, b"Failure", &mut status);
        field(3, b"secrets is forbidden", &mut status);
        field(4, b"Forbidden", &mut status);
        varint(6 << 3, &mut status);
        varint(403, &mut status);
        let summary = decode_status(&envelope(&status)).unwrap();
        assert_eq!(summary.code, 403);
        assert_eq!(summary.reason, "Forbidden");
        assert_eq!(summary.message, "secrets is forbidden");
        assert_eq!(decode_status(b"{\"kind\":\"Status\"}"), None);
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        let mut list = Vec::new();
        field(
            2,
            &secret("a", &[("name", "a")], &[("release", b"x")]),
            &mut list,
        );
        let good = envelope(&list);
        // Every truncation of a valid body, and every single-byte corruption of it, is either
        // read or refused with an error; none panics.
        for end in 0..good.len() {
            let _ = decode_list(&good[..end], ObjectKind::Secret, "release");
        }
        for i in 0..good.len() {
            for byte in [0x00, 0x07, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = byte;
                let _ = decode_list(&bad, ObjectKind::Secret, "release");
                let _ = decode_status(&bad);
            }
        }
        let err = decode_list(b"{\"items\":[]}", ObjectKind::Secret, "release").unwrap_err();
        assert!(err.problem.contains("magic"), "{err}");
        let mut huge = MAGIC.to_vec();
        huge.extend([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let err = decode_list(&huge, ObjectKind::Secret, "release").unwrap_err();
        assert!(err.problem.contains("past the end"), "{err}");
        let mut endless = MAGIC.to_vec();
        endless.extend([0x08; 1].iter().chain([0xff; 11].iter()));
        assert!(decode_list(&endless, ObjectKind::Secret, "release").is_err());
    }

    #[test]
    fn gzip_encoded_envelopes_are_refused() {
        let mut unknown = Vec::new();
        field(2, b"...", &mut unknown);
        field(3, b"gzip", &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        let err = decode_list(&body, ObjectKind::Secret, "release").unwrap_err();
        assert!(err.problem.contains("gzip"), "{err}");
    }
}
