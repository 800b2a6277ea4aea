//! Subchart fetching benchmark against the REAL chart repositories of the test environment
//! (the static HTTP repository and the docker-registry as OCI chart registry): 1,000 releases
//! of one chart with two dependencies ask for their subcharts at once, as a cycle of the
//! controller does. Prints downloads (goal: one per dependency, one index) and times for a cold
//! cache, a warm memory cache and a warm disk cache (a restarted keelson); asserts nothing
//! about speed.
//!
//! Run: `eval "$(scripts/testenv env)" && cargo bench --bench subcharts`

#[allow(clippy::collapsible_if)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use keelson::registry::RegistryConfig;
use keelson::render::release::HelmFlavor;
use keelson::subcharts::{Sources, SubchartFetcher};
use serde_json::json;

const RELEASES: usize = 1_000;

fn helm(home: &Path, args: &[&str]) {
    let helm = support::env_var("HELM3");
    let out = Command::new(&helm)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap_or_else(|err| panic!("cannot run {helm}: {err}"));
    assert!(
        out.status.success(),
        "helm {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fetcher(cache: &Path) -> SubchartFetcher {
    let sources = Sources {
        cache_dir: Some(cache.to_path_buf()),
        ..Sources::default()
    };
    SubchartFetcher::new(sources, &RegistryConfig::default()).expect("fetcher")
}

/// All releases at once; returns the seconds it took.
async fn cycle(fetcher: &SubchartFetcher, record: &serde_json::Value) -> f64 {
    let start = Instant::now();
    let asks = (0..RELEASES).map(|_| fetcher.subcharts_for(record, HelmFlavor::Helm3));
    for result in futures::future::join_all(asks).await {
        let charts = result.unwrap_or_else(|reason| panic!("{reason}"));
        assert_eq!(charts.len(), 2);
    }
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    keelson::cluster::install_crypto_provider();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("bench-{}-{stamp:x}", std::process::id());
    let work = std::env::temp_dir().join(format!("keelson-{name}"));
    let http_dir = PathBuf::from(support::env_var("KEELSON_CHART_REPO_DIR")).join(&name);
    let http_url = format!("{}/{name}", support::env_var("KEELSON_CHART_REPO"));
    let oci = format!("{}/{name}/charts", support::env_var("KEELSON_OCI_CHARTS"));
    let fixtures = PathBuf::from(support::fixture_chart("fetched"));
    let dir = http_dir.display().to_string();
    helm(
        &work,
        &[
            "package",
            &fixtures.join("web").display().to_string(),
            "-d",
            &dir,
        ],
    );
    helm(&work, &["repo", "index", &dir, "--url", &http_url]);
    let packages = work.join("packages").display().to_string();
    helm(
        &work,
        &[
            "package",
            &fixtures.join("worker").display().to_string(),
            "-d",
            &packages,
        ],
    );
    helm(
        &work,
        &[
            "push",
            &format!("{packages}/worker-1.4.0.tgz"),
            &oci,
            "--plain-http",
        ],
    );

    // The chart part of a release record of fixtures/charts/fetched/shop, as helm stores it.
    let record = json!({
        "metadata": {"name": "shop", "version": "2.0.0", "dependencies": [
            {"name": "web", "version": "~0.3.0", "repository": http_url, "enabled": true},
            {"name": "jobs", "alias": "jobs", "version": "1.4.0", "repository": oci, "enabled": true}
        ]},
        "lock": {"dependencies": [
            {"name": "web", "version": "0.3.1", "repository": http_url},
            {"name": "worker", "version": "1.4.0", "repository": oci}
        ]}
    });

    println!("subcharts benchmark: {RELEASES} releases of one chart with 2 dependencies");
    let cache = work.join("cache");
    let first = fetcher(&cache);
    let cold = cycle(&first, &record).await;
    let cold_stats = first.stats();
    let warm = cycle(&first, &record).await;
    let restarted = fetcher(&cache);
    let disk = cycle(&restarted, &record).await;
    let disk_stats = restarted.stats();
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "seconds", "downloads", "indexes", "disk hits", "mem hits"
    );
    println!(
        "{:<34} {cold:>10.3} {:>10} {:>10} {:>10} {:>10}",
        "cold (empty caches)",
        cold_stats.downloads,
        cold_stats.index_downloads,
        cold_stats.disk_hits,
        cold_stats.memory_hits
    );
    let after = first.stats();
    println!(
        "{:<34} {warm:>10.3} {:>10} {:>10} {:>10} {:>10}",
        "second cycle (memory)",
        after.downloads - cold_stats.downloads,
        after.index_downloads - cold_stats.index_downloads,
        after.disk_hits - cold_stats.disk_hits,
        after.memory_hits - cold_stats.memory_hits
    );
    println!(
        "{:<34} {disk:>10.3} {:>10} {:>10} {:>10} {:>10}",
        "restarted keelson (disk cache)",
        disk_stats.downloads,
        disk_stats.index_downloads,
        disk_stats.disk_hits,
        disk_stats.memory_hits
    );
    println!(
        "downloads per dependency per cycle: {} (naive: one per release, {RELEASES})",
        cold_stats.downloads as f64 / 2.0
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&http_dir);
}
