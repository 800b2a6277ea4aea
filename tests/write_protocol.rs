//! The write protocol against the real environment: keelson killed at every step of an update
//! and run again, crash repair judging "applied" by everything keelson sets (a custom
//! resource's `spec.image` too), pending records naming a live or a dead holder, a record too
//! large to write keeping history, and writers racing each other and helm.

mod support;

use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::TestEnv;
use support::registry::TestRegistry;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.keelson-test.example.com
spec:
  group: keelson-test.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                image: {type: string}
                size: {type: integer}
"#;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-app
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app: {{ .Release.Name }}-app
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}-app
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          command: ["sleep", "infinity"]
"#;

/// The image lives in a custom resource too: a container-images-only check misses it.
const WIDGET: &str = r#"apiVersion: keelson-test.example.com/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}-widget
spec:
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  size: 1
"#;

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn write_chart(files: &[(&str, String)]) -> String {
    let dir = std::env::temp_dir().join(unique("keelson-wp-chart"));
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("chart file has a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write chart file");
    }
    dir.display().to_string()
}

/// A chart whose image is in a Deployment and in a Widget custom resource.
fn widget_chart(image_repository: &str) -> String {
    write_chart(&[
        (
            "Chart.yaml",
            "apiVersion: v2\nname: widget\nversion: 0.1.0\n".to_string(),
        ),
        (
            "values.yaml",
            format!(
                "replicaCount: 1\nimage:\n  repository: {image_repository}\n  tag: \"1.0.0\"\nkeel:\n  policy: all\n  trigger: poll\n  images:\n    - repository: image.repository\n      tag: image.tag\n"
            ),
        ),
        ("templates/deployment.yaml", DEPLOYMENT.to_string()),
        ("templates/widget.yaml", WIDGET.to_string()),
    ])
}

struct World {
    env: TestEnv,
    registry: TestRegistry,
    runtime: tokio::runtime::Runtime,
    namespace: String,
    repository: String,
}

impl World {
    fn new(prefix: &str) -> Self {
        let env = TestEnv::get();
        // Tests run in parallel and the CRD is cluster-wide: two concurrent `kubectl apply`s of
        // a missing CRD race to create it and one gets AlreadyExists, so it is applied once.
        static CRD_APPLIED: std::sync::Once = std::sync::Once::new();
        CRD_APPLIED.call_once(|| {
            let crd = std::env::temp_dir().join(unique("keelson-wp-crd"));
            std::fs::write(&crd, CRD).expect("write CRD");
            env.kubectl(&["apply", "-f", &crd.display().to_string()]);
        });
        env.kubectl(&[
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            "crd/widgets.keelson-test.example.com",
        ]);
        let registry = TestRegistry::anonymous();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let namespace = env.fresh_namespace(prefix);
        let repository = format!("{namespace}/app");
        runtime.block_on(registry.push_tag(&repository, "1.0.0"));
        World {
            env,
            registry,
            runtime,
            namespace,
            repository,
        }
    }

    fn image_repository(&self) -> String {
        format!("{}/{}", self.registry.host, self.repository)
    }

    fn push(&self, tag: &str) {
        self.runtime
            .block_on(self.registry.push_tag(&self.repository, tag));
    }

    fn keelson(&self, args: &[&str], failpoint: Option<&str>) -> Output {
        self.keelson_as(&self.env.kubeconfig, args, failpoint)
    }

    fn keelson_as(&self, kubeconfig: &str, args: &[&str], failpoint: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keelson"));
        command
            .args(["reconcile", "--once", "-n", &self.namespace])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KEELSON_FAILPOINT");
        if let Some(step) = failpoint {
            command.env("KEELSON_FAILPOINT", step);
        }
        command.output().expect("run keelson")
    }

    /// `reconcile --once` that must succeed; returns stdout.
    fn reconcile(&self, args: &[&str]) -> String {
        let out = self.keelson(args, None);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "keelson reconcile failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs keelson with `KEELSON_FAILPOINT=step` and checks that it died there.
    fn kill_at(&self, step: &str, release: &str, args: &[&str]) {
        let selector = format!("name={release}");
        let mut all = vec!["-l", selector.as_str()];
        all.extend_from_slice(args);
        let out = self.keelson(&all, Some(step));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(6),
            "keelson should abort at {step} for {release}: {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.contains(&format!("failpoint {step}")), "{stderr}");
    }

    fn history(&self, helm: &str, release: &str) -> Vec<Value> {
        let text = self.env.run(
            helm,
            &["history", release, "-n", &self.namespace, "-o", "json"],
        );
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_else(|| panic!("helm history is not a JSON array: {text}"))
    }

    fn live_images(&self, release: &str) -> (String, String) {
        let deployment = self.env.kubectl(&[
            "get",
            "deployment",
            &format!("{release}-app"),
            "-n",
            &self.namespace,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ]);
        let widget = self.env.kubectl(&[
            "get",
            "widget",
            &format!("{release}-widget"),
            "-n",
            &self.namespace,
            "-o",
            "jsonpath={.spec.image}",
        ]);
        (deployment, widget)
    }

    /// The tag in the values of `revision`.
    fn tag_of(&self, helm: &str, release: &str, revision: i64) -> String {
        let values = self.env.run(
            helm,
            &[
                "get",
                "values",
                release,
                "-n",
                &self.namespace,
                "--all",
                "--revision",
                &revision.to_string(),
                "-o",
                "json",
            ],
        );
        let values: Value = serde_json::from_str(&values).expect("values JSON");
        values["image"]["tag"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Exactly one deployed revision, nothing pending, and the cluster running the deployed
    /// revision's image in both the Deployment and the Widget.
    fn assert_consistent(&self, helm: &str, release: &str) -> Vec<Value> {
        let history = self.history(helm, release);
        let deployed = history.iter().filter(|r| r["status"] == "deployed").count();
        assert_eq!(deployed, 1, "{release}: {history:?}");
        assert!(
            !history.iter().any(|r| r["status"]
                .as_str()
                .unwrap_or_default()
                .starts_with("pending")),
            "{release}: {history:?}"
        );
        let revision = history
            .iter()
            .find(|r| r["status"] == "deployed")
            .and_then(|r| r["revision"].as_i64())
            .expect("deployed revision number");
        let tag = self.tag_of(helm, release, revision);
        let image = format!("{}:{tag}", self.image_repository());
        assert_eq!(
            self.live_images(release),
            (image.clone(), image),
            "{release}: {history:?}"
        );
        history
    }

    /// The annotations of a record's Secret.
    fn record_annotations(&self, release: &str, version: i64) -> Value {
        let text = self.env.kubectl(&[
            "get",
            "secret",
            &format!("sh.helm.release.v1.{release}.v{version}"),
            "-n",
            &self.namespace,
            "-o",
            "json",
        ]);
        let secret: Value = serde_json::from_str(&text).expect("secret JSON");
        secret["metadata"]["annotations"].clone()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.env.run_status(
                &self.env.kubectl,
                &["delete", "namespace", &self.namespace, "--wait=false"],
            );
        }
    }
}

/// Waits out the Leases of killed runs (15 s without renewal).
fn wait_for_dead_leases() {
    std::thread::sleep(Duration::from_secs(17));
}

const STEPS: [&str; 5] = [
    "after-prune",
    "after-pending",
    "mid-apply",
    "after-supersede",
    "after-deploy",
];

fn killed_at_every_step(helm_of: fn(&TestEnv) -> String, label: &str) {
    let world = World::new(&format!("wp-kill-{label}"));
    let helm = helm_of(&world.env);
    let chart = widget_chart(&world.image_repository());
    let ns = world.namespace.clone();
    for step in STEPS {
        world.env.run(&helm, &["install", step, &chart, "-n", &ns]);
        // A second revision, so --history-max 2 has one to prune.
        world.env.run(
            &helm,
            &["upgrade", step, &chart, "-n", &ns, "--reuse-values"],
        );
    }
    world.push("1.1.0");
    for step in STEPS {
        world.kill_at(step, step, &["--history-max", "2"]);
    }
    wait_for_dead_leases();

    let output = world.reconcile(&["--history-max", "2"]);
    for step in STEPS {
        let history = world.assert_consistent(&helm, step);
        match step {
            // Applied in full before the kill: finished as deployed with the planned words.
            "after-supersede" | "after-deploy" => {
                let last = history.last().expect("a revision");
                assert_eq!(last["status"], "deployed", "{step}: {history:?}");
                assert!(
                    last["description"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("keelson: image.tag 1.0.0 → 1.1.0"),
                    "{step}: {history:?}"
                );
            }
            // The Deployment was patched, the Widget not: put back, failed.
            "mid-apply" => assert!(
                output.contains("mid-apply: repaired pending revision 3 (now failed)"),
                "{output}"
            ),
            _ => {}
        }
    }
    // The next run moves every release forward; helm keeps working on top.
    world.reconcile(&["--history-max", "2"]);
    let image = format!("{}:1.1.0", world.image_repository());
    for step in STEPS {
        world.assert_consistent(&helm, step);
        assert_eq!(world.live_images(step), (image.clone(), image.clone()));
        world.env.run(
            &helm,
            &[
                "upgrade",
                step,
                &chart,
                "-n",
                &ns,
                "--reuse-values",
                "--set",
                "replicaCount=2",
            ],
        );
        let history = world.history(&helm, step);
        let previous = history[history.len() - 2]["revision"]
            .as_i64()
            .expect("revision number");
        world
            .env
            .run(&helm, &["rollback", step, &previous.to_string(), "-n", &ns]);
        world.assert_consistent(&helm, step);
    }
}

#[test]
fn killed_at_every_step_helm3() {
    killed_at_every_step(|env| env.helm3.clone(), "h3");
}

#[test]
fn killed_at_every_step_helm4() {
    killed_at_every_step(|env| env.helm4.clone(), "h4");
}

/// A kubeconfig for a service account that may do everything keelson's repair needs except
/// read Widgets: for it, the cluster cannot be read.
fn kubeconfig_without_widgets(env: &TestEnv, namespace: &str) -> String {
    support::restricted_kubeconfig(
        env,
        namespace,
        r#"  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "create", "update", "delete"]
  - apiGroups: ["apps"]
    resources: ["deployments"]
    verbs: ["get", "list", "patch"]
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "patch", "delete"]
"#,
    )
    .display()
    .to_string()
}

#[test]
fn repair_compares_every_field_keelson_set_and_waits_when_the_cluster_cannot_be_read() {
    use keelson::storage::{Driver, DriverKind, RevisionChange, Storage};
    let world = World::new("wp-custom");
    let env = &world.env;
    let ns = world.namespace.clone();
    let chart = widget_chart(&world.image_repository());
    env.helm3(&["install", "half", &chart, "-n", &ns]);
    world.push("1.1.0");

    // What an older keelson killed mid-apply leaves: a pending record naming no holder, the
    // Deployment on the new image, the Widget still on the old one.
    world.runtime.block_on(async {
        let storage = Storage::new(Driver::new(env.client().await, DriverKind::Secret));
        let deployed = storage.deployed(&ns, "half").await.expect("deployed");
        let mut config = deployed.release.config();
        config.insert("image".into(), serde_json::json!({"tag": "1.1.0"}));
        let manifest = deployed
            .release
            .manifest
            .clone()
            .unwrap_or_default()
            .replace(":1.0.0", ":1.1.0");
        storage
            .begin_upgrade(
                &ns,
                "half",
                RevisionChange {
                    config,
                    manifest,
                    description: "keelson: test".into(),
                    ..RevisionChange::default()
                },
            )
            .await
            .expect("pending revision");
    });
    let new_image = format!("{}:1.1.0", world.image_repository());
    env.kubectl(&[
        "set",
        "image",
        "deployment/half-app",
        &format!("app={new_image}"),
        "-n",
        &ns,
    ]);

    // The Widget cannot be read: the record stays pending, and the run says why.
    let restricted = kubeconfig_without_widgets(env, &ns);
    let out = world.keelson_as(&restricted, &[], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("cannot tell whether revision 2 was applied")
            && stdout.contains("403")
            && stdout.contains("left pending-upgrade for the next attempt"),
        "{stdout}"
    );
    let history = world.history(&env.helm3, "half");
    assert_eq!(history[1]["status"], "pending-upgrade", "{history:?}");

    // Readable: the Widget does not hold what the revision sets, so it was not applied; the
    // Deployment is put back and the revision ends failed.
    let output = world.reconcile(&[]);
    assert!(
        output.contains("half: repaired pending revision 2 (now failed)"),
        "{output}"
    );
    world.assert_consistent(&env.helm3, "half");
    let old_image = format!("{}:1.0.0", world.image_repository());
    assert_eq!(world.live_images("half"), (old_image.clone(), old_image));
    // And the next run updates both.
    let output = world.reconcile(&[]);
    assert!(output.contains("half: revision 3 deployed"), "{output}");
    assert_eq!(world.live_images("half"), (new_image.clone(), new_image));
}

#[test]
fn a_live_holders_record_is_left_alone_and_a_dead_holders_record_is_repaired() {
    let world = World::new("wp-holder");
    let env = &world.env;
    let ns = world.namespace.clone();
    let chart = widget_chart(&world.image_repository());
    let releases = ["live", "expired", "missing", "taken"];
    for release in releases {
        env.helm4(&["install", release, &chart, "-n", &ns]);
    }
    world.push("1.1.0");
    let mut leases = std::collections::HashMap::new();
    for release in releases {
        world.kill_at("after-pending", release, &[]);
        let annotations = world.record_annotations(release, 2);
        let lease = annotations["keelson.sh/holder-lease"]
            .as_str()
            .unwrap_or_else(|| panic!("no holder on the pending record: {annotations}"))
            .to_string();
        assert_eq!(
            annotations["keelson.sh/holder"].as_str(),
            lease.split('/').nth(1),
            "{annotations}"
        );
        assert!(
            annotations["keelson.sh/held-since"].is_string(),
            "{annotations}"
        );
        leases.insert(release, lease);
    }
    // helm reads the annotated pending record as any other.
    let history = world.history(&env.helm4, "live");
    assert_eq!(history[1]["status"], "pending-upgrade", "{history:?}");
    // `live`: its holder keeps renewing; the others' holders are gone three ways.
    let lease_of = |release: &str| {
        let (lease_ns, name) = leases[release].split_once('/').expect("namespace/name");
        (lease_ns.to_string(), name.to_string())
    };
    let patch = |release: &str, spec: Value| {
        let (lease_ns, name) = lease_of(release);
        env.kubectl(&[
            "patch",
            "lease",
            &name,
            "-n",
            &lease_ns,
            "--type",
            "merge",
            "-p",
            &serde_json::json!({ "spec": spec }).to_string(),
        ]);
    };
    let now = || {
        String::from_utf8(
            Command::new("date")
                .args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"])
                .output()
                .expect("date")
                .stdout,
        )
        .expect("date is text")
        .trim()
        .to_string()
    };
    patch(
        "live",
        serde_json::json!({"renewTime": now(), "leaseDurationSeconds": 3600}),
    );
    patch(
        "expired",
        serde_json::json!({"renewTime": "2020-01-01T00:00:00.000000Z"}),
    );
    patch(
        "taken",
        serde_json::json!({"holderIdentity": "someone-else"}),
    );
    let (missing_ns, missing_name) = lease_of("missing");
    env.kubectl(&["delete", "lease", &missing_name, "-n", &missing_ns]);

    let output = world.reconcile(&[]);
    assert!(
        output.contains("live: skipped: revision 2 is pending-upgrade, held by live writer"),
        "{output}"
    );
    for release in ["expired", "missing", "taken"] {
        assert!(
            output.contains(&format!(
                "{release}: repaired pending revision 2 (now failed)"
            )),
            "{output}"
        );
        world.assert_consistent(&env.helm4, release);
        // Finished records carry no holder.
        assert_eq!(
            world.record_annotations(release, 2)["keelson.sh/holder"],
            Value::Null
        );
    }
    let history = world.history(&env.helm4, "live");
    assert_eq!(history[1]["status"], "pending-upgrade", "{history:?}");
    // The expired run Lease was cleaned up; the one another identity holds was not.
    let (expired_ns, expired_name) = lease_of("expired");
    let gone = env.run_status(
        &env.kubectl,
        &["get", "lease", &expired_name, "-n", &expired_ns],
    );
    assert!(!gone.status.success(), "expired Lease still there");
    let (taken_ns, taken_name) = lease_of("taken");
    env.kubectl(&["delete", "lease", &taken_name, "-n", &taken_ns]);

    // Once `live`'s holder stops renewing, its record is repaired too.
    patch(
        "live",
        serde_json::json!({"renewTime": "2020-01-01T00:00:00.000000Z"}),
    );
    let output = world.reconcile(&[]);
    assert!(
        output.contains("live: repaired pending revision 2 (now failed)"),
        "{output}"
    );
    world.assert_consistent(&env.helm4, "live");
}

#[test]
fn a_record_too_large_to_write_keeps_history_and_fails() {
    let world = World::new("wp-large");
    let env = &world.env;
    let ns = world.namespace.clone();
    // Incompressible text in a list the chart's defaults hold: the new revision's user config
    // gets a copy of that list (lists replace defaults whole), doubling the record past 1 MiB,
    // while helm's own records hold it once and fit.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let noise: String = (0..700_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(alphabet[(state % alphabet.len() as u64) as usize])
        })
        .collect();
    let chart = write_chart(&[
        (
            "Chart.yaml",
            "apiVersion: v2\nname: big\nversion: 0.1.0\n".to_string(),
        ),
        (
            "values.yaml",
            format!(
                "sidecars:\n  - name: app\n    repository: {}\n    tag: \"1.0.0\"\n  - name: blob\n    data: {noise}\nkeel:\n  policy: all\n  images:\n    - repository: sidecars[0].repository\n      tag: sidecars[0].tag\n",
                world.image_repository()
            ),
        ),
        (
            "templates/deployment.yaml",
            DEPLOYMENT
                .replace("{{ .Values.replicaCount }}", "1")
                .replace(
                    "{{ .Values.image.repository }}:{{ .Values.image.tag }}",
                    "{{ (index .Values.sidecars 0).repository }}:{{ (index .Values.sidecars 0).tag }}",
                ),
        ),
    ]);
    env.helm3(&["install", "big", &chart, "-n", &ns]);
    env.helm3(&["upgrade", "big", &chart, "-n", &ns, "--reuse-values"]);
    world.push("1.1.0");

    let out = world.keelson(&["--history-max", "2"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failure, not a skip: {stdout}"
    );
    assert!(
        stdout.contains("big: failed:") && stdout.contains("over the 1048576-byte limit"),
        "{stdout}"
    );
    let history = world.history(&env.helm3, "big");
    let versions: Vec<i64> = history
        .iter()
        .filter_map(|r| r["revision"].as_i64())
        .collect();
    assert_eq!(versions, vec![1, 2], "history kept: {history:?}");
    assert_eq!(history[1]["status"], "deployed");
}

/// Starts keelson paused at `before-pending` and returns once it is there.
fn paused_keelson(world: &World, release: &str) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args([
            "reconcile",
            "--once",
            "-n",
            &world.namespace,
            "-l",
            &format!("name={release}"),
        ])
        .env("KUBECONFIG", &world.env.kubeconfig)
        .env("KEELSON_FAILPOINT", "before-pending:sleep=4000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keelson");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = std::io::BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("failpoint before-pending") => break,
            Some(Ok(_)) => {}
            _ => panic!("keelson never reached the before-pending failpoint"),
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("wait for keelson");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "keelson failed: {stdout}");
    stdout
}

#[test]
fn racing_writers_leave_one_deployed_revision_and_no_failed_one() {
    let world = World::new("wp-race");
    let env = &world.env;
    let ns = world.namespace.clone();
    let chart = widget_chart(&world.image_repository());
    let releases: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    for release in &releases {
        env.helm3(&["install", release, &chart, "-n", &ns]);
    }
    env.helm3(&["install", "vs-helm", &chart, "-n", &ns]);
    env.helm3(&["install", "vs-keelson", &chart, "-n", &ns]);
    world.push("1.1.0");

    // Planned from revision 1, paused; helm deploys revision 2 meanwhile. keelson removes its
    // unapplied record and plans again on top of helm's revision (keeping helm's values).
    let paused = paused_keelson(&world, "vs-helm");
    env.helm3(&[
        "upgrade",
        "vs-helm",
        &chart,
        "-n",
        &ns,
        "--reuse-values",
        "--set",
        "replicaCount=2",
    ]);
    let output = finish(paused);
    assert!(output.contains("vs-helm: revision 3 deployed"), "{output}");
    let history = world.assert_consistent(&env.helm3, "vs-helm");
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(
        !history.iter().any(|r| r["status"] == "failed"),
        "{history:?}"
    );
    let values = env.helm3(&["get", "values", "vs-helm", "-n", &ns, "-o", "json"]);
    let values: Value = serde_json::from_str(&values).expect("values JSON");
    assert_eq!(values["replicaCount"], 2, "{values}");

    // The same against another keelson that finishes first: nothing is left to do.
    let paused = paused_keelson(&world, "vs-keelson");
    let winner = world.reconcile(&["-l", "name=vs-keelson"]);
    assert!(
        winner.contains("vs-keelson: revision 2 deployed"),
        "{winner}"
    );
    let output = finish(paused);
    assert!(output.contains("vs-keelson: up to date"), "{output}");
    let history = world.assert_consistent(&env.helm3, "vs-keelson");
    assert_eq!(history.len(), 2, "{history:?}");

    // Three runs at once over the same releases.
    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_keelson"))
                .args(["reconcile", "--once", "-n", &ns])
                .env("KUBECONFIG", &env.kubeconfig)
                .env_remove("KEELSON_FAILPOINT")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start keelson")
        })
        .collect();
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|run| run.wait_with_output().expect("wait for keelson"))
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "every run exits 0: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let image = format!("{}:1.1.0", world.image_repository());
    for release in &releases {
        let history = world.assert_consistent(&env.helm3, release);
        assert!(
            !history.iter().any(|r| r["status"] == "failed"),
            "{release}: {history:?}"
        );
        assert_eq!(world.live_images(release), (image.clone(), image.clone()));
        let status = env.helm3(&["status", release, "-n", &ns, "-o", "json"]);
        let status: Value = serde_json::from_str(&status).expect("status JSON");
        assert_eq!(status["info"]["status"], "deployed", "{release}");
    }
}
