//! Registry benchmark against the REAL docker-registry instances of the test environment:
//! HTTP requests per check cycle for N releases tracking M repositories (goal: one tag listing
//! per repository per cycle), next to the request count of Keel's model, and the time to pick a
//! tag among 10,000. Prints figures; asserts nothing about speed.
//!
//! Run: `eval "$(scripts/testenv env)" && cargo bench --bench registry`

// tests/support is shared; its one collapsible `if` is not this file's to change.
#[allow(clippy::collapsible_if)]
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/registry_peer/mod.rs"]
mod peer;

use std::hint::black_box;
use std::time::{Duration, Instant};

use keelson::policy::Policy;
use keelson::registry::{Credentials, ImageRef, RegistryClient, RegistryConfig, RequestCounts};
use support::registry::TestRegistry;

const RELEASES: usize = 200;
const REPOSITORIES: usize = 20;
const TAGS_PER_REPOSITORY: usize = 30;
const CYCLES: usize = 4;
const PICK_TAGS: usize = 10_000;

#[tokio::main]
async fn main() {
    keelson::cluster::install_crypto_provider();
    let anonymous = TestRegistry::anonymous();
    let basic = TestRegistry::with_basic_auth();
    println!(
        "registry benchmark: {RELEASES} releases tracking {REPOSITORIES} repositories, {CYCLES} cycles"
    );
    println!();
    cycle_bench(
        "anonymous registry",
        &anonymous,
        &anonymous.host,
        Credentials::none(),
        "",
    )
    .await;
    let (user, password) = basic.credentials.clone().unwrap_or_default();
    let secret = serde_json::json!({"auths": {basic.host.clone(): {"username": user, "password": password}}});
    let credentials = Credentials::from_document(secret.to_string().as_bytes(), "bench-secret")
        .unwrap_or_else(|err| panic!("bench pull secret: {err}"));
    cycle_bench("basic-auth registry", &basic, &basic.host, credentials, "").await;
    // A docker-registry with `auth: token` and the tests' token issuer (tokens live 300 s):
    // anonymous pull tokens for `public/` repositories, validated by the real registry.
    let token = peer::instances::setup("bench", 300).await;
    cycle_bench(
        "token-auth registry",
        &token.writer,
        &token.registry.host,
        Credentials::none(),
        "public/",
    )
    .await;
    pick_bench();
}

async fn push_repositories(registry: &TestRegistry, prefix: &str) -> Vec<String> {
    let repositories: Vec<String> = (0..REPOSITORIES)
        .map(|i| format!("{prefix}-{}-{i}", std::process::id()))
        .collect();
    for repository in &repositories {
        let tags: Vec<String> = (0..TAGS_PER_REPOSITORY)
            .map(|i| format!("1.{}.{}", i / 10, i % 10))
            .collect();
        let pushes = tags.iter().map(|tag| registry.push_tag(repository, tag));
        futures::future::join_all(pushes).await;
    }
    repositories
}

/// Requests to every host (registry and token server) added up.
fn all_requests(client: &RegistryClient) -> RequestCounts {
    client
        .request_counts()
        .values()
        .fold(RequestCounts::default(), |sum, c| RequestCounts {
            ping: sum.ping + c.ping,
            tags: sum.tags + c.tags,
            manifest: sum.manifest + c.manifest,
            token: sum.token + c.token,
            blob: sum.blob + c.blob,
        })
}

/// One check cycle as the updater runs it: list each distinct repository once, then let each
/// release's policy pick from the shared list.
async fn check_cycle(
    client: &RegistryClient,
    releases: &[(ImageRef, String)],
    policy: &Policy,
) -> usize {
    let listed = client
        .list_tags_of_all(releases.iter().map(|(image, _)| image))
        .await;
    releases
        .iter()
        .filter(|(image, current)| match listed.get(&image.repository()) {
            Some(Ok(tags)) => policy.select(current, tags).tag().is_some(),
            Some(Err(err)) => panic!("list {image}: {err}"),
            None => panic!("{image} was not listed"),
        })
        .count()
}

/// `writer` pushes the images; `read_host` is the registry the client reads them from (the
/// same one except for the token registry, whose storage an unauthenticated writer shares).
async fn cycle_bench(
    label: &str,
    writer: &TestRegistry,
    read_host: &str,
    credentials: Credentials,
    repository_prefix: &str,
) {
    let prefix = format!(
        "{repository_prefix}keelson-bench/{}",
        label.split_whitespace().next().unwrap_or("bench")
    );
    let repositories = push_repositories(writer, &prefix).await;
    let releases: Vec<(ImageRef, String)> = (0..RELEASES)
        .map(|i| {
            let repository = repositories
                .get(i % REPOSITORIES)
                .cloned()
                .unwrap_or_default();
            let image = ImageRef::parse(&format!("{read_host}/{repository}"))
                .unwrap_or_else(|err| panic!("bench image: {err}"));
            (image, "1.0.0".to_string())
        })
        .collect();
    let policy = Policy::parse("minor").unwrap_or_else(|err| panic!("{err}"));
    let client = RegistryClient::new(RegistryConfig {
        credentials,
        ..RegistryConfig::default()
    })
    .unwrap_or_else(|err| panic!("client: {err}"));
    println!("== {label} ({read_host})");
    println!("cycle  requests  tags  manifest  token  ping  updates  wall");
    let mut steady = Vec::new();
    for cycle in 1..=CYCLES {
        let before = all_requests(&client);
        let started = Instant::now();
        let updates = check_cycle(&client, &releases, &policy).await;
        let wall = started.elapsed();
        let after = all_requests(&client);
        let requests = after.total() - before.total();
        println!(
            "{cycle:>5}  {requests:>8}  {:>4}  {:>8}  {:>5}  {:>4}  {updates:>7}  {wall:>8.1?}",
            after.tags - before.tags,
            after.manifest - before.manifest,
            after.token - before.token,
            after.ping - before.ping,
        );
        if cycle > 1 {
            steady.push((requests, wall));
        }
    }
    let steady_requests = steady.iter().map(|(r, _)| *r).max().unwrap_or(0);
    let steady_wall: Duration =
        steady.iter().map(|(_, w)| *w).sum::<Duration>() / steady.len().max(1) as u32;
    // Keel polls each tracked image on its own and fetches a token before every registry call
    // (two requests per call), so a cycle costs 2 × releases regardless of sharing.
    let keel_model = 2 * RELEASES as u64;
    println!(
        "steady cycle: {steady_requests} requests for {REPOSITORIES} repositories ({:.2} per repository, {:.3} per release), {steady_wall:.1?}",
        steady_requests as f64 / REPOSITORIES as f64,
        steady_requests as f64 / RELEASES as f64
    );
    println!(
        "Keel's model for the same cycle: {keel_model} requests; keelson/Keel = {:.3} ({:.0}x fewer)",
        steady_requests as f64 / keel_model as f64,
        keel_model as f64 / steady_requests.max(1) as f64
    );
    println!();
}

fn pick_bench() {
    // 10,000 tags: semver with pre-releases, v-prefixes, four-part versions and noise, shuffled
    // deterministically so the order says nothing.
    let mut tags: Vec<String> = Vec::with_capacity(PICK_TAGS);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..PICK_TAGS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let (major, minor, patch) = (state % 5, (state >> 8) % 40, (state >> 16) % 60);
        tags.push(match i % 10 {
            0 => format!("{major}.{minor}.{patch}-rc.{}", (state >> 24) % 12),
            1 => format!("v{major}.{minor}.{patch}"),
            2 => format!("{major}.{minor}.{patch}.{}", (state >> 24) % 9),
            3 => format!("build-{}", state % 100_000),
            _ => format!("{major}.{minor}.{patch}"),
        });
    }
    println!("== picking a tag among {PICK_TAGS} tags (no network)");
    println!("policy         per select   per order    selected");
    for policy_text in [
        "patch",
        "minor",
        "major",
        "all",
        "glob:1.*",
        r"regexp:^build-(?P<compare>\d+)$",
    ] {
        let policy = Policy::parse(policy_text).unwrap_or_else(|err| panic!("{err}"));
        let current = if policy_text.starts_with("regexp") {
            "build-50"
        } else {
            "1.10.3"
        };
        let iterations = 50u32;
        let started = Instant::now();
        let mut selected = None;
        for _ in 0..iterations {
            selected = black_box(policy.select(black_box(current), black_box(&tags)))
                .tag()
                .map(str::to_string);
        }
        let per_select = started.elapsed() / iterations;
        let started = Instant::now();
        for _ in 0..iterations {
            black_box(policy.order(black_box(&tags)));
        }
        let per_order = started.elapsed() / iterations;
        println!(
            "{policy_text:<13}  {per_select:>10.2?}  {per_order:>10.2?}   {}",
            selected.as_deref().unwrap_or("-")
        );
    }
}
