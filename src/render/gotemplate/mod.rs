//! Go's text/template language as Helm uses it: parsing, execution, Go's value printing, the
//! built-in functions, Sprig and Helm's own functions.

pub mod functions;
pub mod value;

pub use value::{Object, Value};
