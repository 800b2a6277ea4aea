//! The function registry: the names templates call, mapped to their Rust implementations.
//!
//! Every function has one signature, [`Func`]: it takes the evaluated arguments and returns a
//! value or Go's error text. Arity and argument types are each function's own business (with
//! Go's wording, e.g. `wrong number of args for upper: want 1 got 2`). Functions that need the
//! template set or short-circuit evaluation (`and`, `or`, `include`, `tpl`, `required`, `fail`,
//! `lookup`, `call`) are handled by the executor, not stored here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::value::Value;

/// A fast non-cryptographic hasher (the multiply-rotate scheme of Firefox's and rustc's
/// FxHash) for the executor's internal tables: keys are addresses, function names and
/// template names, lookups happen on every field access and call, and SipHash (built for
/// keys an attacker picks to collide) cost ~10% of execution. Nothing iterates these tables
/// in an order a template can observe.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const FAST_HASH_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FAST_HASH_SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits (which pick the bucket) weak for keys with zero low
        // bits, such as addresses: bring high bits down.
        self.hash.rotate_left(26)
    }
}

/// `HashMap`s keyed with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Go's error text of a failing function; the executor wraps it as
/// `error calling NAME: TEXT` with the template location, as Go does.
pub type FuncError = String;

/// A template function: evaluated arguments in, a value or Go's error text out.
pub type Func = fn(&[Value]) -> Result<Value, FuncError>;

/// The functions one template set can call, by name. Later registrations replace earlier ones
/// (Helm's own functions override Sprig's of the same name).
#[derive(Clone, Default, Debug)]
pub struct FuncRegistry {
    funcs: FastMap<&'static str, Func>,
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
