//! Planning: for each tracked image of a release, the current reference from its values, the
//! registry's tags, the policy's choice, and the rollback guard — a change or the reason for none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::keel::{self, KeelBlock, TrackedImage, ValuePath};
use crate::policy::{Policy, PolicyOptions, Selection};
use crate::registry::{ImageRef, RegistryClient};
use crate::storage::StoredRelease;

use super::rollback::{self, RevisionImage};

/// One tracked image's plan, as `keelson check -o json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImagePlan {
    pub release: String,
    pub namespace: String,
    /// The repository as written in the values.
    pub image: String,
    /// The value path that changes (the tag path, else the repository path).
    pub path: String,
    /// The current reference (`repo:tag`, with `@digest` when a digest path is set).
    pub current: String,
    /// The reference the image moves to; `None` when there is nothing to do.
    pub target: Option<String>,
    /// Why the image is held back or refused; `None` when it moves or is simply current.
    pub reason: Option<String>,
    /// How the new manifest is made (`full render` or `patch mode`) when the image moves.
    pub mode: Option<&'static str>,
    /// Why the revision is made in patch mode (a subchart that cannot be fetched, a manifest
    /// that does not re-render byte for byte, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    /// The planned revision's manifest changes (`keelson check`), as `helm diff` shows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// How `current` was found: the values read and where the tag came from.
    pub explain: Explanation,
    /// The value changes that realize `target`.
    #[serde(skip)]
    pub changes: Vec<ValueChange>,
    /// What the approval gate just did for this plan (`approval-requested`,
    /// `approval-expired`), for notifications.
    #[serde(skip)]
    pub approval_event: Option<&'static str>,
    /// The target an approval holds back.
    #[serde(skip)]
    pub held_target: Option<String>,
    /// The policy that decided (for the revision's description).
    #[serde(skip)]
    pub policy: String,
}

/// How an image's current reference was resolved, for `keelson check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The values read, in order (registry paths first; the first non-empty registry wins).
    pub values: Vec<keel::ValueRead>,
    /// Where the current tag came from.
    pub tag_from: keel::TagSource,
    /// The reference the registry is asked about (`registry/repository:tag`).
    pub resolved: String,
}

/// One value path set to a new string.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueChange {
    pub path: ValuePath,
    pub old: Option<String>,
    pub new: String,
}

/// Which listing a cached answer belongs to: listings with different credentials may differ,
/// so the pull secret (namespace/name; empty for the default credentials) is part of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagKey {
    pub scope: String,
    /// The normalized repository (`docker.io/library/nginx`).
    pub repository: String,
}

type Shared<T> = Arc<tokio::sync::OnceCell<Result<T, String>>>;
type SharedMap<K, T> = Arc<Mutex<HashMap<K, Shared<T>>>>;

/// Tags (and digests) of each repository, fetched once however many releases track it. Clones
/// share one cache, and concurrent plans asking for the same repository wait for one request,
/// so a cycle costs one tag listing per repository.
#[derive(Clone, Default)]
pub struct TagCache {
    tags: SharedMap<TagKey, Vec<String>>,
    digests: SharedMap<(TagKey, String), String>,
}

impl TagCache {
    /// A cache that starts with answers already known (e.g. from an earlier, still fresh check).
    pub fn seed_tags(&self, key: TagKey, tags: Result<Vec<String>, String>) {
        let cell = tokio::sync::OnceCell::new_with(Some(tags));
        lock(&self.tags).insert(key, Arc::new(cell));
    }

    /// Whether a listing for `key` is at hand (seeded or fetched).
    pub fn has_tags(&self, key: &TagKey) -> bool {
        lock(&self.tags)
            .get(key)
            .is_some_and(|cell| cell.initialized())
    }

    /// Every tag listing this cache has answered (or was seeded with).
    pub fn tag_results(&self) -> Vec<(TagKey, Result<Vec<String>, String>)> {
        lock(&self.tags)
            .iter()
            .filter_map(|(key, cell)| cell.get().map(|found| (key.clone(), found.clone())))
            .collect()
    }

    async fn tags(
        &self,
        registry: &RegistryClient,
        scope: &str,
        image: &ImageRef,
    ) -> Result<Vec<String>, String> {
        let key = TagKey {
            scope: scope.to_string(),
            repository: image.repository(),
        };
        let cell = lock(&self.tags).entry(key).or_default().clone();
        cell.get_or_init(|| async {
            registry.list_tags(image).await.map_err(|err| {
                format!(
                    "cannot list tags of {}: {}",
                    image.repository(),
                    error_chain(&err)
                )
            })
        })
        .await
        .clone()
    }

    async fn digest(
        &self,
        registry: &RegistryClient,
        scope: &str,
        image: &ImageRef,
        tag: &str,
    ) -> Result<String, String> {
        let key = (
            TagKey {
                scope: scope.to_string(),
                repository: image.repository(),
            },
            tag.to_string(),
        );
        let cell = lock(&self.digests).entry(key).or_default().clone();
        cell.get_or_init(|| async {
            registry.digest(image, tag).await.map_err(|err| {
                format!(
                    "cannot read the digest of {}:{tag}: {}",
                    image.repository(),
                    error_chain(&err)
                )
            })
        })
        .await
        .clone()
    }
}

/// The cache's maps stay usable even if a holder of the lock panicked: entries are only ever
/// inserted whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The registry clients a plan may use: the default one, and one per pull secret named by an
/// image's `imagePullSecret` (or why that secret cannot be used).
pub struct Registries<'a> {
    /// The namespace the pull secrets are read from (the release's).
    pub namespace: &'a str,
    pub default: &'a RegistryClient,
    pub by_secret: &'a HashMap<String, Result<std::sync::Arc<RegistryClient>, String>>,
}

impl<'a> Registries<'a> {
    fn for_image(&self, tracked: &TrackedImage) -> Result<(&'a RegistryClient, String), String> {
        match &tracked.image_pull_secret {
            None => Ok((self.default, String::new())),
            Some(secret) => match self.by_secret.get(secret) {
                Some(Ok(client)) => Ok((client.as_ref(), format!("{}/{secret}", self.namespace))),
                Some(Err(reason)) => Err(reason.clone()),
                None => Ok((self.default, String::new())),
            },
        }
    }
}

/// `error: cause: cause` in one line, for reasons shown in tables and logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    crate::cluster::error_chain(err)
}

/// The values a release's history holds at `path` per revision, for the rollback guard.
fn history_of(history: &[StoredRelease], tracked: &TrackedImage) -> Vec<RevisionImage> {
    history
        .iter()
        .map(|stored| {
            let block = keel::read_release(&stored.release).ok().flatten();
            let image = block.as_ref().and_then(|b| {
                b.images
                    .iter()
                    .find(|i| i.repository_path == tracked.repository_path)
            });
            let tag = image.and_then(|i| i.tag.clone());
            let info = stored.release.info.as_ref();
            RevisionImage {
                version: stored.release.version(),
                description: stored.release.description().to_string(),
                rollback_revision: info.and_then(|i| {
                    i.extra
                        .get("rollback_revision")
                        .and_then(|v| v.to_json().as_i64())
                }),
                tag,
            }
        })
        .collect()
}

fn reference_text(repository: &str, tag: Option<&str>, digest: Option<&str>) -> String {
    let mut text = repository.to_string();
    if let Some(tag) = tag {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = digest {
        text.push('@');
        text.push_str(digest);
    }
    text
}

/// Plans every tracked image of release `name` in `namespace` from its `block` (read from the
/// revision planned from); `history` is the release's whole history (any order) for the
/// rollback guard. Without history the guard is off: a plan with no target then has none with
/// history either, since the guard only ever removes candidates.
pub async fn plan_release(
    name: &str,
    namespace: &str,
    block: &KeelBlock,
    history: &[StoredRelease],
    registries: &Registries<'_>,
    cache: &TagCache,
) -> Vec<ImagePlan> {
    let mut plans = Vec::with_capacity(block.images.len());
    for tracked in &block.images {
        plans.push(
            plan_image(
                (name, namespace),
                block,
                tracked,
                history,
                registries,
                cache,
            )
            .await,
        );
    }
    plans
}

async fn plan_image(
    (name, namespace): (&str, &str),
    block: &KeelBlock,
    tracked: &TrackedImage,
    history: &[StoredRelease],
    registries: &Registries<'_>,
    cache: &TagCache,
) -> ImagePlan {
    let policy_text = tracked.effective_policy(block).to_string();
    let current = reference_text(
        &tracked.repository,
        tracked.tag.as_deref(),
        tracked.digest_path.as_ref().and(tracked.digest.as_deref()),
    );
    let resolved = reference_text(&tracked.repository, tracked.tag.as_deref(), None);
    let mut plan = ImagePlan {
        release: name.to_string(),
        namespace: namespace.to_string(),
        image: tracked.repository.clone(),
        path: tracked
            .tag_path
            .as_ref()
            .unwrap_or(&tracked.repository_path)
            .to_string(),
        current,
        target: None,
        reason: None,
        mode: None,
        mode_reason: None,
        diff: None,
        explain: Explanation {
            values: tracked.reads.clone(),
            tag_from: tracked.tag_source,
            resolved,
        },
        changes: Vec::new(),
        approval_event: None,
        held_target: None,
        policy: policy_text.clone(),
    };
    let hold = |mut plan: ImagePlan, reason: String| {
        plan.reason = Some(reason);
        plan
    };
    if let Some(reason) = &tracked.unresolved {
        return hold(plan, reason.clone());
    }

    let policy = match Policy::parse_with(
        &policy_text,
        PolicyOptions {
            match_tag: block.match_tag,
            match_pre_release: block.match_pre_release,
        },
    ) {
        Ok(policy) => policy,
        Err(err) => return hold(plan, format!("invalid policy: {err}")),
    };
    // keel.rs splits a `repo:tag` repository value, so `repository` is always bare here.
    let reference_value = reference_text(&tracked.repository, tracked.tag.as_deref(), None);
    let image = match ImageRef::parse(&reference_value) {
        Ok(image) => image,
        Err(err) => return hold(plan, format!("invalid image reference: {err}")),
    };
    let (registry, scope) = match registries.for_image(tracked) {
        Ok(found) => found,
        Err(reason) => return hold(plan, reason),
    };
    // Rollback sticks: tags undone by a rollback only count when something newer appears.
    let rolled_back = rollback::rolled_back_tags(&history_of(history, tracked));
    let decision = decide(
        Choice {
            policy: &policy,
            policy_text: &policy_text,
            image: &image,
            current_digest: tracked.digest.as_deref(),
            // A pinned digest follows the tag; an empty digest value stays empty (the image
            // moves by tag, as `helm upgrade --set image.tag=…` would move it).
            pin_digest: tracked.digest.is_some(),
            digest_writable: tracked.digest_path.is_some(),
            undone: rolled_back.as_ref().map(|r| r.tags.as_slice()),
            undone_by: &rolled_back
                .as_ref()
                .map(|r| {
                    format!(
                        "rolled back (revision {} returned to revision {})",
                        r.rollback, r.target
                    )
                })
                .unwrap_or_default(),
            registry,
            scope: &scope,
        },
        cache,
    )
    .await;
    match decision {
        Decision::Stay => plan,
        Decision::Hold(reason) => hold(plan, reason),
        Decision::Move { tag, digest } => {
            let mut changes = Vec::new();
            if image.tag.as_deref() != Some(tag.as_str()) {
                match &tracked.tag_path {
                    Some(path) => changes.push(ValueChange {
                        path: path.clone(),
                        old: tracked.tag.clone(),
                        new: tag.clone(),
                    }),
                    None => changes.push(ValueChange {
                        path: tracked.repository_path.clone(),
                        old: Some(reference_value.clone()),
                        new: reference_text(&tracked.repository, Some(&tag), None),
                    }),
                }
            }
            if let (Some(digest_path), Some(found)) = (&tracked.digest_path, &digest)
                && tracked.digest.as_ref() != Some(found)
            {
                changes.push(ValueChange {
                    path: digest_path.clone(),
                    old: tracked.digest.clone(),
                    new: found.clone(),
                });
            }
            plan.target = Some(reference_text(
                &tracked.repository,
                Some(&tag),
                digest.as_deref(),
            ));
            plan.changes = changes;
            plan
        }
    }
}

/// What [`decide`] needs to choose one image's next reference.
pub struct Choice<'a> {
    pub policy: &'a Policy,
    /// The policy as written, for messages.
    pub policy_text: &'a str,
    /// The image as it runs now (repository and current tag).
    pub image: &'a ImageRef,
    /// The digest pinned now, if any.
    pub current_digest: Option<&'a str>,
    /// On a move to a newer tag, also resolve and pin that tag's digest.
    pub pin_digest: bool,
    /// Whether a digest can be written at all (a release needs a digest value path).
    pub digest_writable: bool,
    /// Tags a rollback (or `kubectl rollout undo`) undid and that still count as undone.
    pub undone: Option<&'a [String]>,
    /// How the hold message says what undid them (`rolled back (revision 3 returned to …)`).
    pub undone_by: &'a str,
    pub registry: &'a RegistryClient,
    /// The credentials' scope for the tag cache (see [`TagKey`]).
    pub scope: &'a str,
}

/// Where one image goes: the same decision for release values and for workload containers.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to do: the image is current under its policy.
    Stay,
    /// Held back, and why (policy, registry, rollback).
    Hold(String),
    /// Move to `tag` (the current tag when only the digest changes), pinned to `digest` when
    /// one was resolved.
    Move { tag: String, digest: Option<String> },
}

/// The policy's choice among the registry's tags (from the shared cache), with the rollback
/// guard applied: tags undone by a rollback only count once something newer appears.
pub async fn decide(choice: Choice<'_>, cache: &TagCache) -> Decision {
    let Choice {
        policy,
        policy_text,
        image,
        current_digest,
        pin_digest,
        digest_writable,
        undone,
        undone_by,
        registry,
        scope,
    } = choice;
    let current_tag = image.tag.clone().unwrap_or_default();
    let tags = match cache.tags(registry, scope, image).await {
        Ok(tags) => tags,
        Err(reason) => return Decision::Hold(reason),
    };
    let candidates: Vec<String> = match undone {
        Some(undone) => newer_than_all(policy, &tags, undone),
        None => tags.clone(),
    };
    match policy.select(&current_tag, &candidates) {
        Selection::Update(tag) => {
            let digest = if pin_digest {
                match cache.digest(registry, scope, image, &tag).await {
                    Ok(found) => Some(found),
                    Err(reason) => return Decision::Hold(reason),
                }
            } else {
                None
            };
            Decision::Move { tag, digest }
        }
        Selection::WatchDigest(tag) => {
            if !digest_writable {
                return Decision::Hold(format!(
                    "policy {policy_text} follows the digest of {tag:?}, but the image has no digest value path to write it to"
                ));
            }
            let found = match cache.digest(registry, scope, image, &tag).await {
                Ok(found) => found,
                Err(reason) => return Decision::Hold(reason),
            };
            if current_digest == Some(found.as_str()) {
                return Decision::Stay;
            }
            Decision::Move {
                tag,
                digest: Some(found),
            }
        }
        Selection::Hold(reason) => {
            // Explain a rollback hold rather than the generic "up to date".
            if let Some(undone) = undone
                && let Selection::Update(blocked) = policy.select(&current_tag, &tags)
            {
                return Decision::Hold(format!(
                    "{blocked} was {undone_by}; waiting for a tag newer than {}",
                    undone.join(", ")
                ));
            }
            match reason {
                crate::policy::HoldReason::UpToDate { .. } => Decision::Stay,
                other => Decision::Hold(other.to_string()),
            }
        }
    }
}

/// The tags the policy ranks above every one of `blocked`.
fn newer_than_all(policy: &Policy, tags: &[String], blocked: &[String]) -> Vec<String> {
    let mut all: Vec<String> = tags.to_vec();
    for tag in blocked {
        if !all.contains(tag) {
            all.push(tag.clone());
        }
    }
    policy
        .order(&all)
        .into_iter()
        .take_while(|tag| !blocked.iter().any(|b| b == tag))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_guard_keeps_only_strictly_newer_tags() {
        let policy = Policy::parse("all").expect("valid policy");
        let tags: Vec<String> = ["3.4.5", "4.5.6", "4.5.7", "4.0.0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            newer_than_all(&policy, &tags, &["4.5.6".to_string()]),
            vec!["4.5.7".to_string()]
        );
    }
}
