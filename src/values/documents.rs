//! Helm 4's `LoadValues` (pkg/chart loader): a values file (a chart's values.yaml or a `-f`
//! file) is a stream of `---` documents, split as k8s.io's `YAMLReader` splits them, each read
//! like a whole helm 3 values file and deep-merged over the ones before (later documents win).
//! Helm 3 reads only the first document, with go-yaml's own idea of where it ends.

use gocompat::yaml::{self, YamlError};

use super::Values;
use super::strvals::merge_maps;

/// Why helm 4's reader refuses a values file, in its words (after the file's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentsError {
    /// A line starting with `---` followed by more than spaces or a comment.
    #[error("error reading yaml document: invalid Yaml document separator: {after}")]
    Separator { after: String },
    /// A document sigs.k8s.io/yaml refuses; `go_text` is its message, whose line numbers count
    /// from the start of that document (helm parses each document on its own).
    #[error("cannot unmarshal yaml document: {go_text}")]
    Document { go_text: String },
}

/// Reads `text` as helm 4 reads a values file: every document merged, later ones winning.
/// `source` names the file in the reader's own errors (helm's wording never shows it).
pub fn load_values_documents(text: &str, source: &str) -> Result<Values, DocumentsError> {
    let (documents, bad_separator) = split_documents(text);
    let mut values = Values::new();
    // The reader is lazy in helm: documents ended before a bad separator are read (and may
    // fail) before the separator's error is seen; the one it would end is never read.
    for document in documents {
        let current =
            yaml::parse_values(&document, source).map_err(|error| DocumentsError::Document {
                go_text: go_values_error(error, &document),
            })?;
        values = merge_maps(values, current);
    }
    match bad_separator {
        Some(after) => Err(DocumentsError::Separator { after }),
        None => Ok(values),
    }
}

/// k8s.io/apimachinery's `YAMLReader`: lines (CRLF read as LF, a last line without newline
/// given one) gathered into documents, cut at lines starting with `---`; empty documents are
/// skipped. Returns the documents up to the first separator with more than spaces or a `#`
/// comment after it, and that separator's rest (trimmed) when there is one.
fn split_documents(text: &str) -> (Vec<String>, Option<String>) {
    let mut documents = Vec::new();
    let mut buffer = String::new();
    let mut lines: Vec<&str> = text.split('\n').collect();
    // The empty piece after a final newline is the end of the input, not a line.
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let last = lines.len();
    for (index, raw) in lines.into_iter().enumerate() {
        let has_newline = index + 1 < last || text.ends_with('\n');
        let line = if has_newline {
            raw.strip_suffix('\r').unwrap_or(raw)
        } else {
            raw
        };
        if let Some(rest) = line.strip_prefix("---") {
            let rest = rest.trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                return (documents, Some(rest.to_string()));
            }
            if !buffer.is_empty() {
                documents.push(std::mem::take(&mut buffer));
            }
            continue;
        }
        buffer.push_str(line);
        buffer.push('\n');
    }
    if !buffer.is_empty() {
        documents.push(buffer);
    }
    (documents, None)
}

/// sigs.k8s.io/yaml's message for a values document keelson's reader refuses.
pub fn go_values_error(error: YamlError, text: &str) -> String {
    match error {
        // Messages keelson's reader writes in Go's words already (`json: unsupported value`).
        YamlError::Syntax { message, .. } if message.starts_with("error converting YAML") => {
            message
        }
        YamlError::Syntax { line, message, .. } => yaml::go_yaml_error(&message, line, text),
        YamlError::NotAMap { found, .. } => format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {found} into Go value of type map[string]interface {{}}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<serde_json::Value, String> {
        load_values_documents(text, "values.yaml")
            .map(serde_json::Value::Object)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn later_documents_merge_over_earlier_ones() {
        let merged = load("a: 1\nm: {x: 1, z: 2}\n---\nb: 2\nm: {z: 3}\n--- # c\nc: [1]\n");
        assert_eq!(
            merged,
            Ok(serde_json::json!({"a": 1.0, "b": 2.0, "c": [1.0], "m": {"x": 1.0, "z": 3.0}}))
        );
    }

    #[test]
    fn empty_and_comment_only_documents_add_nothing() {
        assert_eq!(
            load("---\n---\na: 1\n---\n# only a comment\n---\n"),
            Ok(serde_json::json!({"a": 1.0}))
        );
        assert_eq!(load(""), Ok(serde_json::json!({})));
    }

    #[test]
    fn a_bad_later_document_fails_with_its_own_line_numbers() {
        assert_eq!(
            load("a: 1\n---\nb: [\n"),
            Err("cannot unmarshal yaml document: error converting YAML to JSON: yaml: line 1: did not find expected node content".to_string())
        );
    }

    #[test]
    fn content_after_a_separator_is_refused_after_earlier_documents() {
        assert_eq!(
            load("a: 1\n--- {b: 1}\n"),
            Err("error reading yaml document: invalid Yaml document separator: {b: 1}".to_string())
        );
        // The document the bad separator would end is never read; the ones before it are.
        assert_eq!(
            load("a: [\n---- \n"),
            Err("error reading yaml document: invalid Yaml document separator: -".to_string())
        );
        assert!(
            load("a: [\n---\nb: 1\n--- x\n")
                .is_err_and(|e| e.starts_with("cannot unmarshal yaml document: "))
        );
    }

    #[test]
    fn crlf_lines_split_like_lf_lines() {
        assert_eq!(
            load("a: 1\r\n---\r\nb: 2\r\n"),
            Ok(serde_json::json!({"a": 1.0, "b": 2.0}))
        );
    }
}
