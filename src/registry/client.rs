//! The OCI distribution client: tags and digests with auth, politeness limits and caps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use sha2::Digest as _;
use tokio::time::Instant;

use super::Error;
use super::auth::{self, AuthEntry, Challenge, Credentials};
use super::reference::{
    DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN, ImageRef, is_valid_digest, is_valid_tag,
};

/// Every manifest type keelson can resolve a digest for: OCI index and manifest, Docker
/// manifest list and v2 manifest. Without them a registry may answer with a converted
/// (older) manifest whose digest differs from what the runtime pulls.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// How long the HTTPS probe of an insecure registry may take before plain HTTP is used.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const DIGEST_HEADER: &str = "docker-content-digest";
/// Page sizes tried in turn when a registry refuses the previous one; 0 means "no `n`".
const PAGE_SIZE_FALLBACKS: [u32; 3] = [50, 10, 0];

/// Per-registry politeness limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests in flight at once to one registry host.
    pub max_concurrent: usize,
    /// Sustained request rate to one registry host.
    pub requests_per_second: f64,
    /// Requests that may go out at once before the rate applies.
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            requests_per_second: 10.0,
            burst: 20,
        }
    }
}

/// Everything the client can be told; [`RegistryConfig::default`] is safe for production.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `HOST[:PORT]` entries that may use plain HTTP or self-signed TLS (a bare host covers all
    /// its ports). Loopback registries are always allowed, as the container runtime allows them.
    pub insecure_registries: Vec<String>,
    pub credentials: Credentials,
    /// Limits for every registry host not listed in `registry_limits`.
    pub default_limits: Limits,
    /// Limits by registry host (`host[:port]` as in the image reference, or the API host).
    pub registry_limits: HashMap<String, Limits>,
    /// Whole-request timeout, including reading the body.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Largest tag-list page or token response accepted.
    pub max_body_bytes: usize,
    /// Largest manifest accepted by the GET fallback of [`RegistryClient::digest`].
    pub max_manifest_bytes: usize,
    /// Most tags accepted for one repository.
    pub max_tags: usize,
    /// Most tag-list pages followed for one repository.
    pub max_pages: usize,
    /// `n` asked for on tag listings.
    pub page_size: u32,
    /// Attempts per request on 429/503 and network errors (1 = no retry).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this fails the request instead of stalling the cycle.
    pub max_retry_after: Duration,
    pub max_redirects: usize,
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            credentials: Credentials::none(),
            default_limits: Limits::default(),
            registry_limits: HashMap::new(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 8 * 1024 * 1024,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_tags: 100_000,
            max_pages: 2_000,
            page_size: 100,
            max_attempts: 4,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            max_redirects: 5,
            user_agent: format!("keelson/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What kind of request was sent, for the per-registry counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /v2/` to find out whether a registry speaks HTTPS.
    Ping,
    Tags,
    Manifest,
    Token,
    /// `GET /v2/<name>/blobs/<digest>` (chart archives of OCI charts).
    Blob,
}

/// Requests sent to one host (every attempt, retry and redirect hop counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub ping: u64,
    pub tags: u64,
    pub manifest: u64,
    pub token: u64,
    pub blob: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.ping + self.tags + self.manifest + self.token + self.blob
    }
}

#[derive(Debug, Default)]
struct Counters {
    ping: AtomicU64,
    tags: AtomicU64,
    manifest: AtomicU64,
    token: AtomicU64,
    blob: AtomicU64,
    /// Answers by HTTP status code; 0 counts requests that got no answer.
    statuses: Mutex<BTreeMap<u16, u64>>,
}

impl Counters {
    fn answered(&self, code: u16) {
        *lock(&self.statuses).entry(code).or_default() += 1;
    }

    fn bump(&self, kind: RequestKind) {
        let counter = match kind {
            RequestKind::Ping => &self.ping,
            RequestKind::Tags => &self.tags,
            RequestKind::Manifest => &self.manifest,
            RequestKind::Token => &self.token,
            RequestKind::Blob => &self.blob,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            ping: self.ping.load(Ordering::Relaxed),
            tags: self.tags.load(Ordering::Relaxed),
            manifest: self.manifest.load(Ordering::Relaxed),
            token: self.token.load(Ordering::Relaxed),
            blob: self.blob.load(Ordering::Relaxed),
        }
    }
}

/// How a registry wants to be authenticated, learnt from its first 401.
#[derive(Debug, Clone)]
enum AuthScheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// State kept per host: limits, scheme, auth scheme, counters.
#[derive(Debug)]
struct HostState {
    semaphore: tokio::sync::Semaphore,
    /// GCRA "theoretical arrival time" for the rate limit.
    next_arrival: tokio::sync::Mutex<Instant>,
    interval: Duration,
    burst: u32,
    base_url: tokio::sync::OnceCell<Url>,
    auth_scheme: Mutex<Option<AuthScheme>>,
    /// True once a request got past auth (or learnt the scheme). Until then requests to this
    /// host go one at a time, so a burst of first requests costs one 401, not one each.
    auth_discovered: tokio::sync::Mutex<bool>,
    counters: Counters,
}

impl HostState {
    fn new(limits: Limits) -> Self {
        // Clamped so the interval arithmetic can never overflow, whatever the configuration says.
        let rate = if limits.requests_per_second.is_finite() && limits.requests_per_second > 0.0 {
            limits.requests_per_second.clamp(0.001, 1_000_000.0)
        } else {
            Limits::default().requests_per_second
        };
        Self {
            semaphore: tokio::sync::Semaphore::new(limits.max_concurrent.max(1)),
            next_arrival: tokio::sync::Mutex::new(Instant::now()),
            interval: Duration::from_secs_f64(1.0 / rate),
            burst: limits.burst.max(1),
            base_url: tokio::sync::OnceCell::new(),
            auth_scheme: Mutex::new(None),
            auth_discovered: tokio::sync::Mutex::new(false),
            counters: Counters::default(),
        }
    }

    /// Waits for this request's slot under the rate limit (burst, then one per interval).
    async fn wait_for_rate_slot(&self) {
        let start = {
            let mut next_arrival = self.next_arrival.lock().await;
            let now = Instant::now();
            let arrival = (*next_arrival).max(now);
            let burst_window = self.interval.saturating_mul(self.burst.saturating_sub(1));
            let start = arrival
                .checked_sub(burst_window)
                .map_or(now, |earliest| earliest.max(now));
            *next_arrival = arrival + self.interval;
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// Tokens are cached per registry host and scope.
type TokenKey = (String, String);

#[derive(Clone)]
struct CachedToken {
    token: String,
    valid_until: Instant,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("TokenResponse")
            .field("token", &redacted(&self.token))
            .field("access_token", &redacted(&self.access_token))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The registry client. Cheap to clone; clones share limits, caches and counters.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RegistryConfig,
    /// Verifies certificates; used for every registry not allowed to be insecure.
    strict: reqwest::Client,
    /// Accepts self-signed certificates; used only for insecure and loopback registries.
    lax: reqwest::Client,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
    /// One lock per registry + scope, so concurrent requests fetch one token, not one each.
    token_fetches: Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<()>>>>,
    helper_credentials: tokio::sync::Mutex<HashMap<String, Option<AuthEntry>>>,
}

/// Shows configuration and counts only: tokens and helper credentials stay out of `Debug`.
impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.config)
            .field("hosts", &lock(&self.hosts).len())
            .field("cached_tokens", &lock(&self.tokens).len())
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Builds a client (installing the ring crypto provider if nothing installed one yet).
    pub fn new(config: RegistryConfig) -> Result<Self, Error> {
        // reqwest panics without a process-wide provider; installing it is idempotent (the
        // same ring provider `cluster::install_crypto_provider` installs).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |accept_invalid_certs: bool| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(config.request_timeout)
                .connect_timeout(config.connect_timeout)
                .user_agent(config.user_agent.clone())
                .tls_danger_accept_invalid_certs(accept_invalid_certs)
                .build()
                .map_err(Error::BuildClient)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                strict: build(false)?,
                lax: build(true)?,
                config,
                hosts: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                token_fetches: Mutex::new(HashMap::new()),
                helper_credentials: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Requests sent so far, by host (registry hosts and token servers).
    pub fn request_counts(&self) -> BTreeMap<String, RequestCounts> {
        lock(&self.inner.hosts)
            .iter()
            .map(|(host, state)| (host.clone(), state.counters.snapshot()))
            .collect()
    }

    /// Answers so far by host and HTTP status code (0: the request got no answer).
    pub fn answers_by_status(&self) -> BTreeMap<(String, u16), u64> {
        let mut all = BTreeMap::new();
        for (host, state) in lock(&self.inner.hosts).iter() {
            for (code, count) in lock(&state.counters.statuses).iter() {
                all.insert((host.clone(), *code), *count);
            }
        }
        all
    }

    /// Requests sent so far to one host (zero when none).
    pub fn requests_to(&self, host: &str) -> RequestCounts {
        lock(&self.inner.hosts)
            .get(host)
            .map(|state| state.counters.snapshot())
            .unwrap_or_default()
    }

    /// Every tag of the image's repository, in the registry's order, following pagination.
    /// Tags that are not valid tag names are dropped (a registry cannot smuggle text into values).
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, Error> {
        let config = &self.inner.config;
        let base = self.base_url(image.registry_host()).await?;
        let list_url = |page_size: u32| -> Result<Url, Error> {
            let path = if page_size == 0 {
                format!("/v2/{}/tags/list", image.path)
            } else {
                format!("/v2/{}/tags/list?n={page_size}", image.path)
            };
            join_url(&base, &path)
        };
        let mut url = list_url(config.page_size)?;
        let mut fallbacks = PAGE_SIZE_FALLBACKS
            .iter()
            .copied()
            .filter(|size| *size < config.page_size);
        let mut tags = Vec::new();
        let mut seen_tags = HashSet::new();
        let mut seen_pages = HashSet::new();
        let mut pages = 0usize;
        loop {
            let response = self
                .get_authorized(image, Method::GET, url.clone(), None, RequestKind::Tags)
                .await?;
            let status = response.status();
            if status == StatusCode::BAD_REQUEST
                && pages == 0
                && let Some(smaller) = fallbacks.next()
            {
                tracing::debug!(%url, smaller, "registry refused the page size; retrying smaller");
                url = list_url(smaller)?;
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                return Err(Error::RepositoryNotFound {
                    image: image.repository(),
                    url: url.to_string(),
                });
            }
            if !status.is_success() {
                return Err(status_error(image, &url, response).await);
            }
            pages += 1;
            if pages > config.max_pages {
                return Err(Error::TooManyPages {
                    image: image.repository(),
                    limit: config.max_pages,
                });
            }
            let next = next_link(response.headers(), &url)?;
            let body = read_capped(response, config.max_body_bytes, &url).await?;
            let page: TagList =
                serde_json::from_slice(&body).map_err(|err| Error::MalformedJson {
                    url: url.to_string(),
                    reason: err.to_string(),
                })?;
            for tag in page.tags.unwrap_or_default() {
                if !is_valid_tag(&tag) {
                    tracing::warn!(image = %image.repository(), tag = %tag.escape_debug(), "registry listed an invalid tag name; ignoring it");
                    continue;
                }
                if seen_tags.insert(tag.clone()) {
                    tags.push(tag);
                    if tags.len() > config.max_tags {
                        return Err(Error::TooManyTags {
                            image: image.repository(),
                            limit: config.max_tags,
                        });
                    }
                }
            }
            let Some(next) = next else { break };
            if next.origin() != url.origin() {
                return Err(Error::CrossHostLink {
                    url: url.to_string(),
                    next: next.to_string(),
                });
            }
            if !seen_pages.insert(next.to_string()) {
                return Err(Error::PaginationLoop {
                    image: image.repository(),
                    url: next.to_string(),
                });
            }
            url = next;
        }
        Ok(tags)
    }

    /// Lists every distinct repository among `images` exactly once, concurrently (per-registry
    /// limits still apply): one check cycle costs one listing per repository however many
    /// releases share it. Results are keyed by [`ImageRef::repository`].
    pub async fn list_tags_of_all<'a>(
        &self,
        images: impl IntoIterator<Item = &'a ImageRef>,
    ) -> BTreeMap<String, Result<Vec<String>, Error>> {
        let mut distinct: BTreeMap<String, &ImageRef> = BTreeMap::new();
        for image in images {
            distinct.entry(image.repository()).or_insert(image);
        }
        let listings = distinct
            .into_iter()
            .map(|(repository, image)| async move { (repository, self.list_tags(image).await) });
        futures::future::join_all(listings)
            .await
            .into_iter()
            .collect()
    }

    /// The manifest digest `reference` (a tag or digest) points to: `HEAD` with the full Accept
    /// list, `GET` only when the registry gives no `Docker-Content-Digest` on `HEAD`.
    pub async fn digest(&self, image: &ImageRef, reference: &str) -> Result<String, Error> {
        if !is_valid_tag(reference) && !is_valid_digest(reference) {
            return Err(Error::InvalidReference(
                super::reference::ReferenceError::InvalidTag(reference.to_string()),
            ));
        }
        let base = self.base_url(image.registry_host()).await?;
        let url = join_url(&base, &format!("/v2/{}/manifests/{reference}", image.path))?;
        let not_found = || Error::ManifestNotFound {
            image: image.repository(),
            reference: reference.to_string(),
        };
        let head = self
            .get_authorized(
                image,
                Method::HEAD,
                url.clone(),
                Some(MANIFEST_ACCEPT),
                RequestKind::Manifest,
            )
            .await?;
        match head.status() {
            StatusCode::NOT_FOUND => return Err(not_found()),
            status if status.is_success() => {
                if let Some(digest) = digest_header(head.headers(), &url)? {
                    return Ok(digest);
                }
            }
            // Some registries refuse HEAD; the GET below answers instead.
            StatusCode::METHOD_NOT_ALLOWED => {}
            _ => return Err(status_error(image, &url, head).await),
        }
        let get = self
            .get_authorized(
                image,
                Method::GET,
                url.clone(),
                Some(MANIFEST_ACCEPT),
                RequestKind::Manifest,
            )
            .await?;
        if get.status() == StatusCode::NOT_FOUND {
            return Err(not_found());
        }
        if !get.status().is_success() {
            return Err(status_error(image, &url, get).await);
        }
        let header_digest = digest_header(get.headers(), &url)?;
        let body = read_capped(get, self.inner.config.max_manifest_bytes, &url).await?;
        let computed = format!("sha256:{}", hex(&sha2::Sha256::digest(&body)));
        match header_digest {
            Some(digest) if digest.starts_with("sha256:") && digest != computed => {
                Err(Error::DigestMismatch {
                    url: url.to_string(),
                    header: digest,
                    computed,
                })
            }
            Some(digest) => Ok(digest),
            None => Ok(computed),
        }
    }

    /// The manifest `reference` (a tag or digest) points to, fetched with `accept`, and its
    /// digest (computed from the body; a `Docker-Content-Digest` that disagrees is an error, and
    /// so is a body whose digest is not `reference` when `reference` is a digest).
    pub async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
        accept: &str,
    ) -> Result<(Vec<u8>, String), Error> {
        if !is_valid_tag(reference) && !is_valid_digest(reference) {
            return Err(Error::InvalidReference(
                super::reference::ReferenceError::InvalidTag(reference.to_string()),
            ));
        }
        let base = self.base_url(image.registry_host()).await?;
        let url = join_url(&base, &format!("/v2/{}/manifests/{reference}", image.path))?;
        let response = self
            .get_authorized(
                image,
                Method::GET,
                url.clone(),
                Some(accept),
                RequestKind::Manifest,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::ManifestNotFound {
                image: image.repository(),
                reference: reference.to_string(),
            });
        }
        if !response.status().is_success() {
            return Err(status_error(image, &url, response).await);
        }
        let header_digest = digest_header(response.headers(), &url)?;
        let body = read_capped(response, self.inner.config.max_manifest_bytes, &url).await?;
        let computed = format!("sha256:{}", hex(&sha2::Sha256::digest(&body)));
        let expected = header_digest
            .filter(|digest| digest.starts_with("sha256:"))
            .or_else(|| is_valid_digest(reference).then(|| reference.to_string()));
        match expected {
            Some(digest) if digest != computed => Err(Error::DigestMismatch {
                url: url.to_string(),
                header: digest,
                computed,
            }),
            _ => Ok((body, computed)),
        }
    }

    /// The blob `digest` (sha256 only) of the image's repository, at most `max_bytes` long;
    /// a body whose sha256 differs from `digest` is an error.
    pub async fn blob(
        &self,
        image: &ImageRef,
        digest: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, Error> {
        if !digest.starts_with("sha256:") || !is_valid_digest(digest) {
            return Err(Error::InvalidReference(
                super::reference::ReferenceError::InvalidTag(digest.to_string()),
            ));
        }
        let base = self.base_url(image.registry_host()).await?;
        let url = join_url(&base, &format!("/v2/{}/blobs/{digest}", image.path))?;
        let response = self
            .get_authorized(image, Method::GET, url.clone(), None, RequestKind::Blob)
            .await?;
        if !response.status().is_success() {
            return Err(status_error(image, &url, response).await);
        }
        let body = read_capped(response, max_bytes, &url).await?;
        let computed = format!("sha256:{}", hex(&sha2::Sha256::digest(&body)));
        if computed != digest {
            return Err(Error::DigestMismatch {
                url: url.to_string(),
                header: digest.to_string(),
                computed,
            });
        }
        Ok(body)
    }

    fn host_state(&self, host: &str) -> Arc<HostState> {
        let config = &self.inner.config;
        let mut hosts = lock(&self.inner.hosts);
        hosts
            .entry(host.to_string())
            .or_insert_with(|| {
                // Docker Hub is configured as `docker.io` but served by its API host.
                let alias = (host == DOCKER_HUB_API_HOST).then_some(DOCKER_HUB_DOMAIN);
                let limits = config
                    .registry_limits
                    .get(host)
                    .or_else(|| alias.and_then(|a| config.registry_limits.get(a)))
                    .copied()
                    .unwrap_or(config.default_limits);
                Arc::new(HostState::new(limits))
            })
            .clone()
    }

    /// True when `host[:port]` may use plain HTTP or unverified TLS.
    pub fn allows_insecure(&self, host_port: &str) -> bool {
        allows_insecure(&self.inner.config.insecure_registries, host_port)
    }

    /// `https://host` for ordinary registries; for insecure ones HTTPS (unverified) when it
    /// answers, else plain HTTP, decided once per host like the container runtime does.
    async fn base_url(&self, host: &str) -> Result<Url, Error> {
        let state = self.host_state(host);
        let url = state
            .base_url
            .get_or_try_init(|| async {
                let https = parse_url(&format!("https://{host}/"))?;
                if !self.allows_insecure(host) {
                    return Ok(https);
                }
                let probe = join_url(&https, "/v2/")?;
                state.wait_for_rate_slot().await;
                state.counters.bump(RequestKind::Ping);
                // Any failure (refused TLS, handshake garbage, silence) means "no HTTPS here";
                // if plain HTTP fails too, the real request reports it.
                let probe_timeout = self.inner.config.request_timeout.min(PROBE_TIMEOUT);
                match self
                    .inner
                    .lax
                    .get(probe)
                    .timeout(probe_timeout)
                    .send()
                    .await
                {
                    Ok(_) => Ok(https),
                    Err(err) => {
                        tracing::debug!(host, error = %err, "no HTTPS; using plain HTTP");
                        parse_url(&format!("http://{host}/"))
                    }
                }
            })
            .await?;
        Ok(url.clone())
    }

    /// Sends a registry request, authenticating as the registry demands: a cached token or known
    /// Basic scheme up front, else learn the challenge from one 401 and retry once.
    async fn get_authorized(
        &self,
        image: &ImageRef,
        method: Method,
        url: Url,
        accept: Option<&str>,
        kind: RequestKind,
    ) -> Result<reqwest::Response, Error> {
        let registry = image.registry_host();
        let scope = format!("repository:{}:pull", image.path);
        let state = self.host_state(registry);
        let mut discovery = state.auth_discovered.lock().await;
        if *discovery {
            drop(discovery);
            return self
                .send_authorized(image, &state, &scope, method, url, accept, kind)
                .await;
        }
        // First contact: hold the gate through this request so concurrent ones wait and then
        // reuse what it learnt.
        let result = self
            .send_authorized(image, &state, &scope, method, url, accept, kind)
            .await;
        if result.is_ok() || lock(&state.auth_scheme).is_some() {
            *discovery = true;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_authorized(
        &self,
        image: &ImageRef,
        state: &HostState,
        scope: &str,
        method: Method,
        url: Url,
        accept: Option<&str>,
        kind: RequestKind,
    ) -> Result<reqwest::Response, Error> {
        let registry = image.registry_host();
        // Index into the matching credentials; like the kubelet, the next one is tried when
        // the registry or its token server rejects the current one.
        let mut candidate = 0usize;
        let mut authorization = self
            .authorization(image, state, scope, &mut candidate)
            .await?;
        let mut retried_after_challenge = false;
        loop {
            let response = self
                .send(
                    registry,
                    method.clone(),
                    url.clone(),
                    accept,
                    authorization.clone(),
                    kind,
                )
                .await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // A 401 that comes from where a redirect led is not the registry's challenge: a
            // foreign host could name its own Bearer realm and be sent the registry's
            // credentials. Only the registry itself (and the token service its own challenge
            // names) may ask for them.
            if response.url().origin() != url.origin() {
                let answered = response.url().clone();
                return Err(Error::Unauthorized {
                    image: image.repository(),
                    url: url.to_string(),
                    detail: format!(
                        "the redirect target {} answered 401; only {registry} itself may ask for credentials, so none are sent",
                        host_port(&answered)
                    ),
                });
            }
            let header_value = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            let detail = body_snippet(response).await;
            if retried_after_challenge {
                self.forget_token(registry, scope);
                if authorization.is_some()
                    && candidate + 1 < self.credential_candidates(image).await?.len()
                {
                    candidate += 1;
                    authorization = self
                        .authorization(image, state, scope, &mut candidate)
                        .await?;
                    continue;
                }
                // Fresh credentials were rejected: stop here instead of looping on 401s.
                return Err(Error::Unauthorized {
                    image: image.repository(),
                    url: url.to_string(),
                    detail: if authorization.is_some() {
                        format!("the registry rejected the credentials: {detail}")
                    } else {
                        format!("no credentials configured for {registry}: {detail}")
                    },
                });
            }
            retried_after_challenge = true;
            let challenges = auth::parse_challenges(&header_value).map_err(|reason| {
                Error::MalformedChallenge {
                    url: url.to_string(),
                    header: header_value.clone(),
                    reason,
                }
            })?;
            let scheme = scheme_from(&challenges).ok_or_else(|| Error::MalformedChallenge {
                url: url.to_string(),
                header: header_value.clone(),
                reason: "no Bearer challenge with a realm and no Basic challenge".to_string(),
            })?;
            *lock(&state.auth_scheme) = Some(scheme);
            self.forget_token(registry, scope);
            authorization = self
                .authorization(image, state, scope, &mut candidate)
                .await?;
            if authorization.is_none() {
                return Err(Error::Unauthorized {
                    image: image.repository(),
                    url: url.to_string(),
                    detail: format!(
                        "the registry asks for Basic credentials and none match {registry} (use --pull-secret)"
                    ),
                });
            }
        }
    }

    /// [`Self::known_authorization`], moving on to the next matching credential while the
    /// token server rejects the current one.
    async fn authorization(
        &self,
        image: &ImageRef,
        state: &HostState,
        scope: &str,
        candidate: &mut usize,
    ) -> Result<Option<HeaderValue>, Error> {
        loop {
            match self
                .known_authorization(image, state, scope, *candidate)
                .await
            {
                Err(Error::TokenRequest {
                    status: 401 | 403, ..
                }) if *candidate + 1 < self.credential_candidates(image).await?.len() => {
                    *candidate += 1;
                }
                other => return other,
            }
        }
    }

    /// The Authorization header for a registry whose auth scheme is known (None when unknown),
    /// using the `candidate`-th matching credential.
    async fn known_authorization(
        &self,
        image: &ImageRef,
        state: &HostState,
        scope: &str,
        candidate: usize,
    ) -> Result<Option<HeaderValue>, Error> {
        let scheme = lock(&state.auth_scheme).clone();
        match scheme {
            None => Ok(None),
            Some(AuthScheme::Basic) => {
                match self.credential_candidates(image).await?.get(candidate) {
                    Some(entry) => Ok(Some(basic_header(&entry.username, &entry.password)?)),
                    None => Ok(None),
                }
            }
            Some(AuthScheme::Bearer { realm, service }) => {
                let registry = image.registry_host();
                let key = (registry.to_string(), scope.to_string());
                let cached = || {
                    lock(&self.inner.tokens)
                        .get(&key)
                        .filter(|t| t.valid_until > Instant::now())
                        .map(|t| t.token.clone())
                };
                let fetch_lock = lock(&self.inner.token_fetches)
                    .entry(key.clone())
                    .or_default()
                    .clone();
                let _single_flight = fetch_lock.lock().await;
                let token = match cached() {
                    Some(token) => token,
                    None => {
                        let credentials = self
                            .credential_candidates(image)
                            .await?
                            .get(candidate)
                            .cloned();
                        let fresh = self
                            .fetch_token(&realm, service.as_deref(), scope, credentials.as_ref())
                            .await?;
                        let token = fresh.token.clone();
                        lock(&self.inner.tokens).insert(key, fresh);
                        token
                    }
                };
                bearer_header(&token, &realm).map(Some)
            }
        }
    }

    fn forget_token(&self, registry: &str, scope: &str) {
        lock(&self.inner.tokens).remove(&(registry.to_string(), scope.to_string()));
    }

    /// Credentials for the image, in the order they are tried: every matching pull-secret
    /// entry (kubelet order), else what the credential helper returns (asked once per client).
    async fn credential_candidates(&self, image: &ImageRef) -> Result<Vec<AuthEntry>, Error> {
        let credentials = &self.inner.config.credentials;
        let matching = credentials.matching(image);
        if !matching.is_empty() {
            return Ok(matching.into_iter().cloned().collect());
        }
        let Some(helper) = credentials.helper_for(image) else {
            return Ok(Vec::new());
        };
        let cache_key = format!("{helper} {}", image.domain);
        let mut cache = self.inner.helper_credentials.lock().await;
        if let Some(entry) = cache.get(&cache_key) {
            return Ok(entry.iter().cloned().collect());
        }
        let entry = auth::run_helper(helper, image).await?;
        cache.insert(cache_key, entry.clone());
        Ok(entry.into_iter().collect())
    }

    /// Asks the token server for a pull token (GET with Basic, or the OAuth2 refresh-token POST
    /// for identity tokens). Tokens live until `expires_in` (default 60 s) minus a margin.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&AuthEntry>,
    ) -> Result<CachedToken, Error> {
        let mut realm_url = parse_url(realm).map_err(|_| Error::MalformedToken {
            realm: realm.to_string(),
            reason: "the realm is not an absolute URL".to_string(),
        })?;
        let realm_host = host_port(&realm_url);
        if realm_url.scheme() != "https"
            && !(realm_url.scheme() == "http" && self.allows_insecure(&realm_host))
        {
            return Err(Error::InsecureNotAllowed {
                url: realm.to_string(),
                host: realm_host,
            });
        }
        let identity_token = credentials.and_then(|c| c.identity_token.clone());
        let (method, body, authorization) = match (&identity_token, credentials) {
            (Some(refresh_token), _) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", refresh_token);
                form.append_pair("client_id", "keelson");
                form.append_pair("scope", scope);
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                (Method::POST, Some(form.finish()), None)
            }
            (None, Some(entry)) => {
                realm_url
                    .query_pairs_mut()
                    .append_pair("account", &entry.username);
                (
                    Method::GET,
                    None,
                    Some(basic_header(&entry.username, &entry.password)?),
                )
            }
            (None, None) => (Method::GET, None, None),
        };
        if method == Method::GET {
            let mut pairs = realm_url.query_pairs_mut();
            if let Some(service) = service {
                pairs.append_pair("service", service);
            }
            pairs.append_pair("scope", scope);
        }
        let response = self
            .send_with_body(&realm_host, method, realm_url.clone(), authorization, body)
            .await?;
        let status = response.status();
        if !status.is_success() {
            let detail = body_snippet(response).await;
            return Err(Error::TokenRequest {
                realm: realm.to_string(),
                status: status.as_u16(),
                detail,
            });
        }
        let body = read_capped(response, self.inner.config.max_body_bytes, &realm_url).await?;
        parse_token_response(&body, realm)
    }

    async fn send_with_body(
        &self,
        host: &str,
        method: Method,
        url: Url,
        authorization: Option<HeaderValue>,
        body: Option<String>,
    ) -> Result<reqwest::Response, Error> {
        self.send_inner(
            host,
            method,
            url,
            None,
            authorization,
            RequestKind::Token,
            body,
        )
        .await
    }

    async fn send(
        &self,
        host: &str,
        method: Method,
        url: Url,
        accept: Option<&str>,
        authorization: Option<HeaderValue>,
        kind: RequestKind,
    ) -> Result<reqwest::Response, Error> {
        self.send_inner(host, method, url, accept, authorization, kind, None)
            .await
    }

    /// One logical request: waits for the host's concurrency and rate limits, retries 429/503
    /// (honouring `Retry-After`) and network errors with exponential backoff and jitter.
    #[allow(clippy::too_many_arguments)]
    async fn send_inner(
        &self,
        host: &str,
        method: Method,
        url: Url,
        accept: Option<&str>,
        authorization: Option<HeaderValue>,
        kind: RequestKind,
        body: Option<String>,
    ) -> Result<reqwest::Response, Error> {
        let config = &self.inner.config;
        let state = self.host_state(host);
        let max_attempts = config.max_attempts.max(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = {
                let _permit = state.semaphore.acquire().await.map_err(|_| Error::Closed)?;
                state.wait_for_rate_slot().await;
                self.follow_redirects(
                    &state,
                    method.clone(),
                    url.clone(),
                    accept,
                    authorization.clone(),
                    kind,
                    body.clone(),
                )
                .await
            };
            let delay = match &result {
                Ok(response)
                    if matches!(
                        response.status(),
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    ) =>
                {
                    let retry_after = retry_after(response.headers());
                    if let Some(wait) = retry_after
                        && wait > config.max_retry_after
                    {
                        return Err(Error::RateLimited {
                            url: url.to_string(),
                            status: response.status().as_u16(),
                            attempts: attempt,
                            retry_after: Some(wait),
                        });
                    }
                    if attempt >= max_attempts {
                        return Err(Error::RateLimited {
                            url: url.to_string(),
                            status: response.status().as_u16(),
                            attempts: attempt,
                            retry_after,
                        });
                    }
                    retry_after.unwrap_or_else(|| backoff(config, attempt))
                }
                Ok(_) => return result,
                Err(Error::Timeout { .. }) if attempt < max_attempts => backoff(config, attempt),
                Err(Error::Http { source, .. })
                    if attempt < max_attempts
                        && (source.is_connect() || source.is_timeout() || source.is_request()) =>
                {
                    backoff(config, attempt)
                }
                Err(_) => return result,
            };
            tracing::debug!(%url, attempt, ?delay, "registry busy or unreachable; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends one request and follows redirects by hand, so credentials are dropped as soon as a
    /// redirect leaves the original scheme, host and port, and plain HTTP stays opt-in.
    #[allow(clippy::too_many_arguments)]
    async fn follow_redirects(
        &self,
        state: &HostState,
        mut method: Method,
        mut url: Url,
        accept: Option<&str>,
        mut authorization: Option<HeaderValue>,
        kind: RequestKind,
        mut body: Option<String>,
    ) -> Result<reqwest::Response, Error> {
        let original_url = url.clone();
        let origin = url.origin();
        for _hop in 0..=self.inner.config.max_redirects {
            let target_host = host_port(&url);
            if url.scheme() != "https"
                && !(url.scheme() == "http" && self.allows_insecure(&target_host))
            {
                return Err(Error::InsecureNotAllowed {
                    url: url.to_string(),
                    host: target_host,
                });
            }
            let client = if self.allows_insecure(&target_host) {
                &self.inner.lax
            } else {
                &self.inner.strict
            };
            let mut request = client.request(method.clone(), url.clone());
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION, value.clone());
            }
            if let Some(form) = &body {
                request = request
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.clone());
            }
            state.counters.bump(kind);
            let sent = request.send().await;
            state
                .counters
                .answered(sent.as_ref().map_or(0, |r| r.status().as_u16()));
            let response = sent.map_err(|source| {
                if source.is_timeout() {
                    Error::Timeout {
                        url: url.to_string(),
                    }
                } else {
                    Error::Http {
                        url: url.to_string(),
                        source,
                    }
                }
            })?;
            if !response.status().is_redirection() || response.status() == StatusCode::NOT_MODIFIED
            {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::MalformedRedirect {
                    url: url.to_string(),
                    reason: "no usable Location header".to_string(),
                })?;
            let next = url.join(location).map_err(|err| Error::MalformedRedirect {
                url: url.to_string(),
                reason: format!("Location {location:?}: {err}"),
            })?;
            if next.origin() != origin && authorization.is_some() {
                tracing::debug!(from = %url, to = %next, "redirect leaves the registry; dropping credentials");
                authorization = None;
            }
            // 303 (and historically 301/302 for POST) turn into a GET without body.
            if response.status() == StatusCode::SEE_OTHER || method == Method::POST {
                method = Method::GET;
                body = None;
            }
            url = next;
        }
        Err(Error::TooManyRedirects {
            url: original_url.to_string(),
            limit: self.inner.config.max_redirects,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock cannot leave these maps inconsistent
    // (every update is a single insert/remove), so keep going with the data.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn parse_url(value: &str) -> Result<Url, Error> {
    Url::parse(value).map_err(|err| Error::InvalidUrl {
        url: value.to_string(),
        reason: err.to_string(),
    })
}

fn join_url(base: &Url, path: &str) -> Result<Url, Error> {
    base.join(path).map_err(|err| Error::InvalidUrl {
        url: format!("{base}{path}"),
        reason: err.to_string(),
    })
}

/// `host[:port]` of a URL as written in image references (IPv6 in brackets).
fn host_port(url: &Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// The container runtime's rule: configured insecure registries and loopback hosts.
fn allows_insecure(insecure: &[String], host_port: &str) -> bool {
    let host_only = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host_port
            .rsplit_once(':')
            .map_or(host_port, |(host, _)| host),
    };
    let loopback = host_only.eq_ignore_ascii_case("localhost")
        || host_only.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback
        || insecure.iter().any(|entry| {
            let entry = entry.trim().trim_end_matches('/');
            let entry = entry
                .strip_prefix("http://")
                .or_else(|| entry.strip_prefix("https://"))
                .unwrap_or(entry);
            entry.eq_ignore_ascii_case(host_port)
                || entry.eq_ignore_ascii_case(host_only) && !entry.contains(':')
        })
}

fn scheme_from(challenges: &[Challenge]) -> Option<AuthScheme> {
    let bearer = challenges.iter().find_map(|c| {
        (c.scheme == "bearer")
            .then(|| c.params.get("realm"))
            .flatten()
            .map(|realm| AuthScheme::Bearer {
                realm: realm.clone(),
                service: c.params.get("service").cloned(),
            })
    });
    bearer.or_else(|| {
        challenges
            .iter()
            .any(|c| c.scheme == "basic")
            .then_some(AuthScheme::Basic)
    })
}

/// A token server's answer as a cached token. Errors never quote the body (it holds the token).
fn parse_token_response(body: &[u8], realm: &str) -> Result<CachedToken, Error> {
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|err| Error::MalformedToken {
            realm: realm.to_string(),
            reason: format!(
                "the response {}",
                super::auth::json_error_without_content(&err)
            ),
        })?;
    let token = parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::MalformedToken {
            realm: realm.to_string(),
            reason: "the response has neither `token` nor `access_token`".to_string(),
        })?;
    // A minute is the spec's default; renew a little early so a token never expires in flight.
    let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).clamp(1, 86_400 * 30));
    let margin = (lifetime / 10).min(Duration::from_secs(30));
    Ok(CachedToken {
        token,
        valid_until: Instant::now() + lifetime.saturating_sub(margin),
    })
}

/// `Authorization: Bearer …`, marked sensitive so HTTP-level logging never prints it.
fn bearer_header(token: &str, realm: &str) -> Result<HeaderValue, Error> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::MalformedToken {
            realm: realm.to_string(),
            reason: "the token contains characters not allowed in a header".to_string(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

fn basic_header(username: &str, password: &str) -> Result<HeaderValue, Error> {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| Error::InvalidHeader {
            what: format!("Basic credentials of user {username:?}"),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The `rel="next"` target of the `Link` headers, resolved against the current page URL.
/// Accepts `<url>; rel="next"`, bare URLs, relative paths and opaque query continuations.
fn next_link(headers: &HeaderMap, current: &Url) -> Result<Option<Url>, Error> {
    for value in headers.get_all(header::LINK) {
        let text = value.to_str().map_err(|_| Error::MalformedLink {
            url: current.to_string(),
            header: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })?;
        for link in split_links(text) {
            let mut parts = link.split(';');
            let target = parts.next().unwrap_or_default().trim();
            let is_next = parts.any(|param| {
                let param = param.trim();
                let Some((name, value)) = param.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            if !is_next {
                continue;
            }
            let target = target
                .strip_prefix('<')
                .map(|t| t.strip_suffix('>').unwrap_or(t))
                .unwrap_or(target)
                .trim();
            if target.is_empty() {
                return Err(Error::MalformedLink {
                    url: current.to_string(),
                    header: text.to_string(),
                });
            }
            return current
                .join(target)
                .map(Some)
                .map_err(|_| Error::MalformedLink {
                    url: current.to_string(),
                    header: text.to_string(),
                });
        }
    }
    Ok(None)
}

/// Splits a Link header into links at commas outside `<…>` and quotes.
fn split_links(text: &str) -> Vec<&str> {
    let mut links = Vec::new();
    let (mut in_angle, mut in_quote, mut start) = (false, false, 0);
    for (index, ch) in text.char_indices() {
        match ch {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                links.push(text.get(start..index).unwrap_or_default());
                start = index + 1;
            }
            _ => {}
        }
    }
    links.push(text.get(start..).unwrap_or_default());
    links.into_iter().filter(|l| !l.trim().is_empty()).collect()
}

fn digest_header(headers: &HeaderMap, url: &Url) -> Result<Option<String>, Error> {
    match headers.get(DIGEST_HEADER) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().unwrap_or_default().trim();
            if is_valid_digest(text) {
                Ok(Some(text.to_string()))
            } else {
                Err(Error::MalformedDigest {
                    url: url.to_string(),
                    value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                })
            }
        }
    }
}

/// Reads a body up to `limit` bytes; more is an error, never an allocation.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    url: &Url,
) -> Result<Vec<u8>, Error> {
    let too_large = || Error::BodyTooLarge {
        url: url.to_string(),
        limit,
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|source| {
            if source.is_timeout() {
                Error::Timeout {
                    url: url.to_string(),
                }
            } else {
                Error::Http {
                    url: url.to_string(),
                    source,
                }
            }
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first few hundred bytes of an error body, printable, for error messages.
async fn body_snippet(response: reqwest::Response) -> String {
    const LIMIT: usize = 300;
    let url = response.url().clone();
    let body = read_capped(response, 64 * 1024, &url)
        .await
        .unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(LIMIT)
        .collect();
    if text.trim().is_empty() {
        "(empty body)".to_string()
    } else {
        text.trim().to_string()
    }
}

async fn status_error(image: &ImageRef, url: &Url, response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    Error::Status {
        image: image.repository(),
        url: url.to_string(),
        status,
        detail: body_snippet(response).await,
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = parse_http_date(value)?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers send today.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    // The year range keeps the arithmetic below far from overflow on hostile input.
    if parts.next()? != "GMT"
        || !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Exponential backoff with jitter: a random delay in [d/2, d], d = base·2^(attempt-1) ≤ max.
fn backoff(config: &RegistryConfig, attempt: u32) -> Duration {
    let exponential = config.backoff_base.saturating_mul(
        1u32.checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX),
    );
    let capped = exponential.min(config.backoff_max);
    let half = capped / 2;
    half + half.mul_f64(random_fraction())
}

/// A random number in [0, 1) from the standard library's randomly seeded hasher.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(value: &str) -> Url {
        Url::parse(value).expect("valid url")
    }

    fn link_headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::LINK, HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    #[test]
    fn link_header_forms() {
        let current = url("https://reg.io/v2/a/tags/list?n=100");
        let cases = [
            (
                r#"</v2/a/tags/list?n=100&last=x>; rel="next""#,
                "https://reg.io/v2/a/tags/list?n=100&last=x",
            ),
            (
                r#"<https://reg.io/v2/a/tags/list?last=y>; rel=next"#,
                "https://reg.io/v2/a/tags/list?last=y",
            ),
            (
                "/v2/a/tags/list?n=100&last=z; rel=\"next\"",
                "https://reg.io/v2/a/tags/list?n=100&last=z",
            ),
            (
                r#"<?next_page=opaque%2Btoken>; rel="next""#,
                "https://reg.io/v2/a/tags/list?next_page=opaque%2Btoken",
            ),
            (
                r#"<https://reg.io/prev>; rel="prev", <https://reg.io/v2/a/tags/list?p=2,3>; rel="next""#,
                "https://reg.io/v2/a/tags/list?p=2,3",
            ),
            (
                r#"<https://reg.io/v2/a/tags/list?p=4>; title="a, b"; rel="last next""#,
                "https://reg.io/v2/a/tags/list?p=4",
            ),
        ];
        for (header, want) in cases {
            let next = next_link(&link_headers(&[header]), &current)
                .expect(header)
                .expect("has next");
            assert_eq!(next.as_str(), want, "{header}");
        }
        assert_eq!(
            next_link(&link_headers(&[r#"</x>; rel="prev""#]), &current).expect("ok"),
            None
        );
        assert!(next_link(&link_headers(&[r#"<>; rel="next""#]), &current).is_err());
        assert!(next_link(&link_headers(&[r#"<http://[bad>; rel="next""#]), &current).is_err());
    }

    #[test]
    fn insecure_rules() {
        let configured = vec!["reg.local:5000".to_string(), "other.local".to_string()];
        let table = [
            ("127.0.0.1:5000", true),
            ("127.1.2.3", true),
            ("localhost:1234", true),
            ("[::1]:5000", true),
            ("reg.local:5000", true),
            ("reg.local:5001", false),
            ("reg.local", false),
            ("other.local:7000", true),
            ("ghcr.io", false),
            ("10.0.0.1:5000", false),
        ];
        for (host, want) in table {
            assert_eq!(allows_insecure(&configured, host), want, "{host}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            Some(784_111_777)
        );
        for bad in [
            "soon",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Nov 99999999999999999 08:49:37 GMT",
            "Sun, 06 Nov -99999999999999999 08:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let config = RegistryConfig::default();
        for attempt in 1..=40 {
            let delay = backoff(&config, attempt);
            let full = config
                .backoff_base
                .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX))
                .min(config.backoff_max);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn challenge_to_scheme() {
        let bearer = auth::parse_challenges(r#"Bearer realm="https://a/token",service="reg""#)
            .expect("parses");
        assert!(matches!(
            scheme_from(&bearer),
            Some(AuthScheme::Bearer { realm, service: Some(service) }) if realm == "https://a/token" && service == "reg"
        ));
        let basic = auth::parse_challenges(r#"Basic realm="x""#).expect("parses");
        assert!(matches!(scheme_from(&basic), Some(AuthScheme::Basic)));
        let unknown = auth::parse_challenges("Negotiate").expect("parses");
        assert!(scheme_from(&unknown).is_none());
    }

    #[tokio::test]
    async fn rate_limit_allows_a_burst_then_spaces_requests() {
        let state = HostState::new(Limits {
            max_concurrent: 1,
            requests_per_second: 50.0,
            burst: 3,
        });
        let interval = Duration::from_millis(20);
        let start = Instant::now();
        for _ in 0..3 {
            state.wait_for_rate_slot().await;
        }
        // Lower bounds only: after the burst, each further request waits its interval.
        for extra in 1..=3u32 {
            state.wait_for_rate_slot().await;
            assert!(
                start.elapsed() >= interval * extra - Duration::from_millis(1),
                "request {} after the burst went out after {:?}",
                extra,
                start.elapsed()
            );
        }
    }

    /// Issue 13 item 14: no secret in any Debug output or error text of the client.
    #[test]
    fn tokens_and_passwords_never_show() {
        const SECRET: &str = "TOPSECRET-hunter2";
        let contains_secret = |text: &str| text.contains(SECRET) || text.contains("hunter2");

        let cached = CachedToken {
            token: SECRET.to_string(),
            valid_until: Instant::now(),
        };
        assert!(!contains_secret(&format!("{cached:?}")));
        let response = TokenResponse {
            token: Some(SECRET.to_string()),
            access_token: Some(SECRET.to_string()),
            expires_in: Some(60),
        };
        assert!(!contains_secret(&format!("{response:?}")));

        let document = serde_json::json!({"auths": {"r.example": {"username": "alice", "password": SECRET, "identitytoken": SECRET}}});
        let config = RegistryConfig {
            credentials: Credentials::from_document(document.to_string().as_bytes(), "secret.json")
                .unwrap_or_default(),
            ..RegistryConfig::default()
        };
        let Ok(client) = RegistryClient::new(config) else {
            panic!("client builds");
        };
        lock(&client.inner.tokens).insert(("r.example".into(), "scope".into()), cached);
        assert!(!contains_secret(&format!("{client:?}")), "{client:?}");

        for header in [
            bearer_header(SECRET, "https://auth.example/token"),
            basic_header("alice", SECRET),
        ] {
            let Ok(header) = header else {
                panic!("valid header");
            };
            assert!(header.is_sensitive());
            assert!(!contains_secret(&format!("{header:?}")));
        }

        // Token responses that carry the secret in a wrong place.
        for body in [
            format!(r#"{{"token": ["{SECRET}"]}}"#),
            format!(r#"{{"expires_in": "{SECRET}"}}"#),
            format!(r#"{{"token": "{SECRET}""#),
            format!(r#"{{"token": "{SECRET}" x}}"#),
        ] {
            let err = parse_token_response(body.as_bytes(), "https://auth.example/token")
                .err()
                .unwrap_or_else(|| panic!("{body} must fail"));
            let shown = format!("{} {err:?} {}", crate::cluster::error_chain(&err), err);
            assert!(!contains_secret(&shown), "{shown}");
        }
    }
}
