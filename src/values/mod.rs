//! Values as Helm computes them: YAML reading, `--set` parsing, coalescing, and value paths.

pub mod coalesce;
pub mod documents;
pub mod path;
pub mod strvals;

pub use coalesce::{
    ChartTree, NullOverNull, coalesce_single_chart, coalesce_tables, coalesce_values, merge_tables,
    merge_values, table_at,
};
pub use documents::{DocumentsError, load_values_documents};
pub use path::{PathSegment, ValuePath};
pub use strvals::{SetKind, ValueOptions};

/// Values as Helm holds them: a JSON-like tree whose maps have sorted keys.
pub type Values = serde_json::Map<String, serde_json::Value>;

/// What can go wrong reading, parsing or combining values. Every variant names its input.
#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error(transparent)]
    Yaml(#[from] gocompat::yaml::YamlError),
    #[error("failed parsing {flag} data {input:?}: {message}")]
    Set {
        flag: &'static str,
        input: String,
        message: String,
    },
    /// A `-f` file helm 4's multi-document reader refuses, in helm 4's words.
    #[error("failed to parse {path}: {reason}")]
    Documents {
        path: String,
        reason: DocumentsError,
    },
    #[error("cannot read values file {path}: {message}")]
    ReadFile { path: String, message: String },
    #[error("type mismatch on {name}: {found}")]
    TypeMismatch { name: String, found: String },
    #[error("invalid value path {path:?}: {message}")]
    BadPath { path: String, message: String },
    #[error("value path {path:?}: {message}")]
    PathConflict { path: String, message: String },
}
