//! Sprig's `semver` and `semverCompare` over Masterminds/semver v3.3.0 (Helm 3's) rules.

use std::cmp::Ordering;
use std::sync::Arc;

use super::args;
use super::{Func, FuncError};
use crate::value::{Object, Value};
use gocompat::semver::{Version, constraint_matches};

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![("semver", semver_fn), ("semverCompare", semver_compare)]
}

impl Object for Version {
    fn type_name(&self) -> &str {
        "*semver.Version"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let uint = |v: u64| Value::Int(v as i64);
        Some(match name {
            "Major" => uint(self.major),
            "Minor" => uint(self.minor),
            "Patch" => uint(self.patch),
            "Prerelease" => Value::String(self.pre.clone()),
            "Metadata" => Value::String(self.metadata.clone()),
            "Original" => Value::String(self.original.clone()),
            "String" => Value::String(self.to_string()),
            "IncMajor" | "IncMinor" | "IncPatch" => {
                let mut next = self.clone();
                next.pre.clear();
                next.metadata.clear();
                match name {
                    "IncMajor" => {
                        next.major += 1;
                        next.minor = 0;
                        next.patch = 0;
                    }
                    "IncMinor" => {
                        next.minor += 1;
                        next.patch = 0;
                    }
                    _ => {
                        if self.pre.is_empty() {
                            next.patch += 1;
                        }
                    }
                }
                next.original = next.to_string();
                Value::Object(Arc::new(next))
            }
            _ => return None,
        })
    }

    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let other = || match args.first() {
            Some(Value::Object(o)) if o.type_name() == "*semver.Version" => {
                Version::parse(&o.to_go_string())
            }
            Some(Value::String(s)) => Version::parse(s),
            _ => Err("wrong type for value; expected *semver.Version".to_string()),
        };
        let result = match name {
            "Compare" => other().map(|o| Value::Int(self.compare(&o) as i64)),
            "LessThan" => other().map(|o| Value::Bool(self.compare(&o) == Ordering::Less)),
            "GreaterThan" => other().map(|o| Value::Bool(self.compare(&o) == Ordering::Greater)),
            "Equal" => other().map(|o| Value::Bool(self.compare(&o) == Ordering::Equal)),
            _ => return self.field(name).map(Ok),
        };
        Some(result)
    }

    fn to_go_string(&self) -> String {
        self.to_string()
    }

    fn to_serializable(&self) -> Value {
        Value::String(self.to_string())
    }
}

fn semver_fn(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("semver", args, 1)?;
    let version = Version::parse(args::string(args, 0)?)?;
    Ok(Value::Object(Arc::new(version)))
}

fn semver_compare(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("semverCompare", args, 2)?;
    let constraint = args::string(args, 0)?;
    let version = Version::parse(args::string(args, 1)?)?;
    constraint_matches(constraint, &version).map(Value::Bool)
}
