//! The image references a release's deployed manifest runs: where an `images[]` entry's tag
//! value is empty or missing (the chart falls back to `.Chart.AppVersion`, or templates the tag),
//! the current tag is the one the chart rendered.

use std::collections::BTreeSet;

use crate::registry::ImageRef;
use crate::storage::Release;

use super::{KeelBlock, TagSource};

/// Every `image:` value of a manifest (containers, init containers, and custom resources that
/// name an image the same way), unquoted, in order of appearance. Helm renders these as one
/// plain or quoted scalar per line, which is what patch mode replaces too.
pub fn image_fields(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .filter_map(|line| {
            let trimmed = line.trim_start();
            let after_dash = trimmed.strip_prefix("- ").unwrap_or(trimmed).trim_start();
            let value = after_dash.strip_prefix("image:")?.trim();
            let value = match value.chars().next() {
                Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => {
                    &value[1..value.len() - 1]
                }
                _ => value,
            };
            // A comment after a plain scalar is not part of it.
            let value = value.split(" #").next().unwrap_or(value).trim();
            (!value.is_empty()).then(|| value.to_string())
        })
        .collect()
}

/// The tag (and digest) the manifests run for `repository`, or why there is no single one.
pub fn rendered_tag(
    repository: &str,
    manifests: &[&str],
) -> Result<(String, Option<String>), String> {
    let wanted = ImageRef::parse(repository)
        .map_err(|err| format!("invalid image reference {repository:?}: {err}"))?
        .repository();
    let mut found: BTreeSet<(Option<String>, Option<String>)> = BTreeSet::new();
    for manifest in manifests {
        for field in image_fields(manifest) {
            let Ok(image) = ImageRef::parse(&field) else {
                continue;
            };
            if image.repository() == wanted {
                found.insert((image.tag, image.digest));
            }
        }
    }
    let tags: BTreeSet<&Option<String>> = found.iter().map(|(tag, _)| tag).collect();
    match tags.len() {
        0 => Err(format!(
            "the deployed manifest runs no image of {repository}"
        )),
        1 => {
            let Some((Some(tag), digest)) = found.iter().next().cloned() else {
                return Err(format!(
                    "the deployed manifest runs {repository} without a tag"
                ));
            };
            // One tag under several digests (one container pinned, one not) still has one tag.
            let digests: BTreeSet<&Option<String>> = found.iter().map(|(_, d)| d).collect();
            Ok((tag, if digests.len() == 1 { digest } else { None }))
        }
        _ => Err(format!(
            "the deployed manifest runs {repository} with several tags ({}); set the tag value",
            tags.iter()
                .map(|t| t.as_deref().unwrap_or("none").to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Fills in the tags of images whose tag value is empty from the release's deployed manifest
/// (its hooks too: an image may only run in a hook).
pub fn resolve(block: &mut KeelBlock, release: &Release) {
    let manifest = release.manifest.as_deref().unwrap_or_default();
    let hooks: Vec<&str> = release
        .hooks
        .iter()
        .flatten()
        .filter_map(|hook| hook.manifest.as_deref())
        .collect();
    let mut manifests = vec![manifest];
    manifests.extend(hooks);
    resolve_from(block, &manifests);
}

/// [`resolve`] over manifest texts.
pub fn resolve_from(block: &mut KeelBlock, manifests: &[&str]) {
    for image in &mut block.images {
        if image.tag_source != TagSource::DeployedManifest {
            continue;
        }
        match rendered_tag(&image.repository, manifests) {
            Ok((tag, _)) => {
                image.tag = Some(tag);
                image.unresolved = None;
            }
            Err(reason) => {
                image.unresolved = Some(format!(
                    "the tag value at {} is empty (or templated) and {reason}",
                    image
                        .tag_path
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"---
# Source: c/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: "127.0.0.1:5000/org/app:2.20.2"
      containers:
      - name: app
        image: 127.0.0.1:5000/org/app:2.20.2
      - image: 'docker.io/library/nginx:1.25@sha256:0000000000000000000000000000000000000000000000000000000000000000'
        name: web
      - name: side
        image: busybox
"#;

    #[test]
    fn finds_image_fields_in_every_spelling() {
        assert_eq!(
            image_fields(MANIFEST),
            vec![
                "127.0.0.1:5000/org/app:2.20.2",
                "127.0.0.1:5000/org/app:2.20.2",
                "docker.io/library/nginx:1.25@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "busybox",
            ]
        );
    }

    #[test]
    fn the_rendered_tag_of_a_repository() {
        assert_eq!(
            rendered_tag("127.0.0.1:5000/org/app", &[MANIFEST]),
            Ok(("2.20.2".to_string(), None))
        );
        // Docker Hub names normalize: `nginx` is `docker.io/library/nginx`.
        let (tag, digest) = rendered_tag("nginx", &[MANIFEST]).expect("nginx runs");
        assert_eq!(tag, "1.25");
        assert!(digest.is_some_and(|d| d.starts_with("sha256:")));
        let missing = rendered_tag("127.0.0.1:5000/org/other", &[MANIFEST]).unwrap_err();
        assert!(missing.contains("runs no image"), "{missing}");
        let bare = rendered_tag("busybox", &[MANIFEST]).unwrap_err();
        assert!(bare.contains("without a tag"), "{bare}");
        let two = rendered_tag(
            "127.0.0.1:5000/org/app",
            &[MANIFEST, "image: 127.0.0.1:5000/org/app:1.0.0\n"],
        )
        .unwrap_err();
        assert!(two.contains("several tags (1.0.0, 2.20.2)"), "{two}");
    }
}
