//! Real-world charts (the shared corpus, KEELSON_SHARED_CHARTS) installed by helm 3 and helm 4:
//! their records — large values, schemas, locks, maintainers, dependencies, files — decode, and
//! re-encode to exactly the JSON helm wrote.

mod support;

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use keelson::cluster::ClusterArgs;
use keelson::storage::codec::{decode_json_bytes, decode_release, to_go_json};
use kube::Api;
use support::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_records_round_trip_byte_for_byte() {
    let Some(corpus) = std::env::var_os("KEELSON_SHARED_CHARTS").map(std::path::PathBuf::from)
    else {
        eprintln!(
            "NOTICE: KEELSON_SHARED_CHARTS is not set; skipping the real-world chart corpus test"
        );
        return;
    };
    if !corpus.is_dir() {
        eprintln!(
            "NOTICE: KEELSON_SHARED_CHARTS={} is absent; skipping",
            corpus.display()
        );
        return;
    }
    let env = TestEnv::get();
    keelson::cluster::install_crypto_provider();
    let client = ClusterArgs {
        kubeconfig: Some(env.kubeconfig.clone().into()),
        context: None,
    }
    .client()
    .await
    .expect("kube client");
    let mut charts: Vec<_> = std::fs::read_dir(&corpus)
        .expect("corpus readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Chart.yaml").is_file())
        .collect();
    charts.sort();
    let mut checked = 0;
    for (index, chart) in charts.iter().enumerate() {
        let chart_name = chart
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // Alternate the helm versions over the charts so both writers are covered.
        let (helm_name, helm) = if index % 2 == 0 {
            ("helm3", &env.helm3)
        } else {
            ("helm4", &env.helm4)
        };
        let ns = env.fresh_namespace("st-corpus");
        let release = "corpus";
        // No hooks: without a kubelet, hook Jobs would never finish.
        let out = Command::new(helm)
            .args([
                "install",
                release,
                &chart.display().to_string(),
                "-n",
                &ns,
                "--no-hooks",
            ])
            .env("KUBECONFIG", &env.kubeconfig)
            .env_remove("HELM_DRIVER")
            .output()
            .expect("helm runs");
        if !out.status.success() {
            eprintln!(
                "NOTICE: {helm_name} could not install {chart_name} on this apiserver: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let secret = secrets
            .get("sh.helm.release.v1.corpus.v1")
            .await
            .expect("record");
        let payload = secret
            .data
            .and_then(|mut d| d.remove("release"))
            .map(|b| b.0)
            .expect("release key");
        let json = decode_json_bytes(&payload).expect("payload");
        let record = decode_release(&payload).unwrap_or_else(|e| panic!("{chart_name}: {e}"));
        let again = to_go_json(&record).expect("encodes");
        if again != json {
            let ours = String::from_utf8_lossy(&again);
            let theirs = String::from_utf8_lossy(&json);
            let at = ours
                .bytes()
                .zip(theirs.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            let from = at.saturating_sub(120);
            panic!(
                "{chart_name} ({helm_name}): JSON differs at byte {at}\nours:   {}\ntheirs: {}",
                ours.get(from..(at + 120).min(ours.len()))
                    .unwrap_or_default(),
                theirs
                    .get(from..(at + 120).min(theirs.len()))
                    .unwrap_or_default()
            );
        }
        assert!(
            keelson::keel::read_release(&record)
                .expect("no malformed block")
                .is_none()
        );
        eprintln!(
            "{chart_name} ({helm_name}): {} bytes of JSON, {} bytes stored, byte-identical",
            json.len(),
            STANDARD.encode(&payload).len()
        );
        checked += 1;
        env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    }
    assert!(
        checked >= charts.len() / 2,
        "only {checked} of {} corpus charts installed",
        charts.len()
    );
}
