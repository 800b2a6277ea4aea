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
mod rsa_keys;
mod semver;
mod strings;
mod toml;
mod x509;
mod yaml;

pub use crypto::set_speculative;
pub use yaml::{yaml_marshal, yaml_to_value};

use super::value::Value;

pub use crate::functions::{Func, FuncError};

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

/// Functions whose helm 4.1.4 behaviour differs from helm 3.17.3's, to register after
/// [`helm_functions`] for Helm 4 releases: `toToml`/`fromToml` (helm 4 links BurntSushi/toml
/// v1.6.0, helm 3 v1.4.0).
pub fn helm4_overrides() -> Vec<(&'static str, Func)> {
    toml::helm4_functions()
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

    /// Every key of Sprig v3.3.0's `genericMap` but `env` and `expandenv` (and `fail`,
    /// which the engine provides with Helm's wording).
    const SPRIG_NAMES: &[&str] = &[
        "abbrev",
        "abbrevboth",
        "add",
        "add1",
        "add1f",
        "addf",
        "adler32sum",
        "ago",
        "all",
        "any",
        "append",
        "atoi",
        "b32dec",
        "b32enc",
        "b64dec",
        "b64enc",
        "base",
        "bcrypt",
        "biggest",
        "buildCustomCert",
        "camelcase",
        "cat",
        "ceil",
        "chunk",
        "clean",
        "coalesce",
        "compact",
        "concat",
        "contains",
        "date",
        "dateInZone",
        "dateModify",
        "date_in_zone",
        "date_modify",
        "decryptAES",
        "deepCopy",
        "deepEqual",
        "default",
        "derivePassword",
        "dict",
        "dig",
        "dir",
        "div",
        "divf",
        "duration",
        "durationRound",
        "empty",
        "encryptAES",
        "ext",
        "fail",
        "first",
        "float64",
        "floor",
        "fromJson",
        "genCA",
        "genCAWithKey",
        "genPrivateKey",
        "genSelfSignedCert",
        "genSelfSignedCertWithKey",
        "genSignedCert",
        "genSignedCertWithKey",
        "get",
        "getHostByName",
        "has",
        "hasKey",
        "hasPrefix",
        "hasSuffix",
        "hello",
        "htmlDate",
        "htmlDateInZone",
        "htpasswd",
        "indent",
        "initial",
        "initials",
        "int",
        "int64",
        "isAbs",
        "join",
        "kebabcase",
        "keys",
        "kindIs",
        "kindOf",
        "last",
        "list",
        "lower",
        "max",
        "maxf",
        "merge",
        "mergeOverwrite",
        "min",
        "minf",
        "mod",
        "mul",
        "mulf",
        "mustAppend",
        "mustChunk",
        "mustCompact",
        "mustDateModify",
        "mustDeepCopy",
        "mustFirst",
        "mustFromJson",
        "mustHas",
        "mustInitial",
        "mustLast",
        "mustMerge",
        "mustMergeOverwrite",
        "mustPrepend",
        "mustPush",
        "mustRegexFind",
        "mustRegexFindAll",
        "mustRegexMatch",
        "mustRegexReplaceAll",
        "mustRegexReplaceAllLiteral",
        "mustRegexSplit",
        "mustRest",
        "mustReverse",
        "mustSlice",
        "mustToDate",
        "mustToJson",
        "mustToPrettyJson",
        "mustToRawJson",
        "mustUniq",
        "mustWithout",
        "must_date_modify",
        "nindent",
        "nospace",
        "now",
        "omit",
        "osBase",
        "osClean",
        "osDir",
        "osExt",
        "osIsAbs",
        "pick",
        "pluck",
        "plural",
        "prepend",
        "push",
        "quote",
        "randAlpha",
        "randAlphaNum",
        "randAscii",
        "randBytes",
        "randInt",
        "randNumeric",
        "regexFind",
        "regexFindAll",
        "regexMatch",
        "regexQuoteMeta",
        "regexReplaceAll",
        "regexReplaceAllLiteral",
        "regexSplit",
        "repeat",
        "replace",
        "rest",
        "reverse",
        "round",
        "semver",
        "semverCompare",
        "seq",
        "set",
        "sha1sum",
        "sha256sum",
        "sha512sum",
        "shuffle",
        "slice",
        "snakecase",
        "sortAlpha",
        "split",
        "splitList",
        "splitn",
        "squote",
        "sub",
        "subf",
        "substr",
        "swapcase",
        "ternary",
        "title",
        "toDate",
        "toDecimal",
        "toJson",
        "toPrettyJson",
        "toRawJson",
        "toString",
        "toStrings",
        "trim",
        "trimAll",
        "trimPrefix",
        "trimSuffix",
        "trimall",
        "trunc",
        "tuple",
        "typeIs",
        "typeIsLike",
        "typeOf",
        "uniq",
        "unixEpoch",
        "unset",
        "until",
        "untilStep",
        "untitle",
        "upper",
        "urlJoin",
        "urlParse",
        "uuidv4",
        "values",
        "without",
        "wrap",
        "wrapWith",
    ];

    #[test]
    fn every_sprig_function_but_env_is_registered() {
        let names: std::collections::BTreeSet<&str> = sprig_functions()
            .iter()
            .chain(helm_functions().iter())
            .map(|(name, _)| *name)
            .collect();
        let missing: Vec<&&str> = SPRIG_NAMES
            .iter()
            .filter(|name| **name != "fail" && !names.contains(**name))
            .collect();
        assert!(missing.is_empty(), "not registered: {missing:?}");
        assert!(!names.contains("env"));
        assert!(!names.contains("expandenv"));
        let helm: Vec<&str> = helm_functions().iter().map(|(name, _)| *name).collect();
        for name in [
            "toYaml",
            "toYamlPretty",
            "fromYaml",
            "fromYamlArray",
            "toJson",
            "fromJson",
            "fromJsonArray",
            "toToml",
            "fromToml",
            "mustToYaml",
            "mustToJson",
        ] {
            assert!(helm.contains(&name), "{name} missing from helm_functions");
        }
    }

    /// Template authors pass anything: no function may panic, whatever the arguments.
    #[test]
    fn no_function_panics_on_odd_arguments() {
        let samples = [
            Value::Nil,
            Value::Bool(true),
            Value::Int(-3),
            Value::Int(i64::MAX),
            Value::Float(f64::NAN),
            Value::Float(-1.5e300),
            Value::from(""),
            Value::from("é\u{0}x:\n- y"),
            Value::from("10"),
            Value::Bytes(std::sync::Arc::new(vec![0xff, 0x00])),
            Value::list([Value::Nil, Value::Int(1)]),
            Value::list([]),
            Value::map([("a".to_string(), Value::list([Value::Nil]))]),
        ];
        // Key and password generators are slow by design; their own tests cover them.
        let slow = [
            "genPrivateKey",
            "genCA",
            "genSelfSignedCert",
            "genSignedCert",
            "derivePassword",
            "bcrypt",
            "htpasswd",
        ];
        let funcs: Vec<(&str, Func)> = sprig_functions()
            .into_iter()
            .chain(helm_functions())
            .filter(|(name, _)| !slow.contains(name))
            .collect();
        let mut panicked = Vec::new();
        for (name, func) in &funcs {
            for count in 0..=6 {
                for first in &samples {
                    for second in &samples {
                        let args: Vec<Value> = [first, second, first, second, first, second]
                            .into_iter()
                            .take(count)
                            .cloned()
                            .collect();
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| func(&args)));
                        if outcome.is_err() {
                            panicked.push(format!("{name}({args:?})"));
                        }
                        if count == 0 {
                            break;
                        }
                    }
                    if count == 0 {
                        break;
                    }
                }
            }
        }
        assert!(panicked.is_empty(), "functions panicked: {panicked:#?}");
    }
}
