//! Helm's rendering engine (pkg/engine): parses a chart tree's templates into one set in Helm's
//! order and executes every non-partial template with its own data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};

use super::helper::{SharedWork, Take};
use gotemplate::{
    ExecOptions, FileParser, FuncRegistry, LookupFn, ParsedFile, RenderBudget, Session,
    TemplateSet, Value, WARN_END, WARN_START,
};

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
    /// Helm 4's function behaviour ([`gotemplate::helm4_overrides`]: `toToml`/`fromToml` of
    /// BurntSushi/toml v1.6.0) instead of Helm 3's.
    pub helm4_functions: bool,
    /// Helm 4's wording: Go 1.25's comparison errors naming both types, helm 4.1's multi-line
    /// layout of execution errors ([`reformat_exec_error_helm4`]), `common.Values` as the
    /// type name of Helm's Values maps (helm 3: `chartutil.Values`).
    pub helm4_wording: bool,
    /// Answers `lookup`; `None` renders offline (an empty map, as `helm template`).
    pub lookup: Option<Arc<dyn Lookup>>,
    /// Steps, output and time the render may use ([`RenderBudget::DEFAULT`] unless a test
    /// sets a smaller one).
    pub budget: RenderBudget,
}

impl std::fmt::Debug for RenderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOptions")
            .field("strict", &self.strict)
            .field("lint_mode", &self.lint_mode)
            .field("range_over_int", &self.range_over_int)
            .field("helm4_functions", &self.helm4_functions)
            .field("helm4_wording", &self.helm4_wording)
            .field("lookup", &self.lookup.is_some())
            .field("budget", &self.budget)
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
    let mut dots = BTreeMap::new();
    let sources = files
        .into_iter()
        .map(|file| {
            dots.insert(file.name.clone(), file.dot);
            TemplateSource {
                name: file.name,
                text: file.text,
            }
        })
        .collect();
    match render_with_data(
        sources,
        options,
        || Ok::<_, std::convert::Infallible>((dots, ())),
        |_, _| {},
    ) {
        Ok(rendered) => rendered.map(|(outputs, ())| outputs),
        Err(never) => match never {},
    }
}

/// Whether a template is a partial (its base name starts with `_`): parsed for its `define`s,
/// never executed on its own.
pub fn is_partial(name: &str) -> bool {
    name.rsplit('/').next().unwrap_or(name).starts_with('_')
}

/// Each executed template's output by template name (partials are not in it).
pub type Outputs = BTreeMap<String, String>;

/// A template file's name and source: all that parsing needs.
#[derive(Clone, Debug)]
pub struct TemplateSource {
    pub name: String,
    pub text: String,
}

/// Renders like [`render`], with each template's data made by `prepare` (keyed by template
/// name) on the calling thread while the sources are parsed on two others: parsing needs only
/// the sources, and on most charts it costs about as much as coalescing and validating the
/// values and building every template's data. An error from `prepare` is returned instead of
/// any parse error, as Helm checks values before it parses templates. What else `prepare`
/// makes (`T`) comes back with the outputs.
///
/// `on_output` sees each template's output (name, text) on the calling thread as soon as it
/// is executed, while the next templates execute: a caller can start reading manifests there.
/// The outputs it saw do not count if a later template fails.
pub fn render_with_data<T, E>(
    sources: Vec<TemplateSource>,
    options: &RenderOptions,
    prepare: impl FnOnce() -> Result<(BTreeMap<String, Value>, T), E>,
    mut on_output: impl FnMut(&str, &str),
) -> Result<Result<(Outputs, T), RenderError>, E> {
    let registry = function_registry(options.helm4_functions);
    // helm 4 is built with Go 1.25, whose lexer counts a comment's newlines; helm 3.17's (Go
    // 1.23) does not, so its parse errors name earlier lines after a multi-line comment.
    let parser = Arc::new(FileParser::new(registry.clone(), !options.helm4_wording));
    let mut by_name: BTreeMap<String, TemplateSource> = BTreeMap::new();
    for source in sources {
        by_name.insert(source.name.clone(), source);
    }
    let mut order: Vec<String> = by_name.keys().cloned().collect();
    helm_parse_order(&mut order);
    let work = Arc::new(ParseWork::new(
        order
            .iter()
            .filter_map(|name| by_name.remove(name))
            .collect(),
    ));
    // psm switches stacks on these targets; elsewhere every render takes the threaded path.
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    if !work.worth_threads_of_its_own() {
        return render_on_this_thread(&registry, parser, work, options, prepare, on_output);
    }
    let (send_data, receive_data) = std::sync::mpsc::channel::<BTreeMap<String, Value>>();
    let (send_output, receive_output) = std::sync::mpsc::channel::<(String, String)>();
    let (send_result, receive_result) = std::sync::mpsc::channel::<Result<(), RenderError>>();
    // The renderer starts on the other CPU: a thread left to start on this one waited there
    // until this thread blocked, and the two then took turns on one CPU while the other idled
    // (docs/renderer.md, "The threaded path on one CPU"). Deeply nested includes recurse
    // natively, and deeply nested blocks parse recursively: its stack is a roomy one.
    let renderer = {
        let (work, parser, registry, options) = (
            work.clone(),
            parser.clone(),
            registry.clone(),
            options.clone(),
        );
        super::helper::spawn_on_another_cpu(
            "keelson-render",
            RENDER_STACK_BYTES,
            Box::new(move || {
                work.help(&parser, LARGEST);
                // No data: `prepare` failed and the caller has returned its error.
                let Ok(dots) = receive_data.recv() else {
                    return;
                };
                let parsed = work.wait_until_parsed();
                let executed =
                    execute_parsed(&registry, &work, parsed, dots, &options, &send_output, None);
                let _ = send_result.send(executed);
                // `send_output` is dropped with this closure: the caller's loop then ends.
            }),
        )
    };
    if let Err(err) = renderer {
        work.abandon();
        return Ok(Err(RenderError::Exec(format!(
            "rendering template failed: cannot start the renderer thread: {err}"
        ))));
    }
    let (dots, prepared) = match prepare() {
        Ok(prepared) => prepared,
        Err(err) => {
            work.abandon();
            return Err(err);
        }
    };
    // The renderer waits for the data; if it has stopped, the result below says why.
    let _ = send_data.send(dots);
    help_parse_here(&work, &parser);
    let rendered = collect_outputs(receive_output, &mut on_output);
    Ok(match receive_result.recv() {
        Ok(Ok(())) => Ok((rendered, prepared)),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(RenderError::Exec(
            "rendering template failed: the renderer thread panicked".to_string(),
        )),
    })
}

/// The calling thread parses the smallest files left while the renderer parses the largest:
/// with the values prepared it has nothing else to do until the first output arrives.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn help_parse_here(work: &ParseWork, parser: &FileParser) {
    if work.worth_a_second_parser() {
        // A stack that cannot be mapped, or a panic, leaves the files to the renderer.
        let _ = on_render_stack(|| work.help(parser, SMALLEST));
    }
}

/// Elsewhere no roomy stack can be switched to here: a helper thread parses instead.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn help_parse_here(work: &Arc<ParseWork>, parser: &Arc<FileParser>) {
    if work.worth_a_second_parser() {
        let (work, parser) = (work.clone(), parser.clone());
        // Without the helper the renderer parses every file itself.
        let _ = super::helper::spawn_on_another_cpu(
            "keelson-parse",
            RENDER_STACK_BYTES,
            Box::new(move || work.help(&parser, SMALLEST)),
        );
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
/// [`render_with_data`] for all but the largest charts: parsing, `prepare` and execution on
/// the calling thread (on a stack of its own, [`on_render_stack`]), with a helper thread that
/// parses files too once it runs.
///
/// Nothing here waits for a thread to start. On the 2-CPU virtual machines measured, a new
/// thread placed on the idle CPU often began 1-2 ms after it was made (the CPU had to be woken
/// first), longer than a mid-size chart takes to render; the render thread of the threaded path
/// then left the calling thread idle for as long. The helper is not joined either: one that
/// starts after the work is done finds nothing to take and ends.
fn render_on_this_thread<T, E>(
    registry: &Arc<FuncRegistry>,
    parser: Arc<FileParser>,
    work: Arc<ParseWork>,
    options: &RenderOptions,
    prepare: impl FnOnce() -> Result<(BTreeMap<String, Value>, T), E>,
    mut on_output: impl FnMut(&str, &str),
) -> Result<Result<(Outputs, T), RenderError>, E> {
    let mut to_helper = None;
    if work.worth_a_second_parser() {
        let (helper_work, helper_parser) = (work.clone(), parser.clone());
        let (send_execution, receive_execution) = std::sync::mpsc::channel::<Arc<Execution>>();
        // Without the helper this thread parses and executes every file itself.
        if super::helper::spawn_on_another_cpu(
            "keelson-parse",
            RENDER_STACK_BYTES,
            Box::new(move || {
                helper_work.help(&helper_parser, SMALLEST);
                if let Ok(execution) = receive_execution.recv() {
                    execution.speculate();
                }
            }),
        )
        .is_ok()
        {
            to_helper = Some(send_execution);
        }
    }
    let (dots, prepared) = match prepare() {
        Ok(prepared) => prepared,
        Err(err) => {
            work.abandon();
            return Err(err);
        }
    };
    let (send_output, receive_output) = std::sync::mpsc::channel::<(String, String)>();
    let executed = on_render_stack(|| {
        work.help(&parser, LARGEST);
        let parsed = work.wait_until_parsed();
        execute_parsed(
            registry,
            &work,
            parsed,
            dots,
            options,
            &send_output,
            to_helper,
        )
    });
    drop(send_output);
    let rendered = collect_outputs(receive_output, &mut on_output);
    Ok(match executed {
        Ok(Some(Ok(()))) => Ok((rendered, prepared)),
        Ok(Some(Err(err))) => Err(err),
        Ok(None) => Err(RenderError::Exec(
            "rendering template failed: the renderer panicked".to_string(),
        )),
        Err(err) => Err(RenderError::Exec(format!(
            "rendering template failed: cannot map the render stack: {err}"
        ))),
    })
}

/// Runs `render` on this thread on a stack of [`RENDER_STACK_BYTES`] (deeply nested includes
/// recurse natively, deeply nested blocks parse recursively), mapped for the call and
/// touched only as deep as it goes. `None` when `render` panicked.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn on_render_stack<R>(render: impl FnOnce() -> R) -> std::io::Result<Option<R>> {
    // SAFETY: sysconf only reads a system constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mapped = RENDER_STACK_BYTES + page;
    // SAFETY: a new private anonymous mapping, owned by this function alone.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            mapped,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // The lowest page stays inaccessible: an overflow faults instead of writing below.
    // SAFETY: the first page of the mapping made above.
    if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: the mapping made above, not used by anything.
        unsafe { libc::munmap(base, mapped) };
        return Err(err);
    }
    // SAFETY: the stack is the mapping above its guard page, page-aligned and a multiple of
    // the page size long; the callback cannot unwind, as catch_unwind stops any panic.
    let outcome = unsafe {
        psm::on_stack(base.cast::<u8>().add(page), RENDER_STACK_BYTES, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(render)).ok()
        })
    };
    if !PROCESS_ENDS_AFTER_RENDER.load(Ordering::Relaxed) {
        // SAFETY: the mapping made above; nothing on it is used any more.
        unsafe { libc::munmap(base, mapped) };
    }
    Ok(outcome)
}

/// Every executed template's output, each shown to `on_output` as it arrives.
fn collect_outputs(
    outputs: std::sync::mpsc::Receiver<(String, String)>,
    on_output: &mut impl FnMut(&str, &str),
) -> Outputs {
    let mut rendered = BTreeMap::new();
    for (name, output) in outputs {
        on_output(&name, &output);
        rendered.insert(name, output);
    }
    rendered
}

/// The files of one render, parsed by whichever thread takes each next, into slots kept in
/// Helm's parse order. The thread that executes takes the largest files and the helper the
/// smallest: when they meet, the file the executing thread may have to wait for is one of
/// the smallest, not whichever file came last.
struct ParseWork {
    sources: Vec<TemplateSource>,
    /// Indices into `sources`, largest file first: the items of `shared`.
    by_size: Vec<usize>,
    /// Results by position in `by_size`.
    shared: SharedWork<Result<ParsedFile, String>>,
}

/// A parsing thread's end of [`ParseWork`]'s size order.
const LARGEST: Take = Take::Front;
const SMALLEST: Take = Take::Back;

impl ParseWork {
    fn new(sources: Vec<TemplateSource>) -> Self {
        let mut by_size: Vec<usize> = (0..sources.len()).collect();
        by_size.sort_by_key(|&index| std::cmp::Reverse(sources[index].text.len()));
        Self {
            shared: SharedWork::new(sources.len()),
            by_size,
            sources,
        }
    }

    #[cfg_attr(
        not(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        )),
        allow(dead_code)
    )]
    /// From this size on (CRDs kept as templates: keda, argo-rollouts, argo-cd) the outputs
    /// are large enough that reading each template's manifests on the calling thread while a
    /// render thread executes the next one pays for the thread's start.
    fn worth_threads_of_its_own(&self) -> bool {
        self.sources.iter().map(|s| s.text.len()).sum::<usize>() >= 512 * 1024
    }

    /// A second thread costs about as much to start as parsing a few kilobytes.
    fn worth_a_second_parser(&self) -> bool {
        self.sources.len() >= 4
            && self.sources.iter().map(|s| s.text.len()).sum::<usize>() >= 16_384
    }

    /// Parses files until none is left (or the render was abandoned), taking them from `end`
    /// of the size order.
    fn help(&self, parser: &FileParser, end: Take) {
        while let Some(position) = self.shared.claim(end) {
            let Some(source) = self
                .by_size
                .get(position)
                .and_then(|&i| self.sources.get(i))
            else {
                return;
            };
            // A parser bug must end this render with an error, not leave it waiting forever
            // for the slot.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                parser.parse(&source.name, &source.text)
            }))
            .unwrap_or_else(|_| {
                Err(gotemplate::ParseError {
                    parse_name: source.name.clone(),
                    line: 0,
                    message: "the template parser panicked".to_string(),
                })
            })
            .map_err(|err| err.to_string());
            self.shared.finish(position, result);
        }
    }

    /// Waits for every file's result and takes them, in `sources`' order.
    fn wait_until_parsed(&self) -> Vec<Option<Result<ParsedFile, String>>> {
        let mut by_position = self.shared.wait_for_all();
        let mut in_order: Vec<Option<Result<ParsedFile, String>>> =
            (0..self.sources.len()).map(|_| None).collect();
        for (position, &index) in self.by_size.iter().enumerate() {
            if let (Some(slot), Some(result)) =
                (in_order.get_mut(index), by_position.get_mut(position))
            {
                *slot = result.take();
            }
        }
        in_order
    }

    fn abandon(&self) {
        self.shared.abandon();
    }
}

fn function_registry(helm4: bool) -> Arc<FuncRegistry> {
    static REGISTRY: std::sync::OnceLock<Arc<FuncRegistry>> = std::sync::OnceLock::new();
    static HELM4_REGISTRY: std::sync::OnceLock<Arc<FuncRegistry>> = std::sync::OnceLock::new();
    if helm4 {
        HELM4_REGISTRY
            .get_or_init(|| Arc::new(helm4_function_registry()))
            .clone()
    } else {
        REGISTRY
            .get_or_init(|| Arc::new(helm_function_registry()))
            .clone()
    }
}

const RENDER_STACK_BYTES: usize = 512 * 1024 * 1024;

/// The function registry every chart sees: Sprig's functions and Helm's own (the context
/// functions `include`, `tpl`, `required`, `fail` and `lookup` live in the executor).
pub fn helm_function_registry() -> FuncRegistry {
    let mut registry = FuncRegistry::new();
    register_library_functions(&mut registry);
    registry
}

/// The registry of Helm 4 charts: Helm 3's with helm 4's own versions of some functions.
pub fn helm4_function_registry() -> FuncRegistry {
    let mut registry = helm_function_registry();
    registry.extend(gotemplate::helm4_overrides());
    registry
}

fn register_library_functions(registry: &mut FuncRegistry) {
    registry.extend(gotemplate::sprig_functions());
    // Helm's own replace Sprig's of the same name (toJson, fromJson...).
    registry.extend(gotemplate::helm_functions());
}

/// Helm's parse order (`sortTemplates`): more path segments first; equal depth in reverse
/// lexical order.
fn helm_parse_order(names: &mut [String]) {
    names.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
}

/// Builds the set from the parsed files in Helm's order (the first file that failed to parse
/// is the error) and executes it with each template's data.
fn execute_parsed(
    registry: &Arc<FuncRegistry>,
    work: &ParseWork,
    parsed: Vec<Option<Result<ParsedFile, String>>>,
    mut dots: BTreeMap<String, Value>,
    options: &RenderOptions,
    outputs: &Sender<(String, String)>,
    helper: Option<Sender<Arc<Execution>>>,
) -> Result<(), RenderError> {
    let mut set = TemplateSet::new("gotpl", registry.clone());
    set.use_go123_comment_lines(!options.helm4_wording);
    for (source, slot) in work.sources.iter().zip(parsed) {
        match slot {
            Some(Ok(parsed)) => set.add_parsed(parsed),
            Some(Err(message)) => {
                return Err(RenderError::Parse(cleanup_parse_error(
                    &source.name,
                    &message,
                )));
            }
            None => {
                return Err(RenderError::Exec(format!(
                    "rendering template failed: {} was not parsed",
                    source.name
                )));
            }
        }
    }
    let exec_options = ExecOptions {
        strict: options.strict,
        lint_mode: options.lint_mode,
        range_over_int: options.range_over_int,
        typed_comparison_errors: options.helm4_wording,
        go123_comment_lines: !options.helm4_wording,
        // The render thread's stack, less room for the functions nested templates call.
        stack_budget: Some(RENDER_STACK_BYTES - 16 * 1024 * 1024),
        budget: options.budget,
        lookup: options.lookup.clone().map(|lookup| {
            let f: Arc<LookupFn> = Arc::new(
                move |api_version: &str, kind: &str, namespace: &str, name: &str| {
                    lookup.lookup(api_version, kind, namespace, name)
                },
            );
            f
        }),
    };
    // Helm executes each template with its `Values` type as `.`, and `.Values` and `.Template`
    // are of that type too.
    let values_type = if options.helm4_wording {
        "common.Values"
    } else {
        "chartutil.Values"
    };
    // Helm's order, less the partials and the templates without data.
    let (names, dots): (Vec<String>, Vec<Value>) = work
        .sources
        .iter()
        .filter(|source| !is_partial(&source.name))
        .filter_map(|source| Some((source.name.clone(), dots.remove(&source.name)?)))
        .unzip();
    let unclaimed_end = names.len();
    let execution = Arc::new(Execution {
        set,
        names,
        dots,
        options: exec_options,
        values_type,
        shared: std::sync::OnceLock::new(),
        claims: Mutex::new(Claims {
            unclaimed_end,
            ..Claims::default()
        }),
        claims_changed: Condvar::new(),
    });
    // The helper executes from the last template back while this thread executes from the
    // first; an offline render only (`lookup` may ask the cluster, and is asked once).
    if let Some(helper) = helper
        && options.lookup.is_none()
        && execution.names.len() >= 2
    {
        // A helper that has ended takes nothing: this thread executes every template.
        let _ = helper.send(execution.clone());
    }
    execution.name_map_types();
    let result = execution.execute_in_order(options, outputs);
    gotemplate::forget_map_types();
    execution.stop_helper();
    if PROCESS_ENDS_AFTER_RENDER.load(Ordering::Relaxed) {
        // Freeing every parsed node one by one costs about 2% of a render; the process is
        // about to hand all of its memory back at once.
        std::mem::forget(execution);
    }
    result
}

/// The templates of one render, executed in Helm's order by the thread that renders, and
/// speculatively from the last one back by the parse helper once it has parsed its files.
///
/// Go maps are references: a template that changes a map of the shared data in place (`set`,
/// `merge` on `.Values` or `$`) changes it for every later template. A speculative output is
/// therefore used only while no template before it has changed shared data, which the thread
/// in order checks after each of its own templates; a helper's template that changed shared
/// data, or failed, stops the helper, and the thread in order executes it and every later
/// template itself. Each thread has its own [`Session`] (with its own budget).
struct Execution {
    set: TemplateSet,
    names: Vec<String>,
    dots: Vec<Value>,
    options: ExecOptions,
    values_type: &'static str,
    /// The maps and lists of the templates' data, found when a template first changes a map.
    shared: std::sync::OnceLock<gotemplate::SharedValues>,
    claims: Mutex<Claims>,
    claims_changed: Condvar,
}

#[derive(Default)]
struct Claims {
    /// Templates from here on were claimed by the helper (it takes `unclaimed_end - 1` next).
    unclaimed_end: usize,
    /// The next template of the thread in order: the helper stops before it.
    next_in_order: usize,
    /// The helper is to take nothing more.
    stopped: bool,
    /// The template the helper is executing.
    helper_busy_on: Option<usize>,
    /// The helper's outcomes by template: an output, or `None` (failed, or changed shared
    /// data: that template and every later one are the thread in order's).
    speculated: BTreeMap<usize, Option<String>>,
}

/// The chart a template's `.` belongs to: its `Template.BasePath` (`chart/charts/sub/templates`).
fn base_path(dot: &Value) -> &str {
    dot.as_map()
        .and_then(|map| map.get("Template"))
        .and_then(Value::as_map)
        .and_then(|template| template.get("BasePath"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Outcomes are stored whole, so a panic elsewhere leaves nothing half-done behind a lock.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Execution {
    /// Helm executes each template with its `Values` type as `.`, and `.Values` and
    /// `.Template` are of that type too (named per thread).
    fn name_map_types(&self) {
        for dot in &self.dots {
            gotemplate::name_map_type(dot, self.values_type);
            if let Value::Map(dot) = dot {
                for key in ["Values", "Template"] {
                    if let Some(named) = dot.get(key) {
                        gotemplate::name_map_type(named, self.values_type);
                    }
                }
            }
        }
    }

    fn changed_shared_data(&self, session: &Session) -> bool {
        // The walk of every value only once some map has changed at all.
        session.changed_any_map() && session.changed_any_of(self.shared_values())
    }

    /// The maps and lists the templates' data holds (each template's `.` included: Helm gives
    /// a chart's templates one `.`).
    fn shared_values(&self) -> &gotemplate::SharedValues {
        self.shared
            .get_or_init(|| gotemplate::SharedValues::of(&self.dots))
    }

    /// A template's `.` after an earlier template of its chart changed its own: the changed
    /// map with this template's `Template`, of Helm's `Values` type like the original.
    fn carried_dot(&self, changed: &Arc<BTreeMap<String, Value>>, original: &Value) -> Value {
        let mut dot = (**changed).clone();
        if let Some(template) = original.as_map().and_then(|map| map.get("Template")) {
            dot.insert("Template".to_string(), template.clone());
        }
        let dot = Value::Map(Arc::new(dot));
        gotemplate::name_map_type(&dot, self.values_type);
        dot
    }

    fn stop_helper(&self) {
        lock(&self.claims).stopped = true;
        self.claims_changed.notify_all();
    }

    /// The helper's part: templates from the last one back, until it meets the thread in
    /// order, is stopped, or a template fails or changes shared data.
    fn speculate(&self) {
        // Found here, on the other CPU, before the thread in order needs them: most charts'
        // helpers change some map (a walk of all values, ~0.1 ms for bitnami's).
        self.shared_values();
        self.name_map_types();
        gotemplate::set_speculative(true);
        let session = Session::default();
        loop {
            let index = {
                let mut claims = lock(&self.claims);
                if claims.stopped || claims.unclaimed_end <= claims.next_in_order {
                    break;
                }
                claims.unclaimed_end -= 1;
                claims.helper_busy_on = Some(claims.unclaimed_end);
                claims.unclaimed_end
            };
            // A panic counts as a failure: the thread in order executes the template itself
            // (and meets the panic there) instead of waiting for this one forever.
            let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.set
                    .execute_in(
                        &self.names[index],
                        self.dots[index].clone(),
                        &self.options,
                        &session,
                    )
                    .ok()
                    .filter(|_| !self.changed_shared_data(&session))
            }))
            .ok()
            .flatten();
            let mut claims = lock(&self.claims);
            claims.helper_busy_on = None;
            if output.is_none() {
                claims.stopped = true;
            }
            claims.speculated.insert(index, output);
            drop(claims);
            self.claims_changed.notify_all();
        }
        gotemplate::set_speculative(false);
        gotemplate::forget_map_types();
    }

    /// Executes every template in Helm's order, using the helper's outputs while they are
    /// valid; the first error is Helm's.
    fn execute_in_order(
        &self,
        options: &RenderOptions,
        outputs: &Sender<(String, String)>,
    ) -> Result<(), RenderError> {
        let session = Session::default();
        let mut speculation_valid = true;
        // Helm gives all templates of a chart one `.` (and sets its `Template` before each):
        // what a template sets on `.` reaches the chart's later templates. Each template has
        // a `.` of its own here; a changed one is carried on, by chart (`Template.BasePath`).
        let mut carried: BTreeMap<String, Arc<BTreeMap<String, Value>>> = BTreeMap::new();
        for (index, name) in self.names.iter().enumerate() {
            let mut output = None;
            {
                let mut claims = lock(&self.claims);
                if speculation_valid && index >= claims.unclaimed_end {
                    while claims.helper_busy_on == Some(index) {
                        claims = self
                            .claims_changed
                            .wait(claims)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                    output = claims.speculated.remove(&index).flatten();
                }
                if output.is_none() {
                    // From here on this thread executes everything itself.
                    if index >= claims.unclaimed_end {
                        speculation_valid = false;
                        claims.stopped = true;
                    }
                    claims.next_in_order = index + 1;
                }
            }
            let output = match output {
                Some(output) => {
                    #[cfg(test)]
                    speculation_tests::OUTPUTS_FROM_HELPER.with(|count| count.set(count.get() + 1));
                    output
                }
                None => {
                    let chart = base_path(&self.dots[index]);
                    let dot = match carried.get(chart) {
                        Some(changed) => self.carried_dot(changed, &self.dots[index]),
                        None => self.dots[index].clone(),
                    };
                    let executed = self
                        .set
                        .execute_in(name, dot.clone(), &self.options, &session)
                        .map_err(|err| {
                            RenderError::Exec(if options.helm4_wording {
                                reformat_exec_error_helm4(name, &err.message)
                            } else {
                                cleanup_exec_error(name, &err.message)
                            })
                        })?;
                    if session.changed_any_map()
                        && let (Value::Map(before), Value::Map(after)) =
                            (&dot, session.current(&dot))
                        && !Arc::ptr_eq(before, &after)
                    {
                        carried.insert(chart.to_string(), after);
                    }
                    if speculation_valid && self.changed_shared_data(&session) {
                        speculation_valid = false;
                        self.stop_helper();
                    }
                    executed
                }
            };
            // A caller that stopped listening has given up on the render.
            if outputs
                .send((name.clone(), output.replace("<no value>", "")))
                .is_err()
            {
                break;
            }
        }
        Ok(())
    }
}

static PROCESS_ENDS_AFTER_RENDER: AtomicBool = AtomicBool::new(false);

/// Tells the engine that the process exits after its one render (`keelson template`), so
/// what the render built need not be freed piece by piece. Never set in the controller.
pub fn process_ends_after_render() {
    PROCESS_ENDS_AFTER_RENDER.store(true, Ordering::Relaxed);
}

/// Whether [`process_ends_after_render`] was called: what one render builds may then be left
/// to the process exit instead of being freed piece by piece.
pub fn memory_goes_back_at_exit() -> bool {
    PROCESS_ENDS_AFTER_RENDER.load(Ordering::Relaxed)
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
    match required_or_fail_message(tokens[2]) {
        Some(text) => format!("execution error at ({}): {text}", tokens[1]),
        None => message.to_string(),
    }
}

/// Helm's `HELM_ERR_START((?s).*)HELM_ERR_END` (3.17 and 4.1): from the first start marker to
/// the last end marker, across lines.
fn required_or_fail_message(text: &str) -> Option<&str> {
    let start = text.find(WARN_START)?;
    let after = &text[start + WARN_START.len()..];
    after.rfind(WARN_END).map(|end| &after[..end])
}

/// Helm 4.1's `reformatExecErrorMsg`: `required`/`fail` messages as helm 3; otherwise, when every link of Go's error chain is a template error, one
/// block per link (`LOCATION\n  executing "NAME" at <NODE>:\n    MESSAGE`, consecutive equal
/// blocks once); when a link is a plain error (`error calling F: ...` from a function, `tpl`),
/// Go's one-line text.
///
/// keelson keeps only the error's text, so the chain is rebuilt from it: text/template wraps
/// (`%w`) only a called function's error (`error calling NAME: ERR`), and an `include`d
/// template's error is itself a template error starting with `template: `.
fn reformat_exec_error_helm4(filename: &str, message: &str) -> String {
    let tokens: Vec<&str> = message.splitn(3, ": ").collect();
    if tokens.len() != 3 {
        return format!("execution error in ({filename}): {message}");
    }
    if let Some(text) = required_or_fail_message(tokens[2]) {
        return format!("execution error at ({}): {text}", tokens[1]);
    }
    let mut blocks: Vec<TraceableError> = Vec::new();
    let mut link = Some(message);
    while let Some(text) = link {
        let Some((block, wrapped)) = parse_template_error(text) else {
            return message.to_string();
        };
        if blocks.last() != Some(&block) {
            blocks.push(block);
        }
        link = wrapped;
    }
    let mut out = String::new();
    for block in &blocks {
        if !block.location.is_empty() {
            out.push_str(&block.location);
            out.push_str("\n  ");
        }
        if !block.executing.is_empty() {
            out.push_str(&block.executing);
            out.push_str("\n    ");
        }
        if !block.message.is_empty() {
            out.push_str(&block.message);
            out.push('\n');
        }
    }
    out.trim().to_string()
}

/// One link of a template error chain as helm 4 prints it.
#[derive(PartialEq, Eq)]
struct TraceableError {
    location: String,
    executing: String,
    message: String,
}

/// Parses one link (`template: ...`) into helm 4's parts, and returns the error it wraps: the
/// text after `error calling NAME: `, when the link's own message is a function call error.
/// `None` when the link is not a template error.
fn parse_template_error(text: &str) -> Option<(TraceableError, Option<&str>)> {
    let remainder = text.strip_prefix("template: ")?;
    // Go's ExecuteTemplate for an unknown name: a plain error that looks like a template one.
    if remainder.starts_with("no template ") {
        let block = TraceableError {
            location: String::new(),
            executing: String::new(),
            message: text.to_string(),
        };
        return Some((block, None));
    }
    let cut = |message: &str| -> String {
        match message.find(" template:") {
            Some(end) => message[..end].to_string(),
            None => message.to_string(),
        }
    };
    let (block, own_message) = match executing_form(remainder) {
        Some((location, function, node, own)) => (
            TraceableError {
                location: location.to_string(),
                executing: format!("executing \"{function}\" at <{node}>:"),
                message: cut(own),
            },
            own,
        ),
        None => {
            let sep = remainder.rfind(": ")?;
            let own = &remainder[sep + 2..];
            (
                TraceableError {
                    location: remainder[..sep].to_string(),
                    executing: String::new(),
                    message: cut(own),
                },
                // Go's `template: NAME: MESSAGE` form: the whole rest is its own message.
                remainder
                    .find(": ")
                    .map(|first| &remainder[first + 2..])
                    .unwrap_or(own),
            )
        }
    };
    let wrapped = own_message
        .strip_prefix("error calling ")
        .and_then(|call| call.find(": ").map(|sep| &call[sep + 2..]));
    Some((block, wrapped))
}

/// `LOCATION: executing "NAME" at <NODE>: MESSAGE` split into its four parts.
fn executing_form(remainder: &str) -> Option<(&str, &str, &str, &str)> {
    let index = remainder.find(": executing ")?;
    let location = &remainder[..index];
    let after = remainder[index + ": executing ".len()..].strip_prefix('"')?;
    let end_quote = after.find('"')?;
    let function = &after[..end_quote];
    let after_at = after[end_quote + 1..].strip_prefix(" at <")?;
    let end_node = after_at.find(">: ")?;
    Some((
        location,
        function,
        &after_at[..end_node],
        &after_at[end_node + ">: ".len()..],
    ))
}

#[cfg(test)]
mod golden_tests {
    //! Renders every fixtures/render/engine/<case>/chart with a minimal per-template `dot` and
    //! compares with the real helm's output stored beside it (scripts/regen-engine-golden).

    use super::*;
    use std::path::{Path, PathBuf};

    /// A YAML file read as Helm reads values (the project's go-yaml reader: numbers float64).
    fn read_yaml(path: &Path) -> serde_json::Value {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| {
                gocompat::yaml::parse_first_document(&text, &path.display().to_string()).ok()
            })
            .unwrap_or(serde_json::Value::Null)
    }

    fn collect_templates(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if path.is_dir() {
                collect_templates(&path, &format!("{prefix}{name}/"), out);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                out.push((format!("{prefix}{name}"), text));
            }
        }
    }

    fn case_files(chart: &Path) -> Vec<TemplateFile> {
        let meta = read_yaml(&chart.join("Chart.yaml"));
        let field = |key: &str| {
            meta.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let chart_name = field("name");
        let values = Value::from_json(&read_yaml(&chart.join("values.yaml")));
        let values = if values.is_nil() {
            Value::map([])
        } else {
            values
        };
        let release = Value::map([
            ("Name".to_string(), Value::from("rel")),
            ("Namespace".to_string(), Value::from("demo")),
            ("Service".to_string(), Value::from("Helm")),
            ("IsInstall".to_string(), Value::Bool(true)),
            ("IsUpgrade".to_string(), Value::Bool(false)),
            ("Revision".to_string(), Value::Int(1)),
        ]);
        let chart_value = Value::map([
            ("Name".to_string(), Value::from(field("name"))),
            ("Version".to_string(), Value::from(field("version"))),
            ("AppVersion".to_string(), Value::from(field("appVersion"))),
        ]);
        let mut templates = Vec::new();
        collect_templates(&chart.join("templates"), "", &mut templates);
        templates
            .into_iter()
            .map(|(rel, text)| {
                let name = format!("{chart_name}/templates/{rel}");
                let dot = Value::map([
                    ("Values".to_string(), values.clone()),
                    ("Release".to_string(), release.clone()),
                    ("Chart".to_string(), chart_value.clone()),
                    (
                        "Template".to_string(),
                        Value::map([
                            ("Name".to_string(), Value::from(name.clone())),
                            (
                                "BasePath".to_string(),
                                Value::from(format!("{chart_name}/templates")),
                            ),
                        ]),
                    ),
                ]);
                TemplateFile { name, text, dot }
            })
            .collect()
    }

    /// Helm's `SplitManifests`: documents separated by `---` lines, each trimmed.
    fn split_documents(text: &str) -> Vec<String> {
        let trimmed = text.trim();
        let mut docs = Vec::new();
        let mut rest = trimmed.strip_prefix("---").unwrap_or(trimmed);
        loop {
            match rest.find("\n---") {
                Some(i) => {
                    docs.push(rest[..i].trim().to_string());
                    rest = &rest[i + 4..];
                }
                None => {
                    docs.push(rest.trim().to_string());
                    break;
                }
            }
        }
        docs.retain(|d| !d.is_empty());
        docs
    }

    /// `helm template` stdout as (source, document) pairs.
    fn helm_documents(stdout: &str) -> Vec<(String, String)> {
        let mut docs: Vec<(String, String)> = stdout
            .split("---\n# Source: ")
            .filter(|chunk| !chunk.is_empty())
            .map(|chunk| {
                let (name, content) = chunk.split_once('\n').unwrap_or((chunk, ""));
                let content = content.strip_suffix('\n').unwrap_or(content);
                (name.to_string(), content.to_string())
            })
            .collect();
        docs.sort();
        docs
    }

    fn keelson_documents(rendered: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut docs: Vec<(String, String)> = rendered
            .iter()
            .filter(|(name, _)| !name.ends_with("NOTES.txt"))
            .flat_map(|(name, text)| {
                split_documents(text)
                    .into_iter()
                    .map(move |doc| (name.clone(), doc))
            })
            .collect();
        docs.sort();
        docs
    }

    fn check_case(dir: &Path, helm4: bool) -> Option<String> {
        let prefix = if helm4 { "expected-helm4" } else { "expected" };
        let stdout = std::fs::read_to_string(dir.join(format!("{prefix}.txt"))).ok();
        let error = std::fs::read_to_string(dir.join(format!("{prefix}-error.txt"))).ok();
        if stdout.is_none() && error.is_none() {
            return None;
        }
        let options = RenderOptions {
            range_over_int: helm4,
            helm4_functions: helm4,
            helm4_wording: helm4,
            ..RenderOptions::default()
        };
        let result = render(case_files(&dir.join("chart")), &options);
        let case = dir.display();
        match (result, stdout, error) {
            (Ok(rendered), Some(stdout), _) => {
                let want = helm_documents(&stdout);
                let got = keelson_documents(&rendered);
                (want != got).then(|| format!("{case} ({prefix}):\nwant {want:#?}\ngot  {got:#?}"))
            }
            (Err(err), _, Some(error)) => {
                let want = error.trim_end();
                let got = err.to_string();
                (want != got)
                    .then(|| format!("{case} ({prefix}):\nwant error {want}\ngot  error {got}"))
            }
            (Ok(rendered), None, Some(error)) => Some(format!(
                "{case} ({prefix}): want error {error}, got output {rendered:?}"
            )),
            (Err(err), Some(_), _) => Some(format!("{case} ({prefix}): unexpected error {err}")),
            (Err(err), None, None) => Some(format!("{case} ({prefix}): {err}")),
            (Ok(_), None, None) => None,
        }
    }

    #[test]
    fn engine_fixtures_match_real_helm_output() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/render/engine");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        assert!(
            dirs.len() > 10,
            "engine fixtures missing under {}",
            root.display()
        );
        let mut failures = Vec::new();
        let mut checked = 0;
        for dir in &dirs {
            for helm4 in [false, true] {
                if helm4
                    && !dir.join("expected-helm4.txt").exists()
                    && !dir.join("expected-helm4-error.txt").exists()
                {
                    continue;
                }
                checked += 1;
                if let Some(failure) = check_case(dir, helm4) {
                    failures.push(failure);
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{}/{} engine cases differ from helm:\n{}",
            failures.len(),
            checked,
            failures.join("\n\n")
        );
    }
}

#[cfg(test)]
mod recursion_tests {
    use super::*;

    #[test]
    fn endless_include_recursion_fails_with_helms_message() {
        let files = vec![TemplateFile {
            name: "c/templates/t.yaml".to_string(),
            text: r#"{{ define "loop" }}{{ include "loop" . }}{{ end }}{{ include "loop" . }}"#
                .to_string(),
            dot: Value::map([]),
        }];
        let err = render(files, &RenderOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.ends_with(
                "error calling include: rendering template has a nested reference name: loop: \
                 unable to execute template"
            ),
            "{}",
            &err[err.len().saturating_sub(300)..]
        );
    }
}

#[cfg(test)]
mod nesting_tests {
    use super::*;

    fn render_text(text: String) -> Result<BTreeMap<String, String>, RenderError> {
        let files = vec![TemplateFile {
            name: "c/templates/t.yaml".to_string(),
            text,
            dot: Value::map([]),
        }];
        render(files, &RenderOptions::default())
    }

    #[test]
    fn deep_nesting_renders_up_to_gos_limit_and_fails_cleanly_beyond() {
        let depth = 2000;
        let text = format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth));
        let rendered = render_text(text).map(|r| r.get("c/templates/t.yaml").cloned());
        assert_eq!(rendered.ok().flatten().as_deref(), Some("1"));
        let ifs = format!(
            "{}x{}",
            "{{ if true }}".repeat(depth),
            "{{ end }}".repeat(depth)
        );
        let rendered = render_text(ifs).map(|r| r.get("c/templates/t.yaml").cloned());
        assert_eq!(rendered.ok().flatten().as_deref(), Some("x"));
        let too_deep = format!("{{{{ {}1{} }}}}", "(".repeat(10001), ")".repeat(10001));
        let err = render_text(too_deep).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("parse error at (c/templates/t.yaml:1): max expression depth exceeded")
        );
    }
}

#[cfg(test)]
mod budget_tests {
    //! Issue 13 item 9: hostile templates end with an error naming the template, quickly.

    use super::*;

    fn render_one(text: &str, budget: RenderBudget) -> Result<String, String> {
        let files = vec![TemplateFile {
            name: "c/templates/t.yaml".to_string(),
            text: text.to_string(),
            dot: Value::map([]),
        }];
        let options = RenderOptions {
            budget,
            ..RenderOptions::default()
        };
        render(files, &options)
            .map(|out| out.into_values().collect())
            .map_err(|e| e.to_string())
    }

    fn assert_budget_error(text: &str, budget: RenderBudget, what: &str) {
        let started = std::time::Instant::now();
        let err = render_one(text, budget).err().unwrap_or_default();
        assert!(
            err.starts_with("template: c/templates/t.yaml")
                && err.contains(": render budget exceeded: ")
                && err.contains(what),
            "{text}: {err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{text}"
        );
    }

    #[test]
    fn nested_ranges_hit_the_step_limit() {
        assert_budget_error(
            "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}",
            RenderBudget::DEFAULT,
            "more than 20000000 steps",
        );
    }

    #[test]
    fn large_outputs_hit_the_output_limit() {
        let small = RenderBudget {
            max_output_bytes: 1024 * 1024,
            ..RenderBudget::DEFAULT
        };
        assert_budget_error(
            "{{ range until 1000000 }}0123456789{{ end }}",
            small,
            "more than 1048576 bytes of output",
        );
        // Doubling a variable without printing it is charged too.
        assert_budget_error(
            "{{ $s := \"xxxxxxxxxxxxxxxx\" }}{{ range until 40 }}{{ $s = cat $s $s }}{{ end }}",
            RenderBudget::DEFAULT,
            "bytes of output",
        );
    }

    #[test]
    fn include_fan_out_hits_the_budget() {
        let text = "{{ define \"a\" }}xxxxxxxx{{ end }}\
{{ define \"b\" }}{{ include \"a\" . }}{{ include \"a\" . }}{{ include \"a\" . }}{{ include \"a\" . }}{{ end }}\
{{ define \"c\" }}{{ include \"b\" . }}{{ include \"b\" . }}{{ include \"b\" . }}{{ include \"b\" . }}{{ end }}\
{{ define \"d\" }}{{ include \"c\" . }}{{ include \"c\" . }}{{ include \"c\" . }}{{ include \"c\" . }}{{ end }}\
{{ define \"e\" }}{{ include \"d\" . }}{{ include \"d\" . }}{{ include \"d\" . }}{{ include \"d\" . }}{{ end }}\
{{ define \"f\" }}{{ include \"e\" . }}{{ include \"e\" . }}{{ include \"e\" . }}{{ include \"e\" . }}{{ end }}\
{{ define \"g\" }}{{ include \"f\" . }}{{ include \"f\" . }}{{ include \"f\" . }}{{ include \"f\" . }}{{ end }}\
{{ define \"h\" }}{{ include \"g\" . }}{{ include \"g\" . }}{{ include \"g\" . }}{{ include \"g\" . }}{{ end }}\
{{ define \"i\" }}{{ include \"h\" . }}{{ include \"h\" . }}{{ include \"h\" . }}{{ include \"h\" . }}{{ end }}\
{{ define \"j\" }}{{ include \"i\" . }}{{ include \"i\" . }}{{ include \"i\" . }}{{ include \"i\" . }}{{ end }}\
{{ define \"k\" }}{{ include \"j\" . }}{{ include \"j\" . }}{{ include \"j\" . }}{{ include \"j\" . }}{{ end }}\
{{ define \"l\" }}{{ include \"k\" . }}{{ include \"k\" . }}{{ include \"k\" . }}{{ include \"k\" . }}{{ end }}\
{{ define \"m\" }}{{ include \"l\" . }}{{ include \"l\" . }}{{ include \"l\" . }}{{ include \"l\" . }}{{ end }}\
{{ include \"m\" . | len }}";
        // A tenth of the default steps and no time limit to speak of: the fan-out must end on
        // the step count, however loaded the machine is (with the default budget the 60 s
        // limit sometimes came first on a loaded 2-core machine).
        let budget = RenderBudget {
            max_steps: 2_000_000,
            time_limit: std::time::Duration::from_secs(600),
            ..RenderBudget::DEFAULT
        };
        assert_budget_error(text, budget, "more than 2000000 steps");
    }

    /// Files are parsed on two threads in any order; the error is still the first failing
    /// file in Helm's parse order (deeper paths first, then reverse lexical order).
    #[test]
    fn the_first_parse_error_in_helms_order_is_reported() {
        let padding = "plain text that makes the set worth a second parser\n".repeat(400);
        let file = |name: &str, text: String| TemplateFile {
            name: name.to_string(),
            text,
            dot: Value::map(Vec::new()),
        };
        for _ in 0..20 {
            let files = vec![
                file("c/templates/a.yaml", format!("{padding}{{{{ if }}}}")),
                file("c/templates/b.yaml", format!("{padding}{{{{ end }}}}")),
                file("c/templates/c.yaml", padding.clone()),
                file("c/templates/d.yaml", padding.clone()),
                file("c/charts/s/templates/x.yaml", padding.clone()),
            ];
            let err = render(files, &RenderOptions::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with("parse error at (c/templates/b.yaml:401)"),
                "{err}"
            );
        }
    }

    /// A bug that panics while the values are prepared must end the render (the panic goes
    /// on to the caller), not leave it waiting for data that never comes. 8 files of 32 KB
    /// render on the calling thread, 40 on the threaded path (a renderer on another CPU).
    #[test]
    fn a_panic_while_preparing_does_not_hang_the_render() {
        for files in [8, 40] {
            a_panic_while_preparing_does_not_hang_a_render_of(files);
        }
    }

    fn a_panic_while_preparing_does_not_hang_a_render_of(files: usize) {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let sources = (0..files)
                .map(|i| TemplateSource {
                    name: format!("c/templates/t{i}.yaml"),
                    text: "{{ .Values.x }}\n".repeat(2000),
                })
                .collect();
            let outcome = std::panic::catch_unwind(|| {
                render_with_data(
                    sources,
                    &RenderOptions::default(),
                    || -> Result<(BTreeMap<String, Value>, ()), String> {
                        panic!("bug in prepare")
                    },
                    |_, _| {},
                )
            });
            let _ = done.send(outcome.is_err());
        });
        match finished.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(panicked) => assert!(panicked, "the panic reaches the caller"),
            Err(_) => panic!("the render hung after a panic in prepare"),
        }
    }

    /// Charts with CRDs kept as templates (over 512 KiB of sources) take the threaded path:
    /// the same outputs, the values from `prepare`, the first execution error in Helm's order,
    /// and a `prepare` error instead of any other.
    #[test]
    fn the_threaded_path_renders_like_the_calling_thread() {
        let sources = |broken: Option<usize>| -> Vec<TemplateSource> {
            (0..40)
                .map(|i| TemplateSource {
                    name: format!("c/templates/t{i:02}.yaml"),
                    text: if Some(i) == broken {
                        "{{ fail \"broken\" }}".to_string()
                    } else {
                        format!(
                            "{}{{{{ .Values.n }}}}-{i}",
                            "# padding line of a large CRD\n".repeat(1000)
                        )
                    },
                })
                .collect()
        };
        assert!(ParseWork::new(sources(None)).worth_threads_of_its_own());
        let prepare = || -> Result<(BTreeMap<String, Value>, &str), String> {
            let dot = Value::map([(
                "Values".to_string(),
                Value::map([("n".to_string(), Value::Int(7))]),
            )]);
            let dots = (0..40)
                .map(|i| (format!("c/templates/t{i:02}.yaml"), dot.clone()))
                .collect();
            Ok((dots, "prepared"))
        };
        let mut seen = 0;
        let (outputs, prepared) =
            render_with_data(sources(None), &RenderOptions::default(), prepare, |_, _| {
                seen += 1
            })
            .expect("prepare succeeds")
            .expect("the render succeeds");
        assert_eq!(prepared, "prepared");
        assert_eq!(seen, 40);
        assert_eq!(outputs.len(), 40);
        for (i, (name, output)) in outputs.iter().enumerate() {
            assert_eq!(name, &format!("c/templates/t{i:02}.yaml"));
            assert!(output.ends_with(&format!("\n7-{i}")), "{name}: {output:?}");
        }

        let failed = render_with_data(
            sources(Some(17)),
            &RenderOptions::default(),
            prepare,
            |_, _| {},
        )
        .expect("prepare succeeds")
        .map(|_| ())
        .map_err(|err| err.to_string());
        assert!(
            matches!(&failed, Err(message) if message.contains("c/templates/t17.yaml") && message.contains("broken")),
            "{failed:?}"
        );

        let refused = render_with_data(
            sources(Some(3)),
            &RenderOptions::default(),
            || -> Result<(BTreeMap<String, Value>, ()), String> { Err("bad values".to_string()) },
            |_, _| {},
        );
        assert!(matches!(refused, Err(message) if message == "bad values"));
    }

    #[test]
    fn the_time_limit_stops_a_slow_render() {
        let quick = RenderBudget {
            time_limit: std::time::Duration::from_millis(200),
            ..RenderBudget::DEFAULT
        };
        assert_budget_error(
            "{{ range until 100000 }}{{ range until 1000 }}{{ end }}{{ end }}",
            quick,
            "still running after 0.2 seconds",
        );
    }

    #[test]
    fn ordinary_templates_are_unaffected() {
        assert_eq!(
            render_one("{{ range until 3 }}{{ . }}{{ end }}", RenderBudget::DEFAULT).as_deref(),
            Ok("012")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work_of_sizes(sizes: &[usize]) -> ParseWork {
        ParseWork::new(
            sizes
                .iter()
                .enumerate()
                .map(|(index, &size)| TemplateSource {
                    name: format!("t{index}"),
                    text: "x".repeat(size),
                })
                .collect(),
        )
    }

    #[test]
    fn the_two_ends_take_the_largest_and_the_smallest_files_each_once() {
        let work = work_of_sizes(&[30, 500, 10, 200, 40]);
        let claim = |end| {
            work.shared
                .claim(end)
                .map(|position| work.by_size[position])
        };
        assert_eq!(claim(LARGEST), Some(1));
        assert_eq!(claim(SMALLEST), Some(2));
        assert_eq!(claim(SMALLEST), Some(0));
        assert_eq!(claim(LARGEST), Some(3));
        assert_eq!(claim(LARGEST), Some(4));
        assert_eq!(claim(SMALLEST), None);
        assert_eq!(claim(LARGEST), None);
    }

    #[test]
    fn helpers_at_both_ends_parse_every_file() {
        let work = Arc::new(work_of_sizes(&[100, 3000, 5, 700, 64, 9000, 1]));
        let parser = Arc::new(FileParser::new(function_registry(false), true));
        let (helper_work, helper_parser) = (work.clone(), parser.clone());
        let helper = std::thread::spawn(move || helper_work.help(&helper_parser, SMALLEST));
        work.help(&parser, LARGEST);
        let parsed = work.wait_until_parsed();
        helper.join().expect("the helper ends");
        assert_eq!(parsed.len(), 7);
        for (slot, source) in parsed.iter().zip(&work.sources) {
            assert!(
                matches!(slot, Some(Ok(_))),
                "{} was not parsed",
                source.name
            );
        }
    }
}

/// The helper's speculative outputs (templates from the last one back) never change what a
/// render gives: Helm's order decides what each template sees and which error is reported.
#[cfg(test)]
mod speculation_tests {
    use super::*;

    thread_local! {
        /// Outputs this thread's renders took from their helper.
        pub(super) static OUTPUTS_FROM_HELPER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Twelve files of ~10 KB: a helper parses and then executes from the last template back.
    fn files_with(special: &[(usize, &str)], values: &Value) -> Vec<TemplateFile> {
        let padding = "# padding that makes the set worth a second parser\n".repeat(200);
        (0..12)
            .map(|i| {
                let body = special
                    .iter()
                    .find(|(index, _)| *index == i)
                    .map(|(_, body)| body.to_string())
                    .unwrap_or_else(|| "{{ .Values.x }}".to_string());
                TemplateFile {
                    name: format!("c/templates/t{i:02}.yaml"),
                    text: format!("{padding}{body}"),
                    dot: Value::map([("Values".to_string(), values.clone())]),
                }
            })
            .collect()
    }

    /// Renders 30 times; template `tNN` must end with `expected(NN)` each time.
    fn assert_outputs_end_with(bodies: &[(usize, &str)], expected: impl Fn(usize) -> &'static str) {
        for _ in 0..30 {
            let outputs = render(
                files_with(bodies, &original_values()),
                &RenderOptions::default(),
            )
            .expect("renders");
            for (i, (name, output)) in outputs.iter().enumerate() {
                assert!(output.ends_with(expected(i)), "{name}: {output:?}");
            }
        }
    }

    fn assert_render_fails_with(special: &[(usize, &str)], words: &[&str]) {
        let result = render(
            files_with(special, &original_values()),
            &RenderOptions::default(),
        )
        .map(|_| ())
        .map_err(|err| err.to_string());
        assert!(
            matches!(&result, Err(message) if words.iter().all(|word| message.contains(word))),
            "{result:?}"
        );
    }

    fn original_values() -> Value {
        Value::map([("x".to_string(), Value::from("original"))])
    }

    #[test]
    fn a_change_to_shared_values_reaches_every_later_template() {
        // Helm executes t11 first and t00 last; t03 changes the values all templates share,
        // whichever thread comes to it first. Each template takes a while, so that the
        // helper has executed some of the later ones by then.
        let slow = "{{ range until 3000 }}{{ end }}";
        let change =
            format!("{slow}{{{{ $_ := set .Values \"x\" \"changed\" }}}}{{{{ .Values.x }}}}");
        let plain = format!("{slow}{{{{ .Values.x }}}}");
        let bodies: Vec<(usize, &str)> = (0..12)
            .map(|i| {
                (
                    i,
                    if i == 3 {
                        change.as_str()
                    } else {
                        plain.as_str()
                    },
                )
            })
            .collect();
        assert_outputs_end_with(&bodies, |i| if i <= 3 { "changed" } else { "original" });
    }

    /// Templates that take a while each, so that the helper executes some of them.
    #[test]
    fn a_change_to_a_map_of_the_templates_own_leaves_the_others_alone() {
        let slow = "{{ range until 3000 }}{{ end }}";
        let local = format!(
            "{slow}{{{{ $d := dict \"x\" \"local\" }}}}{{{{ $_ := set $d \"x\" \"changed\" }}}}{{{{ $d.x }}}}"
        );
        let plain = format!("{slow}{{{{ .Values.x }}}}");
        let bodies: Vec<(usize, &str)> = (0..12)
            .map(|i| {
                (
                    i,
                    if i == 1 || i == 8 {
                        local.as_str()
                    } else {
                        plain.as_str()
                    },
                )
            })
            .collect();
        OUTPUTS_FROM_HELPER.with(|count| count.set(0));
        assert_outputs_end_with(&bodies, |i| {
            if i == 1 || i == 8 {
                "changed"
            } else {
                "original"
            }
        });
        // A change to a template's own map does not stop the helper: its outputs were used.
        assert!(OUTPUTS_FROM_HELPER.with(|count| count.get()) > 0);
    }

    /// Key generation is left to the render: a speculative template that asks for a key ends
    /// the speculation, and the key comes from the execution whose output counts.
    #[test]
    fn templates_that_make_keys_render_whoever_reaches_them_first() {
        let key = "{{ genPrivateKey \"ecdsa\" }}";
        for _ in 0..10 {
            let outputs = render(
                files_with(&[(0, key), (6, key)], &original_values()),
                &RenderOptions::default(),
            )
            .expect("renders");
            for (i, (name, output)) in outputs.iter().enumerate() {
                if i == 0 || i == 6 {
                    assert!(
                        output.trim_end().ends_with("-----END EC PRIVATE KEY-----"),
                        "{name}: {output:?}"
                    );
                } else {
                    assert!(output.ends_with("original"), "{name}: {output:?}");
                }
            }
        }
    }

    /// Helm gives all templates of a chart one `.`: what one sets on it, the chart's later
    /// templates see (with their own `Template`); another chart's templates do not.
    #[test]
    fn a_key_set_on_dot_reaches_the_later_templates_of_its_chart_only() {
        let values = original_values();
        let file = |chart: &str, name: &str, body: &str| {
            let base_path = format!("{chart}/templates");
            let full = format!("{base_path}/{name}");
            TemplateFile {
                name: full.clone(),
                text: body.to_string(),
                dot: Value::map([
                    ("Values".to_string(), values.clone()),
                    (
                        "Template".to_string(),
                        Value::map([
                            ("Name".to_string(), Value::from(full)),
                            ("BasePath".to_string(), Value::from(base_path)),
                        ]),
                    ),
                ]),
            }
        };
        let reads = "{{ .mode }}|{{ .Template.Name }}";
        // Helm's order (reverse lexical at one depth): z.yaml, m.yaml, a.yaml, then chart b's.
        let files = vec![
            file(
                "c",
                "z.yaml",
                "{{ $_ := set . \"mode\" \"ha\" }}{{ .mode }}",
            ),
            file("c", "m.yaml", reads),
            file("c", "a.yaml", reads),
            file("b", "x.yaml", reads),
        ];
        let outputs = render(files, &RenderOptions::default()).expect("renders");
        let output = |name: &str| outputs.get(name).map(String::as_str);
        assert_eq!(output("c/templates/z.yaml"), Some("ha"));
        assert_eq!(output("c/templates/m.yaml"), Some("ha|c/templates/m.yaml"));
        assert_eq!(output("c/templates/a.yaml"), Some("ha|c/templates/a.yaml"));
        assert_eq!(output("b/templates/x.yaml"), Some("|b/templates/x.yaml"));
    }

    #[test]
    fn the_first_failing_template_in_helms_order_is_the_error() {
        for _ in 0..30 {
            // t00 is the helper's first template and Helm's last.
            assert_render_fails_with(
                &[(2, "{{ fail \"first\" }}"), (0, "{{ fail \"second\" }}")],
                &["first", "t02.yaml"],
            );
            assert_render_fails_with(&[(0, "{{ fail \"second\" }}")], &["second", "t00.yaml"]);
        }
    }
}
