//! Proof on the shared chart corpus (issue 14 §3): every chart of `KEELSON_SHARED_CHARTS` that
//! installs on the test environment's Kubernetes 1.20 is installed by helm 3 and by helm 4 with a
//! `keel:` block tracking its main image (pushed to the local registry), keelson moves it to a
//! newer tag (`reconcile --once`), and the result is compared with a twin release that helm itself
//! upgraded with `--reuse-values --set <tag path>=<new tag>`: `helm get manifest` and
//! `helm get values` (YAML and JSON) must be identical once namespaces are normalised (the twin has
//! the same release name in a namespace of its own). Charts with dependencies are installed from copies whose dependencies come from the
//! environment's two chart repositories (static HTTP and OCI), so keelson can fetch them.
//!
//! The per-chart table is printed and written to `target/corpus-proof.md` (docs/corpus-proof.md
//! is its committed copy with the analysis).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TestEnv;
use support::registry::TestRegistry;

const OLD_TAG: &str = "1.0.0";
const NEW_TAG: &str = "1.1.0";
/// Charts run concurrently with this bound: the machine has 2 cores shared with other tests.
const PARALLEL_CHARTS: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Repo {
    Http,
    Oci,
}

/// How one corpus chart is installed on Kubernetes 1.20 and where its main image lives.
struct ChartCase {
    name: &'static str,
    /// Values (JSON) that switch off what 1.20 or the test environment lacks.
    values: &'static str,
    /// Extra helm flags for install and upgrade.
    flags: &'static [&'static str],
    /// Install with helm 4's client-side apply (`--server-side=false`): its default server-side
    /// apply is refused by 1.20 for Service ports without `protocol` ("associative list with keys
    /// has an element that omits key field"), a key 1.20's schema gives no default.
    helm4_client_side: bool,
    /// Why the values and flags are there (goes into the report).
    why: &'static str,
    /// Registry value paths tried in order (the last one is set to the local registry); empty
    /// when the chart has none and the registry goes into the repository value.
    registry: &'static [&'static str],
    repository: &'static str,
    tag: &'static str,
    digest: Option<&'static str>,
    /// Why keelson cannot reproduce revision 1 byte for byte and must patch; None: it must
    /// render in full (a fall back to patch mode is a failure).
    patch_mode_because: Option<&'static str>,
    /// Dependencies served from the local chart repositories: (name in Chart.yaml, vendored
    /// directory under charts/, repository kind).
    deps: &'static [(&'static str, &'static str, Repo)],
}

const BITNAMI_WHY: &str = "global.security.allowInsecureImages (bitnami charts refuse non-bitnami images); \
PodDisruptionBudgets off (common renders policy/v1, which 1.20 does not serve); passwords left \
to the chart (generated at install, kept through lookup)";

const CASES: &[ChartCase] = &[
    ChartCase {
        name: "argo-rollouts",
        values: r#"{"installCRDs": false}"#,
        flags: &[],
        helm4_client_side: false,
        why: "installCRDs=false: its CRDs use x-kubernetes-validations, unknown to 1.20",
        registry: &["controller.image.registry"],
        repository: "controller.image.repository",
        tag: "controller.image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "external-dns",
        values: "{}",
        flags: &[],
        helm4_client_side: false,
        why: "-",
        registry: &[],
        repository: "image.repository",
        tag: "image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "harbor",
        values: "{}",
        flags: &[],
        helm4_client_side: true,
        why: "-",
        registry: &[],
        repository: "core.image.repository",
        tag: "core.image.tag",
        digest: None,
        patch_mode_because: Some("its secrets are randAlphaNum, new at every render"),
        deps: &[],
    },
    ChartCase {
        name: "keel",
        values: "{}",
        flags: &[],
        helm4_client_side: false,
        why: "-",
        registry: &[],
        repository: "image.repository",
        tag: "image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "metrics-server",
        values: r#"{"apiService": {"create": false}}"#,
        flags: &[],
        helm4_client_side: false,
        why: "apiService.create=false: the cluster-wide v1beta1.metrics.k8s.io APIService, with no pod behind it, breaks API discovery for everything sharing the cluster",
        registry: &[],
        repository: "image.repository",
        tag: "image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "mongodb",
        values: r#"{"global": {"security": {"allowInsecureImages": true}},
            "pdb": {"create": false}}"#,
        flags: &[],
        helm4_client_side: true,
        why: BITNAMI_WHY,
        registry: &["global.imageRegistry", "image.registry"],
        repository: "image.repository",
        tag: "image.tag",
        digest: Some("image.digest"),
        patch_mode_because: None,
        deps: &[("common", "common", Repo::Oci)],
    },
    ChartCase {
        name: "nginx",
        values: r#"{"global": {"security": {"allowInsecureImages": true}},
            "pdb": {"create": false}}"#,
        flags: &[],
        helm4_client_side: true,
        why: BITNAMI_WHY,
        registry: &["global.imageRegistry", "image.registry"],
        repository: "image.repository",
        tag: "image.tag",
        digest: Some("image.digest"),
        patch_mode_because: None,
        deps: &[("common", "common", Repo::Http)],
    },
    ChartCase {
        name: "postgresql",
        values: r#"{"global": {"security": {"allowInsecureImages": true}},
            "primary": {"pdb": {"create": false}},
            "readReplicas": {"pdb": {"create": false}}}"#,
        flags: &[],
        helm4_client_side: true,
        why: BITNAMI_WHY,
        registry: &["global.imageRegistry", "image.registry"],
        repository: "image.repository",
        tag: "image.tag",
        digest: Some("image.digest"),
        patch_mode_because: None,
        deps: &[("common", "common", Repo::Http)],
    },
    ChartCase {
        name: "redis",
        values: r#"{"global": {"security": {"allowInsecureImages": true}},
            "master": {"pdb": {"create": false}},
            "replica": {"pdb": {"create": false}},
            "sentinel": {"pdb": {"create": false}}}"#,
        flags: &["--disable-openapi-validation"],
        helm4_client_side: true,
        why: "--disable-openapi-validation: its Services set internalTrafficPolicy, unknown to 1.20; and as for every bitnami chart: allowInsecureImages, PodDisruptionBudgets off",
        registry: &["global.imageRegistry", "image.registry"],
        repository: "image.repository",
        tag: "image.tag",
        digest: Some("image.digest"),
        patch_mode_because: None,
        deps: &[("common", "common", Repo::Oci)],
    },
    ChartCase {
        name: "sealed-secrets",
        values: "{}",
        flags: &[],
        helm4_client_side: false,
        why: "-",
        registry: &["image.registry"],
        repository: "image.repository",
        tag: "image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "starter",
        values: "{}",
        flags: &[],
        helm4_client_side: false,
        why: "-",
        registry: &[],
        repository: "image.repository",
        tag: "image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "vault",
        values: "{}",
        flags: &[],
        helm4_client_side: true,
        why: "-",
        registry: &[],
        repository: "server.image.repository",
        tag: "server.image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "velero",
        values: r#"{"upgradeCRDs": false, "configuration": {"backupStorageLocation": [], "volumeSnapshotLocation": []}}"#,
        flags: &["--skip-crds"],
        helm4_client_side: true,
        why: "upgradeCRDs=false: its pre-install hook Job never completes without a kubelet; --skip-crds: 1.20 refuses its CRDs (`default: null` on string fields), so no BackupStorageLocation/VolumeSnapshotLocation either",
        registry: &[],
        repository: "image.repository",
        tag: "image.tag",
        digest: None,
        patch_mode_because: None,
        deps: &[],
    },
    ChartCase {
        name: "wordpress",
        values: r#"{"global": {"security": {"allowInsecureImages": true}},
            "pdb": {"create": false},
            "mariadb": {"primary": {"pdb": {"create": false}}}}"#,
        flags: &[],
        helm4_client_side: true,
        why: BITNAMI_WHY,
        registry: &["global.imageRegistry", "image.registry"],
        repository: "image.repository",
        tag: "image.tag",
        digest: Some("image.digest"),
        patch_mode_because: None,
        deps: &[
            ("common", "common", Repo::Http),
            ("mariadb", "mariadb", Repo::Http),
            ("memcached", "memcached", Repo::Oci),
        ],
    },
];

/// Charts whose `kubeVersion` excludes 1.20: helm refuses them before touching the cluster, and
/// `helm install` has no way to claim another cluster version.
const REFUSED_BY_KUBE_VERSION: &[&str] = &["argo-cd", "ingress-nginx", "keda", "podinfo"];

/// What the run shares: the registry, the two chart repositories, a helm home of its own.
struct Run {
    env: TestEnv,
    registry: TestRegistry,
    corpus: PathBuf,
    run_id: String,
    http_dir: PathBuf,
    http_url: String,
    oci: String,
    work: PathBuf,
}

impl Run {
    fn new() -> Self {
        let corpus = support::shared_charts();
        let env = TestEnv::get();
        let registry = TestRegistry::anonymous();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let run_id = format!("{:x}{nanos:x}", std::process::id());
        let http_dir = PathBuf::from(support::env_var("KEELSON_CHART_REPO_DIR"))
            .join(format!("corpus-{run_id}"));
        let http_url = format!("{}/corpus-{run_id}", support::env_var("KEELSON_CHART_REPO"));
        let oci = format!(
            "{}/corpus-{run_id}/charts",
            support::env_var("KEELSON_OCI_CHARTS")
        );
        let work = std::env::temp_dir().join(format!("keelson-corpus-{run_id}"));
        std::fs::create_dir_all(&http_dir).expect("chart repository directory");
        std::fs::create_dir_all(work.join("helm")).expect("scratch directory");
        Self {
            env,
            registry,
            corpus,
            run_id,
            http_dir,
            http_url,
            oci,
            work,
        }
    }

    fn helm_status(&self, helm: &str, args: &[&str]) -> Output {
        self.env.helm_in_home(helm, &self.work.join("helm"), args)
    }

    fn helm(&self, helm: &str, args: &[&str]) -> Result<String, String> {
        let out = self.helm_status(helm, args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`helm {}` failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn keelson(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .env("KUBECONFIG", &self.env.kubeconfig)
            .env("KEELSON_CHART_CACHE_DIR", self.work.join("chart-cache"))
            .env("HELM_CONFIG_HOME", self.work.join("helm/config"))
            .env_remove("HELM_REGISTRY_CONFIG")
            .env_remove("HELM_REPOSITORY_CONFIG")
            .output()
            .map_err(|err| format!("cannot run keelson: {err}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("keelson {} failed: {text}", args.join(" ")))
        }
    }

    /// Publishes every vendored dependency the cases serve: HTTP ones as archives next to an
    /// `index.yaml`, OCI ones with `helm push --plain-http`. The vendored subcharts keep their
    /// own `charts/` (mariadb's common), as published bitnami archives do.
    fn publish_dependencies(&self) {
        let helm = &self.env.helm3;
        let packages = self.work.join("packages");
        let mut published = BTreeSet::new();
        for case in CASES {
            for (name, dir, repo) in case.deps {
                let source = self.corpus.join(case.name).join("charts").join(dir);
                let version = chart_version(&source);
                if !published.insert((name.to_string(), version.clone(), *repo == Repo::Oci)) {
                    continue;
                }
                let source = source.display().to_string();
                match repo {
                    Repo::Http => {
                        let dir = self.http_dir.display().to_string();
                        self.helm(helm, &["package", &source, "-d", &dir])
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    Repo::Oci => {
                        let dir = packages.display().to_string();
                        self.helm(helm, &["package", &source, "-d", &dir])
                            .unwrap_or_else(|e| panic!("{e}"));
                        let archive = format!("{dir}/{name}-{version}.tgz");
                        self.helm(helm, &["push", &archive, &self.oci, "--plain-http"])
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                }
            }
        }
        let dir = self.http_dir.display().to_string();
        self.helm(helm, &["repo", "index", &dir, "--url", &self.http_url])
            .unwrap_or_else(|e| panic!("{e}"));
        // `helm dependency update` wants HTTP repositories added, as users do.
        self.helm(
            helm,
            &[
                "repo",
                "add",
                &format!("corpus-{}", self.run_id),
                &self.http_url,
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The chart to install: the corpus directory itself, or for charts with dependencies a
    /// copy whose Chart.yaml names the local repositories, locked by `helm dependency update`.
    fn chart_dir(&self, case: &ChartCase) -> Result<PathBuf, String> {
        let source = self.corpus.join(case.name);
        if case.deps.is_empty() {
            return Ok(source);
        }
        let copy = self.work.join("charts").join(case.name);
        support::copy_dir(&source, &copy);
        std::fs::remove_dir_all(copy.join("charts"))
            .map_err(|err| format!("remove {}/charts: {err}", copy.display()))?;
        let chart_yaml = copy.join("Chart.yaml");
        let text = std::fs::read_to_string(&chart_yaml)
            .map_err(|err| format!("read {}: {err}", chart_yaml.display()))?;
        let text = point_dependencies(&text, case, &self.http_url, &self.oci)?;
        std::fs::write(&chart_yaml, text)
            .map_err(|err| format!("write {}: {err}", chart_yaml.display()))?;
        let _ = std::fs::remove_file(copy.join("Chart.lock"));
        let dir = copy.display().to_string();
        self.helm(
            &self.env.helm3,
            &["dependency", "update", &dir, "--plain-http"],
        )?;
        Ok(copy)
    }
}

fn chart_version(chart: &Path) -> String {
    let text = std::fs::read_to_string(chart.join("Chart.yaml"))
        .unwrap_or_else(|err| panic!("read {}/Chart.yaml: {err}", chart.display()));
    text.lines()
        .find_map(|line| line.strip_prefix("version:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{}/Chart.yaml has no version", chart.display()))
}

/// Rewrites the `repository:` of each dependency the case serves. Chart.yaml lists its
/// dependencies as top-level `- key: ...` items whose keys come in any order (bitnami's are
/// sorted: `condition`, `name`, `repository`).
fn point_dependencies(
    text: &str,
    case: &ChartCase,
    http: &str,
    oci: &str,
) -> Result<String, String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_dependencies = false;
    let mut item: Vec<String> = Vec::new();
    let mut rewritten = 0;
    let mut flush = |item: &mut Vec<String>, out: &mut Vec<String>| {
        let name = item.iter().find_map(|line| {
            line.trim_start_matches('-')
                .trim()
                .strip_prefix("name:")
                .map(|n| n.trim().trim_matches('"').to_string())
        });
        let dep = name.and_then(|n| case.deps.iter().find(|(d, _, _)| *d == n));
        for line in item.drain(..) {
            let body = line.trim_start_matches('-').trim_start();
            match dep {
                Some((_, _, repo)) if body.starts_with("repository:") => {
                    let prefix = &line[..line.len() - body.len()];
                    let url = if *repo == Repo::Http { http } else { oci };
                    out.push(format!("{prefix}repository: {url}"));
                    rewritten += 1;
                }
                _ => out.push(line),
            }
        }
    };
    for line in text.lines() {
        if line.starts_with("dependencies:") {
            in_dependencies = true;
            out.push(line.to_string());
            continue;
        }
        if in_dependencies {
            if line.starts_with("- ") {
                flush(&mut item, &mut out);
                item.push(line.to_string());
                continue;
            }
            if line.starts_with(' ') {
                item.push(line.to_string());
                continue;
            }
            flush(&mut item, &mut out);
            in_dependencies = false;
        }
        out.push(line.to_string());
    }
    flush(&mut item, &mut out);
    if rewritten != case.deps.len() {
        return Err(format!(
            "{}: rewrote {rewritten} dependency repositories, expected {}",
            case.name,
            case.deps.len()
        ));
    }
    Ok(out.join("\n") + "\n")
}

fn set_path(values: &mut Value, path: &str, value: Value) {
    let mut node = values;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !node.get(*part).is_some_and(Value::is_object) {
            node[*part] = json!({});
        }
        node = &mut node[*part];
    }
    node[parts[parts.len() - 1]] = value;
}

/// The case's values with its image at `image_repo` on the local registry and a `keel:` block.
fn case_values(case: &ChartCase, registry_host: &str, image_repo: &str) -> Value {
    let mut values: Value = serde_json::from_str(case.values)
        .unwrap_or_else(|err| panic!("{} values: {err}", case.name));
    let mut image = json!({"repository": case.repository, "tag": case.tag});
    if let Some(registry_path) = case.registry.last() {
        set_path(&mut values, registry_path, json!(registry_host));
        set_path(&mut values, case.repository, json!(image_repo));
        image["registry"] = json!(case.registry);
    } else {
        set_path(
            &mut values,
            case.repository,
            json!(format!("{registry_host}/{image_repo}")),
        );
    }
    if let Some(digest) = case.digest {
        image["digest"] = json!(digest);
    }
    set_path(&mut values, case.tag, json!(OLD_TAG));
    values["keel"] = json!({"policy": "minor", "trigger": "poll", "images": [image]});
    values
}

/// One chart under one helm: what happened.
struct Outcome {
    chart: String,
    helm: &'static str,
    installed: String,
    mode: String,
    manifest: String,
    values: String,
    /// Differences keelson caused (the test fails on any).
    failures: Vec<String>,
}

impl Outcome {
    fn new(chart: &str, helm: &'static str) -> Self {
        Self {
            chart: chart.to_string(),
            helm,
            installed: String::new(),
            mode: "-".into(),
            manifest: "-".into(),
            values: "-".into(),
            failures: Vec::new(),
        }
    }
}

/// Lines differing between keelson's and helm's revision 2, namespaces normalised. A line that
/// already differed between the two installs (a random password, a checksum over content that
/// names the namespace) is not keelson's doing as long as both upgrades changed it alike (or
/// left it alike); when only helm's upgrade regenerated it (patch mode keeps the deployed
/// value), it is counted apart and reported.
struct Comparison {
    differing: Vec<String>,
    masked: usize,
    random_regenerated: usize,
}

fn compare_manifests(orig1: &str, twin1: &str, orig2: &str, twin2: &str) -> Comparison {
    let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
    let (o1, t1, o2, t2) = (lines(orig1), lines(twin1), lines(orig2), lines(twin2));
    let mut result = Comparison {
        differing: Vec::new(),
        masked: 0,
        random_regenerated: 0,
    };
    let aligned = o1.len() == t1.len() && o1.len() == o2.len() && o2.len() == t2.len();
    if !aligned {
        if o2 != t2 {
            result.differing.push(format!(
                "line counts differ (keelson {} lines, helm {} lines; installs {} and {})",
                o2.len(),
                t2.len(),
                o1.len(),
                t1.len()
            ));
            for (a, b) in o2.iter().zip(&t2).filter(|(a, b)| a != b).take(5) {
                result.differing.push(format!("keelson `{a}` / helm `{b}`"));
            }
        }
        return result;
    }
    for i in 0..o2.len() {
        if o2[i] == t2[i] {
            continue;
        }
        if o1[i] != t1[i] {
            if (o2[i] != o1[i]) == (t2[i] != t1[i]) {
                result.masked += 1;
            } else {
                result.random_regenerated += 1;
            }
            continue;
        }
        result.differing.push(format!(
            "line {}: keelson `{}` / helm `{}`",
            i + 1,
            o2[i],
            t2[i]
        ));
    }
    result
}

/// helm's own error message out of a failed command's output.
fn first_line(text: &str) -> String {
    text.find("Error: ")
        .map(|at| &text[at..])
        .unwrap_or(text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect()
}

/// A release removed (with its namespace) however the case ends.
struct Installed<'a> {
    run: &'a Run,
    helm: String,
    release: String,
    namespace: String,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let _ = self.run.helm_status(
            &self.helm,
            &["uninstall", &self.release, "-n", &self.namespace],
        );
        // StatefulSets' claims keep `kubernetes.io/pvc-protection`, which nothing removes
        // here (no kubelet): the namespace would stay Terminating forever.
        let kubectl = &self.run.env.kubectl;
        let claims = self.run.env.run_status(
            kubectl,
            &["get", "pvc", "-n", &self.namespace, "-o", "name"],
        );
        for claim in String::from_utf8_lossy(&claims.stdout).lines() {
            let _ = self.run.env.run_status(
                kubectl,
                &[
                    "patch",
                    claim,
                    "-n",
                    &self.namespace,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ],
            );
        }
        let _ = self.run.env.run_status(
            &self.run.env.kubectl,
            &["delete", "namespace", &self.namespace, "--wait=false"],
        );
    }
}

/// What `helm get` says about a release after its upgrade.
struct Record {
    install_manifest: String,
    upgrade_manifest: String,
    values_yaml: String,
    values_json: String,
}

impl Record {
    fn read(run: &Run, helm: &str, release: &str, namespace: &str) -> Result<Self, String> {
        let get = |args: &[&str]| {
            let mut all = vec!["get"];
            all.extend(args);
            all.extend(["-n", namespace]);
            run.helm(helm, &all)
                .map(|text| text.replace(namespace, "NAMESPACE"))
        };
        Ok(Self {
            install_manifest: get(&["manifest", release, "--revision", "1"])?,
            upgrade_manifest: get(&["manifest", release, "--revision", "2"])?,
            values_yaml: get(&["values", release])?,
            values_json: get(&["values", release, "-o", "json"])?,
        })
    }
}

/// How one chart is installed under one helm.
struct Setup<'a> {
    run: &'a Run,
    case: &'a ChartCase,
    helm: String,
    helm_label: &'static str,
    chart: String,
    values_file: String,
}

impl<'a> Setup<'a> {
    /// Installs `release` in a fresh namespace with the case's values and flags.
    fn install(&self, release: &str, namespace: &str) -> Result<Installed<'a>, String> {
        let _ = self
            .run
            .env
            .run_status(&self.run.env.kubectl, &["create", "namespace", namespace]);
        let installed = Installed {
            run: self.run,
            helm: self.helm.clone(),
            release: release.to_string(),
            namespace: namespace.to_string(),
        };
        let mut args = vec![
            "install",
            release,
            &self.chart,
            "-n",
            namespace,
            "-f",
            &self.values_file,
        ];
        args.extend(self.case.flags);
        if self.case.helm4_client_side && self.helm_label == "helm4" {
            args.push("--server-side=false");
        }
        self.run.helm(&self.helm, &args)?;
        Ok(installed)
    }
}

/// One chart under one helm. keelson's release and helm's twin carry the same release name in
/// namespaces of their own, one after the other: charts with fixed cluster-scoped names
/// (keel's ClusterRole, sealed-secrets' `secrets-unsealer`) cannot have both at once. So every
/// `helm get` output of the first is read before it is uninstalled and the twin installed.
fn run_case(run: &Run, case: &ChartCase, chart: &Path, helm_label: &'static str) -> Outcome {
    let mut outcome = Outcome::new(case.name, helm_label);
    let helm = if helm_label == "helm3" {
        run.env.helm3.clone()
    } else {
        run.env.helm4.clone()
    };
    let short = &helm_label[4..];
    let tail = &run.run_id[run.run_id.len().saturating_sub(6)..];
    let namespace = format!("corpus-{}-h{short}-{tail}", case.name);
    let twin_namespace = format!("corpus-{}-h{short}t-{tail}", case.name);
    let release = format!("kc{short}{tail}");
    let image_repo = format!("corpus-{}/{}", run.run_id, case.name);
    let values = case_values(case, &run.registry.host, &image_repo);
    let values_file = run.work.join(format!("{}-values.json", case.name));
    if let Err(err) = std::fs::write(&values_file, values.to_string()) {
        outcome.installed = format!("no: write {}: {err}", values_file.display());
        outcome.failures.push(outcome.installed.clone());
        return outcome;
    }
    let setup = Setup {
        run,
        case,
        helm: helm.clone(),
        helm_label,
        chart: chart.display().to_string(),
        values_file: values_file.display().to_string(),
    };
    let chart = setup.chart.clone();

    // keelson's side.
    let original = match setup.install(&release, &namespace) {
        Ok(installed) => installed,
        Err(err) => {
            outcome.installed = format!("no: {}", first_line(&err));
            outcome.failures.push(err);
            return outcome;
        }
    };
    outcome.installed = "yes".into();
    let check = run.keelson(&["check", "-n", &namespace, "-o", "json"]);
    match check.and_then(|text| {
        serde_json::from_str::<Value>(text.lines().next().unwrap_or_default())
            .map_err(|err| format!("check -o json: {err}: {text}"))
    }) {
        Ok(plans) => {
            let plan = &plans[0];
            outcome.mode = match plan["mode_reason"].as_str() {
                Some(reason) if !reason.is_empty() => {
                    format!("{} ({reason})", plan["mode"].as_str().unwrap_or_default())
                }
                _ => plan["mode"].as_str().unwrap_or("?").to_string(),
            };
            let expected = if case.patch_mode_because.is_some() {
                "patch mode"
            } else {
                "full render"
            };
            if plan["mode"] != expected {
                outcome.failures.push(format!(
                    "keelson check: {} where {expected} is expected",
                    outcome.mode
                ));
            }
            if plan["target"]
                .as_str()
                .is_none_or(|t| !t.ends_with(NEW_TAG))
            {
                outcome
                    .failures
                    .push(format!("keelson check does not target {NEW_TAG}: {plans}"));
            }
        }
        Err(err) => outcome.failures.push(err),
    }
    match run.keelson(&["reconcile", "--once", "-n", &namespace]) {
        Ok(text) if text.contains("revision 2 deployed") => {}
        Ok(text) => {
            outcome
                .failures
                .push(format!("keelson did not deploy revision 2: {text}"));
            return outcome;
        }
        Err(err) => {
            outcome.failures.push(err);
            return outcome;
        }
    }
    match run.helm(
        &helm,
        &["history", &release, "-n", &namespace, "-o", "json"],
    ) {
        Ok(text) => {
            let history: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let last = history.as_array().and_then(|h| h.last()).cloned();
            let deployed = last
                .as_ref()
                .is_some_and(|l| l["revision"] == 2 && l["status"] == "deployed");
            if !deployed {
                outcome.failures.push(format!(
                    "helm history does not show revision 2 deployed: {text}"
                ));
            }
        }
        Err(err) => outcome.failures.push(err),
    }
    let keelson_record = match Record::read(run, &helm, &release, &namespace) {
        Ok(record) => record,
        Err(err) => {
            outcome.failures.push(err);
            return outcome;
        }
    };
    drop(original);

    // helm's twin.
    let twin = match setup.install(&release, &twin_namespace) {
        Ok(installed) => installed,
        Err(err) => {
            outcome.failures.push(format!("the twin's install: {err}"));
            return outcome;
        }
    };
    let tag_set = format!("{}={NEW_TAG}", case.tag);
    let mut args = vec![
        "upgrade",
        &release,
        &chart,
        "-n",
        &twin_namespace,
        "--reuse-values",
        "--set",
        &tag_set,
    ];
    args.extend(case.flags);
    if let Err(err) = run.helm(&helm, &args) {
        outcome.failures.push(format!("the twin's upgrade: {err}"));
        return outcome;
    }
    let helm_record = match Record::read(run, &helm, &release, &twin_namespace) {
        Ok(record) => record,
        Err(err) => {
            outcome.failures.push(err);
            return outcome;
        }
    };
    drop(twin);

    let cmp = compare_manifests(
        &keelson_record.install_manifest,
        &helm_record.install_manifest,
        &keelson_record.upgrade_manifest,
        &helm_record.upgrade_manifest,
    );
    outcome.manifest = if cmp.differing.is_empty() {
        let mut text = "identical".to_string();
        if cmp.masked > 0 {
            text.push_str(&format!(
                " ({} line(s) already differ between the installs, changed alike)",
                cmp.masked
            ));
        }
        if cmp.random_regenerated > 0 {
            text.push_str(&format!(
                "; {} random line(s) regenerated by helm's upgrade, kept by keelson",
                cmp.random_regenerated
            ));
        }
        text
    } else {
        outcome
            .failures
            .push(format!("manifests differ:\n{}", cmp.differing.join("\n")));
        format!("**differs**: {}", cmp.differing.join("; "))
    };
    if !keelson_record
        .upgrade_manifest
        .contains(&format!("{image_repo}:{NEW_TAG}"))
    {
        outcome.failures.push(format!(
            "keelson's manifest does not carry {image_repo}:{NEW_TAG}"
        ));
    }
    let mut values_same = true;
    for (a, b, format) in [
        (
            &keelson_record.values_yaml,
            &helm_record.values_yaml,
            "YAML",
        ),
        (
            &keelson_record.values_json,
            &helm_record.values_json,
            "JSON",
        ),
    ] {
        if a != b {
            values_same = false;
            outcome.failures.push(format!(
                "helm get values ({format}) differ:\nkeelson:\n{a}\nhelm:\n{b}"
            ));
        }
    }
    outcome.values = if values_same {
        "identical (YAML and JSON)".into()
    } else {
        "**differs**".into()
    };
    outcome
}

/// A chart whose kubeVersion excludes 1.20: helm's own message, from both helms.
fn refused_case(run: &Run, chart: &str, helm_label: &'static str) -> Outcome {
    let mut outcome = Outcome::new(chart, helm_label);
    let helm = if helm_label == "helm3" {
        &run.env.helm3
    } else {
        &run.env.helm4
    };
    let path = run.corpus.join(chart).display().to_string();
    let namespace = format!("corpus-refused-{}", run.run_id);
    match run.helm(
        helm,
        &[
            "install",
            "refused",
            &path,
            "-n",
            &namespace,
            "--dry-run=server",
        ],
    ) {
        Ok(_) => outcome
            .failures
            .push(format!("{chart} installs on 1.20 now: add it to CASES")),
        Err(err) => {
            let line = err
                .find("chart requires kubeVersion")
                .map(|at| err[at..].lines().next().unwrap_or_default())
                .unwrap_or_else(|| err.trim());
            if !line.contains("kubeVersion") {
                outcome
                    .failures
                    .push(format!("{chart}: not refused by kubeVersion: {err}"));
            }
            outcome.installed = format!(
                "no: `{}`",
                line.trim_start_matches("Error: ")
                    .trim_start_matches("INSTALLATION FAILED: ")
            );
        }
    }
    outcome
}

#[test]
fn corpus_charts_updated_by_keelson_match_helm_upgrades() {
    let started = Instant::now();
    let run = Run::new();
    for case in CASES {
        assert!(
            run.corpus.join(case.name).join("Chart.yaml").is_file(),
            "{} is missing from the shared corpus at {}",
            case.name,
            run.corpus.display()
        );
    }
    // Every chart of the corpus is either a case or refused: none is silently left out.
    let listed: BTreeSet<String> = std::fs::read_dir(&run.corpus)
        .expect("read the shared corpus")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Chart.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let covered: BTreeSet<String> = CASES
        .iter()
        .map(|c| c.name)
        .chain(REFUSED_BY_KUBE_VERSION.iter().copied())
        .map(str::to_string)
        .collect();
    assert_eq!(
        listed, covered,
        "charts of the corpus vs charts this test covers"
    );

    // KEELSON_CORPUS_ONLY=a,b runs those charts only (a development aid; the report says so).
    let only: Option<Vec<String>> = std::env::var("KEELSON_CORPUS_ONLY")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let selected = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    let cases: Vec<&ChartCase> = CASES.iter().filter(|c| selected(c.name)).collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for case in &cases {
        let repository = format!("corpus-{}/{}", run.run_id, case.name);
        for tag in [OLD_TAG, NEW_TAG] {
            runtime.block_on(run.registry.push_tag(&repository, tag));
        }
    }
    run.publish_dependencies();

    let outcomes = Mutex::new(Vec::new());
    let queue = Mutex::new(cases.clone());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_CHARTS {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some(case) = next else { break };
                    let chart_started = Instant::now();
                    let results = match run.chart_dir(case) {
                        Ok(chart) => ["helm3", "helm4"]
                            .into_iter()
                            .map(|helm| run_case(&run, case, &chart, helm))
                            .collect::<Vec<_>>(),
                        Err(err) => ["helm3", "helm4"]
                            .into_iter()
                            .map(|helm| {
                                let mut o = Outcome::new(case.name, helm);
                                o.installed = format!("no: {}", first_line(&err));
                                o.failures.push(err.clone());
                                o
                            })
                            .collect(),
                    };
                    println!(
                        "{}: {:.0?}",
                        case.name,
                        Duration::from_secs(chart_started.elapsed().as_secs())
                    );
                    if let Ok(mut all) = outcomes.lock() {
                        all.extend(results);
                    }
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_default();
    for chart in REFUSED_BY_KUBE_VERSION.iter().filter(|c| selected(c)) {
        for helm in ["helm3", "helm4"] {
            outcomes.push(refused_case(&run, chart, helm));
        }
    }
    outcomes.sort_by(|a, b| (&a.chart, a.helm).cmp(&(&b.chart, b.helm)));

    let mut table = String::from(
        "| chart | helm | installed | keelson's mode | manifest vs helm's twin | values vs twin | install values/flags |\n|---|---|---|---|---|---|---|\n",
    );
    for o in &outcomes {
        let why = CASES
            .iter()
            .find(|c| c.name == o.chart)
            .map(|c| {
                let deps: Vec<String> = c
                    .deps
                    .iter()
                    .map(|(n, _, r)| {
                        format!("{n} from {}", if *r == Repo::Http { "HTTP" } else { "OCI" })
                    })
                    .collect();
                let mut why = c.why.to_string();
                if c.helm4_client_side && o.helm == "helm4" {
                    why.push_str(
                        "; helm 4 with --server-side=false (1.20 refuses its server-side apply)",
                    );
                }
                if !deps.is_empty() {
                    why.push_str(&format!("; dependencies: {}", deps.join(", ")));
                }
                why
            })
            .unwrap_or_else(|| "-".into());
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            o.chart,
            o.helm,
            o.installed.replace('|', "\\|"),
            o.mode.replace('|', "\\|"),
            o.manifest.replace('|', "\\|"),
            o.values,
            why
        ));
    }
    let elapsed = started.elapsed();
    table.push_str(&format!(
        "\nRuntime: {:.0} s ({PARALLEL_CHARTS} charts at a time{}).\n",
        elapsed.as_secs_f64(),
        only.as_ref()
            .map(|o| format!("; only {}", o.join(",")))
            .unwrap_or_default()
    ));
    println!("\n{table}");
    let report = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/corpus-proof.md");
    if let Err(err) = std::fs::write(&report, &table) {
        println!("cannot write {}: {err}", report.display());
    }
    let failures: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            o.failures
                .iter()
                .map(move |f| format!("{} ({}): {f}", o.chart, o.helm))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&run.work);
    let _ = std::fs::remove_dir_all(&run.http_dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
