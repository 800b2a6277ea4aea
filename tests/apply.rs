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
