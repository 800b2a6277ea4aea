//! Helm compatibility of the storage layer against the real apiserver, helm 3 and helm 4, with
//! both the Secret and the ConfigMap driver: Helm's records decode completely, and a revision
//! written through keelson's storage API is treated by helm as its own.

mod support;

use std::process::Command;

use keelson::cluster::ClusterArgs;
use keelson::storage::{Driver, DriverKind, RevisionChange, Status, Storage};
use serde_json::Value;
use support::TestEnv;

const HELMS: [&str; 2] = ["helm3", "helm4"];
const DRIVERS: [DriverKind; 2] = [DriverKind::Secret, DriverKind::ConfigMap];

fn helm_bin<'a>(env: &'a TestEnv, helm: &str) -> &'a str {
    if helm == "helm3" {
        &env.helm3
    } else {
        &env.helm4
    }
}

/// Runs helm with the driver selected the way users select it (HELM_DRIVER).
fn helm(env: &TestEnv, helm: &str, driver: DriverKind, args: &[&str]) -> String {
    let bin = helm_bin(env, helm);
    let out = Command::new(bin)
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HELM_DRIVER", driver.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    assert!(
        out.status.success(),
        "`{helm} {}` (HELM_DRIVER={driver}) failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn storage(env: &TestEnv, kind: DriverKind) -> Storage {
    keelson::cluster::install_crypto_provider();
    let args = ClusterArgs {
        kubeconfig: Some(env.kubeconfig.clone().into()),
        context: None,
    };
    let client = args.client().await.expect("kube client for the test env");
    Storage::new(Driver::new(client, kind))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_upgrade_rollback_by_each_helm_decode_completely() {
    let env = TestEnv::get();
    let chart = support::fixture_chart("demo");
    for helm_name in HELMS {
        for driver in DRIVERS {
            let ns = env.fresh_namespace(&format!("st-dec-{helm_name}-{driver}"));
            let release = "decoded";
            helm(
                &env,
                helm_name,
                driver,
                &["install", release, &chart, "-n", &ns],
            );
            helm(
                &env,
                helm_name,
                driver,
                &[
                    "upgrade",
                    release,
                    &chart,
                    "-n",
                    &ns,
                    "--set",
                    "image.tag=1.0.1",
                ],
            );
            helm(
                &env,
                helm_name,
                driver,
                &["rollback", release, "1", "-n", &ns],
            );

            let storage = storage(&env, driver).await;
            let history = storage.history(&ns, release).await.expect("history");
            let context = format!("{helm_name}/{driver}");
            let statuses: Vec<Status> = history.iter().map(|r| r.release.status()).collect();
            assert_eq!(
                statuses,
                [Status::Superseded, Status::Superseded, Status::Deployed],
                "{context}"
            );
            let descriptions: Vec<&str> = history.iter().map(|r| r.release.description()).collect();
            assert_eq!(
                descriptions,
                ["Install complete", "Upgrade complete", "Rollback to 1"],
                "{context}"
            );
            assert_eq!(
                history[1].release.config()["image"]["tag"],
                "1.0.1",
                "{context}"
            );
            for stored in &history {
                let rel = &stored.release;
                assert_eq!(rel.namespace(), ns, "{context}");
                assert_eq!(
                    rel.chart.as_ref().map(|c| c.name_version()).as_deref(),
                    Some("demo-0.1.0")
                );
                assert_eq!(
                    rel.chart.as_ref().map(|c| c.templates().len()),
                    Some(4),
                    "{context}"
                );
                assert!(
                    rel.manifest
                        .as_deref()
                        .unwrap_or_default()
                        .contains("kind: Deployment")
                );
                assert!(
                    rel.extra.is_empty(),
                    "{context}: unmodelled fields {:?}",
                    rel.extra
                );
                let expected = if helm_name == "helm3" {
                    None
                } else {
                    Some("ssa")
                };
                assert_eq!(rel.apply_method.as_deref(), expected, "{context}");
            }
            let last = storage.last(&ns, release).await.expect("last");
            assert_eq!(last.release.version(), 3);
            let deployed = storage.deployed(&ns, release).await.expect("deployed");
            assert_eq!(deployed.release.version(), 3);
            let v2 = storage.get(&ns, release, 2).await.expect("get v2");
            assert_eq!(v2.release.status(), Status::Superseded);
            let block = keelson::keel::read_release(&last.release)
                .expect("keel block")
                .expect("present");
            assert_eq!(block.images[0].tag.as_deref(), Some("1.0.0"), "{context}");

            let latest = storage.latest_revisions(Some(&ns)).await.expect("latest");
            assert_eq!(latest.records.len(), 1);
            assert_eq!(latest.records[0].release.version(), 3);
            assert!(latest.skipped.is_empty());
            env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
        }
    }
}

fn helm_json(env: &TestEnv, helm_name: &str, driver: DriverKind, args: &[&str]) -> Value {
    let text = helm(env, helm_name, driver, args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("helm {args:?} printed no JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keelson_revision_is_accepted_by_each_helm() {
    let env = TestEnv::get();
    let chart = support::fixture_chart("demo");
    for helm_name in HELMS {
        for driver in DRIVERS {
            let context = format!("{helm_name}/{driver}");
            let ns = env.fresh_namespace(&format!("st-acc-{helm_name}-{driver}"));
            let release = "accepted";
            helm(
                &env,
                helm_name,
                driver,
                &[
                    "install",
                    release,
                    &chart,
                    "-n",
                    &ns,
                    "--set",
                    "replicaCount=2",
                ],
            );

            // What the updater will do: same chart, the tag changed in the user config, the
            // manifest rendered for the new tag.
            let storage = storage(&env, driver).await;
            let current = storage.deployed(&ns, release).await.expect("deployed");
            let mut config = current.release.config();
            config.insert("image".into(), serde_json::json!({"tag": "1.0.1"}));
            let manifest = current
                .release
                .manifest
                .clone()
                .unwrap_or_default()
                .replace("demo/app:1.0.0", "demo/app:1.0.1");
            let description = "keelson: image.tag 1.0.0 → 1.0.1 (policy minor)";
            let pending = storage
                .begin_upgrade(
                    &ns,
                    release,
                    RevisionChange {
                        config,
                        manifest,
                        description: description.into(),
                        ..RevisionChange::default()
                    },
                )
                .await
                .expect("begin upgrade");
            assert_eq!(pending.pending.release.status(), Status::PendingUpgrade);
            // Helm refuses to start while keelson's revision is pending, as for its own.
            let busy = Command::new(helm_bin(&env, helm_name))
                .args(["upgrade", release, &chart, "-n", &ns, "--reuse-values"])
                .env("KUBECONFIG", &env.kubeconfig)
                .env("HELM_DRIVER", driver.to_string())
                .output()
                .expect("helm runs");
            assert!(
                !busy.status.success(),
                "{context}: helm upgraded over a pending revision"
            );
            assert!(
                String::from_utf8_lossy(&busy.stderr).contains("another operation"),
                "{context}"
            );
            let done = storage.complete_upgrade(pending).await.expect("complete");
            assert_eq!(done.release.version(), 2);

            let history = helm_json(
                &env,
                helm_name,
                driver,
                &["history", release, "-n", &ns, "-o", "json"],
            );
            let entries = history.as_array().expect("history array");
            assert_eq!(entries.len(), 2, "{context}: {history}");
            assert_eq!(entries[0]["status"], "superseded", "{context}");
            assert_eq!(entries[1]["status"], "deployed", "{context}");
            assert_eq!(entries[1]["revision"], 2, "{context}");
            assert_eq!(entries[1]["description"], description, "{context}");

            // Both helm versions read it, whichever wrote the release.
            for reader in HELMS {
                let values = helm_json(
                    &env,
                    reader,
                    driver,
                    &[
                        "get",
                        "values",
                        release,
                        "-n",
                        &ns,
                        "--revision",
                        "2",
                        "-o",
                        "json",
                    ],
                );
                assert_eq!(
                    values,
                    serde_json::json!({"image": {"tag": "1.0.1"}, "replicaCount": 2}),
                    "{context} read by {reader}"
                );
            }
            let manifest = helm(
                &env,
                helm_name,
                driver,
                &["get", "manifest", release, "-n", &ns],
            );
            assert!(
                manifest.contains("127.0.0.1:5000/demo/app:1.0.1"),
                "{context}"
            );
            let status = helm_json(
                &env,
                helm_name,
                driver,
                &["status", release, "-n", &ns, "-o", "json"],
            );
            assert_eq!(status["version"], 2, "{context}");
            assert_eq!(status["info"]["status"], "deployed", "{context}");

            // A later helm upgrade reuses keelson's values; a rollback returns to keelson's revision.
            helm(
                &env,
                helm_name,
                driver,
                &["upgrade", release, &chart, "-n", &ns, "--reuse-values"],
            );
            let values = helm_json(
                &env,
                helm_name,
                driver,
                &["get", "values", release, "-n", &ns, "-o", "json"],
            );
            assert_eq!(
                values["image"]["tag"], "1.0.1",
                "{context}: --reuse-values lost keelson's tag"
            );
            helm(
                &env,
                helm_name,
                driver,
                &["rollback", release, "1", "-n", &ns],
            );
            helm(
                &env,
                helm_name,
                driver,
                &["rollback", release, "2", "-n", &ns],
            );
            let image = env.kubectl(&[
                "get",
                "deployment",
                "accepted-demo",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ]);
            assert_eq!(
                image, "127.0.0.1:5000/demo/app:1.0.1",
                "{context}: rollback to keelson's revision"
            );
            let history = helm_json(
                &env,
                helm_name,
                driver,
                &["history", release, "-n", &ns, "-o", "json"],
            );
            let deployed = history
                .as_array()
                .expect("array")
                .iter()
                .filter(|e| e["status"] == "deployed")
                .count();
            assert_eq!(deployed, 1, "{context}: {history}");

            // And keelson reads everything helm wrote on top of its revision.
            let all = storage.history(&ns, release).await.expect("history");
            assert_eq!(all.len(), 5, "{context}");
            assert_eq!(all[4].release.description(), "Rollback to 2", "{context}");
            env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keelson_list_matches_helm_list() {
    let env = TestEnv::get();
    let chart = support::fixture_chart("demo");
    let ns = env.fresh_namespace("st-list");
    helm(
        &env,
        "helm3",
        DriverKind::Secret,
        &["install", "alpha", &chart, "-n", &ns],
    );
    helm(
        &env,
        "helm4",
        DriverKind::Secret,
        &[
            "install",
            "beta",
            &chart,
            "-n",
            &ns,
            "--set",
            "image.tag=1.2.3",
        ],
    );
    helm(
        &env,
        "helm4",
        DriverKind::Secret,
        &[
            "upgrade",
            "beta",
            &chart,
            "-n",
            &ns,
            "--set",
            "image.tag=1.2.4",
        ],
    );
    helm(
        &env,
        "helm3",
        DriverKind::ConfigMap,
        &["install", "gamma", &chart, "-n", &ns],
    );

    let keelson = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .env("KUBECONFIG", &env.kubeconfig)
            .env_remove("HELM_DRIVER")
            .output()
            .expect("keelson runs");
        assert!(
            out.status.success(),
            "keelson {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ours: Value =
        serde_json::from_str(&keelson(&["list", "-n", &ns, "-o", "json"])).expect("json");
    let theirs = helm_json(
        &env,
        "helm3",
        DriverKind::Secret,
        &["list", "-n", &ns, "-o", "json"],
    );
    let ours = ours.as_array().expect("array");
    let theirs = theirs.as_array().expect("array");
    assert_eq!(ours.len(), 2);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        for key in [
            "name",
            "namespace",
            "updated",
            "status",
            "chart",
            "app_version",
        ] {
            assert_eq!(o[key], t[key], "{key}");
        }
        assert_eq!(
            o["revision"].to_string(),
            t["revision"].as_str().unwrap_or_default()
        );
        assert_eq!(o["error"], Value::Null);
    }
    assert_eq!(ours[1]["keel"]["images"][0]["tag"], "1.2.4");
    assert_eq!(ours[1]["keel"]["policy"], "minor");
    assert_eq!(ours[1]["keel"]["trigger"], "poll");

    // The table starts with helm's own columns, padded and tab-separated like helm's.
    let our_table = keelson(&["list", "-n", &ns]);
    let helm_table = helm(&env, "helm3", DriverKind::Secret, &["list", "-n", &ns]);
    for (ours, theirs) in our_table.lines().zip(helm_table.lines()) {
        assert!(
            ours.starts_with(theirs.trim_end()),
            "ours:   {ours:?}\ntheirs: {theirs:?}"
        );
    }

    let configmaps: Value = serde_json::from_str(&keelson(&[
        "list",
        "-n",
        &ns,
        "--driver",
        "configmap",
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(configmaps[0]["name"], "gamma");
    // --time-format takes a Go layout, like helm's.
    let layout = "Monday Jan _2 2006 3:04:05.000PM -07:00 MST";
    let ours: Value = serde_json::from_str(&keelson(&[
        "list",
        "-n",
        &ns,
        "-o",
        "json",
        "--time-format",
        layout,
    ]))
    .expect("json");
    let theirs = helm_json(
        &env,
        "helm3",
        DriverKind::Secret,
        &["list", "-n", &ns, "-o", "json", "--time-format", layout],
    );
    assert_eq!(ours[0]["updated"], theirs[0]["updated"]);
    assert_eq!(ours[1]["updated"], theirs[1]["updated"]);
    let short = keelson(&["list", "-n", &ns, "-q", "--filter", "^b"]);
    assert_eq!(short, "beta\n");
    // Passed: leave the shared cluster as it was (a failing test keeps its namespace to inspect).
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// Paging, ordering and status flags pick the same releases as helm's, over releases enough to
/// page through. keelson decodes only the releases it prints when sorting by name, so this is
/// where that shortcut is held to helm's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paging_and_filters_pick_what_helm_picks() {
    let env = TestEnv::get();
    let chart = support::fixture_chart("demo");
    let ns = env.fresh_namespace("st-page");
    helm(
        &env,
        "helm3",
        DriverKind::Secret,
        &["install", "page-src", &chart, "-n", &ns],
    );
    let storage = storage(&env, DriverKind::Secret).await;
    let source = storage
        .get(&ns, "page-src", 1)
        .await
        .expect("helm's record");
    // 16 more releases: distinct times (for --date), every third one failed, and one whose
    // newest revision is pending.
    for i in 0..16 {
        let mut release = source.release.clone();
        release.name = Some(format!("page-{:02}", (i * 7) % 16));
        if let Some(info) = release.info.as_mut() {
            info.last_deployed = Some(format!("2026-01-{:02}T10:00:00Z", 16 - i));
        }
        if i % 3 == 0 {
            release.set_status(Status::Failed, "Upgrade failed");
        }
        if i == 5 {
            release.set_status(Status::PendingUpgrade, "Preparing upgrade");
        }
        let labels = source.labels.clone();
        storage
            .create(&ns, &release, &labels)
            .await
            .expect("create record");
    }
    let keelson_names = |args: &[&str]| -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(["list", "-n", &ns, "-o", "json"])
            .args(args)
            .env("KUBECONFIG", &env.kubeconfig)
            .env_remove("HELM_DRIVER")
            .output()
            .expect("keelson runs");
        assert!(
            out.status.success(),
            "keelson list {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Value = serde_json::from_slice(&out.stdout).expect("json");
        rows.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let helm_names = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["list", "-n", &ns, "-o", "json"];
        full.extend_from_slice(args);
        let rows = helm_json(&env, "helm3", DriverKind::Secret, &full);
        rows.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let cases: [&[&str]; 13] = [
        &[],
        &["--max", "5"],
        &["--max", "5", "--offset", "3"],
        &["-r", "--max", "4"],
        &["--max", "0"],
        &["-a"],
        &["-a", "--max", "3", "--offset", "12"],
        &["--failed", "--max", "2"],
        &["--pending"],
        &["--offset", "40"],
        &["-d", "--max", "3"],
        &["-d", "-r", "--max", "3"],
        &["-f", "^page-1", "--max", "3"],
    ];
    for args in cases {
        let ours = keelson_names(args);
        let theirs = helm_names(args);
        assert_eq!(ours, theirs, "list {args:?}");
    }
    // 17 releases; by default helm shows deployed and failed ones: only the pending one is hidden.
    assert_eq!(keelson_names(&["--max", "0"]).len(), 16);
    assert_eq!(keelson_names(&["--pending"]), ["page-03"]);
    env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}
