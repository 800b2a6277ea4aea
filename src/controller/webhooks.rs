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

/// Reads the hints a body carries; `github_event` is the `X-GitHub-Event` header. An event
/// that carries no new tag (a delete, a blob upload) gives no hints and is not an error.
pub fn parse(kind: Kind, body: &[u8], github_event: Option<&str>) -> Result<Vec<Hint>, BadBody> {
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
                let (Some(url), Some(tag)) =
                    (text(resource, &["resource_url"]), text(resource, &["tag"]))
                else {
                    continue;
                };
                hints.push(hint(bare_repository(url), tag, text(resource, &["digest"])));
            }
            Ok(hints)
        }
        Kind::GitHub => github(&value, github_event),
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
            if text(&value, &["domain"]) != Some("docker")
                || text(&value, &["event_type"]) != Some("pushed")
            {
                return Ok(Vec::new());
            }
            let image = required(&value, &["data", "image_name"])?;
            let tag = required(&value, &["data", "tag"])?;
            let repository = match (
                text(&value, &["data", "repo_key"]),
                text(&value, &["jpd_origin"]),
            ) {
                (Some(repo_key), Some(origin)) => {
                    format!(
                        "{}/{repo_key}/{image}",
                        bare_repository(origin).trim_end_matches('/')
                    )
                }
                _ => image.to_string(),
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

/// GitHub's `registry_package` and `package` events (container packages on ghcr.io).
fn github(value: &Value, event: Option<&str>) -> Result<Vec<Hint>, BadBody> {
    if let Some(event) = event
        && !matches!(event, "registry_package" | "package")
    {
        // `ping` and every other event: nothing to do.
        return Ok(Vec::new());
    }
    let package = value
        .get("registry_package")
        .or_else(|| value.get("package"))
        .ok_or_else(|| BadBody("missing object \"registry_package\" or \"package\"".to_string()))?;
    if !matches!(
        text(package, &["package_type"])
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("container" | "docker")
    ) {
        return Ok(Vec::new());
    }
    let version = package
        .get("package_version")
        .ok_or_else(|| BadBody("missing object \"package_version\"".to_string()))?;
    let mut tags: Vec<&str> = version
        .pointer("/container_metadata/tag/name")
        .and_then(Value::as_str)
        .into_iter()
        .collect();
    if let Some(more) = version
        .pointer("/metadata/container/tags")
        .and_then(Value::as_array)
    {
        tags.extend(more.iter().filter_map(Value::as_str));
    }
    tags.retain(|t| !t.is_empty());
    tags.dedup();
    // The package URL names the repository on ghcr.io: `ghcr.io/owner/name:tag`.
    let repository = match text(version, &["package_url"]) {
        Some(url) => bare_repository(url),
        None => {
            let owner = text(package, &["namespace"])
                .or_else(|| text(package, &["owner", "login"]))
                .ok_or_else(|| BadBody("missing the package's owner".to_string()))?;
            let name = required(package, &["name"])?;
            format!(
                "ghcr.io/{}/{}",
                owner.to_ascii_lowercase(),
                name.to_ascii_lowercase()
            )
        }
    };
    let digest = text(version, &["version"]).filter(|v| v.starts_with("sha256:"));
    Ok(tags
        .into_iter()
        .map(|tag| Hint {
            repository: repository.clone(),
            tag: tag.to_string(),
            digest: digest.map(str::to_string),
        })
        .collect())
}
