//! Storage benchmark (issue 3): writes 1,000 release records (copies of a real helm-made record
//! under new names) into a fresh namespace of the test environment, then measures keelson's
//! decode rate and the whole-process time of `keelson list -A` against `helm list -A` over the
//! same releases, side by side in one run. Run: `eval "$(scripts/testenv env)"; cargo bench --bench storage`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use keelson::cluster::ClusterArgs;
use keelson::storage::codec::decode_release;
use keelson::storage::{Driver, DriverKind, Status, Storage, StorageError};
use kube::Api;
use kube::api::ListParams;

const RELEASES: usize = 1000;
const ROUNDS: usize = 5;

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!(
            "{name} is not set: run `eval \"$(scripts/testenv env)\"` with the test environment up"
        );
        std::process::exit(2);
    })
}

fn run(program: &str, args: &[&str], kubeconfig: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HELM_DRIVER")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let elapsed = start.elapsed();
    assert!(status.success(), "{program} {args:?} failed");
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let kubeconfig = env_var("KUBECONFIG");
    let helm = env_var("HELM3");
    let kubectl = env_var("KUBECTL");
    let keelson = env!("CARGO_BIN_EXE_keelson");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    keelson::cluster::install_crypto_provider();

    let namespace = format!("keelson-bench-storage-{}", std::process::id());
    let ok = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&kubectl, &["create", "namespace", &namespace]);
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/charts/demo");
    ok(&helm, &["install", "bench-source", chart, "-n", &namespace]);

    runtime.block_on(async {
        let client = ClusterArgs {
            kubeconfig: Some(kubeconfig.clone().into()),
            context: None,
        }
        .client()
        .await
        .expect("kube client");
        let storage = Storage::new(Driver::new(client.clone(), DriverKind::Secret));
        let source = storage
            .get(&namespace, "bench-source", 1)
            .await
            .expect("helm's record");

        let start = Instant::now();
        futures::stream::iter(0..RELEASES - 1)
            .map(|i| {
                let mut release = source.release.clone();
                release.name = Some(format!("bench-{i:04}"));
                let storage = storage.clone();
                let namespace = namespace.clone();
                let labels = source.labels.clone();
                async move { storage.create(&namespace, &release, &labels).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .expect("create records");
        println!(
            "wrote {} records in {:.2?} through keelson's storage API",
            RELEASES - 1,
            start.elapsed()
        );

        // Decode only: the payloads as listed, decoded in-process.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let list = secrets
            .list(&ListParams::default().labels("owner=helm"))
            .await
            .expect("list");
        let payloads: Vec<Vec<u8>> = list
            .items
            .into_iter()
            .filter_map(|s| s.data.and_then(|mut d| d.remove("release")).map(|b| b.0))
            .collect();
        assert_eq!(payloads.len(), RELEASES);
        let start = Instant::now();
        for payload in &payloads {
            decode_release(payload).expect("decodes");
        }
        let decode = start.elapsed();
        println!(
            "decode: {} records in {:.2?} = {:.0} records/s (base64 + gzip + JSON, one core)",
            payloads.len(),
            decode,
            payloads.len() as f64 / decode.as_secs_f64()
        );

        let start = Instant::now();
        let latest = storage
            .latest_revisions(Some(&namespace))
            .await
            .expect("latest");
        let listed = start.elapsed();
        assert_eq!(latest.records.len(), RELEASES);
        println!(
            "list + decode latest revisions in-process: {} releases in {:.2?} = {:.0} records/s",
            latest.records.len(),
            listed,
            latest.records.len() as f64 / listed.as_secs_f64()
        );
    });

    compare(keelson, &helm, &kubeconfig, &namespace, "1 revision each");

    // Realistic histories: two more revisions per release (the older ones superseded), as
    // Helm's upgrade leaves them.
    runtime.block_on(async {
        let client = ClusterArgs {
            kubeconfig: Some(kubeconfig.clone().into()),
            context: None,
        }
        .client()
        .await
        .expect("kube client");
        let storage = Storage::new(Driver::new(client, DriverKind::Secret));
        let start = Instant::now();
        let names: Vec<String> = std::iter::once("bench-source".to_string())
            .chain((0..RELEASES - 1).map(|i| format!("bench-{i:04}")))
            .collect();
        futures::stream::iter(names)
            .map(|name| {
                let storage = storage.clone();
                let namespace = namespace.clone();
                async move {
                    let mut previous = storage.get(&namespace, &name, 1).await?;
                    for version in 2..=3 {
                        let mut next = previous.release.clone();
                        next.version = Some(version);
                        let created = storage.create(&namespace, &next, &previous.labels).await?;
                        previous
                            .release
                            .set_status(Status::Superseded, "Upgrade complete");
                        storage.update(&previous).await?;
                        previous = created;
                    }
                    Ok::<_, StorageError>(())
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .expect("add revisions");
        println!(
            "added 2 revisions to each of {RELEASES} releases in {:.2?}",
            start.elapsed()
        );
    });
    compare(keelson, &helm, &kubeconfig, &namespace, "3 revisions each");
    if std::env::var_os("KEELSON_BENCH_KEEP").is_some() {
        println!("kept namespace {namespace} (KEELSON_BENCH_KEEP is set)");
    } else {
        ok(
            &kubectl,
            &["delete", "namespace", &namespace, "--wait=false"],
        );
    }
}

/// Whole-process times, alternating so both see the same cluster state and machine load.
fn compare(keelson: &str, helm: &str, kubeconfig: &str, namespace: &str, what: &str) {
    // Both print at most 256 releases by default; `--max 0` prints all of them.
    for (label, scope) in [
        ("-A", vec!["list", "-A"]),
        ("-n", vec!["list", "-n", namespace]),
        ("-A --max 0", vec!["list", "-A", "--max", "0"]),
    ] {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..ROUNDS {
            ours.push(run(keelson, &scope, kubeconfig));
            theirs.push(run(helm, &scope, kubeconfig));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{what}: list {label}: keelson {:.0} ms, helm {:.0} ms (median of {ROUNDS}) → keelson is {:.1}× faster",
            ours.as_secs_f64() * 1000.0,
            theirs.as_secs_f64() * 1000.0,
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
}
