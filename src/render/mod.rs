//! Renders Helm charts exactly as Helm does: Go templates with Sprig and Helm's functions,
//! chart loading, values coalescing and manifest sorting.

pub mod engine;
pub mod gotemplate;
