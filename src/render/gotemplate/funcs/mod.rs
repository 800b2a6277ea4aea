//! Sprig's text function map (less env/expandenv) and Helm's own pure functions, with Go's semantics.
//!
//! Every function takes the evaluated arguments and returns a value or Go's error text, exactly
//! as the Go function would (the executor adds `error calling NAME: ` and the location). Argument
//! conversion follows Go's reflect rules for the Go parameter type: a `string` parameter takes
//! only strings, an `int` only ints, an `interface{}` anything.
//!
//! Note for the executor: Sprig's `slice` replaces text/template's builtin `slice` (Go looks up a
//! template's FuncMap before its builtins), so `slice "abc" 1` fails in Helm.

mod args;
mod conv;
mod crypto;
mod dates;
mod dicts;
mod encoding;
mod gofmt;
#[cfg(test)]
mod golden;
mod json;
mod lists;
mod math;
mod reflection;
mod regexes;
mod semver;
mod strings;
mod toml;
mod yaml;

pub use conv::{is_empty, strval, to_float64, to_int64};
pub use gofmt::{format_float, format_value};
pub use json::{JsonStyle, json_marshal};
pub use yaml::{to_yaml, yaml_to_value};

use super::value::Value;

/// Go's error text of a failing function.
pub type FuncError = String;

/// A template function: evaluated arguments in, a value or Go's error text out.
pub type Func = fn(&[Value]) -> Result<Value, FuncError>;

/// Every function of `sprig.TxtFuncMap()` that Helm keeps (all but `env` and `expandenv`).
pub fn sprig_functions() -> Vec<(&'static str, Func)> {
    let mut funcs: Vec<(&'static str, Func)> = Vec::new();
    funcs.extend(strings::functions());
    funcs.extend(conv::functions());
    funcs.extend(math::functions());
    funcs.extend(lists::functions());
    funcs.extend(dicts::functions());
    funcs.extend(json::sprig_functions());
    funcs.extend(reflection::functions());
    funcs.extend(encoding::functions());
    funcs.extend(regexes::functions());
    funcs.extend(semver::functions());
    funcs.extend(dates::functions());
    funcs.extend(crypto::functions());
    funcs
}

/// Helm's own pure functions (pkg/engine/funcs.go), which replace Sprig's of the same name
/// (`toJson`, `fromJson`): register them after [`sprig_functions`]. `include`, `tpl`,
/// `required`, `fail` and `lookup` need the engine and are not here. `mustToYaml` and
/// `mustToJson` exist in Helm 4 only; Helm 3 has Sprig's `mustToJson` and no `mustToYaml`.
pub fn helm_functions() -> Vec<(&'static str, Func)> {
    let mut funcs: Vec<(&'static str, Func)> = Vec::new();
    funcs.extend(yaml::functions());
    funcs.extend(json::helm_functions());
    funcs.extend(toml::functions());
    funcs.push(("getHostByName", get_host_by_name_disabled));
    funcs
}

/// Helm replaces Sprig's `getHostByName` with one returning "" unless DNS lookups are enabled
/// (`helm template --enable-dns`), which keelson does not offer.
fn get_host_by_name_disabled(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 1 {
        return Err(format!(
            "wrong number of args for getHostByName: want 1 got {}",
            args.len()
        ));
    }
    Ok(Value::from(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sprig_function_but_env_is_registered() {
        let names: std::collections::BTreeSet<&str> =
            sprig_functions().iter().map(|(name, _)| *name).collect();
        for expected in ["dict", "toYaml", "nindent", "semverCompare", "uuidv4"] {
            if expected == "toYaml" {
                assert!(!names.contains(expected));
            } else {
                assert!(names.contains(expected), "{expected} missing");
            }
        }
        assert!(!names.contains("env"));
        assert!(!names.contains("expandenv"));
        let helm: Vec<&str> = helm_functions().iter().map(|(name, _)| *name).collect();
        assert!(helm.contains(&"toYaml"));
        assert!(helm.contains(&"fromJsonArray"));
    }
}
