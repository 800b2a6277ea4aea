//! The storage layer under faults, against the real apiserver: corrupt records of every kind
//! are skipped with a warning and never overwritten, oversize records are refused before any
//! write, stale writes are reported as conflicts, helm and keelson racing for the same revision
//! produce exactly one winner, and failure/pruning bookkeeping matches Helm's.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use keelson::cluster::ClusterArgs;
use keelson::storage::codec::encode_release;
use keelson::storage::{
    Driver, DriverError, DriverKind, Release, RevisionChange, Status, Storage, StorageError,
};
use kube::api::PostParams;
use kube::{Api, Client};
use support::TestEnv;

async fn client(env: &TestEnv) -> Client {
    keelson::cluster::install_crypto_provider();
    ClusterArgs {
        kubeconfig: Some(env.kubeconfig.clone().into()),
        context: None,
    }
    .client()
    .await
    .expect("kube client for the test env")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn helm_labels(name: &str, version: i64, status: &str) -> BTreeMap<String, String> {
    labels(&[
        ("name", name),
        ("owner", "helm"),
        ("status", status),
        ("version", &version.to_string()),
    ])
}

fn change(tag: &str, description: &str) -> RevisionChange {
    let mut config = serde_json::Map::new();
    config.insert("image".into(), serde_json::json!({"tag": tag}));
    RevisionChange {
        config,
        manifest: format!("# image 127.0.0.1:5000/demo/app:{tag}\n"),
        description: description.into(),
        ..RevisionChange::default()
    }
}

/// A copy of a good record renumbered, so its payload decodes but may contradict its object.
fn renumbered(good: &Release, version: i64, status: Status) -> String {
    let mut release = good.clone();
    release.version = Some(version);
    release.set_status(status, "crafted");
    encode_release(&release).expect("encodes")
}

async fn put_secret(
    api: &Api<Secret>,
    name: &str,
    type_: &str,
    labels: BTreeMap<String, String>,
    payload: Option<Vec<u8>>,
) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some(type_.into()),
        data: payload.map(|p| BTreeMap::from([("release".to_string(), ByteString(p))])),
        ..Secret::default()
    };
    api.create(&PostParams::default(), &secret)
        .await
        .expect("create crafted secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_secrets_are_skipped_named_and_never_overwritten() {
    let env = TestEnv::get();
    let ns = env.fresh_namespace("st-corrupt");
    env.helm3(&[
        "install",
        "broken",
        &support::fixture_chart("demo"),
        "-n",
        &ns,
    ]);
    let client = client(&env).await;
    let storage = Storage::new(Driver::new(client.clone(), DriverKind::Secret));
    let good = storage
        .get(&ns, "broken", 1)
        .await
        .expect("helm's record")
        .release;

    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let t = "helm.sh/release.v1";
    let obj = |v: i64| format!("sh.helm.release.v1.broken.v{v}");
    put_secret(
        &api,
        &obj(2),
        t,
        helm_labels("broken", 2, "superseded"),
        Some(b"%%% not base64 %%%".to_vec()),
    )
    .await;
    put_secret(
        &api,
        &obj(3),
        t,
        helm_labels("broken", 3, "superseded"),
        Some(
            STANDARD
                .encode([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3])
                .into_bytes(),
        ),
    )
    .await;
    put_secret(
        &api,
        &obj(4),
        t,
        helm_labels("broken", 4, "superseded"),
        Some(
            STANDARD
                .encode(gzip(br#"{"name":"broken","info":"#))
                .into_bytes(),
        ),
    )
    .await;
    put_secret(
        &api,
        &obj(5),
        t,
        helm_labels("broken", 5, "superseded"),
        None,
    )
    .await;
    let mut no_status = helm_labels("broken", 6, "superseded");
    no_status.remove("status");
    put_secret(
        &api,
        &obj(6),
        t,
        no_status,
        Some(renumbered(&good, 6, Status::Superseded).into_bytes()),
    )
    .await;
    put_secret(
        &api,
        &obj(7),
        t,
        helm_labels("broken", 7, "deployed"),
        Some(renumbered(&good, 7, Status::Failed).into_bytes()),
    )
    .await;
    put_secret(
        &api,
        &obj(8),
        t,
        helm_labels("broken", 8, "superseded"),
        Some(renumbered(&good, 9, Status::Superseded).into_bytes()),
    )
    .await;
    put_secret(
        &api,
        &obj(10),
        "Opaque",
        helm_labels("broken", 10, "superseded"),
        Some(renumbered(&good, 10, Status::Superseded).into_bytes()),
    )
    .await;
    let mut bad_name = good.clone();
    bad_name.name = Some("someone-else".into());
    put_secret(
        &api,
        &obj(11),
        t,
        helm_labels("broken", 11, "superseded"),
        Some(encode_release(&bad_name).expect("encodes").into_bytes()),
    )
    .await;

    // Every corrupt record is skipped with its Secret named and the reason given.
    let listing = storage
        .driver()
        .query(Some(&ns), "name=broken,owner=helm")
        .await
        .expect("query");
    assert_eq!(listing.records.len(), 1);
    let reasons: BTreeMap<String, String> = listing
        .skipped
        .iter()
        .map(|s| (s.object.clone(), s.reason.clone()))
        .collect();
    let expect = [
        (2, "base64"),
        (3, "gzip"),
        (4, "JSON"),
        (5, "no \"release\" data key"),
        (6, "label \"status\" is missing"),
        (7, "contradicts"),
        (8, "label version=\"8\" contradicts"),
        (10, "type is not helm.sh/release.v1"),
        (11, "contradicts"),
    ];
    for (version, needle) in expect {
        let object = format!("Secret {ns}/{}", obj(version));
        let reason = reasons
            .get(&object)
            .unwrap_or_else(|| panic!("{object} not reported: {reasons:?}"));
        assert!(reason.contains(needle), "{object}: {reason}");
    }
    assert_eq!(reasons.len(), expect.len());

    // History and latest fall back to the decodable record.
    let history = storage.history(&ns, "broken").await.expect("history");
    assert_eq!(history.len(), 1);
    let latest = storage.latest_revisions(Some(&ns)).await.expect("latest");
    assert_eq!(latest.records.len(), 1);
    assert_eq!(latest.records[0].release.version(), 1);

    // A direct get names the Secret.
    let err = storage
        .get(&ns, "broken", 3)
        .await
        .expect_err("corrupt get");
    let text = err.to_string();
    assert!(
        text.contains(&format!("Secret {ns}/{}", obj(3))) && text.contains("gzip"),
        "{text}"
    );

    // An upgrade computes revision 2 from the decodable history, finds the corrupt record in the
    // way and does not overwrite it.
    let before = api.get(&obj(2)).await.expect("v2");
    let err = storage
        .begin_upgrade(&ns, "broken", change("1.0.1", "keelson: test"))
        .await
        .expect_err("must not overwrite");
    assert!(
        matches!(
            err,
            StorageError::Driver(DriverError::AlreadyExists { version: 2, .. })
        ),
        "{err}"
    );
    let after = api.get(&obj(2)).await.expect("v2");
    assert_eq!(before.data, after.data);
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );

    // `keelson list` warns, naming the Secret, and still lists the release.
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["list", "-n", &ns, "-o", "json"])
        .env("KUBECONFIG", &env.kubeconfig)
        .env_remove("HELM_DRIVER")
        .output()
        .expect("keelson runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // v7 claims `status=deployed` in its label, so even the default list (which leaves out
    // superseded records) reads it, finds the contradiction and names the Secret.
    assert!(stderr.contains(&obj(7)), "{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows[0]["name"], "broken");
    assert_eq!(rows[0]["revision"], 1);
    // Passed: leave the shared cluster as it was (a failing test keeps its namespace to inspect).
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_configmaps_are_skipped() {
    let env = TestEnv::get();
    let ns = env.fresh_namespace("st-corrupt-cm");
    let out = Command::new(&env.helm4)
        .args(["install", "cmb", &support::fixture_chart("demo"), "-n", &ns])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HELM_DRIVER", "configmap")
        .output()
        .expect("helm4 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = client(&env).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let payloads = [
        (2, "%%% not base64".to_string()),
        (3, STANDARD.encode(gzip(b"not json at all"))),
        (4, STANDARD.encode(b"[\"legacy but not a release\"]")),
    ];
    for (version, payload) in payloads {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("sh.helm.release.v1.cmb.v{version}")),
                labels: Some(helm_labels("cmb", version, "superseded")),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("release".to_string(), payload)])),
            ..ConfigMap::default()
        };
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create crafted configmap");
    }
    let storage = Storage::new(Driver::new(client, DriverKind::ConfigMap));
    let listing = storage.list(Some(&ns)).await.expect("list");
    assert_eq!(listing.records.len(), 1);
    assert_eq!(listing.skipped.len(), 3);
    assert!(listing.skipped.iter().all(|s| {
        s.object
            .starts_with(&format!("ConfigMap {ns}/sh.helm.release.v1.cmb.v"))
    }));
    let latest = storage.latest_revisions(Some(&ns)).await.expect("latest");
    assert_eq!(latest.records[0].release.version(), 1);
    // Passed: leave the shared cluster as it was (a failing test keeps its namespace to inspect).
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_records_are_refused_before_writing_and_stale_writes_conflict() {
    let env = TestEnv::get();
    let ns = env.fresh_namespace("st-limits");
    env.helm3(&["install", "big", &support::fixture_chart("demo"), "-n", &ns]);
    let client = client(&env).await;
    for kind in [DriverKind::Secret, DriverKind::ConfigMap] {
        let storage = Storage::new(Driver::new(client.clone(), kind));
        let base = Storage::new(Driver::new(client.clone(), DriverKind::Secret))
            .get(&ns, "big", 1)
            .await
            .expect("v1");
        let mut huge = base.release.clone();
        huge.version = Some(2);
        // Incompressible text: gzip cannot bring it under the limit.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: String = (0..1_600_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        huge.manifest = Some(noise);
        let err = storage
            .create(&ns, &huge, &BTreeMap::new())
            .await
            .expect_err("too large");
        assert!(
            matches!(err, StorageError::Driver(DriverError::TooLarge { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("\"big\" revision 2"), "{err}");
        let api_has_it = match kind {
            DriverKind::Secret => Api::<Secret>::namespaced(client.clone(), &ns)
                .get_opt("sh.helm.release.v1.big.v2")
                .await
                .expect("get")
                .is_some(),
            DriverKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt("sh.helm.release.v1.big.v2")
                .await
                .expect("get")
                .is_some(),
        };
        assert!(!api_has_it, "{kind}: an oversize record was written");
    }

    // Conditional update and delete: the second writer with a stale resourceVersion loses.
    let storage = Storage::new(Driver::new(client.clone(), DriverKind::Secret));
    let read_once = storage.get(&ns, "big", 1).await.expect("v1");
    let mut first = read_once.clone();
    first
        .release
        .set_status(Status::Deployed, "touched by the first writer");
    storage.update(&first).await.expect("first update");
    let mut stale = read_once.clone();
    stale.release.set_status(Status::Failed, "stale writer");
    let err = storage.update(&stale).await.expect_err("stale update");
    assert!(
        matches!(err, StorageError::Driver(DriverError::Conflict { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("sh.helm.release.v1.big.v1"),
        "{err}"
    );
    let err = storage.delete(&stale).await.expect_err("stale delete");
    assert!(
        matches!(err, StorageError::Driver(DriverError::Conflict { .. })),
        "{err}"
    );
    let now = storage.get(&ns, "big", 1).await.expect("v1");
    assert_eq!(now.release.description(), "touched by the first writer");
    // Helm still reads the record keelson rewrote.
    let status = env.helm4(&["status", "big", "-n", &ns, "-o", "json"]);
    assert!(status.contains("touched by the first writer"), "{status}");
    // Passed: leave the shared cluster as it was (a failing test keeps its namespace to inspect).
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_and_keelson_racing_for_a_revision_have_exactly_one_winner() {
    let env = TestEnv::get();
    let ns = env.fresh_namespace("st-race");
    let chart = support::fixture_chart("demo");
    let client = client(&env).await;
    let storage = Storage::new(Driver::new(client.clone(), DriverKind::Secret));

    // Deterministic interleaving: keelson reads, helm writes revision 2, keelson's create loses.
    env.helm3(&["install", "race", &chart, "-n", &ns]);
    let read = storage.deployed(&ns, "race").await.expect("deployed");
    let mut mine = read.release.clone();
    mine.version = Some(2);
    mine.set_status(Status::PendingUpgrade, "keelson");
    env.helm3(&[
        "upgrade",
        "race",
        &chart,
        "-n",
        &ns,
        "--set",
        "image.tag=1.0.1",
    ]);
    let err = storage
        .create(&ns, &mine, &read.labels)
        .await
        .expect_err("helm won");
    assert!(
        matches!(
            err,
            StorageError::Driver(DriverError::AlreadyExists { version: 2, .. })
        ),
        "{err}"
    );
    assert_eq!(
        storage
            .get(&ns, "race", 2)
            .await
            .expect("v2")
            .release
            .description(),
        "Upgrade complete"
    );

    // Real concurrency, each helm version: start both at once; exactly one creates revision 2.
    for (i, helm) in [&env.helm3, &env.helm4, &env.helm3, &env.helm4]
        .into_iter()
        .enumerate()
    {
        let name = format!("race-{i}");
        env.helm3(&["install", &name, &chart, "-n", &ns]);
        let helm_run = {
            let (helm, name, ns, chart, kubeconfig) = (
                helm.clone(),
                name.clone(),
                ns.clone(),
                chart.clone(),
                env.kubeconfig.clone(),
            );
            std::thread::spawn(move || {
                Command::new(helm)
                    .args([
                        "upgrade",
                        &name,
                        &chart,
                        "-n",
                        &ns,
                        "--set",
                        "image.tag=9.9.9",
                    ])
                    .env("KUBECONFIG", kubeconfig)
                    .env_remove("HELM_DRIVER")
                    .output()
                    .expect("helm runs")
            })
        };
        // Odd rounds: start while helm's upgrade is in flight (its revision 2 exists), so helm
        // wins; even rounds: start at once, so keelson usually does. Either way: one winner.
        if i % 2 == 1 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while storage.get(&ns, &name, 2).await.is_err() && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        let ours = storage
            .begin_upgrade(&ns, &name, change("1.0.1", "keelson: race"))
            .await;
        let theirs = helm_run.join().expect("helm thread");
        let helm_won = theirs.status.success();
        let helm_stderr = String::from_utf8_lossy(&theirs.stderr).trim().to_string();
        let keelson_version = ours.as_ref().ok().map(|p| p.pending.release.version());
        assert!(
            helm_won || keelson_version.is_some(),
            "{name}: both lost: helm ({helm_stderr}), keelson {:?}",
            ours.as_ref().err().map(ToString::to_string)
        );
        match ours {
            Ok(pending) => {
                storage.complete_upgrade(pending).await.expect("complete");
            }
            Err(err) => assert!(
                matches!(
                    err,
                    StorageError::Pending { .. }
                        | StorageError::Driver(DriverError::AlreadyExists { .. })
                ),
                "{name}: keelson lost with an unexpected error: {err}"
            ),
        }
        if !helm_won {
            assert!(
                helm_stderr.contains("another operation") || helm_stderr.contains("exists"),
                "{name}: helm lost with an unexpected error: {helm_stderr}"
            );
        }
        let history = storage.history(&ns, &name).await.expect("history");
        let descriptions: Vec<(i64, &str)> = history
            .iter()
            .map(|r| (r.release.version(), r.release.description()))
            .collect();
        // Revision 2 belongs to exactly one writer, whose record is intact.
        let v2 = history.get(1).map(|r| r.release.description());
        match (helm_won, keelson_version) {
            (true, None) => assert_eq!(v2, Some("Upgrade complete"), "{name}"),
            (false, Some(2)) => assert_eq!(v2, Some("keelson: race"), "{name}"),
            // Both succeeded: they did not overlap (keelson started after helm finished), so
            // keelson built on helm's revision instead of racing it.
            (true, Some(3)) => assert_eq!(
                descriptions,
                [
                    (1, "Install complete"),
                    (2, "Upgrade complete"),
                    (3, "keelson: race")
                ],
                "{name}"
            ),
            other => panic!("{name}: impossible outcome {other:?}: {descriptions:?}"),
        }
        let deployed = history
            .iter()
            .filter(|r| r.release.status() == Status::Deployed)
            .count();
        assert_eq!(deployed, 1, "{name}: {descriptions:?}");
        eprintln!(
            "{name}: helm {}, keelson {}",
            if helm_won { "won" } else { "lost" },
            match keelson_version {
                Some(v) => format!("wrote revision {v}"),
                None => "lost".to_string(),
            }
        );
    }
    // Passed: leave the shared cluster as it was (a failing test keeps its namespace to inspect).
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_pending_and_pruning_follow_helm() {
    let env = TestEnv::get();
    let ns = env.fresh_namespace("st-book");
    env.helm4(&[
        "install",
        "book",
        &support::fixture_chart("demo"),
        "-n",
        &ns,
    ]);
    let client = client(&env).await;
    let storage = Storage::new(Driver::new(client, DriverKind::Secret)).with_history_max(3);

    // A pending keelson revision blocks a second start, like Helm's own.
    let pending = storage
        .begin_upgrade(&ns, "book", change("1.0.1", "keelson: one"))
        .await
        .expect("begin");
    let err = storage
        .begin_upgrade(&ns, "book", change("1.0.2", "keelson: two"))
        .await
        .expect_err("pending");
    assert!(
        matches!(err, StorageError::Pending { version: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("another operation"), "{err}");

    // A failure marks the new revision failed with the reason; the old one stays deployed.
    let reason = format!("apply refused: {}", "x".repeat(400));
    let failed = storage.fail_upgrade(pending, &reason).await.expect("fail");
    assert_eq!(failed.release.status(), Status::Failed);
    assert!(failed.release.description().contains("apply refused"));
    assert!(failed.release.description().chars().count() <= 256);
    assert_eq!(
        storage
            .deployed(&ns, "book")
            .await
            .expect("deployed")
            .release
            .version(),
        1
    );
    let history = env.helm4(&["history", "book", "-n", &ns]);
    assert!(
        history.contains("failed") && history.contains("apply refused"),
        "{history}"
    );

    // Upgrades after a failure start from the deployed revision; history stays within max and
    // always keeps the deployed revision.
    for step in 0..5 {
        let tag = format!("1.1.{step}");
        let pending = storage
            .begin_upgrade(
                &ns,
                "book",
                change(&tag, &format!("keelson: image.tag → {tag}")),
            )
            .await
            .expect("begin");
        let done = storage.complete_upgrade(pending).await.expect("complete");
        let history = storage.history(&ns, "book").await.expect("history");
        assert!(
            history.len() <= 3,
            "step {step}: {} revisions",
            history.len()
        );
        assert_eq!(
            history
                .iter()
                .filter(|r| r.release.status() == Status::Deployed)
                .count(),
            1
        );
        assert_eq!(
            history.last().map(|r| r.release.version()),
            Some(done.release.version())
        );
    }
    let history = env.helm4(&["history", "book", "-n", &ns, "-o", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history).expect("json");
    let revisions: Vec<i64> = history
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["revision"].as_i64())
        .collect();
    assert_eq!(revisions, [5, 6, 7]);
    assert_eq!(history[2]["description"], "keelson: image.tag → 1.1.4");
    assert_eq!(history[1]["status"], "superseded");
    // Passed: leave the shared cluster as it was (a failing test keeps its namespace to inspect).
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}
