//! `keelson run` in the real environment: pushes become revisions by poll and by each webhook
//! kind, a changed `keel:` block is planned at once, SIGTERM and kill -9 leave no pending
//! record, and one of two replicas writes.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::TestEnv;
use support::controller::{RunningController, wait_for};
use support::registry::TestRegistry;

/// One test's world: a namespace, a repository with 1.0.0 pushed, a chart copy.
struct World {
    env: TestEnv,
    registry: TestRegistry,
    runtime: tokio::runtime::Runtime,
    namespace: String,
    repository: String,
    chart: String,
}

impl World {
    fn new(prefix: &str, chart: &str) -> Self {
        let env = TestEnv::get();
        let registry = TestRegistry::anonymous();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let namespace = env.fresh_namespace(prefix);
        let repository = format!("{namespace}/app");
        runtime.block_on(registry.push_tag(&repository, "1.0.0"));
        let target: PathBuf = std::env::temp_dir().join(format!("keelson-ctl-{namespace}"));
        support::copy_dir(Path::new(&support::fixture_chart(chart)), &target);
        Self {
            env,
            registry,
            runtime,
            namespace,
            repository,
            chart: target.display().to_string(),
        }
    }

    fn image(&self) -> String {
        format!("{}/{}", self.registry.host, self.repository)
    }

    fn push(&self, tag: &str) -> String {
        self.runtime
            .block_on(self.registry.push_tag(&self.repository, tag))
    }

    /// Installs `release` at tag 1.0.0 with extra `--set` values.
    fn install(&self, helm: &str, release: &str, sets: &[&str]) {
        let repository = format!("image.repository={}", self.image());
        let mut args = vec![
            "install",
            release,
            &self.chart,
            "-n",
            &self.namespace,
            "--set",
            &repository,
            "--set",
            "image.tag=1.0.0",
        ];
        for set in sets {
            args.push("--set");
            args.push(set);
        }
        self.env.run(helm, &args);
    }

    fn history(&self, release: &str) -> Vec<Value> {
        let text = self
            .env
            .helm3(&["history", release, "-n", &self.namespace, "-o", "json"]);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_else(|| panic!("helm history is not a JSON array: {text}"))
    }

    /// Waits until the deployed revision's values hold `tag`; returns the history then.
    fn wait_for_tag(&self, release: &str, tag: &str, controller: &RunningController) -> Vec<Value> {
        self.wait_for_tag_within(release, tag, controller, Duration::from_secs(30))
    }

    fn wait_for_tag_within(
        &self,
        release: &str,
        tag: &str,
        controller: &RunningController,
        limit: Duration,
    ) -> Vec<Value> {
        let start = std::time::Instant::now();
        loop {
            let values = self.env.helm3(&[
                "get",
                "values",
                release,
                "-n",
                &self.namespace,
                "-o",
                "json",
            ]);
            let history = self.history(release);
            let deployed_last = history.last().is_some_and(|r| r["status"] == "deployed");
            if deployed_last
                && serde_json::from_str::<Value>(&values)
                    .ok()
                    .is_some_and(|v| v["image"]["tag"] == tag)
            {
                return history;
            }
            if start.elapsed() > limit {
                panic!(
                    "release {release} did not reach tag {tag} within {limit:?}; history {:?}\ncontroller log:\n{}",
                    self.history(release),
                    controller.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn deployment_image(&self, name: &str) -> String {
        self.env.kubectl(&[
            "get",
            "deployment",
            name,
            "-n",
            &self.namespace,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
    }

    fn run_controller(&self, extra: &[&str], envs: &[(&str, &str)]) -> RunningController {
        let mut args = vec![
            "-n",
            &*self.namespace,
            "--leader-election-namespace",
            &*self.namespace,
        ];
        args.extend_from_slice(extra);
        RunningController::start(&self.env, &args, envs)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.chart);
    }
}

fn statuses(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn assert_settled(history: &[Value]) {
    let statuses = statuses(history);
    assert_eq!(
        statuses.iter().filter(|s| *s == "deployed").count(),
        1,
        "exactly one deployed revision: {statuses:?}"
    );
    assert!(
        !statuses.iter().any(|s| s.starts_with("pending")),
        "no pending revision: {statuses:?}"
    );
}

#[test]
fn a_push_becomes_a_revision_by_poll_without_any_command() {
    let world = World::new("ctl-poll", "demo");
    world.install(
        &world.env.helm3.clone(),
        "web",
        &["keel.pollSchedule=@every 2s"],
    );
    let controller = world.run_controller(&[], &[]);
    world.push("1.1.0");
    let history = world.wait_for_tag("web", "1.1.0", &controller);
    assert_settled(&history);
    let newest = history.last().expect("a revision");
    assert_eq!(newest["status"], "deployed");
    assert!(
        newest["description"]
            .as_str()
            .is_some_and(|d| d.contains("1.0.0 → 1.1.0")),
        "{newest}"
    );
    assert_eq!(
        world.deployment_image("web-demo"),
        format!("{}:1.1.0", world.image())
    );
    assert!(controller.metric("keelson_updates_total{result=\"updated\"}") >= 1.0);
    assert!(controller.metric("keelson_checks_total{trigger=\"poll\"}") >= 1.0);
    assert_eq!(controller.metric("keelson_leader"), 1.0);
    assert_eq!(controller.metric("keelson_tracked_releases"), 1.0);
}

/// A body of each kind for `repository` (host/path) at `tag`, as the sender writes it.
fn webhook_body(
    kind: &str,
    host: &str,
    path: &str,
    tag: &str,
    digest: &str,
) -> (String, Vec<String>) {
    let repository = format!("{host}/{path}");
    let body = match kind {
        "native" => serde_json::json!({"name": repository, "tag": tag}),
        "dockerhub" => serde_json::json!({
            "push_data": {"pushed_at": 1_700_000_000, "pusher": "ci", "tag": tag},
            "repository": {"repo_name": repository, "name": "app", "namespace": host},
        }),
        "quay" => serde_json::json!({
            "repository": path, "namespace": "ns", "name": "app",
            "docker_url": repository, "homepage": "https://quay.io/repository/x",
            "updated_tags": [tag],
        }),
        "harbor" => serde_json::json!({
            "type": "PUSH_ARTIFACT", "occur_at": 1_700_000_000, "operator": "ci",
            "event_data": {
                "resources": [{"digest": null, "tag": tag, "resource_url": format!("{repository}:{tag}")}],
                "repository": {"name": "app", "namespace": "ns", "repo_full_name": path, "repo_type": "private"},
            },
        }),
        "github" => serde_json::json!({
            "action": "published",
            "registry_package": {
                "name": "app", "namespace": "owner", "package_type": "CONTAINER",
                "package_version": {
                    "version": digest, "package_url": format!("{repository}:{tag}"),
                    "container_metadata": {"tag": {"name": tag, "digest": digest}},
                },
            },
        }),
        "azure" => serde_json::json!({
            "id": "1", "timestamp": "2026-12-06T00:00:00Z", "action": "push",
            "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "repository": path, "tag": tag},
            "request": {"id": "r", "host": host, "method": "PUT", "useragent": "docker"},
        }),
        "jfrog" => serde_json::json!({
            "domain": "docker", "event_type": "pushed",
            "data": {"repo_key": "docker-local", "path": format!("{path}/{tag}/manifest.json"),
                     "name": "manifest.json", "sha256": "0", "size": 1, "image_name": repository, "tag": tag},
        }),
        "registry" => serde_json::json!({"events": [
            {"id": "a", "action": "push", "target": {"mediaType": "application/octet-stream", "repository": path, "digest": "sha256:1"}, "request": {"host": host}},
            {"id": "b", "action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": path, "tag": tag}, "request": {"host": host}},
        ]}),
        other => panic!("no body for {other}"),
    };
    let mut headers = Vec::new();
    if kind == "github" {
        headers.push("X-GitHub-Event: registry_package".to_string());
    }
    (body.to_string(), headers)
}

#[test]
fn each_webhook_kind_writes_a_confirmed_tag_once_and_only_with_credentials() {
    let world = World::new("ctl-hooks", "demo");
    // `trigger: default` never polls: every revision below comes from a webhook.
    world.install(
        &world.env.helm3.clone(),
        "web",
        &["keel.trigger=default", "keel.policy=all"],
    );
    let token = "test-webhook-token";
    let controller = world.run_controller(&[], &[("KEELSON_WEBHOOK_TOKEN", token)]);
    let bearer = format!("Authorization: Bearer {token}");
    let host = world.registry.host.clone();

    // No credentials, or wrong ones: 401 and nothing written.
    world.push("1.0.1");
    let (body, _) = webhook_body("native", &host, &world.repository, "1.0.1", "");
    assert_eq!(controller.post("/v1/webhooks/native", &body, &[]).0, 401);
    assert_eq!(
        controller
            .post(
                "/v1/webhooks/native",
                &body,
                &["Authorization: Bearer nope"]
            )
            .0,
        401
    );
    // A tag the registry does not have is answered, not written.
    let (ghost, _) = webhook_body("native", &host, &world.repository, "9.9.9", "");
    let (code, answer) = controller.post("/v1/webhooks/native", &ghost, &[&bearer]);
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("unknown tag"), "{answer}");
    // Malformed bodies: 400.
    assert_eq!(
        controller
            .post("/v1/webhooks/native", "{\"name\":", &[&bearer])
            .0,
        400
    );
    assert_eq!(
        controller
            .post("/v1/webhooks/native", "{\"tag\":\"1\"}", &[&bearer])
            .0,
        400
    );
    // Too large: 413.
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    assert_eq!(
        controller.post("/v1/webhooks/native", &huge, &[&bearer]).0,
        413
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(world.history("web").len(), 1, "nothing was written yet");

    let kinds = [
        "native",
        "dockerhub",
        "quay",
        "harbor",
        "github",
        "azure",
        "jfrog",
        "registry",
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let tag = format!("1.{}.0", i + 1);
        let digest = world.push(&tag);
        let (body, extra) = webhook_body(kind, &host, &world.repository, &tag, &digest);
        let mut headers: Vec<&str> = extra.iter().map(String::as_str).collect();
        headers.push(&bearer);
        let (code, answer) = controller.post(&format!("/v1/webhooks/{kind}"), &body, &headers);
        assert_eq!(code, 202, "{kind}: {answer}");
        let history = world.wait_for_tag("web", &tag, &controller);
        assert_settled(&history);
        // A second delivery of the same event writes nothing more.
        let (code, answer) = controller.post(&format!("/v1/webhooks/{kind}"), &body, &headers);
        assert_eq!(code, 200, "{kind} duplicate: {answer}");
        assert!(answer.contains("duplicate"), "{answer}");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            world.history("web").len(),
            history.len(),
            "{kind}: the duplicate wrote a revision"
        );
    }
    // GitHub's HMAC signature instead of a bearer token.
    let digest = world.push("2.0.0");
    let (body, _) = webhook_body("github", &host, &world.repository, "2.0.0", &digest);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let signature: String = ring::hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signed = format!("X-Hub-Signature-256: sha256={signature}");
    let forged = format!("X-Hub-Signature-256: sha256={}", "0".repeat(64));
    let event = "X-GitHub-Event: registry_package";
    assert_eq!(
        controller
            .post("/v1/webhooks/github", &body, &[event, &forged])
            .0,
        401
    );
    assert_eq!(
        controller
            .post("/v1/webhooks/github", &body, &[event, &signed])
            .0,
        202
    );
    world.wait_for_tag("web", "2.0.0", &controller);
    assert_eq!(
        controller.metric("keelson_webhook_requests_total{endpoint=\"native\",code=\"401\"}"),
        2.0
    );
    assert_eq!(
        controller.metric("keelson_checks_total{trigger=\"poll\"}"),
        0.0
    );
}

#[test]
fn a_changed_keel_block_is_planned_at_once() {
    let world = World::new("ctl-change", "demo");
    let helm = world.env.helm3.clone();
    world.install(
        &helm,
        "web",
        &["keel.policy=patch", "keel.pollSchedule=@every 1h"],
    );
    let controller = world.run_controller(&[], &[]);
    // Wait for the first check so the next one is an hour away.
    wait_for(Duration::from_secs(20), "the first poll", || {
        (controller.metric("keelson_updates_total{result=\"up_to_date\"}") >= 1.0).then_some(())
    });
    world.push("1.1.0");
    let repository = format!("image.repository={}", world.image());
    world.env.run(
        &helm,
        &[
            "upgrade",
            "web",
            &world.chart,
            "-n",
            &world.namespace,
            "--reuse-values",
            "--set",
            "keel.policy=minor",
            "--set",
            &repository,
        ],
    );
    let history = world.wait_for_tag("web", "1.1.0", &controller);
    assert_settled(&history);
    assert_eq!(
        history.len(),
        3,
        "install, the user's upgrade, keelson's revision"
    );
}

#[test]
fn sigterm_lets_the_update_in_flight_end_and_hands_back_the_lease() {
    let world = World::new("ctl-term", "hooked");
    world.install(
        &world.env.helm3.clone(),
        "job",
        &["jobHook=true", "keel.pollSchedule=@every 1s"],
    );
    // The post-upgrade hook is a Job no kubelet will ever run: the update waits on it until
    // the hook timeout, so the SIGTERM below lands mid-update.
    let mut controller = world.run_controller(&["--run-hooks", "--hook-timeout", "4"], &[]);
    world.push("1.1.0");
    wait_for(Duration::from_secs(20), "the pending revision", || {
        world
            .history("job")
            .iter()
            .any(|r| r["status"] == "pending-upgrade")
            .then_some(())
    });
    let status = controller.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        controller.log_text()
    );
    let history = world.history("job");
    assert_settled(&history);
    assert_eq!(
        history.last().map(|r| r["status"].clone()),
        Some(Value::from("failed")),
        "{history:?}"
    );
    let holder = world.env.kubectl(&[
        "get",
        "lease",
        "keelson-leader",
        "-n",
        &world.namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "", "the Lease was handed back");
    assert!(
        controller
            .log_text()
            .contains("handed back the leader Lease")
    );
}

#[test]
fn of_two_replicas_one_writes_and_the_other_takes_over_after_kill_9() {
    let world = World::new("ctl-ha", "demo");
    // Webhooks only: every revision below is written by whichever replica leads.
    world.install(
        &world.env.helm3.clone(),
        "web",
        &["keel.trigger=default", "keel.policy=all"],
    );
    let token = "ha-token";
    let args = ["--lease-duration", "3"];
    let mut first = world.run_controller(
        &args,
        &[("POD_NAME", "first"), ("KEELSON_WEBHOOK_TOKEN", token)],
    );
    wait_for(Duration::from_secs(10), "the first replica to lead", || {
        (first.metric("keelson_leader") == 1.0).then_some(())
    });
    let second = world.run_controller(
        &args,
        &[("POD_NAME", "second"), ("KEELSON_WEBHOOK_TOKEN", token)],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        second.metric("keelson_leader"),
        0.0,
        "the second replica stands by"
    );
    let bearer = format!("Authorization: Bearer {token}");
    let hook = |controller: &RunningController, tag: &str| {
        let body = serde_json::json!({"name": world.image(), "tag": tag}).to_string();
        controller.post("/v1/webhooks/native", &body, &[&bearer])
    };

    // A webhook that reaches the standby is handed on to the leader, which writes.
    world.push("1.1.0");
    let (code, answer) = hook(&second, "1.1.0");
    assert_eq!(code, 202, "{answer}");
    world.wait_for_tag("web", "1.1.0", &first);
    assert_eq!(
        second.metric("keelson_updates_total{result=\"updated\"}"),
        0.0
    );
    assert_eq!(
        first.metric("keelson_updates_total{result=\"updated\"}"),
        1.0
    );
    // Without credentials the standby refuses it itself.
    assert_eq!(second.post("/v1/webhooks/native", "{}", &[]).0, 401);

    first.kill();
    world.push("1.2.0");
    // Until the dead leader's Lease runs out there is no one to write: 503, and the sender
    // retries.
    wait_for(
        Duration::from_secs(20),
        "the second replica to take webhooks",
        || (hook(&second, "1.2.0").0 == 202).then_some(()),
    );
    let history = world.wait_for_tag("web", "1.2.0", &second);
    assert_settled(&history);
    assert_eq!(second.metric("keelson_leader"), 1.0);
}

#[test]
fn a_leader_killed_mid_update_leaves_its_pending_record_to_the_next_leader() {
    let world = World::new("ctl-kill", "demo");
    world.install(
        &world.env.helm3.clone(),
        "web",
        &["keel.pollSchedule=@every 1s"],
    );
    let args = ["--lease-duration", "3"];
    // The failpoint aborts the process (as kill -9 would) right after the pending record is
    // written, before anything is applied.
    let mut first = world.run_controller(
        &args,
        &[
            ("POD_NAME", "first"),
            ("KEELSON_FAILPOINT", "after-pending"),
        ],
    );
    wait_for(Duration::from_secs(10), "the first replica to lead", || {
        (first.metric("keelson_leader") == 1.0).then_some(())
    });
    let second = world.run_controller(&args, &[("POD_NAME", "second")]);
    world.push("1.1.0");
    wait_for(
        Duration::from_secs(20),
        "the first replica to die mid-update",
        || (first.get("/healthz").0 == 0).then_some(()),
    );
    let pending = world.history("web");
    assert!(
        pending
            .last()
            .is_some_and(|r| r["status"] == "pending-upgrade"),
        "killed with a pending record: {pending:?}"
    );
    first.kill();
    let history = world.wait_for_tag("web", "1.1.0", &second);
    assert_settled(&history);
    assert_eq!(
        world.deployment_image("web-demo"),
        format!("{}:1.1.0", world.image())
    );
    assert!(
        second.metric("keelson_pending_repaired_total") >= 1.0,
        "{}",
        second.log_text()
    );
}

#[test]
fn a_chart_that_renders_slowly_does_not_delay_other_releases() {
    let world = World::new("ctl-slow", "slow-render");
    let helm = world.env.helm3.clone();
    // Four million loop iterations: seconds of rendering (twice: the deployed revision is
    // re-rendered first), where the demo chart takes milliseconds.
    world.install(&helm, "slow", &["loops=2000"]);
    let fast_repository = format!("{}/fast", world.namespace);
    world
        .runtime
        .block_on(world.registry.push_tag(&fast_repository, "1.0.0"));
    let fast_image = format!("image.repository={}/{fast_repository}", world.registry.host);
    world.env.run(
        &helm,
        &[
            "install",
            "fast",
            &support::fixture_chart("demo"),
            "-n",
            &world.namespace,
            "--set",
            &fast_image,
            "--set",
            "image.tag=1.0.0",
            "--set",
            "keel.pollSchedule=@every 1s",
        ],
    );
    let controller = world.run_controller(&["--render-timeout", "600"], &[]);
    wait_for(Duration::from_secs(20), "the first checks", || {
        (controller.metric("keelson_updates_total{result=\"up_to_date\"}") >= 2.0).then_some(())
    });
    world.push("1.1.0");
    world
        .runtime
        .block_on(world.registry.push_tag(&fast_repository, "1.1.0"));
    let fast = wait_for(
        Duration::from_secs(30),
        "the fast release's revision",
        || {
            let history = world.history("fast");
            history
                .last()
                .is_some_and(|r| r["status"] == "deployed" && r["revision"] == 2)
                .then_some(history)
        },
    );
    assert_settled(&fast);
    let slow = world.history("slow");
    assert_eq!(
        slow.len(),
        1,
        "the slow release was still rendering when the fast one was written: {slow:?}"
    );
    // And the slow one gets there too, fully re-rendered.
    let slow = world.wait_for_tag_within("slow", "1.1.0", &controller, Duration::from_secs(120));
    assert_settled(&slow);
    assert!(
        slow.last()
            .and_then(|r| r["description"].as_str())
            .is_some_and(|d| d.contains("full render")),
        "{slow:?}"
    );
}

#[test]
fn a_bad_poll_schedule_or_an_approval_holds_only_that_release_and_says_why() {
    let world = World::new("ctl-sched", "demo");
    let helm = world.env.helm3.clone();
    world.install(&helm, "bad", &["keel.pollSchedule=61 * * * *"]);
    // Approvals are not collected yet: such a release is held, never updated without them.
    world.install(
        &helm,
        "gated",
        &["keel.pollSchedule=@every 1s", "keel.approvals=1"],
    );
    world.install(&helm, "good", &["keel.pollSchedule=@every 1s"]);
    let controller = world.run_controller(&[], &[]);
    wait_for(Duration::from_secs(20), "both releases read", || {
        (controller.metric("keelson_invalid_releases") == 1.0
            && controller.metric("keelson_tracked_releases") == 2.0)
            .then_some(())
    });
    world.push("1.1.0");
    world.wait_for_tag("good", "1.1.0", &controller);
    assert_eq!(
        world.history("bad").len(),
        1,
        "the release with a bad schedule is left alone"
    );
    for command in [&["list"][..], &["check"][..]] {
        let mut args = command.to_vec();
        args.extend(["-n", &world.namespace]);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(&args)
            .env("KUBECONFIG", &world.env.kubeconfig)
            .output()
            .expect("run keelson");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {stdout}");
        assert!(
            stdout.contains("keel.pollSchedule") && stdout.contains("61 is outside 0-59"),
            "keelson {args:?} says why: {stdout}"
        );
        if command == ["check"] {
            assert!(stdout.contains("approval required"), "{stdout}");
        }
    }
}

#[test]
fn a_namespace_selector_follows_labelled_namespaces_and_configmap_records_are_watched() {
    let world = World::new("ctl-select", "demo");
    let label = format!("keelson-test={}", world.namespace);
    // Helm's ConfigMap driver, and a namespace that only matches once it is labelled.
    let install = |release: &str| {
        let repository = format!("image.repository={}", world.image());
        let out = std::process::Command::new(&world.env.helm3)
            .args([
                "install",
                release,
                &world.chart,
                "-n",
                &world.namespace,
                "--set",
                &repository,
                "--set",
                "image.tag=1.0.0",
                "--set",
                "keel.pollSchedule=@every 1s",
            ])
            .env("KUBECONFIG", &world.env.kubeconfig)
            .env("HELM_DRIVER", "configmap")
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    install("web");
    let controller = RunningController::start(
        &world.env,
        &[
            "--namespace-selector",
            &label,
            "--driver",
            "configmap",
            "--leader-election-namespace",
            &world.namespace,
        ],
        &[],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        controller.metric("keelson_tracked_releases"),
        0.0,
        "not labelled yet"
    );
    world
        .env
        .kubectl(&["label", "namespace", &world.namespace, &label]);
    wait_for(
        Duration::from_secs(20),
        "the labelled namespace's release",
        || (controller.metric("keelson_tracked_releases") == 1.0).then_some(()),
    );
    world.push("1.1.0");
    wait_for(
        Duration::from_secs(30),
        "a revision in a ConfigMap record",
        || {
            let out = world.env.run_status(
                &world.env.kubectl,
                &[
                    "get",
                    "configmap",
                    "sh.helm.release.v1.web.v2",
                    "-n",
                    &world.namespace,
                    "-o",
                    "jsonpath={.metadata.labels.status}",
                ],
            );
            (out.stdout == b"deployed").then_some(())
        },
    );
    assert_eq!(
        world.deployment_image("web-demo"),
        format!("{}:1.1.0", world.image())
    );
    // Unlabelled again: its releases are no longer tracked.
    let key = label.split('=').next().unwrap_or_default().to_string();
    world
        .env
        .kubectl(&["label", "namespace", &world.namespace, &format!("{key}-")]);
    wait_for(
        Duration::from_secs(20),
        "the namespace's releases forgotten",
        || (controller.metric("keelson_tracked_releases") == 0.0).then_some(()),
    );
}

/// A docker-registry of the test's own whose `notifications` endpoint is the controller, as a
/// registry operator would configure it. Stopped when dropped.
struct NotifyingRegistry {
    child: std::process::Child,
    host: String,
    dir: PathBuf,
}

impl NotifyingRegistry {
    fn start(webhook: &str, token: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("keelson-notify-registry-{port}"));
        std::fs::create_dir_all(dir.join("data")).expect("registry dir");
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  debug:\n    addr: \"\"\nnotifications:\n  endpoints:\n\
             \x20   - name: keelson\n      url: {webhook}\n      headers:\n        Authorization: [\"Bearer {token}\"]\n\
             \x20     timeout: 2s\n      threshold: 3\n      backoff: 1s\n",
            dir.join("data").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry (Debian's docker-registry, installed by scripts/install-prereqs)");
        let host = format!("127.0.0.1:{port}");
        wait_for(Duration::from_secs(20), "the notifying registry", || {
            std::process::Command::new("curl")
                .args(["-sf", &format!("http://{host}/v2/")])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        });
        Self { child, host, dir }
    }
}

impl Drop for NotifyingRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_real_registrys_own_notifications_drive_an_update() {
    let env = TestEnv::get();
    let namespace = env.fresh_namespace("ctl-notify");
    let token = "notify-token";
    let controller = RunningController::start(
        &env,
        &["-n", &namespace, "--leader-election-namespace", &namespace],
        &[("KEELSON_WEBHOOK_TOKEN", token)],
    );
    let webhook = format!("http://127.0.0.1:{}/v1/webhooks/registry", controller.port);
    let registry = NotifyingRegistry::start(&webhook, token);
    let client = TestRegistry::new(registry.host.clone(), None);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(client.push_tag("team/app", "1.0.0"));
    let image = format!("image.repository={}/team/app", registry.host);
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
        "keel.trigger=default",
        "--set",
        "keel.policy=all",
    ]);
    wait_for(Duration::from_secs(20), "the release tracked", || {
        (controller.metric("keelson_tracked_releases") == 1.0).then_some(())
    });
    // The push alone: the registry sends its events (blobs, then the tagged manifest) itself.
    runtime.block_on(client.push_tag("team/app", "1.1.0"));
    wait_for(
        Duration::from_secs(30),
        "the revision the notification caused",
        || {
            let text = env.helm3(&["history", "web", "-n", &namespace, "-o", "json"]);
            let history: Value = serde_json::from_str(&text).ok()?;
            let last = history.as_array()?.last()?.clone();
            (last["status"] == "deployed" && last["description"].as_str()?.contains("1.1.0"))
                .then_some(())
        },
    );
    assert!(
        controller.metric("keelson_webhook_requests_total{endpoint=\"registry\",code=\"202\"}")
            >= 1.0,
        "{}",
        controller.log_text()
    );
    assert_eq!(
        controller.metric("keelson_checks_total{trigger=\"poll\"}"),
        0.0
    );
}

#[test]
fn check_diff_shows_the_planned_revisions_manifest_changes_and_writes_nothing() {
    let world = World::new("ctl-diff", "demo");
    world.install(&world.env.helm3.clone(), "web", &[]);
    world.push("1.1.0");
    let keelson = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .env("KUBECONFIG", &world.env.kubeconfig)
            .output()
            .expect("run keelson");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = keelson(&["check", "-n", &world.namespace, "--diff"]);
    let image = world.image();
    assert!(
        text.contains(&format!(
            "=== {}/web: {image}:1.0.0 → {image}:1.1.0\n{}, web-demo, Deployment (apps/v1) has changed:\n",
            world.namespace, world.namespace
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "-           image: \"{image}:1.0.0\"\n+           image: \"{image}:1.1.0\"\n"
        )),
        "{text}"
    );
    let json: Value =
        serde_json::from_str(&keelson(&["check", "-n", &world.namespace, "-o", "json"]))
            .expect("check -o json");
    assert!(
        json[0]["diff"]
            .as_str()
            .is_some_and(|d| d.contains("has changed:")),
        "{json}"
    );
    assert_eq!(world.history("web").len(), 1, "check writes nothing");
}

#[test]
fn updates_are_told_to_receivers_and_as_events_and_a_dead_receiver_delays_nothing() {
    let world = World::new("ctl-notify-rx", "demo");
    world.install(
        &world.env.helm3.clone(),
        "web",
        &[
            "keel.pollSchedule=@every 1s",
            "keel.notificationChannels={#deploys}",
        ],
    );
    let webhook = support::receiver::Receiver::start(200, false);
    let slack = support::receiver::Receiver::start(200, true);
    let discord = support::receiver::Receiver::start(500, false);
    let controller = world.run_controller(
        &[],
        &[
            ("KEELSON_NOTIFY_WEBHOOK_URL", &webhook.url()),
            ("KEELSON_NOTIFY_SLACK_URL", &slack.url()),
            ("KEELSON_NOTIFY_DISCORD_URL", &discord.url()),
        ],
    );
    world.push("1.1.0");
    world.wait_for_tag("web", "1.1.0", &controller);
    world.push("1.2.0");
    // The hanging Slack receiver and the failing Discord one do not hold the next update up.
    world.wait_for_tag("web", "1.2.0", &controller);
    let applied = wait_for(
        Duration::from_secs(20),
        "two update-applied messages",
        || {
            let applied: Vec<Value> = webhook
                .bodies()
                .iter()
                .filter_map(|b| serde_json::from_str::<Value>(b).ok())
                .filter(|v| v["name"] == "update-applied")
                .collect();
            (applied.len() >= 2).then_some(applied)
        },
    );
    let first = &applied[0];
    assert_eq!(first["name"], "update-applied");
    assert_eq!(first["level"], "success");
    assert_eq!(first["revision"], 2);
    assert_eq!(first["namespace"], world.namespace.as_str());
    assert_eq!(
        first["images"][0]["new"],
        format!("{}:1.1.0", world.image())
    );
    assert!(
        slack
            .bodies()
            .iter()
            .any(|b| b.contains("\"channel\":\"#deploys\"")),
        "Slack got the channel override: {:?}",
        slack.bodies()
    );
    wait_for(
        Duration::from_secs(30),
        "the failing receiver given up on",
        || {
            (controller.metric("keelson_notifications_total{sender=\"discord\",result=\"failed\"}")
                >= 1.0)
                .then_some(())
        },
    );
    assert!(
        discord.bodies().len() >= 4,
        "retried: {}",
        discord.bodies().len()
    );
    // Kubernetes Events on the records, readable with kubectl.
    let events = world.env.kubectl(&[
        "get", "events", "-n", &world.namespace, "-o",
        "jsonpath={range .items[*]}{.reason}|{.note}{.message}|{.involvedObject.name}{.regarding.name}{\"\\n\"}{end}",
    ]);
    assert!(
        events.lines().any(|l| l.starts_with("Updated|")
            && l.contains("revision 2")
            && l.ends_with("sh.helm.release.v1.web.v2")),
        "{events}"
    );
}

#[test]
fn a_failed_update_is_told_with_its_reason_and_as_a_warning_event() {
    let world = World::new("ctl-fail-tell", "hooked");
    world.install(
        &world.env.helm3.clone(),
        "job",
        &["jobHook=true", "keel.pollSchedule=@every 1s"],
    );
    let receiver = support::receiver::Receiver::start(200, false);
    // The post-upgrade hook Job never runs (no kubelet): the update fails at the hook timeout.
    let controller = world.run_controller(
        &["--run-hooks", "--hook-timeout", "2"],
        &[("KEELSON_NOTIFY_WEBHOOK_URL", &receiver.url())],
    );
    world.push("1.1.0");
    let failed = wait_for(Duration::from_secs(40), "the failure message", || {
        receiver
            .bodies()
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .find(|v| v["name"] == "update-failed")
    });
    assert_eq!(failed["level"], "error");
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{failed}"
    );
    let events = world.env.kubectl(&[
        "get",
        "events",
        "-n",
        &world.namespace,
        "-o",
        "jsonpath={range .items[*]}{.type}|{.reason}{\"\\n\"}{end}",
    ]);
    assert!(
        events.lines().any(|l| l == "Warning|UpdateFailed"),
        "{events}"
    );
    // The release keeps failing on every poll for the same reason: receivers hear it once
    // (again only after an hour, a success or another reason).
    std::thread::sleep(Duration::from_secs(6));
    let failures: Vec<Value> = receiver
        .bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|v| v["name"] == "update-failed")
        .collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    drop(controller);
}

/// Secret GETs of `secret` in `namespace` by keelson since `mark` (audit-log lines).
fn secret_reads(audit: &Path, mark: usize, namespace: &str, secret: &str) -> usize {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.lines()
        .skip(mark)
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| {
            entry["stage"] == "ResponseComplete"
                && entry["verb"] == "get"
                && entry["objectRef"]["resource"] == "secrets"
                && entry["objectRef"]["namespace"] == namespace
                && entry["objectRef"]["name"] == secret
                && entry["userAgent"]
                    .as_str()
                    .is_some_and(|ua| ua.starts_with("keelson/"))
        })
        .count()
}

/// A release naming an `imagePullSecret`, planned every second: the Secret is read once and
/// its registry client reused, not read again on every plan.
#[test]
fn a_pull_secret_is_read_once_not_on_every_plan() {
    let world = World::new("ctl-pullsecret", "demo");
    world.env.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        &world.namespace,
        "--docker-server=registry.invalid",
        "--docker-username=someone",
        "--docker-password=secret",
    ]);
    world.install(
        &world.env.helm3.clone(),
        "web",
        &[
            "keel.pollSchedule=@every 1s",
            // `--set` on a list index replaces the chart's list: the whole entry.
            "keel.images[0].repository=image.repository",
            "keel.images[0].tag=image.tag",
            "keel.images[0].imagePullSecret=image.pullSecret",
            "image.pullSecret=regcred",
        ],
    );
    let audit = Path::new(&support::env_var("KEELSON_TESTENV_DIR")).join("logs/audit.log");
    let mark = std::fs::read_to_string(&audit)
        .unwrap_or_else(|err| panic!("cannot read the audit log {}: {err}", audit.display()))
        .lines()
        .count();
    let controller = world.run_controller(&[], &[]);
    // Plans run every second; the release moves on one of them.
    world.push("1.1.0");
    world.wait_for_tag("web", "1.1.0", &controller);
    std::thread::sleep(Duration::from_secs(5));
    let reads = secret_reads(&audit, mark, &world.namespace, "regcred");
    assert!(
        (1..=2).contains(&reads),
        "{reads} reads of the pull secret in about 6 s of plans every second"
    );
    drop(controller);
}
