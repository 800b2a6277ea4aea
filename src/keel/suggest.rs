//! `keelson suggest`: a `keel:` block for a release's containers, found by matching each image
//! its deployed manifest runs to the values that produce it — a map with a `repository` (or
//! `image`) key next to `tag`, `registry` and `digest` keys, and registry overrides under
//! `global` (`global.imageRegistry`, `global.image.registry`).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::values::{PathSegment, ValuePath};

use super::split_reference;

/// One container of the manifest: where it is and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// `Deployment/web`
    pub owner: String,
    pub name: String,
    pub image: String,
}

/// Value paths that produce one image, as an `images[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub registry: Vec<ValuePath>,
    pub repository: ValuePath,
    pub tag: Option<ValuePath>,
    pub digest: Option<ValuePath>,
}

/// An entry with the image it resolves to and the containers that run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub entry: ImageEntry,
    pub image: String,
    pub containers: Vec<String>,
    /// Other value paths that would also produce the image, for the reader to choose.
    pub alternatives: Vec<ImageEntry>,
}

/// What `suggest` found: entries, and the containers no values produce.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suggestions {
    pub images: Vec<Suggestion>,
    pub unmatched: Vec<Container>,
}

/// Every container (init, ephemeral and regular) of every object in a manifest.
pub fn containers(documents: &[Value]) -> Vec<Container> {
    let mut found = Vec::new();
    for document in documents {
        let owner = format!(
            "{}/{}",
            document.get("kind").and_then(Value::as_str).unwrap_or("?"),
            document
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
        );
        collect_containers(document, &owner, &mut found);
    }
    found
}

fn collect_containers(value: &Value, owner: &str, found: &mut Vec<Container>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if matches!(
                    key.as_str(),
                    "containers" | "initContainers" | "ephemeralContainers"
                ) && let Value::Array(items) = child
                {
                    for item in items {
                        if let Some(image) = item.get("image").and_then(Value::as_str) {
                            found.push(Container {
                                owner: owner.to_string(),
                                name: item
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .unwrap_or("?")
                                    .to_string(),
                                image: image.to_string(),
                            });
                        }
                    }
                } else {
                    collect_containers(child, owner, found);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_containers(item, owner, found);
            }
        }
        _ => {}
    }
}

/// A rendered reference split as the chart wrote it: name (with registry), tag, digest.
struct Rendered<'a> {
    name: String,
    tag: Option<String>,
    digest: Option<&'a str>,
}

fn split_rendered(image: &str) -> Rendered<'_> {
    let digest = image.split_once('@').map(|(_, d)| d);
    let (name, tag) = split_reference(image);
    Rendered { name, tag, digest }
}

/// Every map in the values with its path, parents first.
fn maps<'a>(
    value: &'a Value,
    path: &mut Vec<PathSegment>,
    out: &mut Vec<(ValuePath, &'a Map<String, Value>)>,
) {
    match value {
        Value::Object(map) => {
            out.push((ValuePath::from_segments(path.clone()), map));
            for (key, child) in map {
                path.push(PathSegment::Key(key.clone()));
                maps(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(PathSegment::Index(i));
                maps(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn child(path: &ValuePath, key: &str) -> ValuePath {
    let mut segments = path.segments().to_vec();
    segments.push(PathSegment::Key(key.to_string()));
    ValuePath::from_segments(segments)
}

/// A scalar as the chart renders it into a string (`tag: 3` renders `3`); `None` for null.
fn scalar(value: &Value) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        Value::Number(n) => Some(Some(gocompat::yaml::go_number_text(n))),
        _ => None,
    }
}

/// Registry override paths under `global` (keys containing `registry`, holding a string or
/// nothing), in values order.
fn global_registries(all: &[(ValuePath, &Map<String, Value>)]) -> Vec<(ValuePath, Option<String>)> {
    let mut found = Vec::new();
    for (path, map) in all {
        if path.segments().first() != Some(&PathSegment::Key("global".to_string())) {
            continue;
        }
        for (key, value) in *map {
            if key.to_ascii_lowercase().contains("registry")
                && let Some(text) = scalar(value)
            {
                found.push((child(path, key), text));
            }
        }
    }
    found
}

/// The candidate entries that render `image`, best first: a tag value equal to the rendered
/// tag beats an empty one (the chart's fallback), then deeper (more specific) paths win.
pub fn candidates(values: &Value, image: &str) -> Vec<ImageEntry> {
    let mut all = Vec::new();
    maps(values, &mut Vec::new(), &mut all);
    let globals = global_registries(&all);
    let rendered = split_rendered(image);
    let mut scored: Vec<(u8, usize, ImageEntry)> = Vec::new();
    for (path, map) in &all {
        for repo_key in ["repository", "image", "name"] {
            let Some(Value::String(repository)) = map.get(repo_key) else {
                continue;
            };
            if repository.is_empty() || repository.contains(char::is_whitespace) {
                continue;
            }
            // `name:` is an image only next to a `tag:` (else it names anything).
            if repo_key == "name" && !map.contains_key("tag") {
                continue;
            }
            let repository_path = child(path, repo_key);
            // Keel's one-value form: the whole reference in one value.
            if repository.as_str() == image.split('@').next().unwrap_or(image)
                && rendered.tag.is_some()
                && !map.contains_key("tag")
            {
                scored.push((
                    2,
                    path.segments().len(),
                    ImageEntry {
                        registry: Vec::new(),
                        repository: repository_path,
                        tag: None,
                        digest: None,
                    },
                ));
                continue;
            }
            let registry = if rendered.name == *repository {
                Vec::new()
            } else if let Some(prefix) = rendered
                .name
                .strip_suffix(repository.as_str())
                .and_then(|rest| rest.strip_suffix('/'))
            {
                let mut chain: Vec<(ValuePath, Option<String>)> = globals
                    .iter()
                    .filter(|(_, value)| {
                        value
                            .as_deref()
                            .is_none_or(|v| v.is_empty() || v.trim_end_matches('/') == prefix)
                    })
                    .cloned()
                    .collect();
                if let Some(local) = map.get("registry").and_then(scalar) {
                    chain.push((child(path, "registry"), local));
                }
                let first = chain
                    .iter()
                    .find_map(|(_, value)| value.as_deref().filter(|v| !v.is_empty()));
                if first.map(|v| v.trim_end_matches('/')) != Some(prefix) {
                    continue;
                }
                chain.into_iter().map(|(path, _)| path).collect()
            } else {
                continue;
            };
            let tag_value = match map.get("tag") {
                None => None,
                Some(value) => match scalar(value) {
                    Some(text) => text,
                    None => continue,
                },
            };
            let tag_value = tag_value.filter(|t| !t.is_empty());
            let explicit = match (&tag_value, &rendered.tag) {
                (Some(value), Some(tag)) if value == tag => true,
                (Some(_), _) => continue,
                (None, _) => false,
            };
            let tag =
                (rendered.tag.is_some() || map.contains_key("tag")).then(|| child(path, "tag"));
            let digest = match map.get("digest").and_then(scalar) {
                None => None,
                Some(None) => Some(child(path, "digest")),
                Some(Some(value)) if value.is_empty() => Some(child(path, "digest")),
                Some(Some(value)) if Some(value.as_str()) == rendered.digest => {
                    Some(child(path, "digest"))
                }
                Some(Some(_)) => continue,
            };
            scored.push((
                u8::from(explicit),
                path.segments().len(),
                ImageEntry {
                    registry,
                    repository: repository_path,
                    tag,
                    digest,
                },
            ));
        }
    }
    scored.sort_by_key(|(explicit, depth, _)| std::cmp::Reverse((*explicit, *depth)));
    scored.into_iter().map(|(_, _, entry)| entry).collect()
}

/// Matches every container of the manifests to the values that produce its image.
pub fn suggest(values: &Value, documents: &[Value]) -> Suggestions {
    let mut result = Suggestions::default();
    for container in containers(documents) {
        let mut found = candidates(values, &container.image);
        if found.is_empty() {
            if !result.unmatched.contains(&container) {
                result.unmatched.push(container);
            }
            continue;
        }
        let entry = found.remove(0);
        let place = format!("{} ({})", container.owner, container.name);
        match result.images.iter_mut().find(|s| s.entry == entry) {
            Some(existing) => {
                if !existing.containers.contains(&place) {
                    existing.containers.push(place);
                }
            }
            None => result.images.push(Suggestion {
                entry,
                image: container.image.clone(),
                containers: vec![place],
                alternatives: found,
            }),
        }
    }
    result
}

/// A value path as a YAML scalar: plain when that reads back the same, else double-quoted.
fn yaml_path(path: &ValuePath) -> String {
    let text = path.to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '[' | ']'))
        && !text.starts_with('[');
    if plain {
        text
    } else {
        serde_json::to_string(&text).unwrap_or(text)
    }
}

/// The `keel:` block as YAML to paste under the release's values.
pub fn render_block(suggestions: &Suggestions, policy: &str, poll_schedule: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "keel:");
    let _ = writeln!(text, "  policy: {policy}");
    let _ = writeln!(text, "  trigger: poll");
    let _ = writeln!(
        text,
        "  pollSchedule: {}",
        serde_json::Value::from(poll_schedule)
    );
    if suggestions.images.is_empty() {
        let _ = writeln!(text, "  images: []");
    } else {
        let _ = writeln!(text, "  images:");
    }
    for suggestion in &suggestions.images {
        let _ = writeln!(
            text,
            "    # {} in {}",
            suggestion.image,
            suggestion.containers.join(", ")
        );
        for alternative in &suggestion.alternatives {
            let _ = writeln!(
                text,
                "    # (also produced by repository {})",
                alternative.repository
            );
        }
        let entry = &suggestion.entry;
        let mut first = true;
        let mut line = |key: &str, value: String| {
            let lead = if first { "    - " } else { "      " };
            first = false;
            let _ = writeln!(text, "{lead}{key}: {value}");
        };
        match entry.registry.as_slice() {
            [] => {}
            [one] => line("registry", yaml_path(one)),
            many => line(
                "registry",
                format!(
                    "[{}]",
                    many.iter().map(yaml_path).collect::<Vec<_>>().join(", ")
                ),
            ),
        }
        line("repository", yaml_path(&entry.repository));
        if let Some(tag) = &entry.tag {
            line("tag", yaml_path(tag));
        }
        if let Some(digest) = &entry.digest {
            line("digest", yaml_path(digest));
        }
    }
    for container in &suggestions.unmatched {
        let _ = writeln!(
            text,
            "  # not produced by any value: {} in {} ({})",
            container.image, container.owner, container.name
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> ValuePath {
        text.parse().expect("valid path")
    }

    #[test]
    fn split_registry_with_global_override_and_app_version_tag() {
        // keda: `global.image.registry | default image.keda.registry`, tag "" → appVersion.
        let values = json!({
            "global": {"image": {"registry": "127.0.0.1:5000"}},
            "image": {"keda": {"registry": "ghcr.io", "repository": "kedacore/keda", "tag": ""},
                      "webhooks": {"registry": "ghcr.io", "repository": "kedacore/keda-admission-webhooks", "tag": ""}}
        });
        let found = candidates(&values, "127.0.0.1:5000/kedacore/keda:2.20.2");
        assert_eq!(
            found,
            vec![ImageEntry {
                registry: vec![path("global.image.registry"), path("image.keda.registry")],
                repository: path("image.keda.repository"),
                tag: Some(path("image.keda.tag")),
                digest: None,
            }]
        );
        // Without the override the local registry is the one in force.
        let values = json!({
            "global": {"image": {"registry": null}},
            "image": {"keda": {"registry": "ghcr.io", "repository": "kedacore/keda", "tag": ""}}
        });
        assert_eq!(
            candidates(&values, "ghcr.io/kedacore/keda:2.20.2")[0].registry,
            vec![path("global.image.registry"), path("image.keda.registry")]
        );
        // A global override with another value is not what this image was rendered with.
        let values = json!({
            "global": {"imageRegistry": "other.example"},
            "image": {"registry": "docker.io", "repository": "bitnami/nginx", "tag": "1.29.1", "digest": ""}
        });
        assert_eq!(
            candidates(&values, "docker.io/bitnami/nginx:1.29.1"),
            vec![ImageEntry {
                registry: vec![path("image.registry")],
                repository: path("image.repository"),
                tag: Some(path("image.tag")),
                digest: Some(path("image.digest")),
            }]
        );
    }

    #[test]
    fn keel_one_value_form_and_mismatched_tags() {
        let values = json!({"sidecar": {"image": "127.0.0.1:5000/side:1.0"},
                            "app": {"repository": "127.0.0.1:5000/app", "tag": "2.0"}});
        assert_eq!(
            candidates(&values, "127.0.0.1:5000/side:1.0")[0].repository,
            path("sidecar.image")
        );
        assert!(candidates(&values, "127.0.0.1:5000/app:3.0").is_empty());
        assert_eq!(
            candidates(&values, "127.0.0.1:5000/app:2.0")[0].tag,
            Some(path("app.tag"))
        );
    }

    #[test]
    fn an_explicit_tag_beats_a_fallback() {
        let values = json!({
            "server": {"image": {"repository": "hashicorp/vault", "tag": "2.0.4"}},
            "global": {"image": {"repository": "hashicorp/vault", "tag": ""}}
        });
        let found = candidates(&values, "hashicorp/vault:2.0.4");
        assert_eq!(found[0].repository, path("server.image.repository"));
        assert_eq!(found[1].repository, path("global.image.repository"));
    }

    #[test]
    fn renders_a_block_that_reads_back() {
        let values = json!({
            "global": {"imageRegistry": ""},
            "image": {"registry": "127.0.0.1:5000", "repository": "org/app", "tag": ""},
            "keel": null
        });
        let documents = vec![json!({
            "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "image": "127.0.0.1:5000/org/app:1.2.3"}],
                "containers": [{"name": "app", "image": "127.0.0.1:5000/org/app:1.2.3"},
                               {"name": "other", "image": "busybox:1"}]}}}
        })];
        let found = suggest(&values, &documents);
        assert_eq!(found.images.len(), 1);
        assert_eq!(found.images[0].containers.len(), 2);
        assert_eq!(found.unmatched.len(), 1);
        let text = render_block(&found, "minor", "@every 5m");
        assert!(
            text.contains("    - registry: [global.imageRegistry, image.registry]\n      repository: image.repository\n      tag: image.tag\n"),
            "{text}"
        );
        // The block, pasted into the values, reads as a keel block tracking that image.
        let block_values = gocompat::yaml::parse_values(&text, "suggestion").expect("YAML");
        let mut merged = values.as_object().cloned().unwrap_or_default();
        merged.extend(block_values);
        let block = super::super::read_values(&Value::Object(merged))
            .expect("valid block")
            .expect("a block");
        assert_eq!(block.images[0].repository, "127.0.0.1:5000/org/app");
        assert_eq!(block.policy, "minor");
    }
}
