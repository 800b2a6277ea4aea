//! Subcharts fetched for a full re-render, in the real environment: the test environment's
//! static HTTP chart repository (`KEELSON_CHART_REPO`, python's http.server) and its
//! docker-registry as an OCI chart registry (`KEELSON_OCI_CHARTS`, `helm push --plain-http`),
//! releases installed by helm 3 and helm 4 after `helm dependency build`, and
//! `keelson reconcile --once` / `keelson check` as a user runs them.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::TestEnv;
use support::registry::TestRegistry;

/// One test's chart repositories (its own directory of the HTTP repository, its own path in
/// the OCI registry), an isolated helm home, and a scratch directory.
struct Repos {
    env: TestEnv,
    registry: TestRegistry,
    runtime: tokio::runtime::Runtime,
    namespace: String,
    /// The image repository the charts' `global.image` points at.
    app: String,
    http_dir: PathBuf,
    http_url: String,
    oci: String,
    work: PathBuf,
}

impl Repos {
    fn new(prefix: &str) -> Self {
        Self::with_oci_registry(prefix, &support::env_var("KEELSON_OCI_CHARTS"))
    }

    /// Like [`Repos::new`], with the OCI charts in `oci_registry` (`oci://host:port`).
    fn with_oci_registry(prefix: &str, oci_registry: &str) -> Self {
        let env = TestEnv::get();
        let registry = TestRegistry::anonymous();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let namespace = env.fresh_namespace(prefix);
        let app = format!("{namespace}/app");
        runtime.block_on(registry.push_tag(&app, "1.0.0"));
        let http_dir = PathBuf::from(support::env_var("KEELSON_CHART_REPO_DIR")).join(&namespace);
        let http_url = format!("{}/{namespace}", support::env_var("KEELSON_CHART_REPO"));
        let oci = format!("{oci_registry}/{namespace}/charts");
        let work = std::env::temp_dir().join(format!("keelson-subcharts-{namespace}"));
        std::fs::create_dir_all(&http_dir).expect("chart repository directory");
        std::fs::create_dir_all(work.join("helm")).expect("scratch directory");
        Self {
            env,
            registry,
            runtime,
            namespace,
            app,
            http_dir,
            http_url,
            oci,
            work,
        }
    }

    /// Runs a helm binary with this test's own helm home (no repositories or registry logins
    /// of the machine), panicking with its output when it fails.
    fn helm(&self, helm: &str, args: &[&str]) -> String {
        let out = self.helm_status(helm, args);
        assert!(
            out.status.success(),
            "`{helm} {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn helm_status(&self, helm: &str, args: &[&str]) -> Output {
        self.env.helm_in_home(helm, &self.work.join("helm"), args)
    }

    /// Copies a chart of fixtures/charts/fetched with the repository URLs of this test.
    fn chart(&self, name: &str, into: &str) -> PathBuf {
        let source = PathBuf::from(support::fixture_chart("fetched")).join(name);
        let target = self.work.join(into).join(name);
        support::copy_dir(&source, &target);
        let chart_yaml = target.join("Chart.yaml");
        let text = std::fs::read_to_string(&chart_yaml).expect("Chart.yaml");
        let text = text
            .replace("http://127.0.0.1:8879/CHARTS", &self.http_url)
            .replace("oci://127.0.0.1:5000/CHARTS", &self.oci);
        std::fs::write(&chart_yaml, text).expect("write Chart.yaml");
        target
    }

    /// Publishes `web` to the HTTP repository (archive + `helm repo index`) and `worker` to
    /// the OCI registry (`helm push --plain-http`).
    fn publish(&self) {
        let helm = &self.env.helm3;
        let web = self.chart("web", "published");
        let dir = self.http_dir.display().to_string();
        self.helm(helm, &["package", &web.display().to_string(), "-d", &dir]);
        self.helm(helm, &["repo", "index", &dir, "--url", &self.http_url]);
        // `helm dependency build` wants HTTP repositories added, as users do.
        self.helm(helm, &["repo", "add", &self.namespace, &self.http_url]);
        let worker = self.chart("worker", "published");
        let packages = self.work.join("packages").display().to_string();
        self.helm(
            helm,
            &["package", &worker.display().to_string(), "-d", &packages],
        );
        self.helm(
            helm,
            &[
                "push",
                &format!("{packages}/worker-1.4.0.tgz"),
                &self.oci,
                "--plain-http",
            ],
        );
    }

    /// `shop` with its Chart.lock (written once by `helm dependency update`, as a user commits
    /// it), then `helm dependency build` by `helm` in a copy of its own.
    fn built_chart(&self, name: &str, helm: &str, label: &str) -> String {
        let locked = self.work.join("locked").join(name);
        if !locked.join("Chart.lock").exists() {
            let chart = self.chart(name, "locked");
            self.helm(
                &self.env.helm3,
                &[
                    "dependency",
                    "update",
                    &chart.display().to_string(),
                    "--plain-http",
                ],
            );
            std::fs::remove_dir_all(chart.join("charts")).expect("remove charts/");
        }
        let copy = self.work.join(label).join(name);
        support::copy_dir(&locked, &copy);
        let copy = copy.display().to_string();
        self.helm(helm, &["dependency", "build", &copy, "--plain-http"]);
        copy
    }

    fn install(&self, helm: &str, release: &str, chart: &str, namespace: &str) {
        self.helm(
            helm,
            &[
                "install",
                release,
                chart,
                "-n",
                namespace,
                "--set",
                &format!(
                    "global.image.repository={}/{}",
                    self.registry.host, self.app
                ),
            ],
        );
    }

    fn push_app(&self, tag: &str) {
        self.runtime
            .block_on(self.registry.push_tag(&self.app, tag));
    }

    /// Runs keelson with this test's chart cache and helm home.
    fn keelson(&self, args: &[&str], cache: &Path) -> (bool, String) {
        self.keelson_with_helm_config(args, cache, &self.work.join("helm/config"))
    }

    /// Runs keelson with this test's chart cache and `helm_config` as helm's config home
    /// (repositories.yaml, registry/config.json).
    fn keelson_with_helm_config(
        &self,
        args: &[&str],
        cache: &Path,
        helm_config: &Path,
    ) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .env("KUBECONFIG", &self.env.kubeconfig)
            .env("KEELSON_CHART_CACHE_DIR", cache)
            .env("HELM_CONFIG_HOME", helm_config)
            .env_remove("HELM_REGISTRY_CONFIG")
            .env_remove("HELM_REPOSITORY_CONFIG")
            .output()
            .expect("run keelson");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn reconcile(&self, namespace: &str, cache: &Path) -> String {
        let (ok, text) = self.keelson(&["reconcile", "--once", "-n", namespace], cache);
        assert!(ok, "keelson reconcile failed: {text}");
        text
    }

    fn check(&self, namespace: &str, cache: &Path) -> String {
        let (ok, text) = self.keelson(&["check", "-n", namespace], cache);
        assert!(ok, "keelson check failed: {text}");
        text
    }

    /// Requests the HTTP repository logged so far for paths of this test containing `part`.
    fn http_requests(&self, part: &str) -> usize {
        let log = std::fs::read_to_string(support::env_var("KEELSON_CHART_REPO_LOG"))
            .expect("chart repository log");
        let needle = format!("GET /{}/{part}", self.namespace);
        log.lines().filter(|line| line.contains(&needle)).count()
    }

    /// Blob downloads of this test's OCI charts the registry logged so far (its access log).
    fn oci_blob_requests(&self) -> usize {
        let dir = support::env_var("KEELSON_TESTENV_DIR");
        let log = std::fs::read_to_string(Path::new(&dir).join("logs/registry.log"))
            .expect("registry log");
        let needle = format!("\"GET /v2/{}/charts/worker/blobs/", self.namespace);
        log.lines()
            .filter(|line| line.starts_with("127.0.0.1 - -") && line.contains(&needle))
            .count()
    }

    fn cleanup(&self, namespaces: &[&str]) {
        for namespace in namespaces {
            let _ = self.env.run_status(
                &self.env.kubectl,
                &["delete", "namespace", namespace, "--wait=false"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.work);
        let _ = std::fs::remove_dir_all(&self.http_dir);
    }
}

fn last_description(repos: &Repos, helm: &str, release: &str, namespace: &str) -> String {
    let text = repos.helm(helm, &["history", release, "-n", namespace, "-o", "json"]);
    let history: Value = serde_json::from_str(&text).expect("history JSON");
    history
        .as_array()
        .and_then(|items| items.last())
        .and_then(|last| last["description"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A release whose dependencies come from the HTTP repository and the OCI registry is updated
/// by a full render: labels, init container arguments and the OCI subchart's checksum follow
/// the new tag, and the revision equals what `helm upgrade --reuse-values --set` writes.
fn full_render_like_helm(helm_of: fn(&TestEnv) -> String, label: &str) {
    let repos = Repos::new(&format!("sub-full-{label}"));
    let helm = helm_of(&repos.env);
    repos.publish();
    let chart = repos.built_chart("shop", &helm, label);
    let namespace = repos.namespace.clone();
    repos.install(&helm, "shop", &chart, &namespace);
    repos.push_app("1.1.0");

    let cache = repos.work.join("cache");
    let check = repos.check(&namespace, &cache);
    assert!(check.contains("1.1.0"), "{check}");
    assert!(!check.contains("patch mode"), "{check}");
    let output = repos.reconcile(&namespace, &cache);
    assert!(
        output.contains("revision 2 deployed") && output.contains("full render"),
        "{output}"
    );
    let description = last_description(&repos, &helm, "shop", &namespace);
    assert!(description.ends_with("full render)"), "{description}");

    let manifest = repos.helm(&helm, &["get", "manifest", "shop", "-n", &namespace]);
    for rendered in [
        "app.kubernetes.io/version: \"1.1.0\"",
        "args: [\"migrate\", \"--to\", \"1.1.0\"]",
        "version: \"1.1.0\"",
        "subcharts: \"jobs,web\"",
    ] {
        assert!(manifest.contains(rendered), "{rendered} in {manifest}");
    }
    assert!(!manifest.contains("1.0.0\""), "{manifest}");
    // web's values.yaml has a second `---` document, which only helm 4 reads.
    let replicas = if label == "h4" {
        "replicas: 2"
    } else {
        "replicas: 1"
    };
    assert!(manifest.contains(replicas), "{replicas} in {manifest}");

    // The twin: the same chart installed by helm and upgraded by helm to the same tag.
    let twin = repos.env.fresh_namespace(&format!("sub-twin-{label}"));
    repos.install(&helm, "shop", &chart, &twin);
    repos.helm(
        &helm,
        &[
            "upgrade",
            "shop",
            &chart,
            "-n",
            &twin,
            "--reuse-values",
            "--set",
            "global.image.tag=1.1.0",
        ],
    );
    assert_eq!(
        manifest,
        repos.helm(&helm, &["get", "manifest", "shop", "-n", &twin])
    );
    assert_eq!(
        repos.helm(
            &helm,
            &["get", "values", "shop", "-n", &namespace, "-o", "json"]
        ),
        repos.helm(&helm, &["get", "values", "shop", "-n", &twin, "-o", "json"])
    );
    repos.cleanup(&[&namespace, &twin]);
}

#[test]
fn helm3_release_with_fetched_subcharts_gets_a_full_render() {
    full_render_like_helm(|env| env.helm3.clone(), "h3");
}

#[test]
fn helm4_release_with_fetched_subcharts_gets_a_full_render() {
    full_render_like_helm(|env| env.helm4.clone(), "h4");
}

/// Many releases of one chart: each dependency (and the index) is downloaded once per run,
/// and a second run takes them from the disk cache without any download.
#[test]
fn many_releases_fetch_each_dependency_once() {
    const RELEASES: usize = 8;
    let repos = Repos::new("sub-cache");
    let helm = repos.env.helm3.clone();
    repos.publish();
    let chart = repos.built_chart("shop", &helm, "h3");
    let namespace = repos.namespace.clone();
    for n in 0..RELEASES {
        repos.install(&helm, &format!("shop-{n}"), &chart, &namespace);
    }
    repos.push_app("1.1.0");
    let (archives, indexes, blobs) = (
        repos.http_requests("web-0.3.1.tgz"),
        repos.http_requests("index.yaml"),
        repos.oci_blob_requests(),
    );
    let cache = repos.work.join("cache");
    let output = repos.reconcile(&namespace, &cache);
    assert_eq!(
        output.matches("full render").count(),
        RELEASES,
        "every release is rendered in full: {output}"
    );
    let downloads = (
        repos.http_requests("web-0.3.1.tgz") - archives,
        repos.http_requests("index.yaml") - indexes,
        repos.oci_blob_requests() - blobs,
    );
    println!(
        "{RELEASES} releases: web archive downloads {}, index downloads {}, worker layer downloads {}",
        downloads.0, downloads.1, downloads.2
    );
    assert_eq!(downloads, (1, 1, 1), "(archive, index, OCI layer)");

    // A second run (a restarted keelson) finds everything in the disk cache.
    repos.push_app("1.2.0");
    let output = repos.reconcile(&namespace, &cache);
    assert_eq!(output.matches("full render").count(), RELEASES, "{output}");
    assert_eq!(
        (
            repos.http_requests("web-0.3.1.tgz") - archives,
            repos.http_requests("index.yaml") - indexes,
            repos.oci_blob_requests() - blobs,
        ),
        (1, 1, 1),
        "the second run downloads nothing"
    );
    repos.cleanup(&[&namespace]);
}

/// A `file://` dependency cannot be fetched for a release: patch mode, and `check` says why.
#[test]
fn file_dependency_is_patch_mode_with_the_reason() {
    let repos = Repos::new("sub-file");
    let helm = repos.env.helm3.clone();
    // `file://../web` next to the chart, as a monorepo has it.
    repos.chart("web", "local");
    let chart = repos.chart("localdep", "local").display().to_string();
    repos.helm(&helm, &["dependency", "build", &chart]);
    let namespace = repos.namespace.clone();
    repos.install(&helm, "local", &chart, &namespace);
    repos.push_app("1.1.0");
    let cache = repos.work.join("cache");
    let check = repos.check(&namespace, &cache);
    assert!(
        check.contains(
            "patch mode: dependency web comes from file://../web, a local path (file://) that cannot be fetched for a release"
        ),
        "{check}"
    );
    let (ok, json) = repos.keelson(&["check", "-n", &namespace, "-o", "json"], &cache);
    assert!(ok, "{json}");
    let plans: Value = serde_json::from_str(json.lines().next().unwrap_or_default())
        .unwrap_or_else(|err| panic!("check -o json: {err}: {json}"));
    assert_eq!(plans[0]["mode"], "patch mode", "{plans}");
    assert!(
        plans[0]["mode_reason"]
            .as_str()
            .is_some_and(|r| r.contains("file://")),
        "{plans}"
    );
    let output = repos.reconcile(&namespace, &cache);
    assert!(
        output.contains("revision 2 deployed") && output.contains("patch mode"),
        "{output}"
    );
    repos.cleanup(&[&namespace]);
}

/// An archive that no longer matches the repository index's digest is refused: patch mode,
/// with the mismatch named.
#[test]
fn tampered_archive_is_refused_with_a_clear_reason() {
    let repos = Repos::new("sub-tamper");
    let helm = repos.env.helm3.clone();
    repos.publish();
    let chart = repos.built_chart("shop", &helm, "h3");
    let namespace = repos.namespace.clone();
    repos.install(&helm, "shop", &chart, &namespace);
    // Replace the published archive with another build of the same version (one template
    // changed), leaving the index and its digest as they were.
    let web = repos.chart("web", "tampered");
    let deployment = web.join("templates/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).expect("template");
    std::fs::write(&deployment, text.replace("replicas:", "replicas: 2 #")).expect("write");
    let dir = repos.http_dir.display().to_string();
    repos.helm(&helm, &["package", &web.display().to_string(), "-d", &dir]);
    repos.push_app("1.1.0");
    let cache = repos.work.join("cache");
    let check = repos.check(&namespace, &cache);
    assert!(
        check.contains("patch mode: cannot fetch dependency web 0.3.1 from")
            && check.contains("digest mismatch")
            && check.contains("but the repository index says sha256:"),
        "{check}"
    );
    let output = repos.reconcile(&namespace, &cache);
    assert!(output.contains("patch mode"), "{output}");
    repos.cleanup(&[&namespace]);
}

/// An OCI chart registry that wants credentials: keelson uses helm's own registry login
/// (`helm registry login` → registry/config.json) where helm runs, and a dockerconfigjson
/// Secret named by `--chart-repository-secret` in the cluster; without either it says why.
#[test]
fn oci_chart_credentials_from_helm_login_or_a_secret() {
    let auth_registry = support::env_var("KEELSON_REGISTRY_AUTH");
    let (user, password) = (
        support::env_var("KEELSON_REGISTRY_USER"),
        support::env_var("KEELSON_REGISTRY_PASSWORD"),
    );
    let repos = Repos::with_oci_registry("sub-creds", &format!("oci://{auth_registry}"));
    let helm = repos.env.helm3.clone();
    repos.helm(
        &helm,
        &[
            "registry",
            "login",
            &auth_registry,
            "--username",
            &user,
            "--password",
            &password,
            "--insecure",
        ],
    );
    repos.publish();
    let chart = repos.built_chart("shop", &helm, "h3");
    let namespace = repos.namespace.clone();
    repos.install(&helm, "shop", &chart, &namespace);
    repos.push_app("1.1.0");

    let nowhere = repos.work.join("no-helm-config");
    let (ok, anonymous) = repos.keelson_with_helm_config(
        &["check", "-n", &namespace],
        &repos.work.join("cache-anonymous"),
        &nowhere,
    );
    assert!(ok, "{anonymous}");
    assert!(
        anonymous.contains("patch mode: cannot fetch dependency worker 1.4.0 from oci://")
            && anonymous.contains("not authorized"),
        "{anonymous}"
    );

    let logged_in = repos.check(&namespace, &repos.work.join("cache-login"));
    assert!(!logged_in.contains("patch mode"), "{logged_in}");

    repos.env.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "chart-registry",
        "-n",
        &namespace,
        &format!("--docker-server={auth_registry}"),
        &format!("--docker-username={user}"),
        &format!("--docker-password={password}"),
    ]);
    let secret = format!("{namespace}/chart-registry");
    let (ok, output) = repos.keelson_with_helm_config(
        &[
            "reconcile",
            "--once",
            "-n",
            &namespace,
            "--chart-repository-secret",
            &secret,
        ],
        &repos.work.join("cache-secret"),
        &nowhere,
    );
    assert!(ok, "{output}");
    assert!(
        output.contains("revision 2 deployed") && output.contains("full render"),
        "{output}"
    );
    repos.cleanup(&[&namespace]);
}

/// `keelson run` keeps fetched subcharts in memory across cycles: releases updated in two
/// successive cycles cost one download per dependency, as its metrics show.
#[test]
fn the_controller_fetches_each_dependency_once_across_cycles() {
    use std::time::Duration;
    use support::controller::{RunningController, wait_for};
    const RELEASES: usize = 3;
    let repos = Repos::new("sub-run");
    let helm = repos.env.helm3.clone();
    repos.publish();
    let chart = repos.built_chart("shop", &helm, "h3");
    let namespace = repos.namespace.clone();
    for n in 0..RELEASES {
        repos.install(&helm, &format!("shop-{n}"), &chart, &namespace);
    }
    let cache = repos.work.join("cache").display().to_string();
    let helm_config = repos.work.join("helm/config").display().to_string();
    let controller = RunningController::start(
        &repos.env,
        &[
            "-n",
            &namespace,
            "--leader-election-namespace",
            &namespace,
            "--default-schedule",
            "@every 2s",
        ],
        &[
            ("KEELSON_CHART_CACHE_DIR", cache.as_str()),
            ("HELM_CONFIG_HOME", helm_config.as_str()),
        ],
    );
    let all_at = |tag: &str| {
        (0..RELEASES).all(|n| {
            let values = repos.helm(
                &helm,
                &[
                    "get",
                    "values",
                    &format!("shop-{n}"),
                    "-n",
                    &namespace,
                    "-o",
                    "json",
                ],
            );
            values.contains(&format!("\"tag\":\"{tag}\""))
        })
    };
    for tag in ["1.1.0", "1.2.0"] {
        repos.push_app(tag);
        wait_for(
            Duration::from_secs(60),
            &format!("every release at {tag}"),
            || all_at(tag).then_some(()),
        );
    }
    for n in 0..RELEASES {
        let description = last_description(&repos, &helm, &format!("shop-{n}"), &namespace);
        assert!(description.ends_with("full render)"), "{description}");
    }
    let fetches = |source: &str| {
        controller.metric(&format!(
            "keelson_subchart_fetches_total{{source=\"{source}\"}}"
        ))
    };
    assert_eq!(fetches("download"), 2.0, "web and worker, once each");
    assert_eq!(fetches("index"), 1.0);
    // Each release needs both dependencies in each of the two cycles (more if a write is
    // retried): all but the two downloads come from memory.
    assert!(
        fetches("memory") >= (2 * 2 * RELEASES - 2) as f64,
        "memory hits {}",
        fetches("memory")
    );
    drop(controller);
    repos.cleanup(&[&namespace]);
}
