//! Proves the test environment is real: helm 3 installs the demo chart into the real apiserver,
//! the controller-manager makes its ReplicaSet, helm 4 reads the same history, and both real
//! registries list a tag pushed through the distribution API.

mod support;

use std::time::{Duration, Instant};

use support::TestEnv;
use support::registry::TestRegistry;

#[test]
fn helm3_install_is_seen_by_the_cluster_and_by_helm4() {
    let env = TestEnv::get();
    let namespace = env.fresh_namespace("smoke");
    let image = "127.0.0.1:5999/smoke/app";
    env.helm3(&[
        "install",
        "smoke",
        &support::fixture_chart("demo"),
        "-n",
        &namespace,
        "--set",
        &format!("image.repository={image}"),
        "--set",
        "image.tag=2.3.4",
    ]);

    let deployed_image = env.kubectl(&[
        "get",
        "deployment",
        "smoke-demo",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(deployed_image, format!("{image}:2.3.4"));

    // The deployment controller creates the ReplicaSet asynchronously.
    let deadline = Instant::now() + Duration::from_secs(30);
    let replica_set_images = loop {
        let images = env.kubectl(&[
            "get",
            "rs",
            "-n",
            &namespace,
            "-o",
            "jsonpath={.items[*].spec.template.spec.containers[0].image}",
        ]);
        if !images.is_empty() || Instant::now() > deadline {
            break images;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        replica_set_images,
        format!("{image}:2.3.4"),
        "the controller-manager made no ReplicaSet within 30s"
    );

    let history: serde_json::Value =
        serde_json::from_str(&env.helm4(&["history", "smoke", "-n", &namespace, "-o", "json"]))
            .expect("helm 4 history is JSON");
    let revisions = history.as_array().expect("history is an array");
    assert_eq!(revisions.len(), 1, "{history}");
    assert_eq!(revisions[0]["revision"], 1);
    assert_eq!(revisions[0]["status"], "deployed");
    assert_eq!(revisions[0]["chart"], "demo-0.1.0");

    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[tokio::test]
async fn pushed_tags_are_listed_by_both_registries() {
    let repository = format!("smoke/push-{}", std::process::id());
    for registry in [TestRegistry::anonymous(), TestRegistry::with_basic_auth()] {
        let digest = registry.push_tag(&repository, "1.0.0").await;
        assert!(digest.starts_with("sha256:"), "{digest}");
        let index_digest = registry.push_index(&repository, "1.1.0").await;
        assert_eq!(
            registry.digest_of(&repository, "1.1.0").await,
            Some(index_digest)
        );
        let tags = registry.list_tags(&repository).await;
        assert!(tags.contains(&"1.0.0".to_string()), "{tags:?}");
        assert!(tags.contains(&"1.1.0".to_string()), "{tags:?}");
        registry.delete_tag(&repository, "1.0.0").await;
        assert_eq!(registry.digest_of(&repository, "1.0.0").await, None);
    }
}

#[tokio::test]
async fn the_basic_auth_registry_refuses_anonymous_requests() {
    let host = support::env_var("KEELSON_REGISTRY_AUTH");
    keelson::cluster::install_crypto_provider();
    let response = reqwest::get(format!("http://{host}/v2/"))
        .await
        .expect("registry answers");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(challenge.starts_with("Basic"), "{challenge}");
}
