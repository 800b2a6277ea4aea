//! Round-trip tests: records captured from the real helm 3 and helm 4 (fixtures/records) and
//! generated records decode and re-encode without losing or reordering anything.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};

use super::codec::{decode_json_bytes, decode_release, encode_release, to_go_json};
use super::record::{Carried, GoValue, Release, Writer};

/// (file name, the stored `release` payload, the Go-written JSON inside it)
fn captured_records() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/records");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/records exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let object: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("fixture readable"))
                .expect("fixture is JSON");
        let data = object["data"]["release"].as_str().expect("data.release");
        let payload = if object["kind"] == "Secret" {
            STANDARD.decode(data).expect("Secret data is base64")
        } else {
            data.as_bytes().to_vec()
        };
        let json = decode_json_bytes(&payload).expect("helm's payload decodes");
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        out.push((name, payload, json));
    }
    assert!(
        out.len() >= 16,
        "expected the captured records, found {}",
        out.len()
    );
    out
}

#[test]
fn helm_written_json_re_encodes_byte_for_byte() {
    for (name, payload, json) in captured_records() {
        let release = decode_release(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = to_go_json(&release).expect("encodes");
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&json),
            "{name}: re-encoded JSON differs from helm's"
        );
        // And through the whole codec (gzip + base64) back to the same record.
        let encoded = encode_release(&release).expect("encodes");
        assert_eq!(
            decode_release(encoded.as_bytes()).expect("decodes"),
            release,
            "{name}"
        );
    }
}

#[test]
fn captured_records_decode_completely() {
    for (name, payload, _) in captured_records() {
        let release = decode_release(&payload).expect("decodes");
        assert!(
            release.name().starts_with("demo-") || release.name().starts_with("probe-"),
            "{name}"
        );
        assert!(release.version() >= 1, "{name}");
        let chart = release.chart.as_ref().expect("chart");
        assert!(!chart.templates().is_empty(), "{name}");
        assert!(chart.values.is_some(), "{name}");
        assert!(release.manifest.is_some(), "{name}");
        // Everything Helm 3 and 4.1 write is modelled; nothing lands in the carried extras.
        assert!(release.extra.is_empty(), "{name}: {:?}", release.extra);
        assert!(chart.extra.is_empty(), "{name}: {:?}", chart.extra);
        let expected_writer = if name.contains("helm3") {
            Writer::Helm3
        } else {
            Writer::Helm4
        };
        assert_eq!(release.writer(), expected_writer, "{name}");
        if name.contains("probe") {
            let hooks = release.hooks.as_ref().expect("probe has a hook");
            assert_eq!(hooks[0].weight, Some(5), "{name}");
            assert_eq!(release.status().as_str(), "uninstalled", "{name}");
        }
    }
}

#[test]
fn our_gzip_header_matches_helms() {
    for (name, payload, _) in captured_records() {
        let theirs = STANDARD.decode(&payload).expect("base64");
        let release = decode_release(&payload).expect("decodes");
        let ours = STANDARD
            .decode(encode_release(&release).expect("encodes"))
            .expect("base64");
        assert_eq!(theirs.get(..10), ours.get(..10), "{name}: gzip header");
    }
}

#[test]
fn unknown_fields_from_a_newer_helm_survive() {
    let (_, payload, json) = captured_records().into_iter().next().expect("a record");
    let mut value: Value = serde_json::from_slice(&json).expect("json");
    value["future_top"] = serde_json::json!({"z": 1, "a": [true, null]});
    value["info"]["rollback_revision"] = Value::from(1);
    value["chart"]["future_chart"] = Value::from("x");
    value["chart"]["templates"][0]["future_file"] = Value::from(2.5);
    let text = serde_json::to_vec(&value).expect("json");
    let release: Release = serde_json::from_slice(&text).expect("decodes");
    assert_eq!(
        release
            .info
            .as_ref()
            .and_then(|i| i.extra.get("rollback_revision")),
        Some(&GoValue::Number(1.into()))
    );
    let again: Value =
        serde_json::from_slice(&to_go_json(&release).expect("encodes")).expect("json");
    assert_eq!(again, value);
    assert!(decode_release(&payload).is_ok());
}

/// A small deterministic generator (xorshift) for property-style tests without extra crates.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn string(&mut self) -> String {
        const PIECES: [&str; 14] = [
            "a", "Z", "0", " ", "<", ">", "&", "\"", "\\", "\n", "\u{1}", "\u{2028}", "é", "✓",
        ];
        (0..self.below(8))
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }
    fn number(&mut self) -> Number {
        match self.below(5) {
            0 => Number::from(self.next() as i64),
            1 => Number::from(self.next()),
            2 => Number::from(self.below(100)),
            _ => {
                let mantissa = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
                let exponent = self.below(80) as i32 - 40;
                let float = mantissa * 10f64.powi(exponent);
                // Go writes integral floats below 1e21 as integers, which read back as integers:
                // the same number to Go, a different variant to serde_json. Generate those as
                // integers directly.
                if float.fract() == 0.0 && float.abs() < 9e18 {
                    Number::from(float as i64)
                } else if float.fract() == 0.0 && float.abs() < 1e21 {
                    Number::from(self.below(1000))
                } else {
                    Number::from_f64(float).unwrap_or_else(|| Number::from(0))
                }
            }
        }
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 1),
            2 => Value::Number(self.number()),
            3 => Value::String(self.string()),
            4 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(self.map(depth - 1)),
        }
    }
    fn map(&mut self, depth: u32) -> Map<String, Value> {
        (0..self.below(5))
            .map(|_| (self.string(), self.value(depth)))
            .collect()
    }
    fn carried(&mut self) -> Carried {
        let mut carried = Carried::default();
        for i in 0..self.below(3) {
            let v = self.value(2);
            carried.set(
                &format!("zz_unknown_{i}_{}", self.below(1000)),
                GoValue::from(&v),
            );
        }
        carried
    }
    fn maybe_string(&mut self) -> Option<String> {
        (self.below(3) > 0).then(|| self.string())
    }
    fn release(&mut self) -> Release {
        const STATUSES: [&str; 5] = [
            "deployed",
            "superseded",
            "failed",
            "pending-upgrade",
            "brand-new",
        ];
        let status = STATUSES[self.below(5) as usize];
        let mut value = serde_json::json!({
            "name": self.string(),
            "info": {
                "first_deployed": "2026-11-27T06:47:10.243117193Z",
                "deleted": if self.below(2) == 0 { "" } else { "2026-11-27T06:47:11Z" },
                "description": self.string(),
                "status": status,
                "notes": self.string(),
            },
            "chart": {
                "metadata": {"name": self.string(), "version": "1.0.0", "appVersion": self.string()},
                "lock": null,
                "templates": [{"name": "templates/a.yaml", "data": STANDARD.encode(self.string())}],
                "values": Value::Object(self.map(3)),
                "schema": null,
                "files": null,
            },
            "config": Value::Object(self.map(3)),
            "manifest": self.string(),
            "version": self.below(100) + 1,
            "namespace": self.string(),
        });
        if self.below(2) == 0 {
            value["apply_method"] = Value::from("ssa");
        }
        let mut release: Release = serde_json::from_value(value).expect("generated release");
        release.extra = self.carried();
        if let Some(info) = release.info.as_mut() {
            info.extra = self.carried();
            info.notes = self.maybe_string();
        }
        if let Some(chart) = release.chart.as_mut() {
            chart.extra = self.carried();
        }
        release
    }
}

#[test]
fn generated_records_round_trip() {
    let mut generator = Gen(0x9e37_79b9_7f4a_7c15);
    for case in 0..500 {
        let release = generator.release();
        let encoded = encode_release(&release).expect("encodes");
        let decoded =
            decode_release(encoded.as_bytes()).unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert_eq!(decoded, release, "case {case}");
        // Encoding is stable: what we write re-encodes to the same bytes.
        let json = to_go_json(&release).expect("encodes");
        let reparsed: Release = serde_json::from_slice(&json).expect("parses");
        assert_eq!(to_go_json(&reparsed).expect("encodes"), json, "case {case}");
    }
}

#[test]
fn go_json_floats_round_trip() {
    let mut generator = Gen(42);
    for _ in 0..5000 {
        let bits = generator.next();
        let value = f64::from_bits(bits);
        if !value.is_finite() {
            continue;
        }
        let text = String::from_utf8(to_go_json(&value).expect("encodes")).expect("utf8");
        let back: f64 = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back.to_bits(), value.to_bits(), "{text}");
    }
}
