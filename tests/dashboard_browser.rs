//! The dashboard in a real browser: Debian's headless Chromium, driven over WebDriver by
//! Debian's chromedriver, loads `keelson run`'s page against the test environment, a screenshot
//! is taken (target/dashboard.png), and an approval clicked in the page is applied.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::TestEnv;
use support::controller::{RunningController, wait_for};
use support::registry::TestRegistry;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    session: String,
}

impl Driver {
    fn start() -> Self {
        let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("chromedriver is missing: run `make test` (scripts/install-prereqs installs Debian's chromium and chromium-driver)")
            });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut driver = Self {
            child,
            base,
            http,
            runtime,
            session: String::new(),
        };
        wait_for(Duration::from_secs(20), "chromedriver", || {
            driver
                .call("GET", "/status", None)
                .ok()
                .filter(|v| v["value"]["ready"] == true)
                .map(|_| ())
        });
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1300,900"],
            },
        }}});
        let session = driver
            .call("POST", "/session", Some(capabilities))
            .expect("a browser session");
        driver.session = session["value"]["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        driver
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let request = match method {
                "GET" => self.http.get(&url),
                "DELETE" => self.http.delete(&url),
                _ => self.http.post(&url).json(&body.unwrap_or(json!({}))),
            };
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let value: Value = response.json().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(value)
            } else {
                Err(format!("{method} {path}: {status} {value}"))
            }
        })
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("WebDriver: {e}"))
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found["value"][ELEMENT]
            .as_str()
            .expect("element id")
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn source(&self) -> String {
        self.session_call("GET", "/source", None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let shot = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["value"].as_str().unwrap_or_default())
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_dashboard_shows_releases_and_an_approval_clicked_in_chromium_is_applied() {
    let env = TestEnv::get();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("dash");
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
        "keel.approvals=1",
        "--set",
        "keel.pollSchedule=@every 1s",
    ]);
    env.helm3(&[
        "install",
        "broken",
        &support::fixture_chart("demo"),
        "-n",
        &namespace,
        "--set",
        &image,
        "--set",
        "image.tag=1.0.0",
        "--set",
        "keel.policy=sometimes",
    ]);
    runtime.block_on(registry.push_tag(&repository, "1.1.0"));
    let token = "dashboard-token";
    let controller = RunningController::start(
        &env,
        &["-n", &namespace, "--leader-election-namespace", &namespace],
        &[("KEELSON_WEBHOOK_TOKEN", token)],
    );
    let bearer = format!("Authorization: Bearer {token}");
    wait_for(Duration::from_secs(20), "the approval request", || {
        let (_, body) = controller.get_with("/v1/approvals", &[&bearer]);
        body.contains("\"state\":\"pending\"").then_some(())
    });

    let driver = Driver::start();
    let page = format!("http://127.0.0.1:{}/", controller.port);
    // The page shows the hold as soon as the approval request exists (listed above), even
    // while the plan that opened it has not recorded its result yet.
    driver.open(&page);
    let source = driver.source();
    assert!(
        source.contains(&format!("{namespace}/web")),
        "the release is listed: {source}"
    );
    assert!(
        source.contains("approval required: 0 of 1"),
        "why it is held: {source}"
    );
    assert!(
        source.contains("is not a policy") || source.contains("sometimes"),
        "the refused block: {source}"
    );
    assert!(
        source.contains("has changed:"),
        "the approval's diff: {source}"
    );
    assert!(
        !source.contains("value=\"approve\""),
        "no buttons before signing in"
    );
    let shot = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    driver.screenshot(&shot);

    driver.type_into("input[name=token]", token);
    driver.click("#login button");
    wait_for(Duration::from_secs(10), "the signed-in page", || {
        driver.source().contains("value=\"approve\"").then_some(())
    });
    driver.click("button[value=approve]");
    wait_for(Duration::from_secs(30), "the approved revision", || {
        let text = env.helm3(&["get", "values", "web", "-n", &namespace, "-o", "json"]);
        let values: Value = serde_json::from_str(&text).ok()?;
        (values["image"]["tag"] == "1.1.0").then_some(())
    });
    driver.open(&page);
    let after = driver.source();
    assert!(after.contains("Pending approvals (0)"), "{after}");
}
