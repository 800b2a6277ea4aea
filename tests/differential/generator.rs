//! Random charts for differential testing against the real helm, fully determined by a seed.
//!
//! A chart is a list of fragments (values.yaml entries, `define`s in `_helpers.tpl`, documents
//! in template files), each a list of lines, so a difference can be minimized by deleting
//! fragments and lines. The grammar aims at the corners where a reimplementation of Go's
//! text/template, Sprig and go-yaml v2 can slip: every Go number literal form, whitespace
//! trimming, nested control flow with variables, Sprig calls with argument types the function
//! does not expect, and YAML with odd indentation, anchors, flow collections and multi-line
//! scalars, both in values.yaml and in the rendered manifests helm parses.

use std::fmt::Write as _;
use std::path::Path;

/// SplitMix64: tiny, fast and good enough to spread choices; the seed alone decides the chart.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EED_CAFE_F00D_D00D)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        (self.next() % 100) < u64::from(percent)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn range(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }
}

/// One deletable piece of a file: its lines.
pub type Fragment = Vec<String>;

/// A generated chart: `Chart.yaml`, values.yaml entries, helper `define`s and template files
/// (each a list of documents).
#[derive(Clone, Debug)]
pub struct GenChart {
    pub chart_yaml: Fragment,
    pub values: Vec<Fragment>,
    pub helpers: Vec<Fragment>,
    pub templates: Vec<Vec<Fragment>>,
}

impl GenChart {
    pub fn values_text(&self) -> String {
        join_fragments(&self.values)
    }

    pub fn helpers_text(&self) -> String {
        join_fragments(&self.helpers)
    }

    pub fn template_text(&self, index: usize) -> String {
        join_fragments(&self.templates[index])
    }

    /// Writes the chart under `dir` (created; an existing chart there is replaced).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir.join("templates"))?;
        std::fs::write(dir.join("Chart.yaml"), self.chart_yaml.join("\n") + "\n")?;
        std::fs::write(dir.join("values.yaml"), self.values_text())?;
        if !self.helpers.is_empty() {
            std::fs::write(dir.join("templates/_helpers.tpl"), self.helpers_text())?;
        }
        for index in 0..self.templates.len() {
            std::fs::write(
                dir.join(format!("templates/t{index}.yaml")),
                self.template_text(index),
            )?;
        }
        Ok(())
    }

    /// The chart as text: every file under a `# FILE` header (for reports).
    pub fn listing(&self) -> String {
        let mut out = String::new();
        let mut file = |name: &str, text: &str| {
            let _ = writeln!(out, "# ---- {name}");
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        };
        file("Chart.yaml", &(self.chart_yaml.join("\n") + "\n"));
        file("values.yaml", &self.values_text());
        if !self.helpers.is_empty() {
            file("templates/_helpers.tpl", &self.helpers_text());
        }
        for index in 0..self.templates.len() {
            file(
                &format!("templates/t{index}.yaml"),
                &self.template_text(index),
            );
        }
        out
    }
}

fn join_fragments(fragments: &[Fragment]) -> String {
    let mut text = String::new();
    for line in fragments.iter().flatten() {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Number literals in every form Go's text/template lexer and `strconv` take (and a few it
/// refuses), as template constants.
const GO_NUMBERS: &[&str] = &[
    "0",
    "7",
    "-3",
    "+4",
    "42",
    "0x1F",
    "0X1f",
    "0o17",
    "0O17",
    "017",
    "0755",
    "0b101",
    "0B11",
    "1_000",
    "0x_1F",
    "0b_1_0",
    "1_0.5",
    "1.5",
    ".5",
    "5.",
    "-.25",
    "1e3",
    "1E-2",
    "2.5e+3",
    "0x1p4",
    "0x1p-2",
    "0x1.8p1",
    "0X.8p0",
    "0x1p60",
    "1i",
    "2.5i",
    "0x10i",
    "1+2i",
    "-1-0.5i",
    "'a'",
    "'\\n'",
    "'\\x41'",
    "'\\u00e9'",
    "'\\''",
    "'\\\\'",
    "'é'",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "1e308",
    "4e-320",
    "0.1",
    "100000000",
    "123456789",
    "1e21",
    "1e20",
    "0.000001",
    "0.0000001",
    "3.0",
];

/// Number literals the lexer or strconv refuses, rarely used.
const BAD_GO_NUMBERS: &[&str] = &[
    "08", "0x", "1__0", "0b2", "1e", "'ab'", "0x1.8", "1_", "0o8",
];

const GO_STRINGS: &[&str] = &[
    "\"\"",
    "\"a\"",
    "\"Hello World\"",
    "\"a b  c\"",
    "\"x\\ty\"",
    "\"line1\\nline2\"",
    "\"\\u00e9t\\u00e9\"",
    "\"quote\\\"d\"",
    "\"12\"",
    "\"3.5\"",
    "\"-7\"",
    "\"0x10\"",
    "\"1e3\"",
    "\"true\"",
    "\"null\"",
    "\"a,b,c\"",
    "\"a.b.c\"",
    "\"key: value\"",
    "\"- item\"",
    "\"  padded  \"",
    "\"CamelCase_snake-kebab\"",
    "\"1.2.3\"",
    "\">=1.0.0\"",
    "\"~1.2\"",
    "\"[a-z]+\"",
    "\"a<b>&c\"",
    "\"#hash\"",
    "`raw\\nstring`",
    "`multi\nline raw`",
    "\"%d %s\"",
    "\"aGVsbG8=\"",
    "\"{\\\"a\\\": 1}\"",
    "\"[1, 2]\"",
    "\"a: [1, {b: c}]\"",
];

/// Scalars for YAML documents (values.yaml and rendered manifests), go-yaml v2's resolver's
/// corner cases among them.
const YAML_SCALARS: &[&str] = &[
    "0",
    "-0",
    "+1",
    "12",
    "012",
    "0o17",
    "0x1F",
    "0X1f",
    "0b101",
    "1_000",
    "0x_1F",
    "1e3",
    "1E+3",
    "1.5",
    ".5",
    "5.",
    "-.5",
    "1.0",
    "12345678",
    "123456789012",
    "9007199254740993",
    "18446744073709551615",
    "-9223372036854775808",
    "1e400",
    ".inf",
    "-.Inf",
    ".NaN",
    "0.1",
    "3.0e-5",
    "+.5",
    "1:20",
    "0777",
    "08",
    "1_2.5",
    "true",
    "True",
    "TRUE",
    "yes",
    "Yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "Y",
    "~",
    "null",
    "Null",
    "NULL",
    "hello",
    "a b",
    "'single'",
    "\"dq\"",
    "\"esc \\t \\x41 \\u00e9 \\\" end\"",
    "'it''s'",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "12:30",
    "a#b",
    "x # comment",
    "-dash",
    "%pct",
    "!!str 12",
    "!!float 1",
    "!!int \"7\"",
    "!!binary aGVsbG8=",
    "\"\"",
    "''",
    "\"1.0\"",
    "'0x1F'",
    "a: b",
    "[1, 2",
    "@at",
    "=",
    "<<",
    "-",
    "?",
    "a:b",
    "http://x/y?z=1#f",
    "1.2.3",
    "v1",
];

/// Go template functions and their argument kinds: `s` string, `i` int, `n` number, `b` bool,
/// `l` list, `m` map, `a` anything; `*` repeats the previous kind zero to two times. Only
/// deterministic functions (no random, time or crypto): both tools must print the same bytes.
const FUNCTIONS: &[(&str, &str)] = &[
    ("upper", "s"),
    ("lower", "s"),
    ("title", "s"),
    ("untitle", "s"),
    ("trim", "s"),
    ("trimAll", "ss"),
    ("trimPrefix", "ss"),
    ("trimSuffix", "ss"),
    ("trunc", "is"),
    ("abbrev", "is"),
    ("substr", "iis"),
    ("repeat", "is"),
    ("replace", "sss"),
    ("contains", "ss"),
    ("hasPrefix", "ss"),
    ("hasSuffix", "ss"),
    ("quote", "a*"),
    ("squote", "a*"),
    ("cat", "a*"),
    ("indent", "is"),
    ("nindent", "is"),
    ("wrap", "is"),
    ("nospace", "s"),
    ("snakecase", "s"),
    ("camelcase", "s"),
    ("kebabcase", "s"),
    ("swapcase", "s"),
    ("initials", "s"),
    ("plural", "ssi"),
    ("splitList", "ss"),
    ("split", "ss"),
    ("join", "sl"),
    ("toString", "a"),
    ("toStrings", "l"),
    ("sortAlpha", "l"),
    ("b64enc", "s"),
    ("b64dec", "s"),
    ("sha256sum", "s"),
    ("adler32sum", "s"),
    ("int", "a"),
    ("int64", "a"),
    ("float64", "a"),
    ("atoi", "s"),
    ("default", "aa"),
    ("empty", "a"),
    ("coalesce", "a*"),
    ("ternary", "aab"),
    ("toJson", "a"),
    ("toPrettyJson", "a"),
    ("toRawJson", "a"),
    ("toYaml", "a"),
    ("fromYaml", "s"),
    ("fromJson", "s"),
    ("fromYamlArray", "s"),
    ("fromJsonArray", "s"),
    ("typeOf", "a"),
    ("kindOf", "a"),
    ("typeIs", "sa"),
    ("kindIs", "sa"),
    ("deepEqual", "aa"),
    ("add", "n*"),
    ("sub", "nn"),
    ("mul", "n*"),
    ("div", "nn"),
    ("mod", "nn"),
    ("add1", "n"),
    ("max", "n*"),
    ("min", "n*"),
    ("floor", "n"),
    ("ceil", "n"),
    ("round", "ni"),
    ("addf", "n*"),
    ("subf", "n*"),
    ("mulf", "n*"),
    ("divf", "nn"),
    ("until", "i"),
    ("seq", "i*"),
    ("untilStep", "iii"),
    ("list", "a*"),
    ("first", "l"),
    ("last", "l"),
    ("rest", "l"),
    ("initial", "l"),
    ("append", "la"),
    ("prepend", "la"),
    ("concat", "l*"),
    ("reverse", "l"),
    ("uniq", "l"),
    ("compact", "l"),
    ("has", "al"),
    ("without", "la*"),
    ("dict", "sa*"),
    ("get", "ms"),
    ("hasKey", "ms"),
    ("keys", "m"),
    ("values", "m"),
    ("pick", "ms*"),
    ("omit", "ms*"),
    ("dig", "ssam"),
    ("merge", "mm*"),
    ("eq", "aa*"),
    ("ne", "aa"),
    ("lt", "nn"),
    ("le", "nn"),
    ("gt", "nn"),
    ("ge", "nn"),
    ("and", "a*"),
    ("or", "a*"),
    ("not", "a"),
    ("len", "l"),
    ("index", "li*"),
    ("slice", "li*"),
    ("print", "a*"),
    ("println", "a*"),
    ("html", "s"),
    ("js", "s"),
    ("urlquery", "s"),
    ("regexMatch", "ss"),
    ("regexFind", "ss"),
    ("regexReplaceAll", "sss"),
    ("semverCompare", "ss"),
    ("toDecimal", "s"),
    ("mustFirst", "l"),
    ("mustToJson", "a"),
    ("toToml", "m"),
    ("base", "s"),
    ("ext", "s"),
    ("clean", "s"),
];

const PRINTF_VERBS: &[&str] = &[
    "%v", "%d", "%s", "%q", "%x", "%X", "%T", "%5.2f", "%-4d|", "%+v", "%#v", "%08.3f", "%e", "%g",
    "%o", "%b", "%c", "%U", "%t", "%6s|", "%-6s|", "%.3s", "%%", "%5v", "%!", "%[2]v", "%x %d",
    "%v %v",
];

/// The state of one template body being generated: variables in scope and what `.` is.
struct Scope {
    vars: Vec<String>,
    /// `.` is the template's root data (so `.Values` works).
    dot_is_root: bool,
    in_range: bool,
}

pub struct Generator {
    rng: Rng,
    /// Value paths that exist (as `Values.x.y`, without the leading dot).
    value_paths: Vec<String>,
    /// Names of helper templates defined so far.
    defines: Vec<String>,
    anchor_count: usize,
    var_count: usize,
}

/// The chart for `seed`.
pub fn generate(seed: u64) -> GenChart {
    let mut generator = Generator {
        rng: Rng::new(seed),
        value_paths: Vec::new(),
        defines: Vec::new(),
        anchor_count: 0,
        var_count: 0,
    };
    generator.chart()
}

impl Generator {
    fn chart(&mut self) -> GenChart {
        let chart_yaml = self.chart_yaml();
        let mut values = Vec::new();
        for index in 0..self.rng.range(2, 6) {
            values.push(self.values_entry(index));
        }
        let mut helpers = Vec::new();
        for index in 0..self.rng.range(0, 3) {
            helpers.push(self.helper(index));
        }
        let mut templates = Vec::new();
        for file in 0..self.rng.range(1, 3) {
            let mut docs = Vec::new();
            for doc in 0..self.rng.range(1, 3) {
                docs.push(self.document(file, doc));
            }
            templates.push(docs);
        }
        GenChart {
            chart_yaml,
            values,
            helpers,
            templates,
        }
    }

    fn chart_yaml(&mut self) -> Fragment {
        let app_versions = [
            "1.0",
            "1.10",
            "2",
            "1.2.3",
            "\"1.0\"",
            "v1.0.0",
            "1.0.0-rc.1",
            "0.1e1",
            "true",
            "0x10",
            "1.50",
            "010",
        ];
        let mut lines = vec![
            "apiVersion: v2".to_string(),
            "name: gen".to_string(),
            "version: 0.1.0".to_string(),
        ];
        if self.rng.chance(70) {
            let app = *self.rng.pick(&app_versions);
            lines.push(format!("appVersion: {app}"));
        }
        lines
    }

    // ---- YAML ----

    fn key(&mut self, index: usize) -> String {
        format!("v{index}")
    }

    fn scalar(&mut self) -> String {
        let scalar = *self.rng.pick(YAML_SCALARS);
        scalar.to_string()
    }

    /// One top-level values.yaml entry `vN: ...`, recording the paths it creates.
    fn values_entry(&mut self, index: usize) -> Fragment {
        let key = self.key(index);
        let mut lines = Vec::new();
        if self.rng.chance(10) {
            lines.push(self.comment_line(0));
        }
        let path = format!("Values.{key}");
        self.yaml_entry(&key, &path, 0, 3, &mut lines);
        lines
    }

    fn comment_line(&mut self, indent: usize) -> String {
        let extra = self.rng.below(3);
        format!(
            "{}# note {}",
            " ".repeat(indent + extra),
            self.rng.below(100)
        )
    }

    /// `key: value` at `indent`, written to `lines`; `path` is its template path.
    fn yaml_entry(
        &mut self,
        key: &str,
        path: &str,
        indent: usize,
        depth: usize,
        lines: &mut Vec<String>,
    ) {
        let pad = " ".repeat(indent);
        self.value_paths.push(path.to_string());
        let anchor = if self.rng.chance(10) {
            self.anchor_count += 1;
            format!(" &a{}", self.anchor_count)
        } else {
            String::new()
        };
        let choice = if depth == 0 {
            self.rng.below(5)
        } else {
            self.rng.below(10)
        };
        match choice {
            0 | 1 => {
                let value = self.scalar();
                let comment = if self.rng.chance(10) { " # c" } else { "" };
                lines.push(format!("{pad}{key}:{anchor} {value}{comment}"));
            }
            2 => self.multiline_scalar(&pad, key, &anchor, indent, lines),
            3 => self.block_scalar(&pad, key, &anchor, indent, lines),
            4 => {
                let flow = self.flow_collection(indent, 2);
                let mut flow_lines = flow.into_iter();
                let first = flow_lines.next().unwrap_or_default();
                lines.push(format!("{pad}{key}:{anchor} {first}"));
                lines.extend(flow_lines);
            }
            5..=7 => {
                lines.push(format!("{pad}{key}:{anchor}"));
                let step = *self.rng.pick(&[2, 2, 2, 1, 3, 4]);
                let inner = indent + step;
                for child in 0..self.rng.range(1, 3) {
                    let child_key = *self.rng.pick(&["a", "b", "c", "name", "on", "1", "x-y"]);
                    let child_key = format!("{child_key}{child}");
                    self.yaml_entry(
                        &child_key,
                        &format!("{path}.{child_key}"),
                        inner,
                        depth - 1,
                        lines,
                    );
                    if self.rng.chance(5) {
                        lines.push(self.comment_line(inner));
                    }
                }
                if self.anchor_count > 0 && self.rng.chance(15) {
                    let target = self.rng.range(1, self.anchor_count);
                    lines.push(format!("{}<<: *a{target}", " ".repeat(inner)));
                }
            }
            8 => {
                lines.push(format!("{pad}{key}:{anchor}"));
                // go-yaml takes a sequence at its key's own indentation.
                let seq_indent = indent + *self.rng.pick(&[0, 2, 2, 1, 4]);
                let seq_pad = " ".repeat(seq_indent);
                for item in 0..self.rng.range(1, 3) {
                    if self.rng.chance(30) && depth > 1 {
                        let first_key = format!("k{item}");
                        let mut inner = Vec::new();
                        self.yaml_entry(
                            &first_key,
                            &format!("{path}.dummy"),
                            seq_indent + 2,
                            1,
                            &mut inner,
                        );
                        self.value_paths.pop();
                        if let Some(first) = inner.first_mut() {
                            *first = format!("{seq_pad}- {}", first.trim_start());
                        }
                        lines.extend(inner);
                    } else {
                        let value = self.scalar();
                        lines.push(format!("{seq_pad}- {value}"));
                    }
                }
            }
            _ => {
                if self.anchor_count > 0 {
                    let target = self.rng.range(1, self.anchor_count);
                    lines.push(format!("{pad}{key}: *a{target}"));
                } else {
                    lines.push(format!("{pad}{key}:{anchor}"));
                }
            }
        }
    }

    /// A plain or quoted scalar spread over lines, continuation lines at odd columns.
    fn multiline_scalar(
        &mut self,
        pad: &str,
        key: &str,
        anchor: &str,
        indent: usize,
        lines: &mut Vec<String>,
    ) {
        let (open, close) = *self.rng.pick(&[("", ""), ("\"", "\""), ("'", "'")]);
        let words = [
            "alpha", "be ta", "\\t", "x: y", "# not", "''", "\\\"", "é", "-", "1",
        ];
        lines.push(format!(
            "{pad}{key}:{anchor} {open}{}",
            self.rng.pick(&words[..2])
        ));
        for _ in 0..self.rng.range(1, 3) {
            let column = match self.rng.below(6) {
                0 => indent,
                1 => indent + 1,
                2 => 0,
                _ => indent + 2 + self.rng.below(3),
            };
            if self.rng.chance(20) {
                lines.push(String::new());
            }
            let word = *self.rng.pick(&words);
            let word = if open.is_empty() && (word.contains(": ") || word.starts_with('#')) {
                "plain"
            } else if open == "'" && word == "\\\"" {
                "q"
            } else {
                word
            };
            lines.push(format!("{}{word}", " ".repeat(column)));
        }
        if let Some(last) = lines.last_mut() {
            last.push_str(close);
        }
    }

    fn block_scalar(
        &mut self,
        pad: &str,
        key: &str,
        anchor: &str,
        indent: usize,
        lines: &mut Vec<String>,
    ) {
        let style = *self
            .rng
            .pick(&["|", "|-", "|+", ">", ">-", ">+", "|2", ">1-", "|-2"]);
        lines.push(format!("{pad}{key}:{anchor} {style}"));
        let base = indent + *self.rng.pick(&[2, 2, 1, 3, 4]);
        for _ in 0..self.rng.range(1, 4) {
            match self.rng.below(8) {
                0 => lines.push(String::new()),
                1 => lines.push(format!("{}  more indented", " ".repeat(base))),
                2 => lines.push(format!("{}# kept as text", " ".repeat(base))),
                3 => lines.push(format!("{}\ttab", " ".repeat(base))),
                _ => {
                    let text = *self
                        .rng
                        .pick(&["line", "a: b", "- x", "  {y}", "'q' \"d\""]);
                    lines.push(format!("{}{text}", " ".repeat(base)));
                }
            }
        }
        if self.rng.chance(30) {
            lines.push(String::new());
        }
    }

    /// A flow collection, sometimes spread over lines at odd columns (go-yaml v2 ignores
    /// indentation inside flow context). Returns its lines, the first one without padding.
    fn flow_collection(&mut self, indent: usize, depth: usize) -> Vec<String> {
        let is_map = self.rng.chance(40);
        let (open, close) = if is_map { ("{", "}") } else { ("[", "]") };
        let mut items = Vec::new();
        for index in 0..self.rng.range(0, 3) {
            let value = if depth > 0 && self.rng.chance(20) {
                self.flow_collection(indent, depth - 1).join(" ")
            } else {
                let flow_safe = [
                    "1", "0x10", "a b", "\"q,\"", "'s'", "~", "true", "1.5", "on", "-1", "x",
                ];
                self.rng.pick(&flow_safe).to_string()
            };
            items.push(if is_map {
                format!("k{index}: {value}")
            } else {
                value
            });
        }
        let trailing = if !items.is_empty() && self.rng.chance(10) {
            ","
        } else {
            ""
        };
        if self.rng.chance(60) {
            return vec![format!("{open}{}{trailing}{close}", items.join(", "))];
        }
        let mut lines = vec![open.to_string()];
        let count = items.len();
        for (index, item) in items.into_iter().enumerate() {
            let column = *self
                .rng
                .pick(&[indent, indent + 1, indent + 2, indent + 4, 0]);
            let comma = if index + 1 < count { "," } else { trailing };
            lines.push(format!("{}{item}{comma}", " ".repeat(column)));
        }
        let close_column = *self.rng.pick(&[indent, indent + 2, 0]);
        if self.rng.chance(50) {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(close);
            }
        } else {
            lines.push(format!("{}{close}", " ".repeat(close_column)));
        }
        lines
    }

    // ---- templates ----

    fn helper(&mut self, index: usize) -> Fragment {
        let name = format!("h.{index}");
        let trim_open = if self.rng.chance(50) { "-" } else { "" };
        let trim_close = if self.rng.chance(50) { "-" } else { "" };
        let mut scope = Scope {
            vars: Vec::new(),
            dot_is_root: true,
            in_range: false,
        };
        let body = self.body(&mut scope, 2, 2);
        // Defined after the body so a helper includes only earlier ones (no endless recursion).
        self.defines.push(name.clone());
        let mut lines = vec![format!(
            "{{{{{trim_open} define \"{name}\" {trim_close}}}}}"
        )];
        lines.extend(body);
        lines.push(format!("{{{{{trim_open} end {trim_close}}}}}"));
        lines
    }

    fn document(&mut self, file: usize, doc: usize) -> Fragment {
        let mut lines = Vec::new();
        if doc > 0 || self.rng.chance(30) {
            lines.push(
                self.rng
                    .pick(&["---", "---", "--- ", "---  # c"])
                    .to_string(),
            );
        }
        let kind = *self
            .rng
            .pick(&["ConfigMap", "Secret", "Service", "Deployment", "Foo", "Job"]);
        let name = format!("d{file}-{doc}");
        match self.rng.below(10) {
            // Values and expressions in JSON-quoted form: valid YAML whatever they print.
            0..=3 => {
                lines.push("apiVersion: v1".to_string());
                lines.push(format!("kind: {kind}"));
                lines.push("metadata:".to_string());
                lines.push(format!("  name: {name}"));
                lines.push("data:".to_string());
                for key in 0..self.rng.range(1, 4) {
                    let mut scope = Scope {
                        vars: Vec::new(),
                        dot_is_root: true,
                        in_range: false,
                    };
                    let expr = self.pipeline(&mut scope, 2);
                    let wrap = *self
                        .rng
                        .pick(&["toJson", "toJson", "quote", "squote", "b64enc"]);
                    lines.push(format!(
                        "  k{key}: {}",
                        self.action(&format!("{expr} | {wrap}"))
                    ));
                }
            }
            // A control-flow body as a block scalar.
            4..=6 => {
                lines.push(format!("kind: {kind}"));
                lines.push("metadata:".to_string());
                lines.push(format!("  name: {name}"));
                lines.push("data:".to_string());
                lines.push(format!(
                    "  body: {}",
                    self.rng.pick(&["|", "|-", "|+", ">"])
                ));
                let mut scope = Scope {
                    vars: Vec::new(),
                    dot_is_root: true,
                    in_range: false,
                };
                for line in self.body(&mut scope, 3, 4) {
                    lines.push(if line.is_empty() {
                        line
                    } else {
                        format!("    {line}")
                    });
                }
            }
            // A raw YAML document with interpolated scalars: what helm's YAML reader sees.
            _ => {
                lines.push(format!("kind: {kind}"));
                lines.push("metadata:".to_string());
                lines.push(format!("  name: {name}"));
                if self.rng.chance(20) {
                    lines.push("  annotations:".to_string());
                    let hook = *self
                        .rng
                        .pick(&["pre-install", "post-install", "test", "bogus"]);
                    lines.push(format!("    helm.sh/hook: {hook}"));
                }
                lines.push("spec:".to_string());
                let saved = self.value_paths.len();
                for index in 0..self.rng.range(1, 3) {
                    let mut entry = Vec::new();
                    self.yaml_entry(&format!("s{index}"), "unused", 2, 2, &mut entry);
                    lines.extend(entry);
                }
                self.value_paths.truncate(saved);
                let mut scope = Scope {
                    vars: Vec::new(),
                    dot_is_root: true,
                    in_range: false,
                };
                for index in 0..self.rng.range(0, 2) {
                    let expr = self.pipeline(&mut scope, 1);
                    lines.push(format!("  e{index}: {}", self.action(&expr)));
                }
                if self.rng.chance(20) {
                    let expr = self.pipeline(&mut scope, 1);
                    lines.push(format!(
                        "  y: {}",
                        self.action(&format!("{expr} | toYaml | nindent 4"))
                    ));
                }
            }
        }
        lines
    }

    /// `{{ text }}` with random trim markers.
    fn action(&mut self, text: &str) -> String {
        let open = if self.rng.chance(15) { "{{- " } else { "{{ " };
        let close = if self.rng.chance(15) { " -}}" } else { " }}" };
        format!("{open}{text}{close}")
    }

    /// An operand of any type: literal, value path, variable, or a parenthesized pipeline.
    fn operand(&mut self, scope: &mut Scope, depth: usize) -> String {
        match self.rng.below(if depth == 0 { 7 } else { 9 }) {
            0 => {
                if self.rng.chance(4) {
                    self.rng.pick(BAD_GO_NUMBERS).to_string()
                } else {
                    self.rng.pick(GO_NUMBERS).to_string()
                }
            }
            1 => self.rng.pick(GO_STRINGS).to_string(),
            2 => self
                .rng
                .pick(&["true", "false", "nil", "list", "dict", "(list 1 \"a\" 2.5)"])
                .to_string(),
            3 | 4 => self.value_path(scope),
            5 => self.variable(scope),
            6 => {
                if scope.dot_is_root && self.rng.chance(70) {
                    ".Values".to_string()
                } else {
                    ".".to_string()
                }
            }
            _ => format!("({})", self.pipeline(scope, depth - 1)),
        }
    }

    fn variable(&mut self, scope: &Scope) -> String {
        if scope.vars.is_empty() {
            "$".to_string()
        } else {
            scope.vars[self.rng.below(scope.vars.len())].clone()
        }
    }

    fn value_path(&mut self, scope: &Scope) -> String {
        let root = if scope.dot_is_root { "." } else { "$." };
        if self.value_paths.is_empty() || self.rng.chance(10) {
            let other = *self.rng.pick(&[
                "Values.missing",
                "Values.missing.deeper",
                "Values",
                "Release.Name",
                "Chart.AppVersion",
                "Chart.Name",
                "Chart.Version",
                "Release.Namespace",
                "Values.AsMap",
                "Template.Name",
            ]);
            format!("{root}{other}")
        } else {
            let path = self.rng.pick(&self.value_paths).clone();
            format!("{root}{path}")
        }
    }

    /// An operand meant to be of `kind` (see FUNCTIONS); now and then of another type, so
    /// functions meet arguments they do not expect.
    fn typed_operand(&mut self, kind: char, scope: &mut Scope, depth: usize) -> String {
        if self.rng.chance(12) {
            return self.operand(scope, depth);
        }
        if depth > 0 && self.rng.chance(15) {
            let call = self.typed_call(kind, scope, depth - 1);
            return format!("({call})");
        }
        match kind {
            's' => match self.rng.below(5) {
                0 | 1 => self.rng.pick(GO_STRINGS).to_string(),
                2 => self.value_path(scope),
                3 => self.variable(scope),
                _ => format!("{}Release.Name", if scope.dot_is_root { "." } else { "$." }),
            },
            'i' => self
                .rng
                .pick(&[
                    "0", "1", "2", "3", "-1", "0x3", "0o7", "0b11", "1_0", "'a'", "100",
                ])
                .to_string(),
            'n' => match self.rng.below(4) {
                0 => self.value_path(scope),
                _ => self.rng.pick(GO_NUMBERS).to_string(),
            },
            'b' => self.rng.pick(&["true", "false"]).to_string(),
            'l' => match self.rng.below(4) {
                0 => self.value_path(scope),
                1 => "(list 3 1 2)".to_string(),
                2 => "(list \"b\" \"a\" \"b\" \"\")".to_string(),
                _ => "(splitList \",\" \"x,y,,z\")".to_string(),
            },
            'm' => match self.rng.below(3) {
                0 => format!("{}Values", if scope.dot_is_root { "." } else { "$." }),
                1 => self.value_path(scope),
                _ => "(dict \"a\" 1 \"b\" (list 2))".to_string(),
            },
            _ => self.operand(scope, depth),
        }
    }

    /// A call of a function from FUNCTIONS whose result is used as `kind` (any function if no
    /// better one is found quickly).
    fn typed_call(&mut self, _kind: char, scope: &mut Scope, depth: usize) -> String {
        self.call(scope, depth)
    }

    fn arguments(
        &mut self,
        signature: &str,
        scope: &mut Scope,
        depth: usize,
        skip_last: bool,
    ) -> Vec<String> {
        let mut kinds: Vec<char> = Vec::new();
        for c in signature.chars() {
            if c == '*' {
                if let Some(&last) = kinds.last() {
                    kinds.pop();
                    for _ in 0..self.rng.below(3) {
                        kinds.push(last);
                    }
                }
            } else {
                kinds.push(c);
            }
        }
        if skip_last {
            kinds.pop();
        }
        // Now and then one argument too many or too few.
        if self.rng.chance(3) {
            kinds.push('a');
        } else if self.rng.chance(3) {
            kinds.pop();
        }
        kinds
            .into_iter()
            .map(|kind| self.typed_operand(kind, scope, depth))
            .collect()
    }

    fn call(&mut self, scope: &mut Scope, depth: usize) -> String {
        if self.rng.chance(10) {
            let verb = *self.rng.pick(PRINTF_VERBS);
            let mut text = format!("printf \"{verb}\"");
            for _ in 0..self.rng.range(0, 2) {
                text.push(' ');
                text.push_str(&self.operand(scope, depth));
            }
            return text;
        }
        if !self.defines.is_empty() && self.rng.chance(8) {
            let name = self.rng.pick(&self.defines).clone();
            let arg = if self.rng.chance(80) {
                if scope.dot_is_root { "." } else { "$" }.to_string()
            } else {
                self.operand(scope, depth)
            };
            return format!("include \"{name}\" {arg}");
        }
        if self.rng.chance(3) {
            let text = *self.rng.pick(&[
                "\"{{ .Release.Name }}-x\"",
                "\"{{ add 1 2 }}\"",
                "\"{{ .Values.missing.x }}\"",
                "\"{{ 0x1p4 }} {{ '\\\\n' }}\"",
                "\"{{ fail \\\"boom\\\" }}\"",
            ]);
            return format!("tpl {text} {}", if scope.dot_is_root { "." } else { "$" });
        }
        if self.rng.chance(2) {
            let message = *self.rng.pick(&["\"boom\"", "\"multi\\nline\"", "\"\""]);
            return format!("fail {message}");
        }
        if self.rng.chance(2) {
            let arg = self.operand(scope, depth);
            return format!("required \"need it\" {arg}");
        }
        let (name, signature) = *self.rng.pick(FUNCTIONS);
        let mut text = name.to_string();
        for arg in self.arguments(signature, scope, depth, false) {
            text.push(' ');
            text.push_str(&arg);
        }
        text
    }

    /// A pipeline: a call or operand, maybe piped through more calls.
    fn pipeline(&mut self, scope: &mut Scope, depth: usize) -> String {
        let mut text = if self.rng.chance(60) {
            self.call(scope, depth)
        } else {
            self.operand(scope, depth.min(1))
        };
        for _ in 0..self.rng.below(2) {
            let (name, signature) = *self.rng.pick(FUNCTIONS);
            // The piped value is the last argument.
            let _ = write!(text, " | {name}");
            for arg in self.arguments(signature, scope, depth.saturating_sub(1), true) {
                text.push(' ');
                text.push_str(&arg);
            }
        }
        text
    }

    fn condition(&mut self, scope: &mut Scope) -> String {
        match self.rng.below(5) {
            0 => self.operand(scope, 1),
            1 => {
                let (a, b) = (self.operand(scope, 0), self.operand(scope, 0));
                let op = *self.rng.pick(&["eq", "ne", "lt", "gt", "and", "or"]);
                format!("{op} {a} {b}")
            }
            2 => format!("not {}", self.operand(scope, 0)),
            _ => self.pipeline(scope, 1),
        }
    }

    fn new_var(&mut self) -> String {
        self.var_count += 1;
        format!("$v{}", self.var_count)
    }

    /// Lines of a template body (text and actions), at most `depth` control levels deep.
    fn body(&mut self, scope: &mut Scope, depth: usize, items: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let declared_before = scope.vars.len();
        for _ in 0..self.rng.range(1, items) {
            let choice = if depth == 0 {
                self.rng.below(4)
            } else {
                self.rng.below(11)
            };
            match choice {
                0 => {
                    let text = *self
                        .rng
                        .pick(&["text", "key: value", "- item", "  indented", ""]);
                    lines.push(text.to_string());
                }
                1 | 2 => {
                    let expr = self.pipeline(scope, 2);
                    let prefix = *self.rng.pick(&["", "x: ", "- "]);
                    let action = self.action(&expr);
                    lines.push(format!("{prefix}{action}"));
                }
                3 => {
                    let var = self.new_var();
                    let expr = self.pipeline(scope, 1);
                    lines.push(self.action(&format!("{var} := {expr}")));
                    scope.vars.push(var);
                    if self.rng.chance(30) {
                        let index = self.rng.below(scope.vars.len());
                        let target = scope.vars[index].clone();
                        let expr = self.operand(scope, 1);
                        lines.push(self.action(&format!("{target} = {expr}")));
                    }
                }
                4 | 5 => {
                    let cond = self.condition(scope);
                    lines.push(self.action(&format!("if {cond}")));
                    lines.extend(self.body(scope, depth - 1, 2));
                    for _ in 0..self.rng.below(2) {
                        let cond = self.condition(scope);
                        lines.push(self.action(&format!("else if {cond}")));
                        lines.extend(self.body(scope, depth - 1, 2));
                    }
                    if self.rng.chance(50) {
                        lines.push(self.action("else"));
                        lines.extend(self.body(scope, depth - 1, 2));
                    }
                    lines.push(self.action("end"));
                }
                6 | 7 => {
                    let over = if self.rng.chance(15) {
                        self.rng
                            .pick(&["3", "0", "-1", "\"ab\"", "2.5"])
                            .to_string()
                    } else {
                        self.operand(scope, 1)
                    };
                    let (head, vars) = match self.rng.below(3) {
                        0 => (format!("range {over}"), vec![]),
                        1 => {
                            let v = self.new_var();
                            (format!("range {v} := {over}"), vec![v])
                        }
                        _ => {
                            let (k, v) = (self.new_var(), self.new_var());
                            (format!("range {k}, {v} := {over}"), vec![k, v])
                        }
                    };
                    lines.push(self.action(&head));
                    let mut inner = Scope {
                        vars: scope.vars.iter().cloned().chain(vars).collect(),
                        dot_is_root: false,
                        in_range: true,
                    };
                    lines.extend(self.body(&mut inner, depth - 1, 3));
                    if self.rng.chance(20) {
                        let word = *self.rng.pick(&["break", "continue"]);
                        let cond = self.condition(&mut inner);
                        lines.push(self.action(&format!("if {cond}")));
                        lines.push(self.action(word));
                        lines.push(self.action("end"));
                    }
                    if self.rng.chance(30) {
                        lines.push(self.action("else"));
                        lines.extend(self.body(scope, depth - 1, 2));
                    }
                    lines.push(self.action("end"));
                }
                8 => {
                    let expr = self.operand(scope, 1);
                    lines.push(self.action(&format!("with {expr}")));
                    let mut inner = Scope {
                        vars: scope.vars.clone(),
                        dot_is_root: false,
                        in_range: scope.in_range,
                    };
                    lines.extend(self.body(&mut inner, depth - 1, 2));
                    if self.rng.chance(30) {
                        let expr = self.operand(scope, 1);
                        lines.push(self.action(&format!("else with {expr}")));
                        lines.extend(self.body(&mut inner, depth - 1, 2));
                    }
                    if self.rng.chance(30) {
                        lines.push(self.action("else"));
                        lines.extend(self.body(scope, depth - 1, 2));
                    }
                    lines.push(self.action("end"));
                }
                9 => {
                    if !self.defines.is_empty() && self.rng.chance(60) {
                        let name = self.rng.pick(&self.defines).clone();
                        let arg = if scope.dot_is_root { "." } else { "$" };
                        if self.rng.chance(50) {
                            lines.push(self.action(&format!("template \"{name}\" {arg}")));
                        } else {
                            let width = self.rng.below(5);
                            lines.push(
                                self.action(&format!("include \"{name}\" {arg} | indent {width}")),
                            );
                        }
                    } else {
                        self.var_count += 1;
                        let name = format!("b.{}", self.var_count);
                        lines.push(self.action(&format!("block \"{name}\" .")));
                        let mut inner = Scope {
                            vars: Vec::new(),
                            dot_is_root: scope.dot_is_root,
                            in_range: false,
                        };
                        lines.extend(self.body(&mut inner, depth - 1, 2));
                        lines.push(self.action("end"));
                    }
                }
                _ => {
                    let comment = *self.rng.pick(&[
                        "{{/* c */}}",
                        "{{- /* c */}}",
                        "{{ /* c */ -}}",
                        "{{- /* multi\nline */ -}}",
                    ]);
                    lines.push(comment.to_string());
                }
            }
        }
        scope.vars.truncate(declared_before);
        lines
    }
}
