//! Controller benchmark (issue 10), in the test environment, figures printed side by side:
//! 1. `keelson check` and `keelson reconcile --once` over 1,000 tracked releases with nothing to
//!    do: wall time and apiserver requests.
//! 2. `keelson run` idle over the same 1,000 releases on 20 repositories: CPU time, peak RSS,
//!    apiserver requests per minute, registry requests per cycle.
//! 3. Push-to-revision latency over 20 pushes: by webhook and by poll (p50, p95).
//!
//! Run: `eval "$(scripts/testenv env)"; cargo bench --bench controller`. The idle phase lasts
//! KEELSON_BENCH_IDLE_SECONDS (default 300).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use keelson::cluster::ClusterArgs;
use keelson::storage::{Driver, DriverKind, Storage};
use serde_json::{Value, json};

const RELEASES: usize = 1000;
const REPOSITORIES: usize = 20;
const PUSHES: usize = 20;

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} is not set: run `eval \"$(scripts/testenv env)\"` with the test environment up (scripts/testenv up)");
        std::process::exit(2);
    })
}

fn ok(program: &str, args: &[&str], kubeconfig: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Requests keelson sent since `mark` (an audit-log line count) for objects in `namespace`:
/// one audit entry per finished request (watches count when they end or start streaming).
fn keelson_requests(audit: &str, mark: usize, namespace: &str) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    let mut ids = HashSet::new();
    let mut verbs = Vec::new();
    for line in text.lines().skip(mark) {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if !entry["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("keelson/"))
        {
            continue;
        }
        if entry["objectRef"]["namespace"] != namespace {
            continue;
        }
        if let Some(id) = entry["auditID"].as_str()
            && ids.insert(id.to_string())
        {
            verbs.push(format!(
                "{} {}",
                entry["verb"].as_str().unwrap_or("?"),
                entry["objectRef"]["resource"].as_str().unwrap_or("?")
            ));
        }
    }
    (ids.len(), verbs)
}

fn audit_lines(audit: &str) -> usize {
    std::fs::read_to_string(audit)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn summary(verbs: &[String]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for verb in verbs {
        *counts.entry(verb).or_default() += 1;
    }
    counts
        .iter()
        .map(|(v, n)| format!("{n}× {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn metric(port: u16, series: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Environment the controller inherits that changes its memory use (printed with the figures).
fn keelson_env_note() -> Option<String> {
    std::env::var("MALLOC_ARENA_MAX")
        .ok()
        .map(|v| format!("MALLOC_ARENA_MAX={v}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

// The caller kills and waits for the child it gets back.
#[allow(clippy::zombie_processes)]
fn start_controller(
    keelson: &str,
    kubeconfig: &str,
    namespace: &str,
    port: u16,
    token: &str,
) -> Child {
    let mut child = Command::new(keelson)
        .args([
            "run",
            "-n",
            namespace,
            "--leader-election-namespace",
            namespace,
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", kubeconfig)
        .env("KEELSON_WEBHOOK_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start keelson run");
    let start = Instant::now();
    let _ = keelson_env_note();
    loop {
        let ready = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/readyz")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ready {
            return child;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keelson run was not ready within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    let kubeconfig = env_var("KUBECONFIG");
    let helm = env_var("HELM3");
    let kubectl = env_var("KUBECTL");
    let registry = env_var("KEELSON_REGISTRY");
    let audit = format!("{}/logs/audit.log", env_var("KEELSON_TESTENV_DIR"));
    let idle_seconds: u64 = std::env::var("KEELSON_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let keelson = env!("CARGO_BIN_EXE_keelson");
    let push = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/registry-push");
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/charts/demo");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    keelson::cluster::install_crypto_provider();
    let pid = std::process::id();
    let namespace = format!("keelson-bench-ctl-{pid}");
    ok(&kubectl, &["create", "namespace", &namespace], &kubeconfig);
    let repo = |i: usize| format!("bench-ctl-{pid}/r{i:02}");
    for i in 0..REPOSITORIES {
        ok(push, &[&registry, &repo(i), "1.0.0"], &kubeconfig);
    }
    let image0 = format!("image.repository={registry}/{}", repo(0));
    ok(
        &helm,
        &[
            "install",
            "bench-source",
            chart,
            "-n",
            &namespace,
            "--set",
            &image0,
            "--set",
            "image.tag=1.0.0",
            "--set",
            "keel.pollSchedule=@every 30s",
        ],
        &kubeconfig,
    );

    runtime.block_on(async {
        let client = ClusterArgs { kubeconfig: Some(kubeconfig.clone().into()), context: None }
            .client()
            .await
            .expect("kube client");
        let storage = Storage::new(Driver::new(client, DriverKind::Secret));
        let source = storage.get(&namespace, "bench-source", 1).await.expect("helm's record");
        futures::stream::iter(0..RELEASES - 1)
            .map(|i| {
                let mut release = source.release.clone();
                release.name = Some(format!("bench-{i:04}"));
                let mut config = release.config.clone().unwrap_or_default();
                config.insert(
                    "image".to_string(),
                    json!({"repository": format!("{registry}/{}", repo((i + 1) % REPOSITORIES)), "tag": "1.0.0"}),
                );
                release.config = Some(config);
                let storage = storage.clone();
                let namespace = namespace.clone();
                let labels = source.labels.clone();
                async move { storage.create(&namespace, &release, &labels).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .expect("create records");
    });
    println!(
        "{RELEASES} tracked releases on {REPOSITORIES} repositories in {namespace}, each polling @every 30s"
    );

    // 1. One pass with nothing to do.
    let skip_pass = std::env::var("KEELSON_BENCH_SKIP_PASS").is_ok();
    let passes = if skip_pass {
        Vec::new()
    } else {
        vec![
            vec!["check", "-n", &namespace],
            vec!["reconcile", "--once", "-n", &namespace],
        ]
    };
    for command in passes {
        let mut samples = Vec::new();
        let mut requests = (0, Vec::new());
        for _ in 0..3 {
            let mark = audit_lines(&audit);
            let start = Instant::now();
            let out = Command::new(keelson)
                .args(&command)
                .env("KUBECONFIG", &kubeconfig)
                .output()
                .expect("keelson");
            samples.push(start.elapsed());
            assert!(
                out.status.success(),
                "{command:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(1500));
            requests = keelson_requests(&audit, mark, &namespace);
        }
        println!(
            "keelson {}: median {:.0?} over 3 runs; {} apiserver requests in the namespace ({})",
            command[0],
            percentile(&mut samples, 0.5),
            requests.0,
            summary(&requests.1)
        );
    }
    let mark = audit_lines(&audit);
    let start = Instant::now();
    ok(
        &helm,
        &["list", "-n", &namespace, "--max", "0"],
        &kubeconfig,
    );
    let helm_list = start.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = mark;
    println!("for scale, helm list -n of the same releases: {helm_list:.0?}");

    // 2. Idle.
    let port = free_port();
    let token = "bench-token";
    let mut controller = start_controller(keelson, &kubeconfig, &namespace, port, token);
    let cpid = controller.id();
    let ready_rss = peak_rss_mib(cpid);
    // Let the first cycle (one listing per repository) and start-up decoding pass.
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "keelson run, peak RSS when ready: {ready_rss:.1} MiB; 5 s later: {:.1} MiB",
        peak_rss_mib(cpid)
    );
    let startup_cpu = cpu_seconds(cpid);
    let registry0 = metric(port, "keelson_registry_requests_total");
    let mark = audit_lines(&audit);
    let cpu0 = cpu_seconds(cpid);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(cpid) - cpu0;
    let rss = peak_rss_mib(cpid);
    let registry_requests = metric(port, "keelson_registry_requests_total") - registry0;
    let (requests, verbs) = keelson_requests(&audit, mark, &namespace);
    let cycles = elapsed / 30.0;
    println!(
        "keelson run, start-up (list + decode {RELEASES} records, first cycle): {startup_cpu:.2} s CPU"
    );
    println!(
        "keelson run idle {elapsed:.0} s: CPU {cpu:.2} s = {:.3}% of a core; peak RSS {rss:.1} MiB; \
         apiserver requests {requests} = {:.1}/min ({}); registry requests {registry_requests:.0} \
         over {cycles:.1} cycles = {:.1} per cycle for {REPOSITORIES} repositories",
        100.0 * cpu / elapsed,
        requests as f64 * 60.0 / elapsed,
        summary(&verbs),
        registry_requests / cycles
    );
    let _ = controller.kill();
    let _ = controller.wait();

    // 3. Push-to-revision latency, webhook and poll, on two small releases.
    let latency_ns = format!("keelson-bench-lat-{pid}");
    ok(&kubectl, &["create", "namespace", &latency_ns], &kubeconfig);
    let hook_repo = format!("bench-lat-{pid}/hook");
    let poll_repo = format!("bench-lat-{pid}/poll");
    for (release, repository, sets) in [
        (
            "hook",
            &hook_repo,
            vec!["keel.trigger=default", "keel.policy=all"],
        ),
        (
            "poll",
            &poll_repo,
            vec!["keel.pollSchedule=@every 2s", "keel.policy=all"],
        ),
    ] {
        ok(push, &[&registry, repository, "1.0.0"], &kubeconfig);
        let image = format!("image.repository={registry}/{repository}");
        let mut args = vec![
            "install",
            release,
            chart,
            "-n",
            &latency_ns,
            "--set",
            &image,
            "--set",
            "image.tag=1.0.0",
        ];
        for set in &sets {
            args.push("--set");
            args.push(set);
        }
        ok(&helm, &args, &kubeconfig);
    }
    let port = free_port();
    let mut controller = start_controller(keelson, &kubeconfig, &latency_ns, port, token);
    std::thread::sleep(Duration::from_secs(3));
    let deployed = |release: &str, revision: usize| -> bool {
        let out = Command::new(&kubectl)
            .args([
                "get",
                "secret",
                &format!("sh.helm.release.v1.{release}.v{revision}"),
                "-n",
                &latency_ns,
                "-o",
                "jsonpath={.metadata.labels.status}",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("kubectl");
        out.stdout == b"deployed"
    };
    for (release, repository) in [("hook", &hook_repo), ("poll", &poll_repo)] {
        let mut samples = Vec::new();
        for i in 0..PUSHES {
            let tag = format!("1.{}.0", i + 1);
            ok(push, &[&registry, repository, &tag], &kubeconfig);
            let start = Instant::now();
            if release == "hook" {
                let body =
                    json!({"name": format!("{registry}/{repository}"), "tag": tag}).to_string();
                ok(
                    "curl",
                    &[
                        "-sf",
                        "-X",
                        "POST",
                        "-H",
                        &format!("Authorization: Bearer {token}"),
                        "--data-binary",
                        &body,
                        &format!("http://127.0.0.1:{port}/v1/webhooks/native"),
                    ],
                    &kubeconfig,
                );
            }
            while !deployed(release, i + 2) {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "{release}: no revision {} for {tag}",
                    i + 2
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            samples.push(start.elapsed());
        }
        println!(
            "push → deployed revision by {}: p50 {:.2?}, p95 {:.2?} over {PUSHES} pushes{}",
            if release == "hook" {
                "webhook"
            } else {
                "poll (@every 2s)"
            },
            percentile(&mut samples, 0.5),
            percentile(&mut samples, 0.95),
            if release == "hook" {
                " (target p50 < 1 s)"
            } else {
                " (target ≤ schedule + 1 s = 3 s)"
            }
        );
    }
    let _ = controller.kill();
    let _ = controller.wait();
    for ns in [&namespace, &latency_ns] {
        let _ = Command::new(&kubectl)
            .args(["delete", "namespace", ns, "--wait=false"])
            .env("KUBECONFIG", &kubeconfig)
            .output();
    }
}
