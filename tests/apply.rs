//! The apply module against the real apiserver: patches of helm 3 releases leave fields other
//! actors own alone, vanished documents go, new ones arrive with Helm's ownership metadata, and
//! helm 4 `ssa` releases are server-side applied with field manager `helm`.

mod support;

use keelson::apply::{Applier, ApplyMethod, ReleaseTarget};
use keelson::cluster::ClusterArgs;
use support::TestEnv;

async fn applier(env: &TestEnv) -> Applier {
    keelson::cluster::install_crypto_provider();
    let args = ClusterArgs {
        kubeconfig: Some(env.kubeconfig.clone().into()),
        context: None,
    };
    Applier::new(args.client().await.expect("client for the test env"))
}

fn install(env: &TestEnv, helm: &str, namespace: &str, tag: &str) -> String {
    env.run(
        helm,
        &[
            "install",
            "app",
            &support::fixture_chart("demo"),
            "-n",
            namespace,
            "--set",
            "image.repository=127.0.0.1:5999/apply/app",
            "--set",
            &format!("image.tag={tag}"),
        ],
    );
    env.run(helm, &["get", "manifest", "app", "-n", namespace])
}

fn deployment_field(env: &TestEnv, namespace: &str, path: &str) -> String {
    env.kubectl(&[
        "get",
        "deployment",
        "app-demo",
        "-n",
        namespace,
        "-o",
        &format!("jsonpath={{{path}}}"),
    ])
}

#[tokio::test]
async fn client_side_patch_changes_the_image_and_keeps_scaled_replicas() {
    let env = TestEnv::get();
    let namespace = env.fresh_namespace("apply-csa");
    let old_manifest = install(&env, &env.helm3, &namespace, "1.0.0");
    env.kubectl(&[
        "scale",
        "deployment",
        "app-demo",
        "-n",
        &namespace,
        "--replicas=3",
    ]);
    let new_manifest = old_manifest.replace("apply/app:1.0.0", "apply/app:1.1.0");

    let applier = applier(&env).await;
    let target = ReleaseTarget {
        name: "app".into(),
        namespace: namespace.clone(),
    };
    let report = applier
        .apply(
            &target,
            &old_manifest,
            &new_manifest,
            ApplyMethod::ClientSide,
        )
        .await
        .expect("apply succeeds");
    assert_eq!(
        report.patched,
        vec![format!("Deployment/{namespace}/app-demo")]
    );
    assert_eq!(
        report.unchanged, 1,
        "the Service did not change: {report:?}"
    );

    assert_eq!(
        deployment_field(&env, &namespace, ".spec.template.spec.containers[0].image"),
        "127.0.0.1:5999/apply/app:1.1.0"
    );
    assert_eq!(deployment_field(&env, &namespace, ".spec.replicas"), "3");
    assert_eq!(
        deployment_field(
            &env,
            &namespace,
            ".metadata.labels.app\\.kubernetes\\.io/managed-by"
        ),
        "Helm"
    );

    // The second apply of the same change has nothing to do.
    let again = applier
        .apply(
            &target,
            &new_manifest,
            &new_manifest,
            ApplyMethod::ClientSide,
        )
        .await
        .expect("no-op apply succeeds");
    assert!(
        again.patched.is_empty() && again.created.is_empty(),
        "{again:?}"
    );
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[tokio::test]
async fn vanished_documents_are_deleted_and_new_ones_created_with_ownership() {
    let env = TestEnv::get();
    let namespace = env.fresh_namespace("apply-docs");
    let old_manifest = install(&env, &env.helm3, &namespace, "1.0.0");
    // Drop the Service document, add a ConfigMap.
    let deployment_doc = old_manifest
        .split("\n---\n")
        .chain(old_manifest.strip_prefix("---\n"))
        .find(|doc| doc.contains("kind: Deployment"))
        .expect("the manifest has a Deployment")
        .to_string();
    let new_manifest = format!(
        "---\n{}\n---\n# Source: demo/templates/extra.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-extra\ndata:\n  a: b\n",
        deployment_doc.trim_start_matches("---\n")
    );

    let applier = applier(&env).await;
    let target = ReleaseTarget {
        name: "app".into(),
        namespace: namespace.clone(),
    };
    let report = applier
        .apply(
            &target,
            &old_manifest,
            &new_manifest,
            ApplyMethod::ClientSide,
        )
        .await
        .expect("apply succeeds");
    assert_eq!(
        report.created,
        vec![format!("ConfigMap/{namespace}/app-extra")]
    );
    assert_eq!(
        report.deleted,
        vec![format!("Service/{namespace}/app-demo")]
    );

    let services = env.kubectl(&["get", "service", "-n", &namespace, "-o", "name"]);
    assert!(!services.contains("app-demo"), "{services}");
    let owner = env.kubectl(&[
        "get",
        "configmap",
        "app-extra",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}",
    ]);
    assert_eq!(owner, "app");
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[tokio::test]
async fn server_side_apply_for_helm4_releases() {
    let env = TestEnv::get();
    let namespace = env.fresh_namespace("apply-ssa");
    let old_manifest = install(&env, &env.helm4, &namespace, "1.0.0");
    let new_manifest = old_manifest.replace("apply/app:1.0.0", "apply/app:2.0.0");

    let applier = applier(&env).await;
    let target = ReleaseTarget {
        name: "app".into(),
        namespace: namespace.clone(),
    };
    let report = applier
        .apply(
            &target,
            &old_manifest,
            &new_manifest,
            ApplyMethod::ServerSide,
        )
        .await
        .expect("server-side apply succeeds");
    assert_eq!(report.patched.len(), 1, "{report:?}");
    assert_eq!(
        deployment_field(&env, &namespace, ".spec.template.spec.containers[0].image"),
        "127.0.0.1:5999/apply/app:2.0.0"
    );
    let managers = deployment_field(&env, &namespace, ".metadata.managedFields[*].manager");
    assert!(managers.split(' ').any(|m| m == "helm"), "{managers}");
    // The ownership label helm 4 applied is still there (the apply carried it).
    assert_eq!(
        deployment_field(
            &env,
            &namespace,
            ".metadata.labels.app\\.kubernetes\\.io/managed-by"
        ),
        "Helm"
    );
    // helm 4 still sees a healthy release it can upgrade.
    env.helm4(&[
        "upgrade",
        "app",
        &support::fixture_chart("demo"),
        "-n",
        &namespace,
        "--reuse-values",
        "--set",
        "image.tag=2.0.1",
    ]);
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

/// Renders the yaml11 fixture chart as the release `app` in `namespace` with `--set` flags.
fn render_yaml11(env: &TestEnv, helm: &str, namespace: &str, sets: &[&str]) -> String {
    let chart = support::fixture_chart("yaml11");
    let mut args = vec!["template", "app", chart.as_str(), "-n", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    env.run(helm, &args)
}

fn install_yaml11(env: &TestEnv, helm: &str, namespace: &str) -> String {
    env.run(
        helm,
        &[
            "install",
            "app",
            &support::fixture_chart("yaml11"),
            "-n",
            namespace,
            "--set",
            "image.tag=1.0.0",
        ],
    );
    env.run(helm, &["get", "manifest", "app", "-n", namespace])
}

fn field(env: &TestEnv, namespace: &str, object: &str, path: &str) -> String {
    env.kubectl(&[
        "get",
        object,
        "-n",
        namespace,
        "-o",
        &format!("jsonpath={{{path}}}"),
    ])
}

fn exists(env: &TestEnv, namespace: &str, object: &str) -> bool {
    env.run_status(&env.kubectl, &["get", object, "-n", namespace])
        .status
        .success()
}

/// Issue 13 item 1: `defaultMode: 0755`, `enableServiceLinks: off` and
/// `automountServiceAccountToken: no` are YAML 1.1 forms Helm sends as 493 and false; a YAML 1.2
/// reader sent strings and the apiserver refused the apply.
#[tokio::test]
async fn yaml11_forms_are_sent_as_helm_sends_them() {
    let env = TestEnv::get();
    for (helm, method) in [
        (&env.helm4, ApplyMethod::ServerSide),
        (&env.helm3, ApplyMethod::ClientSide),
    ] {
        let namespace = env.fresh_namespace("apply-yaml11");
        let old_manifest = install_yaml11(&env, helm, &namespace);
        let new_manifest = render_yaml11(&env, helm, &namespace, &["image.tag=1.1.0"]);
        // The create path sends whole documents too.
        env.kubectl(&["delete", "deployment", "app-app", "-n", &namespace]);
        let applier = applier(&env).await;
        let target = ReleaseTarget {
            name: "app".into(),
            namespace: namespace.clone(),
        };
        let report = applier
            .apply(&target, &old_manifest, &new_manifest, method)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "{method:?} apply of YAML 1.1 forms fails: {}",
                    keelson::cluster::error_chain(&err)
                )
            });
        // Server-side apply creates a missing object itself, so the report says patched there.
        let deployment = format!("Deployment/{namespace}/app-app");
        assert!(
            report.created.contains(&deployment) || report.patched.contains(&deployment),
            "{report:?}"
        );
        let spec = ".spec.template.spec";
        assert_eq!(
            field(
                &env,
                &namespace,
                "deployment/app-app",
                &format!("{spec}.volumes[0].configMap.defaultMode")
            ),
            "493"
        );
        assert_eq!(
            field(
                &env,
                &namespace,
                "deployment/app-app",
                &format!("{spec}.enableServiceLinks")
            ),
            "false"
        );
        assert_eq!(
            field(
                &env,
                &namespace,
                "deployment/app-app",
                &format!("{spec}.containers[0].image")
            ),
            "127.0.0.1:5000/yaml11/app:1.1.0"
        );
        env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    }
}

/// Issue 13 item 2: objects of the release deleted by hand come back on the next update, changed
/// (the ConfigMap) or not (the Service), on the CSA and the SSA path, as `helm upgrade` does.
#[tokio::test]
async fn objects_deleted_by_hand_are_recreated() {
    let env = TestEnv::get();
    for (helm, method) in [
        (&env.helm3, ApplyMethod::ClientSide),
        (&env.helm4, ApplyMethod::ServerSide),
    ] {
        let namespace = env.fresh_namespace("apply-recreate");
        let old_manifest = install_yaml11(&env, helm, &namespace);
        env.kubectl(&["delete", "configmap", "app-scripts", "-n", &namespace]);
        env.kubectl(&["delete", "service", "app-svc", "-n", &namespace]);
        let new_manifest = render_yaml11(&env, helm, &namespace, &["image.tag=1.1.0"]);
        let applier = applier(&env).await;
        let target = ReleaseTarget {
            name: "app".into(),
            namespace: namespace.clone(),
        };
        let report = applier
            .apply(&target, &old_manifest, &new_manifest, method)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "{method:?} apply after a manual delete fails: {}",
                    keelson::cluster::error_chain(&err)
                )
            });
        assert!(
            exists(&env, &namespace, "configmap/app-scripts"),
            "{method:?}: {report:?}"
        );
        assert!(
            exists(&env, &namespace, "service/app-svc"),
            "{method:?}: {report:?}"
        );
        assert_eq!(
            field(
                &env,
                &namespace,
                "configmap/app-scripts",
                ".metadata.annotations.meta\\.helm\\.sh/release-name"
            ),
            "app"
        );
        // The next update of the same release works again (the revision after is not stuck).
        let newer = render_yaml11(&env, helm, &namespace, &["image.tag=1.2.0"]);
        applier
            .apply(&target, &new_manifest, &newer, method)
            .await
            .unwrap_or_else(|err| panic!("{}", keelson::cluster::error_chain(&err)));
        // And helm itself still upgrades the release.
        env.run(
            helm,
            &[
                "upgrade",
                "app",
                &support::fixture_chart("yaml11"),
                "-n",
                &namespace,
                "--set",
                "image.tag=1.2.0",
            ],
        );
        env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    }
}

/// Issue 13 item 2: an object the new manifest adds that exists already is refused with the
/// words the real helm prints when its ownership metadata names someone else, and adopted when
/// it names this release.
#[tokio::test]
async fn foreign_objects_are_refused_like_helm_and_owned_ones_adopted() {
    let env = TestEnv::get();
    for (helm, method) in [
        (&env.helm3, ApplyMethod::ClientSide),
        (&env.helm4, ApplyMethod::ServerSide),
    ] {
        let namespace = env.fresh_namespace("apply-adopt");
        let old_manifest = install_yaml11(&env, helm, &namespace);
        env.kubectl(&[
            "create",
            "configmap",
            "app-extra",
            "-n",
            &namespace,
            "--from-literal=other=foreign",
        ]);
        let new_manifest =
            render_yaml11(&env, helm, &namespace, &["image.tag=1.1.0", "extra=true"]);
        let applier = applier(&env).await;
        let target = ReleaseTarget {
            name: "app".into(),
            namespace: namespace.clone(),
        };
        let refused = applier
            .apply(&target, &old_manifest, &new_manifest, method)
            .await
            .err()
            .map(|err| err.to_string())
            .unwrap_or_else(|| panic!("{method:?}: taking a foreign object must fail"));
        // Nothing changed before the refusal.
        assert_eq!(
            field(
                &env,
                &namespace,
                "deployment/app-app",
                ".spec.template.spec.containers[0].image"
            ),
            "127.0.0.1:5000/yaml11/app:1.0.0"
        );
        // The real helm refuses the same upgrade with the same words.
        let helm_out = env.run_status(
            helm,
            &[
                "upgrade",
                "app",
                &support::fixture_chart("yaml11"),
                "-n",
                &namespace,
                "--set",
                "image.tag=1.1.0",
                "--set",
                "extra=true",
            ],
        );
        assert!(!helm_out.status.success());
        let helm_err = String::from_utf8_lossy(&helm_out.stderr);
        let ours = refused
            .strip_prefix("release app: ")
            .unwrap_or_else(|| panic!("the error names the release: {refused}"));
        assert!(
            helm_err.contains(ours),
            "{method:?}\nhelm:   {helm_err}\nkeelson: {ours}"
        );

        // Owned by this release (metadata only): adopted and brought to the rendered state.
        env.kubectl(&[
            "label",
            "configmap",
            "app-extra",
            "-n",
            &namespace,
            "app.kubernetes.io/managed-by=Helm",
        ]);
        env.kubectl(&[
            "annotate",
            "configmap",
            "app-extra",
            "-n",
            &namespace,
            "meta.helm.sh/release-name=app",
            &format!("meta.helm.sh/release-namespace={namespace}"),
        ]);
        let report = applier
            .apply(&target, &old_manifest, &new_manifest, method)
            .await
            .unwrap_or_else(|err| panic!("{}", keelson::cluster::error_chain(&err)));
        assert!(
            report
                .patched
                .contains(&format!("ConfigMap/{namespace}/app-extra")),
            "{report:?}"
        );
        assert_eq!(
            field(&env, &namespace, "configmap/app-extra", ".data.tag"),
            "1.1.0"
        );
        env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    }
}
