//! Reads the `keel:` block (Keel's schema plus keelson's extensions) and the current image
//! references it points at from a release's values.

pub mod rendered;
pub mod schedule;
pub mod suggest;

use std::fmt;

use serde_json::{Map, Value};

use crate::storage::{Release, Writer};
use crate::values::{self, Values};

pub use schedule::{Schedule, ScheduleError};

/// Keel's default poll schedule when the block sets none.
pub const DEFAULT_POLL_SCHEDULE: &str = "@every 1m";

/// How updates are triggered (Keel's `trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Webhooks and events only (Keel's `default`).
    Default,
    /// Poll the registry on `pollSchedule`.
    Poll,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Trigger::Default => "default",
            Trigger::Poll => "poll",
        })
    }
}

pub use crate::values::{PathSegment, ValuePath};

/// Where an image's current tag was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagSource {
    /// The value at the tag path.
    TagValue,
    /// A `repo:tag` repository value (Keel's one-value form), or none at all.
    RepositoryValue,
    /// The tag value is empty or missing (the chart falls back to `.Chart.AppVersion` or
    /// templates the tag): the tag the deployed manifest runs.
    DeployedManifest,
}

impl TagSource {
    pub fn label(self) -> &'static str {
        match self {
            TagSource::TagValue => "tag value",
            TagSource::RepositoryValue => "repository value",
            TagSource::DeployedManifest => "deployed manifest",
        }
    }
}

/// One value read for an image, for `keelson check`'s explanation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValueRead {
    /// The `images[]` key it was read for (`registry`, `repository`, `tag`, `digest`).
    pub key: &'static str,
    pub path: String,
    /// `None` when the path is not set (or null) in the release's values.
    pub value: Option<String>,
}

/// One `images[]` entry: where the image lives in the values, and what it holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedImage {
    /// Registry value paths tried in order (`global.imageRegistry`, then `image.registry`): the
    /// first non-empty one is the registry the image is pulled from.
    pub registry_paths: Vec<ValuePath>,
    pub repository_path: ValuePath,
    pub tag_path: Option<ValuePath>,
    pub digest_path: Option<ValuePath>,
    /// The pull secret named by the `imagePullSecret` value path, when set.
    pub image_pull_secret: Option<String>,
    pub release_notes: Option<String>,
    /// Per-image override of the release's policy.
    pub policy: Option<String>,
    /// The full repository (`registry/repository`, without a tag) as the chart renders it and
    /// the registry is asked for it.
    pub repository: String,
    /// The current tag: from the tag path, else from a `repo:tag` repository value, else (an
    /// empty or missing tag value) from the deployed manifest.
    pub tag: Option<String>,
    /// The digest value, when set and not empty (a pinned digest).
    pub digest: Option<String>,
    pub tag_source: TagSource,
    /// The values read, in order.
    pub reads: Vec<ValueRead>,
    /// Why the current reference could not be resolved; the image is held with this reason.
    pub unresolved: Option<String>,
}

impl TrackedImage {
    /// The policy in force for this image.
    pub fn effective_policy<'a>(&'a self, block: &'a KeelBlock) -> &'a str {
        self.policy.as_deref().unwrap_or(&block.policy)
    }
}

/// A parsed `keel:` block with the current values of its images.
#[derive(Debug, Clone, PartialEq)]
pub struct KeelBlock {
    pub policy: String,
    pub trigger: Trigger,
    pub poll_schedule: Option<String>,
    /// `poll_schedule` (or Keel's default) parsed; a block with a bad schedule is refused.
    pub schedule: Schedule,
    pub match_tag: bool,
    pub match_pre_release: bool,
    pub approvals: u64,
    /// Hours an approval request stays open.
    pub approval_deadline: Option<u64>,
    pub notification_channels: Vec<String>,
    pub images: Vec<TrackedImage>,
    /// Things accepted but worth telling the owner (string booleans, unknown keys).
    pub warnings: Vec<String>,
}

impl KeelBlock {
    pub fn poll_schedule(&self) -> &str {
        self.poll_schedule
            .as_deref()
            .unwrap_or(DEFAULT_POLL_SCHEDULE)
    }
}

/// A malformed `keel:` block: which release, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("release {release:?} in namespace {namespace:?}: {field}: {problem}")]
pub struct KeelError {
    pub release: String,
    pub namespace: String,
    /// E.g. `keel.images[1].tag`.
    pub field: String,
    pub problem: String,
}

/// A field-level problem before the release is known.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Reads the block from a release: its chart's values coalesced with its user config.
/// `Ok(None)` means the release has no `keel:` block.
pub fn read_release(release: &Release) -> Result<Option<KeelBlock>, KeelError> {
    let values = release_values(release);
    let mut block = read_values(&values).map_err(|e| KeelError {
        release: release.name().to_string(),
        namespace: release.namespace().to_string(),
        field: e.field,
        problem: e.problem,
    })?;
    if let Some(block) = &mut block {
        rendered::resolve(block, release);
    }
    if let Some(block) = &block {
        for warning in &block.warnings {
            tracing::warn!(
                release = release.name(),
                namespace = release.namespace(),
                "keel block: {warning}"
            );
        }
    }
    Ok(block)
}

/// The values a release was rendered with: Helm's `CoalesceValues` of its chart's defaults and
/// its user config (records keep no subcharts, so this is `.Values` of the release's own chart),
/// coalesced as the Helm that wrote the record does.
pub fn release_values(release: &Release) -> Value {
    let no_values = Values::new();
    let chart = release.chart.as_ref();
    let chart_name = chart
        .and_then(|c| c.metadata_str("name"))
        .unwrap_or_default();
    let defaults = match chart.and_then(|c| c.values.as_ref()) {
        Some(Value::Object(map)) => map,
        _ => &no_values,
    };
    let user = release.config.as_ref().unwrap_or(&no_values);
    let null_over_null = match release.writer() {
        Writer::Helm3 => values::NullOverNull::Delete,
        Writer::Helm4 => values::NullOverNull::Keep,
    };
    // Helm prints coalescing warnings ("skipped value for x: Not a table.") when it renders a
    // chart, not when it reads a release's values. keelson reads them for every release on
    // every `list` and poll, so here they stay quiet; rendering still warns as helm does.
    let quiet = tracing::subscriber::NoSubscriber::default();
    let coalesced = tracing::subscriber::with_default(quiet, || {
        values::coalesce_single_chart(chart_name, defaults, user, null_over_null)
    });
    Value::Object(coalesced)
}

const KNOWN_KEYS: [&str; 9] = [
    "policy",
    "trigger",
    "pollSchedule",
    "matchTag",
    "matchPreRelease",
    "approvals",
    "approvalDeadline",
    "notificationChannels",
    "images",
];
const KNOWN_IMAGE_KEYS: [&str; 7] = [
    "registry",
    "repository",
    "tag",
    "digest",
    "imagePullSecret",
    "releaseNotes",
    "policy",
];

/// Reads the block from already coalesced values.
pub fn read_values(values: &Value) -> Result<Option<KeelBlock>, FieldError> {
    let Some(block) = values.get("keel") else {
        return Ok(None);
    };
    let block = match block {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        other => {
            return Err(FieldError::new(
                "keel",
                format!("expected a map, found {}", kind_of(other)),
            ));
        }
    };
    let mut warnings = Vec::new();
    for key in block.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            warnings.push(format!("keel.{key}: unknown key, ignored"));
        }
    }
    let policy = match optional_string(block, "policy", "keel.policy")? {
        Some(p) => {
            validate_policy(&p).map_err(|problem| FieldError::new("keel.policy", problem))?
        }
        None => {
            return Err(FieldError::new(
                "keel.policy",
                "missing: no update policy set",
            ));
        }
    };
    let trigger = match optional_string(block, "trigger", "keel.trigger")?.as_deref() {
        None | Some("") | Some("default") => Trigger::Default,
        Some("poll") => Trigger::Poll,
        Some(other) => {
            return Err(FieldError::new(
                "keel.trigger",
                format!("{other:?} is not a trigger (poll or default)"),
            ));
        }
    };
    let poll_schedule =
        optional_string(block, "pollSchedule", "keel.pollSchedule")?.filter(|s| !s.is_empty());
    let schedule = Schedule::parse(poll_schedule.as_deref().unwrap_or(DEFAULT_POLL_SCHEDULE))
        .map_err(|err| FieldError::new("keel.pollSchedule", err.to_string()))?;
    let match_tag = boolean(block, "matchTag", "keel.matchTag", &mut warnings)?;
    let match_pre_release = boolean(
        block,
        "matchPreRelease",
        "keel.matchPreRelease",
        &mut warnings,
    )?;
    let approvals = count(block, "approvals", "keel.approvals", &mut warnings)?.unwrap_or(0);
    let approval_deadline = count(
        block,
        "approvalDeadline",
        "keel.approvalDeadline",
        &mut warnings,
    )?;
    let notification_channels = match block.get("notificationChannels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(FieldError::new(
                    format!("keel.notificationChannels[{i}]"),
                    format!("expected a string, found {}", kind_of(other)),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(FieldError::new(
                "keel.notificationChannels",
                format!("expected a list, found {}", kind_of(other)),
            ));
        }
    };
    let image_entries: &[Value] = match block.get("images") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items.as_slice(),
        Some(other) => {
            return Err(FieldError::new(
                "keel.images",
                format!("expected a list, found {}", kind_of(other)),
            ));
        }
    };
    let images = image_entries
        .iter()
        .enumerate()
        .map(|(i, item)| read_image(values, i, item, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    if images.is_empty() {
        return Err(FieldError::new("keel.images", "no images to track"));
    }
    Ok(Some(KeelBlock {
        policy,
        trigger,
        poll_schedule,
        schedule,
        match_tag,
        match_pre_release,
        approvals,
        approval_deadline,
        notification_channels,
        images,
        warnings,
    }))
}

fn read_image(
    values: &Value,
    index: usize,
    item: &Value,
    warnings: &mut Vec<String>,
) -> Result<TrackedImage, FieldError> {
    let field = format!("keel.images[{index}]");
    let Value::Object(entry) = item else {
        return Err(FieldError::new(
            field,
            format!("expected a map, found {}", kind_of(item)),
        ));
    };
    for key in entry.keys() {
        if !KNOWN_IMAGE_KEYS.contains(&key.as_str()) {
            warnings.push(format!("{field}.{key}: unknown key, ignored"));
        }
    }
    let path = |key: &str| -> Result<Option<ValuePath>, FieldError> {
        let name = format!("{field}.{key}");
        match optional_string(entry, key, &name)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse_path(&s, &name).map(Some),
        }
    };
    let registry_paths = registry_paths(entry.get("registry"), &format!("{field}.registry"))?;
    let repository_path = path("repository")?.ok_or_else(|| {
        FieldError::new(
            format!("{field}.repository"),
            "missing: no repository value path",
        )
    })?;
    let tag_path = path("tag")?;
    let digest_path = path("digest")?;
    let pull_secret_path = path("imagePullSecret")?;
    let release_notes = optional_string(entry, "releaseNotes", &format!("{field}.releaseNotes"))?
        .filter(|s| !s.is_empty());
    let policy = match optional_string(entry, "policy", &format!("{field}.policy"))? {
        Some(p) if !p.is_empty() => Some(
            validate_policy(&p)
                .map_err(|problem| FieldError::new(format!("{field}.policy"), problem))?,
        ),
        _ => None,
    };

    let mut reads = Vec::new();
    let mut registry = None;
    for registry_path in &registry_paths {
        let value = image_string(values, registry_path, &format!("{field}.registry"))?;
        reads.push(ValueRead {
            key: "registry",
            path: registry_path.to_string(),
            value: value.clone(),
        });
        // The first non-empty value wins, as `global.imageRegistry | default image.registry`.
        if registry.is_none() {
            registry = value
                .map(|v| v.trim_end_matches('/').to_string())
                .filter(|v| !v.is_empty());
        }
    }
    let repository_value = image_string(values, &repository_path, &format!("{field}.repository"))?;
    reads.push(ValueRead {
        key: "repository",
        path: repository_path.to_string(),
        value: repository_value.clone(),
    });
    let repository_value = repository_value.ok_or_else(|| {
        FieldError::new(
            format!("{field}.repository"),
            format!("value path {repository_path} is not set in the release's values"),
        )
    })?;
    if repository_value.is_empty() {
        return Err(FieldError::new(
            format!("{field}.repository"),
            format!("value at {repository_path} is empty"),
        ));
    }
    let full_repository = match &registry {
        Some(registry) => format!("{registry}/{repository_value}"),
        None => repository_value,
    };
    let (repository, tag, tag_source) = match &tag_path {
        Some(tag_path) => {
            let tag = image_string(values, tag_path, &format!("{field}.tag"))?;
            reads.push(ValueRead {
                key: "tag",
                path: tag_path.to_string(),
                value: tag.clone(),
            });
            // A templated tag (`{{ .Chart.AppVersion }}` through `tpl`) is what it renders to.
            match tag.filter(|t| !t.is_empty() && !t.contains("{{")) {
                Some(tag) => (full_repository, Some(tag), TagSource::TagValue),
                // Resolved from the deployed manifest by `resolve_rendered`.
                None => (full_repository, None, TagSource::DeployedManifest),
            }
        }
        None => {
            let (repository, tag) = split_reference(&full_repository);
            (repository, tag, TagSource::RepositoryValue)
        }
    };
    let digest = match &digest_path {
        Some(p) => {
            let digest = image_string(values, p, &format!("{field}.digest"))?;
            reads.push(ValueRead {
                key: "digest",
                path: p.to_string(),
                value: digest.clone(),
            });
            digest.filter(|d| !d.is_empty())
        }
        None => None,
    };
    let image_pull_secret = match &pull_secret_path {
        Some(p) => {
            image_string(values, p, &format!("{field}.imagePullSecret"))?.filter(|s| !s.is_empty())
        }
        None => None,
    };
    let unresolved = match tag_source {
        TagSource::DeployedManifest => Some(format!(
            "the tag value at {} is empty and no deployed manifest was read",
            tag_path
                .as_ref()
                .map(ValuePath::to_string)
                .unwrap_or_default()
        )),
        _ => None,
    };
    Ok(TrackedImage {
        registry_paths,
        repository_path,
        tag_path,
        digest_path,
        image_pull_secret,
        release_notes,
        policy,
        repository,
        tag,
        digest,
        tag_source,
        reads,
        unresolved,
    })
}

fn parse_path(text: &str, field: &str) -> Result<ValuePath, FieldError> {
    text.parse::<ValuePath>()
        .map_err(|problem| FieldError::new(field, problem.to_string()))
}

/// `registry:` is one value path or a list of them, tried in order.
fn registry_paths(entry: Option<&Value>, field: &str) -> Result<Vec<ValuePath>, FieldError> {
    match entry {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![parse_path(s.trim(), field)?]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if !s.trim().is_empty() => {
                    parse_path(s.trim(), &format!("{field}[{i}]"))
                }
                other => Err(FieldError::new(
                    format!("{field}[{i}]"),
                    format!("expected a value path, found {}", describe_value(other)),
                )),
            })
            .collect(),
        Some(other) => Err(FieldError::new(
            field,
            format!(
                "expected a value path or a list of them, found {}",
                kind_of(other)
            ),
        )),
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::String(s) if s.trim().is_empty() => "an empty string".to_string(),
        other => kind_of(other).to_string(),
    }
}

/// Splits `registry:5000/repo:tag` (or `repo@digest`) into repository and tag, minding that a
/// colon before the last `/` belongs to the registry host.
pub fn split_reference(reference: &str) -> (String, Option<String>) {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match without_digest[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (
                without_digest[..at].to_string(),
                Some(without_digest[at + 1..].to_string()),
            )
        }
        None => (without_digest.to_string(), None),
    }
}

/// A string the values hold at `path`; integers are accepted (YAML `tag: 3`), floats are not,
/// because Helm already turned `1.10` into `1.1`.
fn image_string(
    values: &Value,
    path: &ValuePath,
    field: &str,
) -> Result<Option<String>, FieldError> {
    match path.get(values) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(FieldError::new(
            field,
            format!(
                "value at {path} is {} ({other}), not a string; quote it in the values",
                kind_of(other)
            ),
        )),
    }
}

fn optional_string(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a string, found {}", kind_of(other)),
        )),
    }
}

fn boolean(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
    warnings: &mut Vec<String>,
) -> Result<bool, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => {
            let parsed = match s.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(FieldError::new(
                        field,
                        format!("{s:?} is not a boolean (true or false)"),
                    ));
                }
            };
            warnings.push(format!(
                "{field}: the string {s:?} was read as the boolean {parsed}; write it unquoted"
            ));
            Ok(parsed)
        }
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a boolean, found {}", kind_of(other)),
        )),
    }
}

fn count(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<u64>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => Ok(Some(v)),
            // Helm stores YAML integers as float64; a whole float is still a count.
            None => match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(Some(f as u64)),
                _ => Err(FieldError::new(
                    field,
                    format!("{n} is not a whole non-negative number"),
                )),
            },
        },
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(v) => {
                warnings.push(format!(
                    "{field}: the string {s:?} was read as the number {v}; write it unquoted"
                ));
                Ok(Some(v))
            }
            Err(_) => Err(FieldError::new(
                field,
                format!("{s:?} is not a whole non-negative number"),
            )),
        },
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a number, found {}", kind_of(other)),
        )),
    }
}

/// Keel's policies: all, major, minor, patch, force, never, glob:<pattern>, regexp:<pattern>.
pub(crate) fn validate_policy(policy: &str) -> Result<String, String> {
    let lower = policy.to_ascii_lowercase();
    let known = matches!(
        lower.as_str(),
        "all" | "major" | "minor" | "patch" | "force" | "never"
    );
    let patterned = ["glob:", "regexp:"]
        .iter()
        .any(|prefix| lower.starts_with(prefix) && policy.len() > prefix.len());
    if known {
        Ok(lower)
    } else if patterned {
        Ok(policy.to_string())
    } else {
        Err(format!(
            "{policy:?} is not a policy (all, major, minor, patch, force, never, glob:…, regexp:…)"
        ))
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(values: Value) -> Result<Option<KeelBlock>, FieldError> {
        read_values(&values)
    }

    /// Counts the events a closure emits, through a scoped subscriber.
    fn events_during(f: impl FnOnce()) -> usize {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counter(Arc<AtomicUsize>);
        impl tracing::Subscriber for Counter {
            fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, _: &tracing::Event<'_>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        let count = Arc::new(AtomicUsize::new(0));
        tracing::subscriber::with_default(Counter(count.clone()), f);
        count.load(Ordering::SeqCst)
    }

    #[test]
    fn reading_release_values_is_quiet_where_rendering_warns() {
        // The user puts a table where the chart has a scalar: Helm warns when it renders.
        let defaults = json!({"image": "nginx:1.0.0"});
        let user = json!({"image": {"tag": "2.0.0"}});
        let release = Release {
            name: Some("web".into()),
            chart: Some(crate::storage::Chart {
                metadata: serde_json::from_value(json!({"name": "web", "version": "1.0.0"})).ok(),
                values: Some(defaults.clone()),
                ..Default::default()
            }),
            config: user.as_object().cloned(),
            ..Default::default()
        };
        let (Value::Object(defaults), Value::Object(user)) = (defaults, user) else {
            unreachable!("literal objects")
        };
        let warned = events_during(|| {
            values::coalesce_single_chart("web", &defaults, &user, values::NullOverNull::Delete);
        });
        assert!(warned > 0, "coalescing itself warns, as Helm's does");
        let mut read = Value::Null;
        assert_eq!(events_during(|| read = release_values(&release)), 0);
        assert_eq!(read["image"]["tag"], "2.0.0");
    }

    #[test]
    fn reads_the_demo_block() {
        let block = read(json!({
            "image": {"repository": "127.0.0.1:5000/demo/app", "tag": "1.0.0"},
            "keel": {"policy": "minor", "trigger": "poll", "pollSchedule": "@every 1m",
                     "images": [{"repository": "image.repository", "tag": "image.tag"}]}
        }))
        .unwrap()
        .unwrap();
        assert_eq!(block.policy, "minor");
        assert_eq!(block.trigger, Trigger::Poll);
        assert_eq!(block.poll_schedule(), "@every 1m");
        let image = &block.images[0];
        assert_eq!(image.repository, "127.0.0.1:5000/demo/app");
        assert_eq!(image.tag.as_deref(), Some("1.0.0"));
        assert_eq!(image.effective_policy(&block), "minor");
        assert!(block.warnings.is_empty());
    }

    #[test]
    fn no_block_is_none() {
        assert_eq!(read(json!({"image": {}})).unwrap(), None);
        assert_eq!(read(json!({"keel": null})).unwrap(), None);
    }

    #[test]
    fn list_indexes_repo_tag_values_and_overrides() {
        let block = read(json!({
            "sidecars": [{"image": "127.0.0.1:5000/side/car:2.0.1"}],
            "app": {"image": "nginx", "digest": "sha256:abc", "secret": "regcred"},
            "keel": {"policy": "all", "matchTag": "true", "approvals": "2",
                     "images": [
                        {"repository": "sidecars[0].image", "policy": "patch"},
                        {"repository": "app.image", "digest": "app.digest", "imagePullSecret": "app.secret"}
                     ]}
        }))
        .unwrap()
        .unwrap();
        assert!(block.match_tag);
        assert_eq!(block.approvals, 2);
        assert_eq!(block.warnings.len(), 2, "{:?}", block.warnings);
        let side = &block.images[0];
        assert_eq!(side.repository, "127.0.0.1:5000/side/car");
        assert_eq!(side.tag.as_deref(), Some("2.0.1"));
        assert_eq!(side.effective_policy(&block), "patch");
        let app = &block.images[1];
        assert_eq!(app.repository, "nginx");
        assert_eq!(app.tag, None);
        assert_eq!(app.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(app.image_pull_secret.as_deref(), Some("regcred"));
    }

    #[test]
    fn malformed_blocks_name_the_field() {
        let cases = [
            (json!({"keel": "yes"}), "keel"),
            (
                json!({"keel": {"images": [{"repository": "a"}]}}),
                "keel.policy",
            ),
            (
                json!({"keel": {"policy": "sometimes", "images": []}}),
                "keel.policy",
            ),
            (
                json!({"keel": {"policy": "all", "trigger": "push"}}),
                "keel.trigger",
            ),
            (
                json!({"keel": {"policy": "all", "matchTag": "yes"}}),
                "keel.matchTag",
            ),
            (
                json!({"keel": {"policy": "all", "pollSchedule": "@every soon"}}),
                "keel.pollSchedule",
            ),
            (
                json!({"keel": {"policy": "all", "pollSchedule": "61 * * * *"}}),
                "keel.pollSchedule",
            ),
            (
                json!({"keel": {"policy": "all", "approvals": -1}}),
                "keel.approvals",
            ),
            (
                json!({"keel": {"policy": "all", "images": {}}}),
                "keel.images",
            ),
            (
                json!({"keel": {"policy": "all", "images": []}}),
                "keel.images",
            ),
            (
                json!({"keel": {"policy": "all", "images": [{"tag": "x"}]}}),
                "keel.images[0].repository",
            ),
            (
                json!({"keel": {"policy": "all", "images": [{"repository": "missing.path"}]}}),
                "keel.images[0].repository",
            ),
            (
                json!({"i": {"r": "x", "t": 1.5}, "keel": {"policy": "all", "images": [{"repository": "i.r", "tag": "i.t"}]}}),
                "keel.images[0].tag",
            ),
            (
                json!({"i": {"r": "x"}, "keel": {"policy": "all", "images": [{"repository": "i.r", "registry": ["g.r", ""]}]}}),
                "keel.images[0].registry[1]",
            ),
            (
                json!({"i": {"r": "x"}, "keel": {"policy": "all", "images": [{"repository": "i.r", "registry": {"a": 1}}]}}),
                "keel.images[0].registry",
            ),
            (
                json!({"i": {"r": "x", "reg": 5.5}, "keel": {"policy": "all", "images": [{"repository": "i.r", "registry": "i.reg"}]}}),
                "keel.images[0].registry",
            ),
            (
                json!({"keel": {"policy": "all", "images": [{"repository": "a[x]"}]}}),
                "keel.images[0].repository",
            ),
            (
                json!({"keel": {"policy": "all", "notificationChannels": [1]}}),
                "keel.notificationChannels[0]",
            ),
        ];
        for (values, field) in cases {
            let err = read(values.clone()).unwrap_err();
            assert_eq!(err.field, field, "{values}: {}", err.problem);
            assert!(!err.problem.is_empty());
        }
    }

    #[test]
    fn registry_chain_and_split_repository() {
        let values = json!({
            "global": {"imageRegistry": "", "image": {"registry": null}},
            "image": {"registry": "127.0.0.1:5000/", "repository": "org/app", "tag": "1.2.3",
                      "digest": ""},
            "keel": {"policy": "minor", "images": [{
                "registry": ["global.imageRegistry", "global.image.registry", "image.registry"],
                "repository": "image.repository", "tag": "image.tag", "digest": "image.digest"}]}
        });
        let block = read(values.clone()).unwrap().unwrap();
        let image = &block.images[0];
        assert_eq!(image.repository, "127.0.0.1:5000/org/app");
        assert_eq!(image.tag.as_deref(), Some("1.2.3"));
        assert_eq!(image.tag_source, TagSource::TagValue);
        assert_eq!(image.digest, None, "an empty digest value pins nothing");
        assert_eq!(image.unresolved, None);
        let read_paths: Vec<(&str, &str, Option<&str>)> = image
            .reads
            .iter()
            .map(|r| (r.key, r.path.as_str(), r.value.as_deref()))
            .collect();
        assert_eq!(
            read_paths,
            vec![
                ("registry", "global.imageRegistry", Some("")),
                ("registry", "global.image.registry", None),
                ("registry", "image.registry", Some("127.0.0.1:5000/")),
                ("repository", "image.repository", Some("org/app")),
                ("tag", "image.tag", Some("1.2.3")),
                ("digest", "image.digest", Some("")),
            ]
        );
        // The first non-empty registry wins: the global override.
        let mut overridden = values.clone();
        overridden["global"]["imageRegistry"] = json!("mirror.local:5000");
        let block = read(overridden).unwrap().unwrap();
        assert_eq!(block.images[0].repository, "mirror.local:5000/org/app");
        // One path instead of a list.
        let mut single = values;
        single["keel"]["images"][0]["registry"] = json!("image.registry");
        let block = read(single).unwrap().unwrap();
        assert_eq!(block.images[0].registry_paths.len(), 1);
        assert_eq!(block.images[0].repository, "127.0.0.1:5000/org/app");
    }

    #[test]
    fn an_empty_or_missing_tag_is_the_rendered_one() {
        let manifest =
            "spec:\n  containers:\n  - name: a\n    image: \"127.0.0.1:5000/org/app:2.20.2\"\n";
        for tag in [json!(""), json!(null), json!("{{ .Chart.AppVersion }}")] {
            let values = json!({
                "image": {"registry": "127.0.0.1:5000", "repository": "org/app", "tag": tag},
                "keel": {"policy": "minor", "images": [{"registry": "image.registry",
                    "repository": "image.repository", "tag": "image.tag"}]}
            });
            let mut block = read(values).unwrap().unwrap();
            assert_eq!(block.images[0].tag_source, TagSource::DeployedManifest);
            assert!(block.images[0].unresolved.is_some(), "no manifest read yet");
            rendered::resolve_from(&mut block, &[manifest]);
            assert_eq!(block.images[0].tag.as_deref(), Some("2.20.2"));
            assert_eq!(block.images[0].unresolved, None);
            let mut elsewhere = block.clone();
            elsewhere.images[0].repository = "127.0.0.1:5000/org/other".into();
            elsewhere.images[0].tag = None;
            rendered::resolve_from(&mut elsewhere, &[manifest]);
            let reason = elsewhere.images[0].unresolved.clone().unwrap_or_default();
            assert!(
                reason.contains("image.tag is empty") && reason.contains("runs no image"),
                "{reason}"
            );
        }
        // The tag path not set at all reads the same way (velero's commented-out tag).
        let values = json!({
            "kubectl": {"image": {"repository": "127.0.0.1:5000/kubectl"}},
            "keel": {"policy": "all", "images": [{"repository": "kubectl.image.repository",
                "tag": "kubectl.image.tag"}]}
        });
        let block = read(values).unwrap().unwrap();
        assert_eq!(block.images[0].tag_source, TagSource::DeployedManifest);
    }

    #[test]
    fn value_paths() {
        let p: ValuePath = "a.b[2][0].c".parse().unwrap();
        assert_eq!(
            p.segments(),
            &[
                PathSegment::Key("a".into()),
                PathSegment::Key("b".into()),
                PathSegment::Index(2),
                PathSegment::Index(0),
                PathSegment::Key("c".into())
            ]
        );
        for bad in ["", "a..b", "a[", "a[1", "a[-1]", "a[1]x", ".a"] {
            assert!(bad.parse::<ValuePath>().is_err(), "{bad}");
        }
        let v = json!({"a": {"b": [0, 1, [["x"]]]}});
        assert_eq!(
            "a.b[2][0][0]".parse::<ValuePath>().unwrap().get(&v),
            Some(&json!("x"))
        );
        assert_eq!("a.b[9]".parse::<ValuePath>().unwrap().get(&v), None);
    }

    #[test]
    fn references_split_like_docker() {
        assert_eq!(
            split_reference("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b".into(), None)
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/a/b:1.2"),
            ("127.0.0.1:5000/a/b".into(), Some("1.2".into()))
        );
        assert_eq!(
            split_reference("nginx:1"),
            ("nginx".into(), Some("1".into()))
        );
        assert_eq!(split_reference("nginx@sha256:abc"), ("nginx".into(), None));
    }

    #[test]
    fn release_values_coalesce_like_helm() {
        // What `helm template` prints for `.Values` of this chart and user config.
        let release: Release = serde_json::from_value(json!({
            "name": "web", "namespace": "ns",
            "chart": {"metadata": {"name": "demo"}, "values": {
                "image": {"repository": "r", "tag": "1", "pullPolicy": "Always"},
                "keel": {"policy": "all"}, "scalar": 5}},
            "config": {"image": {"tag": "2", "pullPolicy": null}, "keel": null, "absent": null,
                       "scalar": {"a": null, "b": 1}, "newmap": {"x": null, "y": 1}}
        }))
        .unwrap();
        assert_eq!(
            release_values(&release),
            json!({"absent": null, "image": {"repository": "r", "tag": "2"},
                   "newmap": {"x": null, "y": 1}, "scalar": {"a": null, "b": 1}})
        );
        let bare: Release = serde_json::from_value(json!({"name": "web"})).unwrap();
        assert_eq!(release_values(&bare), json!({}));
    }

    #[test]
    fn reads_from_a_release() {
        let release: Release = serde_json::from_value(json!({
            "name": "web", "namespace": "ns",
            "chart": {"metadata": {"name": "demo"}, "values": {"image": {"repository": "r", "tag": "1"},
                      "keel": {"policy": "bogus", "images": [{"repository": "image.repository", "tag": "image.tag"}]}}},
            "config": {"image": {"tag": "2"}}
        }))
        .unwrap();
        let err = read_release(&release).unwrap_err();
        assert!(err.to_string().contains("release \"web\""), "{err}");
        assert_eq!(err.field, "keel.policy");

        let mut fixed = release.clone();
        fixed.config = Some(
            serde_json::from_value(json!({"image": {"tag": "2"}, "keel": {"policy": "patch"}}))
                .unwrap(),
        );
        let block = read_release(&fixed).unwrap().unwrap();
        assert_eq!(block.policy, "patch");
        assert_eq!(block.images[0].tag.as_deref(), Some("2"));
    }
}
