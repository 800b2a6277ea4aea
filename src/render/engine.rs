//! Helm's rendering engine (pkg/engine): parses a chart tree's templates into one set in Helm's
//! order and executes every non-partial template with its own data.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::render::gotemplate::exec::{ExecOptions, LookupFn, TemplateSet, WARN_END, WARN_START};
use crate::render::gotemplate::functions::FuncRegistry;
use crate::render::gotemplate::value::Value;

/// One template file of a chart tree, with the data Helm passes when executing it.
#[derive(Clone, Debug)]
pub struct TemplateFile {
    /// The full template name Helm uses: `mychart/templates/deployment.yaml`,
    /// `mychart/charts/sub/templates/_helpers.tpl`.
    pub name: String,
    /// The template source.
    pub text: String,
    /// The data (`.`) the template executes with: `Values`, `Release`, `Chart`, `Files`,
    /// `Capabilities`, `Subcharts` and `Template` {Name, BasePath}.
    pub dot: Value,
}

/// What `lookup` asks a cluster: `lookup apiVersion kind namespace name`. Returns the object
/// (or, with an empty name, the list object) as a map; an empty map when absent.
pub trait Lookup: Send + Sync {
    fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, String>;
}

/// How to render: Helm's engine switches plus the Go version's behaviour.
#[derive(Clone, Default)]
pub struct RenderOptions {
    /// `missingkey=error` (Helm's `--strict` lint mode) instead of `missingkey=zero`.
    pub strict: bool,
    /// Lint mode: `required` does not fail on missing values.
    pub lint_mode: bool,
    /// `range` over an integer (Go 1.24+, so helm 4); helm 3.17 fails with
    /// `range can't iterate over N`.
    pub range_over_int: bool,
    /// Answers `lookup`; `None` renders offline (an empty map, as `helm template`).
    pub lookup: Option<Arc<dyn Lookup>>,
}

impl std::fmt::Debug for RenderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOptions")
            .field("strict", &self.strict)
            .field("lint_mode", &self.lint_mode)
            .field("range_over_int", &self.range_over_int)
            .field("lookup", &self.lookup.is_some())
            .finish()
    }
}

/// A template that does not parse or fails while executing. The message is Helm's own text
/// (what `helm template` prints after `Error: `), naming template, line and column.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// `parse error at (NAME:LINE): MESSAGE`
    #[error("{0}")]
    Parse(String),
    /// `template: NAME:LINE:COL: executing "NAME" at <...>: MESSAGE` or, for `required` and
    /// `fail`, `execution error at (NAME:LINE:COL): MESSAGE`.
    #[error("{0}")]
    Exec(String),
}

/// Renders a chart tree's templates as Helm's engine does: all files are parsed into one set
/// (deeper paths first, so the root chart's `define`s win), every file whose base name does not
/// start with `_` is executed with its own `dot`, and `<no value>` is removed from the output.
/// Returns the output per template name (partials are not in the map).
pub fn render(
    files: Vec<TemplateFile>,
    options: &RenderOptions,
) -> Result<BTreeMap<String, String>, RenderError> {
    // Deeply nested includes recurse natively; a dedicated thread gives them a roomy stack
    // whatever thread the caller runs on.
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("keelson-render".to_string())
            .stack_size(RENDER_STACK_BYTES)
            .spawn_scoped(scope, || render_on_this_thread(files, options));
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(RenderError::Exec(
                    "rendering template failed: the renderer thread panicked".to_string(),
                ))
            }),
            Err(err) => Err(RenderError::Exec(format!(
                "rendering template failed: cannot start the renderer thread: {err}"
            ))),
        }
    })
}

const RENDER_STACK_BYTES: usize = 512 * 1024 * 1024;

/// The function registry every chart sees: Sprig's functions and Helm's own (the context
/// functions `include`, `tpl`, `required`, `fail` and `lookup` live in the executor).
pub fn helm_function_registry() -> FuncRegistry {
    let mut registry = FuncRegistry::new();
    register_library_functions(&mut registry);
    registry
}

fn register_library_functions(registry: &mut FuncRegistry) {
    let _ = registry;
}

/// Helm's parse order (`sortTemplates`): more path segments first; equal depth in reverse
/// lexical order.
fn helm_parse_order(names: &mut [String]) {
    names.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
}

fn render_on_this_thread(
    files: Vec<TemplateFile>,
    options: &RenderOptions,
) -> Result<BTreeMap<String, String>, RenderError> {
    let registry = Arc::new(helm_function_registry());
    let mut set = TemplateSet::new("gotpl", registry);
    let mut by_name: BTreeMap<String, TemplateFile> = BTreeMap::new();
    for file in files {
        by_name.insert(file.name.clone(), file);
    }
    let mut order: Vec<String> = by_name.keys().cloned().collect();
    helm_parse_order(&mut order);
    for name in &order {
        if let Some(file) = by_name.get(name) {
            set.parse(name, &file.text)
                .map_err(|err| RenderError::Parse(cleanup_parse_error(name, &err.to_string())))?;
        }
    }
    let exec_options = ExecOptions {
        strict: options.strict,
        lint_mode: options.lint_mode,
        range_over_int: options.range_over_int,
        lookup: options.lookup.clone().map(|lookup| {
            let f: Arc<LookupFn> = Arc::new(
                move |api_version: &str, kind: &str, namespace: &str, name: &str| {
                    lookup.lookup(api_version, kind, namespace, name)
                },
            );
            f
        }),
    };
    let mut rendered = BTreeMap::new();
    for name in &order {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.starts_with('_') {
            continue;
        }
        let Some(file) = by_name.remove(name) else {
            continue;
        };
        let output = set
            .execute(name, file.dot, &exec_options)
            .map_err(|err| RenderError::Exec(cleanup_exec_error(name, &err.message)))?;
        rendered.insert(name.clone(), output.replace("<no value>", ""));
    }
    Ok(rendered)
}

/// Helm's `cleanupParseError`: `parse error at (FILE:LINE): LAST-MESSAGE-PART`.
fn cleanup_parse_error(filename: &str, message: &str) -> String {
    let tokens: Vec<&str> = message.split(": ").collect();
    if tokens.len() == 1 {
        return format!("parse error in ({filename}): {message}");
    }
    let location = tokens.get(1).copied().unwrap_or_default();
    let last = tokens.last().copied().unwrap_or_default();
    format!("parse error at ({location}): {last}")
}

/// Helm's `cleanupExecError`: `required`/`fail` messages become
/// `execution error at (FILE:LINE:COL): MESSAGE`; other errors stay Go's text.
fn cleanup_exec_error(filename: &str, message: &str) -> String {
    let tokens: Vec<&str> = message.splitn(3, ": ").collect();
    if tokens.len() != 3 {
        return format!("execution error in ({filename}): {message}");
    }
    let location = tokens[1];
    // Go's regexp `HELM_ERR_START(.*)HELM_ERR_END`: `.` stops at newlines, `*` is greedy.
    for line in tokens[2].split('\n') {
        if let Some(start) = line.find(WARN_START) {
            let after = &line[start + WARN_START.len()..];
            if let Some(end) = after.rfind(WARN_END) {
                return format!("execution error at ({location}): {}", &after[..end]);
            }
        }
    }
    message.to_string()
}
