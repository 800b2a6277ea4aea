//! The few AWS-LC bignum operations RSA key generation needs, behind owning wrappers.
//!
//! All of the unsafe code of key generation lives here. Every pointer AWS-LC hands back is
//! checked before use and owned by a wrapper that frees it on drop, so the callers (the sieve,
//! the prime search, the key assembly) are safe Rust. The arithmetic is AWS-LC's own: nothing
//! here computes on limbs.

use std::ffi::c_int;
use std::ptr::{self, NonNull};

use aws_lc_sys as sys;

/// A machine word as AWS-LC's single-word functions take it.
pub(super) type Word = sys::BN_ULONG;

fn failed(what: &str) -> String {
    // SAFETY: clears only this thread's AWS-LC error queue, which nothing else reads for us.
    unsafe { sys::ERR_clear_error() };
    format!("crypto/rsa: {what} failed")
}

fn succeeded(status: c_int, what: &str) -> Result<(), String> {
    if status == 1 {
        Ok(())
    } else {
        Err(failed(what))
    }
}

/// AWS-LC's `BN_mod_exp_mont` and `BN_mod_exp_mont_consttime`: rr = a^p mod m.
type ModExp = unsafe extern "C" fn(
    *mut sys::BIGNUM,
    *const sys::BIGNUM,
    *const sys::BIGNUM,
    *const sys::BIGNUM,
    *mut sys::BN_CTX,
    *const sys::BN_MONT_CTX,
) -> c_int;

/// A non-negative AWS-LC `BIGNUM`, freed on drop.
pub(super) struct BigNum(NonNull<sys::BIGNUM>);

impl Drop for BigNum {
    fn drop(&mut self) {
        // SAFETY: the pointer came from AWS-LC's allocation, is owned by this value only, and is
        // not used after this call.
        unsafe { sys::BN_free(self.0.as_ptr()) }
    }
}

impl BigNum {
    fn owned(pointer: *mut sys::BIGNUM, what: &str) -> Result<Self, String> {
        NonNull::new(pointer)
            .map(BigNum)
            .ok_or_else(|| failed(what))
    }

    fn zero() -> Result<Self, String> {
        // SAFETY: BN_new takes no arguments; a null result (no memory) is checked by `owned`.
        Self::owned(unsafe { sys::BN_new() }, "BN_new")
    }

    /// The number whose big-endian magnitude is `bytes`.
    pub(super) fn from_be_bytes(bytes: &[u8]) -> Result<Self, String> {
        // SAFETY: `bytes` is valid for `bytes.len()` reads during the call; a null `ret` asks
        // AWS-LC to allocate the result, checked by `owned`.
        Self::owned(
            unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), ptr::null_mut()) },
            "BN_bin2bn",
        )
    }

    pub(super) fn from_word(value: Word) -> Result<Self, String> {
        let number = Self::zero()?;
        // SAFETY: `number` is a live BIGNUM owned here.
        succeeded(
            unsafe { sys::BN_set_word(number.0.as_ptr(), value) },
            "BN_set_word",
        )?;
        Ok(number)
    }

    /// The big-endian magnitude, without leading zero bytes.
    pub(super) fn to_be_bytes(&self) -> Vec<u8> {
        // SAFETY: `self` is a live BIGNUM.
        let len = unsafe { sys::BN_num_bytes(self.0.as_ptr()) } as usize;
        let mut out = vec![0u8; len];
        // SAFETY: `out` has room for BN_num_bytes bytes, which is what BN_bn2bin writes.
        let written = unsafe { sys::BN_bn2bin(self.0.as_ptr(), out.as_mut_ptr()) };
        out.truncate(written);
        out
    }

    pub(super) fn bits(&self) -> usize {
        // SAFETY: `self` is a live BIGNUM.
        unsafe { sys::BN_num_bits(self.0.as_ptr()) as usize }
    }

    pub(super) fn try_clone(&self) -> Result<Self, String> {
        // SAFETY: `self` is a live BIGNUM; the copy is checked and owned by `owned`.
        Self::owned(unsafe { sys::BN_dup(self.0.as_ptr()) }, "BN_dup")
    }

    /// `self mod divisor` for a non-zero word.
    pub(super) fn rem_word(&self, divisor: Word) -> Result<Word, String> {
        if divisor == 0 {
            return Err("crypto/rsa: division by zero".to_string());
        }
        // SAFETY: `self` is a live BIGNUM and the divisor is not zero, AWS-LC's only error case.
        Ok(unsafe { sys::BN_mod_word(self.0.as_ptr(), divisor) })
    }

    pub(super) fn add_word(&mut self, value: Word) -> Result<(), String> {
        // SAFETY: `self` is a live BIGNUM owned exclusively (&mut).
        succeeded(
            unsafe { sys::BN_add_word(self.0.as_ptr(), value) },
            "BN_add_word",
        )
    }

    pub(super) fn sub_word(&mut self, value: Word) -> Result<(), String> {
        // SAFETY: `self` is a live BIGNUM owned exclusively (&mut).
        succeeded(
            unsafe { sys::BN_sub_word(self.0.as_ptr(), value) },
            "BN_sub_word",
        )
    }

    pub(super) fn is_one(&self) -> bool {
        // SAFETY: `self` is a live BIGNUM.
        unsafe { sys::BN_is_one(self.0.as_ptr()) == 1 }
    }

    pub(super) fn mul(&self, other: &BigNum, ctx: &mut Context) -> Result<BigNum, String> {
        let product = Self::zero()?;
        // SAFETY: all three BIGNUMs and the context are live; `product` aliases neither input.
        succeeded(
            unsafe {
                sys::BN_mul(
                    product.0.as_ptr(),
                    self.0.as_ptr(),
                    other.0.as_ptr(),
                    ctx.as_ptr(),
                )
            },
            "BN_mul",
        )?;
        Ok(product)
    }

    /// `self mod modulus`, in `[0, modulus)`.
    pub(super) fn rem(&self, modulus: &BigNum, ctx: &mut Context) -> Result<BigNum, String> {
        let remainder = Self::zero()?;
        // SAFETY: all BIGNUMs and the context are live; `remainder` aliases neither input.
        succeeded(
            unsafe {
                sys::BN_nnmod(
                    remainder.0.as_ptr(),
                    self.0.as_ptr(),
                    modulus.0.as_ptr(),
                    ctx.as_ptr(),
                )
            },
            "BN_nnmod",
        )?;
        Ok(remainder)
    }

    /// The inverse of `self` modulo `modulus`, or None when they share a factor.
    pub(super) fn mod_inverse(
        &self,
        modulus: &BigNum,
        ctx: &mut Context,
    ) -> Result<Option<BigNum>, String> {
        let inverse = Self::zero()?;
        // SAFETY: all BIGNUMs and the context are live; `inverse` aliases neither input. On
        // success AWS-LC returns `inverse` itself, still owned here.
        let result = unsafe {
            sys::BN_mod_inverse(
                inverse.0.as_ptr(),
                self.0.as_ptr(),
                modulus.0.as_ptr(),
                ctx.as_ptr(),
            )
        };
        if result.is_null() {
            // No inverse is AWS-LC's only failure for these well-formed inputs besides memory.
            failed("BN_mod_inverse");
            return Ok(None);
        }
        Ok(Some(inverse))
    }

    pub(super) fn equals(&self, other: &BigNum) -> bool {
        // SAFETY: both BIGNUMs are live.
        unsafe { sys::BN_cmp(self.0.as_ptr(), other.0.as_ptr()) == 0 }
    }
}

/// One odd number w > 3 prepared for Miller-Rabin rounds: w - 1 = m·2^a with m odd, and
/// Montgomery constants for w. The rounds use AWS-LC's variable-time exponentiation
/// (`BN_mod_exp_mont`): AWS-LC's own `BN_primality_test` is constant time, which makes it run
/// at least 16 full rounds of twice the cost on every prime it accepts, about 30 times the
/// work the rounds below do (measured by scripts/bench-rsa).
pub(super) struct MillerRabin<'w> {
    w: &'w BigNum,
    w_minus_1: BigNum,
    odd_part: BigNum,
    twos: usize,
    mont: MontContext,
}

impl<'w> MillerRabin<'w> {
    pub(super) fn new(w: &'w BigNum, ctx: &mut Context) -> Result<Self, String> {
        let mut w_minus_1 = w.try_clone()?;
        w_minus_1.sub_word(1)?;
        // SAFETY: `w_minus_1` is a live BIGNUM; BN_is_bit_set reads any index (0 past its end).
        let twos = (0..w.bits())
            .find(|bit| unsafe { sys::BN_is_bit_set(w_minus_1.0.as_ptr(), *bit as c_int) } == 1)
            .ok_or_else(|| "crypto/rsa: Miller-Rabin on 1".to_string())?;
        let odd_part = BigNum::zero()?;
        // SAFETY: both BIGNUMs are live and distinct; the shift is below the size of w.
        succeeded(
            unsafe { sys::BN_rshift(odd_part.0.as_ptr(), w_minus_1.0.as_ptr(), twos as c_int) },
            "BN_rshift",
        )?;
        let mont = MontContext::new(w, ctx)?;
        Ok(MillerRabin {
            w,
            w_minus_1,
            odd_part,
            twos,
            mont,
        })
    }

    /// Whether w is a strong probable prime to base 2 (which nearly every composite is not).
    pub(super) fn passes_base_2(&self, ctx: &mut Context) -> Result<bool, String> {
        let power = BigNum::zero()?;
        // SAFETY: all BIGNUMs, the context and the Montgomery context (made for w) are live;
        // `power` aliases no input.
        succeeded(
            unsafe {
                sys::BN_mod_exp_mont_word(
                    power.0.as_ptr(),
                    2,
                    self.odd_part.0.as_ptr(),
                    self.w.0.as_ptr(),
                    ctx.as_ptr(),
                    self.mont.0.as_ptr(),
                )
            },
            "BN_mod_exp_mont_word",
        )?;
        self.finish_round(power, ctx)
    }

    /// Base 2 by AWS-LC's constant-time exponentiation (its AVX2 code for 1024-bit moduli),
    /// only measured against [`Self::passes_base_2`] by scripts/bench-rsa.
    #[cfg(test)]
    pub(super) fn passes_base_2_consttime(&self, ctx: &mut Context) -> Result<bool, String> {
        let base = BigNum::from_word(2)?;
        self.passes_base(
            &base,
            sys::BN_mod_exp_mont_consttime,
            "BN_mod_exp_mont_consttime",
            ctx,
        )
    }

    /// Whether w passes one round with a base drawn from [2, w - 1).
    pub(super) fn passes_random_base(&self, ctx: &mut Context) -> Result<bool, String> {
        let base = self.random_base(ctx)?;
        self.passes_base(&base, sys::BN_mod_exp_mont, "BN_mod_exp_mont", ctx)
    }

    /// One round to `base`, z = base^m mod w computed by `exponentiate` (one of AWS-LC's
    /// Montgomery exponentiations, which share this signature).
    fn passes_base(
        &self,
        base: &BigNum,
        exponentiate: ModExp,
        what: &str,
        ctx: &mut Context,
    ) -> Result<bool, String> {
        let power = BigNum::zero()?;
        // SAFETY: all BIGNUMs, the context and the Montgomery context (made for w) are live;
        // `power` aliases no input; `exponentiate` is one of AWS-LC's functions of this type.
        succeeded(
            unsafe {
                exponentiate(
                    power.0.as_ptr(),
                    base.0.as_ptr(),
                    self.odd_part.0.as_ptr(),
                    self.w.0.as_ptr(),
                    ctx.as_ptr(),
                    self.mont.0.as_ptr(),
                )
            },
            what,
        )?;
        self.finish_round(power, ctx)
    }

    /// A base from [2, w - 1): 64 random bits more than w has, reduced modulo w - 3, so the
    /// draw is uniform but for a bias below 2^-64. The bytes come from the operating system
    /// (`super::random_bytes`), not from AWS-LC's generator (see there).
    fn random_base(&self, ctx: &mut Context) -> Result<BigNum, String> {
        let mut bytes = vec![0u8; self.w.bits().div_ceil(8) + 8];
        super::random_bytes(&mut bytes)?;
        let mut span = self.w_minus_1.try_clone()?;
        span.sub_word(2)?;
        let mut base = BigNum::from_be_bytes(&bytes)?.rem(&span, ctx)?;
        base.add_word(2)?;
        Ok(base)
    }

    /// The rest of a round from z = b^m mod w: w passes when z is 1, or when z squared at most
    /// a - 1 times reaches w - 1.
    fn finish_round(&self, mut z: BigNum, ctx: &mut Context) -> Result<bool, String> {
        if z.is_one() || z.equals(&self.w_minus_1) {
            return Ok(true);
        }
        for _ in 1..self.twos {
            let squared = BigNum::zero()?;
            // SAFETY: all BIGNUMs and the context are live; `squared` aliases no input.
            succeeded(
                unsafe {
                    sys::BN_mod_sqr(
                        squared.0.as_ptr(),
                        z.0.as_ptr(),
                        self.w.0.as_ptr(),
                        ctx.as_ptr(),
                    )
                },
                "BN_mod_sqr",
            )?;
            z = squared;
            if z.equals(&self.w_minus_1) {
                return Ok(true);
            }
            if z.is_one() {
                return Ok(false);
            }
        }
        Ok(false)
    }
}

impl BigNum {
    /// AWS-LC's constant-time Miller-Rabin at the rounds it picks for key generation: only
    /// measured against [`MillerRabin`] by scripts/bench-rsa.
    #[cfg(test)]
    pub(super) fn passes_aws_lc_primality_test(&self, ctx: &mut Context) -> Result<bool, String> {
        let mut verdict: c_int = 0;
        // SAFETY: `verdict` is a live int for the call; the BIGNUM and context are live; a
        // null callback is allowed.
        succeeded(
            unsafe {
                sys::BN_primality_test(
                    &mut verdict,
                    self.0.as_ptr(),
                    sys::BN_prime_checks_for_generation,
                    ctx.as_ptr(),
                    0,
                    ptr::null_mut(),
                )
            },
            "BN_primality_test",
        )?;
        Ok(verdict == 1)
    }
}

/// AWS-LC's scratch space for bignum operations: one per thread, never shared.
pub(super) struct Context(NonNull<sys::BN_CTX>);

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the pointer came from BN_CTX_new, is owned by this value only, and is not
        // used after this call.
        unsafe { sys::BN_CTX_free(self.0.as_ptr()) }
    }
}

impl Context {
    pub(super) fn new() -> Result<Self, String> {
        // SAFETY: BN_CTX_new takes no arguments; a null result is checked.
        NonNull::new(unsafe { sys::BN_CTX_new() })
            .map(Context)
            .ok_or_else(|| failed("BN_CTX_new"))
    }

    fn as_ptr(&mut self) -> *mut sys::BN_CTX {
        self.0.as_ptr()
    }
}

/// Montgomery constants for one odd modulus.
struct MontContext(NonNull<sys::BN_MONT_CTX>);

impl Drop for MontContext {
    fn drop(&mut self) {
        // SAFETY: the pointer came from BN_MONT_CTX_new_for_modulus, is owned by this value
        // only, and is not used after this call.
        unsafe { sys::BN_MONT_CTX_free(self.0.as_ptr()) }
    }
}

impl MontContext {
    fn new(modulus: &BigNum, ctx: &mut Context) -> Result<Self, String> {
        // SAFETY: the modulus and context are live; AWS-LC copies the modulus, so the result
        // does not borrow it; a null result (even modulus, no memory) is checked.
        NonNull::new(unsafe { sys::BN_MONT_CTX_new_for_modulus(modulus.0.as_ptr(), ctx.as_ptr()) })
            .map(MontContext)
            .ok_or_else(|| failed("BN_MONT_CTX_new_for_modulus"))
    }
}
