//! Patch mode: when the renderer cannot reproduce a revision's stored manifest (subcharts, which
//! Helm does not store, or a template feature it lacks), the new manifest is the stored one with
//! exactly the old image references replaced — every other byte stays as Helm rendered it.

/// An image reference as a template typically renders it from the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedImage {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// The ways a template spells an image reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    TagAndDigest,
    Digest,
    Tag,
    Bare,
}

impl RenderedImage {
    fn spell(&self, shape: Shape) -> Option<String> {
        let repo = &self.repository;
        match (shape, &self.tag, &self.digest) {
            (Shape::TagAndDigest, Some(tag), Some(digest)) => {
                Some(format!("{repo}:{tag}@{digest}"))
            }
            (Shape::Digest, _, Some(digest)) => Some(format!("{repo}@{digest}")),
            (Shape::Tag, Some(tag), _) => Some(format!("{repo}:{tag}")),
            (Shape::Bare, None, None) => Some(repo.clone()),
            _ => None,
        }
    }

    /// The spellings a chart may render for this image, most specific first.
    fn spellings(&self) -> Vec<(Shape, String)> {
        [Shape::TagAndDigest, Shape::Digest, Shape::Tag, Shape::Bare]
            .into_iter()
            .filter_map(|shape| self.spell(shape).map(|text| (shape, text)))
            .collect()
    }

    /// `self` spelled the way the old reference was found, else its most specific spelling.
    fn spelled_like(&self, shape: Shape) -> String {
        self.spell(shape)
            .or_else(|| self.spellings().into_iter().next().map(|(_, text)| text))
            .unwrap_or_else(|| self.repository.clone())
    }
}

/// Why patch mode could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("patch mode: the stored manifest has no `image:` field with {old} (looked for {tried})")]
pub struct ReferenceNotFound {
    pub old: String,
    pub tried: String,
}

/// Replaces every `image:` value equal to a spelling of `old` with the matching spelling of
/// `new`, keeping quotes and indentation. Returns the new text and how many fields changed.
pub fn replace_image(text: &str, old: &RenderedImage, new: &RenderedImage) -> (String, usize) {
    let forms = old.spellings();
    let mut replaced = 0;
    let mut output = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        match replace_in_line(line, &forms, new) {
            Some(changed) => {
                output.push_str(&changed);
                replaced += 1;
            }
            None => output.push_str(line),
        }
    }
    (output, replaced)
}

fn replace_in_line(line: &str, forms: &[(Shape, String)], new: &RenderedImage) -> Option<String> {
    let (body, newline) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    let trimmed = body.trim_start();
    let after_dash = trimmed.strip_prefix("- ").unwrap_or(trimmed);
    let value_part = after_dash.strip_prefix("image:")?;
    let prefix_len = body.len() - value_part.len();
    let leading_space = value_part.len() - value_part.trim_start().len();
    let value = value_part.trim();
    let (quote, unquoted) = match value.chars().next() {
        Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => {
            (Some(q), &value[1..value.len() - 1])
        }
        _ => (None, value),
    };
    let (shape, _) = forms.iter().find(|(_, form)| form.as_str() == unquoted)?;
    let replacement = new.spelled_like(*shape);
    let quoted = match quote {
        Some(q) => format!("{q}{replacement}{q}"),
        None => replacement,
    };
    Some(format!(
        "{}{}{}{}",
        &body[..prefix_len],
        &value_part[..leading_space],
        quoted,
        newline
    ))
}

/// Replaces `old` with `new` in a manifest and its hooks; refuses when the manifest does not
/// contain the old reference (the rendered form is unknown, so nothing is guessed).
pub fn patch_manifest(
    manifest: &str,
    hooks: &[String],
    old: &RenderedImage,
    new: &RenderedImage,
) -> Result<(String, Vec<String>), ReferenceNotFound> {
    let (new_manifest, count) = replace_image(manifest, old, new);
    if count == 0 {
        let spellings: Vec<String> = old.spellings().into_iter().map(|(_, text)| text).collect();
        return Err(ReferenceNotFound {
            old: spellings.first().cloned().unwrap_or_default(),
            tried: spellings.join(", "),
        });
    }
    let new_hooks = hooks
        .iter()
        .map(|hook| replace_image(hook, old, new).0)
        .collect();
    Ok((new_manifest, new_hooks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(repository: &str, tag: Option<&str>, digest: Option<&str>) -> RenderedImage {
        RenderedImage {
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        }
    }

    #[test]
    fn replaces_quoted_and_plain_image_fields_only() {
        let manifest = "spec:\n  containers:\n    - name: a\n      image: \"r/app:1.0.0\"\n    - image: r/app:1.0.0\n      env:\n        - name: X\n          value: r/app:1.0.0\n";
        let (out, count) = replace_image(
            manifest,
            &image("r/app", Some("1.0.0"), None),
            &image("r/app", Some("1.1.0"), None),
        );
        assert_eq!(count, 2);
        assert_eq!(
            out,
            "spec:\n  containers:\n    - name: a\n      image: \"r/app:1.1.0\"\n    - image: r/app:1.1.0\n      env:\n        - name: X\n          value: r/app:1.0.0\n"
        );
    }

    #[test]
    fn a_similar_but_longer_reference_is_not_touched() {
        let manifest = "image: r/app:1.0.0-debug\n";
        let (out, count) = replace_image(
            manifest,
            &image("r/app", Some("1.0.0"), None),
            &image("r/app", Some("1.1.0"), None),
        );
        assert_eq!((out.as_str(), count), (manifest, 0));
    }

    #[test]
    fn digest_spellings_follow_the_new_digest() {
        let old = image("r/app", Some("1"), Some("sha256:aaa"));
        let new = image("r/app", Some("1"), Some("sha256:bbb"));
        let (out, _) = replace_image(
            "image: r/app:1@sha256:aaa\nimage: r/app@sha256:aaa\n",
            &old,
            &new,
        );
        assert_eq!(out, "image: r/app:1@sha256:bbb\nimage: r/app@sha256:bbb\n");
    }

    #[test]
    fn missing_reference_is_refused() {
        let result = patch_manifest(
            "image: other:1\n",
            &[],
            &image("r/app", Some("1"), None),
            &image("r/app", Some("2"), None),
        );
        assert_eq!(
            result.err().map(|e| e.to_string()).as_deref(),
            Some(
                "patch mode: the stored manifest has no `image:` field with r/app:1 (looked for r/app:1)"
            )
        );
    }
}
