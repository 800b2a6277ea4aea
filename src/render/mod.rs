//! Renders Helm charts exactly as Helm does: Go templates with Sprig and Helm's functions,
//! chart loading, values coalescing and manifest sorting.

pub mod chart;
pub mod dependencies;
pub mod engine;
pub mod helmignore;
mod helper;
pub mod manifest;
pub mod objects;
pub mod release;
pub mod schema;

#[cfg(test)]
mod golden_chart_tests;
