//! What a planned revision changes, as `helm diff` shows it: per document (kind, namespace and
//! name), the lines removed and added, with a little context.

use std::fmt::Write;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Documents compared by identity are bounded by Secrets' 1 MiB; past this many lines a
/// document's changes are summarized instead of aligned line by line (the alignment is
/// quadratic).
const MAX_ALIGNED_LINES: usize = 20_000;

/// One document of a manifest: `# Source:` path, identity and text.
struct Document<'a> {
    identity: String,
    text: &'a str,
}

/// Splits a Helm manifest (`---\n# Source: PATH\n...`) into documents named like `helm diff`
/// names them: `namespace, name, Kind (apiVersion)`, with the release's namespace for
/// documents that name none.
fn documents<'a>(manifest: &'a str, default_namespace: &str) -> Vec<Document<'a>> {
    let mut out = Vec::new();
    for chunk in manifest.split("\n---") {
        let text = chunk.trim_start_matches("---").trim_matches('\n');
        if text.trim().is_empty() {
            continue;
        }
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key))
                .map(|v| v.trim().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let kind = field("kind:");
        let api_version = field("apiVersion:");
        // metadata's own name and namespace are indented by two spaces in Helm's output.
        let name = field("  name:");
        let namespace = field("  namespace:");
        let source = field("# Source:");
        let identity = if kind.is_empty() {
            source
        } else {
            format!(
                "{}, {name}, {kind} ({api_version})",
                if namespace.is_empty() {
                    default_namespace
                } else {
                    &namespace
                }
            )
        };
        out.push(Document { identity, text });
    }
    out
}

/// Longest-common-subsequence alignment of two line lists: the edit script as
/// (`' '` | `'-'` | `'+'`, line).
fn align<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (old.len(), new.len());
    let mut table = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i][j] = if old[i] == new[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut script = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            script.push((' ', old[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || table[i][j + 1] > table[i + 1][j]) {
            script.push(('+', new[j]));
            j += 1;
        } else {
            script.push(('-', old[i]));
            i += 1;
        }
    }
    script
}

/// The changed lines with `CONTEXT` lines around them; `...` between distant changes.
fn hunks(script: &[(char, &str)]) -> String {
    let changed: Vec<usize> = script
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut out = String::new();
    let mut last_shown: Option<usize> = None;
    for (i, (op, line)) in script.iter().enumerate() {
        let near = changed.iter().any(|&c| c.abs_diff(i) <= CONTEXT);
        if !near {
            continue;
        }
        if last_shown.is_some_and(|last| i > last + 1) {
            out.push_str("...\n");
        }
        let _ = writeln!(out, "{op} {line}");
        last_shown = Some(i);
    }
    out
}

/// The differences between two manifests of a release in `namespace`, document by document:
/// changed, added and removed documents, in the new manifest's order (removed ones last).
/// Empty when they are the same.
pub fn manifest_diff(old: &str, new: &str, namespace: &str) -> String {
    let old_documents = documents(old, namespace);
    let new_documents = documents(new, namespace);
    let mut out = String::new();
    for document in &new_documents {
        let previous = old_documents
            .iter()
            .find(|d| d.identity == document.identity);
        match previous {
            Some(previous) if previous.text == document.text => {}
            Some(previous) => {
                let _ = writeln!(out, "{} has changed:", document.identity);
                let old_lines: Vec<&str> = previous.text.lines().collect();
                let new_lines: Vec<&str> = document.text.lines().collect();
                if old_lines.len() + new_lines.len() > MAX_ALIGNED_LINES {
                    let _ = writeln!(
                        out,
                        "  ({} lines before, {} after: too long to align)",
                        old_lines.len(),
                        new_lines.len()
                    );
                } else {
                    out.push_str(&hunks(&align(&old_lines, &new_lines)));
                }
            }
            None => {
                let _ = writeln!(out, "{} has been added:", document.identity);
                for line in document.text.lines() {
                    let _ = writeln!(out, "+ {line}");
                }
            }
        }
    }
    for document in &old_documents {
        if !new_documents
            .iter()
            .any(|d| d.identity == document.identity)
        {
            let _ = writeln!(out, "{} has been removed:", document.identity);
            for line in document.text.lines() {
                let _ = writeln!(out, "- {line}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "---\n# Source: demo/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n    - port: 80\n---\n# Source: demo/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\n  labels:\n    app: web\n    version: 1.0.0\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: app\n          image: \"r/app:1.0.0\"\n          ports:\n            - containerPort: 80\n";

    #[test]
    fn changed_lines_with_context_per_document() {
        let new = OLD
            .replace("version: 1.0.0", "version: 1.1.0")
            .replace("r/app:1.0.0", "r/app:1.1.0");
        let diff = manifest_diff(OLD, &new, "apps");
        assert_eq!(
            diff,
            "apps, web, Deployment (apps/v1) has changed:\n\
             \x20   namespace: apps\n\
             \x20   labels:\n\
             \x20     app: web\n\
             -     version: 1.0.0\n\
             +     version: 1.1.0\n\
             \x20 spec:\n\
             \x20   replicas: 1\n\
             \x20   template:\n\
             \x20     spec:\n\
             \x20       containers:\n\
             \x20         - name: app\n\
             -           image: \"r/app:1.0.0\"\n\
             +           image: \"r/app:1.1.0\"\n\
             \x20           ports:\n\
             \x20             - containerPort: 80\n"
        );
        // Changes far apart are separated by `...`.
        let body: String = (0..20).map(|i| format!("  k{i}: v\n")).collect();
        let before =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n{body}");
        let after = before.replace("k1: v", "k1: w").replace("k18: v", "k18: w");
        let diff = manifest_diff(&before, &after, "apps");
        assert!(
            diff.contains("+   k1: w\n") && diff.contains("+   k18: w\n"),
            "{diff}"
        );
        assert!(diff.contains("...\n"), "{diff}");
        assert_eq!(manifest_diff(OLD, OLD, "apps"), "");
    }

    #[test]
    fn added_and_removed_documents() {
        let without_service = OLD
            .split("---\n# Source: demo/templates/deployment.yaml")
            .nth(1)
            .map(|rest| format!("---\n# Source: demo/templates/deployment.yaml{rest}"))
            .expect("two documents");
        let removed = manifest_diff(OLD, &without_service, "apps");
        assert!(
            removed.starts_with("apps, web, Service (v1) has been removed:\n- # Source"),
            "{removed}"
        );
        let added = manifest_diff(&without_service, OLD, "apps");
        assert!(
            added.starts_with("apps, web, Service (v1) has been added:\n+ # Source"),
            "{added}"
        );
    }
}
