//! Approvals in the real environment: a release whose block asks for two approvals moves only
//! after two distinct voters approve; one rejection ends a request and the rejected tag is not
//! asked for again; a newer tag supersedes a pending request; a request past its deadline
//! expires; two voters at once both count; the controller takes votes over HTTP.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::TestEnv;
use support::controller::{RunningController, wait_for};
use support::registry::TestRegistry;

struct World {
    env: TestEnv,
    registry: TestRegistry,
    runtime: tokio::runtime::Runtime,
    namespace: String,
    repository: String,
}

impl World {
    fn new(prefix: &str) -> Self {
        Self::polling(prefix, "@every 1s")
    }

    /// The demo release asking for two approvals, polled on `schedule`.
    fn polling(prefix: &str, schedule: &str) -> Self {
        let env = TestEnv::get();
        let registry = TestRegistry::anonymous();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let namespace = env.fresh_namespace(prefix);
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
            "keel.policy=all",
            "--set",
            "keel.approvals=2",
            "--set",
            &format!("keel.pollSchedule={schedule}"),
        ]);
        Self {
            env,
            registry,
            runtime,
            namespace,
            repository,
        }
    }

    fn push(&self, tag: &str) {
        self.runtime
            .block_on(self.registry.push_tag(&self.repository, tag));
    }

    fn keelson(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .env("KUBECONFIG", &self.env.kubeconfig)
            .output()
            .expect("run keelson")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.keelson(args);
        assert!(
            out.status.success(),
            "keelson {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn reconcile(&self) -> String {
        self.ok(&["reconcile", "--once", "-n", &self.namespace])
    }

    fn approvals(&self) -> Vec<Value> {
        let text = self.ok(&["approvals", "-n", &self.namespace, "-o", "json"]);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_else(|| panic!("approvals -o json is not an array: {text}"))
    }

    fn approval_for(&self, tag: &str) -> Value {
        let suffix = format!(":{tag}");
        self.approvals()
            .into_iter()
            .find(|a| a["target"].as_str().is_some_and(|t| t.ends_with(&suffix)))
            .unwrap_or_else(|| panic!("no approval for {tag}: {:?}", self.approvals()))
    }

    fn deployed_tag(&self) -> String {
        let text = self
            .env
            .helm3(&["get", "values", "web", "-n", &self.namespace, "-o", "json"]);
        serde_json::from_str::<Value>(&text).expect("values")["image"]["tag"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[test]
fn two_approvals_apply_a_rejection_ends_newer_tags_supersede_and_deadlines_expire() {
    let world = World::new("appr");
    world.push("1.1.0");
    let held = world.reconcile();
    assert!(
        held.contains("approval required: 0 of 2 approvals"),
        "{held}"
    );
    let approval = world.approval_for("1.1.0");
    assert_eq!(approval["state"], "pending");
    assert_eq!(approval["required"], 2);
    assert_eq!(approval["release"], "web");
    assert!(
        approval["diff"]
            .as_str()
            .is_some_and(|d| d.contains("has changed:")),
        "{approval}"
    );
    let id = approval["id"].as_str().expect("id").to_string();

    world.ok(&["approve", &id, "--voter", "ana"]);
    world.ok(&["approve", &id, "--voter", "ana"]);
    let still = world.reconcile();
    assert!(
        still.contains("1 of 2 approvals"),
        "one voter counts once: {still}"
    );
    assert_eq!(world.deployed_tag(), "1.0.0");
    let voted = world.ok(&["approve", &id, "--voter", "bob"]);
    assert!(voted.contains("approved (2 of 2"), "{voted}");
    let applied = world.reconcile();
    assert!(applied.contains("revision 2 deployed"), "{applied}");
    assert_eq!(world.deployed_tag(), "1.1.0");

    // A newer tag supersedes the pending request for an older one.
    world.push("1.2.0");
    world.reconcile();
    world.push("1.3.0");
    world.reconcile();
    assert_eq!(world.approval_for("1.2.0")["state"], "superseded");
    let newer = world.approval_for("1.3.0");
    assert_eq!(newer["state"], "pending");

    // One rejection ends it, and the rejected tag is not asked for again.
    let receiver = support::receiver::Receiver::start(200, false);
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["reject", newer["id"].as_str().expect("id"), "--voter", "cy"])
        .env("KUBECONFIG", &world.env.kubeconfig)
        .env("KEELSON_NOTIFY_WEBHOOK_URL", receiver.url())
        .output()
        .expect("run keelson reject");
    let rejected = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && rejected.contains("rejected"),
        "{rejected}"
    );
    assert!(
        receiver
            .bodies()
            .iter()
            .any(|b| b.contains("\"name\":\"approval-rejected\"")),
        "the CLI's rejection is told: {:?}",
        receiver.bodies()
    );
    let after = world.reconcile();
    assert!(after.contains("1.3.0 was rejected"), "{after}");
    let count = world.approvals().len();
    world.reconcile();
    assert_eq!(
        world.approvals().len(),
        count,
        "no new request for a rejected tag"
    );
    assert_eq!(world.deployed_tag(), "1.1.0");
    // A vote on a decided request is refused.
    let late = world.keelson(&["approve", newer["id"].as_str().expect("id")]);
    assert!(!late.status.success());
    assert!(String::from_utf8_lossy(&late.stderr).contains("is rejected, not pending"));

    // A request past its deadline expires.
    world.push("1.4.0");
    world.reconcile();
    let pending = world.approval_for("1.4.0");
    let name = pending["id"]
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
    let expired = world.reconcile();
    assert!(expired.contains("expired"), "{expired}");
    assert_eq!(world.approval_for("1.4.0")["state"], "expired");
    assert_eq!(world.deployed_tag(), "1.1.0");
}

#[test]
fn two_voters_at_once_both_count_and_the_controller_takes_votes_over_http() {
    let world = World::new("appr-http");
    world.push("1.1.0");
    let token = "approve-token";
    let controller = RunningController::start(
        &world.env,
        &[
            "-n",
            &world.namespace,
            "--leader-election-namespace",
            &world.namespace,
        ],
        &[("KEELSON_WEBHOOK_TOKEN", token)],
    );
    let bearer = format!("Authorization: Bearer {token}");
    let listed = wait_for(
        Duration::from_secs(20),
        "the controller's approval request",
        || {
            let (code, body) = controller.get_with("/v1/approvals", &[&bearer]);
            let list: Value = serde_json::from_str(&body).ok()?;
            (code == 200 && list.as_array().is_some_and(|a| a.len() == 1)).then_some(list)
        },
    );
    let id = listed[0]["id"].as_str().expect("id").to_string();
    assert_eq!(
        controller.get("/v1/approvals").0,
        401,
        "approvals need credentials"
    );
    // Two voters at the same moment: both votes are kept (the second retries on conflict).
    let votes: Vec<std::thread::JoinHandle<(u16, String)>> = ["ana", "bob"]
        .into_iter()
        .map(|voter| {
            let body = serde_json::json!({"identifier": id, "action": "approve", "voter": voter})
                .to_string();
            let port = controller.port;
            let bearer = bearer.clone();
            std::thread::spawn(move || {
                support::controller::post_to(port, "/v1/approvals", &body, &[&bearer])
            })
        })
        .collect();
    for vote in votes {
        let (code, body) = vote.join().expect("vote thread");
        assert_eq!(code, 200, "{body}");
    }
    wait_for(Duration::from_secs(30), "the approved revision", || {
        (world.deployed_tag() == "1.1.0").then_some(())
    });
    let approval = world.approval_for("1.1.0");
    assert_eq!(approval["state"], "approved");
    assert_eq!(
        approval["votes"].as_array().map(Vec::len),
        Some(2),
        "{approval}"
    );
}

/// Votes cast with the CLI reach the controller through its watch of the requests: the
/// release moves at once, not at its next poll an hour later.
#[test]
fn cli_votes_move_the_release_under_the_controller_at_once() {
    let world = World::polling("appr-cli-run", "@every 1h");
    world.push("1.1.0");
    let controller = RunningController::start(
        &world.env,
        &[
            "-n",
            &world.namespace,
            "--leader-election-namespace",
            &world.namespace,
        ],
        &[],
    );
    // The start-up plan opens the request.
    let id = wait_for(
        Duration::from_secs(20),
        "the controller's approval request",
        || {
            world
                .approvals()
                .first()
                .and_then(|a| a["id"].as_str().map(str::to_string))
        },
    );
    world.ok(&["approve", &id, "--voter", "ana"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        world.deployed_tag(),
        "1.0.0",
        "one vote of two moves nothing"
    );
    world.ok(&["approve", &id, "--voter", "bob"]);
    wait_for(Duration::from_secs(20), "the approved revision", || {
        (world.deployed_tag() == "1.1.0").then_some(())
    });
    drop(controller);
}

fn names(receiver: &support::receiver::Receiver) -> Vec<String> {
    receiver
        .bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_controller_survives_a_restart_mid_approval_and_tells_every_step() {
    let world = World::new("appr-run");
    let token = "flow-token";
    let bearer = format!("Authorization: Bearer {token}");
    let receiver = support::receiver::Receiver::start(200, false);
    let url = receiver.url();
    let envs = [
        ("KEELSON_WEBHOOK_TOKEN", token),
        ("KEELSON_NOTIFY_WEBHOOK_URL", url.as_str()),
    ];
    let args = [
        "-n",
        &world.namespace,
        "--leader-election-namespace",
        &world.namespace,
    ];
    let vote = |controller: &RunningController, id: &str, action: &str, voter: &str| {
        let body =
            serde_json::json!({"identifier": id, "action": action, "voter": voter}).to_string();
        controller.post("/v1/approvals", &body, &[&bearer])
    };
    let request_for = |controller: &RunningController, tag: &str| -> String {
        let suffix = format!(":{tag}");
        wait_for(
            Duration::from_secs(20),
            &format!("the request for {tag}"),
            || {
                let (_, body) = controller.get_with("/v1/approvals", &[&bearer]);
                let list: Value = serde_json::from_str(&body).ok()?;
                list.as_array()?.iter().find_map(|a| {
                    (a["state"] == "pending" && a["target"].as_str()?.ends_with(&suffix))
                        .then(|| a["id"].as_str().map(str::to_string))
                        .flatten()
                })
            },
        )
    };

    world.push("1.1.0");
    let mut first = RunningController::start(&world.env, &args, &envs);
    let id = request_for(&first, "1.1.0");
    assert_eq!(vote(&first, &id, "approve", "ana").0, 200);
    // The controller restarts between the two votes: the state is in the cluster.
    first.kill();
    let controller = RunningController::start(&world.env, &args, &envs);
    assert_eq!(
        vote(&controller, &id, "approve", "ana").0,
        200,
        "a voter counts once"
    );
    assert_eq!(world.deployed_tag(), "1.0.0");
    assert_eq!(vote(&controller, &id, "approve", "bob").0, 200);
    wait_for(Duration::from_secs(30), "the approved revision", || {
        (world.deployed_tag() == "1.1.0").then_some(())
    });

    // Rejected, then the rejected tag is not asked for again.
    world.push("1.2.0");
    let rejected = request_for(&controller, "1.2.0");
    let (code, body) = vote(&controller, &rejected, "reject", "cy");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        vote(&controller, &rejected, "approve", "dee").0,
        409,
        "decided"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(world.deployed_tag(), "1.1.0");
    assert_eq!(
        world
            .approvals()
            .iter()
            .filter(|a| a["target"].as_str().is_some_and(|t| t.ends_with(":1.2.0")))
            .count(),
        1
    );

    // Past its deadline: expired by the controller's next look.
    world.push("1.3.0");
    let expiring = request_for(&controller, "1.3.0");
    let name = expiring
        .split_once('/')
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
    let told = wait_for(Duration::from_secs(30), "every kind of message", || {
        let names = names(&receiver);
        [
            "update-planned",
            "approval-requested",
            "approval-approved",
            "update-applied",
            "approval-rejected",
            "approval-expired",
        ]
        .iter()
        .all(|kind| names.iter().any(|n| n == kind))
        .then_some(names)
    });
    assert_eq!(
        told.iter().filter(|n| *n == "approval-requested").count(),
        3,
        "one request per target, however often the release was planned: {told:?}"
    );
    assert_eq!(world.approval_for("1.3.0")["state"], "expired");
    // Kubernetes Events for the request and the update.
    let events = world.env.kubectl(&[
        "get",
        "events",
        "-n",
        &world.namespace,
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ]);
    for reason in ["ApprovalRequested", "Updated", "ApprovalExpired"] {
        assert!(events.lines().any(|l| l == reason), "{reason} in {events}");
    }
}
