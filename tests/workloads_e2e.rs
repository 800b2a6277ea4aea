//! Plain workloads with Keel's `keel.sh/*` labels in the real environment (apiserver 1.20 with
//! the deployment, replicaset, statefulset and daemonset controllers, no kubelet, the local
//! registry): the issue's Deployment flow, each workload kind, policies, `monitorContainers`,
//! init containers, digest pinning, a Helm-owned Deployment going through its release,
//! `kubectl rollout undo` (ReplicaSets and ControllerRevisions) sticking, and bad labels
//! reported without stopping the others.

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::TestEnv;
use support::controller::wait_for;
use support::registry::TestRegistry;

struct World {
    env: TestEnv,
    registry: TestRegistry,
    runtime: tokio::runtime::Runtime,
    namespace: String,
}

impl World {
    fn new(prefix: &str) -> Self {
        let env = TestEnv::get();
        let namespace = env.fresh_namespace(prefix);
        Self {
            env,
            registry: TestRegistry::anonymous(),
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
            namespace,
        }
    }

    /// `registry/namespace/name`: a repository unique to this test.
    fn repository(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.registry.host, self.namespace)
    }

    fn push(&self, name: &str, tag: &str) -> String {
        let path = format!("{}/{name}", self.namespace);
        self.runtime.block_on(self.registry.push_tag(&path, tag))
    }

    fn apply(&self, yaml: &str) {
        let file = std::env::temp_dir().join(format!(
            "keelson-wl-{}-{}.yaml",
            self.namespace,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::write(&file, yaml).expect("write manifest");
        self.env.kubectl(&[
            "apply",
            "-n",
            &self.namespace,
            "-f",
            &file.display().to_string(),
        ]);
    }

    fn keelson(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .env("KUBECONFIG", &self.env.kubeconfig)
            .output()
            .expect("run keelson")
    }

    /// `keelson reconcile --once -n NS`; returns stdout, panicking with everything on failure.
    fn reconcile(&self) -> String {
        let out = self.keelson(&["reconcile", "--once", "-n", &self.namespace]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "keelson reconcile --once failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn get(&self, resource: &str) -> Value {
        let text = self
            .env
            .kubectl(&["get", resource, "-n", &self.namespace, "-o", "json"]);
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{resource}: {err}: {text}"))
    }

    /// The images of a workload's pod template, container name → image.
    fn images(&self, resource: &str) -> Vec<(String, String)> {
        let object = self.get(resource);
        let template = if resource.starts_with("cronjob") {
            &object["spec"]["jobTemplate"]["spec"]["template"]
        } else {
            &object["spec"]["template"]
        };
        ["initContainers", "containers"]
            .iter()
            .filter_map(|f| template["spec"][f].as_array())
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["image"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn image(&self, resource: &str, container: &str) -> String {
        self.images(resource)
            .into_iter()
            .find(|(name, _)| name == container)
            .map(|(_, image)| image)
            .unwrap_or_else(|| panic!("{resource} has no container {container}"))
    }
}

/// The issue's Deployment, verbatim but for the namespace and the registry host.
fn ithome(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: ithome
  labels:
    name: "ithome"
    keel.sh/policy: all
    keel.sh/trigger: poll
spec:
  replicas: 3
  selector:
    matchLabels:
      app: ithome
  template:
    metadata:
      name: ithome
      labels:
        app: ithome
    spec:
      containers:
        - image: {image}:3.4.5
          name: ithome
"#
    )
}

/// `kubectl get rs -o wide` rows: (name, desired replicas, images).
fn replica_sets(world: &World) -> Vec<(String, String, String)> {
    world
        .env
        .kubectl(&["get", "rs", "-o", "wide", "-n", &world.namespace])
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR
            (cols.len() >= 7).then(|| {
                (
                    cols[0].to_string(),
                    cols[1].to_string(),
                    cols[6].to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn issue_flow_then_rollout_undo_sticks_by_reconcile_once() {
    let world = World::new("wl-flow");
    let repo = world.repository("netutils");
    world.push("netutils", "3.4.5");
    world.apply(&ithome(&repo));
    let out = world.reconcile();
    assert!(
        out.contains(&format!(
            "Deployment {}/ithome: up to date",
            world.namespace
        )),
        "{out}"
    );

    world.push("netutils", "4.5.6");
    let out = world.reconcile();
    assert!(out.contains("patched: ithome:"), "{out}");
    assert_eq!(
        world.image("deployment/ithome", "ithome"),
        format!("{repo}:4.5.6")
    );

    // The deployment controller makes the new ReplicaSet beside the old one. With no kubelet
    // no pod ever becomes ready, so the rollout never finishes: the old ReplicaSet keeps the
    // replicas maxUnavailable allows (3 - 25% → 3 desired, rounded down to 0 unavailable
    // gives 3) rather than being scaled to 0 as on a cluster that runs pods.
    let sets = wait_for(Duration::from_secs(30), "two ReplicaSets", || {
        let sets = replica_sets(&world);
        (sets.len() == 2).then_some(sets)
    });
    let old = sets
        .iter()
        .find(|s| s.2 == format!("{repo}:3.4.5"))
        .unwrap_or_else(|| panic!("no ReplicaSet on 3.4.5: {sets:?}"));
    let new = sets
        .iter()
        .find(|s| s.2 == format!("{repo}:4.5.6"))
        .unwrap_or_else(|| panic!("no ReplicaSet on 4.5.6: {sets:?}"));
    assert_ne!(old.0, new.0);
    assert_eq!(
        old.1, "3",
        "the old ReplicaSet keeps its pods until new ones are ready: {sets:?}"
    );

    // kubectl rollout history shows keelson's change cause.
    let history = world.env.kubectl(&[
        "rollout",
        "history",
        "deployment/ithome",
        "-n",
        &world.namespace,
    ]);
    assert!(
        history.contains(&format!("keelson: ithome: {repo}:3.4.5 → {repo}:4.5.6")),
        "{history}"
    );
    let annotations = &world.get("deployment/ithome")["metadata"]["annotations"];
    let record: Value = serde_json::from_str(
        annotations["keelson.sh/image-update"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("keelson's annotation is JSON");
    assert_eq!(record["containers"][0]["old"], format!("{repo}:3.4.5"));
    assert_eq!(record["containers"][0]["new"], format!("{repo}:4.5.6"));

    // The owner undoes the update: the next reconcile leaves it alone and says why.
    world.env.kubectl(&[
        "rollout",
        "undo",
        "deployment/ithome",
        "-n",
        &world.namespace,
    ]);
    assert_eq!(
        world.image("deployment/ithome", "ithome"),
        format!("{repo}:3.4.5")
    );
    // Wait until the deployment controller has acted on the undo (until then keelson skips the
    // Deployment: its history does not show the undo yet) and given the restored ReplicaSet its
    // new revision.
    wait_for(Duration::from_secs(30), "the deployment controller", || {
        let deployment = world.get("deployment/ithome");
        (deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"])
            .then_some(())
    });
    wait_for(Duration::from_secs(30), "the undo's revision", || {
        let list = world.get("rs");
        list["items"].as_array().and_then(|items| {
            items
                .iter()
                .any(|rs| {
                    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"]
                        == "1"
                })
                .then_some(())
        })
    });
    let out = world.reconcile();
    assert!(
        out.contains("held back") && out.contains("4.5.6 was undone"),
        "{out}"
    );
    assert_eq!(
        world.image("deployment/ithome", "ithome"),
        format!("{repo}:3.4.5")
    );

    // Only a strictly newer tag moves it again.
    world.push("netutils", "4.5.7");
    let out = world.reconcile();
    assert!(out.contains("patched"), "{out}");
    assert_eq!(
        world.image("deployment/ithome", "ithome"),
        format!("{repo}:4.5.7")
    );
}

#[test]
fn every_kind_policies_containers_and_bad_labels() {
    let world = World::new("wl-kinds");
    let app = world.repository("app");
    let side = world.repository("side");
    world.push("app", "1.0.0");
    world.push("side", "1.0.0");
    let pod = |containers: &str| {
        format!(
            "    metadata:\n      labels:\n        app: x\n    spec:\n      containers:\n{containers}"
        )
    };
    let one = format!("        - name: app\n          image: {app}:1.0.0\n");
    let manifests = format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: sts
  labels: {{keel.sh/policy: all, keel.sh/trigger: poll}}
spec:
  serviceName: sts
  selector: {{matchLabels: {{app: x}}}}
  template:
{pod_one}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ds
  labels: {{keel.sh/policy: patch}}
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
{pod_one}
---
apiVersion: batch/v1beta1
kind: CronJob
metadata:
  name: cron
  annotations: {{keel.sh/policy: minor}}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          labels:
            app: x
        spec:
          restartPolicy: Never
          containers:
            - name: app
              image: {app}:1.0.0
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: minor
  labels: {{keel.sh/policy: minor}}
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
{pod_one}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: monitored
  labels: {{keel.sh/policy: major}}
  annotations: {{keel.sh/monitorContainers: "^app(-init)?$", keel.sh/initContainers: "true"}}
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
    metadata:
      labels:
        app: x
    spec:
      initContainers:
        - name: app-init
          image: {side}:1.0.0
      containers:
        - name: app
          image: {app}:1.0.0
        - name: sidecar
          image: {side}:1.0.0
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad-policy
  labels: {{keel.sh/policy: sometimes}}
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
{pod_one}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad-schedule
  labels: {{keel.sh/policy: all, keel.sh/trigger: poll}}
  annotations: {{keel.sh/pollSchedule: "@every banana"}}
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
{pod_one}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: untracked
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
{pod_one}
"#,
        pod_one = pod(&one)
    );
    world.apply(&manifests);
    for tag in ["1.0.1", "1.1.0", "2.0.0"] {
        world.push("app", tag);
        world.push("side", tag);
    }

    // `keelson workloads` lists the tracked ones (bad labels included, with the reason).
    let out = world.keelson(&["workloads", "-n", &world.namespace, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("json rows");
    let names: Vec<&str> = rows
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "bad-policy",
            "bad-schedule",
            "cron",
            "ds",
            "minor",
            "monitored",
            "sts"
        ]
    );
    let bad = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "bad-policy"))
        .expect("bad-policy row");
    assert!(
        bad["reason"]
            .as_str()
            .is_some_and(|r| r.contains("keel.sh/policy") && r.contains("sometimes")),
        "{bad}"
    );

    // `keelson list --workloads` is the same listing.
    let out = world.keelson(&["list", "--workloads", "-n", &world.namespace, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).expect("json rows"),
        rows
    );

    // `check -o json`: the same plan objects as releases, with kind and name; writes nothing.
    let out = world.keelson(&["check", "-n", &world.namespace, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plans: Value = serde_json::from_slice(&out.stdout).expect("json plans");
    let cron = plans
        .as_array()
        .and_then(|p| p.iter().find(|p| p["kind"] == "CronJob"))
        .unwrap_or_else(|| panic!("no CronJob plan: {plans}"));
    assert_eq!(cron["name"], "cron");
    assert_eq!(cron["target"], format!("{app}:1.1.0"));
    assert_eq!(world.image("cronjob/cron", "app"), format!("{app}:1.0.0"));

    let out = world.reconcile();
    let ns = &world.namespace;
    assert!(
        out.contains(&format!(
            "Deployment {ns}/bad-policy: not tracked: keel.sh/policy:"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Deployment {ns}/bad-schedule: not tracked: keel.sh/pollSchedule:"
        )),
        "{out}"
    );
    assert_eq!(
        world.image("statefulset/sts", "app"),
        format!("{app}:2.0.0")
    );
    assert_eq!(world.image("daemonset/ds", "app"), format!("{app}:1.0.1"));
    assert_eq!(world.image("cronjob/cron", "app"), format!("{app}:1.1.0"));
    // minor holds back the major bump.
    assert_eq!(
        world.image("deployment/minor", "app"),
        format!("{app}:1.1.0")
    );
    // monitorContainers: `app` and `app-init` (init containers asked for) move, `sidecar` not.
    assert_eq!(
        world.image("deployment/monitored", "app"),
        format!("{app}:2.0.0")
    );
    assert_eq!(
        world.image("deployment/monitored", "sidecar"),
        format!("{side}:1.0.0")
    );
    assert_eq!(
        world.image("deployment/monitored", "app-init"),
        format!("{side}:2.0.0")
    );
    // Untracked and broken workloads are untouched.
    for name in ["untracked", "bad-policy", "bad-schedule"] {
        assert_eq!(
            world.image(&format!("deployment/{name}"), "app"),
            format!("{app}:1.0.0")
        );
    }
    // A second pass has nothing to do.
    let out = world.reconcile();
    assert!(!out.contains("patched"), "{out}");
}

#[test]
fn force_with_match_tag_pins_the_digest_and_follows_a_repush() {
    let world = World::new("wl-digest");
    let app = world.repository("app");
    world.push("app", "main");
    world.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: pinned
  labels: {{keel.sh/policy: force, keel.sh/matchTag: "true"}}
spec:
  selector: {{matchLabels: {{app: pinned}}}}
  template:
    metadata:
      labels:
        app: pinned
    spec:
      containers:
        - name: app
          image: {app}:main
"#
    ));
    world.reconcile();
    let first = world.image("deployment/pinned", "app");
    assert!(first.starts_with(&format!("{app}:main@sha256:")), "{first}");
    let out = world.reconcile();
    assert!(out.contains("up to date"), "{out}");
    let digest = world.push("app", "main");
    world.reconcile();
    assert_eq!(
        world.image("deployment/pinned", "app"),
        format!("{app}:main@{digest}")
    );
}

#[test]
fn a_helm_owned_deployment_moves_through_its_release() {
    let world = World::new("wl-helm");
    let repo = world.repository("netutils");
    world.push("netutils", "3.4.5");
    let chart = support::fixture_chart("netutils");
    let set_repo = format!("image.repository={repo}");
    world.env.helm3(&[
        "install",
        "rel",
        &chart,
        "-n",
        &world.namespace,
        "--set",
        &set_repo,
    ]);
    // The owner also put Keel's labels on the Deployment itself.
    world.env.kubectl(&[
        "label",
        "deployment/rel-netutils",
        "-n",
        &world.namespace,
        "keel.sh/policy=all",
        "keel.sh/trigger=poll",
    ]);
    let out = world.keelson(&["workloads", "-n", &world.namespace]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("updated through its release rel"), "{text}");

    world.push("netutils", "4.5.6");
    let out = world.reconcile();
    assert!(
        out.contains(&format!("{}/rel: revision 2 deployed", world.namespace)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Deployment {}/rel-netutils: updated through its release rel",
            world.namespace
        )),
        "{out}"
    );
    // The release wrote the image; keelson never patched the Deployment directly.
    assert_eq!(
        world.image("deployment/rel-netutils", "netutils"),
        format!("{repo}:4.5.6")
    );
    let deployment = world.get("deployment/rel-netutils");
    assert!(
        deployment["metadata"]["annotations"]["keelson.sh/image-update"].is_null(),
        "{deployment}"
    );
    let history = world
        .env
        .helm3(&["history", "rel", "-n", &world.namespace, "-o", "json"]);
    let history: Value = serde_json::from_str(&history).expect("helm history json");
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
}

#[test]
fn keelson_run_moves_workloads_by_poll_and_webhook_and_keeps_an_undo() {
    let world = World::new("wl-run");
    let repo = world.repository("netutils");
    let hooked = world.repository("hooked");
    world.push("netutils", "3.4.5");
    world.push("hooked", "1.0.0");
    world.apply(&ithome(&repo));
    // Webhooks only (`keel.sh/trigger` unset is Keel's `default`).
    world.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: hooked
  labels: {{keel.sh/policy: all}}
spec:
  selector: {{matchLabels: {{app: hooked}}}}
  template:
    metadata:
      labels:
        app: hooked
    spec:
      containers:
        - name: app
          image: {hooked}:1.0.0
"#
    ));
    // A CronJob (batch/v1beta1 on this 1.20 cluster) on the same repository, and a workload
    // with a bad label that must not stop the others.
    world.apply(&format!(
        r#"apiVersion: batch/v1beta1
kind: CronJob
metadata:
  name: nightly
  labels: {{keel.sh/policy: all, keel.sh/trigger: poll}}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: job
              image: {repo}:3.4.5
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
  labels: {{keel.sh/policy: sometimes, keel.sh/trigger: poll}}
spec:
  selector: {{matchLabels: {{app: broken}}}}
  template:
    metadata:
      labels:
        app: broken
    spec:
      containers:
        - name: app
          image: {repo}:3.4.5
"#
    ));
    let token = "workloads-webhook-token";
    let controller = support::controller::RunningController::start(
        &world.env,
        &[
            "-n",
            &world.namespace,
            "--leader-election-namespace",
            &world.namespace,
            "--default-schedule",
            "@every 2s",
        ],
        &[("KEELSON_WEBHOOK_TOKEN", token)],
    );

    // Poll: the issue's flow with no command after the push.
    world.push("netutils", "4.5.6");
    let pushed = std::time::Instant::now();
    wait_for(Duration::from_secs(60), "ithome on 4.5.6", || {
        (world.image("deployment/ithome", "ithome") == format!("{repo}:4.5.6")).then_some(())
    });
    // A figure for the record, not an assertion: push to patched Deployment on `@every 2s`.
    eprintln!("push → Deployment patched by poll: {:?}", pushed.elapsed());
    wait_for(Duration::from_secs(60), "the CronJob on 4.5.6", || {
        (world.image("cronjob/nightly", "job") == format!("{repo}:4.5.6")).then_some(())
    });
    let sets = wait_for(Duration::from_secs(30), "two ReplicaSets of ithome", || {
        let sets: Vec<_> = replica_sets(&world)
            .into_iter()
            .filter(|s| s.0.starts_with("ithome-"))
            .collect();
        (sets.len() == 2).then_some(sets)
    });
    assert!(
        sets.iter().any(|s| s.2 == format!("{repo}:3.4.5"))
            && sets.iter().any(|s| s.2 == format!("{repo}:4.5.6")),
        "{sets:?}"
    );

    // Webhook: a confirmed push moves the webhook-only Deployment.
    world.push("hooked", "1.1.0");
    let body = serde_json::json!({"name": hooked, "tag": "1.1.0"}).to_string();
    let (code, answer) = controller.post(
        "/v1/webhooks/native",
        &body,
        &[&format!("Authorization: Bearer {token}")],
    );
    assert_eq!(code, 202, "{answer}");
    assert!(answer.contains("accepted"), "{answer}");
    wait_for(Duration::from_secs(30), "hooked on 1.1.0", || {
        (world.image("deployment/hooked", "app") == format!("{hooked}:1.1.0")).then_some(())
    });

    // An undo is not reverted by the polls that follow.
    world.env.kubectl(&[
        "rollout",
        "undo",
        "deployment/ithome",
        "-n",
        &world.namespace,
    ]);
    let series = "keelson_checks_total{trigger=\"poll\"}";
    let before = controller.metric(series);
    wait_for(Duration::from_secs(60), "three more polls", || {
        (controller.metric(series) >= before + 3.0).then_some(())
    });
    assert_eq!(
        world.image("deployment/ithome", "ithome"),
        format!("{repo}:3.4.5"),
        "controller log:\n{}",
        controller.log_text()
    );
    // A strictly newer tag moves it again.
    world.push("netutils", "4.5.7");
    wait_for(Duration::from_secs(60), "ithome on 4.5.7", || {
        (world.image("deployment/ithome", "ithome") == format!("{repo}:4.5.7")).then_some(())
    });
    // The bad label was reported for that workload alone; it was never patched.
    let log = controller.log_text();
    assert!(
        log.lines().any(|l| l.contains("bad keel.sh labels")
            && l.contains("broken")
            && l.contains("keel.sh/policy")),
        "{log}"
    );
    assert_eq!(
        world.image("deployment/broken", "app"),
        format!("{repo}:3.4.5")
    );
}

#[test]
fn pull_secrets_come_from_the_pod_spec_and_the_service_account() {
    let world = World::new("wl-secrets");
    let registry = TestRegistry::with_basic_auth();
    let path = format!("{}/private", world.namespace);
    let repo = format!("{}/{path}", registry.host);
    world.runtime.block_on(registry.push_tag(&path, "1.0.0"));
    world.runtime.block_on(registry.push_tag(&path, "1.1.0"));
    let (user, password) = registry
        .credentials
        .clone()
        .expect("the htpasswd registry has credentials");
    world.env.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        &world.namespace,
        &format!("--docker-server={}", registry.host),
        &format!("--docker-username={user}"),
        &format!("--docker-password={password}"),
    ]);
    world
        .env
        .kubectl(&["create", "serviceaccount", "puller", "-n", &world.namespace]);
    world.env.kubectl(&[
        "patch",
        "serviceaccount",
        "puller",
        "-n",
        &world.namespace,
        "-p",
        r#"{"imagePullSecrets": [{"name": "regcred"}]}"#,
    ]);
    let deployment = |name: &str, pod_extra: &str| {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{keel.sh/policy: all}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels:
        app: {name}
    spec:
{pod_extra}      containers:
        - name: app
          image: {repo}:1.0.0
---
"#
        )
    };
    world.apply(&format!(
        "{}{}{}",
        deployment("by-pod-spec", "      imagePullSecrets: [{name: regcred}]\n"),
        deployment("by-account", "      serviceAccountName: puller\n"),
        deployment("no-secret", "")
    ));
    // The deployment controller writes to fresh Deployments (revision annotation, status); a
    // patch racing it gets 409 and is planned again next cycle, so a few cycles may be needed.
    let mut stdout = String::new();
    for _ in 0..5 {
        let out = world.keelson(&["reconcile", "--once", "-n", &world.namespace]);
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !stdout.contains("changed while keelson planned") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        world.image("deployment/by-pod-spec", "app"),
        format!("{repo}:1.1.0"),
        "{stdout}"
    );
    assert_eq!(
        world.image("deployment/by-account", "app"),
        format!("{repo}:1.1.0"),
        "{stdout}"
    );
    // Without credentials the registry refuses the listing: held, saying so, nothing else stops.
    assert_eq!(
        world.image("deployment/no-secret", "app"),
        format!("{repo}:1.0.0")
    );
    assert!(
        stdout.contains(&format!(
            "Deployment {}/no-secret: held back: app: cannot list tags",
            world.namespace
        )),
        "{stdout}"
    );
}

/// A Deployment like the issue's, asking for two approvals and notifying channel `ops`.
fn gated(image: &str, tag: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: gated
  labels:
    keel.sh/policy: all
    keel.sh/trigger: poll
    keel.sh/approvals: "2"
    keel.sh/notify: ops
spec:
  selector:
    matchLabels:
      app: gated
  template:
    metadata:
      labels:
        app: gated
    spec:
      containers:
        - name: app
          image: {image}:{tag}
"#
    )
}

impl World {
    fn ok(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .env("KUBECONFIG", &self.env.kubeconfig)
            .envs(envs.iter().copied())
            .output()
            .expect("run keelson");
        assert!(
            out.status.success(),
            "keelson {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `keelson approvals -n NS -o json`.
    fn approvals(&self) -> Vec<Value> {
        let text = self.ok(&["approvals", "-n", &self.namespace, "-o", "json"], &[]);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_else(|| panic!("approvals -o json is not an array: {text}"))
    }

    fn approval_for(&self, target: &str) -> Value {
        self.approvals()
            .into_iter()
            .find(|a| a["target"] == target)
            .unwrap_or_else(|| panic!("no approval for {target}: {:?}", self.approvals()))
    }

    /// The Events recorded on one object: (reason, reporting controller, note).
    fn events_on(&self, kind: &str, name: &str) -> Vec<(String, String, String)> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let text = self.env.kubectl(&[
            "get",
            "events",
            "-n",
            &self.namespace,
            "--field-selector",
            &selector,
            "-o",
            "json",
        ]);
        let list: Value =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("events: {err}: {text}"));
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (
                    text(&e["reason"]),
                    text(&e["reportingComponent"]),
                    text(&e["message"]),
                )
            })
            .collect()
    }
}

/// The generic webhook bodies the receiver got, parsed.
fn messages(receiver: &support::receiver::Receiver) -> Vec<Value> {
    receiver
        .bodies()
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect()
}

#[test]
fn a_deployment_asking_for_approvals_moves_after_two_and_a_rejection_sticks() {
    let world = World::new("wl-appr");
    let repo = world.repository("gated");
    world.push("gated", "1.0.0");
    world.apply(&gated(&repo, "1.0.0"));
    world.push("gated", "1.1.0");
    let (old, new) = (format!("{repo}:1.0.0"), format!("{repo}:1.1.0"));

    // `check` says why and opens nothing.
    let checked = world.ok(&["check", "-n", &world.namespace], &[]);
    assert!(
        checked.contains("approval required: 2 approvals for"),
        "{checked}"
    );
    assert!(world.approvals().is_empty(), "check never opens a request");

    let held = world.reconcile();
    assert!(
        held.contains("held back: app: approval required: 0 of 2 approvals"),
        "{held}"
    );
    assert_eq!(world.image("deployment/gated", "app"), old);
    let approval = world.approval_for(&new);
    for field in [
        "id",
        "release",
        "namespace",
        "image",
        "current",
        "target",
        "votes",
        "required",
        "deadline",
        "state",
        "kind",
    ] {
        assert!(approval.get(field).is_some(), "{field} in {approval}");
    }
    assert_eq!(approval["kind"], "Deployment");
    assert_eq!(approval["name"], "gated");
    assert_eq!(
        approval["subject"],
        format!("deployment/{}/gated", world.namespace)
    );
    assert_eq!(approval["namespace"], world.namespace);
    assert_eq!(approval["image"], repo);
    assert_eq!(approval["current"], old);
    assert_eq!(approval["required"], 2);
    assert_eq!(approval["state"], "pending");
    let table = world.ok(&["approvals", "-n", &world.namespace], &[]);
    assert!(
        table.contains("Deployment")
            && table.contains(&format!("deployment/{}/gated", world.namespace)),
        "{table}"
    );
    let id = approval["id"].as_str().expect("id").to_string();

    // Two voters through the CLI; the second vote is told to the receiver and recorded as an
    // Event on the Deployment.
    let receiver = support::receiver::Receiver::start(200, false);
    let url = receiver.url();
    let notify = [("KEELSON_NOTIFY_WEBHOOK_URL", url.as_str())];
    world.ok(&["approve", &id, "--voter", "ana"], &notify);
    let still = world.reconcile();
    assert!(still.contains("1 of 2 approvals"), "{still}");
    assert_eq!(world.image("deployment/gated", "app"), old);
    let voted = world.ok(&["approve", &id, "--voter", "bob"], &notify);
    assert!(voted.contains("approved (2 of 2"), "{voted}");
    let told = messages(&receiver);
    let approved = told
        .iter()
        .find(|m| m["name"] == "approval-approved")
        .unwrap_or_else(|| panic!("the approval is told: {told:?}"));
    assert_eq!(approved["kind"], "Deployment");
    assert_eq!(approved["workload"], "gated");
    assert_eq!(approved["channels"], serde_json::json!(["ops"]));
    assert_eq!(approved["images"][0]["new"], new.as_str());

    let applied = world.reconcile();
    assert!(applied.contains("patched: app:"), "{applied}");
    assert_eq!(world.image("deployment/gated", "app"), new);
    assert_eq!(world.approval_for(&new)["state"], "approved");

    // A newer tag asks again; one rejection ends it and it is never asked for again.
    world.push("gated", "1.2.0");
    let newer = format!("{repo}:1.2.0");
    world.reconcile();
    let request = world.approval_for(&newer);
    assert_eq!(request["current"], new);
    let rejected = world.ok(
        &[
            "reject",
            request["id"].as_str().expect("id"),
            "--voter",
            "cy",
        ],
        &notify,
    );
    assert!(rejected.contains("rejected"), "{rejected}");
    let after = world.reconcile();
    assert!(after.contains("1.2.0 was rejected"), "{after}");
    let count = world.approvals().len();
    world.reconcile();
    assert_eq!(
        world.approvals().len(),
        count,
        "no new request for a rejected tag"
    );
    assert_eq!(world.image("deployment/gated", "app"), new);
    assert!(
        messages(&receiver)
            .iter()
            .any(|m| m["name"] == "approval-rejected" && m["kind"] == "Deployment"),
        "{:?}",
        receiver.bodies()
    );

    // The CLI's votes are Events on the Deployment, from keelson.
    let events = world.events_on("Deployment", "gated");
    for reason in ["Approved", "Rejected"] {
        assert!(
            events
                .iter()
                .any(|(r, by, _)| r == reason && by == "keelson"),
            "{reason} in {events:?}"
        );
    }
}

#[test]
fn keelson_run_collects_workload_approvals_over_http_and_tells_every_step() {
    let world = World::new("wl-appr-run");
    let repo = world.repository("gated");
    world.push("gated", "1.0.0");
    world.apply(&gated(&repo, "1.0.0"));
    let receiver = support::receiver::Receiver::start(200, false);
    let url = receiver.url();
    let token = "workload-approvals-token";
    let bearer = format!("Authorization: Bearer {token}");
    let controller = support::controller::RunningController::start(
        &world.env,
        &[
            "-n",
            &world.namespace,
            "--leader-election-namespace",
            &world.namespace,
            "--default-schedule",
            "@every 1s",
        ],
        &[
            ("KEELSON_WEBHOOK_TOKEN", token),
            ("KEELSON_NOTIFY_WEBHOOK_URL", url.as_str()),
        ],
    );
    let request_for = |tag: &str| -> Value {
        let target = format!("{repo}:{tag}");
        wait_for(
            Duration::from_secs(30),
            &format!("the request for {tag}"),
            || {
                let (_, body) = controller.get_with("/v1/approvals", &[&bearer]);
                let list: Value = serde_json::from_str(&body).ok()?;
                list.as_array()?
                    .iter()
                    .find(|a| a["state"] == "pending" && a["target"] == target.as_str())
                    .cloned()
            },
        )
    };
    let vote = |id: &str, action: &str, voter: &str| {
        let body =
            serde_json::json!({"identifier": id, "action": action, "voter": voter}).to_string();
        controller.post("/v1/approvals", &body, &[&bearer])
    };

    world.push("gated", "1.1.0");
    let request = request_for("1.1.0");
    assert_eq!(request["kind"], "Deployment");
    let id = request["id"].as_str().expect("id").to_string();
    // The dashboard lists it with its subject.
    let (_, page) = controller.get("/");
    assert!(
        page.contains(&format!("deployment/{}/gated", world.namespace)),
        "{page}"
    );
    // One vote from the CLI, one over HTTP: the HTTP vote completes it and plans at once.
    world.ok(&["approve", &id, "--voter", "ana"], &[]);
    assert_eq!(
        world.image("deployment/gated", "app"),
        format!("{repo}:1.0.0")
    );
    let voted = std::time::Instant::now();
    let (code, body) = vote(&id, "approve", "bob");
    assert_eq!(code, 200, "{body}");
    wait_for(Duration::from_secs(30), "gated on 1.1.0", || {
        (world.image("deployment/gated", "app") == format!("{repo}:1.1.0")).then_some(())
    });
    // A figure for the record, not an assertion: last HTTP vote to patched Deployment.
    eprintln!(
        "last approval over HTTP → Deployment patched: {:?}",
        voted.elapsed()
    );

    // Rejected over HTTP: not moved by the polls that follow, not asked for again.
    world.push("gated", "1.2.0");
    let rejected = request_for("1.2.0");
    let (code, body) = vote(rejected["id"].as_str().expect("id"), "reject", "cy");
    assert_eq!(code, 200, "{body}");
    let series = "keelson_checks_total{trigger=\"poll\"}";
    let before = controller.metric(series);
    wait_for(Duration::from_secs(60), "three more polls", || {
        (controller.metric(series) >= before + 3.0).then_some(())
    });
    assert_eq!(
        world.image("deployment/gated", "app"),
        format!("{repo}:1.1.0")
    );
    let for_rejected = world
        .approvals()
        .into_iter()
        .filter(|a| a["target"] == format!("{repo}:1.2.0").as_str())
        .count();
    assert_eq!(for_rejected, 1, "{:?}", world.approvals());

    // Past its deadline: expired by the controller's next look.
    world.push("gated", "1.3.0");
    let expiring = request_for("1.3.0");
    let name = expiring["id"]
        .as_str()
        .and_then(|i| i.split_once('/'))
        .map(|(_, n)| n.to_string())
        .expect("id");
    world.env.kubectl(&[
        "patch",
        "configmap",
        &name,
        "-n",
        &world.namespace,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"deadline":"2000-01-01T00:00:00Z"}}"#,
    ]);
    let kinds = [
        "update-planned",
        "approval-requested",
        "approval-approved",
        "update-applied",
        "approval-rejected",
        "approval-expired",
    ];
    let told = wait_for(Duration::from_secs(30), "every kind of message", || {
        let told = messages(&receiver);
        kinds
            .iter()
            .all(|k| told.iter().any(|m| m["name"] == *k))
            .then_some(told)
    });
    for message in &told {
        assert_eq!(message["kind"], "Deployment", "{message}");
        assert_eq!(message["workload"], "gated", "{message}");
        assert_eq!(message["channels"], serde_json::json!(["ops"]), "{message}");
    }
    let requested = told
        .iter()
        .filter(|m| m["name"] == "approval-requested")
        .count();
    assert_eq!(
        requested, 3,
        "one request per target however often the workload was planned: {told:?}"
    );
    let applied = told
        .iter()
        .find(|m| m["name"] == "update-applied")
        .expect("applied");
    assert_eq!(
        applied["images"][0]["old"],
        format!("{repo}:1.0.0").as_str()
    );
    assert_eq!(
        applied["images"][0]["new"],
        format!("{repo}:1.1.0").as_str()
    );
    assert!(
        applied["title"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("deployment/{}/gated", world.namespace))),
        "{applied}"
    );

    // Each step is an Event on the Deployment itself, reported by keelson.
    let events = wait_for(Duration::from_secs(30), "the Events", || {
        let events = world.events_on("Deployment", "gated");
        [
            "UpdatePlanned",
            "ApprovalRequested",
            "Approved",
            "Updated",
            "Rejected",
            "ApprovalExpired",
        ]
        .iter()
        .all(|r| {
            events
                .iter()
                .any(|(reason, by, _)| reason == r && by == "keelson")
        })
        .then_some(events)
    });
    assert!(
        events
            .iter()
            .any(|(r, _, note)| r == "Updated" && note.contains(&format!("{repo}:1.1.0"))),
        "{events:?}"
    );
}

/// A StatefulSet or DaemonSet tracked with `keel.sh/policy: all` (image `IMAGE:1.0.0`).
fn revisioned(kind: &str, name: &str, image: &str) -> String {
    let extra = if kind == "StatefulSet" {
        format!("  serviceName: {name}\n  replicas: 1\n")
    } else {
        String::new()
    };
    format!(
        r#"apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  labels:
    keel.sh/policy: all
    keel.sh/trigger: poll
spec:
{extra}  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - image: {image}:1.0.0
          name: app
"#
    )
}

/// `(revision, image of container app)` of the ControllerRevisions in the namespace.
fn controller_revisions(world: &World) -> Vec<(i64, String)> {
    let list = world.get("controllerrevisions");
    let mut revisions: Vec<(i64, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|cr| {
            let image = cr["data"]["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (cr["revision"].as_i64().unwrap_or(0), image)
        })
        .collect();
    revisions.sort();
    revisions
}

/// The StatefulSet and DaemonSet controllers keep their history in ControllerRevisions, which
/// `kubectl rollout undo` restores by giving the old one the next number: keelson reads that
/// (not only its own annotation) and holds the undone tag until a strictly newer one appears.
#[test]
fn rollout_undo_of_stateful_and_daemon_sets_sticks() {
    for (kind, resource) in [("StatefulSet", "statefulset"), ("DaemonSet", "daemonset")] {
        let world = World::new(&format!("wl-undo-{resource}"));
        let repo = world.repository("app");
        world.push("app", "1.0.0");
        world.apply(&revisioned(kind, "web", &repo));
        let target = format!("{resource}/web");
        wait_for(
            Duration::from_secs(30),
            "the first ControllerRevision (the test environment's controller-manager must run the \
             statefulset and daemonset controllers: `scripts/testenv up` restarts an older one)",
            || (controller_revisions(&world).len() == 1).then_some(()),
        );
        // Creation times have one-second resolution and tell a restored revision from the
        // ones it undid.
        std::thread::sleep(Duration::from_millis(1100));

        world.push("app", "1.1.0");
        let out = world.reconcile();
        assert!(out.contains("patched: app:"), "{kind}: {out}");
        assert_eq!(world.image(&target, "app"), format!("{repo}:1.1.0"));
        let revisions = wait_for(
            Duration::from_secs(30),
            "the second ControllerRevision",
            || {
                let revisions = controller_revisions(&world);
                (revisions.len() == 2).then_some(revisions)
            },
        );
        assert_eq!(
            revisions,
            vec![(1, format!("{repo}:1.0.0")), (2, format!("{repo}:1.1.0"))],
            "{kind}"
        );
        std::thread::sleep(Duration::from_millis(1100));

        world
            .env
            .kubectl(&["rollout", "undo", &target, "-n", &world.namespace]);
        assert_eq!(world.image(&target, "app"), format!("{repo}:1.0.0"));
        // The controller renumbers the restored revision: 1.0.0 is now revision 3.
        wait_for(Duration::from_secs(30), "the undo's revision", || {
            let revisions = controller_revisions(&world);
            revisions
                .iter()
                .any(|(number, image)| *number == 3 && *image == format!("{repo}:1.0.0"))
                .then_some(())
        });
        let out = world.reconcile();
        assert!(
            out.contains("held back")
                && out.contains("1.1.0 was undone")
                && out
                    .contains("ControllerRevision 3 restored an older template over revisions [2]"),
            "{kind}: {out}"
        );
        assert_eq!(world.image(&target, "app"), format!("{repo}:1.0.0"));

        world.push("app", "1.2.0");
        let out = world.reconcile();
        assert!(out.contains("patched"), "{kind}: {out}");
        assert_eq!(world.image(&target, "app"), format!("{repo}:1.2.0"));
    }
}

/// A workload whose patch the apiserver refuses under `keelson run`: receivers get one
/// "update failed" message with the apiserver's reason (not one per poll), and the Deployment a
/// Warning Event.
#[test]
fn keelson_run_tells_a_refused_workload_patch_once_with_the_reason() {
    let world = World::new("wl-fail-run");
    let repo = world.repository("netutils");
    world.push("netutils", "3.4.5");
    world.apply(&ithome(&repo));
    // Everything `keelson run -n NS` reads and writes, but no patch of Deployments.
    let kubeconfig = support::restricted_kubeconfig(
        &world.env,
        &world.namespace,
        r#"  - apiGroups: [""]
    resources: ["secrets", "configmaps", "serviceaccounts"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["apps"]
    resources: ["deployments", "replicasets", "statefulsets", "daemonsets", "controllerrevisions"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["batch"]
    resources: ["cronjobs"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "update", "patch"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
"#,
    );
    let receiver = support::receiver::Receiver::start(200, false);
    let url = receiver.url();
    let controller = support::controller::RunningController::start_with_kubeconfig(
        &kubeconfig.display().to_string(),
        &[
            "-n",
            &world.namespace,
            "--leader-election-namespace",
            &world.namespace,
            "--default-schedule",
            "@every 1s",
        ],
        &[("KEELSON_NOTIFY_WEBHOOK_URL", url.as_str())],
    );
    world.push("netutils", "4.5.6");
    let failed = wait_for(Duration::from_secs(30), "the failure message", || {
        messages(&receiver)
            .into_iter()
            .find(|m| m["name"] == "update-failed")
    });
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("forbidden") && reason.contains("403"),
        "the apiserver's message and code: {failed}"
    );
    // Polls go on every second and fail alike: told once.
    std::thread::sleep(Duration::from_secs(5));
    let failures = messages(&receiver)
        .into_iter()
        .filter(|m| m["name"] == "update-failed")
        .count();
    assert_eq!(failures, 1, "{:#?}", messages(&receiver));
    let events = world.events_on("Deployment", "ithome");
    assert!(
        events
            .iter()
            .any(|(reason, component, _)| reason == "UpdateFailed" && component == "keelson"),
        "{events:?}"
    );
    assert_eq!(
        world.image("deployment/ithome", "ithome"),
        format!("{repo}:3.4.5")
    );
    drop(controller);
}
