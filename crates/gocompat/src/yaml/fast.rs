//! A hand-written reader for the plain subset of YAML most values files and rendered manifests
//! are written in, about five times cheaper than saphyr's scanner and parser.
//!
//! The subset: block mappings and block sequences (`- key: v` compact forms too), comments,
//! blank lines, a leading `---`, one-line plain scalars, one-line single- and double-quoted
//! scalars (common escapes only), empty values, and literal block scalars (`|`, `|-`) with
//! detected indentation. Scalars go through the one go-yaml v2 resolver
//! ([`super::direct::plain_value`], keys through [`super::key_string`]), and maps are built as
//! the direct loader builds them (a later duplicate replaces the earlier value), so a document
//! read here is the value the other loaders read.
//!
//! Anything else is [`Unusual`], found cheaply and before much work: flow collections,
//! anchors, aliases, tags, merge keys, folded scalars, multi-line plain or quoted scalars,
//! indentation the subset does not expect, tabs, carriage returns, control characters and
//! YAML's non-ASCII line breaks, directives, document markers after the start, `?` and `:`
//! starts, over-long keys, null keys, NaN and infinities. The caller then reads the same text
//! with the saphyr-based loaders, which decide every error and every unusual document exactly
//! as before; this reader never words an error.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::direct::{Unusual, Want, plain_node, plain_value};
use super::{Node, NumberMode, key_string, plain_decimal};
use crate::yaml_emit::Resolved;

/// Nesting beyond this goes to the full loaders (which know go-yaml's limit and its words).
const MAX_NESTING: usize = 200;

/// go-yaml refuses a simple key longer than 1024 characters; well below, a key is surely one.
const MAX_KEY_BYTES: usize = 1000;

/// The first document of `text` as `parse_documents` with a limit of one reads it (no
/// document at all is an empty vector, an explicitly started empty one is `null`), or
/// [`Unusual`] when the text is not in the subset.
pub(super) fn first_document(
    text: &str,
    numbers: NumberMode,
    want: Want,
) -> Result<Vec<Value>, Unusual> {
    if !plain_characters(text.as_bytes()) {
        return Err(Unusual);
    }
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        peeked: None,
        numbers,
        depth: 0,
    };
    let mut started = false;
    if let Some(line) = reader.peek_any()?
        && line.indent == 0
        && reader.bytes[line.content..line.end].starts_with(b"---")
    {
        if !reader.bytes[line.content + 3..line.end]
            .iter()
            .all(|b| *b == b' ')
        {
            return Err(Unusual);
        }
        reader.consume(line);
        started = true;
    }
    let Some(line) = reader.peek()? else {
        return Ok(if started {
            vec![Value::Null]
        } else {
            Vec::new()
        });
    };
    let value = reader.block_node(line, want)?;
    // What follows the root node (a less indented line, a second document) is the full
    // loaders' business: go-yaml may stop reading or fail there.
    if reader.peek()?.is_some() {
        return Err(Unusual);
    }
    Ok(vec![value])
}

/// No tab, carriage return, other control character or DEL, and none of the non-ASCII
/// characters YAML treats specially: NEL, LS and PS (line breaks), the byte order mark,
/// C1 controls and the non-characters U+FFFE/U+FFFF.
fn plain_characters(bytes: &[u8]) -> bool {
    // Eight bytes at a time, each byte's test exact (no carry crosses a byte): this runs over
    // every text read, and a byte-by-byte loop cost more than the reading after it.
    let mut words = bytes.chunks_exact(8);
    let mut bad = 0u64;
    let mut high = 0u64;
    for word in &mut words {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        let w = u64::from_ne_bytes(array);
        // Below 0x20: high bit clear and the low seven bits below 0x20.
        let control = !((((w & LOW7) + repeat(0x80 - 0x20)) | w) | LOW7);
        let newline = zero_bytes(w ^ repeat(b'\n'));
        let delete = zero_bytes(w ^ repeat(0x7f));
        bad |= (control & !newline) | delete;
        high |= w;
    }
    for &b in words.remainder() {
        if (b < 0x20 && b != b'\n') || b == 0x7f {
            return false;
        }
        high |= u64::from(b);
    }
    if bad & HIGH != 0 {
        return false;
    }
    if high & HIGH == 0 {
        return true;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b >= 0x80 {
            let next = bytes.get(i + 1).copied().unwrap_or(0);
            let third = bytes.get(i + 2).copied().unwrap_or(0);
            let special = match b {
                0xC2 => (0x80..=0x9F).contains(&next),
                0xE2 => next == 0x80 && (third == 0xA8 || third == 0xA9),
                0xEF => (next == 0xBB && third == 0xBF) || (next == 0xBF && third >= 0xBE),
                _ => false,
            };
            if special {
                return false;
            }
        }
        i += 1;
    }
    true
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// `byte` in each of a word's eight bytes.
const fn repeat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The high bit of each byte of `w` that is zero, and nothing else (exact: no carry crosses a
/// byte, unlike the usual has-zero trick).
fn zero_bytes(w: u64) -> u64 {
    !((((w & LOW7) + LOW7) | w) | LOW7)
}

/// The eight bytes from `at` as a word.
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(array)
}

/// A line with content (not blank, not a comment): byte offsets into the text.
#[derive(Clone, Copy)]
struct Line {
    /// Spaces before the content (the column: only spaces indent, and they are ASCII).
    indent: usize,
    /// The first byte of content.
    content: usize,
    /// The line's `\n`, or the end of the text.
    end: usize,
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The start of the first line not read yet.
    pos: usize,
    /// The next content line, once looked at.
    peeked: Option<Line>,
    numbers: NumberMode,
    depth: usize,
}

/// A scalar at the start of some content, and what follows it.
struct Scalar<'a> {
    text: Cow<'a, str>,
    plain: bool,
    /// Followed by `:` and a blank (or the line's end): it is a key.
    key: bool,
    /// After a key, the byte after its `:`; otherwise the line's end (only blanks and a
    /// comment were left).
    after: usize,
    /// A comment ends the line (so a plain scalar cannot go on below).
    commented: bool,
}

impl<'a> Reader<'a> {
    fn line_end(&self, from: usize) -> usize {
        match self.text[from..].find('\n') {
            Some(at) => from + at,
            None => self.bytes.len(),
        }
    }

    /// The next content line, skipping blank and comment lines.
    fn peek_any(&mut self) -> Result<Option<Line>, Unusual> {
        if let Some(line) = self.peeked {
            return Ok(Some(line));
        }
        while self.pos < self.bytes.len() {
            let start = self.pos;
            let end = self.line_end(start);
            let content = self.skip_spaces(start, end);
            if content == end || self.bytes[content] == b'#' {
                self.pos = end + 1;
                continue;
            }
            let line = Line {
                indent: content - start,
                content,
                end,
            };
            self.peeked = Some(line);
            return Ok(Some(line));
        }
        Ok(None)
    }

    /// [`Reader::peek_any`], refusing document markers and directives (the full loaders
    /// decide what they end or start).
    fn peek(&mut self) -> Result<Option<Line>, Unusual> {
        let line = self.peek_any()?;
        if let Some(line) = line
            && line.indent == 0
        {
            let rest = &self.bytes[line.content..line.end];
            if rest.starts_with(b"---") || rest.starts_with(b"...") || rest[0] == b'%' {
                return Err(Unusual);
            }
        }
        Ok(line)
    }

    fn consume(&mut self, line: Line) {
        self.pos = line.end + 1;
        self.peeked = None;
    }

    fn is_entry(&self, line: Line) -> bool {
        self.bytes[line.content] == b'-' && self.blank_or_end(line.content + 1, line.end)
    }

    fn blank_or_end(&self, at: usize, end: usize) -> bool {
        at >= end || self.bytes[at] == b' '
    }

    /// `read` one level deeper; past [`MAX_NESTING`] levels the loaders decide.
    fn nested(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<Value, Unusual>,
    ) -> Result<Value, Unusual> {
        if self.depth >= MAX_NESTING {
            return Err(Unusual);
        }
        self.depth += 1;
        let value = read(self);
        self.depth -= 1;
        value
    }

    /// A block mapping or sequence starting at `line`.
    fn block_node(&mut self, line: Line, want: Want) -> Result<Value, Unusual> {
        self.nested(|reader| {
            if reader.is_entry(line) {
                reader.sequence(line, false, want)
            } else if matches!(reader.bytes[line.content], b'[' | b'{') {
                reader.consume(line);
                reader.flow_collection(line.content, line.end, want)
            } else {
                reader.mapping(line, want)
            }
        })
    }

    /// A block mapping whose first key starts at `first` (a line, or the rest of a `- ` line).
    fn mapping(&mut self, first: Line, want: Want) -> Result<Value, Unusual> {
        let indent = first.indent;
        let mut map = Map::new();
        let mut line = first;
        loop {
            let scalar = self.scalar(line.content, line.end)?;
            if !scalar.key {
                return Err(Unusual);
            }
            let after = self.skip_spaces(scalar.after, line.end);
            let key = self.key_text(scalar)?;
            let value_want = want.entry(&key);
            self.consume(line);
            let value = if after == line.end || self.bytes[after] == b'#' {
                self.value_below(indent, true, value_want)?
            } else {
                self.inline_value(after, line.end, indent, value_want)?
            };
            if want != Want::Skip && value_want != Want::Skip {
                map.insert(key.into_owned(), value);
            }
            match self.peek()? {
                Some(next) if next.indent == indent => line = next,
                Some(next) if next.indent > indent => return Err(Unusual),
                _ => break,
            }
        }
        Ok(if want == Want::Skip {
            Value::Null
        } else {
            Value::Object(map)
        })
    }

    /// A block sequence whose first `-` is `first`'s content. `indentless`: the value of a
    /// mapping key at the same column, which a line at that column without `-` ends.
    fn sequence(&mut self, first: Line, indentless: bool, want: Want) -> Result<Value, Unusual> {
        let indent = first.indent;
        let item_want = want.item();
        let mut items = Vec::new();
        let mut line = first;
        loop {
            self.consume(line);
            let at = self.skip_spaces(line.content + 1, line.end);
            let item = if at == line.end || self.bytes[at] == b'#' {
                self.value_below(indent, false, item_want)?
            } else if self.bytes[at] == b'-' && self.blank_or_end(at + 1, line.end) {
                return Err(Unusual);
            } else if !matches!(self.bytes[at], b'[' | b'{' | b'|')
                && self.starts_key(at, line.end)?
            {
                let compact = Line {
                    indent: line.indent + (at - line.content),
                    content: at,
                    end: line.end,
                };
                self.nested(|reader| reader.mapping(compact, item_want))?
            } else {
                self.inline_value(at, line.end, indent, item_want)?
            };
            if item_want != Want::Skip {
                items.push(item);
            }
            match self.peek()? {
                Some(next) if next.indent == indent && self.is_entry(next) => line = next,
                Some(next) if next.indent == indent && indentless => break,
                Some(next) if next.indent >= indent => return Err(Unusual),
                _ => break,
            }
        }
        Ok(if want == Want::Skip {
            Value::Null
        } else {
            Value::Array(items)
        })
    }

    /// The value of a key or entry with nothing after its indicator on its line: a block
    /// node on the following lines, or null.
    fn value_below(&mut self, indent: usize, key: bool, want: Want) -> Result<Value, Unusual> {
        match self.peek()? {
            Some(next) if next.indent > indent => self.block_node(next, want),
            Some(next) if key && next.indent == indent && self.is_entry(next) => {
                self.nested(|reader| reader.sequence(next, true, want))
            }
            _ => Ok(Value::Null),
        }
    }

    /// Whether the content at `at` is a key (without building it twice: only the scan).
    fn starts_key(&self, at: usize, end: usize) -> Result<bool, Unusual> {
        Ok(self.scalar(at, end)?.key)
    }

    /// A scalar after `key: ` or `- ` on the line (already consumed) ending at `end`;
    /// `indent` is the column of its key or `-`, the parent of a block scalar.
    fn inline_value(
        &mut self,
        at: usize,
        end: usize,
        indent: usize,
        want: Want,
    ) -> Result<Value, Unusual> {
        match self.bytes[at] {
            b'|' => return self.literal_scalar(at, end, indent, want),
            b'[' | b'{' => return self.flow_collection(at, end, want),
            _ => {}
        }
        let scalar = match self.scalar(at, end) {
            Ok(scalar) => scalar,
            Err(Unusual) if matches!(self.bytes[at], b'"' | b'\'') => {
                return self.quoted_lines(at, end, indent, want);
            }
            Err(unusual) => return Err(unusual),
        };
        if scalar.key {
            return Err(Unusual);
        }
        if scalar.plain {
            let text = if scalar.commented {
                scalar.text
            } else {
                self.plain_continuation(scalar.text, indent, want)?
            };
            return plain_value(text, self.numbers, want);
        }
        Ok(if want == Want::Skip {
            Value::Null
        } else {
            Value::String(scalar.text.into_owned())
        })
    }

    /// The lines a one-line plain scalar `first` goes on with: more indented than `parent`
    /// (its key's or `-`'s column), each trimmed, one line break folded into a space, blank
    /// lines kept as line breaks; a comment ends it. A `: ` or ` #` in a line, or an indicator
    /// other than a quote starting one: the full loaders (go-yaml ends the scalar there, or
    /// fails).
    fn plain_continuation(
        &mut self,
        first: Cow<'a, str>,
        parent: usize,
        want: Want,
    ) -> Result<Cow<'a, str>, Unusual> {
        let bytes = self.bytes;
        let mut folded: Option<String> = None;
        let mut blank_lines = 0;
        let mut pos = self.pos;
        while pos < bytes.len() {
            let start = pos;
            let end = self.line_end(start);
            let content = self.skip_spaces(start, end);
            if content == end {
                blank_lines += 1;
                pos = end + 1;
                continue;
            }
            // A comment ends the scalar (whatever follows is the caller's).
            if content - start <= parent || bytes[content] == b'#' {
                break;
            }
            let flag_like = matches!(bytes[content], b'-' | b'?' | b':')
                && !self.blank_or_end(content + 1, end);
            if !flag_like
                && matches!(
                    bytes[content],
                    b'-' | b'?'
                        | b':'
                        | b','
                        | b'['
                        | b']'
                        | b'{'
                        | b'}'
                        | b'#'
                        | b'&'
                        | b'*'
                        | b'!'
                        | b'|'
                        | b'>'
                        | b'%'
                        | b'@'
                        | b'`'
                )
            {
                return Err(Unusual);
            }
            // The loaders' flow-indentation relaxer takes a quote starting a line for a quoted
            // scalar's start, and moves the lines after it if it does not close there.
            if matches!(bytes[content], b'\'' | b'"')
                && self
                    .quoted_segment(content + 1, end, bytes[content], &mut String::new())?
                    .is_none()
            {
                return Err(Unusual);
            }
            let scalar = self.plain(content, end)?;
            if scalar.key || scalar.commented {
                return Err(Unusual);
            }
            if want != Want::Skip {
                let out = folded.get_or_insert_with(|| first.to_string());
                if blank_lines == 0 {
                    out.push(' ');
                } else {
                    out.extend(std::iter::repeat_n('\n', blank_lines));
                }
                out.push_str(&scalar.text);
            } else if folded.is_none() {
                folded = Some(String::new());
            }
            blank_lines = 0;
            pos = end + 1;
            // Only now are the lines read part of the scalar: blank lines before a line that
            // ends it are left to the caller (they are skipped as blank anyway).
            self.pos = pos;
        }
        Ok(match folded {
            Some(out) => Cow::Owned(out),
            None => first,
        })
    }

    /// A quoted scalar going on below its first line (the line is consumed): each line
    /// break folds into a space, blank lines stay line breaks, blanks around line breaks go.
    /// Its lines must be more indented than `parent` (go-yaml takes any indentation; the
    /// loaders handle the rest), and a line ending in an escape goes to the loaders.
    fn quoted_lines(
        &mut self,
        at: usize,
        end: usize,
        parent: usize,
        want: Want,
    ) -> Result<Value, Unusual> {
        let bytes = self.bytes;
        let quote = bytes[at];
        let mut out = String::new();
        let mut from = at + 1;
        let mut line_end = end;
        let mut pos = self.pos;
        loop {
            let line_mark = out.len();
            if let Some(after) = self.quoted_segment(from, line_end, quote, &mut out)? {
                let rest = self.skip_spaces(after, line_end);
                if rest < line_end && (rest == after || bytes[rest] != b'#') {
                    return Err(Unusual);
                }
                self.pos = line_end + 1;
                return Ok(if want == Want::Skip {
                    Value::Null
                } else {
                    Value::String(out)
                });
            }
            while out.len() > line_mark && out.ends_with(' ') {
                out.pop();
            }
            let mut blank_lines = 0;
            loop {
                if pos >= bytes.len() {
                    return Err(Unusual);
                }
                let start = pos;
                let next_end = self.line_end(start);
                let content = self.skip_spaces(start, next_end);
                pos = next_end + 1;
                if content == next_end {
                    blank_lines += 1;
                    continue;
                }
                if content - start <= parent {
                    return Err(Unusual);
                }
                from = content;
                line_end = next_end;
                break;
            }
            if blank_lines == 0 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', blank_lines));
            }
        }
    }

    /// Appends a quoted scalar's text from `at` up to its closing quote (returning the
    /// offset after it) or the line's end `end` (`None`).
    fn quoted_segment(
        &self,
        at: usize,
        end: usize,
        quote: u8,
        out: &mut String,
    ) -> Result<Option<usize>, Unusual> {
        let bytes = self.bytes;
        let mut run = at;
        let mut i = at;
        while i < end {
            let b = bytes[i];
            if b == quote {
                if quote == b'\'' && i + 1 < end && bytes[i + 1] == b'\'' {
                    out.push_str(&self.text[run..=i]);
                    i += 2;
                    run = i;
                    continue;
                }
                out.push_str(&self.text[run..i]);
                return Ok(Some(i + 1));
            }
            if quote == b'"' && b == b'\\' {
                out.push_str(&self.text[run..i]);
                out.push(double_quoted_escape(bytes, i, end)?);
                i += 2;
                run = i;
                continue;
            }
            i += 1;
        }
        out.push_str(&self.text[run..end]);
        Ok(None)
    }

    /// `[]` or `{}` (blanks inside allowed), or a one-line flow sequence of scalars
    /// (`[sh, -c]`, `["IPv4"]`); other flow collections go to the full loaders.
    fn flow_collection(&mut self, at: usize, end: usize, want: Want) -> Result<Value, Unusual> {
        let bytes = self.bytes;
        let open = bytes[at];
        let close = if open == b'[' { b']' } else { b'}' };
        let mut i = self.skip_spaces(at + 1, end);
        let mut items = Vec::new();
        if i < end && bytes[i] == close {
            i += 1;
        } else if open == b'{' {
            return Err(Unusual);
        } else {
            loop {
                if i >= end {
                    return Err(Unusual);
                }
                let item = match bytes[i] {
                    b'"' => {
                        let (text, after) = self.double_quoted(i, end)?;
                        i = after;
                        Value::String(text.into_owned())
                    }
                    b'\'' => {
                        let (text, after) = self.single_quoted(i, end)?;
                        i = after;
                        Value::String(text.into_owned())
                    }
                    b'-' if !self.blank_or_end(i + 1, end) => self.flow_plain(&mut i, end)?,
                    b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*'
                    | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' => return Err(Unusual),
                    _ => self.flow_plain(&mut i, end)?,
                };
                items.push(item);
                i = self.skip_spaces(i, end);
                match bytes.get(i).filter(|_| i < end) {
                    Some(b',') => {
                        i = self.skip_spaces(i + 1, end);
                        // `[a, ]`: the full loaders.
                        if i < end && bytes[i] == b']' {
                            return Err(Unusual);
                        }
                    }
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(Unusual),
                }
            }
        }
        let rest = self.skip_spaces(i, end);
        if rest < end && (rest == i || bytes[rest] != b'#') {
            return Err(Unusual);
        }
        Ok(match (want, open) {
            (Want::Skip, _) => Value::Null,
            (_, b'[') => Value::Array(items),
            _ => Value::Object(Map::new()),
        })
    }

    /// A plain scalar inside a flow sequence: up to `,` or `]`; a `:`, `#`, or any other
    /// flow indicator in it goes to the full loaders.
    fn flow_plain(&self, at: &mut usize, end: usize) -> Result<Value, Unusual> {
        let bytes = self.bytes;
        let start = *at;
        let mut i = start;
        while i < end {
            match bytes[i] {
                b',' | b']' => break,
                b':' | b'#' | b'[' | b'{' | b'}' => return Err(Unusual),
                _ => i += 1,
            }
        }
        let mut stop = i;
        while bytes[stop - 1] == b' ' {
            stop -= 1;
        }
        *at = stop;
        plain_value(
            Cow::Borrowed(&self.text[start..stop]),
            self.numbers,
            Want::All,
        )
    }

    /// The first byte from `at` that is not a space (or `end`). Eight at a time: rendered
    /// CRDs are indented by dozens of spaces.
    fn skip_spaces(&self, mut at: usize, end: usize) -> usize {
        while at + 8 <= end && word(self.bytes, at) == repeat(b' ') {
            at += 8;
        }
        while at < end && self.bytes[at] == b' ' {
            at += 1;
        }
        at
    }

    /// A key's JSON object key, as the direct loader makes it; text that stays text is not
    /// copied (most keys of a manifest head are only compared, never kept).
    fn key_text(&self, scalar: Scalar<'a>) -> Result<Cow<'a, str>, Unusual> {
        if scalar.text.len() > MAX_KEY_BYTES {
            return Err(Unusual);
        }
        if !scalar.plain {
            return Ok(scalar.text);
        }
        if scalar.text == "<<" {
            return Err(Unusual);
        }
        let stays_text = plain_decimal(&scalar.text).is_none()
            && matches!(
                crate::yaml_emit::resolve_plain(&scalar.text),
                Resolved::Timestamp | Resolved::Merge | Resolved::Str
            );
        if stays_text {
            return Ok(scalar.text);
        }
        match plain_node(scalar.text) {
            Node::Str(s) => Ok(Cow::Owned(s)),
            other => key_string(&other).map(Cow::Owned).ok_or(Unusual),
        }
    }

    /// The one-line scalar starting at `at` (no later than `end`, the line's end).
    fn scalar(&self, at: usize, end: usize) -> Result<Scalar<'a>, Unusual> {
        let bytes = self.bytes;
        let (text, plain, after) = match bytes[at] {
            b'"' => {
                let (text, after) = self.double_quoted(at, end)?;
                (text, false, after)
            }
            b'\'' => {
                let (text, after) = self.single_quoted(at, end)?;
                (text, false, after)
            }
            b'-' | b':' | b'?' if !self.blank_or_end(at + 1, end) => return self.plain(at, end),
            b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'%' | b'@' | b'`' => return Err(Unusual),
            _ => return self.plain(at, end),
        };
        if after < end && bytes[after] == b':' && self.blank_or_end(after + 1, end) {
            return Ok(Scalar {
                text,
                plain,
                key: true,
                after: after + 1,
                commented: false,
            });
        }
        // Only blanks and a comment (after a blank) may follow a quoted scalar.
        let rest = self.skip_spaces(after, end);
        if rest < end && (rest == after || bytes[rest] != b'#') {
            return Err(Unusual);
        }
        Ok(Scalar {
            text,
            plain,
            key: false,
            after: end,
            commented: rest < end,
        })
    }

    /// A plain scalar: up to `: ` (a key), ` #` (a comment) or the line's end, trailing
    /// blanks dropped.
    fn plain(&self, at: usize, end: usize) -> Result<Scalar<'a>, Unusual> {
        let bytes = self.bytes;
        let mut i = at;
        while i < end {
            // Words holding neither `:` nor `#` (most of a description) are passed over whole.
            if i + 8 <= end {
                let w = word(bytes, i);
                if (zero_bytes(w ^ repeat(b':')) | zero_bytes(w ^ repeat(b'#'))) == 0 {
                    i += 8;
                    continue;
                }
            }
            match bytes[i] {
                b':' if self.blank_or_end(i + 1, end) => {
                    // `a : b` is a key too, but rare; the full loaders read it.
                    if bytes[i - 1] == b' ' {
                        return Err(Unusual);
                    }
                    return Ok(Scalar {
                        text: Cow::Borrowed(&self.text[at..i]),
                        plain: true,
                        key: true,
                        after: i + 1,
                        commented: false,
                    });
                }
                b'#' if bytes[i - 1] == b' ' => break,
                _ => {}
            }
            i += 1;
        }
        let mut stop = i;
        while bytes[stop - 1] == b' ' {
            stop -= 1;
        }
        Ok(Scalar {
            text: Cow::Borrowed(&self.text[at..stop]),
            plain: true,
            key: false,
            after: end,
            commented: i < end,
        })
    }

    /// A single-quoted scalar closed on its line; the offset after the closing quote.
    fn single_quoted(&self, at: usize, end: usize) -> Result<(Cow<'a, str>, usize), Unusual> {
        let bytes = self.bytes;
        let mut owned: Option<String> = None;
        let mut run = at + 1;
        let mut i = at + 1;
        loop {
            if i >= end {
                return Err(Unusual);
            }
            if bytes[i] == b'\'' {
                if i + 1 < end && bytes[i + 1] == b'\'' {
                    let out = owned.get_or_insert_with(String::new);
                    out.push_str(&self.text[run..=i]);
                    i += 2;
                    run = i;
                    continue;
                }
                let text = match owned {
                    Some(mut out) => {
                        out.push_str(&self.text[run..i]);
                        Cow::Owned(out)
                    }
                    None => Cow::Borrowed(&self.text[run..i]),
                };
                return Ok((text, i + 1));
            }
            i += 1;
        }
    }

    /// A double-quoted scalar closed on its line, with the escapes values and manifests use;
    /// any other escape goes to the full loaders.
    fn double_quoted(&self, at: usize, end: usize) -> Result<(Cow<'a, str>, usize), Unusual> {
        let bytes = self.bytes;
        let mut owned: Option<String> = None;
        let mut run = at + 1;
        let mut i = at + 1;
        loop {
            if i >= end {
                return Err(Unusual);
            }
            match bytes[i] {
                b'"' => {
                    let text = match owned {
                        Some(mut out) => {
                            out.push_str(&self.text[run..i]);
                            Cow::Owned(out)
                        }
                        None => Cow::Borrowed(&self.text[run..i]),
                    };
                    return Ok((text, i + 1));
                }
                b'\\' => {
                    let escaped = double_quoted_escape(bytes, i, end)?;
                    let out = owned.get_or_insert_with(String::new);
                    out.push_str(&self.text[run..i]);
                    out.push(escaped);
                    i += 2;
                    run = i;
                }
                _ => i += 1,
            }
        }
    }

    /// A literal block scalar (`|` or `|-`) whose header starts at `at`; its lines follow
    /// the (consumed) header line. `parent` is the column of its key or `-`.
    fn literal_scalar(
        &mut self,
        at: usize,
        end: usize,
        parent: usize,
        want: Want,
    ) -> Result<Value, Unusual> {
        let bytes = self.bytes;
        let mut i = at + 1;
        let strip = i < end && bytes[i] == b'-';
        if strip {
            i += 1;
        }
        let rest = self.skip_spaces(i, end);
        if rest < end && (rest == i || bytes[rest] != b'#') {
            return Err(Unusual);
        }
        let keep = want != Want::Skip;
        let mut out = String::new();
        // Line breaks not yet written: they become content only before more content.
        let mut breaks = 0usize;
        let mut indent: Option<usize> = None;
        let mut leading_spaces = 0;
        while self.pos < bytes.len() {
            let start = self.pos;
            let line_end = self.line_end(start);
            let spaces = self.skip_spaces(start, line_end) - start;
            let blank = start + spaces == line_end;
            let content_indent = match indent {
                None if blank => {
                    leading_spaces = leading_spaces.max(spaces);
                    breaks += 1;
                    self.pos = line_end + 1;
                    continue;
                }
                None => {
                    if spaces <= parent {
                        break;
                    }
                    // go-yaml takes the indentation from the deepest leading blank line.
                    if leading_spaces > spaces {
                        return Err(Unusual);
                    }
                    indent = Some(spaces);
                    spaces
                }
                Some(indent) if blank && spaces <= indent => {
                    breaks += 1;
                    self.pos = line_end + 1;
                    continue;
                }
                Some(indent) if spaces < indent => break,
                Some(indent) => indent,
            };
            if keep {
                out.extend(std::iter::repeat_n('\n', breaks));
                out.push_str(&self.text[start + content_indent..line_end]);
            }
            breaks = 1;
            self.pos = (line_end + 1).min(bytes.len());
        }
        self.pos = self.pos.min(bytes.len());
        if !keep {
            return Ok(Value::Null);
        }
        // Like the loaders (saphyr), a last content line at the end of the text counts as
        // ended by a line break.
        if indent.is_some() && !strip {
            out.push('\n');
        }
        Ok(Value::String(out))
    }
}

/// The character a double-quoted scalar's escape at `at` stands for, for the escapes values
/// and manifests use; the others (and a line ending in `\\`) go to the loaders.
fn double_quoted_escape(bytes: &[u8], at: usize, end: usize) -> Result<char, Unusual> {
    match bytes.get(at + 1).filter(|_| at + 1 < end) {
        Some(b'"') => Ok('"'),
        Some(b'\\') => Ok('\\'),
        Some(b'/') => Ok('/'),
        Some(b'n') => Ok('\n'),
        Some(b't') => Ok('\t'),
        Some(b'r') => Ok('\r'),
        _ => Err(Unusual),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FirstDocumentReading, fast_path_only, without_fast_path};

    const READINGS: [FirstDocumentReading; 3] = [
        FirstDocumentReading::Values,
        FirstDocumentReading::ManifestHead,
        FirstDocumentReading::Manifest,
    ];

    /// The fast path's verdict on `text` against the saphyr-based loaders': it either leaves
    /// the text to them or reads exactly what they read. Returns whether it read the text.
    fn check(text: &str) -> bool {
        let mut handled = false;
        for reading in READINGS {
            let Some(fast) = fast_path_only(text, reading) else {
                continue;
            };
            handled = true;
            match without_fast_path(text, "gen.yaml", reading) {
                Ok(slow) => assert_eq!(
                    fast, slow,
                    "{reading:?} of {text:?}: fast path read {fast}, loaders read {slow}"
                ),
                Err(err) => {
                    panic!("{reading:?} of {text:?}: fast path read {fast}, loaders refuse: {err}")
                }
            }
        }
        handled
    }

    /// xorshift64*: deterministic documents without a dependency.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
        /// From `usual` `percent`% of the time, else from `all`.
        fn mostly<'a>(&mut self, percent: usize, usual: &[&'a str], all: &[&'a str]) -> &'a str {
            if self.chance(percent) {
                self.pick(usual)
            } else {
                self.pick(all)
            }
        }
    }

    const KEYS: &[&str] = &[
        "a",
        "b",
        "name",
        "kind",
        "metadata",
        "annotations",
        "on",
        "yes",
        "No",
        "y",
        "1e3",
        "0x1F",
        "~",
        "null",
        "1",
        "1.5",
        "true",
        "'q k'",
        "\"d k\"",
        "\"\"",
        "''",
        "é",
        "a#b",
        "a b",
        "-x",
        "<<",
        "key:x",
        "k ",
        "k\t",
        "'it''s'",
        "\"e\\\"q\"",
        "&a k",
        "*a",
        "!t k",
        "? k",
        "[k]",
        "{k: 1}",
        "0o17",
        "-1",
        ".inf",
        "2001-12-14",
        "a #c",
        "\"x\" ",
        "%k",
        "@k",
    ];

    const SCALARS: &[&str] = &[
        "v",
        "1",
        "-1",
        "0755",
        "1e3",
        "1_000",
        ".5",
        ".inf",
        ".nan",
        "-.inf",
        "on",
        "off",
        "yes",
        "n",
        "Y",
        "~",
        "null",
        "Null",
        "NULL",
        "true",
        "False",
        "\"x\"",
        "'y'",
        "'it''s'",
        "\"a\\\"b\"",
        "\"t\\tq\"",
        "\"s\\/l\"",
        "\"bad\\x41\"",
        "\"u\\u00e9\"",
        "\"e\\\\\"",
        "a: b",
        "a:b",
        "a #c",
        "a#c",
        "http://x:80/p?q=1#f",
        "[1]",
        "{a: 1}",
        "&x v",
        "*x",
        "!!str 1",
        "- x",
        "-",
        "--",
        "-x",
        "2001-12-14",
        "2001-12-14T21:59:43.10-05:00",
        "é ü ☃",
        "\"open",
        "'x'y",
        "\"x\" y",
        "\"x\"#c",
        "\"x\" #c",
        "b ",
        "0o17",
        "0b101",
        "+1",
        "+.5",
        "0x_1F",
        "12345678901234567890",
        "123456789012345678901234567890",
        "1.0",
        "x: y: z",
        "a,b",
        "a]b",
        "}",
        "? q",
        ": q",
        "%q",
        "@q",
        "`q",
        "'",
        "\"",
        "''",
        "\"\"",
        "a  b",
        "1e400",
        "0.1e-3",
        "<<",
        "=",
        "x\ty",
        "x\r",
        "\u{85}",
        "\u{2028}x",
        "\u{feff}x",
        "0:30",
        "1:2:3",
        "-0",
        "+0",
        "0",
        "00",
        "0.",
        "._",
        "1__0",
        "[]",
        "{}",
        "[ ]",
        "{ }",
        "[a, b]",
        "[\"x\", 'y']",
        "[a,]",
        "[a: b]",
        "[a #c]",
        "[1, -1, ~, on, 0x1F]",
        "[a,b]",
        "[ a ]",
        "[a]b",
        "[a] #c",
        ":8080",
        "?x",
        ":x:",
        "::",
        "'open  ",
        "\"open \\t ",
        "'a''",
        "\"a\\",
        "[é, \"\\t\"]",
        "[-a, --]",
        "[- a]",
        "[a, [b]]",
        "[http://x]",
        "[a b]",
    ];

    /// Lines that may go on with a plain scalar.
    const CONTINUATIONS: &[&str] = &[
        "more",
        "more words",
        "x: y",
        "- x",
        "# c",
        "w # c",
        "'q'",
        "1",
        "é",
        "[a]",
        "",
        "a#b",
        "tail:",
        "%x",
        "end'",
        "end\"",
        "x' y",
        "x\" #c",
        "'' z'",
        "q\\\" r\"",
        "e': 1",
        "'open",
        "\"open",
        "\"a\", \"b\")",
        "--flag x",
        "-x",
        "?q",
        ":q",
        "- x",
        "? x",
        ": x",
        "# more",
        "#",
        "[]",
        "{}",
        "[a, 'b']",
    ];

    /// Mostly in the subset, so most documents are read and compared.
    const SAFE_KEYS: &[&str] = &[
        "a",
        "b",
        "name",
        "kind",
        "metadata",
        "annotations",
        "on",
        "1",
    ];
    const SAFE_SCALARS: &[&str] = &["v", "1", "x y", "\"q\"", "'s'", "true", "~", "1.5", "0755"];

    const HEADERS: &[&str] = &[
        "|", "|-", "|+", ">", ">-", "|2", "|1-", "| # c", "|#c", "|x",
    ];

    fn spaces(random: &mut Random, base: usize) -> String {
        let mut indent = base;
        if random.chance(2) {
            indent = indent.saturating_sub(1);
        } else if random.chance(2) {
            indent += 1;
        }
        " ".repeat(indent)
    }

    fn trailing(random: &mut Random) -> &'static str {
        match random.below(12) {
            0 => " ",
            1 => "   ",
            2 => " # comment",
            3 => "  #: [x] {",
            4 => "#x",
            _ => "",
        }
    }

    /// Lines of a block node at `indent`.
    fn node(random: &mut Random, out: &mut String, indent: usize, depth: usize) {
        let sequence = random.chance(30);
        let entries = 1 + random.below(4);
        for _ in 0..entries {
            if random.chance(8) {
                let column = random.below(indent + 3);
                out.push_str(&spaces(random, column));
                out.push_str(random.pick(&["# c", "#", "", "  "]));
                out.push('\n');
            }
            out.push_str(&spaces(random, indent));
            let inner = if sequence {
                out.push('-');
                if random.chance(70) {
                    out.push_str(&" ".repeat(1 + random.below(3)));
                }
                let column = out.len() - out.rfind('\n').map_or(0, |at| at + 1);
                if random.chance(35) {
                    // A compact mapping: its later keys line up with the first.
                    let key = random.mostly(70, SAFE_KEYS, KEYS);
                    out.push_str(key);
                    out.push(':');
                    column
                } else {
                    indent
                }
            } else {
                let key = random.mostly(70, SAFE_KEYS, KEYS);
                out.push_str(key);
                out.push(':');
                indent
            };
            value(random, out, inner, depth);
            if sequence && inner != indent && random.chance(50) {
                out.push_str(&spaces(random, inner));
                let key = random.mostly(70, SAFE_KEYS, KEYS);
                out.push_str(key);
                out.push(':');
                value(random, out, inner, depth);
            }
        }
    }

    fn value(random: &mut Random, out: &mut String, indent: usize, depth: usize) {
        let choice = random.below(10);
        if choice < 5 || depth > 4 {
            out.push(' ');
            let scalar = random.mostly(70, SAFE_SCALARS, SCALARS);
            out.push_str(scalar);
            out.push_str(trailing(random));
            out.push('\n');
            if random.chance(25) {
                for _ in 0..1 + random.below(3) {
                    let column = indent + random.below(4);
                    out.push_str(&spaces(random, column));
                    out.push_str(random.pick(CONTINUATIONS));
                    out.push('\n');
                }
            }
        } else if choice < 7 {
            out.push(' ');
            let header = random.mostly(60, &["|", "|-"], HEADERS);
            out.push_str(header);
            out.push_str(trailing(random));
            out.push('\n');
            let body = indent + random.below(4);
            for _ in 0..random.below(5) {
                match random.below(6) {
                    0 => out.push('\n'),
                    1 => out.push_str(&" ".repeat(random.below(body + 3))),
                    _ => {
                        let column = body + random.below(2);
                        out.push_str(&spaces(random, column));
                        out.push_str(random.pick(SCALARS));
                    }
                }
                out.push('\n');
            }
        } else if choice < 8 {
            out.push_str(trailing(random));
            out.push('\n');
        } else {
            out.push_str(trailing(random));
            out.push('\n');
            // Deeper, or an indentless sequence at the key's column.
            let next = if random.chance(25) {
                indent
            } else {
                indent + 1 + random.below(4)
            };
            node(random, out, next, depth + 1);
        }
    }

    /// Thousands of generated documents in and around the subset: odd indentation, quotes,
    /// colons and `#` in values, trailing blanks, nested `- `, YAML 1.1 words and numbers as
    /// keys and values, empty values, block scalars, unicode; the fast path reads each as the
    /// saphyr-based loaders do, or leaves it to them.
    #[test]
    fn generated_documents_read_as_the_loaders_read_them() {
        let mut handled = 0;
        let total = 20000;
        for seed in 0..total {
            let mut random = Random(0x9E37_79B9_7F4A_7C15 ^ (seed as u64 + 1));
            let mut text = String::new();
            if random.chance(10) {
                text.push_str(random.pick(&["---\n", "--- \n", "# top\n", "\n", "--- # c\n"]));
            }
            let indent = if random.chance(10) { 2 } else { 0 };
            node(&mut random, &mut text, indent, 0);
            if random.chance(10) {
                text.push_str(random.pick(&["---\nx: 1\n", "...\n", "# end", "\n\n"]));
            }
            if random.chance(15) {
                // A manifest as split: trimmed, no final line break.
                text = text.trim().to_string();
            }
            if check(&text) {
                handled += 1;
            }
        }
        eprintln!("fast path read {handled} of {total} generated documents");
        assert!(handled > total / 8, "only {handled} of {total} were read");
        assert!(handled < total, "every generated document was read");
    }

    /// The word-at-a-time character check against a byte-by-byte one, every byte value at
    /// every position of a word.
    #[test]
    fn character_check_matches_bytewise() {
        let bytewise = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            !bytes.iter().any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
                && !text.contains([
                    '\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{fffe}', '\u{ffff}',
                ])
                && !text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c))
        };
        for byte in 0..=0x7fu8 {
            for at in 0..19 {
                let mut bytes = b"abcdefgh\nijklmnop qr".to_vec();
                bytes[at] = byte;
                assert_eq!(
                    super::plain_characters(&bytes),
                    bytewise(&bytes),
                    "byte {byte:#x} at {at}"
                );
            }
        }
        for text in [
            "é\u{85}",
            "x\u{2028}",
            "\u{feff}a",
            "ok é ☃",
            "\u{9f}",
            "\u{a0}",
            "\u{fffe}",
        ] {
            assert_eq!(
                super::plain_characters(text.as_bytes()),
                bytewise(text.as_bytes()),
                "{text:?}"
            );
        }
    }

    /// Cases written out: what the fast path reads and what it leaves alone.
    #[test]
    fn written_cases() {
        let read = [
            "a: 1\nb:\n  c: [x]\n",
            "a: 1\nb:\n  c: x\n  d:\n  - 1\n  - two\ne: |\n  l1\n\n  l2\n    l3\nf: |-\n  s\n",
            "- a: 1\n  b: 2\n- c\n-\n- - x\n",
            "k: v # c\n'q': \"x\\ty\" # c\n",
            "e: |\n  end",
            "e: |\n  x\n\n",
            "e: |\n\n  x\n",
            "e: |\n   \n  x\n",
            "e: |\nf: 1\n",
            "on: 1\n1e3: 2\n0x1F: 3\n",
            "a: 'x  \n  y'\nb: \"p \n\n   q\\tr\"\n- c\n",
            "a: 'x  \n  y'\nb: \"p \n\n   q\\tr\"\n",
            "- 'a\n  b''c' # c\n- \"d\n  \"\n",
            "a: :8080\nb: ?x\n",
            "a: b\n  c\n\n  d\n  # e\nf: []\ng:\n  {}\nh: [a, 'b', \"c\", -1]\n",
            "",
            "# only\n",
            "---\n",
            "---\na: 1\n",
        ];
        let mut handled = 0;
        for text in read {
            if check(text) {
                handled += 1;
            }
        }
        assert!(handled >= 10, "{handled}");
        for text in [
            "a: 1\nb:\n  c: x\n  d:\n  - 1\n  - two\n",
            "- a: 1\n  b: 2\n- c\n-\n",
        ] {
            assert!(check(text), "{text:?} not read by the fast path");
        }
        for text in [
            "a: {b: 1}\n",
            "a: &x 1\nb: *x\n",
            "a: b # c\n  d\n",
            "a: b\n  - c\n",
            "~: 1\n",
            "a: 1\n---\nb: 2\n",
            "a:\n\tb: 1\n",
            "a: >\n  x\n",
            "<<: {a: 1}\n",
            "a: 'x\ny'\n",
            "a: \"x\\\n  y\"\n",
            "a: .nan\n",
            "plain\n",
        ] {
            assert!(
                fast_path_only(text, FirstDocumentReading::Values).is_none(),
                "{text:?} read by the fast path"
            );
        }
    }
}
