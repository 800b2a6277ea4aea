//! Go text/template's lexer: splits a template into text and action tokens, with Go's trim
//! markers, comments and error wording.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    /// `=`
    Assign,
    /// `:=`
    Declare,
    Pipe,
    LeftParen,
    RightParen,
    /// A printable ASCII character inside an action (`,` in `range $i, $e`).
    Char,
    /// `'a'`
    CharConstant,
    /// `1+2i` (Go's `itemComplex`); imaginary numbers alone (`2i`) are `Number`s.
    Complex,
    Number,
    String,
    RawString,
    Bool,
    Identifier,
    /// `.name`
    Field,
    /// `$` or `$name`
    Variable,
    Dot,
    Nil,
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
    Eof,
    /// A lexing error; the token's text is Go's message.
    Error,
}

impl TokenKind {
    pub fn is_keyword(self) -> bool {
        matches!(
            self,
            TokenKind::Block
                | TokenKind::Break
                | TokenKind::Continue
                | TokenKind::Define
                | TokenKind::Else
                | TokenKind::End
                | TokenKind::If
                | TokenKind::Range
                | TokenKind::Template
                | TokenKind::With
                | TokenKind::Dot
                | TokenKind::Nil
        )
    }
}

/// One token: its kind and where its text is in the template. Tokens are small `Copy` values
/// without a borrow, so that the parser's look-ahead costs nothing and one token buffer per
/// thread serves every file (parsing is a large part of rendering a chart).
#[derive(Clone, Copy, Debug)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte offset in the template.
    pub pos: u32,
    /// Byte length of the token's text.
    pub len: u32,
}

impl Token {
    pub fn pos(&self) -> usize {
        self.pos as usize
    }

    /// The token's text in `input`, the template it was lexed from.
    pub fn text<'a>(&self, input: &'a str) -> &'a str {
        let start = self.pos as usize;
        input.get(start..start + self.len as usize).unwrap_or("")
    }
}

/// The largest template the lexer takes (token positions are 32-bit).
pub const MAX_TEMPLATE_BYTES: usize = u32::MAX as usize;

/// What [`lex`] found.
pub struct Lexed<'a> {
    pub input: &'a str,
    /// Ends with `Eof` or `Error`.
    pub tokens: Vec<Token>,
    /// The byte ranges of the comments' `/* ... */` (what Go 1.23's lexer skips without
    /// counting its newlines).
    pub comments: Vec<std::ops::Range<usize>>,
    /// Go's message for the final `Error` token, if lexing failed.
    pub error: Option<Cow<'static, str>>,
}

impl<'a> Lexed<'a> {
    /// A token's text, or Go's message for an `Error` token.
    pub fn text(&self, token: &Token) -> &str {
        match (&self.error, token.kind) {
            (Some(message), TokenKind::Error) => message,
            _ => token.text(self.input),
        }
    }
}

use std::borrow::Cow;

const LEFT_DELIM: &[u8; 2] = b"{{";
const RIGHT_DELIM: &[u8] = b"}}";
const LEFT_COMMENT: &[u8] = b"/*";
const RIGHT_COMMENT: &[u8; 2] = b"*/";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim_marker(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == b'-' && is_space_byte(b[1])
}

/// ` -}}` at the start of `b`.
fn is_trimmed_right_delim(b: &[u8]) -> bool {
    b.len() >= 4 && is_space_byte(b[0]) && b[1] == b'-' && b[2] == b'}' && b[3] == b'}'
}

/// ASCII bytes that continue an identifier (`_`, letters, digits).
const IDENTIFIER_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = b == b'_' as usize || (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    table
};

/// Where `byte` first occurs in `haystack`, eight bytes at a time (templates are mostly text
/// between delimiters, and `str::find` with a pattern sets up a searcher per call).
fn find_byte(haystack: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let repeated = ONES * byte as u64;
    let mut chunks = haystack.chunks_exact(8);
    let mut skipped = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ repeated;
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        skipped += 8;
    }
    haystack[skipped..]
        .iter()
        .position(|b| *b == byte)
        .map(|at| skipped + at)
}

/// Where `needle` (two ASCII bytes) first occurs in `haystack`.
fn find_pair(haystack: &[u8], needle: &[u8; 2]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + find_byte(haystack.get(from..)?, needle[0])?;
        if haystack.get(at + 1) == Some(&needle[1]) {
            return Some(at);
        }
        from = at + 1;
    }
}

fn keyword(word: &str) -> Option<TokenKind> {
    Some(match word {
        "." => TokenKind::Dot,
        "block" => TokenKind::Block,
        "break" => TokenKind::Break,
        "continue" => TokenKind::Continue,
        "define" => TokenKind::Define,
        "else" => TokenKind::Else,
        "end" => TokenKind::End,
        "if" => TokenKind::If,
        "range" => TokenKind::Range,
        "nil" => TokenKind::Nil,
        "template" => TokenKind::Template,
        "with" => TokenKind::With,
        _ => return None,
    })
}

/// Splits `input` (at most [`MAX_TEMPLATE_BYTES`] long) into tokens and notes where its
/// comments are. Lexing stops after the first error token; the last token is always `Eof` or
/// `Error`.
pub fn lex(input: &str) -> Lexed<'_> {
    lex_into(input, Vec::new())
}

/// [`lex`] into `tokens` (cleared first), so that a caller can reuse one buffer.
pub fn lex_into(input: &str, mut tokens: Vec<Token>) -> Lexed<'_> {
    tokens.clear();
    // Helm templates run about one token per 7 bytes; sizing once avoids regrowing (and
    // copying) the token vector several times per file.
    tokens.reserve(input.len() / 4 + 8);
    let mut lexer = Lexer {
        input,
        bytes: input.as_bytes(),
        start: 0,
        pos: 0,
        tokens,
        paren_depth: 0,
        comments: Vec::new(),
        error: None,
    };
    lexer.run();
    Lexed {
        input,
        tokens: lexer.tokens,
        comments: lexer.comments,
        error: lexer.error,
    }
}

struct Lexer<'a> {
    input: &'a str,
    bytes: &'a [u8],
    start: usize,
    pos: usize,
    tokens: Vec<Token>,
    paren_depth: i32,
    comments: Vec<std::ops::Range<usize>>,
    error: Option<Cow<'static, str>>,
}

enum State {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    InsideAction,
    Done,
}

impl<'a> Lexer<'a> {
    fn run(&mut self) {
        let mut state = State::Text;
        loop {
            state = match state {
                State::Text => self.lex_text(),
                State::LeftDelim => self.lex_left_delim(),
                State::Comment => self.lex_comment(),
                State::RightDelim => self.lex_right_delim(),
                State::InsideAction => self.lex_inside_action(),
                State::Done => return,
            };
        }
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn rest_bytes(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    fn peek_byte(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek(&self) -> Option<char> {
        let b = self.peek_byte()?;
        if b.is_ascii() {
            return Some(b as char);
        }
        self.rest().chars().next()
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn emit(&mut self, kind: TokenKind) {
        // Both fit: `lex` takes at most MAX_TEMPLATE_BYTES.
        self.tokens.push(Token {
            kind,
            pos: self.start as u32,
            len: (self.pos - self.start) as u32,
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn error(&mut self, message: &'static str) -> State {
        self.error_found(Cow::Borrowed(message))
    }

    fn error_found(&mut self, message: Cow<'static, str>) -> State {
        self.error = Some(message);
        self.tokens.push(Token {
            kind: TokenKind::Error,
            pos: self.start as u32,
            len: 0,
        });
        State::Done
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest_bytes();
        if is_trimmed_right_delim(rest) {
            return (true, true);
        }
        (rest.starts_with(RIGHT_DELIM), false)
    }

    fn skip_spaces(&mut self) {
        while self.peek_byte().is_some_and(is_space_byte) {
            self.pos += 1;
        }
    }

    fn lex_text(&mut self) -> State {
        if let Some(x) = find_pair(self.rest_bytes(), LEFT_DELIM) {
            if x > 0 {
                self.pos += x;
                let delim_end = self.pos + LEFT_DELIM.len();
                let mut trim = 0;
                if has_left_trim_marker(&self.bytes[delim_end..]) {
                    let text = &self.input[self.start..self.pos];
                    trim = text.len() - text.trim_end_matches(is_space).len();
                }
                self.pos -= trim;
                if self.pos > self.start {
                    self.emit(TokenKind::Text);
                }
                self.pos += trim;
                self.ignore();
            }
            return State::LeftDelim;
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(TokenKind::Text);
        }
        self.emit(TokenKind::Eof);
        State::Done
    }

    fn lex_left_delim(&mut self) -> State {
        self.pos += LEFT_DELIM.len();
        let trim = has_left_trim_marker(self.rest_bytes());
        let after_marker = if trim { 2 } else { 0 };
        if self.bytes[self.pos + after_marker..].starts_with(LEFT_COMMENT) {
            self.pos += after_marker;
            self.ignore();
            return State::Comment;
        }
        self.emit(TokenKind::LeftDelim);
        self.pos += after_marker;
        self.ignore();
        self.paren_depth = 0;
        State::InsideAction
    }

    fn lex_comment(&mut self) -> State {
        let comment_start = self.pos;
        self.pos += LEFT_COMMENT.len();
        let Some(x) = find_pair(self.rest_bytes(), RIGHT_COMMENT) else {
            return self.error("unclosed comment");
        };
        self.pos += x + RIGHT_COMMENT.len();
        self.comments.push(comment_start..self.pos);
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter");
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT_DELIM.len();
        if trim {
            self.skip_spaces();
        }
        self.ignore();
        State::Text
    }

    fn lex_right_delim(&mut self) -> State {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT_DELIM.len();
        self.emit(TokenKind::RightDelim);
        if trim {
            self.skip_spaces();
            self.ignore();
        }
        State::Text
    }

    fn lex_inside_action(&mut self) -> State {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return State::RightDelim;
            }
            return self.error("unclosed left paren");
        }
        let Some(b) = self.peek_byte() else {
            return self.error("unclosed action");
        };
        if !b.is_ascii() {
            let c = self.peek().unwrap_or('\0');
            if is_alphanumeric(c) {
                return self.lex_identifier();
            }
            self.pos += c.len_utf8();
            return self.error_found(Cow::Owned(format!(
                "unrecognized character in action: {}",
                crate::print::go_unicode_repr(c)
            )));
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => self.lex_space(),
            b'+' | b'-' | b'0'..=b'9' => self.lex_number(),
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => self.lex_identifier(),
            _ => {
                self.pos += 1;
                match b {
                    b'=' => {
                        self.emit(TokenKind::Assign);
                        State::InsideAction
                    }
                    b':' => {
                        if self.next_char() != Some('=') {
                            return self.error("expected :=");
                        }
                        self.emit(TokenKind::Declare);
                        State::InsideAction
                    }
                    b'|' => {
                        self.emit(TokenKind::Pipe);
                        State::InsideAction
                    }
                    b'"' => self.lex_quote(),
                    b'`' => self.lex_raw_quote(),
                    b'$' => self.lex_variable(),
                    b'\'' => self.lex_char(),
                    b'.' => match self.peek_byte() {
                        Some(b'0'..=b'9') => {
                            self.pos -= 1;
                            self.lex_number()
                        }
                        _ => self.lex_field_or_variable(TokenKind::Field),
                    },
                    b'(' => {
                        self.paren_depth += 1;
                        self.emit(TokenKind::LeftParen);
                        State::InsideAction
                    }
                    b')' => {
                        self.paren_depth -= 1;
                        if self.paren_depth < 0 {
                            return self.error("unexpected right paren");
                        }
                        self.emit(TokenKind::RightParen);
                        State::InsideAction
                    }
                    _ if !b.is_ascii_control() => {
                        self.emit(TokenKind::Char);
                        State::InsideAction
                    }
                    _ => self.error_found(Cow::Owned(format!(
                        "unrecognized character in action: {}",
                        crate::print::go_unicode_repr(b as char)
                    ))),
                }
            }
        }
    }

    fn lex_space(&mut self) -> State {
        let from = self.pos;
        self.skip_spaces();
        let spaces = self.pos - from;
        // A space followed by `-}}` belongs to the trim marker.
        if is_trimmed_right_delim(&self.bytes[self.pos - 1..]) {
            self.pos -= 1;
            if spaces == 1 {
                return State::InsideAction;
            }
        }
        self.emit(TokenKind::Space);
        State::InsideAction
    }

    fn at_terminator(&self) -> bool {
        match self.peek_byte() {
            None => true,
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'.' | b',' | b'|' | b':' | b')' | b'(') => true,
            Some(_) => self.rest_bytes().starts_with(RIGHT_DELIM),
        }
    }

    fn skip_alphanumeric(&mut self) {
        loop {
            let rest = self.rest_bytes();
            let ascii = rest
                .iter()
                .position(|b| !IDENTIFIER_BYTE[*b as usize])
                .unwrap_or(rest.len());
            self.pos += ascii;
            match rest.get(ascii) {
                Some(b) if !b.is_ascii() => match self.peek() {
                    Some(c) if is_alphanumeric(c) => self.pos += c.len_utf8(),
                    _ => return,
                },
                _ => return,
            }
        }
    }

    fn bad_character(&mut self) -> State {
        let c = self.peek().unwrap_or('\0');
        self.error_found(Cow::Owned(format!(
            "bad character {}",
            crate::print::go_unicode_repr(c)
        )))
    }

    fn lex_identifier(&mut self) -> State {
        self.skip_alphanumeric();
        if !self.at_terminator() {
            return self.bad_character();
        }
        let word = &self.input[self.start..self.pos];
        let kind = match keyword(word) {
            Some(kind) => kind,
            None if word == "true" || word == "false" => TokenKind::Bool,
            None => TokenKind::Identifier,
        };
        self.emit(kind);
        State::InsideAction
    }

    fn lex_variable(&mut self) -> State {
        if self.at_terminator() {
            self.emit(TokenKind::Variable);
            return State::InsideAction;
        }
        self.lex_field_or_variable(TokenKind::Variable)
    }

    fn lex_field_or_variable(&mut self, kind: TokenKind) -> State {
        if self.at_terminator() {
            self.emit(if kind == TokenKind::Variable {
                TokenKind::Variable
            } else {
                TokenKind::Dot
            });
            return State::InsideAction;
        }
        self.skip_alphanumeric();
        if !self.at_terminator() {
            return self.bad_character();
        }
        self.emit(kind);
        State::InsideAction
    }

    fn lex_char(&mut self) -> State {
        loop {
            match self.next_char() {
                Some('\\') => {
                    if matches!(self.next_char(), None | Some('\n')) {
                        return self.error("unterminated character constant");
                    }
                }
                None | Some('\n') => {
                    return self.error("unterminated character constant");
                }
                Some('\'') => break,
                Some(_) => {}
            }
        }
        self.emit(TokenKind::CharConstant);
        State::InsideAction
    }

    /// Takes the next character if it is one of `valid` (ASCII bytes).
    fn accept(&mut self, valid: &[u8]) -> bool {
        match self.peek_byte() {
            Some(b) if valid.contains(&b) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &[u8]) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        const DECIMAL: &[u8] = b"0123456789_";
        const HEX: &[u8] = b"0123456789abcdefABCDEF_";
        self.accept(b"+-");
        let mut digits = DECIMAL;
        if self.accept(b"0") {
            if self.accept(b"xX") {
                digits = HEX;
            } else if self.accept(b"oO") {
                digits = b"01234567_";
            } else if self.accept(b"bB") {
                digits = b"01_";
            }
        }
        self.accept_run(digits);
        if self.accept(b".") {
            self.accept_run(digits);
        }
        if digits == DECIMAL && self.accept(b"eE") {
            self.accept(b"+-");
            self.accept_run(DECIMAL);
        }
        if digits == HEX && self.accept(b"pP") {
            self.accept(b"+-");
            self.accept_run(DECIMAL);
        }
        self.accept(b"i");
        match self.peek() {
            Some(c) if is_alphanumeric(c) => {
                self.pos += c.len_utf8();
                false
            }
            _ => true,
        }
    }

    fn bad_number(&mut self) -> State {
        let text = &self.input[self.start..self.pos];
        let message = format!("bad number syntax: {}", crate::print::go_quote(text));
        self.error_found(Cow::Owned(message))
    }

    fn lex_number(&mut self) -> State {
        if !self.scan_number() {
            return self.bad_number();
        }
        if matches!(self.peek_byte(), Some(b'+' | b'-')) {
            // A complex constant: 1+2i, no spaces, ending in i.
            if !self.scan_number() || !self.input[self.start..self.pos].ends_with('i') {
                return self.bad_number();
            }
            self.emit(TokenKind::Complex);
            return State::InsideAction;
        }
        self.emit(TokenKind::Number);
        State::InsideAction
    }

    /// Past the closing quote of a "..." string: escapes and UTF-8 need no decoding to find it.
    fn lex_quote(&mut self) -> State {
        loop {
            match self.peek_byte() {
                Some(b'\\') => {
                    self.pos += 1;
                    if matches!(self.next_char(), None | Some('\n')) {
                        return self.error("unterminated quoted string");
                    }
                }
                None | Some(b'\n') => return self.error("unterminated quoted string"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
            }
        }
        self.emit(TokenKind::String);
        State::InsideAction
    }

    fn lex_raw_quote(&mut self) -> State {
        let Some(x) = find_byte(self.rest_bytes(), b'`') else {
            self.pos = self.input.len();
            return self.error("unterminated raw quoted string");
        };
        self.pos += x + 1;
        self.emit(TokenKind::RawString);
        State::InsideAction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<(TokenKind, String)> {
        let lexed = lex(input);
        lexed
            .tokens
            .iter()
            .map(|t| (t.kind, lexed.text(t).to_string()))
            .collect()
    }

    #[test]
    fn trim_markers_remove_surrounding_whitespace() {
        let tokens = kinds("a  \n{{- .x -}}\n  b");
        assert_eq!(
            tokens,
            vec![
                (TokenKind::Text, "a".to_string()),
                (TokenKind::LeftDelim, "{{".to_string()),
                (TokenKind::Field, ".x".to_string()),
                (TokenKind::RightDelim, "}}".to_string()),
                (TokenKind::Text, "b".to_string()),
                (TokenKind::Eof, String::new()),
            ]
        );
    }

    #[test]
    fn comments_with_trim_markers_vanish() {
        let tokens = kinds("a \n{{- /* note */ -}}\n b");
        assert_eq!(tokens[0], (TokenKind::Text, "a".to_string()));
        assert_eq!(tokens[1], (TokenKind::Text, "b".to_string()));
    }

    #[test]
    fn negative_number_is_not_a_trim_marker() {
        let tokens = kinds("{{-3}}");
        assert_eq!(tokens[1], (TokenKind::Number, "-3".to_string()));
    }

    #[test]
    fn unclosed_action_is_an_error() {
        let tokens = kinds("{{ .x ");
        assert!(matches!(tokens.last(), Some((TokenKind::Error, m)) if m == "unclosed action"));
    }
}
