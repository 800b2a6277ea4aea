//! Go's text/template language as Helm uses it: parsing, execution, Go's value printing, the
//! built-in functions, Sprig and Helm's own functions.

pub mod exec;
pub mod funcs;
pub mod functions;
pub mod lex;
pub mod number;
pub mod parse;
pub mod print;
pub mod value;

pub use value::{Object, Value};
