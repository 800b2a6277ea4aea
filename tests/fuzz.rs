//! Deterministic fuzzing of every parser that reads input from outside: the template lexer,
//! parser and executor, the YAML readers, `--set` parsing, image references, the release
//! record codec and the protobuf list reader. Each target mutates its seeds (fixtures/fuzz/
//! <target>/ plus the built-in ones below) with a small seeded generator for a fixed number of
//! cases, so `make test` runs exactly the same inputs every time; no case may panic, and the
//! executor runs under a small render budget so memory and time stay bounded.
//!
//! A panicking input is written to fixtures/fuzz/<target>/crash-<hash> and replayed by every
//! later run (keep it after fixing the bug). `KEELSON_FUZZ_SCALE=N` runs N times the cases with
//! other seeds, for a longer hunt.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One mutation of `input`: flip, insert a dictionary token, delete, duplicate or splice.
fn mutate(rng: &mut Rng, input: &[u8], dictionary: &[&[u8]], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 | 2 if !dictionary.is_empty() => {
                let token = dictionary[rng.below(dictionary.len())];
                out.splice(at..at, token.iter().copied());
            }
            3 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(32)).min(out.len());
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            5 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let start = rng.below(other.len() + 1);
                let end = (start + rng.below(64)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            _ => out.insert(at, rng.next() as u8),
        }
    }
    out.truncate(64 * 1024);
    out
}

fn fixtures(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fuzz")
        .join(target)
}

/// The stored corpus and crashers of a target.
fn stored(target: &str) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(fixtures(target)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

fn scale() -> u64 {
    std::env::var("KEELSON_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Runs `check` on every stored input, every seed, and `cases` mutations; panics (after saving
/// the input) on the first one that panics or that `check` reports as a failure.
fn fuzz(
    target: &str,
    cases: usize,
    builtin: &[&[u8]],
    dictionary: &[&[u8]],
    check: impl Fn(&[u8]) -> Result<(), String>,
) {
    let mut seeds: Vec<Vec<u8>> = builtin.iter().map(|s| s.to_vec()).collect();
    seeds.extend(stored(target));
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    let rounds = scale();
    let mut rng = Rng::new(
        target
            .bytes()
            .fold(rounds, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    );
    for _ in 0..(cases as u64 * rounds) {
        let base = &seeds[rng.below(seeds.len())];
        inputs.push(mutate(&mut rng, base, dictionary, &seeds));
    }
    let total = inputs.len();
    for input in inputs {
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(reason)) => reason,
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string()),
        };
        let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        let path = fixtures(target).join(format!("crash-{hash:016x}"));
        let saved = std::fs::create_dir_all(fixtures(target))
            .and_then(|_| std::fs::write(&path, &input))
            .map(|_| format!("saved as {}", path.display()))
            .unwrap_or_else(|err| format!("not saved: {err}"));
        panic!(
            "{target}: {failure}\ninput ({saved}): {:?}",
            String::from_utf8_lossy(&input)
        );
    }
    println!("{target}: {total} inputs, no panics");
}

fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

const TEMPLATE_SEEDS: &[&[u8]] = &[
    b"{{ .Values.a | default \"x\" | quote }}",
    b"{{- range $i, $v := .Values.list }}{{ $i }}={{ $v }}{{ end -}}",
    b"{{ define \"t\" }}{{ . }}{{ end }}{{ include \"t\" .Values | nindent 2 }}",
    b"{{ if and .Values.a (not .Values.b) }}{{ toYaml .Values | indent 4 }}{{ else if .x }}y{{ end }}",
    b"{{ with .Values.m }}{{ range $k, $v := . }}{{ $k }}: {{ $v | toJson }}{{ end }}{{ end }}",
    b"{{ $x := dict \"a\" 1 }}{{ $_ := set $x \"b\" (list 1 2 3) }}{{ $x | toYaml }}",
    b"{{ printf \"%s-%d\" .Release.Name 3 | trunc 63 | trimSuffix \"-\" }}",
    b"{{ tpl \"{{ .Values.a }}\" . }}{{/* comment */}}{{ block \"b\" . }}z{{ end }}",
    b"{{ range until 3 }}{{ . }}{{ break }}{{ end }}{{ fromYaml \"a: [1, {b: c}]\" | toJson }}",
    b"{{ regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }}{{ semverCompare \">=1.2\" \"1.3.0\" }}",
];

const TEMPLATE_TOKENS: &[&[u8]] = &[
    b"{{",
    b"}}",
    b"{{-",
    b"-}}",
    b"(",
    b")",
    b"|",
    b"$",
    b".",
    b"\"",
    b"`",
    b"'",
    b":=",
    b"=",
    b"end",
    b"range",
    b"if",
    b"else",
    b"with",
    b"define",
    b"template",
    b"include",
    b"block",
    b"break",
    b"continue",
    b"nil",
    b"true",
    b"1e9",
    b"0x1F",
    b"-3",
    b".Values",
    b"$x",
    b"/*",
    b"*/",
    b"until 1000",
    b"toYaml",
    b"fromYaml",
    b"tpl",
    b"required",
    b"fail",
    b"\n",
];

/// Runs `f` on a thread with the stack the renderer gives templates (the parser descends
/// recursively up to Go's 10000 levels, as it does in production on that thread).
fn on_render_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .stack_size(512 * 1024 * 1024)
            .spawn_scoped(scope, f);
        match worker.map(|handle| handle.join()) {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(err) => panic!("cannot start the fuzz thread: {err}"),
        }
    });
}

#[test]
fn template_lexer_and_parser() {
    on_render_stack(template_lexer_and_parser_cases);
}

fn template_lexer_and_parser_cases() {
    use gotemplate::TemplateSet;
    use keelson::render::engine::helm_function_registry;
    let funcs = Arc::new(helm_function_registry());
    // Go's parser limit: 10000 nested parentheses parse, one more is refused.
    let deep = |n: usize| format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    let mut set = TemplateSet::new("gotpl", funcs.clone());
    let refused = set
        .parse("deep", &deep(10_001))
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("max expression depth exceeded")),
        "{refused:?}"
    );
    fuzz("template", 3000, TEMPLATE_SEEDS, TEMPLATE_TOKENS, |input| {
        let source = text(input);
        let tokens = gotemplate::lex(&source);
        if tokens.tokens.is_empty() {
            return Err("the lexer returned no tokens (it always ends with Eof or Error)".into());
        }
        let mut set = TemplateSet::new("gotpl", funcs.clone());
        let _ = set.parse("t", &source);
        Ok(())
    });
}

#[test]
fn template_executor() {
    use gotemplate::RenderBudget;
    use gotemplate::Value;
    use keelson::render::engine::{RenderOptions, TemplateFile, render};
    let dot = Value::from_json(&serde_json::json!({
        "Values": {"a": "x", "b": false, "list": [1, "two", {"three": 3}], "m": {"k": "v", "n": 1.5}},
        "Release": {"Name": "r", "Namespace": "ns", "Revision": 1},
        "Chart": {"Name": "c", "Version": "1.0.0"},
    }));
    let options = RenderOptions {
        budget: RenderBudget {
            max_steps: 200_000,
            max_output_bytes: 4 * 1024 * 1024,
            time_limit: Duration::from_secs(5),
        },
        ..RenderOptions::default()
    };
    fuzz("exec", 600, TEMPLATE_SEEDS, TEMPLATE_TOKENS, |input| {
        let files = vec![TemplateFile {
            name: "c/templates/t.yaml".to_string(),
            text: text(input),
            dot: dot.clone(),
        }];
        match render(files, &options) {
            Err(err) if err.to_string().contains("panicked") => Err(err.to_string()),
            _ => Ok(()),
        }
    });
}

const YAML_SEEDS: &[&[u8]] = &[
    b"a: 1\nb: [x, 'y', \"z\"]\nc: {d: ~, e: yes, f: 0755, g: 1.5e3}\n",
    b"---\n# Source: c/templates/x.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: |\n    line\n---\n",
    b"base: &b {x: 1}\nother:\n  <<: *b\n  y: [*b, *b]\n",
    b"? complex\n: value\n!!str tagged: !!binary aGVsbG8=\nt: 2001-12-14T21:59:43.10-05:00\n",
    b"- - - nested\n  - list\n- >-\n  folded\n  text\n",
];

const YAML_TOKENS: &[&[u8]] = &[
    b"&a ",
    b"*a",
    b"<<: ",
    b"- ",
    b": ",
    b"\n",
    b"  ",
    b"\t",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"'",
    b"\"",
    b"|",
    b">",
    b"!!int ",
    b"!!str ",
    b"!!binary ",
    b"---\n",
    b"...\n",
    b"? ",
    b"#",
    b"~",
    b".inf",
    b"0x",
    b"1e999",
    b"%YAML 1.1\n",
    b"\\u0000",
];

#[test]
fn yaml_readers() {
    use gocompat::yaml::{parse_first_document, parse_manifest_documents, parse_values};
    fuzz("yaml", 3000, YAML_SEEDS, YAML_TOKENS, |input| {
        let source = text(input);
        let _ = parse_first_document(&source, "fuzz.yaml");
        let _ = parse_values(&source, "fuzz.yaml");
        let _ = parse_manifest_documents(&source, "fuzz.yaml");
        let _ = gotemplate::yaml_to_value(&source);
        Ok(())
    });
}

const SET_SEEDS: &[&[u8]] = &[
    b"a.b=c,d[0]=1,e=true",
    b"name={a,b,c},x\\.y=z",
    b"list[2].k=v,list[0]=null",
    b"json={\"a\": [1, 2, {\"b\": null}]}",
    b"a=b\\,c,d=",
];

const SET_TOKENS: &[&[u8]] = &[
    b".",
    b",",
    b"=",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\\",
    b"0",
    b"65535",
    b"99999999999",
    b"-1",
    b"null",
    b"true",
    b"\"",
    b":",
];

#[test]
fn set_parsing() {
    use keelson::values::{SetKind, strvals::parse_into};
    fuzz("set", 3000, SET_SEEDS, SET_TOKENS, |input| {
        let expr = text(input);
        for kind in [SetKind::Typed, SetKind::String, SetKind::Json] {
            let mut values = serde_json::Map::new();
            let _ = parse_into(&expr, kind, &mut values);
        }
        Ok(())
    });
}

const IMAGE_SEEDS: &[&[u8]] = &[
    b"nginx",
    b"docker.io/library/nginx:1.25",
    b"127.0.0.1:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    b"[::1]:5000/a/b:tag",
    b"registry.example.com/a/b/c:1.2.3-rc.1",
];

#[test]
fn image_references() {
    use keelson::registry::ImageRef;
    fuzz(
        "image",
        5000,
        IMAGE_SEEDS,
        &[
            b"/", b":", b"@", b"sha256:", b".", b"-", b"_", b"[", b"]", b"A",
        ],
        |input| {
            if let Ok(image) = ImageRef::parse(&text(input)) {
                let _ = (image.repository(), image.registry_host());
            }
            Ok(())
        },
    );
}

/// Record payloads as stored (base64 of gzip of JSON), from fixtures/records.
fn record_payloads() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/records");
    let mut payloads = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    for path in paths {
        let Ok(object) = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string())
            })
        else {
            continue;
        };
        let Some(release) = object["data"]["release"].as_str() else {
            continue;
        };
        // Secrets hold the payload base64-encoded once more; ConfigMaps as is.
        let payload = if object["kind"] == "Secret" {
            base64::engine::general_purpose::STANDARD
                .decode(release)
                .unwrap_or_default()
        } else {
            release.as_bytes().to_vec()
        };
        payloads.push(payload);
    }
    payloads
}

fn gzip_base64(json: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(json);
    let gz = encoder.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .encode(gz)
        .into_bytes()
}

#[test]
fn record_codec() {
    use keelson::storage::codec::{decode_json_bytes, decode_release};
    let payloads = record_payloads();
    assert!(
        !payloads.is_empty(),
        "no records under fixtures/records to seed the codec"
    );
    let seeds: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    // The payload as stored: mutated base64.
    fuzz(
        "record-payload",
        400,
        &seeds,
        &[b"=", b"A", b"/", b"+", b"\n"],
        |input| {
            let _ = decode_release(input);
            Ok(())
        },
    );
    // The JSON inside: mutated, then encoded as Helm would, so the decoder sees valid gzip.
    let jsons: Vec<Vec<u8>> = payloads
        .iter()
        .filter_map(|p| decode_json_bytes(p).ok())
        .collect();
    let json_seeds: Vec<&[u8]> = jsons.iter().map(Vec::as_slice).collect();
    fuzz(
        "record-json",
        400,
        &json_seeds,
        &[
            b"{", b"}", b"[", b"]", b"\"", b":", b",", b"null", b"1e400", b"-0", b"\\u0000",
            b"\\ud800",
        ],
        |input| {
            let _ = decode_release(&gzip_base64(input));
            Ok(())
        },
    );
}

/// A protobuf writer for the wire reader's seeds.
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

fn listed_object(name: &str, labels: &BTreeMap<&str, &str>, payload: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    field(1, name.as_bytes(), &mut meta);
    field(3, b"ns", &mut meta);
    field(6, b"42", &mut meta);
    varint(7 << 3, &mut meta);
    varint(300, &mut meta);
    for (k, v) in labels {
        let mut entry = Vec::new();
        field(1, k.as_bytes(), &mut entry);
        field(2, v.as_bytes(), &mut entry);
        field(11, &entry, &mut meta);
    }
    let mut object = Vec::new();
    field(1, &meta, &mut object);
    let mut entry = Vec::new();
    field(1, b"release", &mut entry);
    field(2, payload, &mut entry);
    field(2, &entry, &mut object);
    field(3, b"helm.sh/release.v1", &mut object);
    object
}

fn envelope(kind: &str, list: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    field(1, b"v1", &mut type_meta);
    field(2, kind.as_bytes(), &mut type_meta);
    let mut unknown = Vec::new();
    field(1, &type_meta, &mut unknown);
    field(2, list, &mut unknown);
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown);
    out
}

#[test]
fn protobuf_list_reader() {
    use keelson::storage::wire::{ObjectKind, decode_list, decode_status};
    let labels: BTreeMap<&str, &str> =
        [("name", "web"), ("owner", "helm"), ("status", "deployed")].into();
    let mut list = Vec::new();
    field(1, b"", &mut list);
    field(
        2,
        &listed_object("sh.helm.release.v1.web.v1", &labels, b"H4sIAAAA"),
        &mut list,
    );
    field(2, &listed_object("other", &BTreeMap::new(), b""), &mut list);
    let secrets = envelope("SecretList", &list);
    let config_maps = envelope("ConfigMapList", &list);
    let mut status = Vec::new();
    field(2, b"Failure", &mut status);
    varint(6 << 3, &mut status);
    varint(404, &mut status);
    let status = envelope("Status", &status);
    fuzz(
        "wire",
        4000,
        &[&secrets, &config_maps, &status],
        &[
            b"\x0a",
            b"\x12",
            b"\xff\xff\xff\xff\x0f",
            b"\x80",
            b"k8s\0",
            b"\x1a\x04gzip",
        ],
        |input| {
            for kind in [ObjectKind::Secret, ObjectKind::ConfigMap] {
                let _ = decode_list(input, kind, "release");
            }
            let _ = decode_status(input);
            Ok(())
        },
    );
}
