//! The function registry: the names templates call, mapped to their Rust implementations.
//!
//! Every function has one signature, [`Func`]: it takes the evaluated arguments and returns a
//! value or Go's error text. Arity and argument types are each function's own business (with
//! Go's wording, e.g. `wrong number of args for upper: want 1 got 2`). Functions that need the
//! template set or short-circuit evaluation (`and`, `or`, `include`, `tpl`, `required`, `fail`,
//! `lookup`, `call`) are handled by the executor, not stored here.

use std::collections::HashMap;

use super::value::Value;

/// Go's error text of a failing function; the executor wraps it as
/// `error calling NAME: TEXT` with the template location, as Go does.
pub type FuncError = String;

/// A template function: evaluated arguments in, a value or Go's error text out.
pub type Func = fn(&[Value]) -> Result<Value, FuncError>;

/// The functions one template set can call, by name. Later registrations replace earlier ones
/// (Helm's own functions override Sprig's of the same name).
#[derive(Clone, Default, Debug)]
pub struct FuncRegistry {
    funcs: HashMap<&'static str, Func>,
}

impl FuncRegistry {
    /// An empty registry (the executor's built-ins are always available on top of it).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one function.
    pub fn register(&mut self, name: &'static str, func: Func) {
        self.funcs.insert(name, func);
    }

    /// Adds or replaces many functions, in order.
    pub fn extend(&mut self, funcs: impl IntoIterator<Item = (&'static str, Func)>) {
        for (name, func) in funcs {
            self.register(name, func);
        }
    }

    pub fn get(&self, name: &str) -> Option<Func> {
        self.funcs.get(name).copied()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(args: &[Value]) -> Result<Value, FuncError> {
        args.first()
            .cloned()
            .ok_or_else(|| "wrong number of args for first: want 1 got 0".to_string())
    }

    #[test]
    fn later_registrations_replace_earlier_ones() {
        fn other(_: &[Value]) -> Result<Value, FuncError> {
            Ok(Value::Nil)
        }
        let mut registry = FuncRegistry::new();
        registry.register("first", other);
        registry.extend([("first", first as Func)]);
        let func = registry.get("first");
        assert!(func.is_some());
        let result = func.map(|f| f(&[Value::Int(3)]));
        assert!(matches!(result, Some(Ok(Value::Int(3)))));
        assert!(!registry.contains("missing"));
    }
}
