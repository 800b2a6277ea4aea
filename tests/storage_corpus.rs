//! Real-world charts (the shared corpus, KEELSON_SHARED_CHARTS): the release JSON helm 4 builds
//! for each (large values, schemas, locks, maintainers, dependencies, files) re-encodes byte for
//! byte; keelson stores it as a record that helm 3 and helm 4 both read back; and the charts
//! helm 3 can install on the test apiserver produce stored records that round-trip too.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use keelson::cluster::ClusterArgs;
use keelson::storage::codec::{decode_json_bytes, decode_release, to_go_json};
use keelson::storage::{Driver, DriverKind, Release, Status, Storage};
use kube::Api;
use support::TestEnv;

/// Kinds whose objects live outside the namespace.
const CLUSTER_SCOPED_KINDS: [&str; 11] = [
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "Namespace",
];

fn corpus_charts() -> Vec<std::path::PathBuf> {
    let corpus = support::shared_charts();
    let mut charts: Vec<_> = std::fs::read_dir(&corpus)
        .expect("corpus readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Chart.yaml").is_file())
        .collect();
    charts.sort();
    assert!(
        !charts.is_empty(),
        "no charts (directories with Chart.yaml) under {}",
        corpus.display()
    );
    charts
}

/// Panics showing where two JSON texts first differ.
fn assert_same_json(ours: &[u8], theirs: &[u8], what: &str) {
    if ours == theirs {
        return;
    }
    let ours = String::from_utf8_lossy(ours);
    let theirs = String::from_utf8_lossy(theirs);
    let at = ours
        .bytes()
        .zip(theirs.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let window = |s: &str| {
        let from = at.saturating_sub(120);
        s.get(from..(at + 120).min(s.len()))
            .unwrap_or_default()
            .to_string()
    };
    panic!(
        "{what}: JSON differs at byte {at}\nours:   {}\ntheirs: {}",
        window(&ours),
        window(&theirs)
    );
}

fn run(program: &str, args: &[&str], kubeconfig: &str) -> std::process::Output {
    Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HELM_DRIVER")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_release_json_round_trips_and_helm_reads_keelsons_records() {
    let charts = corpus_charts();
    let env = TestEnv::get();
    keelson::cluster::install_crypto_provider();
    let client = ClusterArgs {
        kubeconfig: Some(env.kubeconfig.clone().into()),
        context: None,
    }
    .client()
    .await
    .expect("kube client");
    let storage = Storage::new(Driver::new(client.clone(), DriverKind::Secret));
    let ns = env.fresh_namespace("st-corpus");
    // Charts whose manifests hold only namespaced objects: the only ones this shared cluster
    // may really install (an APIService without a backend breaks discovery for everyone).
    let mut namespaced_only = Vec::new();
    for chart in &charts {
        let chart_name = chart
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let release = format!("corpus-{chart_name}");
        // helm 4 builds the release offline with --dry-run=client and prints it with Go's JSON
        // encoder (plus a newline): the same bytes it would store.
        let out = run(
            &env.helm4,
            &[
                "install",
                &release,
                &chart.display().to_string(),
                "-n",
                &ns,
                "--dry-run=client",
                "-o",
                "json",
            ],
            "/nonexistent-kubeconfig",
        );
        assert!(
            out.status.success(),
            "{chart_name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
        let mut record: Release =
            serde_json::from_slice(json).unwrap_or_else(|e| panic!("{chart_name}: {e}"));
        assert_same_json(&to_go_json(&record).expect("encodes"), json, &chart_name);

        let manifest = record.manifest.as_deref().unwrap_or_default();
        let cluster_scoped = CLUSTER_SCOPED_KINDS
            .iter()
            .any(|kind| manifest.contains(&format!("\nkind: {kind}\n")));
        if !cluster_scoped {
            namespaced_only.push(chart.clone());
        }

        // Stored by keelson, read by both helm versions.
        record.set_status(Status::Deployed, "stored by keelson");
        let stored = storage.create(&ns, &record, &BTreeMap::new()).await;
        match stored {
            Ok(_) => {}
            Err(err) => {
                // Only the 1 MiB limit may refuse a real chart, and it must say so.
                assert!(
                    err.to_string().contains("over the 1048576-byte limit"),
                    "{chart_name}: {err}"
                );
                eprintln!("NOTICE: {chart_name}: {err}");
                continue;
            }
        }
        for helm in [&env.helm3, &env.helm4] {
            let manifest = run(
                helm,
                &["get", "manifest", &release, "-n", &ns],
                &env.kubeconfig,
            );
            assert!(
                manifest.status.success(),
                "{chart_name}: {}",
                String::from_utf8_lossy(&manifest.stderr)
            );
            let manifest = String::from_utf8_lossy(&manifest.stdout);
            assert_eq!(
                manifest.trim_end(),
                record.manifest.as_deref().unwrap_or_default().trim_end(),
                "{chart_name}"
            );
            // `helm history` reads the record alone (`helm status` also looks up the chart's
            // resources, which this old apiserver may not know).
            let history = run(
                helm,
                &["history", &release, "-n", &ns, "-o", "json"],
                &env.kubeconfig,
            );
            assert!(
                history.status.success(),
                "{chart_name}: {}",
                String::from_utf8_lossy(&history.stderr)
            );
            let history: serde_json::Value = serde_json::from_slice(&history.stdout).expect("json");
            assert_eq!(
                history[0]["description"], "stored by keelson",
                "{chart_name}"
            );
            assert_eq!(history[0]["status"], "deployed", "{chart_name}");
            let values = run(
                helm,
                &["get", "values", &release, "-n", &ns, "--all", "-o", "json"],
                &env.kubeconfig,
            );
            assert!(
                values.status.success(),
                "{chart_name}: {}",
                String::from_utf8_lossy(&values.stderr)
            );
        }
        eprintln!(
            "{chart_name}: {} bytes of release JSON, byte-identical; helm 3 and 4 read keelson's record",
            json.len()
        );
    }

    // helm 3's stored records, for the charts this apiserver (1.20) accepts.
    let mut stored_by_helm3 = 0;
    for chart in &namespaced_only {
        let chart_name = chart
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let release = format!("h3-{chart_name}");
        let out = run(
            &env.helm3,
            &[
                "install",
                &release,
                &chart.display().to_string(),
                "-n",
                &ns,
                "--no-hooks",
            ],
            &env.kubeconfig,
        );
        if !out.status.success() {
            eprintln!(
                "NOTICE: helm 3 cannot install {chart_name} on this apiserver: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let secret = secrets
            .get(&format!("sh.helm.release.v1.{release}.v1"))
            .await
            .expect("record");
        let payload = secret
            .data
            .and_then(|mut d| d.remove("release"))
            .map(|b| b.0)
            .expect("release key");
        let json = decode_json_bytes(&payload).expect("payload");
        let record = decode_release(&payload).unwrap_or_else(|e| panic!("{chart_name}: {e}"));
        assert_same_json(&to_go_json(&record).expect("encodes"), &json, &chart_name);
        stored_by_helm3 += 1;
        run(
            &env.helm3,
            &["uninstall", &release, "-n", &ns],
            &env.kubeconfig,
        );
    }
    assert!(
        stored_by_helm3 >= 1,
        "no corpus chart installed with helm 3"
    );
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}
