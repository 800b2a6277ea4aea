//! Shared helpers for integration tests that run against the real test environment
//! (`scripts/testenv up`). Every helper fails loudly, naming the command to run, when the
//! environment is missing: these tests never pass silently.

#![allow(dead_code)]

pub mod controller;
pub mod receiver;
pub mod registry;

use std::path::PathBuf;
use std::process::{Command, Output};

const HOW_TO_START: &str = "the test environment is not running: run `make test` (or \
`scripts/testenv up && eval \"$(scripts/testenv env)\"` before `cargo test`)";

/// Reads a variable that `scripts/testenv env` exports; panics with how to start the env.
pub fn env_var(name: &str) -> String {
    if let Ok(value) = std::env::var(name)
        && !value.is_empty()
    {
        return value;
    }
    // Fall back to the env file `scripts/testenv up` writes, so a plain `cargo test` works
    // after the env is up.
    if let Some(value) = env_file_value(name) {
        return value;
    }
    panic!("{name} is not set: {HOW_TO_START}");
}

fn env_file_value(name: &str) -> Option<String> {
    let dir = std::env::var("KEELSON_TESTENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testenv"));
    let text = std::fs::read_to_string(dir.join("env.sh")).ok()?;
    let prefix = format!("export {name}='");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.strip_suffix('\''))
        .map(str::to_string)
}

/// Paths of the real tools and the cluster of the test environment.
pub struct TestEnv {
    pub kubeconfig: String,
    pub helm3: String,
    pub helm4: String,
    pub kubectl: String,
}

impl TestEnv {
    pub fn get() -> Self {
        let env = Self {
            kubeconfig: env_var("KUBECONFIG"),
            helm3: env_var("HELM3"),
            helm4: env_var("HELM4"),
            kubectl: env_var("KUBECTL"),
        };
        // Fail early and clearly when the variables point at an env that is down.
        let probe = Command::new(&env.kubectl)
            .args(["--kubeconfig", &env.kubeconfig, "get", "--raw", "/readyz"])
            .output();
        match probe {
            Ok(out) if out.status.success() => env,
            Ok(out) => panic!(
                "the apiserver at {} is not ready ({}): {HOW_TO_START}",
                env.kubeconfig,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(err) => panic!("cannot run {}: {err}: {HOW_TO_START}", env.kubectl),
        }
    }

    /// Runs a tool with KUBECONFIG set; panics with its stderr when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.run_status(program, args);
        assert!(
            out.status.success(),
            "`{program} {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a tool with KUBECONFIG set and returns whatever happened.
    pub fn run_status(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"))
    }

    pub fn helm3(&self, args: &[&str]) -> String {
        self.run(&self.helm3, args)
    }

    pub fn helm4(&self, args: &[&str]) -> String {
        self.run(&self.helm4, args)
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.run(&self.kubectl, args)
    }

    /// A kube client for the env's cluster, built from its kubeconfig as keelson builds one.
    pub async fn client(&self) -> kube::Client {
        keelson::cluster::install_crypto_provider();
        keelson::cluster::ClusterArgs {
            kubeconfig: Some(self.kubeconfig.clone().into()),
            context: None,
        }
        .client()
        .await
        .expect("kube client for the test env")
    }

    /// Creates a namespace unique to this test run, so tests never see each other's releases.
    pub fn fresh_namespace(&self, prefix: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("{prefix}-{}-{nanos:x}", std::process::id());
        self.kubectl(&["create", "namespace", &name]);
        name
    }
}

/// The project's own fixture chart directory by name.
pub fn fixture_chart(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/charts")
        .join(name)
        .display()
        .to_string()
}

/// The shared chart corpus (`KEELSON_SHARED_CHARTS`); panics naming the command to run when the
/// variable is unset or the directory is missing, so corpus tests never pass without the corpus.
#[allow(dead_code)]
pub fn shared_charts() -> PathBuf {
    const HOW: &str = "run `make test` (it passes KEELSON_SHARED_CHARTS=../shared/charts), or \
`KEELSON_SHARED_CHARTS=/path/to/shared/charts cargo test --test <name>`";
    let Some(root) = std::env::var_os("KEELSON_SHARED_CHARTS").map(PathBuf::from) else {
        panic!("KEELSON_SHARED_CHARTS is not set: the shared chart corpus is required: {HOW}");
    };
    if !root.is_dir() {
        panic!(
            "KEELSON_SHARED_CHARTS={} is not a directory: the shared chart corpus is required: {HOW}",
            root.display()
        );
    }
    root
}

/// Copies a directory tree (a fixture chart) to `to`.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create chart copy");
    for entry in std::fs::read_dir(from).expect("read fixture chart") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy chart file");
        }
    }
}

/// A kubeconfig (written to a temporary file) for a new service account `limited` in
/// `namespace` whose Role has exactly `rules` (YAML list items, indented by two spaces), so a
/// test can make the apiserver itself refuse some of keelson's requests.
pub fn restricted_kubeconfig(env: &TestEnv, namespace: &str, rules: &str) -> PathBuf {
    let manifest = format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: limited
  namespace: {namespace}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: limited
  namespace: {namespace}
rules:
{rules}---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: limited
  namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: limited
subjects:
  - kind: ServiceAccount
    name: limited
    namespace: {namespace}
"#
    );
    let file = std::env::temp_dir().join(format!("keelson-rbac-{namespace}.yaml"));
    std::fs::write(&file, manifest).expect("write RBAC manifest");
    env.kubectl(&["apply", "-f", &file.display().to_string()]);
    // The token controller fills in the service account's token Secret.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let secret = loop {
        let name = env.kubectl(&[
            "get",
            "sa",
            "limited",
            "-n",
            namespace,
            "-o",
            "jsonpath={.secrets[0].name}",
        ]);
        if !name.is_empty() {
            break name;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no token for the service account"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let token = env.kubectl(&[
        "get",
        "secret",
        &secret,
        "-n",
        namespace,
        "-o",
        "jsonpath={.data.token}",
    ]);
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| panic!("the token of service account limited is not base64 text"));
    let admin = std::fs::read_to_string(&env.kubeconfig).expect("read kubeconfig");
    let restricted = admin
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("token:") {
                format!("    token: {token}")
            } else if line.trim_start().starts_with("namespace:") {
                format!("    namespace: {namespace}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = std::env::temp_dir().join(format!("keelson-kubeconfig-{namespace}"));
    std::fs::write(&path, restricted).expect("write restricted kubeconfig");
    path
}

impl TestEnv {
    /// Runs `helm` with its cache, config and data under `home` (so repositories and registry
    /// logins a test adds stay its own) and returns whatever happened.
    pub fn helm_in_home(&self, helm: &str, home: &std::path::Path, args: &[&str]) -> Output {
        Command::new(helm)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .unwrap_or_else(|err| panic!("cannot run {helm}: {err}"))
    }
}
