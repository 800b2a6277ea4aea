//! Pushes tiny images to a real registry over the distribution HTTP API (there is no docker
//! daemon in the test environment): a small config blob plus an OCI manifest with no layers.

#![allow(dead_code)]

use reqwest::{Client, StatusCode, header};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A registry reachable over plain HTTP on loopback, optionally with basic auth.
#[derive(Clone, Debug)]
pub struct TestRegistry {
    /// `host:port`
    pub host: String,
    pub credentials: Option<(String, String)>,
    http: Client,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl TestRegistry {
    pub fn new(host: impl Into<String>, credentials: Option<(String, String)>) -> Self {
        keelson::cluster::install_crypto_provider();
        Self {
            host: host.into(),
            credentials,
            http: Client::new(),
        }
    }

    /// The anonymous registry of the test environment (`KEELSON_REGISTRY`).
    pub fn anonymous() -> Self {
        Self::new(super::env_var("KEELSON_REGISTRY"), None)
    }

    /// The htpasswd registry of the test environment (`KEELSON_REGISTRY_AUTH`).
    pub fn with_basic_auth() -> Self {
        Self::new(
            super::env_var("KEELSON_REGISTRY_AUTH"),
            Some((
                super::env_var("KEELSON_REGISTRY_USER"),
                super::env_var("KEELSON_REGISTRY_PASSWORD"),
            )),
        )
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.credentials {
            Some((user, password)) => builder.basic_auth(user, Some(password)),
            None => builder,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.host, path)
    }

    async fn upload_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let response = self
            .request(
                reqwest::Method::POST,
                &self.url(&format!("/v2/{repository}/blobs/uploads/")),
            )
            .send()
            .await
            .expect("start blob upload");
        assert_eq!(response.status(), StatusCode::ACCEPTED, "start blob upload");
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("upload Location header")
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let response = self
            .request(
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
            )
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("finish blob upload");
        assert_eq!(response.status(), StatusCode::CREATED, "finish blob upload");
        digest
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let response = self
            .request(
                reqwest::Method::PUT,
                &self.url(&format!("/v2/{repository}/manifests/{reference}")),
            )
            .header(header::CONTENT_TYPE, media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("put manifest");
        let status = response.status();
        let digest = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "put manifest {repository}:{reference}: {text}"
        );
        digest.unwrap_or_else(|| sha256_digest(body))
    }

    async fn push_platform_manifest(
        &self,
        repository: &str,
        reference: &str,
        arch: &str,
        salt: &str,
    ) -> (String, usize) {
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"keelson.test/salt": salt}},
            "rootfs": {"type": "layers", "diff_ids": []}
        });
        let config_bytes = serde_json::to_vec(&config).expect("config json");
        let config_digest = self.upload_blob(repository, &config_bytes).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
            "layers": []
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest json");
        let digest = self
            .put_manifest(repository, reference, OCI_MANIFEST, &manifest_bytes)
            .await;
        (digest, manifest_bytes.len())
    }

    /// Pushes `repository:tag` as a single-platform image; returns its manifest digest. Each call
    /// gets a fresh config (salted with the tag and the time), so re-pushing a tag changes its digest.
    pub async fn push_tag(&self, repository: &str, tag: &str) -> String {
        let salt = format!("{tag}-{:?}", std::time::SystemTime::now());
        self.push_platform_manifest(repository, tag, "amd64", &salt)
            .await
            .0
    }

    /// Pushes `repository:tag` as an OCI index with linux/amd64 and linux/arm64 images; returns
    /// the index digest.
    pub async fn push_index(&self, repository: &str, tag: &str) -> String {
        let salt = format!("{tag}-{:?}", std::time::SystemTime::now());
        let mut manifests = Vec::new();
        for arch in ["amd64", "arm64"] {
            let (digest, size) = self
                .push_platform_manifest(repository, &format!("{tag}-{arch}"), arch, &salt)
                .await;
            manifests.push(serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"architecture": arch, "os": "linux"}
            }));
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests
        });
        let bytes = serde_json::to_vec(&index).expect("index json");
        self.put_manifest(repository, tag, OCI_INDEX, &bytes).await
    }

    /// Deletes the manifest a tag points to (distribution deletes by digest; every tag on that
    /// digest goes with it).
    pub async fn delete_tag(&self, repository: &str, tag: &str) {
        let digest = self
            .digest_of(repository, tag)
            .await
            .expect("tag to delete exists");
        let response = self
            .request(
                reqwest::Method::DELETE,
                &self.url(&format!("/v2/{repository}/manifests/{digest}")),
            )
            .send()
            .await
            .expect("delete manifest");
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "delete {repository}:{tag}"
        );
    }

    /// The digest a tag points to, or None when the tag does not exist.
    pub async fn digest_of(&self, repository: &str, tag: &str) -> Option<String> {
        let response = self
            .request(
                reqwest::Method::HEAD,
                &self.url(&format!("/v2/{repository}/manifests/{tag}")),
            )
            .header(header::ACCEPT, format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .expect("head manifest");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The tags the registry lists for a repository (one page of up to 1000).
    pub async fn list_tags(&self, repository: &str) -> Vec<String> {
        let response = self
            .request(
                reqwest::Method::GET,
                &self.url(&format!("/v2/{repository}/tags/list?n=1000")),
            )
            .send()
            .await
            .expect("list tags");
        assert!(
            response.status().is_success(),
            "list tags of {repository}: {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await.expect("tags json");
        body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}
