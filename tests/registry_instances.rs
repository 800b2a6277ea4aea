//! docker-registry instances these tests start themselves, for what the shared test
//! environment does not run:
//! - Bearer token auth: a REAL docker-registry configured with `auth: token` validates every
//!   token itself (signature against a test certificate, issuer, audience, expiry, access
//!   claims). The token issuer is a small server the test runs on 127.0.0.1; it signs RS256
//!   JWTs with a throwaway key made by `openssl`.
//! - TLS with a self-signed certificate on loopback.
//!
//! A second docker-registry without auth shares each storage directory so tests can push.

// tests/support is shared; its one collapsible `if` is not this file's to change.
#[allow(clippy::collapsible_if)]
mod support;

#[path = "registry_peer/mod.rs"]
mod peer;

use std::time::Duration;

use keelson::registry::{Credentials, Error, ImageRef, RegistryClient, RegistryConfig};
use peer::instances::{Extra, PASSWORD, SERVICE, Setup, USER, make_keys, setup, start_registry};
use support::registry::TestRegistry;

fn image(setup: &Setup, repository: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{repository}", setup.registry.host)).expect("valid image")
}

fn token_requests(setup: &Setup) -> usize {
    setup.issuer.count(|r| r.path() == "/token")
}

fn credentials(host: &str, password: &str) -> Credentials {
    let document = serde_json::json!({"auths": {host: {"username": USER, "password": password}}});
    Credentials::from_document(document.to_string().as_bytes(), "token-secret.json")
        .expect("secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_bearer_flow_with_a_real_token_registry() {
    let setup = setup("anonymous", 300).await;
    let repository = "public/app";
    let pushed = setup.writer.push_tag(repository, "1.0.0").await;
    setup.writer.push_tag(repository, "1.1.0").await;

    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let app = image(&setup, repository);
    for _ in 0..3 {
        let mut tags = client.list_tags(&app).await.expect("anonymous pull token");
        tags.sort();
        assert_eq!(tags, ["1.0.0", "1.1.0"]);
    }
    assert_eq!(client.digest(&app, "1.0.0").await.expect("digest"), pushed);
    // One token for the scope, reused until it expires; one 401 to learn the challenge.
    assert_eq!(token_requests(&setup), 1);
    let token_request = setup
        .issuer
        .requests()
        .into_iter()
        .find(|r| r.path() == "/token")
        .expect("token request");
    assert_eq!(token_request.query("service").as_deref(), Some(SERVICE));
    assert_eq!(
        token_request.query("scope").as_deref(),
        Some("repository:public/app:pull")
    );
    assert_eq!(token_request.header("authorization"), None);
    let counts = client.requests_to(&setup.registry.host);
    assert_eq!(counts.tags, 4, "{counts:?}");
    assert_eq!(counts.manifest, 1, "{counts:?}");

    // A private repository without credentials: the real registry refuses the empty grant.
    setup.writer.push_tag("private/app", "1.0.0").await;
    let err = client
        .list_tags(&image(&setup, "private/app"))
        .await
        .expect_err("no grant without credentials");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("private/app"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentialed_bearer_flow_with_a_real_token_registry() {
    let setup = setup("credentials", 300).await;
    let repository = "private/service";
    let pushed = setup.writer.push_index(repository, "2.0.0").await;

    let client = RegistryClient::new(RegistryConfig {
        credentials: credentials(&setup.registry.host, PASSWORD),
        ..RegistryConfig::default()
    })
    .expect("client");
    let service = image(&setup, repository);
    let tags = client.list_tags(&service).await.expect("credentialed pull");
    assert!(tags.contains(&"2.0.0".to_string()), "{tags:?}");
    assert_eq!(
        client.digest(&service, "2.0.0").await.expect("digest"),
        pushed
    );
    assert_eq!(token_requests(&setup), 1);
    let token_request = setup
        .issuer
        .requests()
        .into_iter()
        .find(|r| r.path() == "/token")
        .expect("token request");
    assert_eq!(token_request.query("account").as_deref(), Some(USER));
    assert!(
        token_request
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")),
        "credentials go to the token server"
    );

    let wrong = RegistryClient::new(RegistryConfig {
        credentials: credentials(&setup.registry.host, "wrong"),
        ..RegistryConfig::default()
    })
    .expect("client");
    let err = wrong.list_tags(&service).await.expect_err("wrong password");
    assert!(
        matches!(err, Error::TokenRequest { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&setup.issuer.host()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_before_the_registry_would_reject_them() {
    let setup = setup("expiry", 2).await;
    let repository = "public/short-lived";
    setup.writer.push_tag(repository, "0.1.0").await;
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let app = image(&setup, repository);
    client.list_tags(&app).await.expect("first token");
    client.list_tags(&app).await.expect("cached token");
    assert_eq!(token_requests(&setup), 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    client.list_tags(&app).await.expect("renewed token");
    assert_eq!(token_requests(&setup), 2);
    // No request carried an expired token: one 401 at the start, then only successes.
    assert_eq!(client.requests_to(&setup.registry.host).tags, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_registry_with_a_self_signed_certificate() {
    keelson::cluster::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("keelson-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let keys = make_keys(&dir);
    let tls = start_registry(
        &dir,
        "tls",
        Extra::Tls {
            cert: &keys.cert_path,
            key: &keys.key_path,
        },
    )
    .await;
    let writer_process = start_registry(&dir, "tls-writer", Extra::None).await;
    let writer = TestRegistry::new(writer_process.host.clone(), None);
    let pushed = writer.push_tag("secure/app", "4.0.0").await;

    // Loopback: no --insecure-registry needed; HTTPS answers, so HTTPS (unverified) is used.
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let app = ImageRef::parse(&format!("{}/secure/app", tls.host)).expect("image");
    assert_eq!(
        client.list_tags(&app).await.expect("tags over TLS"),
        ["4.0.0"]
    );
    assert_eq!(client.digest(&app, "4.0.0").await.expect("digest"), pushed);
    let _ = std::fs::remove_dir_all(&dir);
}
