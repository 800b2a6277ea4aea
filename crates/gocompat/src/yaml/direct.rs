//! The common case of reading YAML: JSON values built straight from the parser's events.
//!
//! The full loader in the parent module first builds a [`Node`] tree (keys may be any node,
//! duplicates replace in place, errors are worded after the whole document is read) and then
//! converts it to JSON; for values.yaml files and rendered manifests that cost more than the
//! parsing itself. This loader handles only documents that convert without any problem: on
//! anything unusual (a syntax error, a null or collection key, an alias it cannot resolve, a
//! merge of something not a map, a NaN or infinity, hostile nesting or aliasing) it gives up
//! with [`Unusual`] and the caller runs the full loader over the same text, which then words
//! the error exactly as before. So the two agree on every document this one accepts, and the
//! full loader alone decides every error.
//!
//! It can also leave out what a caller never reads ([`Want`]), while still checking it, so
//! reading the head of a rendered manifest (`kind`, `metadata.name`, `metadata.annotations`)
//! does not build the rest of the document.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, StrInput};
use serde_json::{Map, Number, Value};

use super::{AliasGuard, MAX_DEPTH, Node, NumberMode, key_string, plain_decimal, resolve_scalar};
use crate::yaml_emit::Resolved;

/// The document needs the full loader (which also words its error, if it has one).
pub(super) struct Unusual;

/// Which part of a node the caller reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Everything.
    All,
    /// Nothing: the node is only checked.
    Skip,
    /// A manifest's root: `kind` and `metadata` (which is [`Want::ManifestMetadata`]).
    ManifestRoot,
    /// A manifest's `metadata`: `name` and `annotations`.
    ManifestMetadata,
}

impl Want {
    /// What is read of the value under `key` of a map read as `self`.
    pub(super) fn entry(self, key: &str) -> Want {
        match (self, key) {
            (Want::All, _) => Want::All,
            (Want::ManifestRoot, "kind") => Want::All,
            (Want::ManifestRoot, "metadata") => Want::ManifestMetadata,
            (Want::ManifestMetadata, "name" | "annotations") => Want::All,
            _ => Want::Skip,
        }
    }

    /// What is read of the items of a sequence read as `self`: the manifest heads only look
    /// into maps, and a sequence in their place is read whole (its type is what they report).
    pub(super) fn item(self) -> Want {
        if self == Want::Skip {
            Want::Skip
        } else {
            Want::All
        }
    }
}

/// Up to `limit` documents of `text` (already relaxed for saphyr), each read as `want`.
pub(super) fn parse_documents(
    text: &str,
    limit: usize,
    numbers: NumberMode,
    want: Want,
) -> Result<Vec<Value>, Unusual> {
    let mut loader = DirectLoader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        depth: 0,
        aliases: AliasGuard::for_document(),
        numbers,
    };
    let mut docs = Vec::new();
    loop {
        match loader.next()? {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                let first = loader.next()?;
                if matches!(first, Event::DocumentEnd) {
                    docs.push(Value::Null);
                } else {
                    let value = loader.node(first, want)?;
                    // go-yaml's `Unmarshal` stops at the first document's root node.
                    if docs.len() + 1 >= limit {
                        docs.push(value);
                        break;
                    }
                    loader.next()?;
                    docs.push(value);
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

struct DirectLoader<'a> {
    parser: Parser<'a, StrInput<'a>>,
    /// Nodes read whole under an anchor (a skipped or partly read one is absent, so an alias
    /// to it goes to the full loader).
    anchors: HashMap<usize, Value>,
    depth: usize,
    aliases: AliasGuard,
    numbers: NumberMode,
}

impl<'a> DirectLoader<'a> {
    fn next(&mut self) -> Result<Event<'a>, Unusual> {
        match self.parser.next_event() {
            Some(Ok((event, _))) => Ok(event),
            Some(Err(_)) => Err(Unusual),
            None => Ok(Event::StreamEnd),
        }
    }

    fn node(&mut self, event: Event<'a>, want: Want) -> Result<Value, Unusual> {
        if let Event::Alias(id) = event {
            self.aliases.alias(id).map_err(|_| Unusual)?;
            let value = self.anchors.get(&id).ok_or(Unusual)?;
            return Ok(if want == Want::Skip {
                Value::Null
            } else {
                value.clone()
            });
        }
        let start = self.aliases.enter().map_err(|_| Unusual)?;
        let (anchor, value) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = match tag {
                    Some(tag) => {
                        let tag_name = format!("{}{}", tag.handle, tag.suffix);
                        self.node_value(resolve_scalar(&text, style, Some(&tag_name)), want)?
                    }
                    None => self.untagged_scalar(text, style, want)?,
                };
                (anchor, value)
            }
            Event::SequenceStart(anchor, _) => (anchor, self.sequence(want)?),
            Event::MappingStart(anchor, _) => (anchor, self.mapping(want)?),
            _ => return Err(Unusual),
        };
        self.aliases.anchored(anchor, start);
        if anchor > 0 && want == Want::All {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn sequence(&mut self, want: Want) -> Result<Value, Unusual> {
        if self.depth >= MAX_DEPTH {
            return Err(Unusual);
        }
        self.depth += 1;
        let item_want = want.item();
        let mut items = Vec::new();
        loop {
            let event = self.next()?;
            match event {
                Event::SequenceEnd => break,
                Event::StreamEnd => return Err(Unusual),
                _ => {
                    let item = self.node(event, item_want)?;
                    if item_want != Want::Skip {
                        items.push(item);
                    }
                }
            }
        }
        self.depth -= 1;
        Ok(if want == Want::Skip {
            Value::Null
        } else {
            Value::Array(items)
        })
    }

    fn mapping(&mut self, want: Want) -> Result<Value, Unusual> {
        if self.depth >= MAX_DEPTH {
            return Err(Unusual);
        }
        self.depth += 1;
        let mut map = Map::new();
        loop {
            let key = match self.next()? {
                Event::MappingEnd => break,
                Event::Scalar(text, style, 0, tag) => {
                    // A key counts as a decoded node, except go-yaml never decodes `<<`.
                    self.aliases.enter().map_err(|_| Unusual)?;
                    if tag.is_none() && style == ScalarStyle::Plain && text == "<<" {
                        self.aliases.merge_key();
                        let merged = self.next().and_then(|e| self.node(e, Want::All))?;
                        merge_into(&mut map, merged)?;
                        continue;
                    }
                    let tag_name = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                    let node = match (tag_name, style) {
                        (None, ScalarStyle::Plain) => plain_node(text),
                        (None, _) => Node::Str(text.into_owned()),
                        (Some(tag_name), _) => resolve_scalar(&text, style, Some(&tag_name)),
                    };
                    match node {
                        Node::Str(s) => s,
                        other => key_string(&other).ok_or(Unusual)?,
                    }
                }
                // Anchored keys, aliases as keys and collection keys: the full loader.
                _ => return Err(Unusual),
            };
            let value_want = want.entry(&key);
            let event = self.next()?;
            let value = self.node(event, value_want)?;
            if want != Want::Skip && value_want != Want::Skip {
                map.insert(key, value);
            }
        }
        self.depth -= 1;
        Ok(if want == Want::Skip {
            Value::Null
        } else {
            Value::Object(map)
        })
    }

    fn untagged_scalar(
        &self,
        text: Cow<'a, str>,
        style: ScalarStyle,
        want: Want,
    ) -> Result<Value, Unusual> {
        if style != ScalarStyle::Plain {
            return Ok(if want == Want::Skip {
                Value::Null
            } else {
                Value::String(text.into_owned())
            });
        }
        plain_value(text, self.numbers, want)
    }

    /// The parent module's `to_json` of a scalar node.
    fn node_value(&self, node: Node, want: Want) -> Result<Value, Unusual> {
        match node {
            Node::Null => Ok(Value::Null),
            Node::Bool(b) => Ok(Value::Bool(b)),
            Node::Int(i) => self.int_value(i),
            Node::Float(f) => self.float_value(f),
            Node::Str(s) => Ok(if want == Want::Skip {
                Value::Null
            } else {
                Value::String(s)
            }),
            Node::Seq(_) | Node::Map(_) => Err(Unusual),
        }
    }

    fn int_value(&self, i: i128) -> Result<Value, Unusual> {
        int_value(i, self.numbers)
    }

    fn float_value(&self, f: f64) -> Result<Value, Unusual> {
        float_value(f, self.numbers)
    }
}

/// An untagged plain scalar's JSON value (go-yaml v2's resolver, then the number mode); text
/// that stays text is copied only if `want` keeps it.
pub(super) fn plain_value(
    text: Cow<'_, str>,
    numbers: NumberMode,
    want: Want,
) -> Result<Value, Unusual> {
    if let Some(i) = plain_decimal(&text) {
        return int_value(i.into(), numbers);
    }
    match crate::yaml_emit::resolve_plain(&text) {
        Resolved::Null => Ok(Value::Null),
        Resolved::Bool(b) => Ok(Value::Bool(b)),
        Resolved::Int(i) => int_value(i.into(), numbers),
        Resolved::Uint(u) => int_value(u.into(), numbers),
        Resolved::Float(f) => float_value(f, numbers),
        Resolved::Timestamp | Resolved::Merge | Resolved::Str => Ok(if want == Want::Skip {
            Value::Null
        } else {
            Value::String(text.into_owned())
        }),
    }
}

fn int_value(i: i128, numbers: NumberMode) -> Result<Value, Unusual> {
    if numbers == NumberMode::AsWritten {
        if let Ok(n) = i64::try_from(i) {
            return Ok(Value::Number(n.into()));
        }
        if let Ok(n) = u64::try_from(i) {
            return Ok(Value::Number(n.into()));
        }
    }
    finite(i as f64)
}

fn float_value(f: f64, numbers: NumberMode) -> Result<Value, Unusual> {
    // Go's json.Marshal prints an integral float64 below 1e21 without a fraction.
    if numbers == NumberMode::AsWritten
        && f.fract() == 0.0
        && f.abs() < 1e21
        && (i64::MIN as f64..=i64::MAX as f64).contains(&f)
    {
        return Ok(Value::Number((f as i64).into()));
    }
    finite(f)
}

fn finite(f: f64) -> Result<Value, Unusual> {
    Number::from_f64(f).map(Value::Number).ok_or(Unusual)
}

/// An untagged plain scalar as the parent module's resolver reads it, without copying text
/// that stays text.
pub(super) fn plain_node(text: Cow<'_, str>) -> Node {
    if let Some(i) = plain_decimal(&text) {
        return Node::Int(i.into());
    }
    match crate::yaml_emit::resolve_plain(&text) {
        Resolved::Null => Node::Null,
        Resolved::Bool(b) => Node::Bool(b),
        Resolved::Int(i) => Node::Int(i.into()),
        Resolved::Uint(u) => Node::Int(u.into()),
        Resolved::Float(f) => Node::Float(f),
        Resolved::Timestamp | Resolved::Merge | Resolved::Str => Node::Str(text.into_owned()),
    }
}

/// go-yaml v2's `<<`: a map's keys overwrite earlier ones; of a sequence of maps, the earlier
/// maps take precedence.
fn merge_into(map: &mut Map<String, Value>, merged: Value) -> Result<(), Unusual> {
    match merged {
        Value::Object(source) => {
            map.extend(source);
            Ok(())
        }
        Value::Array(items) if items.iter().all(Value::is_object) => {
            for item in items.into_iter().rev() {
                if let Value::Object(source) = item {
                    map.extend(source);
                }
            }
            Ok(())
        }
        _ => Err(Unusual),
    }
}
