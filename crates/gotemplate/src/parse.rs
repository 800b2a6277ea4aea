//! Go text/template's parser: builds parse trees with Go's semantics (define/block/template,
//! if/else-if/else-with chains, range with break/continue, variable scoping, parse errors).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::lex::{MAX_TEMPLATE_BYTES, Token, TokenKind, lex_into};
use super::number::{Constant, NumberKind, parse_constant};
use super::value::Value;

/// A parsed template: its name, the file it came from (for error locations), its body.
#[derive(Debug)]
pub struct Tree {
    pub name: String,
    /// The name of the file being parsed (Go's `ParseName`), used in error locations.
    pub parse_name: Arc<str>,
    /// The whole file's text: positions index into it and [`Span`]s are read from it.
    pub text: Arc<str>,
    pub root: Box<[Node]>,
}

impl Tree {
    /// Go's `ErrorContext` location: `FILE:LINE:COL` with a 0-based byte column.
    pub fn location(&self, pos: usize) -> String {
        let before = self.text.get(..pos).unwrap_or(&self.text);
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - (nl + 1),
            None => pos,
        };
        format!("{}:{}:{}", self.parse_name, line, col)
    }

    /// The text of one of this tree's spans.
    pub fn source(&self, span: Span) -> &str {
        span.of(&self.text)
    }
}

/// A piece of a template file's text, by byte offsets: trees refer to their file's text
/// instead of copying it, since template text, names and literals are most of a tree.
/// Offsets fit 32 bits because [`parse`] refuses longer texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// This span's text in `text` (the file it was parsed from).
    pub fn of(self, text: &str) -> &str {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub enum Node {
    Text(Span),
    Action(Pipe),
    If(Box<Branch>),
    Range(Box<Branch>),
    With(Box<Branch>),
    Template(Box<TemplateCall>),
    Break,
    Continue,
}

/// The shared shape of if/range/with.
#[derive(Debug)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Box<[Node]>,
    pub else_list: Option<Box<[Node]>>,
}

/// `{{template "name" pipe}}` (and the call a `block` makes).
#[derive(Debug)]
pub struct TemplateCall {
    pub pos: u32,
    pub name: String,
    pub pipe: Option<Pipe>,
}

#[derive(Debug)]
pub struct Pipe {
    pub pos: u32,
    pub is_assign: bool,
    /// The declared or assigned variables' names (`$x`).
    pub decl: Box<[Span]>,
    pub cmds: Box<[Command]>,
}

impl Pipe {
    pub fn pos(&self) -> usize {
        self.pos as usize
    }

    /// Go's `String()` of the pipeline, with names read from `text`.
    pub fn display<'a>(&'a self, text: &'a str) -> Shown<'a, Pipe> {
        Shown { node: self, text }
    }
}

#[derive(Debug)]
pub struct Command {
    pub pos: u32,
    pub args: Box<[Arg]>,
}

impl Command {
    pub fn pos(&self) -> usize {
        self.pos as usize
    }

    /// Go's `String()` of the command, with names read from `text`.
    pub fn display<'a>(&'a self, text: &'a str) -> Shown<'a, Command> {
        Shown { node: self, text }
    }
}

#[derive(Debug)]
pub enum Arg {
    /// `.a.b`: `path` is `a.b`, the names joined by dots (a chain of fields is one piece of
    /// the text).
    Field {
        pos: u32,
        path: Path,
    },
    /// `$x.a.b`: `path` is all of it, `$x` first.
    Variable {
        pos: u32,
        path: Path,
    },
    Dot {
        pos: u32,
    },
    Nil {
        pos: u32,
    },
    Bool {
        pos: u32,
        value: bool,
    },
    Number {
        pos: u32,
        text: Span,
        value: NumberValue,
    },
    String {
        pos: u32,
        /// The literal as written, quotes included.
        quoted: Span,
        value: StringValue,
    },
    /// A function name.
    Identifier {
        pos: u32,
        name: Span,
    },
    /// `(pipe).a.b` or `fn.a`: `fields` is `a.b`.
    Chain {
        pos: u32,
        node: Box<Arg>,
        fields: Path,
    },
    Pipe(Box<Pipe>),
}

/// Names joined by dots (`a.b.c`): a chain of fields, or a variable and its fields.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    pub span: Span,
    /// Bit `i` is set when byte `i` of a path of at most 64 bytes is a dot: executing a chain
    /// then finds its names without searching the text again.
    dots: u64,
}

impl Path {
    fn new(span: Span, text: &str) -> Path {
        let names = span.of(text).as_bytes();
        let mut dots = 0;
        if names.len() <= 64 {
            for (i, byte) in names.iter().enumerate() {
                if *byte == b'.' {
                    dots |= 1 << i;
                }
            }
        }
        Path { span, dots }
    }

    /// The names, read from `text` (the tree's).
    pub fn names(self, text: &str) -> Names<'_> {
        let rest = self.span.of(text);
        Names {
            rest,
            dots: self.dots,
            masked: rest.len() <= 64,
        }
    }
}

/// The names of a [`Path`], first to last.
pub struct Names<'a> {
    rest: &'a str,
    /// The dots of `rest`, when `masked`.
    dots: u64,
    masked: bool,
}

impl<'a> Names<'a> {
    /// The next name, and whether more follow.
    pub fn next_name(&mut self) -> (&'a str, bool) {
        let dot = if self.masked {
            (self.dots != 0).then(|| self.dots.trailing_zeros() as usize)
        } else {
            self.rest.bytes().position(|b| b == b'.')
        };
        match dot {
            Some(dot) => {
                let name = self.rest.get(..dot).unwrap_or_default();
                self.rest = self.rest.get(dot + 1..).unwrap_or_default();
                self.dots = self.dots.checked_shr(dot as u32 + 1).unwrap_or(0);
                (name, true)
            }
            None => (std::mem::take(&mut self.rest), false),
        }
    }
}

/// A number constant, with the usual ones held without an allocation.
#[derive(Debug)]
pub enum NumberValue {
    Int(i64),
    Float(f64),
    /// A complex constant, or the error executing the constant gives (an integer that only
    /// fits a uint64: `N overflows int`).
    Other(Box<Constant>),
}

impl NumberValue {
    fn new(constant: Constant) -> NumberValue {
        match constant {
            Ok(Value::Int(i)) => NumberValue::Int(i),
            Ok(Value::Float(f)) => NumberValue::Float(f),
            other => NumberValue::Other(Box::new(other)),
        }
    }

    /// The constant's value, or the error executing it gives.
    pub fn constant(&self) -> Constant {
        match self {
            NumberValue::Int(i) => Ok(Value::Int(*i)),
            NumberValue::Float(f) => Ok(Value::Float(*f)),
            NumberValue::Other(constant) => (**constant).clone(),
        }
    }
}

/// A string literal's value: most are the text between their quotes.
#[derive(Debug)]
pub enum StringValue {
    Source(Span),
    Decoded(Box<str>),
}

impl StringValue {
    /// The value, reading an undecoded literal from `text` (the tree's).
    pub fn get<'a>(&'a self, text: &'a str) -> &'a str {
        match self {
            StringValue::Source(span) => span.of(text),
            StringValue::Decoded(value) => value,
        }
    }
}

impl Arg {
    pub fn pos(&self) -> usize {
        let pos = match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Bool { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::String { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(pipe) => pipe.pos,
        };
        pos as usize
    }

    /// Go's `String()` of the node, with names and literals read from `text`.
    pub fn display<'a>(&'a self, text: &'a str) -> Shown<'a, Arg> {
        Shown { node: self, text }
    }
}

/// A node printed as Go's `String()` does (for error messages), with the text it was parsed
/// from.
pub struct Shown<'a, T> {
    node: &'a T,
    text: &'a str,
}

impl fmt::Display for Shown<'_, Arg> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text;
        match self.node {
            Arg::Field { path, .. } => write!(f, ".{}", path.span.of(text)),
            Arg::Variable { path, .. } => write!(f, "{}", path.span.of(text)),
            Arg::Dot { .. } => write!(f, "."),
            Arg::Nil { .. } => write!(f, "nil"),
            Arg::Bool { value, .. } => write!(f, "{value}"),
            Arg::Number { text: number, .. } => write!(f, "{}", number.of(text)),
            Arg::String { quoted, .. } => write!(f, "{}", quoted.of(text)),
            Arg::Identifier { name, .. } => write!(f, "{}", name.of(text)),
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(pipe) = node.as_ref() {
                    write!(f, "({})", pipe.display(text))?;
                } else {
                    write!(f, "{}", node.display(text))?;
                }
                write!(f, ".{}", fields.span.of(text))
            }
            Arg::Pipe(pipe) => write!(f, "{}", pipe.display(text)),
        }
    }
}

impl fmt::Display for Shown<'_, Command> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.node.args.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            if let Arg::Pipe(pipe) = arg {
                write!(f, "({})", pipe.display(self.text))?;
            } else {
                write!(f, "{}", arg.display(self.text))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Shown<'_, Pipe> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pipe = self.node;
        if !pipe.decl.is_empty() {
            for (i, name) in pipe.decl.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{}", name.of(self.text))?;
            }
            write!(f, "{}", if pipe.is_assign { " = " } else { " := " })?;
        }
        for (i, cmd) in pipe.cmds.iter().enumerate() {
            if i > 0 {
                write!(f, " | ")?;
            }
            write!(f, "{}", cmd.display(self.text))?;
        }
        Ok(())
    }
}

/// A parse error with Go's full text: `template: NAME:LINE: MESSAGE`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("template: {parse_name}:{line}: {message}")]
pub struct ParseError {
    pub parse_name: String,
    pub line: usize,
    pub message: String,
}

/// Parses one file into its top-level tree (named `name`) and the templates it defines, in
/// definition order. `has_function` says whether a function name exists (Go checks at parse
/// time). `go123_comment_lines`: number lines in errors as Go 1.23's lexer does (helm 3), which
/// does not count the newlines inside a `{{/* ... */}}` comment; Go 1.25's (helm 4) does.
pub fn parse(
    name: &str,
    text: &str,
    has_function: &dyn Fn(&str) -> bool,
    go123_comment_lines: bool,
) -> Result<Vec<Tree>, ParseError> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(ParseError {
            parse_name: name.to_string(),
            line: 1,
            message: format!("template is larger than {MAX_TEMPLATE_BYTES} bytes"),
        });
    }
    let text: Arc<str> = Arc::from(text);
    let parse_name: Arc<str> = Arc::from(name);
    let lexed_text = text.clone();
    let buffer = TOKEN_BUFFER.with(|buffer| buffer.take());
    let lexed = lex_into(&lexed_text, buffer);
    let uncounted_comments = if go123_comment_lines {
        lexed.comments
    } else {
        Vec::new()
    };
    let mut parser = Parser {
        tokens: lexed.tokens,
        src: &lexed_text,
        lex_error: lexed.error,
        index: 0,
        text: text.clone(),
        parse_name: parse_name.clone(),
        vars: vec!["$"],
        var_base: 0,
        range_depth: 0,
        has_function,
        trees: Vec::new(),
        action_pos: None,
        nesting: 0,
        uncounted_comments,
        pending: Pending::default(),
    };
    let result = parse_root(&mut parser);
    let mut tokens = std::mem::take(&mut parser.tokens);
    tokens.clear();
    TOKEN_BUFFER.with(|buffer| buffer.replace(tokens));
    let root = result?;
    let top = Tree {
        name: name.to_string(),
        parse_name,
        text,
        root,
    };
    let mut trees = parser.trees;
    trees.insert(0, top);
    Ok(trees)
}

thread_local! {
    /// The lexer's token buffer, kept between files: it would otherwise be the largest
    /// allocation of every parse.
    static TOKEN_BUFFER: std::cell::Cell<Vec<Token>> = const { std::cell::Cell::new(Vec::new()) };
}

fn parse_root(parser: &mut Parser) -> Result<Box<[Node]>, ParseError> {
    let mark = parser.pending.nodes.len();
    while parser.peek().kind != TokenKind::Eof {
        if parser.peek().kind == TokenKind::LeftDelim {
            let save = parser.index;
            parser.next();
            if parser.next_non_space().kind == TokenKind::Define {
                parser.parse_definition()?;
                continue;
            }
            parser.index = save;
        }
        match parser.text_or_action()? {
            Item::Node(node) => parser.pending.nodes.push(node),
            Item::End(pos) => return Err(parser.error_at(pos, "unexpected {{end}}".to_string())),
            Item::Else(pos) => {
                return Err(parser.error_at(pos, "unexpected {{else}}".to_string()));
            }
        }
    }
    Ok(finish(&mut parser.pending.nodes, mark))
}

/// Go's `IsEmptyTree`: only whitespace text (defines-only files like `_helpers.tpl`);
/// `text` is the file's the nodes were parsed from.
pub fn is_empty_tree(nodes: &[Node], text: &str) -> bool {
    nodes.iter().all(|node| match node {
        Node::Text(span) => span
            .of(text)
            .trim_matches(|c: char| c.is_whitespace())
            .is_empty(),
        _ => false,
    })
}

enum Item {
    Node(Node),
    End(usize),
    Else(usize),
}

struct Parser<'f, 't> {
    tokens: Vec<Token>,
    /// The text the tokens point into.
    src: &'t str,
    /// The lexer's message for a final `Error` token with an empty text.
    lex_error: Option<std::borrow::Cow<'static, str>>,
    index: usize,
    text: Arc<str>,
    parse_name: Arc<str>,
    /// The variables in scope are `vars[var_base..]`: a `define` or `block` body starts a new
    /// scope with only `$` without giving up the enclosing one's vector.
    vars: Vec<&'t str>,
    var_base: usize,
    range_depth: usize,
    has_function: &'f dyn Fn(&str) -> bool,
    trees: Vec<Tree>,
    /// Where the action being parsed starts (its line is only needed for error messages, and
    /// counting lines for every action would make parsing quadratic in the file's length).
    action_pos: Option<usize>,
    /// Open parentheses and control bodies around the current token.
    nesting: usize,
    /// Comments whose newlines error line numbers leave out (Go 1.23's lexer).
    uncounted_comments: Vec<std::ops::Range<usize>>,
    pending: Pending,
}

/// The nodes, commands and arguments of the lists being parsed, innermost last: a finished
/// list moves out into an allocation of its exact size, where growing a vector of its own
/// would reallocate it several times and leave it with spare capacity.
#[derive(Default)]
struct Pending {
    nodes: Vec<Node>,
    cmds: Vec<Command>,
    args: Vec<Arg>,
}

/// The items of `pending` from `mark` on, in an allocation of their own.
fn finish<T>(pending: &mut Vec<T>, mark: usize) -> Box<[T]> {
    // `split_off` copies them at once into a vector of exactly their number, which then
    // becomes the box without reallocating.
    pending.split_off(mark).into_boxed_slice()
}

impl<'t> Parser<'_, 't> {
    fn line_of(&self, pos: usize) -> usize {
        let newlines = |range: std::ops::Range<usize>| {
            self.text
                .get(range)
                .unwrap_or_default()
                .matches('\n')
                .count()
        };
        let uncounted: usize = self
            .uncounted_comments
            .iter()
            .take_while(|comment| comment.end <= pos)
            .map(|comment| newlines(comment.clone()))
            .sum();
        1 + newlines(0..pos.min(self.text.len())) - uncounted
    }

    fn error_at(&self, pos: usize, message: String) -> ParseError {
        ParseError {
            parse_name: self.parse_name.to_string(),
            line: self.line_of(pos),
            message,
        }
    }

    /// An error at the current token (Go reports the line of the token being looked at).
    fn error(&self, message: String) -> ParseError {
        let pos = self.current_pos();
        self.error_at(pos, message)
    }

    fn current_pos(&self) -> usize {
        let i = self.index.saturating_sub(1);
        self.tokens.get(i).map(Token::pos).unwrap_or(0)
    }

    fn text_of(&self, token: &Token) -> &'t str {
        token.text(self.src)
    }

    /// Go's `item.String()`, used in parse error messages.
    fn describe(&self, token: &Token) -> String {
        let text = self.text_of(token);
        match token.kind {
            TokenKind::Eof => "EOF".to_string(),
            TokenKind::Error => self.lex_error.as_deref().unwrap_or_default().to_string(),
            kind if kind.is_keyword() => format!("<{text}>"),
            _ => {
                if text.chars().count() > 10 {
                    let short: String = text.chars().take(10).collect();
                    format!("{}...", super::print::go_quote(&short))
                } else {
                    super::print::go_quote(text)
                }
            }
        }
    }

    fn peek(&self) -> Token {
        match self.tokens.get(self.index) {
            Some(token) => *token,
            None => Token {
                kind: TokenKind::Eof,
                // parse() refuses texts longer than u32::MAX.
                pos: self.src.len() as u32,
                len: 0,
            },
        }
    }

    fn next(&mut self) -> Token {
        let token = self.peek();
        if self.index < self.tokens.len() {
            self.index += 1;
        }
        token
    }

    fn backup(&mut self) {
        self.index = self.index.saturating_sub(1);
    }

    fn next_non_space(&mut self) -> Token {
        while let Some(token) = self.tokens.get(self.index) {
            if token.kind != TokenKind::Space {
                break;
            }
            self.index += 1;
        }
        self.next()
    }

    fn in_scope(&self, var: &str) -> bool {
        self.vars
            .get(self.var_base..)
            .unwrap_or_default()
            .contains(&var)
    }

    fn peek_non_space(&mut self) -> Token {
        let token = self.next_non_space();
        self.backup();
        token
    }

    fn unexpected(&self, token: &Token, context: &str) -> ParseError {
        if token.kind == TokenKind::Error {
            let message = self.lex_error.as_deref().unwrap_or_default();
            let mut extra = String::new();
            let line = self.line_of(token.pos());
            let action_line = self.action_pos.map(|pos| self.line_of(pos));
            if let Some(action_line) = action_line.filter(|l| *l != line) {
                extra = format!(" in action started at {}:{}", self.parse_name, action_line);
                // Go avoids "unclosed action in action started at".
                if message.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.error_at(token.pos(), format!("{message}{extra}"));
        }
        let token_text = self.describe(token);
        self.error_at(token.pos(), format!("unexpected {token_text} in {context}"))
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> Result<Token, ParseError> {
        let token = self.next_non_space();
        if token.kind != kind {
            return Err(self.unexpected(&token, context));
        }
        Ok(token)
    }

    fn unquote(&self, token: &Token) -> Result<Cow<'t, str>, ParseError> {
        unquote_go(self.text_of(token))
            .ok_or_else(|| self.error_at(token.pos(), "invalid syntax".to_string()))
    }

    fn parse_definition(&mut self) -> Result<(), ParseError> {
        let context = "define clause";
        let token = self.next_non_space();
        if !matches!(token.kind, TokenKind::String | TokenKind::RawString) {
            return Err(self.unexpected(&token, context));
        }
        let name = self.unquote(&token)?.into_owned();
        self.expect(TokenKind::RightDelim, context)?;
        let (saved_base, var_mark) = self.new_var_scope();
        let (list, end) = self.item_list()?;
        self.end_var_scope(saved_base, var_mark);
        if let Item::Else(pos) = end {
            return Err(self.error_at(pos, format!("unexpected {{{{else}}}} in {context}")));
        }
        self.add_tree(name, list)
    }

    /// Starts a scope holding only `$`; returns what [`Self::end_var_scope`] restores.
    fn new_var_scope(&mut self) -> (usize, usize) {
        let saved = (self.var_base, self.vars.len());
        self.var_base = self.vars.len();
        self.vars.push("$");
        saved
    }

    fn end_var_scope(&mut self, saved_base: usize, var_mark: usize) {
        self.vars.truncate(var_mark);
        self.var_base = saved_base;
    }

    fn add_tree(&mut self, name: String, root: Box<[Node]>) -> Result<(), ParseError> {
        let text = self.src;
        if let Some(existing) = self.trees.iter_mut().find(|t| t.name == name) {
            if is_empty_tree(&existing.root, text) {
                existing.root = root;
                return Ok(());
            }
            if !is_empty_tree(&root, text) {
                return Err(self.error(format!(
                    "template: multiple definition of template {}",
                    super::print::go_quote(&name)
                )));
            }
            return Ok(());
        }
        self.trees.push(Tree {
            name,
            parse_name: self.parse_name.clone(),
            text: self.text.clone(),
            root,
        });
        Ok(())
    }

    /// textOrAction* up to `{{end}}` or `{{else}}`, which is returned separately.
    fn item_list(&mut self) -> Result<(Box<[Node]>, Item), ParseError> {
        let mark = self.pending.nodes.len();
        while self.peek_non_space().kind != TokenKind::Eof {
            match self.text_or_action()? {
                Item::Node(node) => self.pending.nodes.push(node),
                other => return Ok((finish(&mut self.pending.nodes, mark), other)),
            }
        }
        Err(self.error("unexpected EOF".to_string()))
    }

    fn text_or_action(&mut self) -> Result<Item, ParseError> {
        let token = self.next_non_space();
        match token.kind {
            TokenKind::Text => Ok(Item::Node(Node::Text(token_span(&token)))),
            TokenKind::LeftDelim => {
                self.action_pos = Some(token.pos());
                let result = self.action();
                self.action_pos = None;
                result
            }
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> Result<Item, ParseError> {
        let token = self.next_non_space();
        match token.kind {
            TokenKind::Block => return self.block_control().map(Item::Node),
            TokenKind::Break | TokenKind::Continue => {
                let is_break = token.kind == TokenKind::Break;
                let name = if is_break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let next = self.next_non_space();
                if next.kind != TokenKind::RightDelim {
                    return Err(self.unexpected(&next, name));
                }
                if self.range_depth == 0 {
                    return Err(self.error(format!("{name} outside {{{{range}}}}")));
                }
                return Ok(Item::Node(if is_break {
                    Node::Break
                } else {
                    Node::Continue
                }));
            }
            TokenKind::Else => {
                let peek = self.peek_non_space();
                if matches!(peek.kind, TokenKind::If | TokenKind::With) {
                    return Ok(Item::Else(peek.pos()));
                }
                let token = self.expect(TokenKind::RightDelim, "else")?;
                return Ok(Item::Else(token.pos()));
            }
            TokenKind::End => {
                let token = self.expect(TokenKind::RightDelim, "end")?;
                return Ok(Item::End(token.pos()));
            }
            TokenKind::If => {
                return self
                    .control("if")
                    .map(|b| Item::Node(Node::If(Box::new(b))));
            }
            TokenKind::Range => {
                return self
                    .control("range")
                    .map(|b| Item::Node(Node::Range(Box::new(b))));
            }
            TokenKind::With => {
                return self
                    .control("with")
                    .map(|b| Item::Node(Node::With(Box::new(b))));
            }
            TokenKind::Template => return self.template_control().map(Item::Node),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", TokenKind::RightDelim)?;
        Ok(Item::Node(Node::Action(pipe)))
    }

    fn control(&mut self, context: &str) -> Result<Branch, ParseError> {
        if self.nesting >= MAX_NESTING {
            return Err(self.error("max expression depth exceeded".to_string()));
        }
        self.nesting += 1;
        let var_mark = self.vars.len();
        let result = self.control_inner(context);
        self.vars.truncate(var_mark);
        self.nesting -= 1;
        result
    }

    fn control_inner(&mut self, context: &str) -> Result<Branch, ParseError> {
        let pipe = self.pipeline(context, TokenKind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = listed?;
        let mut else_list = None;
        if let Item::Else(_) = next {
            let peek = self.peek();
            if context == "if" && peek.kind == TokenKind::If {
                self.next();
                let chained: Box<[Node]> = Box::new([Node::If(Box::new(self.control("if")?))]);
                else_list = Some(chained);
            } else if context == "with" && peek.kind == TokenKind::With {
                self.next();
                let chained: Box<[Node]> = Box::new([Node::With(Box::new(self.control("with")?))]);
                else_list = Some(chained);
            } else {
                let (list, next) = self.item_list()?;
                if let Item::Else(pos) = next {
                    return Err(self.error_at(pos, "expected end; found {{else}}".to_string()));
                }
                else_list = Some(list);
            }
        }
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, token: &Token, context: &str) -> Result<String, ParseError> {
        match token.kind {
            TokenKind::String | TokenKind::RawString => self.unquote(token).map(Cow::into_owned),
            _ => Err(self.unexpected(token, context)),
        }
    }

    fn template_control(&mut self) -> Result<Node, ParseError> {
        let context = "template clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let pipe = if self.next_non_space().kind != TokenKind::RightDelim {
            self.backup();
            Some(self.pipeline(context, TokenKind::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template(Box::new(TemplateCall {
            pos: token.pos,
            name,
            pipe,
        })))
    }

    fn block_control(&mut self) -> Result<Node, ParseError> {
        let context = "block clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let pipe = self.pipeline(context, TokenKind::RightDelim)?;
        let (saved_base, var_mark) = self.new_var_scope();
        let saved_depth = std::mem::replace(&mut self.range_depth, 0);
        let listed = self.item_list();
        self.end_var_scope(saved_base, var_mark);
        self.range_depth = saved_depth;
        let (list, end) = listed?;
        if let Item::Else(pos) = end {
            return Err(self.error_at(pos, format!("unexpected {{{{else}}}} in {context}")));
        }
        self.add_tree(name.clone(), list)?;
        Ok(Node::Template(Box::new(TemplateCall {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        })))
    }

    fn pipeline(&mut self, context: &str, end: TokenKind) -> Result<Pipe, ParseError> {
        let start = self.peek_non_space();
        let mut is_assign = false;
        let mut decl = Vec::new();
        let cmds_mark = self.pending.cmds.len();
        loop {
            let v = self.peek_non_space();
            if v.kind != TokenKind::Variable {
                break;
            }
            let save = self.index;
            self.next_non_space();
            let next = self.peek_non_space();
            match next.kind {
                TokenKind::Assign | TokenKind::Declare => {
                    is_assign = next.kind == TokenKind::Assign;
                    self.next_non_space();
                    let var = self.text_of(&v);
                    decl.push(token_span(&v));
                    self.vars.push(var);
                    break;
                }
                TokenKind::Char if self.text_of(&next) == "," => {
                    self.next_non_space();
                    let var = self.text_of(&v);
                    decl.push(token_span(&v));
                    self.vars.push(var);
                    if context == "range" && decl.len() < 2 {
                        let after = self.peek_non_space();
                        if matches!(
                            after.kind,
                            TokenKind::Variable | TokenKind::RightDelim | TokenKind::RightParen
                        ) {
                            continue;
                        }
                        return Err(self.error("range can only initialize variables".to_string()));
                    }
                    return Err(self.error(format!("too many declarations in {context}")));
                }
                _ => {
                    self.index = save;
                    break;
                }
            }
        }
        loop {
            let token = self.next_non_space();
            if token.kind == end {
                let cmds = finish(&mut self.pending.cmds, cmds_mark);
                self.check_pipeline(&cmds, context)?;
                return Ok(Pipe {
                    pos: start.pos,
                    is_assign,
                    decl: decl.as_slice().into(),
                    cmds,
                });
            }
            match token.kind {
                TokenKind::Bool
                | TokenKind::CharConstant
                | TokenKind::Dot
                | TokenKind::Field
                | TokenKind::Identifier
                | TokenKind::Number
                | TokenKind::Complex
                | TokenKind::Nil
                | TokenKind::RawString
                | TokenKind::String
                | TokenKind::Variable
                | TokenKind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    self.pending.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn check_pipeline(&self, cmds: &[Command], context: &str) -> Result<(), ParseError> {
        if cmds.is_empty() {
            return Err(self.error(format!("missing value for {context}")));
        }
        for (i, cmd) in cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Number { .. }
                        | Arg::String { .. }
                )
            ) {
                return Err(self.error(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Command, ParseError> {
        let start = self.peek_non_space();
        let mark = self.pending.args.len();
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                self.pending.args.push(operand);
            }
            let token = self.next();
            match token.kind {
                TokenKind::Space => continue,
                TokenKind::RightDelim | TokenKind::RightParen => self.backup(),
                TokenKind::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if self.pending.args.len() == mark {
            return Err(self.error("empty command".to_string()));
        }
        Ok(Command {
            pos: start.pos,
            args: finish(&mut self.pending.args, mark),
        })
    }

    fn operand(&mut self) -> Result<Option<Arg>, ParseError> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != TokenKind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let fields = self.take_fields();
        Ok(Some(match node {
            Arg::Field { path, .. } => Arg::Field {
                pos: chain_pos,
                path: Path::new(
                    Span {
                        start: path.span.start,
                        end: fields.end,
                    },
                    self.src,
                ),
            },
            Arg::Variable { path, .. } => Arg::Variable {
                pos: chain_pos,
                path: Path::new(
                    Span {
                        start: path.span.start,
                        end: fields.end,
                    },
                    self.src,
                ),
            },
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number { .. }
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                // Go reports the error at the chain's last field, the token just taken.
                return Err(self.error(format!(
                    "unexpected . after term {}",
                    super::print::go_quote(&node.display(self.src).to_string())
                )));
            }
            other => Arg::Chain {
                pos: chain_pos,
                node: Box::new(other),
                fields: Path::new(fields, self.src),
            },
        }))
    }

    /// Takes the `Field` tokens that follow (`.a.b`): the span of their names (`a.b`). They
    /// are one piece of the text: a space between two would be a token of its own.
    fn take_fields(&mut self) -> Span {
        let first = self.next();
        let mut end = first.pos + first.len;
        while self.peek().kind == TokenKind::Field {
            let token = self.next();
            debug_assert_eq!(token.pos, end, "field tokens are contiguous");
            end = token.pos + token.len;
        }
        Span {
            start: first.pos + 1,
            end,
        }
    }

    fn term(&mut self) -> Result<Option<Arg>, ParseError> {
        let token = self.next_non_space();
        let pos = token.pos;
        let text = self.text_of(&token);
        Ok(Some(match token.kind {
            TokenKind::Identifier => {
                if !(self.has_function)(text) {
                    return Err(self.error(format!(
                        "function {} not defined",
                        super::print::go_quote(text)
                    )));
                }
                Arg::Identifier {
                    pos,
                    name: token_span(&token),
                }
            }
            TokenKind::Dot => Arg::Dot { pos },
            TokenKind::Nil => Arg::Nil { pos },
            TokenKind::Variable => {
                if !self.in_scope(text) {
                    return Err(self.error(format!(
                        "undefined variable {}",
                        super::print::go_quote(text)
                    )));
                }
                Arg::Variable {
                    pos,
                    path: Path::new(token_span(&token), self.src),
                }
            }
            // The token is the field's name after a dot.
            TokenKind::Field => Arg::Field {
                pos,
                path: Path::new(
                    Span {
                        start: token.pos + 1,
                        end: token.pos + token.len,
                    },
                    self.src,
                ),
            },
            TokenKind::Bool => Arg::Bool {
                pos,
                value: text == "true",
            },
            TokenKind::CharConstant | TokenKind::Number | TokenKind::Complex => {
                let kind = match token.kind {
                    TokenKind::CharConstant => NumberKind::Char,
                    TokenKind::Complex => NumberKind::Complex,
                    _ => NumberKind::Number,
                };
                let value = parse_constant(text, kind).map_err(|message| self.error(message))?;
                Arg::Number {
                    pos,
                    text: token_span(&token),
                    value: NumberValue::new(value),
                }
            }
            TokenKind::LeftParen => {
                if self.nesting >= MAX_NESTING {
                    return Err(self.error("max expression depth exceeded".to_string()));
                }
                self.nesting += 1;
                let pipe = self.pipeline("parenthesized pipeline", TokenKind::RightParen);
                self.nesting -= 1;
                Arg::Pipe(Box::new(pipe?))
            }
            TokenKind::String | TokenKind::RawString => {
                let value = match self.unquote(&token)? {
                    // What unquoting leaves as it was is the text between the quotes.
                    Cow::Borrowed(_) => StringValue::Source(Span {
                        start: token.pos + 1,
                        end: token.pos + token.len - 1,
                    }),
                    Cow::Owned(value) => StringValue::Decoded(value.into_boxed_str()),
                };
                Arg::String {
                    pos,
                    quoted: token_span(&token),
                    value,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// The text a token covers.
fn token_span(token: &Token) -> Span {
    Span {
        start: token.pos,
        end: token.pos + token.len,
    }
}

/// Go's `strconv.Unquote` for "..." , `...` and '...' literals; borrowed when the value is
/// the text between the quotes.
pub fn unquote_go(text: &str) -> Option<Cow<'_, str>> {
    let bytes = text.as_bytes();
    if bytes.len() < 2 {
        return None;
    }
    let quote = bytes[0];
    if bytes[bytes.len() - 1] != quote {
        return None;
    }
    let inner = &text[1..text.len() - 1];
    if quote == b'`' {
        if inner.contains('`') {
            return None;
        }
        if !inner.contains('\r') {
            return Some(Cow::Borrowed(inner));
        }
        return Some(Cow::Owned(inner.replace('\r', "")));
    }
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    if !inner
        .bytes()
        .any(|b| b == b'\\' || b == b'\n' || b == quote)
    {
        // Nothing to decode: most strings in templates.
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            return None;
        }
        if c != '\\' {
            if c as u32 == quote as u32 {
                return None;
            }
            out.push(c);
            continue;
        }
        let escaped = chars.next()?;
        match escaped {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '\'' if quote == b'\'' => out.push('\''),
            '"' if quote == b'"' => out.push('"'),
            'x' | 'u' | 'U' => {
                let len = match escaped {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..len).filter_map(|_| chars.next()).collect();
                if hex.len() != len {
                    return None;
                }
                let code = u32::from_str_radix(&hex, 16).ok()?;
                if escaped == 'x' {
                    // A \x byte: only valid as a whole UTF-8 sequence; keelson keeps ASCII ones
                    // and maps others to their Latin-1 code point.
                    out.push(char::from_u32(code)?);
                } else {
                    out.push(char::from_u32(code)?);
                }
            }
            '0'..='7' => {
                let mut code = escaped.to_digit(8)?;
                for _ in 0..2 {
                    code = code * 8 + chars.next()?.to_digit(8)?;
                }
                if code > 255 {
                    return None;
                }
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(Cow::Owned(out))
}

/// Go's cap on nested parenthesized pipelines (`maxStackDepth`); keelson applies it to nested
/// `if`/`range`/`with`/`block` bodies too, so parsing recursion stays bounded.
const MAX_NESTING: usize = 10000;

/// All trees of a template set by name, shared by every execution.
pub type TreeSet = crate::functions::FastMap<String, Arc<Tree>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn parse_all(text: &str) -> Result<Vec<Tree>, ParseError> {
        parse(
            "t.yaml",
            text,
            &|name| name == "include" || name == "upper",
            false,
        )
    }

    #[test]
    fn go123_lines_leave_out_a_comments_newlines() {
        let text = "a\n{{/* one\ntwo */}}\n{{- /* x\ny */ -}}\n\n{{ end }}";
        let line = |go123| {
            parse("t.yaml", text, &|_| false, go123)
                .err()
                .map(|e| e.line)
        };
        assert_eq!(line(false), Some(7));
        assert_eq!(line(true), Some(5));
    }

    #[test]
    fn an_unclosed_action_names_its_first_line_once() {
        let err = parse_all("a: 1\nb: {{ .x\n\n").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("template: t.yaml:4: unclosed action started at t.yaml:2")
        );
    }

    #[test]
    fn defines_are_separate_trees() {
        let trees = parse_all("a{{define \"x\"}}b{{end}}c").unwrap_or_default();
        let names: Vec<&str> = trees.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["t.yaml", "x"]);
    }

    #[test]
    fn parse_errors_use_go_wording() {
        let err = parse_all("{{ x }}").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("template: t.yaml:1: function \"x\" not defined")
        );
        let err = parse_all("\n{{ end }}").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("template: t.yaml:2: unexpected {{end}}")
        );
        let err = parse_all("{{ if }}").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("template: t.yaml:1: missing value for if")
        );
        let err = parse_all("{{ $x }}").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("template: t.yaml:1: undefined variable \"$x\"")
        );
        let err = parse_all("{{ break }}").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("template: t.yaml:1: {{break}} outside {{range}}")
        );
    }

    #[test]
    fn field_chain_position_is_the_second_field() {
        let trees = parse_all("x: {{ .Values.a.b }}").unwrap_or_default();
        let pos = trees.first().and_then(|t| match t.root.get(1) {
            Some(Node::Action(pipe)) => {
                pipe.cmds.first().and_then(|c| c.args.first()).map(Arg::pos)
            }
            _ => None,
        });
        assert_eq!(pos, Some(13));
    }

    #[test]
    fn tree_nodes_stay_small() {
        // Trees are most of a render's heap: these sizes are what keeps them compact.
        assert_eq!(std::mem::size_of::<Span>(), 8);
        assert_eq!(std::mem::size_of::<Arg>(), 32);
        assert_eq!(std::mem::size_of::<Command>(), 24);
        assert_eq!(std::mem::size_of::<Pipe>(), 40);
        assert_eq!(std::mem::size_of::<Node>(), 40);
    }

    #[test]
    fn numbers_follow_go_constants() {
        let number = |text: &str, kind| parse_constant(text, kind);
        assert!(matches!(
            number("0x1F", NumberKind::Number),
            Ok(Ok(Value::Int(31)))
        ));
        assert!(matches!(
            number("-3", NumberKind::Number),
            Ok(Ok(Value::Int(-3)))
        ));
        assert!(
            matches!(number("1e3", NumberKind::Number), Ok(Ok(Value::Float(f))) if f == 1000.0)
        );
        assert!(matches!(
            number("'a'", NumberKind::Char),
            Ok(Ok(Value::Int(97)))
        ));
    }
}
