//! The registry client and `keelson tags` against the REAL docker-registry instances of the test
//! environment (anonymous and htpasswd basic auth): listing hundreds of tags, deleted tags, digests of manifests and indexes, re-pushed tags, auth errors.

// tests/support is shared; its one collapsible `if` is not this file's to change.
#[allow(clippy::collapsible_if)]
mod support;

use std::collections::BTreeSet;
use std::process::Command;

use keelson::registry::{Credentials, Error, ImageRef, RegistryClient, RegistryConfig};
use support::registry::TestRegistry;

/// A repository name no other test (or helper) uses.
fn fresh_repository(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "keelson-registry-tests/{prefix}-{}-{nanos:x}",
        std::process::id()
    )
}

fn anonymous_registry() -> TestRegistry {
    keelson::cluster::install_crypto_provider();
    TestRegistry::anonymous()
}

fn basic_auth_registry() -> TestRegistry {
    keelson::cluster::install_crypto_provider();
    TestRegistry::with_basic_auth()
}

fn new_client(config: RegistryConfig) -> RegistryClient {
    keelson::cluster::install_crypto_provider();
    RegistryClient::new(config).expect("client")
}

fn image(registry: &TestRegistry, repository: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/{repository}", registry.host)).expect("valid image")
}

async fn push_all(registry: &TestRegistry, repository: &str, tags: &[String]) {
    for chunk in tags.chunks(16) {
        let pushes = chunk.iter().map(|tag| registry.push_tag(repository, tag));
        futures::future::join_all(pushes).await;
    }
}

fn pull_secret_document(registry: &TestRegistry, password: &str) -> String {
    let (user, _) = registry.credentials.clone().expect("auth registry");
    serde_json::json!({"auths": {registry.host.clone(): {"username": user, "password": password}}})
        .to_string()
}

#[tokio::test]
async fn lists_hundreds_of_tags() {
    let registry = anonymous_registry();
    let repository = fresh_repository("paginate");
    let tags: Vec<String> = (0..250)
        .map(|i| format!("1.{}.{}", i / 10, i % 10))
        .collect();
    push_all(&registry, &repository, &tags).await;

    let client = new_client(RegistryConfig::default());
    let listed = client
        .list_tags(&image(&registry, &repository))
        .await
        .expect("list tags");
    assert_eq!(listed.len(), 250);
    assert_eq!(
        listed.iter().collect::<BTreeSet<_>>(),
        tags.iter().collect::<BTreeSet<_>>()
    );
    // distribution 2.8 (the test environment's registry) ignores `n` on tag lists and sends
    // every tag in one page without a Link header, so one request lists all 250. Following
    // Link headers (every form) is proven in registry_hostile.rs against a scripted peer.
    let counts = client.requests_to(&registry.host);
    assert_eq!(counts.tags, 1, "{counts:?}");
    // One probe for HTTPS (loopback registries may be plain HTTP), nothing else.
    assert_eq!(counts.ping, 1, "{counts:?}");
    assert_eq!(counts.token, 0, "{counts:?}");

    // A second listing reuses everything learnt: exactly one more request.
    client
        .list_tags(&image(&registry, &repository))
        .await
        .expect("list tags again");
    assert_eq!(client.requests_to(&registry.host).total(), 3);
}

#[tokio::test]
async fn one_listing_per_repository_however_many_images_share_it() {
    let registry = anonymous_registry();
    let repositories: Vec<String> = (0..3)
        .map(|i| fresh_repository(&format!("shared{i}")))
        .collect();
    for repository in &repositories {
        registry.push_tag(repository, "1.0.0").await;
    }
    // Twelve releases, four per repository, with different tags and digests pinned.
    let images: Vec<ImageRef> = (0..12)
        .map(|i| {
            let repository = repositories.get(i % 3).expect("three repositories");
            ImageRef::parse(&format!("{}/{repository}:1.0.{i}", registry.host)).expect("image")
        })
        .collect();
    let client = new_client(RegistryConfig::default());
    let listed = client.list_tags_of_all(&images).await;
    assert_eq!(listed.len(), 3);
    for (repository, tags) in &listed {
        assert_eq!(tags.as_ref().expect(repository), &["1.0.0"]);
    }
    assert_eq!(client.requests_to(&registry.host).tags, 3);
}

#[tokio::test]
async fn deleted_tags_disappear() {
    let registry = anonymous_registry();
    let repository = fresh_repository("deleted");
    let tags: Vec<String> = ["1.0.0", "1.1.0", "1.2.0"].map(String::from).to_vec();
    push_all(&registry, &repository, &tags).await;
    registry.delete_tag(&repository, "1.2.0").await;

    let client = new_client(RegistryConfig::default());
    let image = image(&registry, &repository);
    let mut listed = client.list_tags(&image).await.expect("list tags");
    listed.sort();
    assert_eq!(listed, ["1.0.0", "1.1.0"]);
    let err = client
        .digest(&image, "1.2.0")
        .await
        .expect_err("deleted tag has no manifest");
    assert!(matches!(err, Error::ManifestNotFound { .. }), "{err}");
    assert!(err.to_string().contains("1.2.0"), "{err}");
}

#[tokio::test]
async fn digests_of_manifests_indexes_and_repushed_tags() {
    let registry = anonymous_registry();
    let repository = fresh_repository("digests");
    let client = new_client(RegistryConfig::default());
    let image = image(&registry, &repository);

    let pushed = registry.push_tag(&repository, "1.0.0").await;
    assert_eq!(
        client.digest(&image, "1.0.0").await.expect("digest"),
        pushed
    );

    // An OCI index with two platforms: the digest is the index's, not a platform manifest's.
    let index = registry.push_index(&repository, "2.0.0").await;
    let amd64 = registry
        .digest_of(&repository, "2.0.0-amd64")
        .await
        .expect("platform manifest");
    let resolved = client.digest(&image, "2.0.0").await.expect("index digest");
    assert_eq!(resolved, index);
    assert_ne!(resolved, amd64);

    // Re-pushing a tag moves it to a new digest; the client sees the change (no stale cache).
    let repushed = registry.push_tag(&repository, "1.0.0").await;
    assert_ne!(repushed, pushed);
    assert_eq!(
        client.digest(&image, "1.0.0").await.expect("digest"),
        repushed
    );

    // Digests resolve by HEAD only: the real registry always sends Docker-Content-Digest.
    assert_eq!(client.requests_to(&registry.host).manifest, 3);
    let by_digest = client.digest(&image, &index).await.expect("by digest");
    assert_eq!(by_digest, index);
}

#[tokio::test]
async fn unknown_repositories_and_tags_are_clear_errors() {
    let registry = anonymous_registry();
    let client = new_client(RegistryConfig::default());
    let missing = image(&registry, &fresh_repository("missing"));
    let err = client
        .list_tags(&missing)
        .await
        .expect_err("no such repository");
    assert!(matches!(err, Error::RepositoryNotFound { .. }), "{err}");
    assert!(err.to_string().contains(&missing.repository()), "{err}");
    let err = client
        .digest(&missing, "1.0")
        .await
        .expect_err("no such manifest");
    assert!(matches!(err, Error::ManifestNotFound { .. }), "{err}");
}

#[tokio::test]
async fn basic_auth_with_pull_secret() {
    let registry = basic_auth_registry();
    let (_, password) = registry.credentials.clone().expect("auth registry");
    let repository = fresh_repository("basic");
    let pushed = registry.push_tag(&repository, "3.1.4").await;
    let image = image(&registry, &repository);

    let credentials = Credentials::from_document(
        pull_secret_document(&registry, &password).as_bytes(),
        "pull-secret.json",
    )
    .expect("secret");
    let authorized = new_client(RegistryConfig {
        credentials,
        ..RegistryConfig::default()
    });
    assert_eq!(authorized.list_tags(&image).await.expect("tags"), ["3.1.4"]);
    assert_eq!(
        authorized.digest(&image, "3.1.4").await.expect("digest"),
        pushed
    );
    // The first request learns the Basic challenge; every later one sends credentials at once.
    assert_eq!(authorized.requests_to(&registry.host).tags, 2);
    assert_eq!(authorized.requests_to(&registry.host).manifest, 1);

    // Two matching entries, the more specific one wrong: the next is tried, as the kubelet does.
    let two = serde_json::json!({"auths": {
        format!("{}/keelson-registry-tests", registry.host): {"username": "nobody", "password": "wrong"},
        registry.host.clone(): {"username": registry.credentials.clone().expect("auth").0, "password": password},
    }});
    let fallback = new_client(RegistryConfig {
        credentials: Credentials::from_document(two.to_string().as_bytes(), "two.json")
            .expect("secret"),
        ..RegistryConfig::default()
    });
    assert_eq!(fallback.list_tags(&image).await.expect("tags"), ["3.1.4"]);

    let anonymous = new_client(RegistryConfig::default());
    let err = anonymous
        .list_tags(&image)
        .await
        .expect_err("no credentials");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("--pull-secret"), "{err}");

    let wrong = new_client(RegistryConfig {
        credentials: Credentials::from_document(
            pull_secret_document(&registry, "wrong-password").as_bytes(),
            "wrong.json",
        )
        .expect("secret"),
        ..RegistryConfig::default()
    });
    let err = wrong.list_tags(&image).await.expect_err("wrong password");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("rejected the credentials"),
        "{err}"
    );
    assert_eq!(wrong.requests_to(&registry.host).tags, 2, "no 401 loop");
}

fn keelson(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .output()
        .expect("run keelson")
}

#[tokio::test]
async fn keelson_tags_end_to_end() {
    let registry = anonymous_registry();
    let repository = fresh_repository("cli");
    let tags: Vec<String> = ["1.9.0", "1.10.0", "1.10.1-rc.1", "2.0.0", "latest", "1.9.1"]
        .map(String::from)
        .to_vec();
    push_all(&registry, &repository, &tags).await;
    let reference = format!("{}/{repository}:1.9.0", registry.host);

    let out = keelson(&["tags", &reference, "--policy", "minor", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        report,
        serde_json::json!({
            "image": format!("{}/{repository}", registry.host),
            "current": "1.9.0",
            "policy": "minor",
            "tags": ["2.0.0", "1.10.1-rc.1", "1.10.0", "1.9.1", "1.9.0"],
            "selected": "1.10.0"
        })
    );

    let out = keelson(&[
        "tags",
        &format!("{}/{repository}", registry.host),
        "--policy",
        "patch",
        "--current",
        "2.0.0",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["selected"], serde_json::Value::Null);
    assert_eq!(report["current"], "2.0.0");

    let out = keelson(&["tags", &reference, "--policy", "glob:1.9.*"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("SELECTED:  1.9.1"), "{table}");
    assert!(table.contains("1.9.0   current"), "{table}");
    assert!(table.contains("1.9.1   selected"), "{table}");

    let out = keelson(&["tags", "Not A Reference"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Not A Reference"), "{stderr}");

    let out = keelson(&["tags", &reference, "--policy", "sometimes"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown update policy \"sometimes\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn keelson_tags_with_pull_secret_file() {
    let registry = basic_auth_registry();
    let (_, password) = registry.credentials.clone().expect("auth registry");
    let repository = fresh_repository("cli-auth");
    push_all(
        &registry,
        &repository,
        &["0.1.0".to_string(), "0.2.0".to_string()],
    )
    .await;

    let dir = std::env::temp_dir().join(format!("keelson-registry-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret_path = dir.join("pull-secret.yaml");
    let payload = pull_secret_document(&registry, &password);
    use base64::Engine;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        base64::engine::general_purpose::STANDARD.encode(payload)
    );
    std::fs::write(&secret_path, secret).expect("write secret");

    let reference = format!("{}/{repository}:0.1.0", registry.host);
    let secret_arg = secret_path.display().to_string();
    let out = keelson(&[
        "tags",
        &reference,
        "--pull-secret",
        &secret_arg,
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["selected"], "0.2.0");

    let out = keelson(&["tags", &reference]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not authorized") && stderr.contains(&repository),
        "{stderr}"
    );

    let out = keelson(&[
        "tags",
        &reference,
        "--pull-secret",
        "/nonexistent/secret.yaml",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/secret.yaml"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn keelson_tags_with_a_docker_credential_helper() {
    let registry = basic_auth_registry();
    let (user, password) = registry.credentials.clone().expect("auth registry");
    let repository = fresh_repository("cli-helper");
    push_all(
        &registry,
        &repository,
        &["5.0.0".to_string(), "5.1.0".to_string()],
    )
    .await;

    // A real helper executable speaking the docker-credential-helpers protocol on stdin/stdout.
    let dir = std::env::temp_dir().join(format!("keelson-registry-helper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let helper = dir.join("docker-credential-keelsontest");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server || true\nif [ \"$server\" = \"{host}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'\n  exit 1\nfi\n",
        host = registry.host
    );
    std::fs::write(&helper, script).expect("write helper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({"credHelpers": {registry.host.clone(): "keelsontest"}}).to_string(),
    )
    .expect("write config");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let reference = format!("{}/{repository}:5.0.0", registry.host);
    let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(["tags", &reference, "--pull-secret"])
        .arg(&config)
        .args(["-o", "json"])
        .env("PATH", path)
        .output()
        .expect("run keelson");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["selected"], "5.1.0");
    let _ = std::fs::remove_dir_all(&dir);
}
