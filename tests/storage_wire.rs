//! keelson lists release records in the apiserver's protobuf encoding. These tests hold the
//! protobuf reader to the real apiserver: it reads exactly what the JSON list says, for Secrets
//! and ConfigMaps, and an error answer (a forbidden list) still reads as a clear message.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use keelson::cluster::ClusterArgs;
use keelson::storage::wire::{self, ListedObject, ObjectKind};
use keelson::storage::{Driver, DriverKind};
use kube::api::ListParams;
use kube::{Api, Client};
use support::TestEnv;

async fn client(kubeconfig: &str) -> Client {
    keelson::cluster::install_crypto_provider();
    ClusterArgs {
        kubeconfig: Some(kubeconfig.into()),
        context: None,
    }
    .client()
    .await
    .expect("kube client for the test env")
}

/// The raw protobuf body of a LIST, as the apiserver sends it.
async fn protobuf_list(client: &Client, url: &str, selector: &str) -> Vec<u8> {
    let mut request = kube::core::Request::new(url)
        .list(&ListParams::default().labels(selector))
        .expect("list request");
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(wire::PROTOBUF),
    );
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .expect("list");
    assert!(response.status().is_success(), "{}", response.status());
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, wire::PROTOBUF);
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

fn by_name(objects: Vec<ListedObject>) -> BTreeMap<String, ListedObject> {
    objects
        .into_iter()
        .map(|o| (o.name.clone().unwrap_or_default(), o))
        .collect()
}

#[tokio::test]
async fn protobuf_lists_read_what_json_lists_say() {
    let env = TestEnv::get();
    let namespace = env.fresh_namespace("st-wire");
    let chart = support::fixture_chart("demo");
    env.helm3(&["install", "wire-a", &chart, "-n", &namespace]);
    env.helm3(&[
        "upgrade",
        "wire-a",
        &chart,
        "-n",
        &namespace,
        "--set",
        "image.tag=1.0.1",
    ]);
    env.helm4(&["install", "wire-b", &chart, "-n", &namespace]);
    let out = std::process::Command::new(&env.helm3)
        .args(["install", "wire-c", &chart, "-n", &namespace])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HELM_DRIVER", "configmap")
        .output()
        .expect("runs helm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = client(&env.kubeconfig).await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let body = protobuf_list(&client, secrets.resource_url(), "owner=helm").await;
    let read = by_name(wire::decode_list(&body, ObjectKind::Secret, "release").expect("decodes"));
    let json = secrets
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .expect("json list");
    assert_eq!(read.len(), 3, "{:?}", read.keys());
    assert_eq!(json.items.len(), 3);
    for secret in json.items {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let object = &read[&name];
        assert_eq!(object.namespace, secret.metadata.namespace, "{name}");
        assert_eq!(object.resource_version, secret.metadata.resource_version);
        assert_eq!(object.labels, secret.metadata.labels, "{name}");
        assert_eq!(object.secret_type, secret.type_, "{name}");
        let payload = secret
            .data
            .and_then(|mut d| d.remove("release"))
            .map(|b| b.0);
        assert!(payload.as_ref().is_some_and(|p| !p.is_empty()));
        assert_eq!(object.payload, payload, "{name}");
    }

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let body = protobuf_list(&client, config_maps.resource_url(), "owner=helm").await;
    let read =
        by_name(wire::decode_list(&body, ObjectKind::ConfigMap, "release").expect("decodes"));
    let json = config_maps
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .expect("json list");
    assert_eq!(read.len(), 1);
    for cm in json.items {
        let name = cm.metadata.name.clone().unwrap_or_default();
        let object = &read[&name];
        assert_eq!(object.labels, cm.metadata.labels, "{name}");
        assert_eq!(object.resource_version, cm.metadata.resource_version);
        assert_eq!(object.secret_type, None);
        let payload = cm
            .data
            .and_then(|mut d| d.remove("release"))
            .map(String::into_bytes);
        assert_eq!(object.payload, payload, "{name}");
    }

    // And the driver, which lists through that reader, finds every release of each driver.
    for (kind, expected) in [
        (DriverKind::Secret, vec!["wire-a", "wire-b"]),
        (DriverKind::ConfigMap, vec!["wire-c"]),
    ] {
        let listing = Driver::new(client.clone(), kind)
            .latest(Some(&namespace), "owner=helm")
            .await
            .expect("latest");
        let mut names: Vec<String> = listing
            .records
            .iter()
            .map(|r| r.release.name().to_string())
            .collect();
        names.sort();
        assert_eq!(names, expected);
        assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    }
    let newest = Driver::new(client, DriverKind::Secret)
        .latest(Some(&namespace), "owner=helm,name=wire-a")
        .await
        .expect("latest");
    assert_eq!(newest.records.len(), 1);
    assert_eq!(newest.records[0].release.version(), 2);
    env.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

#[tokio::test]
async fn a_forbidden_list_reads_as_the_apiservers_message() {
    let env = TestEnv::get();
    // The admin's token, impersonating a user RBAC grants nothing.
    let kubeconfig = std::fs::read_to_string(&env.kubeconfig).expect("kubeconfig");
    let kubeconfig = kubeconfig.replace(
        "    token: keelson-admin-token",
        "    token: keelson-admin-token\n    as: keelson-nobody",
    );
    assert!(kubeconfig.contains("as: keelson-nobody"), "{kubeconfig}");
    let dir = std::env::temp_dir().join(format!("keelson-wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig).expect("write kubeconfig");

    let client = client(&path.to_string_lossy()).await;
    let err = Driver::new(client, DriverKind::Secret)
        .latest(Some("default"), "owner=helm")
        .await
        .expect_err("nobody may list secrets");
    let message = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(message.contains("list"), "{message}");
    assert!(message.contains("keelson-nobody"), "{message}");
    assert!(message.contains("forbidden"), "{message}");
    let _ = std::fs::remove_dir_all(dir);
}
