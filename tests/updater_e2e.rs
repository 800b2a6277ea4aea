//! End-to-end updater tests in the real environment: helm 3 and helm 4 releases, the real
//! registry, `keelson reconcile --once` as a user runs it, and helm reading the result.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::TestEnv;
use support::registry::TestRegistry;

/// Copies a fixture chart to a fresh directory with the registry address of the env in its
/// values.yaml, so the images are chart defaults (not user values), as in real charts.
fn chart_with_registry(name: &str, registry: &str) -> PathBuf {
    let source = PathBuf::from(support::fixture_chart(name));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let target =
        std::env::temp_dir().join(format!("keelson-e2e-{name}-{}-{nanos}", std::process::id()));
    support::copy_dir(&source, &target);
    for values in ["values.yaml", "charts/worker/values.yaml"] {
        let path = target.join(values);
        if let Ok(text) = std::fs::read_to_string(&path) {
            std::fs::write(&path, text.replace("127.0.0.1:5000", registry)).expect("write values");
        }
    }
    target
}

fn keelson(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .output()
        .expect("run keelson")
}

fn reconcile(env: &TestEnv, namespace: &str) -> String {
    let out = keelson(env, &["reconcile", "--once", "-n", namespace]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keelson reconcile failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn history(env: &TestEnv, helm: &str, release: &str, namespace: &str) -> Vec<Value> {
    let text = env.run(helm, &["history", release, "-n", namespace, "-o", "json"]);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("helm history is not a JSON array: {text}"))
}

fn image_of(env: &TestEnv, namespace: &str, deployment: &str) -> String {
    env.kubectl(&[
        "get",
        "deployment",
        deployment,
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

fn deployed_count(history: &[Value]) -> usize {
    history.iter().filter(|r| r["status"] == "deployed").count()
}

/// One test's world: a fresh namespace, its own repository (with tag 1.0.0 pushed) in the
/// anonymous registry, and a copy of a fixture chart pointing at that registry.
struct Scenario {
    env: TestEnv,
    registry: TestRegistry,
    runtime: tokio::runtime::Runtime,
    namespace: String,
    repository: String,
    chart: String,
}

impl Scenario {
    fn new(prefix: &str, chart: &str) -> Self {
        let env = TestEnv::get();
        let registry = TestRegistry::anonymous();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let namespace = env.fresh_namespace(prefix);
        let repository = format!("{namespace}/app");
        runtime.block_on(registry.push_tag(&repository, "1.0.0"));
        let chart = chart_with_registry(chart, &registry.host)
            .display()
            .to_string();
        Self {
            env,
            registry,
            runtime,
            namespace,
            repository,
            chart,
        }
    }

    /// `image.repository=<this test's repository>` for `--set`.
    fn image_value(&self) -> String {
        format!(
            "image.repository={}/{}",
            self.registry.host, self.repository
        )
    }

    /// The full image reference of this test's repository at `tag`.
    fn image(&self, tag: &str) -> String {
        format!("{}/{}:{tag}", self.registry.host, self.repository)
    }

    /// Installs `release` with `helm` at image tag 1.0.0.
    fn install(&self, helm: &str, release: &str) {
        let image = self.image_value();
        self.env.run(
            helm,
            &[
                "install",
                release,
                &self.chart,
                "-n",
                &self.namespace,
                "--set",
                &image,
                "--set",
                "image.tag=1.0.0",
            ],
        );
    }

    fn push(&self, tag: &str) {
        self.runtime
            .block_on(self.registry.push_tag(&self.repository, tag));
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.env.run_status(
            &self.env.kubectl,
            &["delete", "namespace", &self.namespace, "--wait=false"],
        );
    }
}

/// The classic Keel flow, then a rollback that sticks, then a newer tag that moves on.
fn classic_flow(helm_of: fn(&TestEnv) -> String, label: &str) {
    let env = TestEnv::get();
    let helm = helm_of(&env);
    let registry = TestRegistry::anonymous();
    let namespace = env.fresh_namespace(&format!("e2e-classic-{label}"));
    let repository = format!("{namespace}/hwchiu/netutils");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(registry.push_tag(&repository, "3.4.5"));

    let chart = chart_with_registry("netutils", &registry.host);
    let chart = chart.display().to_string();
    // The repository default names the shared path; point it at this test's repository.
    env.run(
        &helm,
        &[
            "install",
            "ithome",
            &chart,
            "-n",
            &namespace,
            "--set",
            &format!("image.repository={}/{repository}", registry.host),
        ],
    );
    runtime.block_on(registry.push_tag(&repository, "4.5.6"));

    let output = reconcile(&env, &namespace);
    assert!(output.contains("revision 2 deployed"), "{output}");
    let revisions = history(&env, &helm, "ithome", &namespace);
    assert_eq!(revisions.len(), 2, "{revisions:?}");
    assert_eq!(revisions[0]["status"], "superseded");
    assert_eq!(revisions[1]["status"], "deployed");
    let description = revisions[1]["description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with("keelson: image.tag 3.4.5 → 4.5.6 (policy all"),
        "{description}"
    );
    let image = format!("{}/{repository}:4.5.6", registry.host);
    assert_eq!(image_of(&env, &namespace, "ithome-netutils"), image);
    let values = env.run(
        &helm,
        &["get", "values", "ithome", "-n", &namespace, "-o", "json"],
    );
    let values: Value = serde_json::from_str(&values).expect("values JSON");
    assert_eq!(values["image"]["tag"], "4.5.6", "{values}");

    // Byte for byte what helm writes: a twin release in another namespace, upgraded by helm
    // itself to the same tag, stores the same manifest and the same user values.
    assert!(description.ends_with("full render)"), "{description}");
    let twin = env.fresh_namespace(&format!("e2e-twin-{label}"));
    env.run(
        &helm,
        &[
            "install",
            "ithome",
            &chart,
            "-n",
            &twin,
            "--set",
            &format!("image.repository={}/{repository}", registry.host),
        ],
    );
    env.run(
        &helm,
        &[
            "upgrade",
            "ithome",
            &chart,
            "-n",
            &twin,
            "--reuse-values",
            "--set",
            "image.tag=4.5.6",
        ],
    );
    assert_eq!(
        env.run(&helm, &["get", "manifest", "ithome", "-n", &namespace]),
        env.run(&helm, &["get", "manifest", "ithome", "-n", &twin])
    );
    assert_eq!(
        env.run(
            &helm,
            &["get", "values", "ithome", "-n", &namespace, "-o", "json"]
        ),
        env.run(
            &helm,
            &["get", "values", "ithome", "-n", &twin, "-o", "json"]
        )
    );
    env.kubectl(&["delete", "namespace", &twin, "--wait=false"]);

    // The deployment controller keeps both ReplicaSets.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let sets = env.kubectl(&[
            "get",
            "rs",
            "-n",
            &namespace,
            "-o",
            "jsonpath={.items[*].spec.template.spec.containers[0].image}",
        ]);
        if sets.contains(":3.4.5") && sets.contains(":4.5.6") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ReplicaSets: {sets}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }

    // A rollback sticks: the rolled-back tag is not applied again.
    env.run(&helm, &["rollback", "ithome", "1", "-n", &namespace]);
    assert_eq!(
        image_of(&env, &namespace, "ithome-netutils"),
        format!("{}/{repository}:3.4.5", registry.host)
    );
    let output = reconcile(&env, &namespace);
    assert!(output.contains("rolled back"), "{output}");
    assert_eq!(history(&env, &helm, "ithome", &namespace).len(), 3);
    let check = keelson(&env, &["check", "-n", &namespace, "-o", "json"]);
    let plans: Value = serde_json::from_slice(&check.stdout).expect("check JSON");
    assert_eq!(plans[0]["target"], Value::Null, "{plans}");
    assert!(
        plans[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("4.5.6"),
        "{plans}"
    );

    // Something strictly newer moves the release forward.
    runtime.block_on(registry.push_tag(&repository, "4.5.7"));
    let output = reconcile(&env, &namespace);
    assert!(output.contains("revision 4 deployed"), "{output}");
    assert_eq!(
        image_of(&env, &namespace, "ithome-netutils"),
        format!("{}/{repository}:4.5.7", registry.host)
    );
    let revisions = history(&env, &helm, "ithome", &namespace);
    assert_eq!(deployed_count(&revisions), 1, "{revisions:?}");

    // Reconciling again with no new tag writes nothing.
    let output = reconcile(&env, &namespace);
    assert!(output.contains("up to date"), "{output}");
    assert_eq!(history(&env, &helm, "ithome", &namespace).len(), 4);

    // helm keeps working on top of keelson's revisions.
    env.run(
        &helm,
        &[
            "upgrade",
            "ithome",
            &chart,
            "-n",
            &namespace,
            "--reuse-values",
            "--set",
            "replicaCount=2",
        ],
    );
    env.run(&helm, &["rollback", "ithome", "4", "-n", &namespace]);
    let revisions = history(&env, &helm, "ithome", &namespace);
    assert_eq!(revisions.len(), 6, "{revisions:?}");
    assert_eq!(deployed_count(&revisions), 1, "{revisions:?}");
    assert_eq!(
        image_of(&env, &namespace, "ithome-netutils"),
        format!("{}/{repository}:4.5.7", registry.host)
    );
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn classic_flow_helm3() {
    classic_flow(|env| env.helm3.clone(), "h3");
}

#[test]
fn classic_flow_helm4() {
    classic_flow(|env| env.helm4.clone(), "h4");
}

#[test]
fn minor_and_patch_hold_back_a_major_bump_and_scaled_replicas_survive() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let chart = chart_with_registry("netutils", &registry.host)
        .display()
        .to_string();
    for (policy, expected) in [("minor", "1.3.0"), ("patch", "1.2.4")] {
        let namespace = env.fresh_namespace(&format!("e2e-{policy}"));
        let repository = format!("{namespace}/app");
        for tag in ["1.2.3", "1.2.4", "1.3.0", "2.0.0"] {
            runtime.block_on(registry.push_tag(&repository, tag));
        }
        env.helm3(&[
            "install",
            "app",
            &chart,
            "-n",
            &namespace,
            "--set",
            &format!("image.repository={}/{repository}", registry.host),
            "--set",
            "image.tag=1.2.3",
            "--set",
            &format!("keel.policy={policy}"),
        ]);
        env.kubectl(&[
            "scale",
            "deployment",
            "app-netutils",
            "-n",
            &namespace,
            "--replicas=3",
        ]);
        reconcile(&env, &namespace);
        assert_eq!(
            image_of(&env, &namespace, "app-netutils"),
            format!("{}/{repository}:{expected}", registry.host),
            "policy {policy}"
        );
        let replicas = env.kubectl(&[
            "get",
            "deployment",
            "app-netutils",
            "-n",
            &namespace,
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        assert_eq!(
            replicas, "3",
            "kubectl scale survives keelson's update (policy {policy})"
        );
        env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    }
}

#[test]
fn force_with_match_tag_follows_a_repushed_tag_into_the_digest_value() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("e2e-force");
    let repository = format!("{namespace}/app");
    let first = runtime.block_on(registry.push_tag(&repository, "stable"));
    let chart = chart_with_registry("netutils", &registry.host)
        .display()
        .to_string();
    env.helm4(&[
        "install",
        "app",
        &chart,
        "-n",
        &namespace,
        "--set",
        &format!("image.repository={}/{repository}", registry.host),
        "--set",
        "image.tag=stable",
        "--set",
        &format!("image.digest={first}"),
        "--set",
        "keel.policy=force",
        "--set",
        "keel.matchTag=true",
        "--set",
        "keel.images[0].repository=image.repository",
        "--set",
        "keel.images[0].tag=image.tag",
        "--set",
        "keel.images[0].digest=image.digest",
    ]);
    let output = reconcile(&env, &namespace);
    assert!(
        output.contains("up to date"),
        "same digest, nothing to do: {output}"
    );

    let second = runtime.block_on(registry.push_tag(&repository, "stable"));
    assert_ne!(first, second);
    let output = reconcile(&env, &namespace);
    assert!(output.contains("revision 2 deployed"), "{output}");
    assert_eq!(
        image_of(&env, &namespace, "app-netutils"),
        format!("{}/{repository}:stable@{second}", registry.host)
    );
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn a_chart_with_a_subchart_is_updated_in_patch_mode() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("e2e-subchart");
    let chart = chart_with_registry("umbrella", &registry.host)
        .display()
        .to_string();
    let web = format!("{namespace}/umbrella/web");
    let worker = format!("{namespace}/umbrella/worker");
    for repository in [&web, &worker] {
        runtime.block_on(registry.push_tag(repository, "1.0.0"));
        runtime.block_on(registry.push_tag(repository, "1.1.0"));
    }
    env.helm3(&[
        "install",
        "mix",
        &chart,
        "-n",
        &namespace,
        "--set",
        &format!("image.repository={}/{web}", registry.host),
        "--set",
        &format!("worker.image.repository={}/{worker}", registry.host),
    ]);
    let output = reconcile(&env, &namespace);
    assert!(
        output.contains("revision 2 deployed") && output.contains("patch mode"),
        "{output}"
    );
    assert_eq!(
        image_of(&env, &namespace, "mix-web"),
        format!("{}/{web}:1.1.0", registry.host)
    );
    assert_eq!(
        image_of(&env, &namespace, "mix-worker"),
        format!("{}/{worker}:1.1.0", registry.host)
    );
    let manifest = env.helm3(&["get", "manifest", "mix", "-n", &namespace]);
    assert!(
        manifest.contains(&format!("image: \"{}/{worker}:1.1.0\"", registry.host)),
        "{manifest}"
    );
    // helm can upgrade on top of the patched revision.
    env.helm3(&["upgrade", "mix", &chart, "-n", &namespace, "--reuse-values"]);
    assert_eq!(
        image_of(&env, &namespace, "mix-worker"),
        format!("{}/{worker}:1.1.0", registry.host)
    );
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn an_unreachable_registry_writes_nothing() {
    let env = TestEnv::get();
    let namespace = env.fresh_namespace("e2e-down");
    let chart = chart_with_registry("netutils", "127.0.0.1:9")
        .display()
        .to_string();
    env.helm3(&["install", "app", &chart, "-n", &namespace]);
    let out = keelson(&env, &["reconcile", "--once", "-n", &namespace]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cannot list tags"), "{stdout}");
    assert_eq!(history(&env, &env.helm3, "app", &namespace).len(), 1);
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn a_pending_helm_upgrade_makes_keelson_back_off_until_the_next_cycle() {
    let world = Scenario::new("e2e-busy", "netutils");
    let (env, namespace, chart) = (&world.env, &world.namespace, &world.chart);
    world.install(&env.helm3, "app");
    world.push("1.1.0");

    // Pods never become ready without a kubelet, so `--wait` keeps helm's revision pending.
    let mut helm = Command::new(&env.helm3)
        .args([
            "upgrade",
            "app",
            chart,
            "-n",
            namespace,
            "--reuse-values",
            "--set",
            "replicaCount=2",
            "--wait",
            "--timeout",
            "15s",
        ])
        .env("KUBECONFIG", &env.kubeconfig)
        .spawn()
        .expect("start helm upgrade");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while history(env, &env.helm3, "app", namespace).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "helm upgrade never created revision 2"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = reconcile(env, namespace);
    assert!(
        output.contains("another operation is in progress"),
        "{output}"
    );
    let _ = helm.wait();
    let revisions = history(env, &env.helm3, "app", namespace);
    assert_eq!(
        revisions.len(),
        2,
        "keelson wrote nothing while helm was busy: {revisions:?}"
    );

    // Next cycle: helm's upgrade has ended (failed: pods never ready); keelson moves on.
    let output = reconcile(env, namespace);
    assert!(output.contains("revision 3 deployed"), "{output}");
    assert_eq!(
        image_of(env, namespace, "app-netutils"),
        world.image("1.1.0")
    );
}

/// A kubeconfig for a service account that may write Helm's Secrets but not patch
/// Deployments, so the apiserver itself rejects keelson's apply.
fn restricted_kubeconfig(env: &TestEnv, namespace: &str) -> PathBuf {
    support::restricted_kubeconfig(
        env,
        namespace,
        r#"  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  - apiGroups: ["apps"]
    resources: ["deployments"]
    verbs: ["get", "list"]
  # The Lease `reconcile --once` holds while it writes, in the context's namespace.
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "patch", "delete"]
"#,
    )
}

#[test]
fn an_apply_the_apiserver_rejects_ends_failed_and_the_release_stays_usable() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("e2e-rejected");
    let repository = format!("{namespace}/app");
    runtime.block_on(registry.push_tag(&repository, "1.0.0"));
    let chart = chart_with_registry("netutils", &registry.host)
        .display()
        .to_string();
    let image = format!("image.repository={}/{repository}", registry.host);
    env.helm3(&[
        "install",
        "app",
        &chart,
        "-n",
        &namespace,
        "--set",
        &image,
        "--set",
        "image.tag=1.0.0",
    ]);
    runtime.block_on(registry.push_tag(&repository, "1.1.0"));

    let kubeconfig = restricted_kubeconfig(&env, &namespace);
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["reconcile", "--once", "-n", &namespace])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("run keelson");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a failed release makes reconcile exit non-zero: {stdout}"
    );
    assert!(stdout.contains("revision 2 failed"), "{stdout}");
    assert!(
        stdout.contains("forbidden") || stdout.contains("Forbidden"),
        "{stdout}"
    );
    // Issue 13 item 3: the apiserver's message and code once, never kube's debug dump.
    assert!(stdout.contains("(403 Forbidden)"), "{stdout}");
    for dump in ["ApiError", "Status {", "Some(Failure)"] {
        assert!(!stdout.contains(dump), "{stdout}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(dump));
    }

    let revisions = history(&env, &env.helm3, "app", &namespace);
    assert_eq!(revisions[0]["status"], "deployed", "{revisions:?}");
    assert_eq!(revisions[1]["status"], "failed", "{revisions:?}");
    assert!(
        revisions[1]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("keelson"),
        "{revisions:?}"
    );
    let description = revisions[1]["description"].as_str().unwrap_or_default();
    assert!(
        !description.contains("ApiError") && !description.contains("Status {"),
        "{description}"
    );
    assert_eq!(
        image_of(&env, &namespace, "app-netutils"),
        format!("{}/{repository}:1.0.0", registry.host)
    );

    // The next run does not try the same move again at once (each attempt would be one more
    // failed revision): it says when it will.
    let again = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(["reconcile", "--once", "-n", &namespace])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("run keelson");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, stdout) = again(&[]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "the move to {}/{repository}:1.1.0 failed once (revision 2: ",
            registry.host
        )) && stdout.contains("next attempt at "),
        "{stdout}"
    );
    assert_eq!(history(&env, &env.helm3, "app", &namespace).len(), 2);
    // Asked to, it tries again now.
    let (ok, stdout) = again(&["--retry-failed"]);
    assert!(!ok && stdout.contains("revision 3 failed"), "{stdout}");
    let revisions = history(&env, &env.helm3, "app", &namespace);
    assert_eq!(revisions.len(), 3, "{revisions:?}");
    assert_eq!(revisions[2]["status"], "failed", "{revisions:?}");
    // helm upgrades on top of the failed revision as usual.
    env.helm3(&["upgrade", "app", &chart, "-n", &namespace, "--reuse-values"]);
    assert_eq!(
        deployed_count(&history(&env, &env.helm3, "app", &namespace)),
        1
    );
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[tokio::test]
async fn a_pending_record_left_by_a_crash_is_repaired_at_the_next_run() {
    use keelson::storage::{Driver, DriverKind, RevisionChange, Storage};
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let namespace = env.fresh_namespace("e2e-crash");
    let repository = format!("{namespace}/app");
    registry.push_tag(&repository, "1.0.0").await;
    let chart = chart_with_registry("netutils", &registry.host)
        .display()
        .to_string();
    let image = format!("image.repository={}/{repository}", registry.host);
    for release in ["applied", "unapplied"] {
        env.helm3(&[
            "install",
            release,
            &chart,
            "-n",
            &namespace,
            "--set",
            &image,
            "--set",
            "image.tag=1.0.0",
        ]);
    }
    registry.push_tag(&repository, "1.1.0").await;

    keelson::cluster::install_crypto_provider();
    let client = keelson::cluster::ClusterArgs {
        kubeconfig: Some(env.kubeconfig.clone().into()),
        context: None,
    }
    .client()
    .await
    .expect("client");
    let storage = Storage::new(Driver::new(client, DriverKind::Secret));
    // What a crash between "pending record written" and "apply finished" leaves behind.
    for release in ["applied", "unapplied"] {
        let deployed = storage
            .deployed(&namespace, release)
            .await
            .expect("deployed revision");
        let mut config = deployed.release.config();
        config.insert("image".into(), serde_json::json!({"repository": format!("{}/{repository}", registry.host), "tag": "1.1.0"}));
        let manifest = deployed
            .release
            .manifest
            .clone()
            .unwrap_or_default()
            .replace(":1.0.0", ":1.1.0");
        storage
            .begin_upgrade(
                &namespace,
                release,
                RevisionChange {
                    config,
                    manifest,
                    description: "keelson: test".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("pending revision");
    }
    // For one release the apply had gone through before the crash.
    let new_image = format!("netutils={}/{repository}:1.1.0", registry.host);
    env.kubectl(&[
        "set",
        "image",
        "deployment/applied-netutils",
        &new_image,
        "-n",
        &namespace,
    ]);

    let output = reconcile(&env, &namespace);
    assert!(
        output.contains("applied: repaired pending revision 2 (now deployed)"),
        "{output}"
    );
    assert!(
        output.contains("unapplied: repaired pending revision 2 (now failed)"),
        "{output}"
    );
    let applied = history(&env, &env.helm3, "applied", &namespace);
    assert_eq!(
        (applied[0]["status"].as_str(), applied[1]["status"].as_str()),
        (Some("superseded"), Some("deployed"))
    );

    // The next run updates the release whose revision failed, and helm sees no pending state.
    let output = reconcile(&env, &namespace);
    assert!(
        output.contains("unapplied: revision 3 deployed"),
        "{output}"
    );
    env.helm3(&[
        "upgrade",
        "unapplied",
        &chart,
        "-n",
        &namespace,
        "--reuse-values",
    ]);
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn hooks_run_only_when_asked_and_a_hook_that_never_finishes_fails_the_revision() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("e2e-hooks");
    let repository = format!("{namespace}/app");
    runtime.block_on(registry.push_tag(&repository, "1.0.0"));
    let chart = chart_with_registry("hooked", &registry.host)
        .display()
        .to_string();
    let image = format!("image.repository={}/{repository}", registry.host);
    env.helm3(&[
        "install", "quiet", &chart, "-n", &namespace, "--set", &image,
    ]);
    env.helm3(&["install", "loud", &chart, "-n", &namespace, "--set", &image]);
    env.helm3(&[
        "install",
        "stuck",
        &chart,
        "-n",
        &namespace,
        "--set",
        &image,
        "--set",
        "jobHook=true",
    ]);
    runtime.block_on(registry.push_tag(&repository, "1.1.0"));
    let tag_of = |release: &str| {
        env.kubectl(&[
            "get",
            "configmap",
            &format!("{release}-migrated"),
            "-n",
            &namespace,
            "-o",
            "jsonpath={.data.tag}",
        ])
    };

    // Default: no hooks run; the hook's resource stays as the install left it.
    let out = keelson(
        &env,
        &["reconcile", "--once", "-n", &namespace, "-l", "name=quiet"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("quiet: revision 2 deployed"),
        "{stdout}"
    );
    assert_eq!(tag_of("quiet"), "1.0.0");

    // --run-hooks: the pre-upgrade hook is recreated from the new revision.
    let out = keelson(
        &env,
        &[
            "reconcile",
            "--once",
            "-n",
            &namespace,
            "-l",
            "name=loud",
            "--run-hooks",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("loud: revision 2 deployed"),
        "{stdout}"
    );
    assert_eq!(tag_of("loud"), "1.1.0");

    // A Job hook never completes without a kubelet: the revision fails after the timeout.
    let out = keelson(
        &env,
        &[
            "reconcile",
            "--once",
            "-n",
            &namespace,
            "-l",
            "name=stuck",
            "--run-hooks",
            "--hook-timeout",
            "2",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("stuck: revision 2 failed") && stdout.contains("did not finish within 2s"),
        "{stdout}"
    );
    let revisions = history(&env, &env.helm3, "stuck", &namespace);
    assert_eq!(revisions[1]["status"], "failed", "{revisions:?}");
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[test]
fn history_max_prunes_the_oldest_revisions_but_never_the_deployed_one() {
    let world = Scenario::new("e2e-history", "netutils");
    let env = &world.env;
    world.install(&env.helm4, "app");
    for tag in ["1.0.1", "1.0.2", "1.0.3"] {
        world.push(tag);
        let out = keelson(
            env,
            &[
                "reconcile",
                "--once",
                "-n",
                &world.namespace,
                "--history-max",
                "2",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let revisions = history(env, &env.helm4, "app", &world.namespace);
    let versions: Vec<i64> = revisions
        .iter()
        .filter_map(|r| r["revision"].as_i64())
        .collect();
    assert_eq!(versions, vec![3, 4], "{revisions:?}");
    assert_eq!(revisions[1]["status"], "deployed");
    assert_eq!(
        image_of(env, &world.namespace, "app-netutils"),
        world.image("1.0.3")
    );
}

#[test]
fn an_image_pull_secret_in_the_release_namespace_authenticates_the_registry() {
    let env = TestEnv::get();
    let registry = TestRegistry::with_basic_auth();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("e2e-pullsecret");
    let repository = format!("{namespace}/private");
    runtime.block_on(registry.push_tag(&repository, "1.0.0"));
    runtime.block_on(registry.push_tag(&repository, "1.1.0"));
    let (user, password) = registry
        .credentials
        .clone()
        .expect("auth registry credentials");
    env.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        &namespace,
        &format!("--docker-server={}", registry.host),
        &format!("--docker-username={user}"),
        &format!("--docker-password={password}"),
    ]);
    let chart = chart_with_registry("netutils", &registry.host)
        .display()
        .to_string();
    for (release, secret) in [("private", "regcred"), ("missing", "nosuch")] {
        env.helm3(&[
            "install",
            release,
            &chart,
            "-n",
            &namespace,
            "--set",
            &format!("image.repository={}/{repository}", registry.host),
            "--set",
            "image.tag=1.0.0",
            "--set",
            &format!("image.pullSecret={secret}"),
            "--set",
            "keel.images[0].repository=image.repository",
            "--set",
            "keel.images[0].tag=image.tag",
            "--set",
            "keel.images[0].imagePullSecret=image.pullSecret",
        ]);
    }
    let out = keelson(&env, &["reconcile", "--once", "-n", &namespace]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("private: revision 2 deployed"), "{stdout}");
    assert!(
        stdout.contains(&format!("cannot read pull secret {namespace}/nosuch")),
        "{stdout}"
    );
    assert_eq!(
        image_of(&env, &namespace, "private-netutils"),
        format!("{}/{repository}:1.1.0", registry.host)
    );
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

/// Issue 13 items 1 and 2 end to end: a release whose Deployment mounts a ConfigMap with
/// `defaultMode: 0755` (and `on`/`no` booleans) is updated, helm 4 (server-side apply) and
/// helm 3 (patches) alike; then the ConfigMap and Service are deleted by hand and the next
/// update re-creates them instead of failing every later revision.
#[test]
fn yaml11_releases_update_and_objects_deleted_by_hand_come_back() {
    for (label, helm_of) in [
        (
            "helm4",
            (|env: &TestEnv| env.helm4.clone()) as fn(&TestEnv) -> String,
        ),
        ("helm3", |env: &TestEnv| env.helm3.clone()),
    ] {
        let scenario = Scenario::new(&format!("e2e-yaml11-{label}"), "yaml11");
        let env = &scenario.env;
        let helm = helm_of(env);
        scenario.install(&helm, "app");
        scenario.push("1.1.0");
        let output = reconcile(env, &scenario.namespace);
        assert!(output.contains("revision 2 deployed"), "{label}: {output}");
        assert_eq!(
            image_of(env, &scenario.namespace, "app-app"),
            scenario.image("1.1.0")
        );
        let mode = env.kubectl(&[
            "get",
            "deployment",
            "app-app",
            "-n",
            &scenario.namespace,
            "-o",
            "jsonpath={.spec.template.spec.volumes[0].configMap.defaultMode}",
        ]);
        assert_eq!(mode, "493", "{label}");

        env.kubectl(&[
            "delete",
            "configmap",
            "app-scripts",
            "-n",
            &scenario.namespace,
        ]);
        env.kubectl(&["delete", "service", "app-svc", "-n", &scenario.namespace]);
        scenario.push("1.2.0");
        let output = reconcile(env, &scenario.namespace);
        assert!(output.contains("revision 3 deployed"), "{label}: {output}");
        for object in ["configmap/app-scripts", "service/app-svc"] {
            assert!(
                env.run_status(&env.kubectl, &["get", object, "-n", &scenario.namespace])
                    .status
                    .success(),
                "{label}: {object} was not re-created"
            );
        }
        let revisions = history(env, &helm, "app", &scenario.namespace);
        assert_eq!(deployed_count(&revisions), 1, "{label}: {revisions:?}");
        assert_eq!(revisions[2]["status"], "deployed", "{label}: {revisions:?}");
        // helm upgrades on top of keelson's revision.
        env.run(
            &helm,
            &[
                "upgrade",
                "app",
                &scenario.chart,
                "-n",
                &scenario.namespace,
                "--reuse-values",
            ],
        );
    }
}

/// Issue 13 item 9 end to end: a chart whose template runs 25 million `range` iterations
/// (helm renders it in seconds; keelson's budget stops the re-render) is still updated, in
/// patch mode, and the release after it in the same cycle too.
#[test]
fn a_chart_over_the_render_budget_fails_only_its_own_render() {
    let scenario = Scenario::new("e2e-budget", "yaml11");
    let env = &scenario.env;
    let heavy = PathBuf::from(&scenario.chart).join("templates/heavy.yaml");
    std::fs::write(
        &heavy,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-heavy\ndata:\n  n: \"{{ range until 5000 }}{{ range until 5000 }}{{ end }}{{ end }}done\"\n",
    )
    .expect("write the heavy template");
    scenario.install(&env.helm3, "heavy");
    let light = chart_with_registry("yaml11", &scenario.registry.host)
        .display()
        .to_string();
    env.helm3(&[
        "install",
        "light",
        &light,
        "-n",
        &scenario.namespace,
        "--set",
        &scenario.image_value(),
        "--set",
        "image.tag=1.0.0",
    ]);
    scenario.push("1.1.0");
    let output = reconcile(env, &scenario.namespace);
    assert_eq!(
        output.matches("revision 2 deployed").count(),
        2,
        "both releases move on: {output}"
    );
    for deployment in ["heavy-app", "light-app"] {
        assert_eq!(
            image_of(env, &scenario.namespace, deployment),
            scenario.image("1.1.0")
        );
    }
    let heavy_history = history(env, &env.helm3, "heavy", &scenario.namespace);
    let description = heavy_history[1]["description"].as_str().unwrap_or_default();
    assert!(
        description.ends_with("patch mode)"),
        "the heavy chart cannot be re-rendered within the budget: {description}"
    );
    // `keelson template` says why.
    let out = keelson(env, &["template", "heavy", &scenario.chart]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("render budget exceeded: more than 20000000 steps"),
        "{stderr}"
    );
}

/// `keelson check -o json -n NS` as JSON.
fn check_json(env: &TestEnv, namespace: &str) -> Value {
    let out = keelson(env, &["check", "-n", namespace, "-o", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "check -o json: {err}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A chart that keeps its generated password through `lookup` (bitnami's pattern) and reads a
/// cluster-scoped object and a list: keelson answers `lookup` from the cluster as `helm upgrade`
/// does, so the deployed revision re-renders byte for byte and the update is a full render —
/// the same manifest helm's own upgrade then writes. A lookup into another namespace is refused
/// (keelson reads more than the release's owner may): patch mode, with the reason.
#[test]
fn lookup_is_answered_from_the_cluster_in_the_release_namespace_only() {
    for (label, helm_of) in [
        (
            "helm3",
            (|env: &TestEnv| env.helm3.clone()) as fn(&TestEnv) -> String,
        ),
        ("helm4", |env: &TestEnv| env.helm4.clone()),
    ] {
        let scenario = Scenario::new(&format!("e2e-lookup-{label}"), "lookup");
        let env = &scenario.env;
        let helm = helm_of(env);
        let namespace = scenario.namespace.clone();
        // The chart lists the namespace's ServiceAccounts: let the default one exist first.
        support::controller::wait_for(
            Duration::from_secs(30),
            "the default ServiceAccount",
            || {
                env.run_status(&env.kubectl, &["get", "sa", "default", "-n", &namespace])
                    .status
                    .success()
                    .then_some(())
            },
        );
        scenario.install(&helm, "app");
        scenario.push("1.1.0");

        let plans = check_json(env, &namespace);
        let plan = &plans[0];
        assert_eq!(plan["mode"], "full render", "{label}: {plans}");
        let out = reconcile(env, &namespace);
        assert!(out.contains("revision 2 deployed"), "{label}: {out}");
        let manifest = |revision: &str| {
            env.run(
                &helm,
                &[
                    "get",
                    "manifest",
                    "app",
                    "-n",
                    &namespace,
                    "--revision",
                    revision,
                ],
            )
        };
        let (first, second) = (manifest("1"), manifest("2"));
        let password = |text: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with("password:"))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no password line: {text}"))
        };
        assert_eq!(
            password(&first),
            password(&second),
            "{label}: kept through lookup"
        );
        assert!(
            second.contains("accounts: \"ServiceAccount/default \""),
            "{second}"
        );
        assert!(second.contains("namespace-phase: \"Active\""), "{second}");
        assert!(second.contains(&scenario.image("1.1.0")), "{second}");
        // helm's own upgrade with the same values (lookups included) writes the same manifest.
        env.run(
            &helm,
            &[
                "upgrade",
                "app",
                &scenario.chart,
                "-n",
                &namespace,
                "--reuse-values",
                "--set",
                "image.tag=1.1.0",
            ],
        );
        assert_eq!(
            manifest("3"),
            second,
            "{label}: keelson's revision vs helm's upgrade"
        );
    }

    let scenario = Scenario::new("e2e-lookup-peek", "lookup");
    let env = &scenario.env;
    env.run(
        &env.helm3,
        &[
            "install",
            "peek",
            &scenario.chart,
            "-n",
            &scenario.namespace,
            "--set",
            &scenario.image_value(),
            "--set",
            "image.tag=1.0.0",
            "--set",
            "peekNamespace=default",
        ],
    );
    scenario.push("1.1.0");
    let plans = check_json(env, &scenario.namespace);
    assert_eq!(plans[0]["mode"], "patch mode", "{plans}");
    assert!(
        plans[0]["mode_reason"].as_str().is_some_and(|r| r.contains(&format!(
            "keelson answers lookup of namespaced objects only in the release's namespace \"{}\", not namespace \"default\"",
            scenario.namespace
        ))),
        "{plans}"
    );
}
