//! Go text/template's executor: walks parse trees against Go-typed values with Go's rules for
//! fields, maps, methods, pipelines, variables, truth, range and the built-in functions, plus
//! Helm's context functions (include, tpl, required, fail, lookup).

use std::cell::RefCell;
use std::sync::Arc;

use super::functions::{FastMap, FuncRegistry};
use super::parse::{
    self, Arg, Branch, Command, Names, Node, Pipe, Span, TemplateCall, Tree, TreeSet,
};
use super::print::{self, type_name};
use super::value::Value;

/// Helm marks `required`/`fail` messages so its engine can print them as
/// `execution error at (LOCATION): MESSAGE`.
pub const WARN_START: &str = "HELM_ERR_START";
pub const WARN_END: &str = "HELM_ERR_END";

/// Helm's limit on nested `include`s of one name.
const INCLUDE_RECURSION_MAX: usize = 1000;
/// Nested `template`/`include` calls keelson follows before failing (Go allows 100000, but
/// real charts stay far below).
const MAX_TEMPLATE_DEPTH: usize = 3000;
/// Native stack an execution may use for nested templates unless the caller says more
/// (`ExecOptions::stack_budget`): safe on any thread's default stack.
const DEFAULT_STACK_BUDGET: usize = 1024 * 1024;

/// Sprig functions that change their first argument in place in Go (maps are references):
/// keelson's versions return the changed copy and the executor makes every holder see it.
const MUTATING_FUNCS: &[&str] = &[
    "set",
    "unset",
    "merge",
    "mustMerge",
    "mergeOverwrite",
    "mustMergeOverwrite",
];

/// Functions that only store their arguments: maps changed later are found when the stored
/// value is read, so the arguments need not be resolved deeply first (which would walk `$`).
const STORING_FUNCS: &[&str] = &["dict", "list", "tuple", "set"];

/// How deep [`Session::deep`] follows nested values before giving up (a map that contains
/// itself, which Go would print forever).
const MAX_RESOLVE_DEPTH: usize = 256;

/// Names Go's text/template defines itself.
const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "urlquery", "js", "html", "call",
];

/// Helm's functions that need the template set or the engine's options.
const CONTEXT_FUNCS: &[&str] = &["include", "tpl", "required", "fail", "lookup"];

/// A failed execution with Go's full error text
/// (`template: NAME:LINE:COL: executing "NAME" at <CONTEXT>: MESSAGE`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    pub message: String,
}

/// Answers `lookup` (a cluster client, or nothing offline).
pub type LookupFn = dyn Fn(&str, &str, &str, &str) -> Result<Value, String> + Send + Sync;

/// Switches of one execution.
#[derive(Clone, Default)]
pub struct ExecOptions {
    /// `missingkey=error` instead of `missingkey=zero`.
    pub strict: bool,
    /// `required` returns "" instead of failing.
    pub lint_mode: bool,
    /// Go 1.24+ `range` over an integer.
    pub range_over_int: bool,
    /// Go 1.25's comparison errors, naming both types (`incompatible types for comparison:
    /// int and string`, helm 4); Go 1.23's say only `incompatible types for comparison`.
    pub typed_comparison_errors: bool,
    /// Go 1.23's line numbers in parse errors (helm 3), which leave out the newlines inside
    /// `{{/* ... */}}` comments; for templates `tpl` parses while executing.
    pub go123_comment_lines: bool,
    pub lookup: Option<Arc<LookupFn>>,
    /// Bytes of native stack nested templates may use; `None` is a budget that fits any
    /// thread (1 MiB). The engine renders on a thread with a large stack and raises it.
    pub stack_budget: Option<usize>,
    /// Steps, bytes and time one render may use (shared by every template of a [`Session`]).
    pub budget: RenderBudget,
}

/// The execution budget of one render. Go's text/template has none, so a chart with nested
/// `range`s over large counts or an exponential fan-out of `include`s would run until memory
/// or patience ran out; keelson stops it with an error naming the template, and only that
/// release's render fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderBudget {
    /// Template nodes evaluated and `range` iterations run.
    pub max_steps: u64,
    /// Bytes of text produced: template text, printed values and assigned strings, counted
    /// each time they are produced (an `include` result counts again where it is used).
    pub max_output_bytes: u64,
    /// Wall-clock time from the first step of the render.
    pub time_limit: std::time::Duration,
}

impl RenderBudget {
    /// 20 million steps, 256 MiB of text, 60 seconds: two orders of magnitude above the largest
    /// chart of the shared corpus, far below what exhausts a 2-core machine.
    pub const DEFAULT: RenderBudget = RenderBudget {
        max_steps: 20_000_000,
        max_output_bytes: 256 * 1024 * 1024,
        time_limit: std::time::Duration::from_secs(60),
    };
}

impl Default for RenderBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A set of parsed templates that can call each other, with the functions they may use.
pub struct TemplateSet {
    trees: TreeSet,
    funcs: Arc<FuncRegistry>,
    /// The root name Go reports in `no template "x" associated with template "gotpl"`.
    root_name: String,
    /// Go 1.23's line numbers in parse errors (see [`parse::parse`]).
    go123_comment_lines: bool,
}

impl TemplateSet {
    pub fn new(root_name: &str, funcs: Arc<FuncRegistry>) -> Self {
        Self {
            trees: TreeSet::default(),
            funcs,
            root_name: root_name.to_string(),
            go123_comment_lines: false,
        }
    }

    /// Numbers lines in parse errors as Go 1.23 does (helm 3): newlines inside comments are
    /// not counted.
    pub fn use_go123_comment_lines(&mut self, go123: bool) {
        self.go123_comment_lines = go123;
    }

    /// Whether a template may call `name` (Go checks this while parsing).
    pub fn has_function(&self, name: &str) -> bool {
        has_function(&self.funcs, name)
    }

    /// Parses one file under `name` and adds its templates to the set with Go's rules: a later
    /// non-empty definition replaces an earlier one; an empty one never replaces anything.
    pub fn parse(&mut self, name: &str, text: &str) -> Result<(), parse::ParseError> {
        let parsed = self.file_parser().parse(name, text)?;
        self.add_parsed(parsed);
        Ok(())
    }

    /// A parser for this set's files that can run on other threads: files do not depend on
    /// one another until they are executed, so they may be parsed in any order and added
    /// with [`TemplateSet::add_parsed`] in the set's order.
    pub fn file_parser(&self) -> FileParser {
        FileParser::new(self.funcs.clone(), self.go123_comment_lines)
    }

    /// Adds a file parsed by [`FileParser::parse`], with the rules of [`TemplateSet::parse`].
    pub fn add_parsed(&mut self, parsed: ParsedFile) {
        add_trees(&mut self.trees, parsed.trees);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// Executes one template of the set with `dot` as data, returning its output.
    pub fn execute(
        &self,
        name: &str,
        dot: Value,
        options: &ExecOptions,
    ) -> Result<String, ExecError> {
        self.execute_in(name, dot, options, &Session::default())
    }

    /// Executes one template within a render-wide [`Session`], so that maps changed by one
    /// template (`set .Values.x ...`) are seen changed by the next, as in Helm.
    pub fn execute_in(
        &self,
        name: &str,
        dot: Value,
        options: &ExecOptions,
        session: &Session,
    ) -> Result<String, ExecError> {
        let context = Context {
            funcs: &self.funcs,
            options,
            root_name: &self.root_name,
            session,
            stack_base: stack_marker(),
        };
        let scope = Scope {
            trees: &self.trees,
            parent: None,
        };
        let Some(tree) = scope.lookup(name) else {
            return Err(ExecError {
                message: format!(
                    "template: no template {} associated with template {}",
                    print::go_quote(name),
                    print::go_quote(&self.root_name)
                ),
            });
        };
        let mut out = String::new();
        let mut state = State {
            context: &context,
            scope: &scope,
            tree: &tree,
            vars: vec![("$", dot.clone())],
            depth: 0,
        };
        state.walk_list(&mut out, &dot, false, &tree.root)?;
        Ok(out)
    }
}

fn has_function(funcs: &FuncRegistry, name: &str) -> bool {
    funcs.contains(name) || BUILTINS.contains(&name) || CONTEXT_FUNCS.contains(&name)
}

fn add_trees(set: &mut TreeSet, trees: Vec<Tree>) {
    for tree in trees {
        if set.contains_key(&tree.name) && parse::is_empty_tree(&tree.root, &tree.text) {
            continue;
        }
        set.insert(tree.name.clone(), Arc::new(tree));
    }
}

/// Parses template files apart from any set (see [`TemplateSet::file_parser`]).
#[derive(Clone)]
pub struct FileParser {
    funcs: Arc<FuncRegistry>,
    go123_comment_lines: bool,
}

/// One file's templates, parsed and not yet added to a set.
pub struct ParsedFile {
    trees: Vec<Tree>,
}

impl FileParser {
    /// A parser checking calls against `funcs`; `go123_comment_lines` as
    /// [`TemplateSet::use_go123_comment_lines`].
    pub fn new(funcs: Arc<FuncRegistry>, go123_comment_lines: bool) -> Self {
        Self {
            funcs,
            go123_comment_lines,
        }
    }

    pub fn parse(&self, name: &str, text: &str) -> Result<ParsedFile, parse::ParseError> {
        let trees = parse::parse(
            name,
            text,
            &|f| has_function(&self.funcs, f),
            self.go123_comment_lines,
        )?;
        Ok(ParsedFile { trees })
    }
}

/// Template lookup through `tpl`'s clones: the innermost set first.
struct Scope<'a> {
    trees: &'a TreeSet,
    parent: Option<&'a Scope<'a>>,
}

impl Scope<'_> {
    fn lookup(&self, name: &str) -> Option<Arc<Tree>> {
        match self.trees.get(name) {
            Some(tree) => Some(tree.clone()),
            None => self.parent.and_then(|p| p.lookup(name)),
        }
    }
}

/// What one render shares across all its template executions: Helm's `include` counters and
/// the maps templates changed in place.
#[derive(Default)]
pub struct Session {
    included: RefCell<FastMap<String, usize>>,
    mutations: RefCell<Mutations>,
    /// What the render has used of its [`RenderBudget`].
    spent: RefCell<Spent>,
}

#[derive(Default)]
struct Spent {
    steps: u64,
    output_bytes: u64,
    started: Option<std::time::Instant>,
}

/// Go maps are references: after `set $d "k" v` every holder of that map sees `k`. Values
/// here are immutable and shared (`Arc`), so a changed map is recorded as a replacement of
/// the original (kept alive, so its address stays unique) and looked up wherever a map is read.
///
/// Functions and printing need values with every replacement applied inside them
/// ([`Session::deep`]); those resolutions are cached per map or list and stay valid until a
/// map found inside them changes. Only the resolutions holding a changed map are dropped (found
/// through `holders`), so after `set $d "k" v` the next resolution of `$` rebuilds just the maps
/// on the path to `$d` and shares every other resolved subtree. (Clearing every resolution on
/// each change made the bitnami charts, which call `set` and `merge` in their common helpers,
/// re-walk all of `.Values` after each such call.)
#[derive(Default)]
struct Mutations {
    /// Address of a replaced map → (the original, its current replacement).
    replaced: FastMap<usize, (Value, Value)>,
    /// Address of a map or list → its resolution, the value with every nested replacement
    /// applied (`None`: the value itself).
    resolved: FastMap<usize, Resolution>,
    /// Address of a map or list a resolution walked → addresses of the values (keys of
    /// `resolved`) it was found in directly. An address may be listed more than once or no
    /// longer be cached: that only drops a resolution that was still valid.
    holders: FastMap<usize, Vec<usize>>,
    /// One bit per address bucket of `replaced`'s keys: most values read were never
    /// replaced, and testing a bit is much cheaper than the lookup done on every field access.
    replaced_filter: ReplacedFilter,
}

const REPLACED_FILTER_WORDS: usize = 64;

struct ReplacedFilter([u64; REPLACED_FILTER_WORDS]);

impl Default for ReplacedFilter {
    fn default() -> Self {
        ReplacedFilter([0; REPLACED_FILTER_WORDS])
    }
}

impl ReplacedFilter {
    /// The word and bit of an address; allocations are 16-byte aligned, so the low bits are
    /// left out.
    fn slot(address: usize) -> (usize, u64) {
        let bucket = (address >> 4) % (REPLACED_FILTER_WORDS * 64);
        (bucket / 64, 1 << (bucket % 64))
    }

    fn insert(&mut self, address: usize) {
        let (word, bit) = Self::slot(address);
        self.0[word] |= bit;
    }

    fn may_contain(&self, address: usize) -> bool {
        let (word, bit) = Self::slot(address);
        self.0[word] & bit != 0
    }
}

/// A cached [`Session::deep`] result. The resolved value is held weakly: a `Weak` keeps the
/// allocation (so no other map gets its address while the entry exists) but not the contents,
/// so a loop that `append`s to a list does not keep every intermediate list alive. An entry
/// found by a live value's address is therefore that value's.
struct Resolution {
    _address_kept: Shared,
    resolved: Option<Value>,
}

/// A weak reference to a map's or list's allocation.
enum Shared {
    Map {
        _kept: std::sync::Weak<std::collections::BTreeMap<String, Value>>,
    },
    List {
        _kept: std::sync::Weak<Vec<Value>>,
    },
}

impl Shared {
    fn of(value: &Value) -> Option<Shared> {
        match value {
            Value::Map(map) => Some(Shared::Map {
                _kept: Arc::downgrade(map),
            }),
            Value::List(list) => Some(Shared::List {
                _kept: Arc::downgrade(list),
            }),
            _ => None,
        }
    }
}

impl Mutations {
    /// Whether the map or list at `address` may have a replacement (false: surely not).
    fn may_be_replaced(&self, address: usize) -> bool {
        !self.replaced.is_empty() && self.replaced_filter.may_contain(address)
    }

    /// Records that the map or list at `child` was found inside the value at `holder`.
    fn hold(&mut self, child: usize, holder: usize) {
        let holders = self.holders.entry(child).or_default();
        // Values held by very many maps (`$` inside every `dict "context" $`) skip the search:
        // a duplicate costs one extra lookup when the child changes.
        let known = if holders.len() <= 16 {
            holders.contains(&holder)
        } else {
            holders.last() == Some(&holder)
        };
        if !known {
            holders.push(holder);
        }
    }

    /// Drops the resolutions of the value at `address` and of every value it was found in.
    fn invalidate(&mut self, address: usize) {
        let mut pending = vec![address];
        while let Some(address) = pending.pop() {
            self.resolved.remove(&address);
            if let Some(holders) = self.holders.remove(&address) {
                pending.extend(holders);
            }
        }
    }
}

fn shared_address(value: &Value) -> Option<usize> {
    match value {
        Value::Map(map) => Some(Arc::as_ptr(map) as *const u8 as usize),
        Value::List(list) => Some(Arc::as_ptr(list) as *const u8 as usize),
        _ => None,
    }
}

/// The maps and lists reachable from some values (a render's template data), by address: what
/// a template that changes one in place (`set`, `merge`, ...) changes for every other template.
pub struct SharedValues {
    addresses: std::collections::HashSet<
        usize,
        std::hash::BuildHasherDefault<crate::functions::FastHasher>,
    >,
}

impl SharedValues {
    pub fn of<'a>(roots: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut shared = Self {
            addresses: Default::default(),
        };
        let mut pending: Vec<(&Value, usize)> = roots.into_iter().map(|root| (root, 0)).collect();
        while let Some((value, depth)) = pending.pop() {
            // A map found again (`.Values` in every template's data) is walked once.
            let Some(address) = shared_address(value) else {
                continue;
            };
            if depth >= MAX_RESOLVE_DEPTH || !shared.addresses.insert(address) {
                continue;
            }
            match value {
                Value::Map(map) => pending.extend(map.values().map(|v| (v, depth + 1))),
                Value::List(list) => pending.extend(list.iter().map(|v| (v, depth + 1))),
                _ => {}
            }
        }
        shared
    }
}

impl Session {
    /// The current version of a map or list that templates of this session may have changed
    /// in place (`set`, `merge`); anything else as it is.
    pub fn current(&self, value: &Value) -> Value {
        self.shallow(value.clone())
    }

    /// Whether a template executed in this session changed a map in place.
    pub fn changed_any_map(&self) -> bool {
        !self.mutations.borrow().replaced.is_empty()
    }

    /// Whether a template executed in this session changed in place a map of `shared`: the
    /// templates after it would see the change (Go maps are references).
    pub fn changed_any_of(&self, shared: &SharedValues) -> bool {
        self.mutations
            .borrow()
            .replaced
            .keys()
            .any(|address| shared.addresses.contains(address))
    }

    /// The current version of a map someone may have changed in place.
    fn shallow(&self, value: Value) -> Value {
        let Some(mut address) = shared_address(&value) else {
            return value;
        };
        let mutations = self.mutations.borrow();
        if !mutations.may_be_replaced(address) {
            return value;
        }
        let mut current = value;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let Some((_, replacement)) = mutations.replaced.get(&address) else {
                break;
            };
            current = replacement.clone();
            let Some(next) = shared_address(&current) else {
                break;
            };
            address = next;
        }
        current
    }

    /// The value with every changed map inside it replaced by its current version: what
    /// functions and printing must see.
    fn deep(&self, value: Value) -> Value {
        if shared_address(&value).is_none() || self.mutations.borrow().replaced.is_empty() {
            return value;
        }
        self.deep_current(self.shallow(value), 0)
    }

    /// [`Session::deep`] of a value that is its own current version.
    fn deep_current(&self, value: Value, depth: usize) -> Value {
        let Some(address) = shared_address(&value) else {
            return value;
        };
        if depth >= MAX_RESOLVE_DEPTH {
            return value;
        }
        if let Some(cached) = self.mutations.borrow().resolved.get(&address) {
            return cached.resolved.clone().unwrap_or(value);
        }
        let resolved = match &value {
            Value::Map(map) => {
                let mut changes: Vec<(&String, Value)> = Vec::new();
                for (key, item) in map.iter() {
                    if let Some(new) = self.deep_child(item, address, depth) {
                        changes.push((key, new));
                    }
                }
                if changes.is_empty() {
                    value.clone()
                } else {
                    let mut entries = (**map).clone();
                    for (key, new) in changes {
                        if let Some(slot) = entries.get_mut(key) {
                            *slot = new;
                        }
                    }
                    let resolved = Value::Map(Arc::new(entries));
                    crate::value::keep_map_type(map, &resolved);
                    resolved
                }
            }
            Value::List(items) => {
                let mut changes: Vec<(usize, Value)> = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    if let Some(new) = self.deep_child(item, address, depth) {
                        changes.push((index, new));
                    }
                }
                if changes.is_empty() {
                    value.clone()
                } else {
                    let mut new_items = (**items).clone();
                    for (index, new) in changes {
                        if let Some(slot) = new_items.get_mut(index) {
                            *slot = new;
                        }
                    }
                    Value::List(Arc::new(new_items))
                }
            }
            _ => value.clone(),
        };
        if let Some(shared) = Shared::of(&value) {
            let resolution = Resolution {
                _address_kept: shared,
                resolved: (!same_value(&value, &resolved)).then(|| resolved.clone()),
            };
            self.mutations
                .borrow_mut()
                .resolved
                .insert(address, resolution);
        }
        resolved
    }

    /// The resolution of `item`, found in the value at `holder`, when it differs from `item`.
    fn deep_child(&self, item: &Value, holder: usize, depth: usize) -> Option<Value> {
        shared_address(item)?;
        let current = self.shallow(item.clone());
        if let Some(child) = shared_address(&current) {
            self.mutations.borrow_mut().hold(child, holder);
        }
        let new = self.deep_current(current, depth + 1);
        (!same_value(item, &new)).then_some(new)
    }

    /// Records that a function changed `original` in place, its new content being `result`;
    /// maps nested in both that differ were changed in place too (Go's merge recurses into
    /// the destination's own maps).
    fn record(&self, original: &Value, result: &Value) {
        self.record_at(original, result, 0);
    }

    fn record_at(&self, original: &Value, result: &Value, depth: usize) {
        if depth >= MAX_RESOLVE_DEPTH {
            return;
        }
        let original = self.shallow(original.clone());
        let (Value::Map(before), Value::Map(after)) = (&original, result) else {
            return;
        };
        if Arc::ptr_eq(before, after) {
            return;
        }
        for (key, old) in before.iter() {
            let Some(new) = after.get(key) else {
                continue;
            };
            if matches!((old, new), (Value::Map(_), Value::Map(_))) && !same_value(old, new) {
                self.record_at(old, new, depth + 1);
            }
        }
        // `set . "k" v` leaves `.` a chartutil.Values.
        crate::value::keep_map_type(before, result);
        if let Some(address) = shared_address(&original) {
            let mut mutations = self.mutations.borrow_mut();
            mutations
                .replaced
                .insert(address, (original.clone(), result.clone()));
            mutations.replaced_filter.insert(address);
            mutations.invalidate(address);
        }
    }
}

/// Whether two values are the same shared map or list (or equal scalars, which never change).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => Arc::ptr_eq(x, y),
        (Value::List(x), Value::List(y)) => Arc::ptr_eq(x, y),
        (Value::Map(_) | Value::List(_), _) | (_, Value::Map(_) | Value::List(_)) => false,
        _ => true,
    }
}

struct Context<'a> {
    funcs: &'a FuncRegistry,
    options: &'a ExecOptions,
    root_name: &'a str,
    session: &'a Session,
    /// Address of a local at the start of the execution: the stack grows away from it.
    stack_base: usize,
}

/// An address on the current stack, to measure how deep the recursion went.
fn stack_marker() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// Where an error happened: the node Go last pointed at; its `String()` is only built when
/// an error is reported.
enum At<'n> {
    Arg(&'n Arg),
    Command(&'n Command),
    Pipe(&'n Pipe),
    Text(usize, String),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Arg(arg) => arg.pos(),
            At::Command(cmd) => cmd.pos(),
            At::Pipe(pipe) => pipe.pos(),
            At::Text(pos, _) => *pos,
        }
    }

    /// Go's `String()` of the node; `text` is its tree's.
    fn context(&self, text: &str) -> String {
        match self {
            At::Arg(arg) => arg.display(text).to_string(),
            At::Command(cmd) => cmd.display(text).to_string(),
            At::Pipe(pipe) => pipe.display(text).to_string(),
            At::Text(_, text) => text.clone(),
        }
    }
}

struct State<'a, 'c> {
    context: &'c Context<'c>,
    scope: &'c Scope<'c>,
    tree: &'a Tree,
    /// Variables in scope, innermost last; `$` needs no allocation.
    vars: Vec<(&'a str, Value)>,
    depth: usize,
}

/// A value plus whether Go sees it through an `interface{}` (a map element or list item),
/// which decides between Go's "nil pointer evaluating interface {}.x" and a silent zero.
#[derive(Clone)]
struct Typed {
    value: Value,
    boxed: bool,
}

impl Typed {
    fn plain(value: Value) -> Self {
        Typed {
            value,
            boxed: false,
        }
    }

    fn go_type(&self) -> String {
        if self.boxed {
            "interface {}".to_string()
        } else {
            type_name(&self.value)
        }
    }
}

type Res<T> = Result<T, ExecError>;

/// Which arguments of a call Go sees through an `interface{}` (see [`Typed`]), without
/// allocating for the usual handful of arguments.
#[derive(Default)]
struct BoxedArgs {
    first: u64,
    rest: Vec<bool>,
}

impl BoxedArgs {
    fn set(&mut self, index: usize, boxed: bool) {
        if index < 64 {
            if boxed {
                self.first |= 1 << index;
            }
        } else {
            self.rest.resize(index - 63, false);
            self.rest[index - 64] = boxed;
        }
    }

    fn get(&self, index: usize) -> bool {
        if index < 64 {
            self.first & (1 << index) != 0
        } else {
            self.rest.get(index - 64).copied().unwrap_or(false)
        }
    }
}

/// Helm's named Go map/slice types, for objects that do not say so through
/// [`Object::collection`](super::value::Object::collection).
const GO_COLLECTION_TYPES: &[&str] = &[
    "engine.files",
    "chartutil.VersionSet",
    "common.VersionSet",
    "chartutil.Values",
    "common.Values",
];

/// The map or list a named Go map/slice type holds (what range, len and index see).
fn object_collection(object: &Arc<dyn super::value::Object>) -> Option<Value> {
    let collection = object.collection().or_else(|| {
        GO_COLLECTION_TYPES
            .contains(&object.type_name())
            .then(|| object.to_serializable())
    })?;
    matches!(collection, Value::Map(_) | Value::List(_)).then_some(collection)
}

/// The collection an object value stands for, if it is a named Go map/slice type.
fn as_collection(value: &Value) -> Option<Value> {
    match value {
        Value::Object(object) => object_collection(object),
        _ => None,
    }
}

/// Go's truth: false, 0, nil, empty string/list/map are false.
pub fn is_true(value: &Value) -> bool {
    match value {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Object(_) => true,
    }
}

impl<'a, 'c> State<'a, 'c> {
    /// Whether another nested template would exceed Go's depth limit or the stack budget.
    fn too_deep(&self) -> bool {
        let budget = self
            .context
            .options
            .stack_budget
            .unwrap_or(DEFAULT_STACK_BUDGET);
        self.depth >= MAX_TEMPLATE_DEPTH
            || stack_marker().abs_diff(self.context.stack_base) > budget
    }

    fn error(&self, at: &At<'_>, message: impl std::fmt::Display) -> ExecError {
        ExecError {
            message: format!(
                "template: {}: executing {} at <{}>: {}",
                self.tree.location(at.pos()),
                print::go_quote(&self.tree.name),
                at.context(&self.tree.text),
                message
            ),
        }
    }

    fn at_arg(arg: &Arg) -> At<'_> {
        At::Arg(arg)
    }

    /// The text of a span of the tree being executed.
    fn src(&self, span: Span) -> &'a str {
        let tree: &'a Tree = self.tree;
        tree.source(span)
    }

    /// Go's `String()` of an argument node, for error messages.
    fn shown(&self, arg: &Arg) -> String {
        arg.display(&self.tree.text).to_string()
    }

    /// A comparison builtin's error in the wording of the Go version being matched.
    fn comparison_error(&self, message: String) -> String {
        if !self.context.options.typed_comparison_errors && message.starts_with(INCOMPATIBLE_TYPES)
        {
            INCOMPATIBLE_TYPES.to_string()
        } else {
            message
        }
    }

    /// Counts one step and `bytes` of output against the render's budget.
    fn charge(&self, bytes: usize) -> Res<()> {
        let budget = &self.context.options.budget;
        let mut spent = self.context.session.spent.borrow_mut();
        spent.steps += 1;
        spent.output_bytes = spent.output_bytes.saturating_add(bytes as u64);
        let exceeded = if spent.steps > budget.max_steps {
            Some(format!(
                "more than {} steps (template nodes and range iterations)",
                budget.max_steps
            ))
        } else if spent.output_bytes > budget.max_output_bytes {
            Some(format!(
                "more than {} bytes of output",
                budget.max_output_bytes
            ))
        } else {
            let started = *spent.started.get_or_insert_with(std::time::Instant::now);
            (spent.steps.is_multiple_of(1024) && started.elapsed() > budget.time_limit).then(|| {
                format!(
                    "still running after {} seconds",
                    budget.time_limit.as_secs_f64()
                )
            })
        };
        match exceeded {
            None => Ok(()),
            Some(what) => Err(ExecError {
                message: format!(
                    "template: {}: render budget exceeded: {what}",
                    self.tree.name
                ),
            }),
        }
    }

    fn walk_list(
        &mut self,
        out: &mut String,
        dot: &Value,
        boxed: bool,
        nodes: &[Node],
    ) -> Res<Flow> {
        for node in nodes {
            match self.walk(out, dot, boxed, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, out: &mut String, dot: &Value, boxed: bool, node: &Node) -> Res<Flow> {
        match node {
            Node::Text(span) => {
                let text = self.src(*span);
                self.charge(text.len())?;
                out.push_str(text)
            }
            Node::Action(pipe) => {
                let value = self.eval_pipeline(dot, boxed, pipe)?;
                // Assigned strings count too: doubling a variable is as costly as printing it.
                self.charge(match &value {
                    Value::String(s) => s.len(),
                    _ => 0,
                })?;
                if pipe.decl.is_empty() {
                    let value = self.context.session.deep(value);
                    match &value {
                        Value::Nil => out.push_str("<no value>"),
                        Value::String(s) => out.push_str(s),
                        other => print::write_v(out, other),
                    }
                }
            }
            Node::If(branch) => return self.walk_if_with(out, dot, boxed, branch, false),
            Node::With(branch) => return self.walk_if_with(out, dot, boxed, branch, true),
            Node::Range(branch) => return self.walk_range(out, dot, boxed, branch),
            Node::Template(call) => {
                let TemplateCall { pos, name, pipe } = call.as_ref();
                let at = || {
                    At::Text(
                        *pos as usize,
                        match pipe {
                            Some(p) => format!(
                                "{{{{template {} {}}}}}",
                                print::go_quote(name),
                                p.display(&self.tree.text)
                            ),
                            None => format!("{{{{template {}}}}}", print::go_quote(name)),
                        },
                    )
                };
                let Some(tree) = self.scope.lookup(name) else {
                    return Err(self.error(
                        &at(),
                        format!("template {} not defined", print::go_quote(name)),
                    ));
                };
                if self.too_deep() {
                    return Err(self.error(
                        &at(),
                        format!("exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"),
                    ));
                }
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, boxed, p)?,
                    None => Value::Nil,
                };
                let mut state = State {
                    context: self.context,
                    scope: self.scope,
                    tree: &tree,
                    vars: vec![("$", new_dot.clone())],
                    depth: self.depth + 1,
                };
                state.walk_list(out, &new_dot, false, &tree.root)?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(
        &mut self,
        out: &mut String,
        dot: &Value,
        boxed: bool,
        branch: &Branch,
        is_with: bool,
    ) -> Res<Flow> {
        let mark = self.vars.len();
        let result = (|| {
            let value = self.eval_pipeline(dot, boxed, &branch.pipe)?;
            if is_true(&value) {
                if is_with {
                    self.walk_list(out, &value, false, &branch.list)
                } else {
                    self.walk_list(out, dot, boxed, &branch.list)
                }
            } else if let Some(else_list) = &branch.else_list {
                self.walk_list(out, dot, boxed, else_list)
            } else {
                Ok(Flow::Normal)
            }
        })();
        self.vars.truncate(mark);
        result
    }

    fn walk_range(
        &mut self,
        out: &mut String,
        dot: &Value,
        boxed: bool,
        branch: &Branch,
    ) -> Res<Flow> {
        let mark = self.vars.len();
        let result = self.walk_range_inner(out, dot, boxed, branch);
        self.vars.truncate(mark);
        result.map(|_| Flow::Normal)
    }

    /// Go's `setVar`: false when no variable of that name is in scope.
    fn set_var(&mut self, name: &str, value: Value) -> bool {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = value;
                true
            }
            None => false,
        }
    }

    fn set_top_var(&mut self, n: usize, value: Value) {
        let len = self.vars.len();
        if let Some(slot) = len.checked_sub(n).and_then(|i| self.vars.get_mut(i)) {
            slot.1 = value;
        }
    }

    fn range_iteration(
        &mut self,
        out: &mut String,
        branch: &Branch,
        index: Value,
        elem: Value,
        elem_boxed: bool,
    ) -> Res<Flow> {
        let decl = &branch.pipe.decl;
        if let Some(first) = decl.first().map(|span| self.src(*span)) {
            if branch.pipe.is_assign {
                if decl.len() > 1 {
                    let _ = self.set_var(first, index.clone());
                } else {
                    let _ = self.set_var(first, elem.clone());
                }
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if let Some(second) = decl.get(1).map(|span| self.src(*span)) {
            if branch.pipe.is_assign {
                let _ = self.set_var(second, elem.clone());
            } else {
                self.set_top_var(2, index);
            }
        }
        self.charge(0)?;
        let mark = self.vars.len();
        let result = self.walk_list(out, &elem, elem_boxed, &branch.list);
        self.vars.truncate(mark);
        result
    }

    fn walk_range_inner(
        &mut self,
        out: &mut String,
        dot: &Value,
        boxed: bool,
        branch: &Branch,
    ) -> Res<()> {
        let mut value = self.eval_pipeline(dot, boxed, &branch.pipe)?;
        if let Some(collection) = as_collection(&value) {
            value = collection;
        }
        let mut ran = false;
        match &value {
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    ran = true;
                    if let Flow::Break =
                        self.range_iteration(out, branch, Value::Int(i as i64), item.clone(), true)?
                    {
                        break;
                    }
                }
            }
            Value::Bytes(bytes) => {
                for (i, b) in bytes.iter().enumerate() {
                    ran = true;
                    if let Flow::Break = self.range_iteration(
                        out,
                        branch,
                        Value::Int(i as i64),
                        Value::Int(*b as i64),
                        false,
                    )? {
                        break;
                    }
                }
            }
            Value::Map(map) => {
                for (key, item) in map.iter() {
                    ran = true;
                    if let Flow::Break = self.range_iteration(
                        out,
                        branch,
                        Value::String(key.clone()),
                        item.clone(),
                        true,
                    )? {
                        break;
                    }
                }
            }
            Value::Int(n) if self.context.options.range_over_int => {
                if branch.pipe.decl.len() > 1 {
                    let at = self.pipe_at(&branch.pipe);
                    return Err(self.error(
                        &at,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                for i in 0..(*n).max(0) {
                    ran = true;
                    if let Flow::Break =
                        self.range_iteration(out, branch, Value::Int(i), Value::Int(i), false)?
                    {
                        break;
                    }
                }
            }
            Value::Nil => {}
            other => {
                let at = self.pipe_at(&branch.pipe);
                return Err(self.error(
                    &at,
                    format!("range can't iterate over {}", print::format_v(other)),
                ));
            }
        }
        if let (false, Some(else_list)) = (ran, &branch.else_list) {
            self.walk_list(out, dot, boxed, else_list)?;
        }
        Ok(())
    }

    /// The node Go last pointed at while evaluating a pipeline: its last command's first word.
    fn pipe_at<'p>(&self, pipe: &'p Pipe) -> At<'p> {
        match pipe.cmds.last().and_then(|c| c.args.first()) {
            Some(arg) => At::Arg(arg),
            None => At::Pipe(pipe),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, boxed: bool, pipe: &Pipe) -> Res<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, boxed, cmd, value)?.value);
        }
        let value = value.unwrap_or_default();
        let tree: &'a Tree = self.tree;
        for name in pipe.decl.iter().map(|span| tree.source(*span)) {
            if pipe.is_assign {
                if !self.set_var(name, value.clone()) {
                    let at = self.pipe_at(pipe);
                    return Err(self.error(&at, format!("undefined variable: {name}")));
                }
            } else {
                self.vars.push((name, value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, cmd: &Command, final_value: &Option<Value>) -> Res<()> {
        if cmd.args.len() > 1 || final_value.is_some() {
            let first = cmd.args.first();
            let at = first.map(Self::at_arg).unwrap_or(At::Command(cmd));
            let name = first.map(|a| self.shown(a)).unwrap_or_default();
            return Err(self.error(&at, format!("can't give argument to non-function {name}")));
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Value,
        boxed: bool,
        cmd: &Command,
        final_value: Option<Value>,
    ) -> Res<Typed> {
        let Some(first) = cmd.args.first() else {
            return Ok(Typed::plain(Value::Nil));
        };
        match first {
            Arg::Field { path, .. } => {
                let receiver = Typed {
                    value: dot.clone(),
                    boxed,
                };
                let names = path.names(&self.tree.text);
                self.eval_field_chain(dot, boxed, receiver, first, names, cmd, final_value)
            }
            Arg::Chain { node, fields, .. } => {
                if let Arg::Nil { .. } = node.as_ref() {
                    return Err(self.error(
                        &Self::at_arg(first),
                        format!("indirection through explicit nil in {}", self.shown(first)),
                    ));
                }
                let receiver = Typed::plain(self.eval_arg(dot, boxed, node)?);
                let names = fields.names(&self.tree.text);
                self.eval_field_chain(dot, boxed, receiver, first, names, cmd, final_value)
            }
            Arg::Identifier { name, .. } => {
                let name = self.src(*name);
                self.eval_function(dot, boxed, name, first, cmd, final_value)
            }
            Arg::Pipe(pipe) => {
                self.not_a_function(cmd, &final_value)?;
                Ok(Typed::plain(self.eval_pipeline(dot, boxed, pipe)?))
            }
            Arg::Variable { path, .. } => {
                let mut names = path.names(&self.tree.text);
                let (var_name, more) = names.next_name();
                let value = self.var_value(var_name, first)?;
                if !more {
                    self.not_a_function(cmd, &final_value)?;
                    return Ok(Typed::plain(value));
                }
                self.eval_field_chain(
                    dot,
                    boxed,
                    Typed::plain(value),
                    first,
                    names,
                    cmd,
                    final_value,
                )
            }
            Arg::Bool { value, .. } => {
                self.not_a_function(cmd, &final_value)?;
                Ok(Typed::plain(Value::Bool(*value)))
            }
            Arg::Dot { .. } => {
                self.not_a_function(cmd, &final_value)?;
                Ok(Typed {
                    value: self.context.session.shallow(dot.clone()),
                    boxed,
                })
            }
            Arg::Nil { .. } => Err(self.error(&Self::at_arg(first), "nil is not a command")),
            Arg::Number { value, .. } => {
                self.not_a_function(cmd, &final_value)?;
                let value = value
                    .constant()
                    .map_err(|message| self.error(&Self::at_arg(first), message))?;
                Ok(Typed::plain(value))
            }
            Arg::String { value, .. } => {
                self.not_a_function(cmd, &final_value)?;
                let value = value.get(&self.tree.text).to_string();
                Ok(Typed::plain(Value::String(value)))
            }
        }
    }

    fn var_value(&self, name: &str, arg: &Arg) -> Res<Value> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, value)) => Ok(self.context.session.shallow(value.clone())),
            None => Err(self.error(&Self::at_arg(arg), format!("undefined variable: {name}"))),
        }
    }

    /// Evaluates one argument (not the first word of a command).
    fn eval_arg_typed(&mut self, dot: &Value, boxed: bool, arg: &Arg) -> Res<Typed> {
        match arg {
            Arg::Dot { .. } => Ok(Typed {
                value: self.context.session.shallow(dot.clone()),
                boxed,
            }),
            Arg::Nil { .. } => Ok(Typed::plain(Value::Nil)),
            Arg::Field { pos, path } => {
                let receiver = Typed {
                    value: dot.clone(),
                    boxed,
                };
                let cmd = Command {
                    pos: *pos,
                    args: Box::default(),
                };
                let names = path.names(&self.tree.text);
                self.eval_field_chain(dot, boxed, receiver, arg, names, &cmd, None)
            }
            Arg::Variable { pos, path } => {
                let mut names = path.names(&self.tree.text);
                let (var_name, more) = names.next_name();
                let value = self.var_value(var_name, arg)?;
                if !more {
                    return Ok(Typed::plain(value));
                }
                let cmd = Command {
                    pos: *pos,
                    args: Box::default(),
                };
                self.eval_field_chain(dot, boxed, Typed::plain(value), arg, names, &cmd, None)
            }
            Arg::Pipe(pipe) => {
                // Variables declared inside parentheses persist in Go.
                self.eval_pipeline(dot, boxed, pipe).map(Typed::plain)
            }
            Arg::Identifier { pos, name } => {
                let cmd = Command {
                    pos: *pos,
                    args: Box::default(),
                };
                let name = self.src(*name);
                self.eval_function_with_args(dot, boxed, name, arg, &cmd, &[], None)
            }
            Arg::Chain { pos, node, fields } => {
                if let Arg::Nil { .. } = node.as_ref() {
                    return Err(self.error(
                        &Self::at_arg(arg),
                        format!("indirection through explicit nil in {}", self.shown(arg)),
                    ));
                }
                let receiver = Typed::plain(self.eval_arg(dot, boxed, node)?);
                let cmd = Command {
                    pos: *pos,
                    args: Box::default(),
                };
                let names = fields.names(&self.tree.text);
                self.eval_field_chain(dot, boxed, receiver, arg, names, &cmd, None)
            }
            Arg::Bool { value, .. } => Ok(Typed::plain(Value::Bool(*value))),
            Arg::Number { value, .. } => value
                .constant()
                .map(Typed::plain)
                .map_err(|message| self.error(&Self::at_arg(arg), message)),
            Arg::String { value, .. } => {
                let value = value.get(&self.tree.text).to_string();
                Ok(Typed::plain(Value::String(value)))
            }
        }
    }

    /// Evaluates one argument (not the first word of a command).
    fn eval_arg(&mut self, dot: &Value, boxed: bool, arg: &Arg) -> Res<Value> {
        self.eval_arg_typed(dot, boxed, arg)
            .map(|typed| typed.value)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        boxed: bool,
        mut receiver: Typed,
        node: &Arg,
        mut names: Names<'_>,
        cmd: &Command,
        final_value: Option<Value>,
    ) -> Res<Typed> {
        loop {
            let (name, more) = names.next_name();
            if !more {
                let args = cmd.args.get(1..).unwrap_or(&[]);
                return self.eval_field(dot, boxed, name, node, args, final_value, receiver);
            }
            receiver = self.eval_field(dot, boxed, name, node, &[], None, receiver)?;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        dot: &Value,
        boxed: bool,
        name: &str,
        node: &Arg,
        args: &[Arg],
        final_value: Option<Value>,
        receiver: Typed,
    ) -> Res<Typed> {
        let at = Self::at_arg(node);
        let has_args = !args.is_empty() || final_value.is_some();
        let receiver = Typed {
            value: self.context.session.shallow(receiver.value),
            boxed: receiver.boxed,
        };
        match &receiver.value {
            Value::Nil if !receiver.boxed => {
                if self.context.options.strict {
                    return Err(self.error(
                        &at,
                        format!("nil data; no entry for key {}", print::go_quote(name)),
                    ));
                }
                Ok(Typed::plain(Value::Nil))
            }
            Value::Nil => {
                Err(self.error(&at, format!("nil pointer evaluating interface {{}}.{name}")))
            }
            Value::Map(map) => {
                // Helm's Values type has methods, which Go looks up before map keys; `AsMap`
                // gives the same entries as a plain map.
                if name == "AsMap" && !has_args && super::value::named_map_type(map).is_some() {
                    return Ok(Typed::plain(Value::Map(Arc::new((**map).clone()))));
                }
                if has_args {
                    return Err(
                        self.error(&at, format!("{name} is not a method but has arguments"))
                    );
                }
                match map.get(name) {
                    Some(value) => Ok(Typed {
                        value: self.context.session.shallow(value.clone()),
                        boxed: true,
                    }),
                    None if self.context.options.strict => Err(self.error(
                        &at,
                        format!("map has no entry for key {}", print::go_quote(name)),
                    )),
                    None => Ok(Typed {
                        value: Value::Nil,
                        boxed: true,
                    }),
                }
            }
            Value::Object(object) => {
                let object = object.clone();
                if has_args {
                    let mut values = Vec::with_capacity(args.len() + 1);
                    for arg in args {
                        values.push(self.eval_arg(dot, boxed, arg)?);
                    }
                    if let Some(final_value) = final_value {
                        values.push(final_value);
                    }
                    let session = self.context.session;
                    let values: Vec<Value> = values.into_iter().map(|v| session.deep(v)).collect();
                    return match object.call_method(name, &values) {
                        Some(Ok(value)) => Ok(Typed::plain(value)),
                        Some(Err(message)) => {
                            if message.starts_with("wrong number of args for ") {
                                Err(self.error(&at, message))
                            } else {
                                Err(self.error(&at, format!("error calling {name}: {message}")))
                            }
                        }
                        None => {
                            if object.field(name).is_some() {
                                Err(self.error(
                                    &at,
                                    format!(
                                        "{name} has arguments but cannot be invoked as function"
                                    ),
                                ))
                            } else {
                                Err(self.error(
                                    &at,
                                    format!(
                                        "can't evaluate field {name} in type {}",
                                        receiver.go_type()
                                    ),
                                ))
                            }
                        }
                    };
                }
                if let Some(value) = object.field(name) {
                    return Ok(Typed::plain(value));
                }
                match object.call_method(name, &[]) {
                    Some(Ok(value)) => Ok(Typed::plain(value)),
                    Some(Err(message)) => {
                        if message.starts_with("wrong number of args for ") {
                            Err(self.error(&at, message))
                        } else {
                            Err(self.error(&at, format!("error calling {name}: {message}")))
                        }
                    }
                    None => Err(self.error(
                        &at,
                        format!("can't evaluate field {name} in type {}", receiver.go_type()),
                    )),
                }
            }
            _ => Err(self.error(
                &at,
                format!("can't evaluate field {name} in type {}", receiver.go_type()),
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        boxed: bool,
        name: &str,
        node: &Arg,
        cmd: &Command,
        final_value: Option<Value>,
    ) -> Res<Typed> {
        let args = cmd.args.get(1..).unwrap_or(&[]);
        self.eval_function_with_args(dot, boxed, name, node, cmd, args, final_value)
    }

    fn arity_error(
        &self,
        node: &Arg,
        name: &str,
        want: usize,
        got: usize,
        at_least: bool,
    ) -> ExecError {
        let at = Self::at_arg(node);
        if at_least {
            self.error(
                &at,
                format!("wrong number of args for {name}: want at least {want} got {got}"),
            )
        } else {
            self.error(
                &at,
                format!("wrong number of args for {name}: want {want} got {got}"),
            )
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_function_with_args(
        &mut self,
        dot: &Value,
        boxed: bool,
        name: &str,
        node: &Arg,
        cmd: &Command,
        args: &[Arg],
        final_value: Option<Value>,
    ) -> Res<Typed> {
        let call_at = At::Command(cmd);
        let got = args.len() + usize::from(final_value.is_some());
        // and/or evaluate their arguments lazily.
        if (name == "and" || name == "or") && !self.context.funcs.contains(name) {
            if got < 1 {
                return Err(self.arity_error(node, name, 1, 0, true));
            }
            let want_truth = name == "or";
            let mut last = Value::Nil;
            for arg in args {
                last = self.eval_arg(dot, boxed, arg)?;
                if is_true(&last) == want_truth {
                    return Ok(Typed::plain(last));
                }
            }
            if let Some(final_value) = final_value {
                last = final_value;
            }
            return Ok(Typed::plain(last));
        }
        // Go converts a constant to printf's `string` parameter before calling it.
        if let ("printf", Some(first @ (Arg::Number { .. } | Arg::Bool { .. } | Arg::Nil { .. }))) =
            (name, args.first())
        {
            return Err(self.error(
                &Self::at_arg(first),
                format!("expected string; found {}", self.shown(first)),
            ));
        }
        let mut values = Vec::with_capacity(got);
        let mut boxed_args = BoxedArgs::default();
        for (index, arg) in args.iter().enumerate() {
            let typed = self.eval_arg_typed(dot, boxed, arg)?;
            boxed_args.set(index, typed.boxed);
            values.push(typed.value);
        }
        let has_final = final_value.is_some();
        if let Some(final_value) = final_value {
            values.push(final_value);
        }
        let result = if CONTEXT_FUNCS.contains(&name) {
            self.call_context_function(name, node, &values)?
        } else if name == "len"
            && matches!(values.as_slice(), [Value::Nil])
            && !self.context.funcs.contains(name)
        {
            // Go's len sees a nil from a map as a nil interface, any other nil as no value.
            if boxed_args.get(0) {
                Err("len of nil pointer".to_string())
            } else {
                Err("reflect: call of reflect.Value.Type on zero Value".to_string())
            }
        } else {
            let session = self.context.session;
            let mutating = MUTATING_FUNCS.contains(&name);
            let original = if mutating {
                values.first().cloned()
            } else {
                None
            };
            // Resolved in place: the resolution of a value has the same Go type, which is all
            // error reporting below looks at.
            if !STORING_FUNCS.contains(&name) {
                for value in values.iter_mut() {
                    if shared_address(value).is_some() {
                        *value = session.deep(std::mem::take(value));
                    }
                }
            }
            let result = match self.context.funcs.get(name) {
                Some(func) => func(&values),
                None => self.call_builtin(name, node, args, &values)?,
            };
            if let (Ok(changed), Some(original)) = (&result, &original) {
                session.record(original, changed);
            }
            result
        };
        match result {
            Ok(value) => Ok(Typed::plain(value)),
            Err(message) => {
                if message.starts_with("wrong number of args for ") {
                    return Err(self.error(&Self::at_arg(node), message));
                }
                if let Some(err) =
                    self.conversion_error(node, args, &values, &boxed_args, has_final, &message)
                {
                    return Err(err);
                }
                Err(self.error(&call_at, format!("error calling {name}: {message}")))
            }
        }
    }

    /// Go converts arguments to a function's parameter types before calling it, and reports a
    /// mismatch at the argument (or, for the piped value, at the function) without
    /// `error calling`. The functions report `invalid value; expected T` (a nil) or
    /// `wrong type for value; expected T; got U`; this finds the argument and words it as Go.
    fn conversion_error(
        &self,
        node: &Arg,
        args: &[Arg],
        values: &[Value],
        boxed_args: &BoxedArgs,
        has_final: bool,
        message: &str,
    ) -> Option<ExecError> {
        if let Some(expected) = message.strip_prefix("invalid value; expected ") {
            let culprit = values.iter().position(Value::is_nil)?;
            let Some(arg) = args.get(culprit) else {
                return has_final
                    .then(|| self.error(&Self::at_arg(piped_value_site(node, args)), message));
            };
            let text = match arg {
                Arg::Nil { .. } => format!("cannot assign nil to {expected}"),
                _ if boxed_args.get(culprit) => {
                    format!("wrong type for value; expected {expected}; got interface {{}}")
                }
                _ => message.to_string(),
            };
            return Some(self.error(&Self::at_arg(arg), text));
        }
        let rest = message.strip_prefix("wrong type for value; expected ")?;
        let (expected, got) = rest.split_once("; got ")?;
        let culprit = values.iter().position(|v| type_name(v) == got)?;
        let Some(arg) = args.get(culprit) else {
            return has_final
                .then(|| self.error(&Self::at_arg(piped_value_site(node, args)), message));
        };
        let text = match arg {
            Arg::Number { .. } | Arg::Bool { .. } | Arg::String { .. } => {
                let wanted = match expected {
                    "string" => "string",
                    "bool" => "bool",
                    e if e.starts_with("int") || e.starts_with("uint") => "integer",
                    e if e.starts_with("float") => "float",
                    _ => return Some(self.error(&Self::at_arg(arg), message)),
                };
                format!("expected {wanted}; found {}", self.shown(arg))
            }
            _ => message.to_string(),
        };
        Some(self.error(&Self::at_arg(arg), text))
    }

    fn call_context_function(
        &mut self,
        name: &str,
        node: &Arg,
        values: &[Value],
    ) -> Res<Result<Value, String>> {
        let want = match name {
            "include" | "tpl" | "required" => 2,
            "fail" => 1,
            _ => 4,
        };
        if values.len() != want {
            return Err(self.arity_error(node, name, want, values.len(), false));
        }
        let string_arg = |i: usize| -> Result<String, ExecError> {
            match values.get(i) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(self.error(
                    &Self::at_arg(node),
                    format!(
                        "wrong type for value; expected string; got {}",
                        type_name(other)
                    ),
                )),
                None => Err(self.arity_error(node, name, want, values.len(), false)),
            }
        };
        Ok(match name {
            "include" => {
                let template = string_arg(0)?;
                let data = values.get(1).cloned().unwrap_or_default();
                self.include(&template, data)
            }
            "tpl" => {
                let text = string_arg(0)?;
                let data = values.get(1).cloned().unwrap_or_default();
                self.tpl(&text, data)
            }
            "required" => {
                let warn = string_arg(0)?;
                let value = values.get(1).cloned().unwrap_or_default();
                let missing = match &value {
                    Value::Nil => true,
                    Value::String(s) => s.is_empty(),
                    _ => false,
                };
                if missing {
                    if self.context.options.lint_mode {
                        Ok(Value::String(String::new()))
                    } else {
                        Err(format!("{WARN_START}{warn}{WARN_END}"))
                    }
                } else {
                    Ok(value)
                }
            }
            "fail" => {
                let message = string_arg(0)?;
                Err(format!("{WARN_START}{message}{WARN_END}"))
            }
            _ => {
                let api_version = string_arg(0)?;
                let kind = string_arg(1)?;
                let namespace = string_arg(2)?;
                let object_name = string_arg(3)?;
                match &self.context.options.lookup {
                    Some(lookup) => lookup(&api_version, &kind, &namespace, &object_name),
                    None => Ok(Value::map([])),
                }
            }
        })
    }

    fn include(&mut self, name: &str, data: Value) -> Result<Value, String> {
        {
            let mut included = self.context.session.included.borrow_mut();
            if included.get(name).copied().unwrap_or(0) > INCLUDE_RECURSION_MAX {
                return Err(format!(
                    "rendering template has a nested reference name: {name}: unable to execute template"
                ));
            }
            // Looked up before inserting: most includes name a template already counted, and
            // the key would be a new String each time.
            match included.get_mut(name) {
                Some(count) => *count += 1,
                None => {
                    included.insert(name.to_string(), 1);
                }
            }
        }
        let result = self.execute_named(name, data);
        if let Some(count) = self.context.session.included.borrow_mut().get_mut(name) {
            *count = count.saturating_sub(1);
        }
        result.map(Value::String)
    }

    /// Go's `ExecuteTemplate` on the current scope: no variables but `$`.
    fn execute_named(&mut self, name: &str, data: Value) -> Result<String, String> {
        let Some(tree) = self.scope.lookup(name) else {
            return Err(format!(
                "template: no template {} associated with template {}",
                print::go_quote(name),
                print::go_quote(self.context.root_name)
            ));
        };
        if self.too_deep() {
            return Err(format!(
                "template: {}: exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})",
                tree.name
            ));
        }
        let mut out = String::new();
        let mut state = State {
            context: self.context,
            scope: self.scope,
            tree: &tree,
            vars: vec![("$", data.clone())],
            depth: self.depth + 1,
        };
        state
            .walk_list(&mut out, &data, false, &tree.root)
            .map_err(|e| e.message)?;
        Ok(out)
    }

    /// Helm's `tpl`: parse the text as a new template named after the set's root into a clone
    /// of the set (so its `define`s are visible to its own `include`s) and execute it.
    fn tpl(&mut self, text: &str, data: Value) -> Result<Value, String> {
        if self.too_deep() {
            return Err(format!(
                "template: {}: exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})",
                self.context.root_name
            ));
        }
        let funcs = self.context.funcs;
        let trees = parse::parse(
            self.context.root_name,
            text,
            &|f| has_function(funcs, f),
            self.context.options.go123_comment_lines,
        )
        .map_err(|e| format!("cannot parse template {}: {e}", print::go_quote(text)))?;
        let mut trees = trees.into_iter();
        let Some(top) = trees.next() else {
            return Ok(Value::String(String::new()));
        };
        let mut overlay = TreeSet::default();
        let defined: Vec<Tree> = trees.collect();
        for tree in defined {
            let exists =
                self.scope.lookup(&tree.name).is_some() || overlay.contains_key(&tree.name);
            if exists && parse::is_empty_tree(&tree.root, &tree.text) {
                continue;
            }
            overlay.insert(tree.name.clone(), Arc::new(tree));
        }
        let scope = Scope {
            trees: &overlay,
            parent: Some(self.scope),
        };
        let mut out = String::new();
        let mut state = State {
            context: self.context,
            scope: &scope,
            tree: &top,
            vars: vec![("$", data.clone())],
            depth: self.depth + 1,
        };
        state
            .walk_list(&mut out, &data, false, &top.root)
            .map_err(|e| {
                format!(
                    "error during tpl function execution for {}: {}",
                    print::go_quote(text),
                    e.message
                )
            })?;
        Ok(Value::String(out.replace("<no value>", "")))
    }

    fn call_builtin(
        &self,
        name: &str,
        node: &Arg,
        args_nodes: &[Arg],
        args: &[Value],
    ) -> Res<Result<Value, String>> {
        let exact = |want: usize| -> Res<()> {
            if args.len() != want {
                return Err(self.arity_error(node, name, want, args.len(), false));
            }
            Ok(())
        };
        let at_least = |want: usize| -> Res<()> {
            if args.len() < want {
                return Err(self.arity_error(node, name, want, args.len(), true));
            }
            Ok(())
        };
        let first = args.first().cloned().unwrap_or_default();
        Ok(match name {
            "not" => {
                exact(1)?;
                Ok(Value::Bool(!is_true(&first)))
            }
            "len" => {
                exact(1)?;
                builtin_len(&first)
            }
            "index" => {
                at_least(1)?;
                builtin_index(&first, &args[1..])
            }
            "slice" => {
                at_least(1)?;
                builtin_slice(&first, &args[1..])
            }
            "print" => Ok(Value::String(print::sprint(args))),
            "println" => Ok(Value::String(print::sprintln(args))),
            "printf" => {
                at_least(1)?;
                match &first {
                    Value::String(format) => Ok(Value::String(print::sprintf(format, &args[1..]))),
                    other => {
                        // Go converts the argument before the call: the error points at it
                        // (or at printf for a piped value).
                        let at = args_nodes.first().unwrap_or(node);
                        let message = if other.is_nil() && args_nodes.is_empty() {
                            "invalid value; expected string".to_string()
                        } else {
                            format!(
                                "wrong type for value; expected string; got {}",
                                type_name(other)
                            )
                        };
                        return Err(self.error(&Self::at_arg(at), message));
                    }
                }
            }
            "eq" => {
                at_least(1)?;
                builtin_eq(&first, &args[1..])
                    .map(Value::Bool)
                    .map_err(|e| self.comparison_error(e))
            }
            "ne" => {
                exact(2)?;
                builtin_eq(&first, &args[1..])
                    .map(|b| Value::Bool(!b))
                    .map_err(|e| self.comparison_error(e))
            }
            "lt" | "le" | "gt" | "ge" => {
                exact(2)?;
                let second = args.get(1).cloned().unwrap_or_default();
                builtin_compare(name, &first, &second)
                    .map(Value::Bool)
                    .map_err(|e| self.comparison_error(e))
            }
            "urlquery" => Ok(Value::String(url_query_escape(&eval_args(args)))),
            "js" => Ok(Value::String(js_escape(&eval_args(args)))),
            "html" => Ok(Value::String(html_escape(&eval_args(args)))),
            "call" => {
                at_least(1)?;
                // Template values are never Go funcs, so call always fails as Go's does.
                let callee = match args_nodes.first() {
                    Some(arg) => format!("{} ", self.shown(arg)),
                    None => String::new(),
                };
                if first.is_nil() {
                    Err("call of nil".to_string())
                } else {
                    Err(format!(
                        "non-function {callee}of type {}",
                        type_name(&first)
                    ))
                }
            }
            other => {
                return Err(self.error(
                    &Self::at_arg(node),
                    format!("{} is not a defined function", print::go_quote(other)),
                ));
            }
        })
    }
}

fn builtin_len(value: &Value) -> Result<Value, String> {
    let len = match value {
        Value::Object(_) if as_collection(value).is_some() => {
            return builtin_len(&as_collection(value).unwrap_or_default());
        }
        Value::Nil => return Err("len of untyped nil".to_string()),
        Value::String(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        other => return Err(format!("len of type {}", type_name(other))),
    };
    Ok(Value::Int(len as i64))
}

fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x = match index {
        Value::Int(i) => *i,
        Value::Nil => return Err("cannot index slice/array with nil".to_string()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                type_name(other)
            ));
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn builtin_index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if item.is_nil() {
        return Err("index of untyped nil".to_string());
    }
    let mut current = item.clone();
    for index in indexes {
        if let Some(collection) = as_collection(&current) {
            current = collection;
        }
        current = match &current {
            Value::Nil => return Err("index of nil pointer".to_string()),
            Value::List(items) => {
                let x = index_arg(index, items.len())?;
                match items.get(x) {
                    Some(v) => v.clone(),
                    None => return Err(format!("index out of range: {x}")),
                }
            }
            Value::String(s) => {
                let x = index_arg(index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Int(*b as i64),
                    None => return Err(format!("index out of range: {x}")),
                }
            }
            Value::Bytes(bytes) => {
                let x = index_arg(index, bytes.len())?;
                match bytes.get(x) {
                    Some(b) => Value::Int(*b as i64),
                    None => return Err(format!("index out of range: {x}")),
                }
            }
            Value::Map(map) => match index {
                Value::String(key) => map.get(key).cloned().unwrap_or(Value::Nil),
                Value::Nil => return Err("value is nil; should be of type string".to_string()),
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        type_name(other)
                    ));
                }
            },
            other => return Err(format!("can't index item of type {}", type_name(other))),
        };
    }
    Ok(current)
}

fn builtin_slice(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if item.is_nil() {
        return Err("slice of untyped nil".to_string());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::String(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".to_string());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        Value::Bytes(b) => b.len(),
        other => return Err(format!("can't slice item of type {}", type_name(other))),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::String(s) => match s.get(idx[0]..idx[1]) {
            Some(part) => Value::String(part.to_string()),
            None => {
                Value::String(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
            }
        },
        Value::List(l) => Value::list(l[idx[0]..idx[1]].iter().cloned()),
        Value::Bytes(b) => Value::Bytes(Arc::new(b[idx[0]..idx[1]].to_vec())),
        _ => Value::Nil,
    })
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    String,
    Complex,
    Other,
}

fn basic_kind(value: &Value) -> Kind {
    match value {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::String,
        Value::Object(o) if o.type_name() == "complex128" => Kind::Complex,
        _ => Kind::Other,
    }
}

/// Go's `eq`: basic kinds must match (int vs float64 is an error); nil compares with anything.
pub fn builtin_eq(first: &Value, others: &[Value]) -> Result<bool, String> {
    if others.is_empty() {
        return Err("missing argument for comparison".to_string());
    }
    let k1 = basic_kind(first);
    for other in others {
        let k2 = basic_kind(other);
        let truth = if k1 != k2 {
            if !first.is_nil() && !other.is_nil() {
                return Err(incompatible_types(first, other));
            }
            false
        } else {
            match (first, other) {
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Int(a), Value::Int(b)) => a == b,
                (Value::Float(a), Value::Float(b)) => a == b,
                (Value::String(a), Value::String(b)) => a == b,
                (a, b) if a.is_nil() || b.is_nil() => a.is_nil() == b.is_nil(),
                // complex128 constants: equal parts print alike (%g is exact).
                (Value::Object(a), Value::Object(b)) if k1 == Kind::Complex => {
                    a.to_go_string() == b.to_go_string()
                }
                (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
                (a, b) => {
                    let non_comparable = if matches!(a, Value::Object(_)) { b } else { a };
                    return Err(format!(
                        "non-comparable type {}: {}",
                        print::sprintf("%s", std::slice::from_ref(non_comparable)),
                        type_name(non_comparable)
                    ));
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Where Go reports a piped value of the wrong type: at the node it evaluated last, which is
/// the function's last argument (`<100>` in `. | wrap 100`) or, without arguments, the function.
/// An argument that is itself a pipeline or chain moves Go's position inside it; the function
/// node stands in for those.
fn piped_value_site<'n>(function: &'n Arg, args: &'n [Arg]) -> &'n Arg {
    match args.last() {
        None | Some(Arg::Pipe(_)) | Some(Arg::Chain { .. }) => function,
        Some(last) => last,
    }
}

const INCOMPATIBLE_TYPES: &str = "incompatible types for comparison";

/// Go 1.25's text (`%w: %v and %v` of both reflect types); [`Exec::comparison_error`] cuts it
/// to Go 1.23's for helm 3.
fn incompatible_types(a: &Value, b: &Value) -> String {
    format!(
        "{INCOMPATIBLE_TYPES}: {} and {}",
        type_name(a),
        type_name(b)
    )
}

fn builtin_compare(name: &str, a: &Value, b: &Value) -> Result<bool, String> {
    let lt = |a: &Value, b: &Value| -> Result<bool, String> {
        let k1 = basic_kind(a);
        let k2 = basic_kind(b);
        if matches!(k1, Kind::Other | Kind::Complex) || matches!(k2, Kind::Other | Kind::Complex) {
            return Err("invalid type for comparison".to_string());
        }
        if k1 != k2 {
            return Err(incompatible_types(a, b));
        }
        match (a, b) {
            (Value::Int(x), Value::Int(y)) => Ok(x < y),
            (Value::Float(x), Value::Float(y)) => Ok(x < y),
            (Value::String(x), Value::String(y)) => Ok(x < y),
            _ => Err("invalid type for comparison".to_string()),
        }
    };
    match name {
        "lt" => lt(a, b),
        "le" => Ok(lt(a, b)? || builtin_eq(a, std::slice::from_ref(b))?),
        "gt" => Ok(!(lt(a, b)? || builtin_eq(a, std::slice::from_ref(b))?)),
        _ => Ok(!lt(a, b)?),
    }
}

/// Go's `evalArgs` for the escapers: a lone string as is, else `fmt.Sprint` with nil as
/// `<no value>`.
fn eval_args(args: &[Value]) -> String {
    if let [Value::String(s)] = args {
        return s.clone();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Nil => Value::String("<no value>".to_string()),
            other => other.clone(),
        })
        .collect();
    print::sprint(&printable)
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) < 0x80 => out.push(c),
            c if !c.is_control() => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn url_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for Helm's `*chartutil.Capabilities`-like objects: a field, a no-argument
    /// method and a method with an argument.
    #[derive(Debug)]
    struct Versions;

    impl crate::value::Object for Versions {
        fn type_name(&self) -> &str {
            "chartutil.VersionSet"
        }

        fn field(&self, name: &str) -> Option<Value> {
            (name == "Count").then_some(Value::Int(2))
        }

        fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
            if name != "Has" {
                return None;
            }
            Some(match args {
                [Value::String(s)] => Ok(Value::Bool(s == "apps/v1")),
                [_] => Err("wrong type for value; expected string; got int".to_string()),
                _ => Err(format!(
                    "wrong number of args for Has: want 1 got {}",
                    args.len()
                )),
            })
        }

        fn to_go_string(&self) -> String {
            "[apps/v1 v1]".to_string()
        }

        fn to_serializable(&self) -> Value {
            Value::list([Value::from("apps/v1"), Value::from("v1")])
        }
    }

    fn run(text: &str, dot: Value) -> Result<String, String> {
        let mut set = TemplateSet::new("gotpl", Arc::new(FuncRegistry::new()));
        set.parse("t.yaml", text).map_err(|e| e.to_string())?;
        set.execute("t.yaml", dot, &ExecOptions::default())
            .map_err(|e| e.message)
    }

    fn dot_with_object() -> Value {
        Value::map([
            ("V".to_string(), Value::Object(Arc::new(Versions))),
            ("n".to_string(), Value::Int(3)),
        ])
    }

    fn run_with_sprig(text: &str, dot: Value) -> Result<String, String> {
        let mut funcs = FuncRegistry::new();
        funcs.extend(crate::funcs::sprig_functions());
        funcs.extend(crate::funcs::helm_functions());
        let mut set = TemplateSet::new("gotpl", Arc::new(funcs));
        set.parse("t.yaml", text).map_err(|e| e.to_string())?;
        set.execute("t.yaml", dot, &ExecOptions::default())
            .map_err(|e| e.message)
    }

    /// Resolutions of changed maps are cached and dropped only for values that hold the map
    /// that changed: every holder must still see each later change, however deep, and values
    /// that do not hold it keep their cached resolution.
    #[test]
    fn in_place_changes_reach_every_holder_after_cached_resolutions() {
        let out = run_with_sprig(
            r#"{{- $_ := set (dict) "first" "change" -}}
{{- $inner := dict "b" 1 -}}
{{- $d := dict "a" $inner -}}
{{- $outer := dict "x" $d "l" (list $d) -}}
{{- $other := dict "y" (dict "z" 1) -}}
{{ toJson $outer }} {{ toJson $other }}
{{ $_ := set $inner "b" 2 }}{{ toJson $outer }} {{ toJson $other }}
{{ $_ := set $d "c" 3 }}{{ toJson $outer }}
{{ $_ := set $inner "b" 4 }}{{ toJson $outer }} {{ toJson $d }}
{{ $_ := merge $inner (dict "m" (dict "n" 5)) }}{{ toJson $outer.x }}
{{ $_ := set $inner.m "n" 6 }}{{ toJson (index $outer.l 0) }}
{{ $_ := unset $d "a" }}{{ toJson $outer }}"#,
            Value::Nil,
        );
        assert_eq!(
            out.as_deref(),
            Ok(concat!(
                r#"{"l":[{"a":{"b":1}}],"x":{"a":{"b":1}}} {"y":{"z":1}}"#,
                "\n",
                r#"{"l":[{"a":{"b":2}}],"x":{"a":{"b":2}}} {"y":{"z":1}}"#,
                "\n",
                r#"{"l":[{"a":{"b":2},"c":3}],"x":{"a":{"b":2},"c":3}}"#,
                "\n",
                r#"{"l":[{"a":{"b":4},"c":3}],"x":{"a":{"b":4},"c":3}} {"a":{"b":4},"c":3}"#,
                "\n",
                r#"{"a":{"b":4,"m":{"n":5}},"c":3}"#,
                "\n",
                r#"{"a":{"b":4,"m":{"n":6}},"c":3}"#,
                "\n",
                r#"{"l":[{"c":3}],"x":{"c":3}}"#,
            ))
        );
    }

    #[test]
    fn methods_with_arguments_fields_and_printing_of_objects() {
        let out = run(
            r#"{{ .V.Has "apps/v1" }} {{ .V.Has "x" }} {{ "apps/v1" | .V.Has }} {{ .V.Count }} {{ .V }}"#,
            dot_with_object(),
        );
        assert_eq!(out.as_deref(), Ok("true false true 2 [apps/v1 v1]"));
    }

    #[test]
    fn method_errors_name_the_node() {
        let err = run(r#"{{ .V.Has 1 }}"#, dot_with_object()).err();
        assert_eq!(
            err.as_deref(),
            Some(
                "template: t.yaml:1:5: executing \"t.yaml\" at <.V.Has>: error calling Has: \
                 wrong type for value; expected string; got int"
            )
        );
        let err = run(r#"{{ .V.Nope }}"#, dot_with_object()).err();
        assert_eq!(
            err.as_deref(),
            Some(
                "template: t.yaml:1:5: executing \"t.yaml\" at <.V.Nope>: can't evaluate field \
                 Nope in type interface {}"
            )
        );
    }

    /// A named Go map type with methods, like Helm's `engine.files`.
    #[derive(Debug)]
    struct Files;

    impl crate::value::Object for Files {
        fn type_name(&self) -> &str {
            "engine.files"
        }

        fn field(&self, _: &str) -> Option<Value> {
            None
        }

        fn to_go_string(&self) -> String {
            "map[a.txt:[120]]".to_string()
        }

        fn to_serializable(&self) -> Value {
            Value::map([
                ("b.txt".to_string(), Value::Bytes(Arc::new(b"y".to_vec()))),
                ("a.txt".to_string(), Value::Bytes(Arc::new(b"x".to_vec()))),
            ])
        }
    }

    #[test]
    fn named_map_types_range_len_and_index_like_go_maps() {
        let dot = Value::map([("F".to_string(), Value::Object(Arc::new(Files)))]);
        let out = run(
            r#"{{ range $k, $v := .F }}{{ $k }}={{ printf "%s" $v }};{{ end }}{{ len .F }} {{ index .F "b.txt" | printf "%s" }}"#,
            dot,
        );
        assert_eq!(out.as_deref(), Ok("a.txt=x;b.txt=y;2 y"));
    }

    #[test]
    fn range_over_int_only_when_enabled() {
        let mut set = TemplateSet::new("gotpl", Arc::new(FuncRegistry::new()));
        assert!(set.parse("t", "{{ range .n }}{{ . }}{{ end }}").is_ok());
        let helm4 = ExecOptions {
            range_over_int: true,
            ..ExecOptions::default()
        };
        let out = set
            .execute("t", dot_with_object(), &helm4)
            .map_err(|e| e.message);
        assert_eq!(out.as_deref(), Ok("012"));
        let err = set
            .execute("t", dot_with_object(), &ExecOptions::default())
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some("template: t:1:9: executing \"t\" at <.n>: range can't iterate over 3")
        );
    }

    #[test]
    fn strict_mode_reports_missing_keys() {
        let mut set = TemplateSet::new("gotpl", Arc::new(FuncRegistry::new()));
        assert!(set.parse("t", "{{ .missing }}").is_ok());
        let strict = ExecOptions {
            strict: true,
            ..ExecOptions::default()
        };
        let err = set
            .execute("t", Value::map([]), &strict)
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "template: t:1:3: executing \"t\" at <.missing>: map has no entry for key \"missing\""
            )
        );
    }

    #[test]
    fn lookup_is_empty_offline_and_asks_the_injected_client_otherwise() {
        let out = run(
            r#"{{ lookup "v1" "Secret" "ns" "name" | len }}"#,
            Value::map([]),
        );
        assert_eq!(out.as_deref(), Ok("0"));
        let mut set = TemplateSet::new("gotpl", Arc::new(FuncRegistry::new()));
        assert!(
            set.parse("t", r#"{{ (lookup "v1" "Secret" "ns" "db").kind }}"#)
                .is_ok()
        );
        let online = ExecOptions {
            lookup: Some(Arc::new(|_: &str, kind: &str, _: &str, name: &str| {
                Ok(Value::map([(
                    "kind".to_string(),
                    Value::from(format!("{kind}/{name}")),
                )]))
            })),
            ..ExecOptions::default()
        };
        let out = set
            .execute("t", Value::map([]), &online)
            .map_err(|e| e.message);
        assert_eq!(out.as_deref(), Ok("Secret/db"));
    }

    #[test]
    fn include_recursion_is_bounded() {
        let err = run(
            r#"{{ define "loop" }}{{ include "loop" . }}{{ end }}{{ include "loop" . }}"#,
            Value::map([]),
        )
        .err()
        .unwrap_or_default();
        // On a test thread's small stack the stack budget stops it before Helm's limit of
        // 1000 nested includes; under engine::render Helm's own message comes first.
        assert!(
            err.contains("rendering template has a nested reference name: loop")
                || err.ends_with("exceeded maximum template depth (3000)"),
            "{err}"
        );
    }
}
