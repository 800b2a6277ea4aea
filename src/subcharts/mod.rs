//! Subcharts fetched for a full re-render. Helm does not store a release's subcharts in its
//! record, so a chart with dependencies can only be re-rendered once they are fetched again —
//! at exactly the versions Helm resolved at install time (the record's lock), from classic HTTP
//! chart repositories or OCI registries, verified against the repository's digest, and cached
//! on disk and in memory so a thousand releases of one chart fetch each dependency once.
//! The render-verify guard (`updater::render`) still decides: the deployed manifest must be
//! reproduced byte for byte with what was fetched. See docs/subcharts.md.

mod disk;
mod http_repo;
mod oci;
pub mod plan;
pub mod sources;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sha2::Digest as _;

use crate::registry::{RegistryClient, RegistryConfig};
use crate::render::chart::{Chart, MAX_DECOMPRESSED_CHART_SIZE, load_archive_as};
use crate::render::release::HelmFlavor;

pub use plan::{Wanted, wanted_dependencies};
pub use sources::{RepositoryEntry, Sources, SubchartArgs};

/// The largest archive downloaded: Helm's cap on a chart's decompressed size, which a gzipped
/// archive of a loadable chart never exceeds.
pub const MAX_ARCHIVE_BYTES: usize = MAX_DECOMPRESSED_CHART_SIZE as usize;
/// How long a failed fetch is remembered before it is tried again (so one broken repository
/// costs one attempt per release cycle, not one per release).
const FAILURE_TTL: Duration = Duration::from_secs(60);

/// Fetches done so far (archives and indexes), for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchStats {
    /// Archives downloaded from a repository or registry.
    pub downloads: u64,
    /// `index.yaml` files downloaded.
    pub index_downloads: u64,
    /// Archives read from the disk cache.
    pub disk_hits: u64,
    /// Dependencies answered from memory.
    pub memory_hits: u64,
}

#[derive(Default)]
struct Counters {
    downloads: AtomicU64,
    index_downloads: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
}

type Loaded = (Instant, Result<Arc<Chart>, String>);
type Slot = Arc<tokio::sync::OnceCell<Loaded>>;

struct Inner {
    sources: Sources,
    registry: RegistryClient,
    http: http_repo::Clients,
    disk: Option<disk::DiskCache>,
    /// By flavour too: helm 4 reads a dependency's values.yaml differently (every `---`
    /// document merged), though the archive is the same.
    charts: Mutex<HashMap<(Wanted, HelmFlavor), Slot>>,
    counters: Counters,
}

/// Fetches and caches dependency charts. Cheap to clone; clones share caches and counters.
#[derive(Clone)]
pub struct SubchartFetcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SubchartFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubchartFetcher")
            .field("repositories", &self.inner.sources.repositories)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update of the maps is one insert, so a panic elsewhere cannot leave them torn.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for byte in hash.iter() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

impl SubchartFetcher {
    /// A fetcher over `sources`; OCI registries are reached through a registry client built
    /// from `registry_config` (insecure registries, limits, caps, the `--pull-secret`
    /// credentials) plus the chart registry credentials of `sources`.
    pub fn new(sources: Sources, registry_config: &RegistryConfig) -> anyhow::Result<Self> {
        let mut config = registry_config.clone();
        config
            .credentials
            .merge(sources.registry_credentials.clone());
        let registry = RegistryClient::new(config)
            .map_err(|err| anyhow::anyhow!("cannot set up the chart registry client: {err}"))?;
        let disk = sources.cache_dir.clone().map(disk::DiskCache::new);
        Ok(Self {
            inner: Arc::new(Inner {
                http: http_repo::Clients::new(registry_config.user_agent.clone()),
                sources,
                registry,
                disk,
                charts: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        })
    }

    pub fn stats(&self) -> FetchStats {
        let c = &self.inner.counters;
        FetchStats {
            downloads: c.downloads.load(Ordering::Relaxed),
            index_downloads: c.index_downloads.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// The subcharts a record's chart was rendered with, one per dependency of the record's
    /// metadata and named as the record names it (Helm stores the metadata after processing:
    /// aliases as names), so the renderer pairs them as Helm paired the `charts/` it loaded;
    /// empty when it has no dependencies. `Err` says why they cannot be had (patch mode shows
    /// it).
    pub async fn subcharts_for(
        &self,
        record_chart: &Json,
        flavor: HelmFlavor,
    ) -> Result<Vec<Chart>, String> {
        let sources = plan::dependency_sources(record_chart)?;
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        if self.inner.sources.disabled {
            return Err("fetching dependencies is switched off (--no-fetch-subcharts)".into());
        }
        let wanted = wanted_dependencies(record_chart)?;
        let loads = wanted
            .iter()
            .map(|dependency| self.chart(dependency, flavor));
        let mut fetched = HashMap::with_capacity(wanted.len());
        for (dependency, loaded) in wanted.iter().zip(futures::future::join_all(loads).await) {
            let chart =
                loaded.map_err(|err| format!("cannot fetch dependency {dependency}: {err}"))?;
            fetched.insert(dependency.clone(), chart);
        }
        let mut charts = Vec::with_capacity(sources.len());
        for (name, dependency) in sources {
            let Some(chart) = fetched.get(&dependency) else {
                return Err(format!("dependency {dependency} was not fetched"));
            };
            let mut chart = chart.as_ref().clone();
            chart.metadata.name = name;
            charts.push(chart);
        }
        Ok(charts)
    }

    /// One dependency chart: from memory, else the disk cache, else its repository. Concurrent
    /// callers asking for the same one wait for a single fetch.
    async fn chart(&self, wanted: &Wanted, flavor: HelmFlavor) -> Result<Arc<Chart>, String> {
        let key = (wanted.clone(), flavor);
        let slot = {
            let mut charts = lock(&self.inner.charts);
            let stale = charts.get(&key).is_some_and(|slot| {
                slot.get()
                    .is_some_and(|(at, result)| result.is_err() && at.elapsed() > FAILURE_TTL)
            });
            if stale {
                charts.remove(&key);
            }
            charts.entry(key).or_default().clone()
        };
        let mut fetched_now = false;
        let (_, result) = slot
            .get_or_init(|| async {
                fetched_now = true;
                (
                    Instant::now(),
                    self.load(wanted, flavor).await.map(Arc::new),
                )
            })
            .await;
        if !fetched_now {
            self.inner
                .counters
                .memory_hits
                .fetch_add(1, Ordering::Relaxed);
        }
        result.clone()
    }

    async fn load(&self, wanted: &Wanted, flavor: HelmFlavor) -> Result<Chart, String> {
        if let Some(disk) = &self.inner.disk
            && let Some((digest, bytes)) = disk.read(wanted).await
        {
            match open_archive(wanted, bytes, &digest, flavor).await {
                Ok(chart) => {
                    self.inner
                        .counters
                        .disk_hits
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(chart);
                }
                Err(err) => {
                    tracing::warn!(dependency = %wanted, error = %err, "ignoring a cached archive that does not load");
                }
            }
        }
        let (bytes, digest) = if let Some(rest) = wanted.repository.strip_prefix("oci://") {
            oci::fetch(&self.inner.registry, rest, wanted).await?
        } else {
            let url = self.repository_url(&wanted.repository)?;
            http_repo::fetch(
                &self.inner.http,
                &self.inner.sources,
                &url,
                wanted,
                &self.inner.counters.index_downloads,
            )
            .await?
        };
        self.inner
            .counters
            .downloads
            .fetch_add(1, Ordering::Relaxed);
        let chart = open_archive(wanted, bytes.clone(), &digest, flavor).await?;
        if let Some(disk) = &self.inner.disk {
            disk.write(wanted, &digest, &bytes).await;
        }
        Ok(chart)
    }

    /// The repository's URL: as written, or for `@name` / `alias:name` the URL of helm's
    /// repository entry of that name.
    fn repository_url(&self, repository: &str) -> Result<String, String> {
        let named = repository
            .strip_prefix('@')
            .or_else(|| repository.strip_prefix("alias:"));
        match named {
            Some(name) => self
                .inner
                .sources
                .named_repository(name)
                .map(|entry| entry.url.clone())
                .ok_or_else(|| {
                    format!(
                        "the chart names repository {repository:?}, and no repository of that name is configured (helm repositories.yaml or --chart-repository-secret with `name`)"
                    )
                }),
            None if repository.starts_with("http://") || repository.starts_with("https://") => {
                Ok(repository.to_string())
            }
            None => Err(format!(
                "repository {repository:?} is neither http(s)://, oci:// nor a named repository"
            )),
        }
    }
}

/// Checks `bytes` against `digest` and loads the chart (CPU work, off the async threads);
/// the archive must hold the chart and version asked for.
async fn open_archive(
    wanted: &Wanted,
    bytes: Vec<u8>,
    digest: &str,
    flavor: HelmFlavor,
) -> Result<Chart, String> {
    let wanted = wanted.clone();
    let digest = digest.to_string();
    tokio::task::spawn_blocking(move || {
        let computed = sha256_digest(&bytes);
        if computed != digest {
            return Err(format!(
                "the archive has digest {computed}, expected {digest}"
            ));
        }
        let display = format!("{}-{}.tgz", wanted.name, wanted.version);
        let chart = load_archive_as(&bytes, &display, flavor).map_err(|err| err.to_string())?;
        let same_version = match (
            gocompat::semver::parse_version(&chart.metadata.version),
            gocompat::semver::parse_version(&wanted.version),
        ) {
            // Masterminds' Equal: build metadata and the `v` prefix do not count.
            (Some(a), Some(b)) => a.compare(&b).is_eq(),
            _ => chart.metadata.version == wanted.version,
        };
        if chart.metadata.name != wanted.name || !same_version {
            return Err(format!(
                "the archive holds chart {} {}, not {} {}",
                chart.metadata.name, chart.metadata.version, wanted.name, wanted.version
            ));
        }
        Ok(chart)
    })
    .await
    .map_err(|err| format!("loading the archive stopped: {err}"))?
}
