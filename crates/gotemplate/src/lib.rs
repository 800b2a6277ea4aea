//! Go's text/template language as Helm uses it: parsing, execution, Go's value printing, the
//! built-in functions, Sprig and Helm's own functions.
//!
//! The public API is what a Helm renderer needs: a [`TemplateSet`] to parse a chart's templates
//! into and execute with a [`Session`], the [`Value`]s and [`Object`]s templates see, and the
//! function maps ([`sprig_functions`], [`helm_functions`], [`helm4_overrides`]) to register in a
//! [`FuncRegistry`]. Everything else stays private so the compiler reports what nothing uses.

mod exec;
mod funcs;
mod functions;
mod lex;
mod number;
mod parse;
mod print;
mod value;

pub use exec::{
    ExecOptions, FileParser, LookupFn, ParsedFile, RenderBudget, Session, SharedValues,
    TemplateSet, WARN_END, WARN_START,
};
pub use funcs::{
    helm_functions, helm4_overrides, set_speculative, sprig_functions, yaml_marshal, yaml_to_value,
};
pub use functions::{Func, FuncRegistry};
pub use lex::{Lexed, Token, TokenKind, lex};
pub use parse::ParseError;
pub use value::{Object, Value, forget_map_types, name_map_type};
