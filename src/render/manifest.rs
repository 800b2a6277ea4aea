//! Helm's releaseutil: splitting rendered files into documents, separating hooks by annotation,
//! and sorting both by kind in install order.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use gocompat::yaml;

/// Helm 3's `releaseutil.InstallOrder`.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// Helm 4 appends the webhook configurations to the install order.
const HELM4_EXTRA_ORDER: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Which Helm's kind order to follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KindOrder {
    #[default]
    Helm3,
    Helm4,
}

impl KindOrder {
    fn rank(self, kind: &str) -> Option<usize> {
        INSTALL_ORDER
            .iter()
            .position(|k| *k == kind)
            .or_else(|| match self {
                KindOrder::Helm3 => None,
                KindOrder::Helm4 => HELM4_EXTRA_ORDER
                    .iter()
                    .position(|k| *k == kind)
                    .map(|p| p + INSTALL_ORDER.len()),
            })
    }
}

/// One non-hook document: the template it came from, its text and its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub content: String,
    pub kind: String,
}

/// `release.HookLastRun` as a release record stores it (empty for a new hook).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookLastRun {
    pub started_at: String,
    pub completed_at: String,
    pub phase: String,
}

/// `release.Hook` with the JSON names Helm's release records use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub name: String,
    pub kind: String,
    pub path: String,
    pub manifest: String,
    pub events: Vec<String>,
    pub last_run: HookLastRun,
    pub weight: i64,
    pub delete_policies: Vec<String>,
}

/// A document that is not valid YAML or whose header fields have the wrong types.
#[derive(Debug, thiserror::Error)]
#[error("YAML parse error on {path}: {message}")]
pub struct ManifestError {
    pub path: String,
    pub message: String,
}

const HOOK_ANNOTATION: &str = "helm.sh/hook";
const HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
const HOOK_DELETE_ANNOTATION: &str = "helm.sh/hook-delete-policy";

fn hook_event(name: &str) -> Option<&'static str> {
    Some(match name {
        "pre-install" => "pre-install",
        "post-install" => "post-install",
        "pre-delete" => "pre-delete",
        "post-delete" => "post-delete",
        "pre-upgrade" => "pre-upgrade",
        "post-upgrade" => "post-upgrade",
        "pre-rollback" => "pre-rollback",
        "post-rollback" => "post-rollback",
        "test" | "test-success" => "test",
        _ => return None,
    })
}

/// Go's `\s` in regexp (ASCII only).
fn is_go_regex_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// `releaseutil.SplitManifests`: splits on Helm's separator regex `(?:^|\s*\n)---\s*`, trims
/// each document and drops empty ones; order is kept.
pub fn split_manifests(big: &str) -> Vec<String> {
    let text = big.trim();
    let bytes = text.as_bytes();
    // Non-overlapping leftmost matches of the separator, as Go's FindAllStringIndex finds them.
    let mut matches: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let found = if pos == 0 && bytes.starts_with(b"---") {
            Some((0, 3))
        } else {
            // `\s*\n---`: the leftmost match starts where the whitespace run ending in the
            // first `\n---` from `pos` starts (a run never starts before `pos`).
            text[pos..].find("\n---").map(|at| {
                let newline = pos + at;
                let mut start = newline;
                while start > pos && is_go_regex_space(bytes[start - 1]) {
                    start -= 1;
                }
                (start, newline + 4)
            })
        };
        let Some((start, mut end)) = found else {
            break;
        };
        while end < bytes.len() && is_go_regex_space(bytes[end]) {
            end += 1;
        }
        matches.push((start, end));
        pos = end;
    }
    let mut pieces = Vec::new();
    let mut begin = 0;
    let mut last_start = 0;
    for (start, end) in &matches {
        last_start = *start;
        if *end != 0 {
            pieces.push(&text[begin..*start]);
        }
        begin = *end;
    }
    if matches.is_empty() || last_start != text.len() {
        pieces.push(&text[begin..]);
    }
    pieces
        .into_iter()
        .filter(|d| !d.is_empty())
        .map(|d| d.trim().to_string())
        .collect()
}

/// The header fields Helm reads from every document (`releaseutil.SimpleHead`).
pub struct Head {
    kind: String,
    name: String,
    annotations: Option<BTreeMap<String, String>>,
}

fn read_head(doc: &str, path: &str) -> Result<Head, ManifestError> {
    let err = |message: String| ManifestError {
        path: path.to_string(),
        message,
    };
    let parsed = yaml::parse_manifest_head(doc, path).map_err(|e| match e {
        // go-yaml's wording: the file is already named by the outer message.
        gocompat::yaml::YamlError::Syntax { line, message, .. } => {
            err(gocompat::yaml::go_yaml_error(&message, line, doc))
        }
        other => err(format!("error converting YAML to JSON: {other}")),
    })?;
    let field_string = |value: Option<&Json>, field: &str| -> Result<String, ManifestError> {
        match value {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(other) => Err(err(format!(
                "error unmarshaling JSON: json: cannot unmarshal {} into Go struct field {field} of type string",
                yaml::json_type_name(other)
            ))),
        }
    };
    let (kind, metadata) = match &parsed {
        Json::Object(map) => (
            field_string(map.get("kind"), "SimpleHead.kind")?,
            map.get("metadata"),
        ),
        Json::Null => (String::new(), None),
        other => {
            return Err(err(format!(
                "error unmarshaling JSON: json: cannot unmarshal {} into Go value of type releaseutil.SimpleHead",
                yaml::json_type_name(other)
            )));
        }
    };
    let mut head = Head {
        kind,
        name: String::new(),
        annotations: None,
    };
    if let Some(Json::Object(meta)) = metadata {
        head.name = field_string(meta.get("name"), "SimpleHead.metadata.name")?;
        if let Some(Json::Object(annotations)) = meta.get("annotations") {
            let mut out = BTreeMap::new();
            for (key, value) in annotations {
                out.insert(
                    key.clone(),
                    field_string(Some(value), "SimpleHead.metadata.annotations")?,
                );
            }
            head.annotations = Some(out);
        }
    }
    Ok(head)
}

/// Hooks and manifests of a rendered chart, sorted as Helm sorts them.
#[derive(Clone, Debug, Default)]
pub struct Sorted {
    pub hooks: Vec<Hook>,
    pub manifests: Vec<Manifest>,
}

/// `releaseutil.SortManifests`: files in name order, partials and blank files skipped, each
/// document a hook (by `helm.sh/hook`) or a manifest; both lists stably sorted by kind.
pub fn sort_manifests(
    files: &BTreeMap<String, String>,
    order: KindOrder,
) -> Result<Sorted, ManifestError> {
    sort_read_manifests(files, &mut HashMap::new(), order)
}

/// One rendered file's documents with their headers read (or why one could not be), ahead of
/// [`sort_read_manifests`]: reading is the costly part, and files can be read as soon as they
/// are rendered, while later templates still execute.
pub struct ReadFile {
    documents: Vec<(String, Result<Head, ManifestError>)>,
}

/// Reads the documents of the rendered file `path` as [`sort_manifests`] does; `None` for
/// files it skips (partials, blank output).
pub fn read_file(path: &str, content: &str) -> Option<ReadFile> {
    if crate::render::engine::is_partial(path) || content.trim().is_empty() {
        return None;
    }
    Some(ReadFile {
        documents: split_manifests(content)
            .into_iter()
            .map(|doc| {
                let head = read_head(&doc, path);
                (doc, head)
            })
            .collect(),
    })
}

/// [`sort_manifests`] with files already read by [`read_file`] taken from `read` (files not
/// in it are read here). The first failing document in file order is the error, as in Helm.
pub fn sort_read_manifests(
    files: &BTreeMap<String, String>,
    read: &mut HashMap<String, ReadFile>,
    order: KindOrder,
) -> Result<Sorted, ManifestError> {
    let mut sorted = Sorted::default();
    for (path, content) in files {
        let Some(file) = read.remove(path).or_else(|| read_file(path, content)) else {
            continue;
        };
        for (doc, head) in file.documents {
            let head = head?;
            let hook_types = head
                .annotations
                .as_ref()
                .filter(|a| !a.is_empty())
                .and_then(|a| a.get(HOOK_ANNOTATION).cloned());
            let Some(hook_types) = hook_types else {
                sorted.manifests.push(Manifest {
                    name: path.clone(),
                    content: doc,
                    kind: head.kind,
                });
                continue;
            };
            let annotations = head.annotations.clone().unwrap_or_default();
            let weight = annotations
                .get(HOOK_WEIGHT_ANNOTATION)
                .and_then(|w| go_atoi(w))
                .unwrap_or(0);
            let mut events = Vec::new();
            let mut unknown = false;
            for hook_type in hook_types.split(',') {
                match hook_event(&hook_type.trim().to_lowercase()) {
                    Some(event) => events.push(event.to_string()),
                    None => {
                        unknown = true;
                        break;
                    }
                }
            }
            if unknown {
                tracing::info!("skipping unknown hook: {hook_types:?}");
                continue;
            }
            let delete_policies = annotations
                .get(HOOK_DELETE_ANNOTATION)
                .map(|v| v.split(',').map(|p| p.trim().to_lowercase()).collect())
                .unwrap_or_default();
            sorted.hooks.push(Hook {
                name: head.name,
                kind: head.kind,
                path: path.clone(),
                manifest: doc,
                events,
                last_run: HookLastRun::default(),
                weight,
                delete_policies,
            });
        }
    }
    sort_by_kind(&mut sorted.manifests, |m| &m.kind, order);
    sort_by_kind(&mut sorted.hooks, |h| &h.kind, order);
    Ok(sorted)
}

/// `strconv.Atoi`: optional sign and decimal digits only.
fn go_atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Helm's `lessByKind` as a stable sort: known kinds by rank, unknown kinds after them sorted
/// alphabetically, equal kinds in their original order.
fn sort_by_kind<T>(items: &mut [T], kind: impl Fn(&T) -> &String, order: KindOrder) {
    items.sort_by(|a, b| {
        let (ka, kb) = (kind(a), kind(b));
        match (order.rank(ka), order.rank(kb)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => ka.cmp(kb),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_helms_regex() {
        assert_eq!(split_manifests("a: 1\n---\nb: 2\n"), vec!["a: 1", "b: 2"]);
        assert_eq!(
            split_manifests("---\na: 1\n---   \n\nb: 2"),
            vec!["a: 1", "b: 2"]
        );
        // After one separator swallowed the newline, a second `---` is content (Go's regex).
        assert_eq!(
            split_manifests("a: 1\n---\n---\nb: 2"),
            vec!["a: 1", "---\nb: 2"]
        );
        assert_eq!(split_manifests("a: x---y\n"), vec!["a: x---y"]);
        assert_eq!(split_manifests("  \n"), Vec::<String>::new());
    }

    /// The separator matches as a byte-by-byte reading of Go's regex finds them (the reader
    /// `split_manifests` had before it searched for `\n---`).
    fn separator_matches_by_bytes(text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut matches = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let mut found = None;
            let mut s = pos;
            while s < bytes.len() {
                if s == 0 && bytes[s..].starts_with(b"---") {
                    found = Some((0, 3));
                    break;
                }
                let mut e = s;
                while e < bytes.len() && is_go_regex_space(bytes[e]) {
                    e += 1;
                }
                if e > s && bytes[e - 1] == b'\n' && bytes[e..].starts_with(b"---") {
                    found = Some((s, e + 3));
                    break;
                }
                s = if e > s { e } else { s + 1 };
            }
            let Some((start, mut end)) = found else {
                break;
            };
            while end < bytes.len() && is_go_regex_space(bytes[end]) {
                end += 1;
            }
            matches.push((start, end));
            pos = end;
        }
        matches
    }

    #[test]
    fn separators_found_by_search_are_the_regex_matches() {
        let pieces = [
            "a", "---", "\n", " ", "\t", "b: 1", "\r\n", "----", "-", "\x0c",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut text = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bits = seed;
            for _ in 0..(bits % 12) {
                bits /= 12;
                text.push_str(pieces[(bits % pieces.len() as u64) as usize]);
                bits = bits.rotate_left(5) ^ seed;
            }
            let trimmed = text.trim();
            let mut expected: Vec<String> = Vec::new();
            let (mut begin, mut last_start) = (0, 0);
            let matches = separator_matches_by_bytes(trimmed);
            for (start, end) in &matches {
                last_start = *start;
                if *end != 0 {
                    expected.push(trimmed[begin..*start].to_string());
                }
                begin = *end;
            }
            if matches.is_empty() || last_start != trimmed.len() {
                expected.push(trimmed[begin..].to_string());
            }
            let expected: Vec<String> = expected
                .into_iter()
                .filter(|d| !d.is_empty())
                .map(|d| d.trim().to_string())
                .collect();
            assert_eq!(split_manifests(&text), expected, "{text:?}");
        }
    }

    #[test]
    fn hooks_are_separated_and_kinds_sorted() {
        let files = BTreeMap::from([
            (
                "c/templates/a.yaml".to_string(),
                "kind: Deployment\nmetadata:\n  name: d\n---\nkind: Service\nmetadata:\n  name: s\n---\nkind: Zeta\n---\nkind: Alpha\n".to_string(),
            ),
            (
                "c/templates/hook.yaml".to_string(),
                "kind: Job\nmetadata:\n  name: j\n  annotations:\n    helm.sh/hook: pre-install,Post-Upgrade\n    helm.sh/hook-weight: \"-5\"\n    helm.sh/hook-delete-policy: before-hook-creation\n".to_string(),
            ),
            ("c/templates/_helpers.tpl".to_string(), "kind: Nope\n".to_string()),
            ("c/templates/empty.yaml".to_string(), "\n\n".to_string()),
        ]);
        let sorted = match sort_manifests(&files, KindOrder::Helm3) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let kinds: Vec<&str> = sorted.manifests.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, vec!["Service", "Deployment", "Alpha", "Zeta"]);
        assert_eq!(sorted.hooks.len(), 1);
        assert_eq!(sorted.hooks[0].events, vec!["pre-install", "post-upgrade"]);
        assert_eq!(sorted.hooks[0].weight, -5);
        assert_eq!(
            sorted.hooks[0].delete_policies,
            vec!["before-hook-creation"]
        );
    }

    #[test]
    fn webhook_order_differs_between_helm_versions() {
        let files = BTreeMap::from([(
            "c/templates/a.yaml".to_string(),
            "kind: ValidatingWebhookConfiguration\n---\nkind: Alpha\n".to_string(),
        )]);
        let kinds = |order| {
            sort_manifests(&files, order)
                .map(|s| s.manifests.into_iter().map(|m| m.kind).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(
            kinds(KindOrder::Helm3),
            vec!["Alpha", "ValidatingWebhookConfiguration"]
        );
        assert_eq!(
            kinds(KindOrder::Helm4),
            vec!["ValidatingWebhookConfiguration", "Alpha"]
        );
    }

    #[test]
    fn bad_header_types_are_errors_naming_the_file() {
        let files = BTreeMap::from([("c/templates/bad.yaml".to_string(), "kind: 5\n".to_string())]);
        let err = sort_manifests(&files, KindOrder::Helm3).err();
        assert!(err.is_some_and(|e| e.to_string().contains("c/templates/bad.yaml")));
    }

    /// go-yaml v2 takes flow collections and quoted scalars at any indentation (issue 15); the
    /// errors are helm 3.17.3's for the same documents.
    #[test]
    fn flow_collections_read_as_go_yaml_v2_reads_them() {
        let check = |doc: &str| {
            let files = BTreeMap::from([("c/templates/t.yaml".to_string(), doc.to_string())]);
            match sort_manifests(&files, KindOrder::Helm3) {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            }
        };
        for accepted in [
            "kind: Pod\nspec:\n  command: [\n    \"/bin/sh\",\n    \"-ce\",\n    \"run.sh\" ]\n",
            "kind: Pod\nspec:\n  args: [\n    \"x\"\n  ]\n",
            "kind: Pod\nspec:\n  args: [\n\"x\"]\n",
            "kind: Pod\nspec:\n  b: {\n  c: 1\n  }\n",
            "kind: Pod\nspec:\n  b: \"x\ny\"\n",
            "kind: Pod\nspec:\n  - [\n  1]\n",
            "kind: Pod\nspec:\n  c: |\n    don't [\n  d: [ a,\n# ' [\nb ]\n",
        ] {
            assert_eq!(check(accepted), "ok", "{accepted:?}");
        }
        let yaml = |line: u32, problem: &str| {
            format!(
                "YAML parse error on c/templates/t.yaml: error converting YAML to JSON: yaml: line {line}: {problem}"
            )
        };
        for (refused, want) in [
            (
                "kind: Pod\na:\n  b: x\n  y\n",
                yaml(5, "could not find expected ':'"),
            ),
            (
                "kind: Pod\na:\n  b: x\n y\n",
                yaml(3, "did not find expected key"),
            ),
            (
                "kind: Pod\na:\n  b: [1, 2\nc: 3\n",
                yaml(3, "did not find expected ',' or ']'"),
            ),
            (
                "kind: Pod\na:\n  b: {x: 1\nc: 3\n",
                yaml(3, "did not find expected ',' or '}'"),
            ),
            (
                "kind: Pod\na:\n  b: [1]]\n",
                yaml(2, "did not find expected key"),
            ),
            (
                "kind: Pod\na:\n  - [1]]\n",
                yaml(2, "did not find expected '-' indicator"),
            ),
        ] {
            assert_eq!(check(refused), want, "{refused:?}");
        }
    }
}
