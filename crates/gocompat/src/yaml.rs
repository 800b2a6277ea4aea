//! Reads YAML the way Helm does (sigs.k8s.io/yaml over go-yaml v2): YAML 1.1 scalars, then JSON.
//!
//! Helm never looks at YAML values directly: it converts YAML to JSON and decodes that JSON into
//! `interface{}`. So every number becomes a float64, map keys become strings (`on:` is the key
//! `"true"`), timestamps stay strings, and `yes`/`no`/`on`/`off`/`y`/`n` are booleans.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use crate::strconv;
use crate::yaml_emit::Resolved;

mod direct;
mod fast;

/// What can go wrong reading YAML; every variant names its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum YamlError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{file}: error unmarshaling JSON: json: cannot unmarshal {found} into Go value of type map[string]interface {{}}"
    )]
    NotAMap { file: String, found: String },
}

/// One YAML node before the JSON conversion (keys may still be non-strings).
#[derive(Clone, Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Parses the first document of `text` (what go-yaml's `Unmarshal` reads) into JSON as Helm sees
/// it. An empty document gives `Value::Null`. `source` names the file in errors.
pub fn parse_first_document(text: &str, source: &str) -> Result<Value, YamlError> {
    let mut docs = parse_documents(text, source, 1)?;
    Ok(if docs.is_empty() {
        Value::Null
    } else {
        docs.swap_remove(0)
    })
}

/// What Helm's `releaseutil.SimpleHead` reads of a rendered manifest's first document: the
/// same value and the same errors as [`parse_first_document`], except that only `kind`,
/// `metadata.name` and `metadata.annotations` are sure to be kept (the rest is checked, and
/// usually not built).
pub fn parse_manifest_head(text: &str, source: &str) -> Result<Value, YamlError> {
    let mut docs = parse_documents_wanted(
        text,
        source,
        1,
        NumberMode::Float64,
        direct::Want::ManifestRoot,
    )?;
    Ok(if docs.is_empty() {
        Value::Null
    } else {
        docs.swap_remove(0)
    })
}

/// How [`fast_path_only`] and [`without_fast_path`] read a first document, for the checks that
/// the fast path agrees with the saphyr-based loaders (tests and benchmarks, not production).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstDocumentReading {
    /// As [`parse_first_document`] (values files): everything, numbers as float64.
    Values,
    /// As [`parse_manifest_head`].
    ManifestHead,
    /// Everything, integers as written (the first document of [`parse_manifest_documents`]).
    Manifest,
}

impl FirstDocumentReading {
    fn modes(self) -> (NumberMode, direct::Want) {
        match self {
            Self::Values => (NumberMode::Float64, direct::Want::All),
            Self::ManifestHead => (NumberMode::Float64, direct::Want::ManifestRoot),
            Self::Manifest => (NumberMode::AsWritten, direct::Want::All),
        }
    }
}

/// The fast path's reading of `text`'s first document (`None`: it leaves the text to the
/// saphyr-based loaders). For equivalence checks.
#[doc(hidden)]
pub fn fast_path_only(text: &str, reading: FirstDocumentReading) -> Option<Value> {
    let (numbers, want) = reading.modes();
    fast::first_document(text, numbers, want)
        .ok()
        .map(|mut docs| docs.pop().unwrap_or(Value::Null))
}

/// The first document as the readers read it without the fast path. For equivalence checks.
#[doc(hidden)]
pub fn without_fast_path(
    text: &str,
    source: &str,
    reading: FirstDocumentReading,
) -> Result<Value, YamlError> {
    let (numbers, want) = reading.modes();
    parse_documents_without_fast_path(text, source, 1, numbers, want)
        .map(|mut docs| docs.pop().unwrap_or(Value::Null))
}

/// Parses a values file: the first document must be a map (or empty, which gives `{}`).
pub fn parse_values(text: &str, source: &str) -> Result<Map<String, Value>, YamlError> {
    match parse_first_document(text, source)? {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        other => Err(YamlError::NotAMap {
            file: source.to_string(),
            found: json_type_name(&other).to_string(),
        }),
    }
}

/// The name Go's encoding/json uses for the kind of a JSON value in its errors.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A number as text the way Helm's loader turns a YAML number into a string field
/// (`appVersion: 1.10` becomes `1.1`): integers without a fraction, floats as sigs.k8s.io/yaml
/// prints them, `strconv.FormatFloat(f, 'g', -1, 32)`.
pub fn go_number_text(n: &Number) -> String {
    match n.as_f64() {
        // The loader keeps no integer/float distinction, so integral values print as integers.
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i128),
        Some(f) => strconv::format_float32(f, 'g', None),
        None => n.to_string(),
    }
}

/// Parses every document of a Kubernetes manifest as kubectl and Helm's kube client read it
/// (`sigs.k8s.io/yaml.YAMLToJSON` over go-yaml v2): YAML 1.1 scalars (`0755` is 493, `on` is
/// true), map keys as strings, and, unlike values, integers stay integers, because the JSON text
/// sent to the apiserver carries them as written. Empty documents come back as `Value::Null`.
pub fn parse_manifest_documents(text: &str, source: &str) -> Result<Vec<Value>, YamlError> {
    parse_documents_as(text, source, usize::MAX, NumberMode::AsWritten)
}

/// How numbers reach JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NumberMode {
    /// Helm's values: YAML to JSON to `interface{}`, so every number is a float64.
    Float64,
    /// YAMLToJSON's JSON text: integers as integers, floats as Go's `json.Marshal` prints them.
    AsWritten,
}

/// go-yaml v2 (a port of libyaml) checks indentation only in block context: the lines of a flow
/// collection (`command: [` ... `]`) and the continuation lines of a quoted scalar may start at
/// any column, even left of the key they belong to. saphyr-parser follows YAML 1.2 and refuses
/// them (`invalid indentation`). Leading spaces are insignificant on such lines (flow context
/// skips them, quoted scalars fold them away), so each line that begins inside a flow collection
/// or a quoted scalar gets enough extra spaces for saphyr; nothing else changes, and line
/// numbers stay the same. Lines of block scalars (`|`, `>`) are content and left alone; a
/// document marker at column 0 stays one (go-yaml rejects it there too).
pub fn relax_flow_indentation(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['[', '{', '"', '\'']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut scanner = FlowScanner::default();
    // Built only from the first line that moves: most texts need no change, and copying them
    // line by line cost as much as scanning them.
    let mut out: Option<String> = None;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let prefix = scanner.line_prefix(line);
        if prefix > 0 {
            let out = out.get_or_insert_with(|| {
                let mut out = String::with_capacity(text.len() + 64);
                out.push_str(&text[..line_start]);
                out
            });
            out.extend(std::iter::repeat_n(' ', prefix));
            out.push_str(line);
        } else if let Some(out) = out.as_mut() {
            out.push_str(line);
        }
        line_start += line.len();
        scanner.scan(line);
    }
    match out {
        Some(out) => std::borrow::Cow::Owned(out),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// The innermost flow collection (`[` or `{`) still open before 1-based line `line` of `text`.
pub fn open_flow_bracket(text: &str, line: usize) -> Option<char> {
    let mut scanner = FlowScanner::default();
    for text_line in text.split_inclusive('\n').take(line.saturating_sub(1)) {
        scanner.line_prefix(text_line);
        scanner.scan(text_line);
    }
    scanner.open.last().copied()
}

/// Just enough of a YAML scanner to know, line by line, whether a line begins inside a flow
/// collection, a quoted scalar or a block scalar.
#[derive(Default)]
struct FlowScanner {
    flow_depth: usize,
    /// The open flow brackets, innermost last.
    open: Vec<char>,
    /// The open quote of a multi-line quoted scalar.
    quote: Option<u8>,
    /// Spaces that put a continuation line right of the construct's start.
    prefix: usize,
    /// Inside a block scalar: lines indented more than this (or blank) are its content.
    block_scalar: Option<isize>,
}

fn is_document_marker(line: &str) -> bool {
    (line.starts_with("---") || line.starts_with("..."))
        && line[3..].chars().next().is_none_or(char::is_whitespace)
}

impl FlowScanner {
    /// Extra spaces for `line`, and whether it is block scalar content (then not scanned).
    fn line_prefix(&mut self, line: &str) -> usize {
        if let Some(parent) = self.block_scalar {
            let body = line.trim_end_matches(['\n', '\r']);
            let indent = body.len() - body.trim_start_matches(' ').len();
            if !is_document_marker(line) && (body.trim().is_empty() || indent as isize > parent) {
                return 0;
            }
            self.block_scalar = None;
        }
        if (self.flow_depth > 0 || self.quote.is_some()) && !is_document_marker(line) {
            self.prefix
        } else {
            0
        }
    }

    fn scan(&mut self, line: &str) {
        if self.block_scalar.is_some() {
            return;
        }
        // Bytes, not chars: every character the scanner reacts to is ASCII, and no byte of a
        // multi-byte UTF-8 character is; columns handed to saphyr count characters.
        let bytes = line.trim_end_matches(['\n', '\r']).as_bytes();
        let column = |at: usize| bytes[..at].iter().filter(|b| (**b & 0xC0) != 0x80).count();
        // Whether the next non-blank character starts a token (so a quote or `[` opens one).
        let mut token_start = true;
        let mut token_col = 0;
        let mut properties = false;
        let mut key_col: Option<usize> = None;
        let mut dash_col: Option<usize> = None;
        let mut i = 0;
        while i < bytes.len() {
            if let Some(q) = self.quote {
                // Only the closing quote and (in double quotes) an escape matter.
                while i < bytes.len() && bytes[i] != q && !(q == b'"' && bytes[i] == b'\\') {
                    i += 1;
                }
            } else if !token_start {
                // Inside a token only blanks, comments, `:` and flow punctuation matter;
                // skipping the rest keeps long description lines cheap.
                let in_flow = self.flow_depth > 0;
                while i < bytes.len() && !ends_token_run(bytes[i], in_flow, properties) {
                    i += 1;
                }
            } else if !properties {
                // Blanks between tokens (indentation, mostly) change nothing.
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                    i += 1;
                }
            }
            if i >= bytes.len() {
                break;
            }
            let c = bytes[i];
            let next = bytes.get(i + 1).copied();
            if let Some(q) = self.quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && next == Some(b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                    token_start = false;
                }
                i += 1;
                continue;
            }
            let blank_after = next.is_none_or(|n| n == b' ' || n == b'\t');
            match c {
                b' ' | b'\t' => {
                    if properties {
                        properties = false;
                        token_start = true;
                    }
                }
                b'#' if i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t' => break,
                b'"' | b'\'' if token_start => {
                    self.quote = Some(c);
                    if self.flow_depth == 0 {
                        self.prefix = column(i) + 1;
                    }
                    token_col = i;
                }
                b'[' | b'{' if token_start || self.flow_depth > 0 => {
                    if self.flow_depth == 0 {
                        self.prefix = column(i) + 1;
                    }
                    self.flow_depth += 1;
                    self.open.push(c as char);
                    token_start = true;
                }
                b']' | b'}' if self.flow_depth > 0 => {
                    self.flow_depth -= 1;
                    self.open.pop();
                    token_start = false;
                }
                b',' if self.flow_depth > 0 => token_start = true,
                b'|' | b'>' if token_start && self.flow_depth == 0 => {
                    let parent = key_col.or(dash_col).map_or(-1, |at| column(at) as isize);
                    self.block_scalar = Some(parent);
                    return;
                }
                b'-' | b'?' if token_start && self.flow_depth == 0 && blank_after => {
                    dash_col = Some(i);
                    key_col = None;
                }
                b':' if blank_after
                    || (self.flow_depth > 0 && matches!(next, Some(b',' | b']' | b'}'))) =>
                {
                    if self.flow_depth == 0 {
                        key_col = Some(token_col);
                    }
                    token_start = true;
                }
                _ => {
                    if token_start {
                        token_col = i;
                        properties = c == b'&' || c == b'!';
                    }
                    token_start = false;
                }
            }
            i += 1;
        }
    }
}

/// The bytes [`FlowScanner::scan`] reacts to after a token's first character: a blank only
/// ends an anchor or tag (`properties`), and a comment's `#` looks back at the byte before it.
fn ends_token_run(byte: u8, in_flow: bool, properties: bool) -> bool {
    matches!(byte, b'#' | b':')
        || (properties && matches!(byte, b' ' | b'\t'))
        || (in_flow && matches!(byte, b'[' | b'{' | b']' | b'}' | b','))
}

/// Parses up to `limit` documents.
fn parse_documents(text: &str, source: &str, limit: usize) -> Result<Vec<Value>, YamlError> {
    parse_documents_as(text, source, limit, NumberMode::Float64)
}

fn parse_documents_as(
    text: &str,
    source: &str,
    limit: usize,
    numbers: NumberMode,
) -> Result<Vec<Value>, YamlError> {
    parse_documents_wanted(text, source, limit, numbers, direct::Want::All)
}

/// `parse_documents_as`, keeping of each document what `want` names when the direct loader
/// can read it (the full loader, used otherwise, keeps everything).
fn parse_documents_wanted(
    text: &str,
    source: &str,
    limit: usize,
    numbers: NumberMode,
    want: direct::Want,
) -> Result<Vec<Value>, YamlError> {
    if limit == 1
        && let Ok(docs) = fast::first_document(text, numbers, want)
    {
        return Ok(docs);
    }
    parse_documents_without_fast_path(text, source, limit, numbers, want)
}

/// The saphyr-based loaders: the direct one, then the full one for what it gives up on.
fn parse_documents_without_fast_path(
    text: &str,
    source: &str,
    limit: usize,
    numbers: NumberMode,
    want: direct::Want,
) -> Result<Vec<Value>, YamlError> {
    let tab_line = block_scalar_indentation_tab(text, limit == 1);
    if tab_line.is_none()
        && let Ok(docs) =
            direct::parse_documents(&relax_flow_indentation(text), limit, numbers, want)
    {
        return Ok(docs);
    }
    let parsed = parse_documents_saphyr(text, source, limit, numbers);
    let Some(tab_line) = tab_line else {
        return parsed;
    };
    match parsed {
        // go-yaml reads in order: a problem on an earlier line is reported first.
        Err(err @ YamlError::Syntax { line, .. }) if line < tab_line => Err(err),
        _ => Err(YamlError::Syntax {
            file: source.to_string(),
            line: tab_line,
            column: 1,
            message: BLOCK_SCALAR_TAB.to_string(),
        }),
    }
}

/// go-yaml v2's `failWantMap`.
const MERGE_WANTS_MAP: &str = "map merge requires map or sequence of maps as the value";

/// go-yaml's scanner error (saphyr's `while X, PROBLEM` shape, which `go_yaml_error` words).
const BLOCK_SCALAR_TAB: &str =
    "while scanning a block scalar, found a tab character where an indentation space is expected";

/// The 1-based line of the first tab go-yaml's scanner refuses in a block scalar's
/// indentation, which saphyr accepts: go-yaml reads a block scalar's leading spaces up to its
/// indentation (all of them while the indentation is still to be detected from the first
/// content line) and fails on a tab found before that column. `first_document`: stop at the
/// second document (go-yaml's `Unmarshal` reads no further).
fn block_scalar_indentation_tab(text: &str, first_document: bool) -> Option<usize> {
    // Only a tab can be refused, and most texts have none.
    if !text.contains('\t') {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let leading_spaces = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let mut seen_content = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if first_document && seen_content && (line.starts_with("---") || line.starts_with("...")) {
            return None;
        }
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "---" {
            seen_content = true;
        }
        let Some((parent_indent, increment)) = block_scalar_header(line) else {
            i += 1;
            continue;
        };
        let mut indent = if increment > 0 {
            parent_indent + increment
        } else {
            0
        };
        let mut max_indent = 0;
        let mut j = i + 1;
        loop {
            // The line breaks (and indentation) before a content line.
            let mut column = 0;
            while j < lines.len() {
                let spaces = leading_spaces(lines[j]);
                column = if indent == 0 {
                    spaces
                } else {
                    spaces.min(indent)
                };
                max_indent = max_indent.max(column);
                let rest = &lines[j][column..];
                if (indent == 0 || column < indent) && rest.starts_with('\t') {
                    return Some(j + 1);
                }
                if !rest.is_empty() {
                    break;
                }
                j += 1;
            }
            if indent == 0 {
                indent = max_indent.max(parent_indent + 1).max(1);
            }
            if j >= lines.len() || column != indent {
                break;
            }
            // A content line; the next one starts the next run of breaks.
            j += 1;
        }
        i = j.max(i + 1);
    }
    None
}

/// For a line ending in a block scalar header (`key: |`, `- >-`, `key: &a !!str |2`), the
/// indentation go-yaml's scanner is at (the key's column, or the entry's dash for `- |`) and
/// the explicit indentation indicator (0 without one).
fn block_scalar_header(line: &str) -> Option<(usize, usize)> {
    let content = match line.find(" #") {
        Some(comment) => &line[..comment],
        None => line,
    };
    let mut column = content.len() - content.trim_start_matches(' ').len();
    let mut rest = &content[column..];
    let mut dash_column = None;
    while let Some(after) = rest.strip_prefix('-') {
        let spaces = after.len() - after.trim_start_matches(' ').len();
        if spaces == 0 && !after.is_empty() {
            break;
        }
        dash_column = Some(column);
        column += 1 + spaces;
        rest = &after[spaces..];
    }
    let mut tokens: Vec<&str> = rest.split_whitespace().collect();
    let indicator = tokens.pop()?;
    let increment = block_indicator_increment(indicator)?;
    while tokens
        .last()
        .is_some_and(|t| t.starts_with('&') || t.starts_with('!'))
    {
        tokens.pop();
    }
    if tokens.is_empty() {
        return dash_column.map(|dash| (dash, increment));
    }
    let key = tokens.join(" ");
    if !key.ends_with(':') || key.starts_with(['[', '{', '|', '>', '#', '%', '@', '`']) {
        return None;
    }
    Some((column, increment))
}

/// `|`/`>` with an optional chomping and an optional indentation indicator (1-9), either
/// order; the indentation indicator's value.
fn block_indicator_increment(token: &str) -> Option<usize> {
    let mut chars = token.chars();
    if !matches!(chars.next()?, '|' | '>') {
        return None;
    }
    let rest: Vec<char> = chars.collect();
    let digit = |c: &char| c.is_ascii_digit() && *c != '0';
    let chomp = |c: &char| *c == '+' || *c == '-';
    match rest.as_slice() {
        [] => Some(0),
        [c] if chomp(c) => Some(0),
        [d] if digit(d) => d.to_digit(10).map(|d| d as usize),
        [c, d] | [d, c] if chomp(c) && digit(d) => d.to_digit(10).map(|d| d as usize),
        _ => None,
    }
}

fn parse_documents_saphyr(
    text: &str,
    source: &str,
    limit: usize,
    numbers: NumberMode,
) -> Result<Vec<Value>, YamlError> {
    let relaxed = relax_flow_indentation(text);
    let mut loader = Loader {
        parser: Parser::new_from_str(&relaxed),
        text: &relaxed,
        open_anchors: Vec::new(),
        anchors: HashMap::new(),
        source,
        depth: 0,
        aliases: AliasGuard::for_document(),
        first_document_only: limit == 1,
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = loader.next()?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                let (first, first_span) = loader.next()?;
                if matches!(first, Event::DocumentEnd) {
                    docs.push(Value::Null);
                } else {
                    let node = loader.node(first, first_span)?;
                    if docs.len() + 1 >= limit {
                        // go-yaml's `Unmarshal` stops at the first document's root node:
                        // whatever follows it (`{a: 1}` then `b: 2`) is never read (helm 3.17.3
                        // and 4.1.4 load such a values.yaml as `{a: 1}`).
                        docs.push(to_json(node, source, span, numbers)?);
                        break;
                    }
                    // Consume DocumentEnd.
                    let (_end, _) = loader.next()?;
                    docs.push(to_json(node, source, span, numbers)?);
                }
                if docs.len() >= limit {
                    break;
                }
                loader.aliases = AliasGuard::for_document();
            }
            _ => {}
        }
    }
    Ok(docs)
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// The text `parser` reads (alias names for messages).
    text: &'a str,
    /// Anchors of the nodes being built (go-yaml defines an anchor when its node starts).
    open_anchors: Vec<usize>,
    anchors: HashMap<usize, Node>,
    source: &'a str,
    depth: usize,
    aliases: AliasGuard,
    /// Only the first document is read: go-yaml parses its root node and nothing after it.
    first_document_only: bool,
}

/// go-yaml's defence against alias expansion bombs ("billion laughs"), shared by every YAML
/// reader of the project: go-yaml counts each node it decodes, and each node decoded through an
/// alias; once more than 100 alias-driven decodes and 1000 decodes in all have happened, the
/// share of alias-driven ones may not exceed 99% (up to 400,000 decodes), falling linearly to
/// 10% at 4,000,000 decodes. Past that it fails with `yaml: document contains excessive
/// aliasing`. An alias here costs `1 + size of its anchor's node`, as in go-yaml, but is checked
/// before the expansion is built, so a bomb never allocates.
#[derive(Default)]
pub struct AliasGuard {
    decoded: u64,
    aliased: u64,
    sizes: HashMap<usize, u64>,
}

/// go-yaml's message for a document whose aliases expand too far.
pub const EXCESSIVE_ALIASING: &str = "yaml: document contains excessive aliasing";

impl AliasGuard {
    /// A guard for one document (go-yaml counts per decoder, one per document); the document
    /// node itself counts as one decode.
    pub fn for_document() -> Self {
        Self {
            decoded: 1,
            ..Self::default()
        }
    }

    /// Counts a node about to be decoded; returns the count to pass to [`AliasGuard::anchored`].
    pub fn enter(&mut self) -> Result<u64, &'static str> {
        let start = self.decoded;
        self.decoded += 1;
        self.check()?;
        Ok(start)
    }

    /// A `<<` merge key is not decoded by go-yaml: take back its count.
    pub fn merge_key(&mut self) {
        self.decoded = self.decoded.saturating_sub(1);
    }

    /// Records the size of the node just decoded under `anchor` (started at `start`).
    pub fn anchored(&mut self, anchor: usize, start: u64) {
        if anchor > 0 {
            self.sizes.insert(anchor, self.decoded - start);
        }
    }

    /// Counts an alias to `anchor`: the alias node, then its anchor's whole node as alias work.
    pub fn alias(&mut self, anchor: usize) -> Result<(), &'static str> {
        let size = self.sizes.get(&anchor).copied().unwrap_or(1);
        self.decoded = self.decoded.saturating_add(1 + size);
        self.aliased = self.aliased.saturating_add(size);
        self.check()
    }

    fn check(&self) -> Result<(), &'static str> {
        const LOW: u64 = 400_000;
        const HIGH: u64 = 4_000_000;
        let allowed = match self.decoded {
            d if d <= LOW => 0.99,
            d if d >= HIGH => 0.10,
            d => 0.99 - 0.89 * ((d - LOW) as f64 / (HIGH - LOW) as f64),
        };
        if self.aliased > 100
            && self.decoded > 1000
            && self.aliased as f64 / self.decoded as f64 > allowed
        {
            return Err(EXCESSIVE_ALIASING);
        }
        Ok(())
    }
}

/// Collections nested deeper than this are refused, in go-yaml's words (go-yaml's own limit is
/// 10000, which the recursive loader here cannot afford on a thread's stack; only hostile input
/// nests this deep).
pub const MAX_DEPTH: usize = 1000;

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(err)) => Err(YamlError::Syntax {
                file: self.source.to_string(),
                line: err.marker().line(),
                column: err.marker().col() + 1,
                message: err.info().to_string(),
            }),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, YamlError> {
        let collection = matches!(event, Event::SequenceStart(..) | Event::MappingStart(..));
        if collection && self.depth >= MAX_DEPTH {
            return Err(YamlError::Syntax {
                file: self.source.to_string(),
                line: span.start.line(),
                column: span.start.col() + 1,
                message: format!(
                    "error converting YAML to JSON: yaml: exceeded max depth of {MAX_DEPTH}"
                ),
            });
        }
        // go-yaml's decoder words it without a line.
        let budget_error = |message: &str| YamlError::Syntax {
            file: self.source.to_string(),
            line: span.start.line(),
            column: span.start.col() + 1,
            message: format!("error converting YAML to JSON: {message}"),
        };
        let anchor = match &event {
            Event::Alias(id) => {
                if let Err(message) = self.aliases.alias(*id) {
                    return Err(budget_error(message));
                }
                0
            }
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _) => *anchor,
            _ => 0,
        };
        let start = match &event {
            Event::Alias(_) => None,
            _ => Some(self.aliases.enter().map_err(budget_error)?),
        };
        self.depth += usize::from(collection);
        self.open_anchors.push(anchor);
        let result = self.node_inner(event, span);
        self.open_anchors.pop();
        self.depth -= usize::from(collection);
        if let Some(start) = start {
            self.aliases.anchored(anchor, start);
        }
        result
    }

    fn node_inner(&mut self, event: Event<'a>, span: Span) -> Result<Node, YamlError> {
        match event {
            Event::Alias(id) if !self.anchors.contains_key(&id) => {
                if let Some(err) = self.syntax_error_further_on() {
                    return Err(err);
                }
                // An alias inside its own anchor's node: go-yaml's decoder refuses it.
                let message = if id > 0 && self.open_anchors.contains(&id) {
                    let name: String = self
                        .text
                        .chars()
                        .skip(span.start.index() + 1)
                        .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                        .collect();
                    format!(
                        "error converting YAML to JSON: yaml: anchor '{name}' value contains itself"
                    )
                } else {
                    "unknown anchor".to_string()
                };
                Err(YamlError::Syntax {
                    file: self.source.to_string(),
                    line: span.start.line(),
                    column: span.start.col() + 1,
                    message,
                })
            }
            Event::Alias(id) => self.anchors.get(&id).cloned().ok_or(YamlError::Syntax {
                file: self.source.to_string(),
                line: span.start.line(),
                column: span.start.col() + 1,
                message: "unknown anchor".to_string(),
            }),
            Event::Scalar(text, style, anchor, tag) => {
                let tag_name = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let node = resolve_scalar(&text, style, tag_name.as_deref());
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    if matches!(event, Event::StreamEnd) {
                        return Err(self.unexpected_end(span));
                    }
                    items.push(self.node(event, span)?);
                }
                let node = Node::Seq(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    if matches!(event, Event::StreamEnd) {
                        return Err(self.unexpected_end(span));
                    }
                    let is_merge = matches!(&event, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
                    let key = self.node(event, span)?;
                    if is_merge {
                        self.aliases.merge_key();
                    }
                    let (event, span) = self.next()?;
                    let value = self.node(event, span)?;
                    if is_merge {
                        // go-yaml v2 merges `<<` maps in place: their keys overwrite earlier ones.
                        // A sequence is merged last to first: earlier maps take precedence.
                        let sources = match value {
                            Node::Map(m) => vec![Node::Map(m)],
                            Node::Seq(items) if items.iter().all(|i| matches!(i, Node::Map(_))) => {
                                items.into_iter().rev().collect()
                            }
                            _ => return Err(self.decode_error(span, MERGE_WANTS_MAP)),
                        };
                        for source in sources {
                            if let Node::Map(pairs) = source {
                                for (k, v) in pairs {
                                    set_entry(&mut entries, k, v);
                                }
                            }
                        }
                        continue;
                    }
                    set_entry(&mut entries, key, value);
                }
                let node = Node::Map(entries);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            _ => Err(YamlError::Syntax {
                file: self.source.to_string(),
                line: span.start.line(),
                column: span.start.col() + 1,
                message: "unexpected YAML event".to_string(),
            }),
        }
    }

    /// go-yaml parses the whole document before it decodes it (resolving aliases, merging):
    /// a syntax error anywhere in the rest of the text is what it reports first.
    fn syntax_error_further_on(&mut self) -> Option<YamlError> {
        while let Some(event) = self.parser.next_event() {
            match event {
                Err(err) => {
                    return Some(YamlError::Syntax {
                        file: self.source.to_string(),
                        line: err.marker().line(),
                        column: err.marker().col() + 1,
                        message: err.info().to_string(),
                    });
                }
                Ok((Event::StreamEnd, _)) => return None,
                Ok((Event::DocumentEnd, _)) if self.first_document_only => return None,
                Ok(_) => {}
            }
        }
        None
    }

    /// A go-yaml decoding error (no line), unless a syntax error comes later in the text.
    fn decode_error(&mut self, span: Span, problem: &str) -> YamlError {
        self.syntax_error_further_on()
            .unwrap_or_else(|| YamlError::Syntax {
                file: self.source.to_string(),
                line: span.start.line(),
                column: span.start.col() + 1,
                message: format!("error converting YAML to JSON: yaml: {problem}"),
            })
    }

    fn unexpected_end(&self, span: Span) -> YamlError {
        YamlError::Syntax {
            file: self.source.to_string(),
            line: span.start.line(),
            column: span.start.col() + 1,
            message: "unexpected end of stream".to_string(),
        }
    }
}

/// A later duplicate key replaces the earlier value (go-yaml v2's non-strict decoding into maps).
fn set_entry(entries: &mut Vec<(Node, Node)>, key: Node, value: Node) {
    let key_text = key_string(&key);
    if let Some(slot) = entries
        .iter_mut()
        .find(|(k, _)| key_string(k).is_some() && key_string(k) == key_text)
    {
        slot.1 = value;
    } else {
        entries.push((key, value));
    }
}

/// Resolves a scalar as go-yaml v2 does (YAML 1.1 booleans, Go's number syntaxes).
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Node {
    match tag {
        Some("tag:yaml.org,2002:str") => return Node::Str(text.to_string()),
        Some("tag:yaml.org,2002:binary") => {
            use base64::Engine as _;
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            return match base64::engine::general_purpose::STANDARD.decode(compact) {
                Ok(bytes) => Node::Str(String::from_utf8_lossy(&bytes).into_owned()),
                Err(_) => Node::Str(text.to_string()),
            };
        }
        _ => {}
    }
    if style != ScalarStyle::Plain && tag.is_none() {
        return Node::Str(text.to_string());
    }
    resolve_plain(text)
}

/// go-yaml v2's plain-scalar resolution (the one resolver, shared with the emitter's quoting
/// rule); timestamps and `<<` stay text when decoding into `interface{}`.
fn resolve_plain(text: &str) -> Node {
    if let Some(i) = plain_decimal(text) {
        return Node::Int(i.into());
    }
    match crate::yaml_emit::resolve_plain(text) {
        Resolved::Null => Node::Null,
        Resolved::Bool(b) => Node::Bool(b),
        Resolved::Int(i) => Node::Int(i.into()),
        Resolved::Uint(u) => Node::Int(u.into()),
        Resolved::Float(f) => Node::Float(f),
        Resolved::Timestamp | Resolved::Merge | Resolved::Str => Node::Str(text.to_string()),
    }
}

/// Ports, replica counts and sizes: a decimal integer without sign, leading zero or `_` is
/// what go-yaml's resolver makes of it (no timestamp or YAML 1.1 word is all digits), without
/// the resolver's timestamp regex and copies.
fn plain_decimal(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 18 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes[0] == b'0' && bytes.len() > 1 {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0i64, |n, digit| n * 10 + i64::from(digit - b'0')),
    )
}

/// A map key as sigs.k8s.io/yaml turns it into a JSON object key.
fn key_string(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) => Some(s.clone()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Int(i) => Some(i.to_string()),
        // sigs.k8s.io/yaml: strconv.FormatFloat(key, 'g', -1, 32).
        Node::Float(f) => Some(strconv::format_float32(*f, 'g', None)),
        Node::Null | Node::Seq(_) | Node::Map(_) => None,
    }
}

/// A decoded node as Go's `%#v` prints what go-yaml v2 decoded into `interface{}`
/// (sigs.k8s.io/yaml's `unsupported map key` message): `1`, `"x"`, `[]interface {}{1, "x"}`.
fn go_value_text(node: &Node, nested: bool) -> String {
    match node {
        Node::Null if nested => "interface {}(nil)".to_string(),
        Node::Null => "<nil>".to_string(),
        Node::Bool(b) => b.to_string(),
        // go-yaml decodes past int64 into uint64, which `%#v` prints in hex.
        Node::Int(i) if *i > i64::MAX as i128 => format!("{i:#x}"),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => strconv::format_float(*f, 'g', None),
        Node::Str(s) => strconv::quote(s),
        Node::Seq(items) => {
            let items: Vec<String> = items.iter().map(|i| go_value_text(i, true)).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Node::Map(entries) => {
            let mut pairs: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_value_text(k, true), go_value_text(v, true)))
                .collect();
            pairs.sort();
            format!("map[interface {{}}]interface {{}}{{{}}}", pairs.join(", "))
        }
    }
}

fn to_json(node: Node, source: &str, span: Span, numbers: NumberMode) -> Result<Value, YamlError> {
    Ok(match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) if numbers == NumberMode::AsWritten => {
            if let Ok(n) = i64::try_from(i) {
                Value::Number(n.into())
            } else if let Ok(n) = u64::try_from(i) {
                Value::Number(n.into())
            } else {
                float_value(i as f64, source, span)?
            }
        }
        // Go's json.Marshal prints an integral float64 below 1e21 without a fraction.
        Node::Float(f)
            if numbers == NumberMode::AsWritten
                && f.fract() == 0.0
                && f.abs() < 1e21
                && (i64::MIN as f64..=i64::MAX as f64).contains(&f) =>
        {
            Value::Number((f as i64).into())
        }
        // JSON decoding into interface{} makes every number a float64.
        Node::Int(i) => float_value(i as f64, source, span)?,
        Node::Float(f) => float_value(f, source, span)?,
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => Value::Array(
            items
                .into_iter()
                .map(|n| to_json(n, source, span, numbers))
                .collect::<Result<_, _>>()?,
        ),
        Node::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let Some(key) = key_string(&key) else {
                    let message = if matches!(key, Node::Null) {
                        // sigs.k8s.io/yaml's words, the value printed by Go's `%v`.
                        format!(
                            "error converting YAML to JSON: unsupported map key of type: %!s(<nil>), key: <nil>, value: {}",
                            go_value_text(&value, false)
                        )
                    } else {
                        "unsupported map key (list or map)".to_string()
                    };
                    return Err(YamlError::Syntax {
                        file: source.to_string(),
                        line: span.start.line(),
                        column: span.start.col() + 1,
                        message,
                    });
                };
                map.insert(key, to_json(value, source, span, numbers)?);
            }
            Value::Object(map)
        }
    })
}

fn float_value(f: f64, source: &str, span: Span) -> Result<Value, YamlError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| YamlError::Syntax {
            file: source.to_string(),
            line: span.start.line(),
            column: span.start.col() + 1,
            message: format!(
                "error converting YAML to JSON: json: unsupported value: {}",
                if f.is_nan() {
                    "NaN"
                } else if f > 0.0 {
                    "+Inf"
                } else {
                    "-Inf"
                }
            ),
        })
}

/// go-yaml v2's wording of a parse error from saphyr's message and 1-based line (as
/// [`YamlError::Syntax`] keeps them):
/// sigs.k8s.io/yaml's `error converting YAML to JSON: yaml: line N: PROBLEM`.
pub fn go_yaml_error(info: &str, marker_line: usize, text: &str) -> String {
    let mut marker_line = marker_line;
    // Messages keelson's readers already word as sigs.k8s.io/yaml does.
    if info.starts_with("error converting YAML to JSON") {
        return info.to_string();
    }
    let mut parser_error = info.starts_with("while parsing ");
    // Where saphyr's scanner refuses a token, go-yaml's scanner takes it and its parser fails.
    let reworded = match info {
        // A `key:` inside a flow collection left open on an earlier line.
        "illegal placement of ':' indicator" => match open_flow_bracket(text, marker_line) {
            Some(bracket) if flow_scalar_after_comment(text, marker_line).is_some() => {
                marker_line = flow_scalar_after_comment(text, marker_line).unwrap_or(marker_line);
                Some(if bracket == '[' {
                    "did not find expected ',' or ']'"
                } else {
                    "did not find expected ',' or '}'"
                })
            }
            Some('[') => Some("did not find expected ',' or ']'"),
            Some(_) => Some("did not find expected ',' or '}'"),
            None => None,
        },
        // A `]` or `}` with no flow collection open: the block collection around it fails.
        "misplaced bracket" => {
            let line = text
                .lines()
                .nth(marker_line.saturating_sub(1))
                .unwrap_or_default()
                .trim_start();
            Some(if line.starts_with("- ") || line == "-" {
                "did not find expected '-' indicator"
            } else if line.contains(':') {
                "did not find expected key"
            } else {
                "did not find expected <document start>"
            })
        }
        // go-yaml ends the block scalar at a less indented line; the collection around it
        // then fails on that line's content.
        "wrongly indented line in block scalar" => {
            let lines: Vec<&str> = text.lines().collect();
            let bad = marker_line.saturating_sub(1);
            let indentation = |line: &str| line.len() - line.trim_start().len();
            let bad_indent = lines.get(bad).map(|l| indentation(l)).unwrap_or(0);
            lines[..bad.min(lines.len())]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty() && indentation(l) < bad_indent)
                .and_then(|header| {
                    let header = header.trim_start();
                    if header.starts_with("- ") || header == "-" {
                        Some("did not find expected '-' indicator")
                    } else if header.contains(':') {
                        Some("did not find expected key")
                    } else {
                        None
                    }
                })
        }
        // go-yaml's scanner takes a second scalar on the line of a quoted one (`'q' "d"`); its
        // parser then fails on the collection around them, on that line.
        "invalid trailing content after double-quoted scalar"
            if open_flow_bracket(text, marker_line).is_none() =>
        {
            trailing_scalar_problem(text, marker_line)
        }
        _ => None,
    };
    let info = match reworded {
        Some(problem) => {
            parser_error = true;
            problem
        }
        None => info,
    };
    // Drop saphyr's "while scanning/parsing X, " context.
    let problem = match info.strip_prefix("while ") {
        Some(rest) => rest.split_once(", ").map(|(_, p)| p).unwrap_or(rest),
        None => info,
    };
    let problem =
        if problem.starts_with("unexpected character") || problem.starts_with("tabs disallowed") {
            "found character that cannot start any token".to_string()
        } else if problem == "simple key expected" || problem == "simple key expect ':'" {
            // A multi-line plain scalar less indented than its key.
            "could not find expected ':'".to_string()
        } else if problem.contains("unknown anchor") {
            match unknown_alias(text) {
                Some(name) => format!("unknown anchor '{name}' referenced"),
                None => "unknown anchor referenced".to_string(),
            }
        } else if let Some(rest) = problem.strip_prefix("expected ") {
            format!("did not find expected {rest}")
        } else {
            problem.to_string()
        };
    let zero_based = marker_line.saturating_sub(1);
    let line = if zero_based == 0 {
        0
    } else if parser_error {
        zero_based
    } else {
        zero_based + 1
    };
    if line == 0 || problem.starts_with("unknown anchor") {
        format!("error converting YAML to JSON: yaml: {problem}")
    } else {
        format!("error converting YAML to JSON: yaml: line {line}: {problem}")
    }
}

/// What go-yaml's parser says about a scalar after a quoted one on 1-based line `line`, in the
/// two shapes checked against helm 3.17.3 and 4.1.4: the quoted scalar is a mapping value on
/// that line (`a: "x" y`, `- a: 'x' "y"`), or it starts the line deeper than the mapping key
/// above it (a block scalar's value ended by a less indented `'q' "d"`, differential seed 55).
/// Other shapes (a sequence entry, a line at the key's own indentation, a multi-line quoted
/// scalar) fail differently in go-yaml and keep saphyr's words.
fn trailing_scalar_problem(text: &str, line: usize) -> Option<&'static str> {
    let lines: Vec<&str> = text.lines().collect();
    let bad = lines.get(line.checked_sub(1)?)?;
    let indentation = |l: &str| l.len() - l.trim_start().len();
    let quote = bad.find(['"', '\''])?;
    let before = bad[..quote].trim();
    if before.ends_with(':') {
        return Some("did not find expected key");
    }
    if !before.is_empty() {
        return None;
    }
    let own = indentation(bad);
    let parent = lines[..line - 1].iter().rev().find(|l| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#') && indentation(l) <= own
    })?;
    let parent_body = parent.trim_start();
    let is_mapping_key = !parent_body.starts_with(['-', '"', '\'', '[', '{'])
        && (parent_body.contains(": ") || parent_body.ends_with(':'));
    (indentation(parent) < own && is_mapping_key).then_some("did not find expected key")
}

/// For a `key:` saphyr refuses inside a flow collection (1-based line `colon_line`): when a
/// plain scalar of the same entry ended at a comment on an earlier line, go-yaml's parser fails
/// at the scalar after that comment (`[1, 2` / `# c` / `tab` / `x: 1` fails on `tab`'s line,
/// helm 3.17.3 and 4.1.4, differential seed 84); the 1-based line of that scalar.
fn flow_scalar_after_comment(text: &str, colon_line: usize) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let colon = colon_line.checked_sub(1)?;
    lines.get(colon)?;
    let split = |l: &str| -> (String, bool) {
        let body = l.trim_start();
        if body.starts_with('#') {
            return (String::new(), true);
        }
        match l.find(" #").or_else(|| l.find("\t#")) {
            Some(at) => (l[..at].trim().to_string(), true),
            None => (l.trim().to_string(), false),
        }
    };
    // The entry's lines: back to the line holding the last `[`, `{` or `,` before the colon.
    let mut start = colon;
    let scalar_before_start;
    loop {
        if start == 0 {
            return None;
        }
        start -= 1;
        let (content, _) = split(lines[start]);
        if let Some(at) = content.rfind(['[', '{', ',']) {
            scalar_before_start = !content[at + 1..].trim().is_empty();
            break;
        }
    }
    let mut scalar_seen = scalar_before_start;
    let mut ended = false;
    if split(lines[start]).1 && scalar_seen {
        ended = true;
    }
    for (i, line) in lines.iter().enumerate().take(colon + 1).skip(start + 1) {
        let (content, comment) = split(line);
        if content.is_empty() {
            ended |= comment && scalar_seen;
            continue;
        }
        if ended {
            return Some(i + 1);
        }
        scalar_seen = true;
        ended = comment;
    }
    None
}

/// The first `*alias` in `text` without an `&anchor` before it.
fn unknown_alias(text: &str) -> Option<String> {
    let name_at = |i: usize| -> String {
        text[i..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
            .collect()
    };
    let mut defined: Vec<String> = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '&' => defined.push(name_at(i + 1)),
            '*' => {
                let name = name_at(i + 1);
                if !name.is_empty() && !defined.contains(&name) {
                    return Some(name);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Value {
        match parse_first_document(text, "test.yaml") {
            Ok(v) => v,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    /// helm 3.17.3 and 4.1.4 (`{{ .Values | toJson }}`): out-of-range floats stay strings, an
    /// underflow is 0, and a tab at or past a block scalar's indentation is content.
    #[test]
    fn out_of_range_floats_and_tabs_in_block_scalar_content_like_helm() {
        let v =
            parse("a: 1e400\nb: -1e400\nc: .5e999\nd: 1e-400\ne: |\n  x\n  \tin\nf: >2\n  \ty\n");
        assert_eq!(
            v,
            json!({"a": "1e400", "b": "-1e400", "c": ".5e999", "d": 0.0, "e": "x\n\tin\n", "f": "\ty\n"})
        );
    }

    #[test]
    fn numbers_become_floats() {
        let v = parse("a: 1\nb: 12345678\nc: 0x1F\nd: 0777\ne: 1_000\nf: 1e3\ng: .5\nh: 08\n");
        assert_eq!(
            v,
            json!({"a": 1.0, "b": 12345678.0, "c": 31.0, "d": 511.0, "e": 1000.0, "f": 1000.0, "g": 0.5, "h": 8.0})
        );
        assert!(v["a"].is_f64());
    }

    #[test]
    fn yaml11_booleans_and_keys() {
        // Seen with helm 3.17.3: `y:`/`n:` keys are booleans too, a later `on:` replaces `y:`.
        let v = parse("y: 2\nn: 3\non: 4\nx: yes\nw: Off\nz: 'yes'\nq: ~\n1: one\n");
        assert_eq!(
            v,
            json!({"true": 4.0, "false": 3.0, "x": true, "w": false, "z": "yes", "q": null, "1": "one"})
        );
    }

    #[test]
    fn timestamps_stay_strings_and_versions_too() {
        let v = parse("t: 2001-12-14\nv: 1.2.3\nw: 1.10\n");
        assert_eq!(v, json!({"t": "2001-12-14", "v": "1.2.3", "w": 1.1}));
    }

    #[test]
    fn anchors_and_merges() {
        let v = parse("base: &b\n  x: 1\n  k: 2\nother:\n  <<: *b\n  k: 3\nlist: [*b]\n");
        assert_eq!(
            v,
            json!({"base": {"x": 1.0, "k": 2.0}, "other": {"x": 1.0, "k": 3.0}, "list": [{"x": 1.0, "k": 2.0}]})
        );
    }

    /// helm 3.17.3 and 4.1.4 (`{{ .Values.c | toJson }}`): a merged sequence's earlier maps
    /// win.
    #[test]
    fn merge_sequences_give_earlier_maps_precedence() {
        let v = parse("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n");
        assert_eq!(v["c"], json!({"true": 1.0, "x": 1.0, "z": 2.0}));
    }

    /// helm 3.17.3 and 4.1.4 (`.Values` and `fromYaml` alike): nothing after the first
    /// document's root node is read, not even a line that cannot follow it.
    #[test]
    fn only_the_first_root_node_is_read() {
        assert_eq!(parse("{a: 1}\nb: 2\n"), json!({"a": 1.0}));
        assert!(parse_values("{a: *nope}\nb: 2\n", "v.yaml").is_err());
    }

    #[test]
    fn empty_and_non_map_documents() {
        assert!(matches!(parse_values("", "e.yaml"), Ok(m) if m.is_empty()));
        assert!(matches!(parse_values("# only a comment\n", "e.yaml"), Ok(m) if m.is_empty()));
        assert!(matches!(
            parse_values("- a\n", "list.yaml"),
            Err(YamlError::NotAMap { .. })
        ));
    }

    /// Lines inside flow collections and quoted scalars move right; block scalar content,
    /// comments and document markers do not; the line count stays.
    #[test]
    fn flow_continuation_lines_are_reindented_for_saphyr() {
        let text = "a:\n  b: [\n\"x\",\n  ]\n  c: \"p\nq\"\n  d: |\n    [not flow\n  # it's [\n  e: 'it''s\n---\n";
        let relaxed = relax_flow_indentation(text);
        assert_eq!(
            relaxed,
            "a:\n  b: [\n      \"x\",\n        ]\n  c: \"p\n      q\"\n  d: |\n    [not flow\n  # it's [\n  e: 'it''s\n---\n"
        );
        assert_eq!(relaxed.lines().count(), text.lines().count());
        let parsed = parse_first_document("a:\n  b: [\n\"x\",\n  ]\n  c: \"p\nq\"\n", "t");
        assert_eq!(
            parsed.ok(),
            Some(serde_json::json!({"a": {"b": ["x"], "c": "p q"}}))
        );
        assert!(matches!(
            relax_flow_indentation("a: 1\nb: [x]\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = parse_first_document("a: [1, 2\nb: c\n", "bad.yaml").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("bad.yaml:"), "{text}");
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_crash() {
        let deep = format!("a: {}{}", "[".repeat(5000), "]".repeat(5000));
        let err = parse_first_document(&deep, "deep.yaml").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(!text.is_empty(), "deep nesting must fail");
    }

    #[test]
    fn infinity_is_rejected_like_json_marshal() {
        assert!(parse_first_document("a: .inf\n", "inf.yaml").is_err());
    }

    #[test]
    fn manifests_keep_integers_and_read_yaml11_forms() {
        let docs = parse_manifest_documents(
            "---\n# Source: a.yaml\nmode: 0755\nother: 0644\nflag: on\nno: off\nratio: 0.5\nbig: 2.0\nport: 8080\n---\n---\nb: yes\n",
            "manifest",
        )
        .unwrap_or_default();
        assert_eq!(docs.len(), 3, "{docs:?}");
        assert_eq!(
            docs[0],
            json!({"mode": 493, "other": 420, "flag": true, "false": false, "ratio": 0.5, "big": 2, "port": 8080})
        );
        assert_eq!(
            serde_json::to_string(&docs[0]["mode"]).unwrap_or_default(),
            "493"
        );
        assert_eq!(docs[1], Value::Null);
        assert_eq!(docs[2], json!({"b": true}));
    }

    /// A "billion laughs": nine levels of nine aliases each.
    pub(crate) fn laughs(levels: usize) -> String {
        let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n".to_string();
        for level in 1..=levels {
            let previous = format!("*a{}", level - 1);
            text.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                [previous.as_str(); 9].join(", ")
            ));
        }
        text
    }

    #[test]
    fn alias_bombs_are_refused_like_go_yaml() {
        for (text, what) in [
            (laughs(9), "values"),
            (format!("---\n{}", laughs(9)), "manifest"),
        ] {
            let started = std::time::Instant::now();
            let err = if what == "values" {
                parse_values(&text, "bomb.yaml").err()
            } else {
                parse_manifest_documents(&text, "bomb.yaml").err()
            };
            let text = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains(EXCESSIVE_ALIASING), "{what}: {text}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
        // go-yaml's counts for two levels of ten aliases: 1358 decodes, 1320 through aliases
        // (97.2%, allowed); three levels: 13580 decodes, 13530 through aliases (99.6%, refused).
        let ten = |levels: usize| {
            let mut text = format!("a0: &a0 [{}]\n", ["x"; 10].join(", "));
            for level in 1..=levels {
                let previous = format!("*a{}", level - 1);
                text.push_str(&format!(
                    "a{level}: &a{level} [{}]\n",
                    [previous.as_str(); 10].join(", ")
                ));
            }
            text
        };
        assert!(parse_values(&ten(2), "ok.yaml").is_ok());
        let refused = parse_values(&ten(3), "bomb.yaml")
            .err()
            .map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .unwrap_or_default()
                .contains(EXCESSIVE_ALIASING),
            "{refused:?}"
        );
        // Ordinary anchors are fine.
        assert!(parse_values("base: &b {x: 1}\nother: *b\n", "ok.yaml").is_ok());
    }

    /// The flow relaxer as it read text char by char (before it scanned bytes), to check the
    /// byte scanner against.
    mod reference {

        pub(super) fn relax_flow_indentation(text: &str) -> std::borrow::Cow<'_, str> {
            if !text.contains(['[', '{', '"', '\'']) {
                return std::borrow::Cow::Borrowed(text);
            }
            let mut scanner = FlowScanner::default();
            let mut out = String::with_capacity(text.len() + 64);
            let mut changed = false;
            for line in text.split_inclusive('\n') {
                let prefix = scanner.line_prefix(line);
                if prefix > 0 {
                    changed = true;
                    out.extend(std::iter::repeat_n(' ', prefix));
                }
                out.push_str(line);
                scanner.scan(line);
            }
            if changed {
                std::borrow::Cow::Owned(out)
            } else {
                std::borrow::Cow::Borrowed(text)
            }
        }

        /// Just enough of a YAML scanner to know, line by line, whether a line begins inside a flow
        /// collection, a quoted scalar or a block scalar.
        #[derive(Default)]
        struct FlowScanner {
            flow_depth: usize,
            /// The open flow brackets, innermost last.
            open: Vec<char>,
            /// The open quote of a multi-line quoted scalar.
            quote: Option<char>,
            /// Spaces that put a continuation line right of the construct's start.
            prefix: usize,
            /// Inside a block scalar: lines indented more than this (or blank) are its content.
            block_scalar: Option<isize>,
        }

        fn is_document_marker(line: &str) -> bool {
            (line.starts_with("---") || line.starts_with("..."))
                && line[3..].chars().next().is_none_or(char::is_whitespace)
        }

        impl FlowScanner {
            /// Extra spaces for `line`, and whether it is block scalar content (then not scanned).
            fn line_prefix(&mut self, line: &str) -> usize {
                if let Some(parent) = self.block_scalar {
                    let body = line.trim_end_matches(['\n', '\r']);
                    let indent = body.len() - body.trim_start_matches(' ').len();
                    if !is_document_marker(line)
                        && (body.trim().is_empty() || indent as isize > parent)
                    {
                        return 0;
                    }
                    self.block_scalar = None;
                }
                if (self.flow_depth > 0 || self.quote.is_some()) && !is_document_marker(line) {
                    self.prefix
                } else {
                    0
                }
            }

            fn scan(&mut self, line: &str) {
                if self.block_scalar.is_some() {
                    return;
                }
                let chars: Vec<char> = line.trim_end_matches(['\n', '\r']).chars().collect();
                // Whether the next non-blank character starts a token (so a quote or `[` opens one).
                let mut token_start = true;
                let mut token_col = 0;
                let mut properties = false;
                let mut key_col: Option<usize> = None;
                let mut dash_col: Option<usize> = None;
                let mut i = 0;
                while i < chars.len() {
                    let c = chars[i];
                    let next = chars.get(i + 1).copied();
                    if let Some(q) = self.quote {
                        if q == '"' && c == '\\' {
                            i += 2;
                            continue;
                        }
                        if c == q {
                            if q == '\'' && next == Some('\'') {
                                i += 2;
                                continue;
                            }
                            self.quote = None;
                            token_start = false;
                        }
                        i += 1;
                        continue;
                    }
                    let blank_after = next.is_none_or(|n| n == ' ' || n == '\t');
                    match c {
                        ' ' | '\t' => {
                            if properties {
                                properties = false;
                                token_start = true;
                            }
                        }
                        '#' if i == 0 || chars[i - 1] == ' ' || chars[i - 1] == '\t' => break,
                        '"' | '\'' if token_start => {
                            self.quote = Some(c);
                            if self.flow_depth == 0 {
                                self.prefix = i + 1;
                            }
                            token_col = i;
                        }
                        '[' | '{' if token_start || self.flow_depth > 0 => {
                            if self.flow_depth == 0 {
                                self.prefix = i + 1;
                            }
                            self.flow_depth += 1;
                            self.open.push(c);
                            token_start = true;
                        }
                        ']' | '}' if self.flow_depth > 0 => {
                            self.flow_depth -= 1;
                            self.open.pop();
                            token_start = false;
                        }
                        ',' if self.flow_depth > 0 => token_start = true,
                        '|' | '>' if token_start && self.flow_depth == 0 => {
                            let parent = key_col.or(dash_col).map_or(-1, |c| c as isize);
                            self.block_scalar = Some(parent);
                            return;
                        }
                        '-' | '?' if token_start && self.flow_depth == 0 && blank_after => {
                            dash_col = Some(i);
                            key_col = None;
                        }
                        ':' if blank_after
                            || (self.flow_depth > 0 && matches!(next, Some(',' | ']' | '}'))) =>
                        {
                            if self.flow_depth == 0 {
                                key_col = Some(token_col);
                            }
                            token_start = true;
                        }
                        _ => {
                            if token_start {
                                token_col = i;
                                properties = c == '&' || c == '!';
                            }
                            token_start = false;
                        }
                    }
                    i += 1;
                }
            }
        }
    }

    /// Everything the direct loader accepts, the full loader reads the same: every YAML file of
    /// the fixtures, each with lines dropped and cut short, and hand-written edge cases, as
    /// values (first document, float64 numbers) and as manifests (all documents, integers as
    /// written), whole and as manifest heads.
    #[test]
    fn direct_loader_agrees_with_the_full_loader() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let mut texts: Vec<String> = [
            "a: 1\na: 2\n",
            "a: &x {b: 1, c: [1, 2]}\nd: *x\ne:\n  <<: *x\n  b: 3\n",
            "a: &x {b: 1}\nc: &y {b: 2, d: 4}\ne:\n  <<: [*x, *y]\n",
            "<<: {a: 1}\na: 2\n",
            "a: 2\n<<: {a: 1}\n",
            "e:\n  <<: 5\n",
            "? [a]\n: 1\n",
            "~: 1\n",
            "1: a\n1.5: b\ntrue: c\n0x10: d\n'1': e\n",
            "a: .inf\na: 1\n",
            "a: !!float '1'\nb: !!str 12\nc: !!binary aGVsbG8=\nd: !!int '7'\n",
            "a: 007\nb: 0\nc: 123456789012345678901234\nd: -12\ne: +3\nf: 1_0\ng: 0b101\n",
            "a: 2001-12-14\nb: <<\nc: null\nd: ~\ne:\nf: ''\ng: \"x\\ty\"\n",
            "a: 1e400\nb: 9223372036854775808\nc: 18446744073709551616\nd: 2.0\ne: 1e20\n",
            "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    helm.sh/hook: pre-install\n  labels: {a: b}\nspec: {x: .nan}\n",
            "kind: [a]\nmetadata: 5\n",
            "metadata: {name: 5, annotations: {a: 1}}\n",
            "kind: A\nkind: B\nmetadata: {name: a}\nmetadata: {annotations: {x: y}}\n",
            "a: &k x\nkind: *k\nspec: &s {z: 1}\nmetadata: {name: n, annotations: *s}\n",
            "- a\n- b\n",
            "plain\n",
            "---\n---\na: 1\n---\n- x\n...\n",
            "{a: 1}\nb: 2\n",
            "&a [*a]\n",
            "a: [\n\"x\",\n  ]\nb: \"p\nq\"\n",
            "é: [ü, \"ö\n  ä\"]\nb: 'x\n  y'\n",
            "a: |\n  \tx\n",
            "a: &x [\n1,\n2]\nb: !!str \"q\n  r\"\nc: &y !t 'p\nq'\n",
            "a: {b: [\n  c, d],\ne: 'x\ny'}\nf: [g: h,\ni]   # [\n",
            "- [a,\nb]\n- \"c\n d\" # x\n-   &a   [x,\ny]\n- \"é \\\"[\n{\"\n",
            "k: v # \"[\nl: a:b [c\nm: - [x\n,y]\n? [a,\nb]\n: c\n",
            "a: |\n\tx\n",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        texts.push(tests::laughs(3));
        let mut files = vec![fixtures];
        while let Some(path) = files.pop() {
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    files.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
                    && let Ok(text) = std::fs::read_to_string(&path)
                {
                    texts.push(text);
                }
            }
        }
        assert!(texts.len() > 100, "fixtures not found");
        let mut variants = Vec::new();
        for text in &texts {
            variants.push(text.clone());
            if text.len() > 4000 {
                continue;
            }
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for skip in 0..lines.len() {
                let mut without = String::new();
                let mut cut = String::new();
                for (i, line) in lines.iter().enumerate() {
                    if i != skip {
                        without.push_str(line);
                    }
                    if i < skip {
                        cut.push_str(line);
                    }
                }
                cut.extend(lines[skip].chars().take(lines[skip].chars().count() / 2));
                variants.push(without);
                variants.push(cut);
            }
        }
        let mut direct_read = 0;
        for text in &variants {
            for (limit, numbers) in [
                (1, NumberMode::Float64),
                (usize::MAX, NumberMode::AsWritten),
            ] {
                let relaxed = relax_flow_indentation(text);
                assert_eq!(relaxed, reference::relax_flow_indentation(text), "{text:?}");
                let tab = block_scalar_indentation_tab(text, limit == 1);
                let full = parse_documents_saphyr(text, "t.yaml", limit, numbers);
                if let Ok(direct) =
                    direct::parse_documents(&relaxed, limit, numbers, direct::Want::All)
                {
                    direct_read += 1;
                    if tab.is_none() {
                        assert_eq!(full.as_ref().ok(), Some(&direct), "{text:?}");
                    }
                }
                let Ok(heads) =
                    direct::parse_documents(&relaxed, limit, numbers, direct::Want::ManifestRoot)
                else {
                    continue;
                };
                let full =
                    full.unwrap_or_else(|e| panic!("{text:?}: direct head read, full failed: {e}"));
                assert_eq!(heads.len(), full.len(), "{text:?}");
                for (head, doc) in heads.iter().zip(&full) {
                    match (head, doc) {
                        (Value::Object(head), Value::Object(doc)) => {
                            assert_eq!(head.get("kind"), doc.get("kind"), "{text:?}");
                            let field =
                                |m: Option<&Value>, f: &str| m.and_then(|m| m.get(f)).cloned();
                            assert_eq!(
                                field(head.get("metadata"), "name"),
                                field(doc.get("metadata"), "name"),
                                "{text:?}"
                            );
                            assert_eq!(
                                field(head.get("metadata"), "annotations"),
                                field(doc.get("metadata"), "annotations"),
                                "{text:?}"
                            );
                            assert_eq!(
                                head.get("metadata").map(json_type_name),
                                doc.get("metadata").map(json_type_name),
                                "{text:?}"
                            );
                        }
                        _ => assert_eq!(head, doc, "{text:?}"),
                    }
                }
            }
        }
        assert!(
            direct_read > variants.len() / 2,
            "{direct_read} of {}",
            variants.len()
        );
    }

    #[test]
    fn block_scalars_are_strings() {
        let v = parse("a: |\n  line1\n  line2\nb: >-\n  folded\n  text\n");
        assert_eq!(v, json!({"a": "line1\nline2\n", "b": "folded text"}));
    }
}
