//! charts/keelson: `keelson template` renders it as helm does, and the RBAC it installs is
//! enough — and only what — `keelson run` needs: the controller runs with the chart's
//! ServiceAccount token (the test environment has no kubelet to run the pod) and completes
//! updates, pruning included.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::TestEnv;
use support::controller::{RunningController, wait_for};
use support::registry::TestRegistry;

fn chart() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("charts/keelson")
        .display()
        .to_string()
}

fn keelson_template(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("template")
        .args(args)
        .output()
        .expect("run keelson template");
    assert!(
        out.status.success(),
        "keelson template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The generated token and the checksum derived from it are random in both renderers.
fn mask_random(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("token: ") || trimmed.starts_with("checksum/webhook: ") {
                format!("{}<random>", &line[..line.len() - trimmed.len()])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn keelson_template_renders_the_chart_as_helm_does() {
    let env = TestEnv::get();
    let chart = chart();
    let cases: [&[&str]; 6] = [
        &[],
        &["--set", "webhook.token=t"],
        &["--set", "allNamespaces=true", "--set", "webhook.token=t"],
        &[
            "--set",
            "namespaces={a,b}",
            "--set",
            "verbosity=2",
            "--set",
            "runHooks=true",
        ],
        &[
            "--set",
            "namespaceSelector=team=x",
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "webhook.existingSecret=s",
            "--set",
            "driver=configmap",
        ],
        &[
            "--set",
            "webhook.allowUnauthenticated=true",
            "--set",
            "extraEnv[0].name=X",
            "--set",
            "extraEnv[0].value=y",
            "--set",
            "replicaCount=2",
            "--set",
            "notifications.existingSecret=chat",
            "--set",
            "notifications.level=warn",
        ],
    ];
    for case in cases {
        let mut args = vec!["k", chart.as_str(), "-n", "keelson-system"];
        args.extend_from_slice(case);
        let ours = keelson_template(&args);
        for helm in [&env.helm3, &env.helm4] {
            let mut helm_args = vec!["template"];
            helm_args.extend_from_slice(&args);
            let theirs = env.run(helm, &helm_args);
            let generated = !case
                .iter()
                .any(|a| a.starts_with("webhook.token") || a.starts_with("webhook.existingSecret"));
            let (ours, theirs) = if generated {
                (mask_random(&ours), mask_random(&theirs))
            } else {
                (ours.clone(), theirs)
            };
            assert_eq!(ours, theirs, "{helm} template {case:?}");
        }
    }
}

#[test]
fn the_controller_completes_updates_with_exactly_the_charts_permissions() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let system = env.fresh_namespace("ctl-chart-sys");
    let apps = env.fresh_namespace("ctl-chart-apps");
    let namespaces = format!("namespaces={{{apps}}}");
    env.helm3(&[
        "install",
        "keelson",
        &chart(),
        "-n",
        &system,
        "--set",
        &namespaces,
        "--set",
        "webhook.token=chart-token",
    ]);

    // The token controller gives the ServiceAccount a token Secret.
    let token = wait_for(
        Duration::from_secs(30),
        "the ServiceAccount's token",
        || {
            let out = env.run_status(
                &env.kubectl,
                &["get", "secrets", "-n", &system, "-o", "json"],
            );
            let list: Value = serde_json::from_slice(&out.stdout).ok()?;
            list["items"].as_array()?.iter().find_map(|secret| {
                let annotations = &secret["metadata"]["annotations"];
                (secret["type"] == "kubernetes.io/service-account-token"
                    && annotations["kubernetes.io/service-account.name"] == "keelson")
                    .then(|| secret["data"]["token"].as_str().map(str::to_string))
                    .flatten()
            })
        },
    );
    use base64::Engine;
    let token = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .expect("token is base64"),
    )
    .expect("token is text");
    let kubeconfig = std::env::temp_dir().join(format!("keelson-chart-sa-{system}.kubeconfig"));
    std::fs::copy(&env.kubeconfig, &kubeconfig).expect("copy kubeconfig");
    let kubeconfig = kubeconfig.display().to_string();
    let credentials = format!("--token={token}");
    let context_namespace = format!("--namespace={apps}");
    let set_user: Vec<&str> = vec!["config", "set-credentials", "keelson-sa", &credentials];
    let set_context: Vec<&str> = vec![
        "config",
        "set-context",
        "--current",
        "--user=keelson-sa",
        &context_namespace,
    ];
    for args in [set_user, set_context] {
        let mut full = vec!["--kubeconfig", kubeconfig.as_str()];
        full.extend_from_slice(&args);
        env.kubectl(&full);
    }
    // The ServiceAccount may not list Secrets outside its namespaces.
    let denied = Command::new(&env.kubectl)
        .args([
            "--kubeconfig",
            &kubeconfig,
            "get",
            "secrets",
            "-n",
            "default",
        ])
        .output()
        .expect("run kubectl");
    assert!(
        !denied.status.success(),
        "the chart's RBAC is wider than the watched namespaces"
    );

    let repository = format!("{apps}/app");
    runtime.block_on(registry.push_tag(&repository, "1.0.0"));
    let image = format!("image.repository={}/{repository}", registry.host);
    env.helm3(&[
        "install",
        "web",
        &support::fixture_chart("demo"),
        "-n",
        &apps,
        "--set",
        &image,
        "--set",
        "image.tag=1.0.0",
        "--set",
        "keel.pollSchedule=@every 1s",
    ]);
    let controller = RunningController::start_with_kubeconfig(
        &kubeconfig,
        &[
            "-n",
            &apps,
            "--leader-election-namespace",
            &system,
            "--history-max",
            "2",
        ],
        &[("KEELSON_WEBHOOK_TOKEN", "chart-token")],
    );
    for tag in ["1.1.0", "1.2.0"] {
        runtime.block_on(registry.push_tag(&repository, tag));
        wait_for(
            Duration::from_secs(30),
            &format!("revision with {tag}"),
            || {
                let values = env.helm3(&["get", "values", "web", "-n", &apps, "-o", "json"]);
                let history = env.helm3(&["history", "web", "-n", &apps, "-o", "json"]);
                let deployed_last = serde_json::from_str::<Value>(&history)
                    .ok()
                    .and_then(|h| h.as_array().and_then(|a| a.last().cloned()))
                    .is_some_and(|r| r["status"] == "deployed");
                (deployed_last
                    && serde_json::from_str::<Value>(&values).ok()?["image"]["tag"] == tag)
                    .then_some(())
            },
        );
    }
    let history: Value =
        serde_json::from_str(&env.helm3(&["history", "web", "-n", &apps, "-o", "json"]))
            .expect("history JSON");
    let revisions: Vec<i64> = history
        .as_array()
        .expect("history array")
        .iter()
        .filter_map(|r| r["revision"].as_i64())
        .collect();
    assert_eq!(
        revisions,
        vec![2, 3],
        "history pruned to 2 with the chart's permissions"
    );
    let log = controller.log_text();
    assert!(
        !log.contains("forbidden"),
        "a request was forbidden:\n{log}"
    );
    assert_eq!(controller.metric("keelson_leader"), 1.0);
}
