//! Random RSA primes found with an incremental sieve, and the two-prime key Go makes of them.
//!
//! A search draws a random odd start with its top two bits set (as Go's `crypto/rand.Prime`
//! does, so that the product of two such primes has exactly the requested size), computes its
//! residues modulo every odd prime below a bound (2^18 or 2^20, see `sieve_bound`) once, and
//! then walks up the odd numbers from there: stepping the residues is word arithmetic, so
//! crossing out the multiples of small primes costs almost nothing per candidate. Only the
//! survivors reach AWS-LC's exponentiations: a Miller-Rabin round to base 2 first (one
//! variable-time exponentiation, which nearly every composite fails), then the rounds with
//! random bases FIPS 186-4 asks for at the size (see [`is_probable_prime`]). A search
//! hands out one prime per random start and then starts afresh, so the two primes of a key
//! never come from the same walk (two primes close together would make the key easy to
//! factor).

use std::sync::OnceLock;

use super::bignum::{BigNum, Context, MillerRabin, Word};
use crate::funcs::x509::{tlv, uint};

/// Odd primes below this bound are sieved out of candidates of `bits` bits. Chosen by
/// measurement (scripts/bench-rsa): a higher bound crosses out more composites but costs more
/// word divisions per start, which pays off sooner the dearer the exponentiations: at 1024
/// bits 2^16 to 2^20 cost within 6% of each other, 2^18 the least; at 2048 bits 2^20 wins.
fn sieve_bound(bits: usize) -> u32 {
    if bits > 1024 { 1 << 20 } else { 1 << 18 }
}

/// Odd candidates crossed out at once. A 1024-bit prime turns up every ~355 odd numbers on
/// average, so one window nearly always holds one; a longer walk sieves again further up.
const WINDOW: usize = 4096;

/// Windows walked from one start before drawing a new one (prime gaps this long do not occur
/// at RSA sizes, so this only bounds the loop).
const MAX_WINDOWS: usize = 64;

/// Go's public exponent. A prime p with p ≡ 1 mod E cannot be used (E would not be
/// invertible modulo (p-1)(q-1)); Go draws new primes then, the search skips such p.
pub(super) const E: Word = 65537;

/// The odd primes below a bound, with products of consecutive ones that fit in one word, so
/// that the residues of a big start take one AWS-LC word division per product instead of one
/// per prime.
pub(super) struct SmallPrimes {
    primes: Vec<u32>,
    /// (product, number of primes in it), covering `primes` in order.
    products: Vec<(Word, usize)>,
}

impl SmallPrimes {
    pub(super) fn below(bound: u32) -> Self {
        let bound = bound as usize;
        let mut composite = vec![false; bound];
        let mut primes = Vec::new();
        for candidate in 3..bound {
            if composite[candidate] || candidate % 2 == 0 {
                continue;
            }
            primes.push(candidate as u32);
            for multiple in (candidate * candidate..bound).step_by(candidate) {
                composite[multiple] = true;
            }
        }
        let mut products = Vec::new();
        let mut product: Word = 1;
        let mut count = 0;
        for &prime in &primes {
            match product.checked_mul(Word::from(prime)) {
                Some(next) => {
                    product = next;
                    count += 1;
                }
                None => {
                    products.push((product, count));
                    product = Word::from(prime);
                    count = 1;
                }
            }
        }
        if count > 0 {
            products.push((product, count));
        }
        SmallPrimes { primes, products }
    }

    /// The table for candidates of `bits` bits, made once per process.
    pub(super) fn for_bits(bits: usize) -> &'static SmallPrimes {
        static SMALLER: OnceLock<SmallPrimes> = OnceLock::new();
        static LARGER: OnceLock<SmallPrimes> = OnceLock::new();
        let bound = sieve_bound(bits);
        let table = if bound == sieve_bound(1024) {
            &SMALLER
        } else {
            &LARGER
        };
        table.get_or_init(|| SmallPrimes::below(bound))
    }

    /// `start mod p` for every small prime p, in order.
    fn residues(&self, start: &BigNum) -> Result<Vec<u32>, String> {
        let mut residues = Vec::with_capacity(self.primes.len());
        let mut primes = self.primes.iter();
        for &(product, count) in &self.products {
            let residue = start.rem_word(product)?;
            for &prime in primes.by_ref().take(count) {
                residues.push((residue % Word::from(prime)) as u32);
            }
        }
        Ok(residues)
    }
}

/// Crosses out, in `composite`, every index i such that `start + 2 * (first + i)` is divisible
/// by one of `primes`, where `residues[k]` is `start mod primes[k]`. The numbers must be larger
/// than the primes (a small prime itself would be crossed out as its own multiple).
pub(super) fn sieve(primes: &[u32], residues: &[u32], first: u64, composite: &mut [bool]) {
    composite.fill(false);
    for (&prime, &residue) in primes.iter().zip(residues) {
        let prime = u64::from(prime);
        // Residue of the window's first number, start + 2 * first.
        let at_first = (u64::from(residue) + 2 * (first % prime)) % prime;
        // Smallest i with at_first + 2i ≡ 0 (mod p): i ≡ -at_first / 2, and 1/2 ≡ (p + 1) / 2.
        let mut index = ((prime - at_first) % prime * prime.div_ceil(2) % prime) as usize;
        while index < composite.len() {
            composite[index] = true;
            index += prime as usize;
        }
    }
}

/// Miller-Rabin rounds with random bases after the base-2 round, by size of the candidate:
/// the table AWS-LC's (and BoringSSL's) key generation uses, computed with FIPS 186-4 F.1, and
/// which Go 1.24+ (helm 4) copies: a random candidate that passes is composite with
/// probability below 2^-112 for 1024-bit primes (2048-bit keys) and 2^-128 from 1345 bits
/// (3072 and 4096). Go 1.23 (helm 3.17) runs more, `ProbablyPrime(20)`: 20 random bases plus
/// base 2 (and a Lucas test, which AWS-LC does not offer); keelson matches its 20 + 1 rounds so
/// that its keys are never tested less than helm's. They cost only on the two primes kept
/// (scripts/bench-rsa: about 5 ms more per 1024-bit prime than the table's rounds).
const GO_RANDOM_ROUNDS: usize = 20;

fn random_rounds(bits: usize) -> usize {
    match bits {
        3747.. => 3,
        1345.. => 4,
        476.. => 5,
        400.. => 6,
        347.. => 7,
        308.. => 8,
        55.. => 27,
        _ => 34,
    }
}

/// Miller-Rabin to base 2 (which throws out nearly every sieve survivor for the price of one
/// exponentiation), then rounds with random bases: as many as FIPS 186-4 asks for at the size
/// or as Go 1.23 runs, whichever is more.
pub(super) fn is_probable_prime(candidate: &BigNum, ctx: &mut Context) -> Result<bool, String> {
    let test = MillerRabin::new(candidate, ctx)?;
    if !test.passes_base_2(ctx)? {
        return Ok(false);
    }
    for _ in 0..random_rounds(candidate.bits()).max(GO_RANDOM_ROUNDS) {
        if !test.passes_random_base(ctx)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A random odd number of exactly `bits` bits with the top two set, as Go's `rand.Prime` draws
/// its candidates.
fn random_start(bits: usize) -> Result<BigNum, String> {
    let mut bytes = vec![0u8; bits.div_ceil(8)];
    super::random_bytes(&mut bytes)?;
    let excess = bytes.len() * 8 - bits;
    bytes[0] &= 0xff >> excess;
    if excess < 7 {
        bytes[0] |= 0xc0 >> excess;
    } else {
        bytes[0] |= 1;
        bytes[1] |= 0x80;
    }
    if let Some(last) = bytes.last_mut() {
        *last |= 1;
    }
    BigNum::from_be_bytes(&bytes)
}

/// A random prime of exactly `bits` bits (top two set, not ≡ 1 mod [`E`]), or None as soon
/// as `keep_going` says the prime is no longer needed (asked before each expensive test).
pub(super) fn find_prime(
    bits: usize,
    small: &SmallPrimes,
    ctx: &mut Context,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<Option<BigNum>, String> {
    let mut composite = vec![false; WINDOW];
    loop {
        if !keep_going() {
            return Ok(None);
        }
        let start = random_start(bits)?;
        let residues = small.residues(&start)?;
        let start_mod_e = start.rem_word(E)?;
        for window in 0..MAX_WINDOWS {
            let first = (window * WINDOW) as u64;
            sieve(&small.primes, &residues, first, &mut composite);
            for (index, _) in composite
                .iter()
                .enumerate()
                .filter(|(_, crossed)| !**crossed)
            {
                let offset = 2 * (first + index as u64);
                if (start_mod_e + offset % E) % E == 1 {
                    continue;
                }
                if !keep_going() {
                    return Ok(None);
                }
                let mut candidate = start.try_clone()?;
                candidate.add_word(offset)?;
                if candidate.bits() != bits {
                    // Walked past 2^bits: draw again (practically never happens).
                    break;
                }
                if is_probable_prime(&candidate, ctx)? {
                    return Ok(Some(candidate));
                }
            }
        }
    }
}

/// The PKCS#1 `RSAPrivateKey` DER of the two-prime key Go's `rsa.GenerateKey` (Go 1.23) makes
/// of p and q: e = 65537, d = e⁻¹ mod (p-1)(q-1) (Euler's φ, not Carmichael's λ), dp = d mod
/// (p-1), dq = d mod (q-1), qinv = q⁻¹ mod p. None when Go would reject the pair and draw
/// again: p = q, a modulus not of `bits` bits, or e not invertible.
pub(super) fn private_key_der(
    p: &BigNum,
    q: &BigNum,
    bits: usize,
    ctx: &mut Context,
) -> Result<Option<Vec<u8>>, String> {
    if p.equals(q) {
        return Ok(None);
    }
    let n = p.mul(q, ctx)?;
    if n.bits() != bits {
        return Ok(None);
    }
    let mut p_minus_1 = p.try_clone()?;
    p_minus_1.sub_word(1)?;
    let mut q_minus_1 = q.try_clone()?;
    q_minus_1.sub_word(1)?;
    let phi = p_minus_1.mul(&q_minus_1, ctx)?;
    let e = BigNum::from_word(E)?;
    let Some(d) = e.mod_inverse(&phi, ctx)? else {
        return Ok(None);
    };
    let dp = d.rem(&p_minus_1, ctx)?;
    let dq = d.rem(&q_minus_1, ctx)?;
    let Some(qinv) = q.mod_inverse(p, ctx)? else {
        return Ok(None);
    };
    let fields = [&n, &e, &d, p, q, &dp, &dq, &qinv];
    let mut content = uint(&[0]);
    for field in fields {
        content.extend(uint(&field.to_be_bytes()));
    }
    Ok(Some(tlv(0x30, &content)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_prime_by_trial_division(number: u64) -> bool {
        number >= 2
            && (2..)
                .take_while(|d| d * d <= number)
                .all(|d| !number.is_multiple_of(d))
    }

    #[test]
    fn small_primes_are_the_odd_primes_below_the_bound_and_products_cover_them() {
        let small = SmallPrimes::below(2000);
        let expected: Vec<u32> = (3..2000u32)
            .filter(|n| is_prime_by_trial_division(u64::from(*n)))
            .collect();
        assert_eq!(small.primes, expected);
        let mut covered = 0;
        for &(product, count) in &small.products {
            let factors = &small.primes[covered..covered + count];
            let multiplied = factors
                .iter()
                .try_fold(1 as Word, |acc, prime| acc.checked_mul(Word::from(*prime)));
            assert_eq!(multiplied, Some(product));
            covered += count;
        }
        assert_eq!(covered, small.primes.len());
    }

    /// The sieve against trial division over whole windows: it crosses out exactly the numbers
    /// with an odd prime factor below the bound, so it never rejects a prime.
    #[test]
    fn the_sieve_crosses_out_exactly_the_multiples_of_small_primes() {
        let small = SmallPrimes::for_bits(1024);
        let bound = u64::from(sieve_bound(1024));
        // Odd starts above the bound (and above the square of small primes), one with factors.
        for start in [
            10_000_000_019u64,
            3 * 5 * 7 * 11 * 13 * 65_537 * 2 + 1,
            1_000_003,
        ] {
            let residues: Vec<u32> = small
                .primes
                .iter()
                .map(|prime| (start % u64::from(*prime)) as u32)
                .collect();
            let mut composite = vec![false; 1000];
            for first in [0u64, 1000, 7 * 4096] {
                sieve(&small.primes, &residues, first, &mut composite);
                for (index, crossed) in composite.iter().enumerate() {
                    let number = start + 2 * (first + index as u64);
                    let has_small_factor = small
                        .primes
                        .iter()
                        .any(|prime| number.is_multiple_of(u64::from(*prime)));
                    assert_eq!(*crossed, has_small_factor, "{number}");
                    if number < bound * bound && is_prime_by_trial_division(number) {
                        assert!(!crossed, "prime {number} crossed out");
                    }
                }
            }
        }
    }

    /// The residues come from AWS-LC's word division of products of primes.
    #[test]
    fn residues_of_a_big_number_match_word_arithmetic() {
        let small = SmallPrimes::for_bits(1024);
        let number: u64 = 0xc3a5_c85c_97cb_3127;
        let Ok(big) = BigNum::from_be_bytes(&number.to_be_bytes()) else {
            panic!("BN_bin2bn")
        };
        let Ok(residues) = small.residues(&big) else {
            panic!("BN_mod_word")
        };
        let expected: Vec<u32> = small
            .primes
            .iter()
            .map(|prime| (number % u64::from(*prime)) as u32)
            .collect();
        assert_eq!(residues, expected);
    }

    #[test]
    fn found_primes_are_prime_with_the_top_two_bits_and_usable_with_e() {
        let Ok(mut ctx) = Context::new() else {
            panic!("BN_CTX_new")
        };
        let small = SmallPrimes::for_bits(1024);
        for _ in 0..40 {
            let prime = match find_prime(40, small, &mut ctx, &mut || true) {
                Ok(Some(prime)) => prime,
                Ok(None) => panic!("the search stopped though asked to go on"),
                Err(e) => panic!("{e}"),
            };
            let value = prime
                .to_be_bytes()
                .iter()
                .fold(0u64, |acc, byte| acc << 8 | u64::from(*byte));
            assert!(is_prime_by_trial_division(value), "{value}");
            assert_eq!(value >> 38, 0b11, "{value} has 40 bits, the top two set");
            assert_ne!(value % E, 1, "{value} ≡ 1 mod e");
        }
        let mut asked = 0;
        let stopped = find_prime(1024, small, &mut ctx, &mut || {
            // Yes to the first question (a start is drawn), no before the first test.
            asked += 1;
            asked < 2
        });
        assert!(matches!(stopped, Ok(None)), "the search stops when told");
    }

    fn number(bytes: &[u8]) -> BigNum {
        match BigNum::from_be_bytes(bytes) {
            Ok(number) => number,
            Err(e) => panic!("{e}"),
        }
    }

    /// Known primes pass; strong pseudoprimes to base 2 (which pass that round) and a
    /// Carmichael number are caught by the random rounds; products of two big primes fail.
    #[test]
    fn miller_rabin_tells_known_primes_from_pseudoprimes() {
        let Ok(mut ctx) = Context::new() else {
            panic!("BN_CTX_new")
        };
        let mersenne = |exponent: usize| {
            let mut bytes = vec![0xffu8; exponent.div_ceil(8)];
            bytes[0] = (1u8 << (exponent % 8)) - 1;
            number(&bytes)
        };
        for prime in [mersenne(127), mersenne(521), mersenne(607)] {
            assert!(matches!(is_probable_prime(&prime, &mut ctx), Ok(true)));
        }
        // 2047 = 23·89 and 3215031751 = 151·751·28351 are strong pseudoprimes to base 2;
        // 561 = 3·11·17 is a Carmichael number.
        for composite in [2047u64, 3_215_031_751, 561, 3_825_123_056_546_413_051] {
            let candidate = number(&composite.to_be_bytes());
            let Ok(test) = MillerRabin::new(&candidate, &mut ctx) else {
                panic!("setup")
            };
            if composite != 561 {
                assert!(
                    matches!(test.passes_base_2(&mut ctx), Ok(true)),
                    "{composite}"
                );
            }
            assert!(
                matches!(is_probable_prime(&candidate, &mut ctx), Ok(false)),
                "{composite}"
            );
        }
        let Ok(product) = mersenne(127).mul(&mersenne(521), &mut ctx) else {
            panic!("BN_mul")
        };
        assert!(matches!(is_probable_prime(&product, &mut ctx), Ok(false)));
    }

    fn millis_since(started: std::time::Instant) -> f64 {
        started.elapsed().as_secs_f64() * 1000.0
    }

    /// The cost of one 1024-bit prime (half a 2048-bit key) or 2048-bit one on one thread, per
    /// sieve bound,
    /// from its parts, which unlike whole searches can be timed precisely on a noisy machine:
    /// the residues of a start, one sieved window, and the base-2 rounds on the survivors of
    /// the odd numbers walked on average (ln 2^bits / 2) before a prime; the rounds on
    /// the prime itself are the same for every bound. Run by scripts/bench-rsa.
    #[test]
    #[ignore = "benchmark: scripts/bench-rsa"]
    fn bench_sieve_bounds() {
        const STARTS: usize = 50;
        let Ok(mut ctx) = Context::new() else {
            panic!("BN_CTX_new")
        };
        for bits in [1024, 2048] {
            let walked = (bits as f64 * std::f64::consts::LN_2) / 2.0;
            let starts: Vec<BigNum> = (0..STARTS)
                .map(|_| match random_start(bits) {
                    Ok(start) => start,
                    Err(e) => panic!("{e}"),
                })
                .collect();
            let started = std::time::Instant::now();
            for start in &starts {
                let Ok(test) = MillerRabin::new(start, &mut ctx) else {
                    panic!("setup")
                };
                let _ = test.passes_base_2(&mut ctx);
            }
            let base_2 = millis_since(started) / STARTS as f64;
            println!(
                "one {bits}-bit prime on one thread, by sieve bound (base-2 round {base_2:.3} ms):"
            );
            for bound in [
                1u32 << 8,
                1 << 10,
                1 << 12,
                1 << 14,
                1 << 16,
                1 << 18,
                1 << 20,
            ] {
                let table = SmallPrimes::below(bound);
                let started = std::time::Instant::now();
                let all_residues: Vec<Vec<u32>> = starts
                    .iter()
                    .map(|start| match table.residues(start) {
                        Ok(residues) => residues,
                        Err(e) => panic!("{e}"),
                    })
                    .collect();
                let residues = millis_since(started) / STARTS as f64;
                let mut composite = vec![false; WINDOW];
                let mut survivors = 0;
                let started = std::time::Instant::now();
                for residues in &all_residues {
                    sieve(&table.primes, residues, 0, &mut composite);
                    survivors += composite.iter().filter(|crossed| !**crossed).count();
                }
                let window = millis_since(started) / STARTS as f64;
                let fraction = survivors as f64 / (STARTS * WINDOW) as f64;
                let tested = walked * fraction;
                let total = residues + window + tested * base_2;
                println!(
                    "  bound {bound:>8}: residues {residues:.3} ms, window {window:.3} ms, {:.1}% \
                 survive, {tested:.1} base-2 rounds: {total:.2} ms per prime",
                    fraction * 100.0
                );
            }
        }
    }

    /// The cost of one test on a sieve survivor (nearly always composite): Fermat base 2 by
    /// variable-time exponentiation against AWS-LC's Miller-Rabin; and the full test of a prime.
    #[test]
    #[ignore = "benchmark: scripts/bench-rsa"]
    fn bench_primality_tests() {
        let Ok(mut ctx) = Context::new() else {
            panic!("BN_CTX_new")
        };
        for bits in [1024, 1536, 2048] {
            let small = SmallPrimes::for_bits(bits);
            let mut survivors = Vec::new();
            while survivors.len() < 200 {
                let Ok(candidate) = random_start(bits) else {
                    panic!("random")
                };
                let Ok(residues) = small.residues(&candidate) else {
                    panic!("residues")
                };
                if !residues.contains(&0) {
                    survivors.push(candidate);
                }
            }
            let started = std::time::Instant::now();
            for candidate in &survivors {
                let Ok(test) = MillerRabin::new(candidate, &mut ctx) else {
                    panic!("setup")
                };
                let _ = test.passes_base_2(&mut ctx);
            }
            let base_2 = millis_since(started) / survivors.len() as f64;
            let started = std::time::Instant::now();
            for candidate in &survivors {
                let Ok(test) = MillerRabin::new(candidate, &mut ctx) else {
                    panic!("setup")
                };
                let _ = test.passes_base_2_consttime(&mut ctx);
            }
            let base_2_consttime = millis_since(started) / survivors.len() as f64;
            let started = std::time::Instant::now();
            for candidate in &survivors {
                let _ = candidate.passes_aws_lc_primality_test(&mut ctx);
            }
            let aws_lc = millis_since(started) / survivors.len() as f64;
            let prime = match find_prime(bits, small, &mut ctx, &mut || true) {
                Ok(Some(prime)) => prime,
                _ => panic!("no prime"),
            };
            let time_10 = |ctx: &mut Context, run: &dyn Fn(&mut Context)| {
                let started = std::time::Instant::now();
                for _ in 0..10 {
                    run(ctx);
                }
                millis_since(started) / 10.0
            };
            let ours = time_10(&mut ctx, &|ctx| {
                assert!(matches!(is_probable_prime(&prime, ctx), Ok(true)));
            });
            let aws_lc_prime = time_10(&mut ctx, &|ctx| {
                assert!(matches!(prime.passes_aws_lc_primality_test(ctx), Ok(true)));
            });
            let table = time_10(&mut ctx, &|ctx| {
                let Ok(test) = MillerRabin::new(&prime, ctx) else {
                    panic!("setup")
                };
                assert!(matches!(test.passes_base_2(ctx), Ok(true)));
                for _ in 0..random_rounds(bits) {
                    assert!(matches!(test.passes_random_base(ctx), Ok(true)));
                }
            });
            println!(
                "{bits}-bit sieve survivor: base-2 round {base_2:.3} ms (constant-time exponentiation \
                 {base_2_consttime:.3} ms), AWS-LC BN_primality_test \
                 {aws_lc:.3} ms; a prime: base 2 + {} random rounds {ours:.2} ms, AWS-LC \
                 {aws_lc_prime:.2} ms, base 2 + the table's {} random rounds {table:.2} ms",
                random_rounds(bits).max(GO_RANDOM_ROUNDS),
                random_rounds(bits)
            );
        }
    }
}
