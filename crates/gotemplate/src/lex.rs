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

/// One token: its kind, its byte offset in the template text and its text (borrowed from the
/// template; owned only for error messages).
#[derive(Clone, Debug)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub pos: usize,
    pub text: Cow<'a, str>,
}

impl std::fmt::Display for Token<'_> {
    /// Go's `item.String()`, used in parse error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            TokenKind::Eof => write!(f, "EOF"),
            TokenKind::Error => write!(f, "{}", self.text),
            kind if kind.is_keyword() => write!(f, "<{}>", self.text),
            _ => {
                if self.text.chars().count() > 10 {
                    let short: String = self.text.chars().take(10).collect();
                    write!(f, "{}...", crate::print::go_quote(&short))
                } else {
                    write!(f, "{}", crate::print::go_quote(&self.text))
                }
            }
        }
    }
}

use std::borrow::Cow;

const LEFT_DELIM: &str = "{{";
const RIGHT_DELIM: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
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

/// Splits `input` into tokens. Lexing stops after the first error token; the last token is
/// always `Eof` or `Error`.
pub fn lex(input: &str) -> Vec<Token<'_>> {
    lex_with_comments(input).0
}

/// [`lex`], with the byte ranges of the comments' `/* ... */` (what Go 1.23's lexer skips
/// without counting its newlines).
pub fn lex_with_comments(input: &str) -> (Vec<Token<'_>>, Vec<std::ops::Range<usize>>) {
    let mut lexer = Lexer {
        input,
        start: 0,
        pos: 0,
        tokens: Vec::new(),
        paren_depth: 0,
        comments: Vec::new(),
    };
    lexer.run();
    (lexer.tokens, lexer.comments)
}

struct Lexer<'a> {
    input: &'a str,
    start: usize,
    pos: usize,
    tokens: Vec<Token<'a>>,
    paren_depth: i32,
    comments: Vec<std::ops::Range<usize>>,
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

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn backup_char(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }

    fn emit(&mut self, kind: TokenKind) {
        let text = Cow::Borrowed(self.input.get(self.start..self.pos).unwrap_or(""));
        self.tokens.push(Token {
            kind,
            pos: self.start,
            text,
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn error(&mut self, message: String) -> State {
        self.tokens.push(Token {
            kind: TokenKind::Error,
            pos: self.start,
            text: Cow::Owned(message),
        });
        State::Done
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim_marker(rest) && rest[2..].starts_with(RIGHT_DELIM) {
            return (true, true);
        }
        (rest.starts_with(RIGHT_DELIM), false)
    }

    fn lex_text(&mut self) -> State {
        if let Some(x) = self.rest().find(LEFT_DELIM) {
            if x > 0 {
                self.pos += x;
                let delim_end = self.pos + LEFT_DELIM.len();
                let mut trim = 0;
                if has_left_trim_marker(&self.input[delim_end..]) {
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
        let trim = has_left_trim_marker(self.rest());
        let after_marker = if trim { 2 } else { 0 };
        if self.input[self.pos + after_marker..].starts_with(LEFT_COMMENT) {
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
        let Some(x) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment".to_string());
        };
        self.pos += x + RIGHT_COMMENT.len();
        self.comments.push(comment_start..self.pos);
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".to_string());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT_DELIM.len();
        if trim {
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
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
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
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
            return self.error("unclosed left paren".to_string());
        }
        let Some(c) = self.next_char() else {
            return self.error("unclosed action".to_string());
        };
        match c {
            c if is_space(c) => {
                self.backup_char(Some(c));
                self.lex_space()
            }
            '=' => {
                self.emit(TokenKind::Assign);
                State::InsideAction
            }
            ':' => {
                if self.next_char() != Some('=') {
                    return self.error("expected :=".to_string());
                }
                self.emit(TokenKind::Declare);
                State::InsideAction
            }
            '|' => {
                self.emit(TokenKind::Pipe);
                State::InsideAction
            }
            '"' => self.lex_quote(),
            '`' => self.lex_raw_quote(),
            '$' => self.lex_variable(),
            '\'' => self.lex_char(),
            '.' => {
                let next = self.rest().as_bytes().first().copied();
                match next {
                    Some(b) if b.is_ascii_digit() => {
                        self.backup_char(Some('.'));
                        self.lex_number()
                    }
                    _ => self.lex_field_or_variable(TokenKind::Field),
                }
            }
            '+' | '-' | '0'..='9' => {
                self.backup_char(Some(c));
                self.lex_number()
            }
            c if is_alphanumeric(c) => {
                self.backup_char(Some(c));
                self.lex_identifier()
            }
            '(' => {
                self.paren_depth += 1;
                self.emit(TokenKind::LeftParen);
                State::InsideAction
            }
            ')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.error("unexpected right paren".to_string());
                }
                self.emit(TokenKind::RightParen);
                State::InsideAction
            }
            c if c.is_ascii() && !c.is_ascii_control() => {
                self.emit(TokenKind::Char);
                State::InsideAction
            }
            c => self.error(format!(
                "unrecognized character in action: {}",
                crate::print::go_unicode_repr(c)
            )),
        }
    }

    fn lex_space(&mut self) -> State {
        let mut spaces = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.pos += c.len_utf8();
            spaces += 1;
        }
        // A space followed by `-}}` belongs to the trim marker.
        let before = &self.input[self.pos - 1..];
        if has_right_trim_marker(before) && before[2..].starts_with(RIGHT_DELIM) {
            self.pos -= 1;
            if spaces == 1 {
                return State::InsideAction;
            }
        }
        self.emit(TokenKind::Space);
        State::InsideAction
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with(RIGHT_DELIM),
        }
    }

    fn lex_identifier(&mut self) -> State {
        while let Some(c) = self.peek() {
            if !is_alphanumeric(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\0');
            return self.error(format!(
                "bad character {}",
                crate::print::go_unicode_repr(c)
            ));
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
        while let Some(c) = self.peek() {
            if !is_alphanumeric(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\0');
            return self.error(format!(
                "bad character {}",
                crate::print::go_unicode_repr(c)
            ));
        }
        self.emit(kind);
        State::InsideAction
    }

    fn lex_char(&mut self) -> State {
        loop {
            match self.next_char() {
                Some('\\') => {
                    if matches!(self.next_char(), None | Some('\n')) {
                        return self.error("unterminated character constant".to_string());
                    }
                }
                None | Some('\n') => {
                    return self.error("unterminated character constant".to_string());
                }
                Some('\'') => break,
                Some(_) => {}
            }
        }
        self.emit(TokenKind::CharConstant);
        State::InsideAction
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        match self.peek() {
            Some(c) if is_alphanumeric(c) => {
                self.pos += c.len_utf8();
                false
            }
            _ => true,
        }
    }

    fn lex_number(&mut self) -> State {
        if !self.scan_number() {
            let text = self.input[self.start..self.pos].to_string();
            return self.error(format!(
                "bad number syntax: {}",
                crate::print::go_quote(&text)
            ));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            // A complex constant: 1+2i, no spaces, ending in i.
            if !self.scan_number() || !self.input[self.start..self.pos].ends_with('i') {
                let text = self.input[self.start..self.pos].to_string();
                return self.error(format!(
                    "bad number syntax: {}",
                    crate::print::go_quote(&text)
                ));
            }
            self.emit(TokenKind::Complex);
            return State::InsideAction;
        }
        self.emit(TokenKind::Number);
        State::InsideAction
    }

    fn lex_quote(&mut self) -> State {
        loop {
            match self.next_char() {
                Some('\\') => {
                    if matches!(self.next_char(), None | Some('\n')) {
                        return self.error("unterminated quoted string".to_string());
                    }
                }
                None | Some('\n') => return self.error("unterminated quoted string".to_string()),
                Some('"') => break,
                Some(_) => {}
            }
        }
        self.emit(TokenKind::String);
        State::InsideAction
    }

    fn lex_raw_quote(&mut self) -> State {
        loop {
            match self.next_char() {
                None => return self.error("unterminated raw quoted string".to_string()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(TokenKind::RawString);
        State::InsideAction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<(TokenKind, String)> {
        lex(input)
            .into_iter()
            .map(|t| (t.kind, t.text.into_owned()))
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
