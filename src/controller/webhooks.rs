//! Registry webhooks: Keel's endpoints and bodies turned into hints (repository, tag, digest).
//! A hint is not trusted: the controller confirms the tag against the registry before anything
//! is written.

use serde_json::Value;

/// One "this repository has a new tag" hint from a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hint {
    /// As the sender names it: `nginx`, `org/app`, `127.0.0.1:5000/team/app`, `quay.io/o/a`.
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
}

/// The webhook kinds Keel serves, by the last segment of `/v1/webhooks/<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Native,
    DockerHub,
    Quay,
    Harbor,
    GitHub,
    Azure,
    JFrog,
    Registry,
}

impl Kind {
    pub fn from_path(path: &str) -> Option<Self> {
        Some(match path.strip_prefix("/v1/webhooks/")? {
            "native" => Kind::Native,
            "dockerhub" => Kind::DockerHub,
            "quay" => Kind::Quay,
            "harbor" => Kind::Harbor,
            "github" => Kind::GitHub,
            "azure" => Kind::Azure,
            "jfrog" => Kind::JFrog,
            "registry" => Kind::Registry,
            _ => return None,
        })
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::DockerHub => "dockerhub",
            Kind::Quay => "quay",
            Kind::Harbor => "harbor",
            Kind::GitHub => "github",
            Kind::Azure => "azure",
            Kind::JFrog => "jfrog",
            Kind::Registry => "registry",
        }
    }
}

/// Why a body was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadBody(pub String);

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().filter(|s| !s.is_empty())
}

fn required<'a>(value: &'a Value, path: &[&str]) -> Result<&'a str, BadBody> {
    text(value, path).ok_or_else(|| BadBody(format!("missing string field {:?}", path.join("."))))
}

/// Strips `scheme://` and a trailing `:tag` from a URL-ish reference some senders use.
fn bare_repository(reference: &str) -> String {
    let without_scheme = reference
        .split_once("://")
        .map_or(reference, |(_, rest)| rest);
    let without_digest = without_scheme.split('@').next().unwrap_or(without_scheme);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => {
            without_digest[..colon].to_string()
        }
        _ => without_digest.to_string(),
    }
}

/// What a body alone does not say.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The `X-GitHub-Event` header.
    pub github_event: Option<&'a str>,
    /// The registry JFrog's bare image names live in (Keel's `PRIVATE_REGISTRY`).
    pub jfrog_registry: Option<String>,
}

/// Reads the hints a body carries. An event that carries no new tag (a delete, a blob
/// upload) gives no hints and is not an error.
pub fn parse(kind: Kind, body: &[u8], context: &Context<'_>) -> Result<Vec<Hint>, BadBody> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| BadBody(format!("the body is not JSON: {err}")))?;
    if !value.is_object() {
        return Err(BadBody("the body is not a JSON object".to_string()));
    }
    let hint = |repository: String, tag: &str, digest: Option<&str>| Hint {
        repository,
        tag: tag.to_string(),
        digest: digest.map(str::to_string),
    };
    match kind {
        Kind::Native => {
            let name = required(&value, &["name"])?;
            let tag = required(&value, &["tag"])?;
            Ok(vec![hint(name.to_string(), tag, text(&value, &["digest"]))])
        }
        Kind::DockerHub => {
            let name = required(&value, &["repository", "repo_name"])?;
            let tag = required(&value, &["push_data", "tag"])?;
            Ok(vec![hint(name.to_string(), tag, None)])
        }
        Kind::Quay => {
            let url = required(&value, &["docker_url"])?;
            let tags = value
                .get("updated_tags")
                .and_then(Value::as_array)
                .ok_or_else(|| BadBody("missing list field \"updated_tags\"".to_string()))?;
            Ok(tags
                .iter()
                .filter_map(Value::as_str)
                .map(|tag| hint(bare_repository(url), tag, None))
                .collect())
        }
        Kind::Harbor => {
            let event = text(&value, &["type"]).unwrap_or_default();
            if !matches!(event, "PUSH_ARTIFACT" | "pushImage") {
                return Ok(Vec::new());
            }
            let resources = value
                .pointer("/event_data/resources")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    BadBody("missing list field \"event_data.resources\"".to_string())
                })?;
            let mut hints = Vec::new();
            for resource in resources {
                let Some(url) = text(resource, &["resource_url"]) else {
                    continue;
                };
                // As Keel reads it: the reference in `resource_url` names repository and tag
                // (`latest` when it has none); `resources[].tag` is not used.
                let bare = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .unwrap_or(url);
                let reference = crate::registry::ImageRef::parse(bare)
                    .map_err(|err| BadBody(format!("failed to parse repository {url}: {err}")))?;
                let tag = reference
                    .tag
                    .clone()
                    .unwrap_or_else(|| "latest".to_string());
                hints.push(hint(
                    reference.repository(),
                    &tag,
                    text(resource, &["digest"]),
                ));
            }
            Ok(hints)
        }
        Kind::GitHub => github(&value, context.github_event),
        Kind::Azure => {
            if text(&value, &["action"]) != Some("push") {
                return Ok(Vec::new());
            }
            let Some(tag) = text(&value, &["target", "tag"]) else {
                return Ok(Vec::new());
            };
            let repository = required(&value, &["target", "repository"])?;
            let host = required(&value, &["request", "host"])?;
            Ok(vec![hint(
                format!("{host}/{repository}"),
                tag,
                text(&value, &["target", "digest"]),
            )])
        }
        Kind::JFrog => {
            // Keel reads no event type; a delete still names a tag, and the registry check
            // below answers it ("unknown tag"). Explicit non-push events are skipped.
            if let Some(event) = text(&value, &["event_type"])
                && event != "pushed"
            {
                return Ok(Vec::new());
            }
            let image = required(&value, &["data", "image_name"])?;
            let tag = required(&value, &["data", "tag"])?;
            let repository = match context.jfrog_registry.as_deref().filter(|r| r.len() >= 3) {
                Some(registry) => format!("{}/{image}", registry.trim_end_matches('/')),
                None => image.to_string(),
            };
            Ok(vec![hint(repository, tag, None)])
        }
        Kind::Registry => {
            let events = value
                .get("events")
                .and_then(Value::as_array)
                .ok_or_else(|| BadBody("missing list field \"events\"".to_string()))?;
            let mut hints = Vec::new();
            for event in events {
                // One event per blob and one per manifest; only a manifest push names a tag.
                if text(event, &["action"]) != Some("push") {
                    continue;
                }
                let (Some(repository), Some(tag)) = (
                    text(event, &["target", "repository"]),
                    text(event, &["target", "tag"]),
                ) else {
                    continue;
                };
                let repository = match text(event, &["request", "host"]) {
                    Some(host) => format!("{host}/{repository}"),
                    None => repository.to_string(),
                };
                hints.push(hint(repository, tag, text(event, &["target", "digest"])));
            }
            Ok(hints)
        }
    }
}

/// GitHub's `package` (GHCR) and `registry_package` events, named as Keel names them:
/// `ghcr.io/<namespace>/<name>` and `ghcr.io/<repository full name>`; a `package_url` in the
/// version, when GitHub sends one, names the image exactly.
fn github(value: &Value, event: Option<&str>) -> Result<Vec<Hint>, BadBody> {
    let (package, legacy) = match event {
        Some("package") => (value.get("package"), false),
        Some("registry_package") => (value.get("registry_package"), true),
        // `ping` and every other event: nothing to do.
        Some(_) => return Ok(Vec::new()),
        None => match value.get("package") {
            Some(package) => (Some(package), false),
            None => (value.get("registry_package"), true),
        },
    };
    let package = package
        .ok_or_else(|| BadBody("missing object \"package\" or \"registry_package\"".to_string()))?;
    let kind = text(package, &["ecosystem"])
        .or_else(|| text(package, &["package_type"]))
        .map(str::to_ascii_lowercase);
    if !matches!(kind.as_deref(), Some("container" | "docker")) {
        return Ok(Vec::new());
    }
    let version = package
        .get("package_version")
        .ok_or_else(|| BadBody("missing object \"package_version\"".to_string()))?;
    let tag = text(version, &["container_metadata", "tag", "name"])
        .or_else(|| {
            if legacy {
                text(version, &["version"])
            } else {
                None
            }
        })
        .ok_or_else(|| BadBody("repository tag cannot be empty".to_string()))?;
    let repository = match text(version, &["package_url"]) {
        Some(url) => bare_repository(url),
        None if legacy => {
            let full_name = required(value, &["repository", "full_name"])?;
            format!("ghcr.io/{}", full_name.to_ascii_lowercase())
        }
        None => {
            let namespace = required(package, &["namespace"])?;
            let name = required(package, &["name"])?;
            format!(
                "ghcr.io/{}/{}",
                namespace.to_ascii_lowercase(),
                name.to_ascii_lowercase()
            )
        }
    };
    let digest = text(version, &["container_metadata", "tag", "digest"]);
    Ok(vec![Hint {
        repository,
        tag: tag.to_string(),
        digest: digest.map(str::to_string),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: Kind, body: serde_json::Value, context: &Context<'_>) -> Vec<(String, String)> {
        parse(kind, body.to_string().as_bytes(), context)
            .expect("parses")
            .into_iter()
            .map(|h| (h.repository, h.tag))
            .collect()
    }

    fn pair(repository: &str, tag: &str) -> Vec<(String, String)> {
        vec![(repository.to_string(), tag.to_string())]
    }

    // Bodies from Keel's own tests (shortened), read as Keel reads them.
    #[test]
    fn keel_sample_bodies() {
        let none = Context::default();
        use serde_json::json;
        assert_eq!(
            one(
                Kind::Native,
                json!({"name": "gcr.io/v2-namespace/hello-world", "tag": "1.1.1"}),
                &none
            ),
            pair("gcr.io/v2-namespace/hello-world", "1.1.1")
        );
        assert_eq!(
            one(
                Kind::DockerHub,
                json!({"push_data": {"pushed_at": 1497467660, "tag": "0.1.7"}, "repository": {"repo_name": "karolisr/keel"}}),
                &none
            ),
            pair("karolisr/keel", "0.1.7")
        );
        assert_eq!(
            one(
                Kind::Quay,
                json!({"docker_url": "quay.io/mynamespace/repository", "updated_tags": ["1.2.3"]}),
                &none
            ),
            pair("quay.io/mynamespace/repository", "1.2.3")
        );
        assert_eq!(
            one(
                Kind::Harbor,
                json!({"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"digest": "sha256:b4758aaed11c155a476b9857e1178f157759c99cb04c907a04993f5481eff848", "tag": "latest", "resource_url": "quay.io/mynamespace/repository:1.2.3"}]}}),
                &none
            ),
            pair("quay.io/mynamespace/repository", "1.2.3")
        );
        assert_eq!(
            one(
                Kind::Harbor,
                json!({"type": "pushImage", "event_data": {"resources": [{"resource_url": "mynamespace/repository"}]}}),
                &none
            ),
            pair("docker.io/mynamespace/repository", "latest")
        );
        assert!(
            one(
                Kind::Harbor,
                json!({"type": "DELETE_ARTIFACT", "event_data": {}}),
                &none
            )
            .is_empty()
        );
        let package = Context {
            github_event: Some("package"),
            ..Context::default()
        };
        assert_eq!(
            one(
                Kind::GitHub,
                json!({"action": "create", "package": {"name": "utaitebox-server", "namespace": "utaitebox", "ecosystem": "CONTAINER", "package_version": {"container_metadata": {"tag": {"name": "3.2.1", "digest": "sha256:7d3848ba2f2e7f69bebb4b576e5fad0379b64a0b1512aee6ad0ec9e7c6319fed"}}}}}),
                &package
            ),
            pair("ghcr.io/utaitebox/utaitebox-server", "3.2.1")
        );
        let legacy = Context {
            github_event: Some("registry_package"),
            ..Context::default()
        };
        assert_eq!(
            one(
                Kind::GitHub,
                json!({"action": "published", "registry_package": {"name": "server", "package_type": "CONTAINER", "package_version": {"version": "1.2.3"}}, "repository": {"full_name": "DingGGu/UtaiteBOX"}}),
                &legacy
            ),
            pair("ghcr.io/dingggu/utaitebox", "1.2.3")
        );
        let ping = Context {
            github_event: Some("ping"),
            ..Context::default()
        };
        assert!(one(Kind::GitHub, json!({"zen": "x"}), &ping).is_empty());
        assert_eq!(
            one(
                Kind::Azure,
                json!({"action": "push", "target": {"repository": "hello-world", "tag": "v1", "digest": "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d"}, "request": {"host": "myregistry.azurecr.io"}}),
                &none
            ),
            pair("myregistry.azurecr.io/hello-world", "v1")
        );
        assert_eq!(
            one(
                Kind::JFrog,
                json!({"domain": "docker", "event_type": "pushed", "data": {"image_name": "library/ubuntu", "tag": "latest"}}),
                &none
            ),
            pair("library/ubuntu", "latest")
        );
        let private = Context {
            jfrog_registry: Some("art.example.com".into()),
            ..Context::default()
        };
        assert_eq!(
            one(
                Kind::JFrog,
                json!({"data": {"image_name": "library/ubuntu", "tag": "22.04"}}),
                &private
            ),
            pair("art.example.com/library/ubuntu", "22.04")
        );
        assert_eq!(
            one(
                Kind::Registry,
                json!({"events": [
                    {"action": "push", "target": {"mediaType": "application/octet-stream", "repository": "foo/bar", "digest": "sha256:1"}, "request": {"host": "registry.git.erxes.io"}},
                    {"action": "push", "target": {"repository": "foo/bar", "tag": "1.6.1"}, "request": {"host": "registry.git.erxes.io"}},
                    {"action": "pull", "target": {"repository": "foo/bar", "tag": "1.6.1"}, "request": {"host": "registry.git.erxes.io"}},
                ]}),
                &none
            ),
            pair("registry.git.erxes.io/foo/bar", "1.6.1")
        );
    }

    #[test]
    fn malformed_bodies_say_what_is_missing() {
        let none = Context::default();
        for (kind, body, problem) in [
            (Kind::Native, "{", "not JSON"),
            (Kind::Native, "[]", "not a JSON object"),
            (Kind::Native, "{\"tag\": \"1\"}", "\"name\""),
            (Kind::Native, "{\"name\": \"a\"}", "\"tag\""),
            (
                Kind::DockerHub,
                "{\"push_data\": {}}",
                "repository.repo_name",
            ),
            (Kind::Quay, "{\"docker_url\": \"a\"}", "updated_tags"),
            (
                Kind::Harbor,
                "{\"type\": \"pushImage\", \"event_data\": {\"resources\": [{\"resource_url\": \"Bad/Name\"}]}}",
                "failed to parse",
            ),
            (Kind::Registry, "{}", "events"),
        ] {
            let err = parse(kind, body.as_bytes(), &none).expect_err(body);
            assert!(err.0.contains(problem), "{body}: {err}");
        }
    }
}
