//! docker-registry instances that tests and benchmarks start themselves: token auth checked by
//! the real registry against a small RS256 token issuer (signed with a throwaway `openssl` key),
//! TLS with a self-signed certificate, and an unauthenticated writer sharing the storage so
//! images can be pushed. Processes are killed (by their own handle) when dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

use super::{Peer, Reply, Request};
use crate::support::registry::TestRegistry;

pub const SERVICE: &str = "keelson-test-registry";
pub const ISSUER: &str = "keelson-test-issuer";
pub const USER: &str = "token-user";
pub const PASSWORD: &str = "token-password";
/// Repositories under this prefix may be pulled anonymously; others need USER.
pub const PUBLIC_PREFIX: &str = "public/";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// libtrust's key ID, which distribution matches against the `kid` of a token: SHA-256 of the
/// DER public key, truncated to 240 bits, base32, in twelve groups of four.
pub fn libtrust_key_id(public_key_der: &[u8]) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = sha2::Sha256::digest(public_key_der);
    let truncated = hash.get(..30).expect("sha256 has 32 bytes");
    let mut bits = 0u64;
    let mut bit_count = 0;
    let mut encoded = String::new();
    for byte in truncated {
        bits = (bits << 8) | u64::from(*byte);
        bit_count += 8;
        while bit_count >= 5 {
            bit_count -= 5;
            let index = ((bits >> bit_count) & 31) as usize;
            encoded.push(char::from(ALPHABET[index]));
        }
    }
    encoded
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// Signing material: an RSA key and its self-signed certificate (the registry's root bundle).
pub struct Keys {
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_id: String,
}

pub fn make_keys(dir: &Path) -> Keys {
    let key_path = dir.join("issuer-key.pem");
    let cert_path = dir.join("issuer-cert.pem");
    let der_path = dir.join("issuer-pub.der");
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={ISSUER}"),
            "-keyout",
            &key_path.display().to_string(),
            "-out",
            &cert_path.display().to_string(),
        ],
    );
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            &key_path.display().to_string(),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &der_path.display().to_string(),
        ],
    );
    let der = std::fs::read(&der_path).expect("public key");
    Keys {
        key_path,
        cert_path,
        key_id: libtrust_key_id(&der),
    }
}

pub fn sign_jwt(keys: &Keys, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": keys.key_id});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-sign",
            &keys.key_path.display().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(signing_input.as_bytes()).expect("write");
    }
    let out = child.wait_with_output().expect("openssl output");
    assert!(out.status.success(), "openssl dgst failed");
    format!("{signing_input}.{}", b64url(&out.stdout))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The token server: GET /token?service=…&scope=repository:NAME:ACTIONS with optional Basic.
pub fn issuer(
    keys: Arc<Keys>,
    expires_in: u64,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let serial = AtomicU64::new(0);
    move |request: &Request| {
        if request.path() != "/token" {
            return Reply::new(404);
        }
        let expected_basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        let account = match request.header("authorization") {
            None => None,
            Some(value) if value == expected_basic => Some(USER),
            Some(_) => {
                return Reply::json(401, serde_json::json!({"details": "invalid credentials"}));
            }
        };
        if request.query("service").as_deref() != Some(SERVICE) {
            return Reply::json(400, serde_json::json!({"details": "unknown service"}));
        }
        let mut access = Vec::new();
        if let Some(scope) = request.query("scope") {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next(), parts.next(), parts.next());
            if let (Some("repository"), Some(name), Some(actions)) = (kind, name, actions) {
                let wanted: Vec<&str> = actions.split(',').collect();
                let granted: Vec<&str> = if account.is_some() {
                    wanted
                } else if name.contains(PUBLIC_PREFIX) {
                    wanted.into_iter().filter(|a| *a == "pull").collect()
                } else {
                    Vec::new()
                };
                access.push(
                    serde_json::json!({"type": "repository", "name": name, "actions": granted}),
                );
            }
        }
        let issued = now();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": account.unwrap_or(""),
            "aud": SERVICE,
            "exp": issued + expires_in,
            "nbf": issued - 5,
            "iat": issued,
            "jti": format!("keelson-{}-{}", issued, serial.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        Reply::json(
            200,
            serde_json::json!({"token": sign_jwt(&keys, &claims), "expires_in": expires_in}),
        )
    }
}

/// A docker-registry process this test started; killed (by its own handle) when dropped.
pub struct RegistryProcess {
    child: Child,
    /// `127.0.0.1:port`
    pub host: String,
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// How a started registry is configured beyond plain HTTP without auth.
pub enum Extra<'a> {
    None,
    Token { realm: &'a str, cert: &'a Path },
    Tls { cert: &'a Path, key: &'a Path },
}

pub async fn start_registry(dir: &Path, name: &str, extra: Extra<'_>) -> RegistryProcess {
    let port = free_port();
    let mut config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: keelson-token-test\n",
        dir.join("data").display()
    );
    let scheme = match extra {
        Extra::None => "http",
        Extra::Token { realm, cert } => {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                cert.display()
            ));
            "http"
        }
        Extra::Tls { cert, key } => {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            "https"
        }
    };
    let config_path = dir.join(format!("{name}.yml"));
    std::fs::write(&config_path, config).expect("registry config");
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    let child = Command::new("docker-registry")
        .args(["serve", &config_path.display().to_string()])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect(
            "start docker-registry (the Debian docker-registry package of the test environment)",
        );
    let process = RegistryProcess {
        child,
        host: format!("127.0.0.1:{port}"),
    };
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .expect("readiness client");
    for _ in 0..100 {
        if let Ok(response) = http
            .get(format!("{scheme}://{}/v2/", process.host))
            .send()
            .await
        {
            // 200 without auth, 401 with token auth: either way it is serving.
            if response.status().is_success() || response.status().as_u16() == 401 {
                return process;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "docker-registry {name} did not start; see {}",
        dir.join(format!("{name}.log")).display()
    );
}

pub struct Setup {
    pub issuer: Peer,
    pub registry: RegistryProcess,
    pub writer: TestRegistry,
    _writer_process: RegistryProcess,
    pub dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn setup(name: &str, expires_in: u64) -> Setup {
    keelson::cluster::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!(
        "keelson-token-{name}-{}-{:x}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let keys = Arc::new(make_keys(&dir));
    let issuer = Peer::start(issuer(keys.clone(), expires_in)).await;
    let realm = format!("http://{}/token", issuer.host());
    let registry = start_registry(
        &dir,
        "token",
        Extra::Token {
            realm: &realm,
            cert: &keys.cert_path,
        },
    )
    .await;
    let writer_process = start_registry(&dir, "writer", Extra::None).await;
    let writer = TestRegistry::new(writer_process.host.clone(), None);
    Setup {
        issuer,
        registry,
        writer,
        _writer_process: writer_process,
        dir,
    }
}
