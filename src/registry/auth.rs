//! Registry credentials: `WWW-Authenticate` challenges, Kubernetes pull secrets matched to hosts
//! the way the kubelet matches them, and docker credential helpers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::reference::{DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN, ImageRef};

const HELPER_TIMEOUT: Duration = Duration::from_secs(10);
const HELPER_OUTPUT_LIMIT: usize = 64 * 1024;
/// The key Docker tools store Docker Hub credentials under.
const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";

/// Credentials that cannot be read or used; names the file, key or helper involved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read pull secret {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pull secret {source_name} is not valid YAML or JSON: {reason}")]
    Syntax { source_name: String, reason: String },
    #[error(
        "pull secret {source_name}: {reason} (expected a Secret of type kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg, or a docker config.json)"
    )]
    Shape { source_name: String, reason: String },
    #[error("pull secret {source_name}: entry {key:?} has an invalid `auth` field: {reason}")]
    InvalidAuth {
        source_name: String,
        key: String,
        reason: String,
    },
    #[error("credential helper name {0:?} is invalid (expected letters, digits, '.', '_' or '-')")]
    InvalidHelperName(String),
    #[error("credential helper docker-credential-{helper} for {server} failed: {reason}")]
    Helper {
        helper: String,
        server: String,
        reason: String,
    },
}

/// A username and secret for one registry. The secret never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthEntry {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (docker's `identitytoken`), used instead of the password.
    pub identity_token: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One pull-secret key, parsed the way the kubelet's keyring parses it.
#[derive(Debug, Clone)]
struct KeyPattern {
    /// The key as normalized for matching and ordering (`host[:port]/path`).
    normalized: String,
    host_parts: Vec<String>,
    port: String,
    path: String,
}

/// Credentials from pull secrets and docker config files, plus the helpers they name.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Sorted the way the kubelet orders its keyring: most specific key first.
    entries: Vec<(KeyPattern, AuthEntry)>,
    /// `credHelpers`: registry host → helper name.
    helpers: BTreeMap<String, String>,
    /// `credsStore`: the helper for every registry without its own.
    default_helper: Option<String>,
}

/// serde_json's error without the text it quotes: for secrets, `invalid type: string "…"` would
/// put the secret itself into logs and plan reasons. Kind and position are enough to fix it.
pub(crate) fn json_error_without_content(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match err.classify() {
        Category::Io => "cannot be read",
        Category::Syntax => "is not valid JSON",
        Category::Data => "has a value of the wrong type",
        Category::Eof => "ends early",
    };
    format!("{what} (line {}, column {})", err.line(), err.column())
}

#[derive(Deserialize, Default)]
struct DockerConfigEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl fmt::Debug for DockerConfigEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("DockerConfigEntry")
            .field("auth", &redacted(&self.auth))
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("identitytoken", &redacted(&self.identitytoken))
            .finish()
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerConfigEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

impl Credentials {
    /// No credentials: anonymous access only.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads a pull secret file: a Kubernetes Secret (YAML or JSON, `data` or `stringData`) of
    /// type `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`, or a docker config.json.
    pub fn from_file(path: &Path) -> Result<Self, CredentialError> {
        let bytes = std::fs::read(path).map_err(|source| CredentialError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_document(&bytes, &path.display().to_string())
    }

    /// Parses the text of a pull secret file (see [`Credentials::from_file`]).
    pub fn from_document(bytes: &[u8], source_name: &str) -> Result<Self, CredentialError> {
        // Read as kubectl reads a Secret manifest (go-yaml v2), with the project's one reader.
        let document =
            gocompat::yaml::parse_manifest_documents(&String::from_utf8_lossy(bytes), source_name)
                .map_err(|err| CredentialError::Syntax {
                    source_name: source_name.to_string(),
                    reason: err.to_string(),
                })?
                .into_iter()
                .next()
                .unwrap_or(serde_json::Value::Null);
        let shape = |reason: &str| CredentialError::Shape {
            source_name: source_name.to_string(),
            reason: reason.to_string(),
        };
        let object = document
            .as_object()
            .ok_or_else(|| shape("the document is not a mapping"))?;
        if object.get("kind").and_then(|k| k.as_str()) == Some("Secret") {
            let secret_type = object
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or_default();
            let key = match secret_type {
                "kubernetes.io/dockerconfigjson" => ".dockerconfigjson",
                "kubernetes.io/dockercfg" => ".dockercfg",
                other => return Err(shape(&format!("Secret has type {other:?}"))),
            };
            let from_string_data = object
                .get("stringData")
                .and_then(|d| d.get(key))
                .and_then(|v| v.as_str())
                .map(|s| s.as_bytes().to_vec());
            let payload = match from_string_data {
                Some(payload) => payload,
                None => {
                    let encoded = object
                        .get("data")
                        .and_then(|d| d.get(key))
                        .and_then(|v| v.as_str())
                        .ok_or_else(|| shape(&format!("Secret has no data.{key}")))?;
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded.trim())
                        .map_err(|_| shape(&format!("data.{key} is not valid base64")))?
                }
            };
            return Self::from_secret_data(secret_type, &payload, source_name);
        }
        if object.contains_key("auths")
            || object.contains_key("credHelpers")
            || object.contains_key("credsStore")
        {
            return Self::from_secret_data("kubernetes.io/dockerconfigjson", bytes, source_name);
        }
        Self::from_secret_data("kubernetes.io/dockercfg", bytes, source_name)
    }

    /// Parses the payload of a pull Secret (`.dockerconfigjson` or `.dockercfg`) by Secret type.
    pub fn from_secret_data(
        secret_type: &str,
        payload: &[u8],
        source_name: &str,
    ) -> Result<Self, CredentialError> {
        let syntax = |err: serde_json::Error| CredentialError::Syntax {
            source_name: source_name.to_string(),
            reason: json_error_without_content(&err),
        };
        let config = match secret_type {
            "kubernetes.io/dockercfg" => DockerConfigJson {
                auths: serde_json::from_slice(payload).map_err(syntax)?,
                ..Default::default()
            },
            _ => serde_json::from_slice(payload).map_err(syntax)?,
        };
        let mut credentials = Self::default();
        for (key, entry) in config.auths {
            let auth = decode_entry(&key, entry, source_name)?;
            credentials.entries.push((KeyPattern::parse(&key), auth));
        }
        for (host, helper) in config.cred_helpers {
            validate_helper_name(&helper)?;
            credentials.helpers.insert(normalize_host(&host), helper);
        }
        if let Some(helper) = config.creds_store.filter(|h| !h.is_empty()) {
            validate_helper_name(&helper)?;
            credentials.default_helper = Some(helper);
        }
        credentials.sort();
        Ok(credentials)
    }

    /// Reads a pull Secret fetched from the cluster (what `imagePullSecrets` name).
    pub fn from_secret(
        secret: &k8s_openapi::api::core::v1::Secret,
    ) -> Result<Self, CredentialError> {
        let namespace = secret.metadata.namespace.as_deref().unwrap_or_default();
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        let source_name = format!("Secret {namespace}/{name}");
        let secret_type = secret.type_.as_deref().unwrap_or_default();
        let key = match secret_type {
            "kubernetes.io/dockerconfigjson" => ".dockerconfigjson",
            "kubernetes.io/dockercfg" => ".dockercfg",
            other => {
                return Err(CredentialError::Shape {
                    source_name,
                    reason: format!("Secret has type {other:?}"),
                });
            }
        };
        let payload = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| bytes.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|data| data.get(key))
                    .map(|text| text.as_bytes().to_vec())
            })
            .ok_or_else(|| CredentialError::Shape {
                source_name: source_name.clone(),
                reason: format!("Secret has no data.{key}"),
            })?;
        Self::from_secret_data(secret_type, &payload, &source_name)
    }

    /// Adds every entry of `other`; on equal keys the entries of `self` are tried first.
    pub fn merge(&mut self, other: Credentials) {
        self.entries.extend(other.entries);
        for (host, helper) in other.helpers {
            self.helpers.entry(host).or_insert(helper);
        }
        if self.default_helper.is_none() {
            self.default_helper = other.default_helper;
        }
        self.sort();
    }

    fn sort(&mut self) {
        // The kubelet sorts keys in reverse lexical order, so `reg/a/b` comes before `reg/a`
        // and `reg`; a stable sort keeps the first of duplicate keys first.
        self.entries
            .sort_by(|a, b| b.0.normalized.cmp(&a.0.normalized));
    }

    /// The stored credentials that match `image`, most specific first (kubelet order).
    pub fn matching(&self, image: &ImageRef) -> Vec<&AuthEntry> {
        let target = KeyPattern::parse(&format!("{}/{}", image.domain, image.path));
        self.entries
            .iter()
            .filter(|(pattern, _)| pattern.matches(&target))
            .map(|(_, auth)| auth)
            .collect()
    }

    /// The credential helper for a registry (`credHelpers`, else `credsStore`).
    pub fn helper_for(&self, image: &ImageRef) -> Option<&str> {
        self.helpers
            .get(&normalize_host(&image.domain))
            .or(self.default_helper.as_ref())
            .map(String::as_str)
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.helpers.is_empty() && self.default_helper.is_none()
    }
}

fn decode_entry(
    key: &str,
    entry: DockerConfigEntry,
    source_name: &str,
) -> Result<AuthEntry, CredentialError> {
    let invalid = |reason: String| CredentialError::InvalidAuth {
        source_name: source_name.to_string(),
        key: key.to_string(),
        reason,
    };
    let (mut username, mut password) = (
        entry.username.unwrap_or_default(),
        entry.password.unwrap_or_default(),
    );
    // Like the kubelet, a non-empty `auth` (base64 "user:password") wins over the fields.
    if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| invalid("not valid base64".to_string()))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| invalid("not UTF-8 after base64".into()))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("expected base64 of \"username:password\"".into()))?;
        username = user.to_string();
        password = pass.to_string();
    }
    Ok(AuthEntry {
        username,
        password,
        identity_token: entry.identitytoken.filter(|t| !t.is_empty()),
    })
}

fn validate_helper_name(name: &str) -> Result<(), CredentialError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(CredentialError::InvalidHelperName(name.to_string()))
    }
}

/// Docker Hub has several names; all map to `docker.io`.
fn normalize_host(host: &str) -> String {
    let host = host
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB_DOMAIN.to_string()
        }
        _ => host,
    }
}

impl KeyPattern {
    /// Parses `[scheme://]host[:port][/path]`; a `/v1/` or `/v2/` path prefix is dropped as the
    /// kubelet does for legacy Docker Hub keys.
    fn parse(key: &str) -> Self {
        let without_scheme = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        let (host_port, path) = match without_scheme.find('/') {
            Some(slash) => (
                without_scheme.get(..slash).unwrap_or_default(),
                without_scheme.get(slash..).unwrap_or_default(),
            ),
            None => (without_scheme, ""),
        };
        let path = ["/v1/", "/v2/"]
            .iter()
            .find_map(|prefix| path.strip_prefix(prefix).map(|rest| format!("/{rest}")))
            .unwrap_or_else(|| path.to_string());
        let path = path.trim_end_matches('/').to_string();
        let host_port = normalize_host(host_port);
        let (host, port) = match host_port.strip_prefix('[') {
            Some(rest) => match rest.split_once("]:") {
                Some((ipv6, port)) => (format!("[{ipv6}]"), port.to_string()),
                None => (host_port.clone(), String::new()),
            },
            None => match host_port.split_once(':') {
                Some((host, port)) => (host.to_string(), port.to_string()),
                None => (host_port.clone(), String::new()),
            },
        };
        Self {
            normalized: format!("{host_port}{path}"),
            host_parts: host.split('.').map(str::to_string).collect(),
            port,
            path,
        }
    }

    /// The kubelet's rule: same port, same number of host labels, each label glob-matched, and
    /// the key's path a prefix of the image path.
    fn matches(&self, target: &KeyPattern) -> bool {
        self.port == target.port
            && self.host_parts.len() == target.host_parts.len()
            && target.path.starts_with(&self.path)
            && self
                .host_parts
                .iter()
                .zip(&target.host_parts)
                .all(|(glob, label)| label_matches(glob, label))
    }
}

/// Go's `filepath.Match` on one host label, as the kubelet uses it: `*` (any run), `?` (one
/// character) and `[...]` classes with ranges and `^`/`!` negation. A malformed class never
/// matches (Go reports an error, which the kubelet treats as no match).
fn label_matches(pattern: &str, label: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let label: Vec<char> = label.to_ascii_lowercase().chars().collect();
    match_from(&pattern, &label)
}

fn match_from(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => {
            (0..=text.len()).any(|skip| match_from(rest, text.get(skip..).unwrap_or(&[])))
        }
        Some(('?', rest)) => text
            .split_first()
            .is_some_and(|(_, text_rest)| match_from(rest, text_rest)),
        Some(('[', rest)) => {
            let Some((first, text_rest)) = text.split_first() else {
                return false;
            };
            match class_matches(rest, *first) {
                Some((true, after_class)) => match_from(after_class, text_rest),
                _ => false,
            }
        }
        Some(('\\', rest)) => match (rest.split_first(), text.split_first()) {
            (Some((escaped, rest)), Some((first, text_rest))) => {
                escaped == first && match_from(rest, text_rest)
            }
            _ => false,
        },
        Some((literal, rest)) => text
            .split_first()
            .is_some_and(|(first, text_rest)| first == literal && match_from(rest, text_rest)),
    }
}

/// Matches `ch` against a class body (after `[`); returns whether it matched and the pattern
/// after the closing `]`, or `None` when the class is malformed.
fn class_matches(body: &[char], ch: char) -> Option<(bool, &[char])> {
    let (negated, mut rest) = match body.split_first() {
        Some(('^' | '!', rest)) => (true, rest),
        _ => (false, body),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let (&low, after_low) = rest.split_first()?;
        if low == ']' && !first {
            return Some((matched != negated, after_low));
        }
        first = false;
        rest = after_low;
        if let Some((&'-', after_dash)) = rest.split_first()
            && let Some((&high, after_high)) = after_dash.split_first()
            && high != ']'
        {
            matched |= low <= ch && ch <= high;
            rest = after_high;
            continue;
        }
        matched |= low == ch;
    }
}

/// The server URL a credential helper is asked about for this image's registry.
fn helper_server_url(image: &ImageRef) -> String {
    if image.domain == DOCKER_HUB_DOMAIN || image.registry_host() == DOCKER_HUB_API_HOST {
        DOCKER_HUB_SERVER_URL.to_string()
    } else {
        image.domain.clone()
    }
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl fmt::Debug for HelperOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelperOutput")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Runs `docker-credential-<helper> get` for the image's registry. `Ok(None)` when the helper
/// has no credentials for it.
pub async fn run_helper(
    helper: &str,
    image: &ImageRef,
) -> Result<Option<AuthEntry>, CredentialError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    validate_helper_name(helper)?;
    let server = helper_server_url(image);
    let failed = |reason: String| CredentialError::Helper {
        helper: helper.to_string(),
        server: server.clone(),
        reason,
    };
    let mut child = tokio::process::Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| failed(format!("cannot start it: {err}")))?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(server.as_bytes())
                .await
                .map_err(|err| failed(format!("cannot write to it: {err}")))?;
        }
        let mut stdout = Vec::new();
        if let Some(out) = child.stdout.take() {
            out.take(HELPER_OUTPUT_LIMIT as u64 + 1)
                .read_to_end(&mut stdout)
                .await
                .map_err(|err| failed(format!("cannot read its output: {err}")))?;
        }
        let mut stderr = Vec::new();
        if let Some(err) = child.stderr.take() {
            // Best effort: stderr only decorates the error message.
            let _ = err.take(4096).read_to_end(&mut stderr).await;
        }
        let status = child
            .wait()
            .await
            .map_err(|err| failed(format!("cannot wait for it: {err}")))?;
        Ok::<_, CredentialError>((status, stdout, stderr))
    };
    let (status, stdout, stderr) = tokio::time::timeout(HELPER_TIMEOUT, run)
        .await
        .map_err(|_| failed(format!("no answer within {}s", HELPER_TIMEOUT.as_secs())))??;
    helper_answer(status.success(), &status.to_string(), &stdout, &stderr).map_err(failed)
}

/// What a credential helper's exit status and output mean. A failing helper's stdout is never
/// quoted (a helper that printed its JSON answer and then failed would put the secret into the
/// error); its stderr is, after removing anything that looks like the secret it returned.
fn helper_answer(
    success: bool,
    status: &str,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Option<AuthEntry>, String> {
    if stdout.len() > HELPER_OUTPUT_LIMIT {
        return Err(format!("output exceeds {HELPER_OUTPUT_LIMIT} bytes"));
    }
    let stdout_text = String::from_utf8_lossy(stdout);
    if !success {
        // The helper protocol's "not found" answer is not an error: go anonymous.
        if stdout_text.contains("credentials not found")
            || String::from_utf8_lossy(stderr).contains("credentials not found")
        {
            return Ok(None);
        }
        let mut stderr_text = String::from_utf8_lossy(stderr).trim().to_string();
        if let Ok(output) = serde_json::from_slice::<HelperOutput>(stdout)
            && !output.secret.is_empty()
        {
            stderr_text = stderr_text.replace(&output.secret, "<redacted>");
        }
        return Err(format!(
            "exited with {status}: {} (its {} bytes of standard output are not shown: they may hold credentials)",
            if stderr_text.is_empty() {
                "no message on standard error"
            } else {
                stderr_text.as_str()
            },
            stdout.len()
        ));
    }
    let output: HelperOutput = serde_json::from_slice(stdout)
        .map_err(|err| format!("its output {}", json_error_without_content(&err)))?;
    if output.secret.is_empty() {
        return Ok(None);
    }
    // Docker's convention: user "<token>" means the secret is an identity (refresh) token.
    if output.username == "<token>" {
        return Ok(Some(AuthEntry {
            username: String::new(),
            password: String::new(),
            identity_token: Some(output.secret),
        }));
    }
    Ok(Some(AuthEntry {
        username: output.username,
        password: output.secret,
        identity_token: None,
    }))
}

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme: `bearer` or `basic`.
    pub scheme: String,
    /// Parameters with lowercased names (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

/// Parses every challenge in a `WWW-Authenticate` value (RFC 7235: `Scheme k=v, k="v", …`).
pub fn parse_challenges(header: &str) -> Result<Vec<Challenge>, String> {
    let mut challenges: Vec<Challenge> = Vec::new();
    let bytes = header.as_bytes();
    let mut index = 0;
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b);
    let skip = |index: &mut usize, what: &[u8]| {
        while bytes.get(*index).is_some_and(|b| what.contains(b)) {
            *index += 1;
        }
    };
    loop {
        skip(&mut index, b" \t,");
        if index >= bytes.len() {
            break;
        }
        let start = index;
        while bytes.get(index).is_some_and(|b| is_token(*b)) {
            index += 1;
        }
        if start == index {
            return Err(format!("unexpected character at position {index}"));
        }
        let word = header.get(start..index).unwrap_or_default();
        skip(&mut index, b" \t");
        if bytes.get(index) == Some(&b'=') {
            // A parameter of the current challenge.
            index += 1;
            skip(&mut index, b" \t");
            let value = if bytes.get(index) == Some(&b'"') {
                index += 1;
                let mut value = String::new();
                loop {
                    match bytes.get(index) {
                        None => return Err("unterminated quoted string".to_string()),
                        Some(b'"') => {
                            index += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let escaped = header
                                .get(index + 1..)
                                .and_then(|rest| rest.chars().next())
                                .ok_or("unterminated escape")?;
                            value.push(escaped);
                            index += 1 + escaped.len_utf8();
                        }
                        Some(_) => {
                            let ch = header
                                .get(index..)
                                .and_then(|rest| rest.chars().next())
                                .ok_or("invalid character")?;
                            value.push(ch);
                            index += ch.len_utf8();
                        }
                    }
                }
                value
            } else {
                let value_start = index;
                while bytes.get(index).is_some_and(|b| *b != b',' && *b != b' ') {
                    index += 1;
                }
                header
                    .get(value_start..index)
                    .unwrap_or_default()
                    .to_string()
            };
            let challenge = challenges
                .last_mut()
                .ok_or_else(|| format!("parameter {word:?} before any scheme"))?;
            challenge.params.insert(word.to_ascii_lowercase(), value);
        } else {
            challenges.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    if challenges.is_empty() {
        return Err("no challenge".to_string());
    }
    Ok(challenges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(value: &str) -> ImageRef {
        ImageRef::parse(value).expect("valid image")
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn docker_hub_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        let challenges = parse_challenges(header).expect("parses");
        let [challenge] = challenges.as_slice() else {
            panic!("one challenge expected: {challenges:?}");
        };
        assert_eq!(challenge.scheme, "bearer");
        assert_eq!(challenge.params["realm"], "https://auth.docker.io/token");
        assert_eq!(challenge.params["service"], "registry.docker.io");
        assert_eq!(challenge.params["scope"], "repository:library/nginx:pull");
    }

    #[test]
    fn several_challenges_and_odd_syntax() {
        let header = r#"Basic realm="a \"quoted\" realm", Bearer realm=https://x/token , error="insufficient_scope""#;
        let challenges = parse_challenges(header).expect("parses");
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].params["realm"], "a \"quoted\" realm");
        assert_eq!(challenges[1].params["realm"], "https://x/token");
        assert_eq!(challenges[1].params["error"], "insufficient_scope");
        for bad in ["", "realm=x", "Bearer realm=\"open", "Bearer realm=\"x\\"] {
            assert!(parse_challenges(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dockerconfigjson_secret_matches_like_the_kubelet() {
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": b64("hub:hubpass")},
            "*.example.com": {"username": "wild", "password": "w"},
            "reg.example.com/team": {"auth": b64("team:t")},
            "reg.example.com:5000": {"auth": b64("port:p")},
            "127.0.0.1:5000": {"username": "local", "password": "l"}
        }});
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": b64(&config.to_string())}
        });
        let credentials =
            Credentials::from_document(secret.to_string().as_bytes(), "secret.json").expect("ok");
        let users = |value: &str| -> Vec<String> {
            credentials
                .matching(&image(value))
                .into_iter()
                .map(|a| a.username.clone())
                .collect()
        };
        assert_eq!(users("nginx"), ["hub"]);
        assert_eq!(users("docker.io/bitnami/redis"), ["hub"]);
        assert_eq!(users("reg.example.com/team/app"), ["team", "wild"]);
        assert_eq!(users("reg.example.com/other"), ["wild"]);
        assert_eq!(users("reg.example.com:5000/x"), ["port"]);
        assert_eq!(users("a.b.example.com/x"), Vec::<String>::new());
        assert_eq!(users("127.0.0.1:5000/x"), ["local"]);
        assert_eq!(users("127.0.0.1:5001/x"), Vec::<String>::new());
        assert_eq!(users("ghcr.io/x"), Vec::<String>::new());
        let hub = credentials.matching(&image("nginx"));
        assert_eq!(hub.first().map(|a| a.password.as_str()), Some("hubpass"));
    }

    #[test]
    fn dockercfg_yaml_secret_and_string_data() {
        let dockercfg = serde_json::json!({"quay.io": {"auth": b64("q:secret")}});
        let yaml = format!(
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockercfg\ndata:\n  .dockercfg: {}\n",
            b64(&dockercfg.to_string())
        );
        let credentials = Credentials::from_document(yaml.as_bytes(), "s.yaml").expect("ok");
        assert_eq!(credentials.matching(&image("quay.io/a/b")).len(), 1);
        let string_data = format!(
            "kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{}'\n",
            serde_json::json!({"auths": {"quay.io": {"username": "u", "password": "p"}}})
        );
        let credentials = Credentials::from_document(string_data.as_bytes(), "s.yaml").expect("ok");
        assert_eq!(credentials.matching(&image("quay.io/a/b")).len(), 1);
    }

    #[test]
    fn docker_config_with_helpers() {
        let config = serde_json::json!({
            "auths": {"ghcr.io": {}},
            "credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
            "credsStore": "desktop"
        });
        let credentials =
            Credentials::from_document(config.to_string().as_bytes(), "config.json").expect("ok");
        assert_eq!(
            credentials.helper_for(&image("123.dkr.ecr.us-east-1.amazonaws.com/app")),
            Some("ecr-login")
        );
        assert_eq!(credentials.helper_for(&image("ghcr.io/a")), Some("desktop"));
        let evil = serde_json::json!({"credsStore": "../../bin/sh"});
        assert!(matches!(
            Credentials::from_document(evil.to_string().as_bytes(), "c.json"),
            Err(CredentialError::InvalidHelperName(_))
        ));
    }

    #[test]
    fn bad_secrets_give_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("- a\n- b\n", "not a mapping"),
            ("kind: Secret\ntype: Opaque\n", "Opaque"),
            (
                "kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata: {}\n",
                "no data",
            ),
            (
                "kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: '%%%'\n",
                "not valid base64",
            ),
            (
                r#"{"auths": {"x.io": {"auth": "bm9jb2xvbg=="}}}"#,
                "username:password",
            ),
            ("{unclosed", "not valid"),
        ];
        for (text, needle) in cases {
            let err = Credentials::from_document(text.as_bytes(), "bad.yaml").expect_err(text);
            let message = err.to_string();
            assert!(message.contains(needle), "{text:?}: {message}");
            assert!(message.contains("bad.yaml"), "{message}");
        }
    }

    #[test]
    fn cluster_secret_objects() {
        use k8s_openapi::ByteString;
        let payload = serde_json::json!({"auths": {"quay.io": {"auth": b64("q:p")}}});
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("regcred".into()),
                namespace: Some("apps".into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(payload.to_string().into_bytes()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let credentials = Credentials::from_secret(&secret).expect("valid secret");
        let matched = credentials.matching(&image("quay.io/org/app"));
        assert_eq!(matched.first().map(|a| a.username.as_str()), Some("q"));
        let opaque = k8s_openapi::api::core::v1::Secret {
            type_: Some("Opaque".into()),
            ..secret
        };
        let err = Credentials::from_secret(&opaque).expect_err("wrong type");
        assert!(err.to_string().contains("Secret apps/regcred"), "{err}");
    }

    #[test]
    fn host_label_globs_like_filepath_match() {
        let table = [
            ("*", "registry", true),
            ("reg*", "registry", true),
            ("r?g", "reg", true),
            ("r?g", "rg", false),
            ("[a-c]b", "bb", true),
            ("[^a-c]b", "bb", false),
            ("[!a-c]b", "xb", true),
            ("[]a]", "]", true),
            ("[a-", "a", false),
            ("REG", "reg", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
        ];
        for (pattern, label, want) in table {
            assert_eq!(label_matches(pattern, label), want, "{pattern} vs {label}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let entry = AuthEntry {
            username: "u".into(),
            password: "hunter2".into(),
            identity_token: Some("tok".into()),
        };
        let printed = format!("{entry:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("tok\""),
            "{printed}"
        );
    }

    #[tokio::test]
    async fn missing_helper_is_a_clear_error() {
        let err = run_helper("keelson-test-no-such-helper", &image("ghcr.io/a"))
            .await
            .expect_err("helper does not exist");
        let message = err.to_string();
        assert!(
            message.contains("docker-credential-keelson-test-no-such-helper"),
            "{message}"
        );
        assert!(message.contains("ghcr.io"), "{message}");
    }

    /// Issue 13 item 14: no secret in any Debug output or error text of the credential code.
    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        use base64::Engine as _;
        const SECRET: &str = "TOPSECRET-hunter2";
        let contains_secret = |text: &str| text.contains(SECRET) || text.contains("hunter2");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);

        let entry = DockerConfigEntry {
            auth: Some(b64(&format!("alice:{SECRET}"))),
            username: Some("alice".into()),
            password: Some(SECRET.into()),
            identitytoken: Some(SECRET.into()),
        };
        assert!(!contains_secret(&format!("{entry:?}")), "{entry:?}");
        assert!(!format!("{entry:?}").contains(&b64(&format!("alice:{SECRET}"))));
        let helper = HelperOutput {
            username: "alice".into(),
            secret: SECRET.into(),
        };
        assert!(!contains_secret(&format!("{helper:?}")));
        let good = serde_json::json!({"auths": {"r.example": {"auth": b64(&format!("alice:{SECRET}")), "identitytoken": SECRET}}});
        let credentials = Credentials::from_document(good.to_string().as_bytes(), "ok.json");
        assert!(!contains_secret(&format!("{credentials:?}")));

        let secret_b64 = b64(&format!("{{\"auths\": \"{SECRET}\"}}"));
        let documents = [
            format!(r#"{{"auths": "{SECRET}"}}"#),
            format!(r#"{{"auths": {{"r.example": {{"password": ["{SECRET}"]}}}}}}"#),
            format!(r#"{{"auths": {{"r.example": {{"password": {{"{SECRET}": 1}}}}}}}}"#),
            format!(r#"{{"auths": {{"r.example": {{"auth": "{SECRET}!!"}}}}}}"#),
            format!(
                r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
                b64(SECRET)
            ),
            format!(r#"{{"auths": {{"r.example": {{"password": "{SECRET}""#),
            format!(
                "{{\"kind\": \"Secret\", \"type\": \"kubernetes.io/dockerconfigjson\", \"data\": {{\".dockerconfigjson\": \"{SECRET}*\"}}}}"
            ),
            format!(
                "{{\"kind\": \"Secret\", \"type\": \"kubernetes.io/dockerconfigjson\", \"data\": {{\".dockerconfigjson\": \"{secret_b64}\"}}}}"
            ),
            format!(
                "{{\"kind\": \"Secret\", \"type\": \"kubernetes.io/dockercfg\", \"stringData\": {{\".dockercfg\": \"{{\\\"r.example\\\": \\\"{SECRET}\\\"}}\"}}}}"
            ),
            format!("auths: {{r.example: [{SECRET}]}}\n"),
        ];
        for document in &documents {
            let err = Credentials::from_document(document.as_bytes(), "bad.json")
                .err()
                .unwrap_or_else(|| panic!("{document} must fail"));
            let shown = format!("{} {err:?}", crate::cluster::error_chain(&err));
            assert!(!contains_secret(&shown), "{document}: {shown}");
        }

        // A helper that printed its answer and then failed, or printed nonsense.
        let answer = format!(r#"{{"Username": "alice", "Secret": "{SECRET}"}}"#);
        let stderr = format!("cannot store {SECRET} for alice");
        let failures = [
            helper_answer(
                false,
                "exit status: 1",
                answer.as_bytes(),
                stderr.as_bytes(),
            ),
            helper_answer(
                true,
                "exit status: 0",
                format!(r#"{{"Username": "alice", "Secret": ["{SECRET}"]}}"#).as_bytes(),
                b"",
            ),
            helper_answer(
                true,
                "exit status: 0",
                format!("{SECRET} is not JSON").as_bytes(),
                b"",
            ),
        ];
        for failure in failures {
            let reason = failure
                .err()
                .unwrap_or_else(|| panic!("a failing helper is an error"));
            let err = CredentialError::Helper {
                helper: "test".into(),
                server: "r.example".into(),
                reason,
            };
            let shown = format!("{} {err:?}", crate::cluster::error_chain(&err));
            assert!(!contains_secret(&shown), "{shown}");
        }
        // "credentials not found" still means anonymous.
        assert!(matches!(
            helper_answer(
                false,
                "exit status: 1",
                b"credentials not found in native keychain",
                b""
            ),
            Ok(None)
        ));
    }
}
