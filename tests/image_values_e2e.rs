//! Image values the way public charts write them, end to end in the real environment: a
//! registry split from the repository with a `global.imageRegistry` override, a tag left empty
//! (the chart's appVersion) or templated, pinned digests, `keelson check`'s explanation, and
//! `keelson suggest` on a corpus chart. Each update is compared with a twin release that helm
//! itself upgraded with `--reuse-values --set …`.

mod support;

use std::process::Command;

use serde_json::Value;
use support::TestEnv;
use support::registry::TestRegistry;

fn keelson(env: &TestEnv, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .output()
        .expect("run keelson");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keelson {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether some line of `table` holds every needle, in this order.
fn has_line(table: &str, needles: &[&str]) -> bool {
    table.lines().any(|line| {
        let mut rest = line;
        needles.iter().all(|needle| match rest.find(needle) {
            Some(at) => {
                rest = &rest[at + needle.len()..];
                true
            }
            None => false,
        })
    })
}

fn values_json(env: &TestEnv, helm: &str, release: &str, namespace: &str) -> Value {
    let text = env.run(
        helm,
        &["get", "values", release, "-n", namespace, "-o", "json"],
    );
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("helm get values: {err}: {text}"))
}

fn write_file(name: &str, text: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "keelson-imgvals-{}-{nanos}-{name}",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write a values file");
    path.display().to_string()
}

/// Deletes the test's namespaces however the test ends, after uninstalling its releases there
/// (`(helm, release, namespace)`): charts with cluster-scoped objects leave none behind.
struct Namespaces<'a>(&'a TestEnv, Vec<String>, Vec<(String, String, String)>);

impl Drop for Namespaces<'_> {
    fn drop(&mut self) {
        for (helm, release, namespace) in &self.2 {
            let _ = self
                .0
                .run_status(helm, &["uninstall", release, "-n", namespace]);
        }
        for namespace in &self.1 {
            let _ = self.0.run_status(
                &self.0.kubectl,
                &["delete", "namespace", namespace, "--wait=false"],
            );
        }
    }
}

const SPLIT_KEEL: &str = "\
keel:
  policy: patch
  trigger: poll
  images:
    - registry: [global.imageRegistry, image.registry]
      repository: image.repository
      tag: image.tag
      digest: image.digest
    - registry: [global.imageRegistry, sidecar.image.registry]
      repository: sidecar.image.repository
      tag: sidecar.image.tag
      digest: sidecar.image.digest
    - registry: [global.imageRegistry, helper.image.registry]
      repository: helper.image.repository
      tag: helper.image.tag
";

/// The fixture chart with split values: the app's tag falls back to appVersion (2.0.0), the
/// sidecar is pinned by digest, the helper's tag is templated; `global.imageRegistry` points at
/// this test's corner of the local registry. keelson's revision equals helm's twin upgrade.
fn split_values_flow(helm_of: fn(&TestEnv) -> String, label: &str) {
    let env = TestEnv::get();
    let helm = helm_of(&env);
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace(&format!("imgvals-{label}"));
    let twin = env.fresh_namespace(&format!("imgvals-twin-{label}"));
    let _cleanup = Namespaces(&env, vec![namespace.clone(), twin.clone()], Vec::new());
    // The registry value carries a path of its own, so each test has its own repositories.
    let image_registry = format!("{}/{namespace}", registry.host);
    let push = |repository: &str, tag: &str| -> String {
        runtime.block_on(registry.push_tag(&format!("{namespace}/{repository}"), tag))
    };
    for tag in ["2.0.0", "2.0.1", "2.1.0"] {
        push("split/app", tag);
        push("split/helper", tag);
    }
    let side_old = push("split/side", "1.0.0");
    let chart = support::fixture_chart("split-image");
    let keel_file = write_file("keel.yaml", SPLIT_KEEL);
    let install = |ns: &str| {
        env.run(
            &helm,
            &[
                "install",
                "split",
                &chart,
                "-n",
                ns,
                "-f",
                &keel_file,
                "--set",
                &format!("global.imageRegistry={image_registry}"),
                "--set",
                &format!("sidecar.image.digest={side_old}"),
            ],
        );
    };
    install(&namespace);
    install(&twin);
    let side_new = push("split/side", "1.0.1");

    // check explains what it read and what it resolved, per image.
    let table = keelson(&env, &["check", "-n", &namespace]);
    let reads = format!(
        "global.imageRegistry={image_registry:?} image.registry=\"docker.io\" image.repository=\"split/app\" image.tag=\"\" image.digest=\"\""
    );
    let (app_old, app_new) = (
        format!("{image_registry}/split/app:2.0.0"),
        format!("{image_registry}/split/app:2.0.1"),
    );
    assert!(
        has_line(&table, &[&reads, &app_old, "deployed manifest"]),
        "{table}"
    );
    assert!(
        has_line(&table, &["split", "image.tag", &app_old, &app_new]),
        "{table}"
    );
    let plans: Value =
        serde_json::from_str(&keelson(&env, &["check", "-n", &namespace, "-o", "json"]))
            .expect("check -o json");
    let plans = plans.as_array().cloned().unwrap_or_default();
    assert_eq!(plans.len(), 3, "{plans:?}");
    let app = &plans[0];
    assert_eq!(app["explain"]["tag_from"], "deployed-manifest", "{app}");
    assert_eq!(
        app["explain"]["resolved"],
        format!("{image_registry}/split/app:2.0.0")
    );
    assert_eq!(app["explain"]["values"][0]["path"], "global.imageRegistry");
    assert_eq!(
        app["explain"]["values"][0]["value"],
        image_registry.as_str()
    );
    let side = &plans[1];
    assert_eq!(side["explain"]["tag_from"], "tag-value", "{side}");
    assert_eq!(
        side["current"],
        format!("{image_registry}/split/side:1.0.0@{side_old}")
    );
    assert_eq!(
        side["target"],
        format!("{image_registry}/split/side:1.0.1@{side_new}")
    );
    let helper = &plans[2];
    assert_eq!(
        helper["explain"]["values"][3]["value"],
        "{{ .Chart.AppVersion }}"
    );
    assert_eq!(
        helper["target"],
        format!("{image_registry}/split/helper:2.0.1")
    );

    assert_eq!(app["mode"], "full render", "{app}");
    let output = keelson(&env, &["reconcile", "--once", "-n", &namespace]);
    assert!(output.contains("revision 2 deployed"), "{output}");
    env.run(
        &helm,
        &[
            "upgrade",
            "split",
            &chart,
            "-n",
            &twin,
            "--reuse-values",
            "--set",
            "image.tag=2.0.1",
            "--set",
            "sidecar.image.tag=1.0.1",
            "--set",
            &format!("sidecar.image.digest={side_new}"),
            "--set",
            "helper.image.tag=2.0.1",
        ],
    );
    let values = values_json(&env, &helm, "split", &namespace);
    assert_eq!(values["image"]["tag"], "2.0.1", "{values}");
    assert_eq!(
        values["image"].get("digest"),
        None,
        "an empty digest value stays unset: {values}"
    );
    assert_eq!(values["sidecar"]["image"]["digest"], side_new.as_str());
    assert_eq!(values, values_json(&env, &helm, "split", &twin));
    let manifest = env.run(&helm, &["get", "manifest", "split", "-n", &namespace]);
    for line in [
        format!("image: \"{image_registry}/split/app:2.0.1\""),
        format!("image: \"{image_registry}/split/side:1.0.1@{side_new}\""),
        format!("image: \"{image_registry}/split/helper:2.0.1\""),
        "app.kubernetes.io/version: \"2.0.1\"".to_string(),
    ] {
        assert!(manifest.contains(&line), "{line} in {manifest}");
    }
    let twin_manifest = env.run(&helm, &["get", "manifest", "split", "-n", &twin]);
    assert!(
        manifest == twin_manifest,
        "keelson's manifest differs from helm's twin:\n{}",
        first_difference(&manifest, &twin_manifest)
    );

    // The written tags are values now: the next check reads them, and nothing moves.
    let table = keelson(&env, &["check", "-n", &namespace]);
    assert!(
        has_line(&table, &["image.tag=\"2.0.1\"", &app_new, "tag value"]),
        "{table}"
    );
    let output = keelson(&env, &["reconcile", "--once", "-n", &namespace]);
    assert!(output.contains("up to date"), "{output}");
}

#[test]
fn split_registry_app_version_and_digest_values_helm3() {
    split_values_flow(|env| env.helm3.clone(), "h3");
}

#[test]
fn split_registry_app_version_and_digest_values_helm4() {
    split_values_flow(|env| env.helm4.clone(), "h4");
}

/// A corpus chart whose image is `registry` + `repository` + `tag: ""` (argo-rollouts: the tag
/// falls back to the chart's appVersion): `keelson suggest` prints the block, added with
/// `helm upgrade --reuse-values -f`, `check` tracks the controller image, and keelson's revision
/// is exactly what `helm upgrade --reuse-values --set controller.image.tag=…` makes of the same
/// release (its `--dry-run` release, taken just before keelson writes). The chart's ClusterRoles
/// and its config checksum carry the release name and namespace, so no twin release can match
/// it byte for byte.
#[test]
fn suggest_on_a_corpus_chart_tracks_its_image_and_the_update_matches_helm() {
    let env = TestEnv::get();
    let chart = support::shared_charts().join("argo-rollouts");
    let chart = chart.display().to_string();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("imgvals-suggest");
    let run = namespace.rsplit('-').next().unwrap_or_default().to_string();
    let release = format!("ro-{run}");
    let _cleanup = Namespaces(
        &env,
        vec![namespace.clone()],
        vec![(env.helm3.clone(), release.clone(), namespace.clone())],
    );
    let image_registry = format!("{}/{namespace}", registry.host);
    for tag in ["v1.9.0", "v1.9.1", "v1.10.0"] {
        runtime.block_on(registry.push_tag(&format!("{namespace}/argoproj/argo-rollouts"), tag));
    }
    // Kubernetes 1.20 does not know the CRDs' x-kubernetes-validations: they stay out.
    env.helm3(&[
        "install",
        &release,
        &chart,
        "-n",
        &namespace,
        "--set",
        "installCRDs=false",
        "--set",
        &format!("controller.image.registry={image_registry}"),
    ]);

    let block = keelson(&env, &["suggest", &release, "-n", &namespace]);
    assert!(
        block.contains(
            "    - registry: controller.image.registry\n      repository: controller.image.repository\n      tag: controller.image.tag\n"
        ),
        "{block}"
    );
    assert!(
        block.contains(&format!(
            "# {image_registry}/argoproj/argo-rollouts:v1.9.0 in Deployment/{release}-argo-rollouts (argo-rollouts)"
        )),
        "{block}"
    );
    let block_file = write_file("suggested.yaml", &block);
    env.helm3(&[
        "upgrade",
        &release,
        &chart,
        "-n",
        &namespace,
        "--reuse-values",
        "-f",
        &block_file,
    ]);

    let plans: Value =
        serde_json::from_str(&keelson(&env, &["check", "-n", &namespace, "-o", "json"]))
            .expect("check -o json");
    let plans = plans.as_array().cloned().unwrap_or_default();
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0]["path"], "controller.image.tag");
    assert_eq!(
        plans[0]["current"],
        format!("{image_registry}/argoproj/argo-rollouts:v1.9.0")
    );
    assert_eq!(
        plans[0]["target"],
        format!("{image_registry}/argoproj/argo-rollouts:v1.9.1"),
        "policy patch: {plans:?}"
    );
    assert_eq!(plans[0]["explain"]["tag_from"], "deployed-manifest");
    assert_eq!(plans[0]["mode"], "full render");

    let helm_made: Value = serde_json::from_str(&env.helm3(&[
        "upgrade",
        &release,
        &chart,
        "-n",
        &namespace,
        "--reuse-values",
        "--set",
        "controller.image.tag=v1.9.1",
        "--dry-run=client",
        "-o",
        "json",
    ]))
    .expect("helm upgrade --dry-run -o json");
    let output = keelson(&env, &["reconcile", "--once", "-n", &namespace]);
    assert!(output.contains("revision 3 deployed"), "{output}");
    let values = values_json(&env, &env.helm3, &release, &namespace);
    assert_eq!(values["controller"]["image"]["tag"], "v1.9.1", "{values}");
    assert_eq!(values, helm_made["config"]);
    let manifest = env.helm3(&["get", "manifest", &release, "-n", &namespace]);
    assert!(
        manifest.contains(&format!(
            "image: \"{image_registry}/argoproj/argo-rollouts:v1.9.1\""
        )),
        "the new image is rendered"
    );
    let expected = helm_made["manifest"].as_str().unwrap_or_default();
    assert!(
        manifest.trim_end() == expected.trim_end(),
        "keelson's manifest differs from helm's:\n{}",
        first_difference(&manifest, expected)
    );
}

/// The first differing line of two texts, with its number, for short failure messages.
fn first_difference(a: &str, b: &str) -> String {
    let (mut left, mut right) = (a.lines(), b.lines());
    for number in 1.. {
        match (left.next(), right.next()) {
            (None, None) => return "(only trailing whitespace differs)".to_string(),
            (l, r) if l != r => return format!("line {number}: {l:?} vs {r:?}"),
            _ => {}
        }
    }
    unreachable!("the loop returns")
}

/// A bitnami chart (its `common` subchart keeps it in patch mode): `global.imageRegistry` points
/// at this test's corner of the local registry over `image.registry: docker.io`. `suggest`
/// names both in order, `check` resolves the image at the override's registry, and the update
/// writes `image.tag` as helm's `--reuse-values --set image.tag=…` would, the manifest equal to
/// helm's but for the TLS material the chart generates anew on every render.
#[test]
fn a_global_image_registry_over_a_bitnami_chart_is_asked_and_kept() {
    let env = TestEnv::get();
    let chart = support::shared_charts().join("nginx");
    let chart = chart.display().to_string();
    let registry = TestRegistry::anonymous();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let namespace = env.fresh_namespace("imgvals-bitnami");
    let _cleanup = Namespaces(
        &env,
        vec![namespace.clone()],
        vec![(env.helm3.clone(), "web".to_string(), namespace.clone())],
    );
    let image_registry = format!("{}/{namespace}", registry.host);
    for tag in [
        "1.29.1-debian-12-r0",
        "1.29.2-debian-12-r0",
        "1.30.0-debian-12-r0",
    ] {
        runtime.block_on(registry.push_tag(&format!("{namespace}/bitnami/nginx"), tag));
    }
    // Kubernetes 1.20 serves no policy/v1 PodDisruptionBudget; bitnami refuses other registries
    // unless told they are meant.
    env.helm3(&[
        "install",
        "web",
        &chart,
        "-n",
        &namespace,
        "--set",
        "pdb.create=false",
        "--set",
        "global.security.allowInsecureImages=true",
        "--set",
        &format!("global.imageRegistry={image_registry}"),
    ]);
    let block = keelson(
        &env,
        &["suggest", "web", "-n", &namespace, "--policy", "patch"],
    );
    assert!(
        block.contains(
            "    - registry: [global.imageRegistry, image.registry]\n      repository: image.repository\n      tag: image.tag\n      digest: image.digest\n"
        ),
        "{block}"
    );
    let block_file = write_file("bitnami.yaml", &block);
    env.helm3(&[
        "upgrade",
        "web",
        &chart,
        "-n",
        &namespace,
        "--reuse-values",
        "-f",
        &block_file,
    ]);
    let table = keelson(&env, &["check", "-n", &namespace]);
    assert!(
        has_line(
            &table,
            &[
                &format!("global.imageRegistry={image_registry:?} image.registry=\"docker.io\""),
                &format!("{image_registry}/bitnami/nginx:1.29.1-debian-12-r0"),
                "tag value"
            ]
        ),
        "{table}"
    );
    assert!(
        has_line(
            &table,
            &[
                "web",
                "image.tag",
                &format!("{image_registry}/bitnami/nginx:1.29.2-debian-12-r0")
            ]
        ),
        "{table}"
    );
    let helm_made: Value = serde_json::from_str(&env.helm3(&[
        "upgrade",
        "web",
        &chart,
        "-n",
        &namespace,
        "--reuse-values",
        "--set",
        "image.tag=1.29.2-debian-12-r0",
        "--dry-run=client",
        "-o",
        "json",
    ]))
    .expect("helm upgrade --dry-run -o json");
    let output = keelson(&env, &["reconcile", "--once", "-n", &namespace]);
    assert!(
        output.contains("revision 3 deployed") && output.contains("patch mode"),
        "{output}"
    );
    let values = values_json(&env, &env.helm3, "web", &namespace);
    assert_eq!(values["image"]["tag"], "1.29.2-debian-12-r0", "{values}");
    assert_eq!(values["image"].get("digest"), None, "{values}");
    assert_eq!(values, helm_made["config"]);
    let generated = |text: &str| -> String {
        text.lines()
            .filter(|line| {
                let key = line.trim_start();
                !(key.starts_with("tls.crt:")
                    || key.starts_with("tls.key:")
                    || key.starts_with("ca.crt:"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let manifest = generated(&env.helm3(&["get", "manifest", "web", "-n", &namespace]));
    let expected = generated(helm_made["manifest"].as_str().unwrap_or_default());
    assert!(
        manifest.contains(&format!(
            "image: {image_registry}/bitnami/nginx:1.29.2-debian-12-r0"
        )),
        "the new image is in the manifest"
    );
    assert!(
        manifest.trim_end() == expected.trim_end(),
        "keelson's manifest differs from helm's:\n{}",
        first_difference(&manifest, &expected)
    );
}
