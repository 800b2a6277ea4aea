//! Classic HTTP(S) chart repositories: `index.yaml` names each version's archive URL
//! (relative to the repository or absolute) and its sha256 digest; the archive is downloaded
//! with the repository's credentials and TLS settings and checked against that digest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::Value as Json;

use super::sources::{RepositoryEntry, Sources};
use super::{MAX_ARCHIVE_BYTES, Wanted, lock, sha256_digest};

/// The largest `index.yaml` read (big public repositories publish tens of MiB).
const MAX_INDEX_BYTES: usize = 128 * 1024 * 1024;
/// How long a downloaded index answers for its repository.
const INDEX_TTL: Duration = Duration::from_secs(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One chart version of an index.
#[derive(Debug, Clone)]
struct IndexVersion {
    version: String,
    urls: Vec<String>,
    /// Hex sha256 of the archive; empty when the index gives none.
    digest: String,
}

type Index = HashMap<String, Vec<IndexVersion>>;
type IndexSlot = Arc<tokio::sync::OnceCell<(Instant, Result<Arc<Index>, String>)>>;

/// HTTP clients by repository settings, and downloaded indexes by repository URL.
pub struct Clients {
    user_agent: String,
    clients: Mutex<HashMap<String, reqwest::Client>>,
    indexes: Mutex<HashMap<String, IndexSlot>>,
}

impl Clients {
    pub fn new(user_agent: String) -> Self {
        Self {
            user_agent,
            clients: Mutex::new(HashMap::new()),
            indexes: Mutex::new(HashMap::new()),
        }
    }

    /// The client for a repository's TLS settings (one per settings, reused).
    fn client(&self, entry: Option<&RepositoryEntry>) -> Result<reqwest::Client, String> {
        let key = entry
            .map(|e| format!("{}\n{}", e.source, e.url))
            .unwrap_or_default();
        if let Some(client) = lock(&self.clients).get(&key) {
            return Ok(client.clone());
        }
        // reqwest needs a process-wide rustls provider; installing it again is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(self.user_agent.clone());
        if let Some(entry) = entry {
            if let Some(pem) = &entry.ca_pem {
                let certificates = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|err| format!("the CA bundle of {}: {err}", entry.source))?;
                for certificate in certificates {
                    builder = builder.add_root_certificate(certificate);
                }
            }
            if let (Some(cert), Some(key)) = (&entry.client_cert_pem, &entry.client_key_pem) {
                let mut pem = cert.clone();
                pem.push(b'\n');
                pem.extend_from_slice(key);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|err| format!("the client certificate of {}: {err}", entry.source))?;
                builder = builder.identity(identity);
            }
            builder = builder.tls_danger_accept_invalid_certs(entry.insecure_skip_tls_verify);
        }
        let client = builder
            .build()
            .map_err(|err| format!("cannot build an HTTP client: {err}"))?;
        lock(&self.clients).insert(key, client.clone());
        Ok(client)
    }
}

fn error_text(err: &reqwest::Error) -> String {
    crate::cluster::error_chain(err)
}

/// GETs `url` with `auth` (basic credentials), reading at most `limit` bytes.
async fn get(
    client: &reqwest::Client,
    url: &Url,
    auth: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut request = client.get(url.clone());
    if let Some((username, password)) = auth {
        request = request.basic_auth(username, Some(password));
    }
    let mut response = request
        .send()
        .await
        .map_err(|err| format!("GET {url}: {}", error_text(&err)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: the server answered {status}"));
    }
    let too_large = || format!("GET {url}: the response is larger than the {limit}-byte limit");
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| format!("GET {url}: {}", error_text(&err)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Helm's `ResolveReferenceURL`: an absolute archive URL as is, a relative one against the
/// repository URL taken as a directory (keeping the repository's query).
fn resolve_archive_url(repository: &Url, archive: &str) -> Result<Url, String> {
    if let Ok(absolute) = Url::parse(archive) {
        return Ok(absolute);
    }
    let mut base = repository.clone();
    let path = format!("{}/", base.path().trim_end_matches('/'));
    base.set_path(&path);
    let query = base.query().map(str::to_string);
    let mut resolved = base
        .join(archive)
        .map_err(|err| format!("archive URL {archive:?} relative to {repository}: {err}"))?;
    resolved.set_query(query.as_deref());
    Ok(resolved)
}

fn parse_index(bytes: &[u8], source: &str) -> Result<Index, String> {
    let text = String::from_utf8_lossy(bytes);
    let document = gocompat::yaml::parse_first_document(&text, source)
        .map_err(|err| format!("{source} is not a chart repository index: {err}"))?;
    let Some(entries) = document.get("entries").and_then(Json::as_object) else {
        return Err(format!(
            "{source} is not a chart repository index: no `entries`"
        ));
    };
    let text_of = |value: Option<&Json>| match value {
        Some(Json::String(text)) => text.clone(),
        Some(Json::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    let mut index = Index::new();
    for (name, versions) in entries {
        let versions = versions
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| IndexVersion {
                        version: text_of(item.get("version")),
                        urls: item
                            .get("urls")
                            .and_then(Json::as_array)
                            .map(|urls| {
                                urls.iter()
                                    .filter_map(Json::as_str)
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        digest: text_of(item.get("digest")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        index.insert(name.clone(), versions);
    }
    Ok(index)
}

fn same_version(a: &str, b: &str) -> bool {
    use gocompat::semver::parse_version;
    let build = |text: &str| text.split_once('+').map(|(_, build)| build.to_string());
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => x.compare(&y).is_eq() && build(a) == build(b),
        _ => a == b,
    }
}

/// Downloads `wanted` from the HTTP repository at `repository_url`; returns the archive and
/// its digest, checked against the index's.
pub async fn fetch(
    clients: &Clients,
    sources: &Sources,
    repository_url: &str,
    wanted: &Wanted,
    index_downloads: &AtomicU64,
) -> Result<(Vec<u8>, String), String> {
    let repository = Url::parse(repository_url)
        .map_err(|err| format!("repository URL {repository_url:?}: {err}"))?;
    let entry = sources.repository_for(repository_url);
    if let Some(problem) = entry.and_then(|e| e.problem.as_ref()) {
        return Err(problem.clone());
    }
    let client = clients.client(entry)?;
    let auth = entry
        .filter(|e| !e.username.is_empty() || !e.password.is_empty())
        .map(|e| (e.username.as_str(), e.password.as_str()));
    let index = index(clients, &client, &repository, auth, index_downloads).await?;
    let version = index
        .get(&wanted.name)
        .and_then(|versions| {
            versions
                .iter()
                .find(|v| same_version(&v.version, &wanted.version))
        })
        .ok_or_else(|| {
            format!(
                "the index of {repository_url} has no version {} of chart {}",
                wanted.version, wanted.name
            )
        })?;
    let archive = version.urls.first().ok_or_else(|| {
        format!(
            "the index of {repository_url} lists {} {} without a URL",
            wanted.name, wanted.version
        )
    })?;
    let url = resolve_archive_url(&repository, archive)?;
    // Like helm: the repository's credentials go to its own host only, unless the repository
    // says to pass them everywhere.
    let same_host = url.host_str() == repository.host_str()
        && url.port_or_known_default() == repository.port_or_known_default();
    let archive_auth = auth.filter(|_| same_host || entry.is_some_and(|e| e.pass_credentials_all));
    let bytes = get(&client, &url, archive_auth, MAX_ARCHIVE_BYTES).await?;
    let computed = sha256_digest(&bytes);
    let listed = version.digest.trim().to_ascii_lowercase();
    if !listed.is_empty() && computed != format!("sha256:{listed}") {
        return Err(format!(
            "digest mismatch: {url} has {computed} but the repository index says sha256:{listed}"
        ));
    }
    Ok((bytes, computed))
}

/// The repository's index: downloaded once per [`INDEX_TTL`] however many releases ask.
async fn index(
    clients: &Clients,
    client: &reqwest::Client,
    repository: &Url,
    auth: Option<(&str, &str)>,
    index_downloads: &AtomicU64,
) -> Result<Arc<Index>, String> {
    let key = repository.as_str().trim_end_matches('/').to_string();
    let slot = {
        let mut indexes = lock(&clients.indexes);
        let expired = indexes
            .get(&key)
            .is_some_and(|slot| slot.get().is_some_and(|(at, _)| at.elapsed() > INDEX_TTL));
        if expired {
            indexes.remove(&key);
        }
        indexes.entry(key.clone()).or_default().clone()
    };
    let (_, result) = slot
        .get_or_init(|| async {
            let url = Url::parse(&format!("{key}/index.yaml"))
                .map_err(|err| format!("index URL of {key}: {err}"));
            let result = match url {
                Ok(url) => {
                    index_downloads.fetch_add(1, Ordering::Relaxed);
                    match get(client, &url, auth, MAX_INDEX_BYTES).await {
                        Ok(bytes) => {
                            let source = url.to_string();
                            tokio::task::spawn_blocking(move || parse_index(&bytes, &source))
                                .await
                                .map_err(|err| format!("reading {url} stopped: {err}"))
                                .and_then(|parsed| parsed)
                                .map(Arc::new)
                        }
                        Err(err) => Err(err),
                    }
                }
                Err(err) => Err(err),
            };
            (Instant::now(), result)
        })
        .await;
    result.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_urls_resolve_like_helm() {
        let repo = Url::parse("https://charts.example/stable?token=x").unwrap_or_else(|_| {
            Url::parse("https://invalid.example").unwrap_or_else(|_| unreachable!())
        });
        let resolved = |archive: &str| {
            resolve_archive_url(&repo, archive)
                .map(|u| u.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            resolved("web-1.0.0.tgz"),
            "https://charts.example/stable/web-1.0.0.tgz?token=x"
        );
        assert_eq!(
            resolved("charts/web-1.0.0.tgz"),
            "https://charts.example/stable/charts/web-1.0.0.tgz?token=x"
        );
        assert_eq!(
            resolved("https://cdn.example/web-1.0.0.tgz"),
            "https://cdn.example/web-1.0.0.tgz"
        );
    }

    #[test]
    fn index_versions_and_digests() {
        let text = "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 0.3.1\n    digest: abc\n    urls:\n    - web-0.3.1.tgz\n  - name: web\n    version: 0.3.0\n    urls:\n    - https://x/web-0.3.0.tgz\n";
        let index = parse_index(text.as_bytes(), "index.yaml").unwrap_or_default();
        let web = index.get("web").cloned().unwrap_or_default();
        assert_eq!(web.len(), 2);
        assert_eq!(
            (web[0].version.as_str(), web[0].digest.as_str()),
            ("0.3.1", "abc")
        );
        assert_eq!(web[1].urls, ["https://x/web-0.3.0.tgz"]);
        assert!(parse_index(b"foo: bar\n", "index.yaml").is_err());
        assert!(same_version("v1.0.0", "1.0.0"));
        assert!(!same_version("1.0.0", "1.0.1"));
    }
}
