//! Go behaviour that Helm's output depends on, written once for the template engine and keelson:
//! `strconv` float formatting, go-yaml v2 reading (as sigs.k8s.io/yaml converts it to JSON) and
//! Masterminds semver versions and ranges.

pub mod json;
pub mod semver;
pub mod strconv;
pub mod time;
pub mod yaml;
pub mod yaml_emit;
