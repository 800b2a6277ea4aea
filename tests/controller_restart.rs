//! `keelson run` across an apiserver restart: the watch recovers (kube's watcher re-lists), the
//! re-list is reconciled against what the controller knows (no record decoded again), and a
//! push after the restart still becomes exactly one revision. A test binary of its own: the
//! restart would disturb tests running beside it.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::TestEnv;
use support::controller::{RunningController, wait_for};
use support::registry::TestRegistry;

fn restart_apiserver() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testenv");
    let out = Command::new(script)
        .arg("restart-apiserver")
        .output()
        .expect("run scripts/testenv restart-apiserver");
    assert!(
        out.status.success(),
        "scripts/testenv restart-apiserver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_watch_survives_an_apiserver_restart_without_losing_or_repeating_work() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("ctl-restart");
    let repository = format!("{namespace}/app");
    runtime.block_on(registry.push_tag(&repository, "1.0.0"));
    let image = format!("image.repository={}/{repository}", registry.host);
    env.helm3(&[
        "install",
        "web",
        &support::fixture_chart("demo"),
        "-n",
        &namespace,
        "--set",
        &image,
        "--set",
        "image.tag=1.0.0",
        "--set",
        "keel.pollSchedule=@every 1s",
    ]);
    let controller = RunningController::start(
        &env,
        &[
            "-n",
            &namespace,
            "--leader-election-namespace",
            &namespace,
            "--lease-duration",
            "30",
        ],
        &[],
    );
    wait_for(Duration::from_secs(20), "the first check", || {
        (controller.metric("keelson_updates_total{result=\"up_to_date\"}") >= 1.0).then_some(())
    });
    let decoded_before = controller.metric("keelson_records_decoded_total");

    restart_apiserver();
    // A release installed while keelson's watch reconnects is still seen.
    env.helm3(&[
        "install",
        "api",
        &support::fixture_chart("demo"),
        "-n",
        &namespace,
        "--set",
        &image,
        "--set",
        "image.tag=1.0.0",
        "--set",
        "keel.pollSchedule=@every 1s",
    ]);
    wait_for(
        Duration::from_secs(60),
        "both releases tracked after the restart",
        || (controller.metric("keelson_tracked_releases") == 2.0).then_some(()),
    );
    runtime.block_on(registry.push_tag(&repository, "1.1.0"));
    for release in ["web", "api"] {
        wait_for(
            Duration::from_secs(60),
            &format!("{release} at 1.1.0"),
            || {
                let text = env.helm3(&["history", release, "-n", &namespace, "-o", "json"]);
                let history: Value = serde_json::from_str(&text).ok()?;
                let last = history.as_array()?.last()?.clone();
                (last["status"] == "deployed" && last["description"].as_str()?.contains("1.1.0"))
                    .then_some(())
            },
        );
        let text = env.helm3(&["history", release, "-n", &namespace, "-o", "json"]);
        let history: Value = serde_json::from_str(&text).expect("history JSON");
        let statuses: Vec<&str> = history
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["status"].as_str())
            .collect();
        assert_eq!(
            statuses,
            ["superseded", "deployed"],
            "{release}: one keelson revision"
        );
    }
    // After the re-list only new records were decoded: the unchanged `web` v1 was not.
    let decoded_after = controller.metric("keelson_records_decoded_total");
    assert!(
        decoded_after - decoded_before <= 6.0,
        "decoded {decoded_before} before the restart and {decoded_after} after:\n{}",
        controller.log_text()
    );
}
