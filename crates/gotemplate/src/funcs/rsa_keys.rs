//! RSA key generation for Sprig's `genCA`, `genSelfSignedCert`, `genSignedCert` (2048 bits) and
//! `genPrivateKey "rsa"` (4096 bits), with the prime search spread over every core.
//!
//! A key is two random primes of half its size, and the time to find one is random (a
//! geometric number of candidates). Every core searches primes (see [`primes`]) into a shared
//! pool, and a key is made of the first two found by any thread: the wait is that of two
//! primes over all cores, and no half-found key is thrown away. Primes found beyond need stay
//! in the pool for the next key (a CA and its leaf certificates). Each search draws its own
//! random start. An incremental walk leans towards primes that follow long gaps, and taking
//! whichever walk ends first leans back towards short ones; both skews are the well-studied
//! kind that costs a key a small fraction of a bit of entropy, not a weakness.
//!
//! The key is assembled the way Go 1.23's `rsa.GenerateKey` does (helm's), and handed out as
//! PKCS#1 `RSAPrivateKey` DER, the form Go's `x509.MarshalPKCS1PrivateKey` writes. The
//! arithmetic is AWS-LC's (through aws-lc-sys, see [`bignum`] and docs/dependencies.md).

mod bignum;
mod primes;

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

/// At most this many searches run at once per key size: beyond a few cores the first primes
/// hardly come sooner, while every extra search is CPU spent on spare primes.
const MAX_PARALLEL: usize = 4;

#[derive(Default)]
struct SizeState {
    /// Primes of half the key size found and not yet used, in the order found.
    primes: VecDeque<Vec<u8>>,
    /// `generate` calls waiting for a key of this size.
    waiting: usize,
    /// Searches running (for a waiting `generate`).
    searching: usize,
    /// A search that failed (AWS-LC out of memory, no random bytes), for the next caller.
    failure: Option<String>,
}

impl SizeState {
    fn primes_wanted(&self) -> usize {
        2 * self.waiting
    }

    fn needs_primes(&self) -> bool {
        self.primes.len() < self.primes_wanted()
    }
}

/// Per key size in bits.
type Pool = HashMap<usize, SizeState>;

static POOL: Mutex<Option<Pool>> = Mutex::new(None);
static FOUND: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Option<Pool>> {
    // A panic while holding the lock leaves only counters and primes behind: still usable.
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn state_of(pool: &mut Option<Pool>, bits: usize) -> &mut SizeState {
    pool.get_or_insert_with(Pool::default)
        .entry(bits)
        .or_default()
}

fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, MAX_PARALLEL)
}

fn check_size(bits: usize) -> Result<(), String> {
    match bits {
        2048 | 3072 | 4096 | 8192 => Ok(()),
        other => Err(format!("unsupported RSA key size {other}")),
    }
}

/// Starts searches for `bits` keys while a `generate` waits, one per core. Returns false when
/// a search was needed but none runs or could be started.
fn staff(state: &mut SizeState, bits: usize) -> bool {
    while state.waiting > 0 && state.needs_primes() && state.searching < parallelism() {
        if !spawn_search(bits) {
            return state.searching > 0;
        }
        state.searching += 1;
    }
    true
}

/// One search thread: finds primes of half of `bits` into the pool as long as a `generate`
/// waits for them.
fn spawn_search(bits: usize) -> bool {
    std::thread::Builder::new()
        .name("rsa-keygen".to_string())
        .spawn(move || {
            let outcome = search(bits);
            let mut guard = lock();
            let state = state_of(&mut guard, bits);
            state.searching = state.searching.saturating_sub(1);
            if let Err(failure) = outcome {
                state.failure = Some(failure);
            }
            // Waiting callers re-check (and restart searches still wanted).
            staff(state, bits);
            FOUND.notify_all();
        })
        .is_ok()
}

fn search(bits: usize) -> Result<(), String> {
    let mut ctx = bignum::Context::new()?;
    let small = primes::SmallPrimes::for_bits(bits / 2);
    let mut keep_going = || {
        let mut guard = lock();
        let state = state_of(&mut guard, bits);
        state.needs_primes() && state.waiting > 0
    };
    while let Some(prime) = primes::find_prime(bits / 2, small, &mut ctx, &mut keep_going)? {
        let mut guard = lock();
        state_of(&mut guard, bits)
            .primes
            .push_back(prime.to_be_bytes());
        FOUND.notify_all();
    }
    Ok(())
}

/// The key made of two primes, or None when Go would have drawn new primes.
fn assemble(p: &[u8], q: &[u8], bits: usize) -> Result<Option<Vec<u8>>, String> {
    let mut ctx = bignum::Context::new()?;
    let p = bignum::BigNum::from_be_bytes(p)?;
    let q = bignum::BigNum::from_be_bytes(q)?;
    primes::private_key_der(&p, &q, bits, &mut ctx)
}

/// Random bytes from the operating system (getrandom, through ring), as Go's crypto/rand reads
/// them. AWS-LC's own generator would first seed itself from its CPU-jitter entropy source,
/// which the aws-lc-sys build here keeps despite `AWS_LC_SYS_NO_JITTER_ENTROPY`: that
/// start-up measurement was a third of the CPU time of a render making one key.
fn random_bytes(bytes: &mut [u8]) -> Result<(), String> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(bytes)
        .map_err(|_| "crypto/rsa: the operating system gave no random bytes".to_string())
}

/// A key searched on the calling thread alone, when no search thread can be started.
fn generate_here(bits: usize) -> Result<Vec<u8>, String> {
    let mut ctx = bignum::Context::new()?;
    let small = primes::SmallPrimes::for_bits(bits / 2);
    loop {
        let mut primes = Vec::with_capacity(2);
        while primes.len() < 2 {
            if let Some(prime) = primes::find_prime(bits / 2, small, &mut ctx, &mut || true)? {
                primes.push(prime);
            }
        }
        if let Some(key) = primes::private_key_der(&primes[0], &primes[1], bits, &mut ctx)? {
            return Ok(key);
        }
    }
}

/// A new RSA private key of `bits` (2048, 3072, 4096 or 8192) as PKCS#1 DER.
pub fn generate(bits: usize) -> Result<Vec<u8>, String> {
    check_size(bits)?;
    let mut guard = lock();
    let state = state_of(&mut guard, bits);
    state.waiting += 1;
    loop {
        let state = state_of(&mut guard, bits);
        if let Some(failure) = state.failure.take() {
            state.waiting -= 1;
            return Err(failure);
        }
        if state.primes.len() >= 2
            && let (Some(p), Some(q)) = (state.primes.pop_front(), state.primes.pop_front())
        {
            // No longer waiting: the searches stop unless other callers still want primes.
            state.waiting -= 1;
            drop(guard);
            if let Some(key) = assemble(&p, &q, bits)? {
                return Ok(key);
            }
            // A pair Go would reject (p = q): both are dropped, as Go draws both again.
            guard = lock();
            state_of(&mut guard, bits).waiting += 1;
            continue;
        }
        if !staff(state, bits) {
            state.waiting -= 1;
            drop(guard);
            return generate_here(bits);
        }
        guard = FOUND
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PKCS#1 fields in order: version, n, e, d, p, q, dp, dq, qinv.
    fn integers(pkcs1: &[u8]) -> Vec<Vec<u8>> {
        let Ok((outer, _)) = super::super::x509::read_tlv(pkcs1) else {
            panic!("not DER")
        };
        assert_eq!(outer.tag, 0x30);
        let Ok(items) = super::super::x509::children(outer.content) else {
            panic!("not a SEQUENCE of TLVs")
        };
        items
            .iter()
            .map(|item| {
                assert_eq!(item.tag, 0x02, "every field is an INTEGER");
                item.content.to_vec()
            })
            .collect()
    }

    fn bit_length(magnitude: &[u8]) -> usize {
        let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
        trimmed
            .first()
            .map_or(0, |b| trimmed.len() * 8 - b.leading_zeros() as usize)
    }

    #[test]
    fn keys_are_two_prime_pkcs1_with_go_exponent() {
        let keys: Vec<Vec<u8>> = (0..3)
            .map(|_| match generate(2048) {
                Ok(key) => key,
                Err(e) => panic!("generation failed: {e}"),
            })
            .collect();
        for key in &keys {
            let fields = integers(key);
            assert_eq!(fields.len(), 9, "two-prime RSAPrivateKey");
            assert_eq!(fields[0], vec![0], "version 0 (two primes)");
            assert_eq!(bit_length(&fields[1]), 2048, "modulus size");
            assert_eq!(fields[2], vec![0x01, 0x00, 0x01], "e = 65537 as Go uses");
            assert_eq!(bit_length(&fields[4]), 1024);
            assert_eq!(bit_length(&fields[5]), 1024);
        }
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
    }

    #[test]
    fn unsupported_sizes_are_refused_without_starting_work() {
        assert_eq!(
            generate(1000),
            Err("unsupported RSA key size 1000".to_string())
        );
        assert!(lock().as_ref().is_none_or(|pool| !pool.contains_key(&1000)));
    }

    fn big(magnitude: &[u8]) -> rsa::BigUint {
        rsa::BigUint::from_bytes_be(magnitude)
    }

    /// Miller-Rabin over the rsa crate's bignum (num-bigint-dig), independent of AWS-LC, with
    /// the first twelve primes as bases: for the random primes of a key a composite passing
    /// all twelve is out of the question.
    fn independently_prime(candidate: &rsa::BigUint) -> bool {
        let one = rsa::BigUint::from(1u32);
        let two = rsa::BigUint::from(2u32);
        let minus_one = candidate - &one;
        let mut odd = minus_one.clone();
        let mut twos = 0;
        while (&odd % &two) == rsa::BigUint::from(0u32) {
            odd /= &two;
            twos += 1;
        }
        [2u32, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]
            .iter()
            .all(|base| {
                let mut x = rsa::BigUint::from(*base).modpow(&odd, candidate);
                if x == one || x == minus_one {
                    return true;
                }
                for _ in 1..twos {
                    x = x.modpow(&two, candidate);
                    if x == minus_one {
                        return true;
                    }
                }
                false
            })
    }

    /// Every property of a Go 1.23 `rsa.GenerateKey` key, checked with the rsa crate's parser
    /// and bignum and with `openssl rsa -check`, never with AWS-LC.
    fn assert_go_shaped_key(der: &[u8], bits: usize) {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
        let fields = integers(der);
        assert_eq!(fields.len(), 9, "two-prime RSAPrivateKey");
        assert_eq!(fields[0], vec![0], "version 0 (two primes)");
        let [n, e, d, p, q, dp, dq, qinv] = [1, 2, 3, 4, 5, 6, 7, 8].map(|at| big(&fields[at]));
        assert_eq!(n.bits(), bits, "modulus size");
        assert_eq!(e, rsa::BigUint::from(65537u32), "e as Go uses");
        assert_eq!(&p * &q, n, "n = pq");
        assert_ne!(p, q);
        let half = bits / 2;
        for prime in [&p, &q] {
            assert_eq!(prime.bits(), half, "prime size");
            assert!(
                *prime >= rsa::BigUint::from(3u32) << (half - 2),
                "top two bits set as Go's rand.Prime does"
            );
            assert!(
                independently_prime(prime),
                "prime by Miller-Rabin over num-bigint"
            );
        }
        let one = rsa::BigUint::from(1u32);
        let p1 = &p - &one;
        let q1 = &q - &one;
        let phi = &p1 * &q1;
        assert!(d < phi, "d reduced mod (p-1)(q-1)");
        assert_eq!(
            (&d * &e) % &phi,
            one,
            "d = e^-1 mod φ(n), as Go 1.23 computes it"
        );
        assert_eq!(dp, &d % &p1, "dp");
        assert_eq!(dq, &d % &q1, "dq");
        assert!(qinv < p);
        assert_eq!((&qinv * &q) % &p, one, "qinv = q^-1 mod p");

        let parsed = match rsa::RsaPrivateKey::from_pkcs1_der(der) {
            Ok(parsed) => parsed,
            Err(e) => panic!("the rsa crate refuses the key: {e}"),
        };
        if let Err(e) = parsed.validate() {
            panic!("the rsa crate finds the key invalid: {e}");
        }
        assert_eq!(parsed.n(), &n);
        assert_eq!(parsed.d(), &d);
        assert_eq!(parsed.primes(), &[p, q]);
    }

    fn openssl_checks(der: &[u8]) {
        use std::io::Write as _;
        let spawned = std::process::Command::new("openssl")
            .args(["rsa", "-inform", "DER", "-check", "-noout"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => panic!("this test needs the openssl command (apt-get install openssl): {e}"),
        };
        if let Some(mut stdin) = child.stdin.take()
            && let Err(e) = stdin.write_all(der)
        {
            panic!("writing the key to openssl: {e}");
        }
        let output = match child.wait_with_output() {
            Ok(output) => output,
            Err(e) => panic!("running openssl: {e}"),
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("RSA key ok"),
            "openssl rsa -check: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn generated_keys_are_valid_and_shaped_like_go() {
        let sizes = std::iter::repeat_n(2048, 20).chain([3072, 4096, 4096]);
        let mut seen = std::collections::HashSet::new();
        for bits in sizes {
            let key = match generate(bits) {
                Ok(key) => key,
                Err(e) => panic!("generation failed: {e}"),
            };
            assert_go_shaped_key(&key, bits);
            openssl_checks(&key);
            assert!(seen.insert(key), "every key is new");
        }
    }

    /// Guards the checks above: the same key with d reduced modulo λ(n) = lcm(p-1, q-1), as
    /// AWS-LC and OpenSSL compute it, is valid RSA but not what Go writes, and is told apart.
    #[test]
    #[should_panic(expected = "as Go 1.23 computes it")]
    fn a_key_with_d_mod_lambda_is_told_apart() {
        let one = rsa::BigUint::from(1u32);
        let zero = rsa::BigUint::from(0u32);
        // d mod λ equals d for about one key in gcd(p-1, q-1) ≥ 2: try until it differs.
        for _ in 0..40 {
            let key = match generate(2048) {
                Ok(key) => key,
                Err(e) => panic!("generation failed: {e}"),
            };
            let fields = integers(&key);
            let [d, p, q] = [3, 4, 5].map(|at| big(&fields[at]));
            let (p1, q1) = (&p - &one, &q - &one);
            let (mut a, mut b) = (p1.clone(), q1.clone());
            while b != zero {
                (a, b) = (b.clone(), &a % &b);
            }
            let lambda = &p1 * &q1 / &a;
            let d_lambda = &d % &lambda;
            if d_lambda == d {
                continue;
            }
            let mut content = crate::funcs::x509::uint(&[0]);
            for (at, field) in fields.iter().enumerate().skip(1) {
                let magnitude = if at == 3 {
                    d_lambda.to_bytes_be()
                } else {
                    field.clone()
                };
                content.extend(crate::funcs::x509::uint(&magnitude));
            }
            assert_go_shaped_key(&crate::funcs::x509::tlv(0x30, &content), 2048);
        }
        panic!("no key had d mod λ different from d");
    }

    fn percentiles(mut millis: Vec<f64>) -> String {
        millis.sort_by(f64::total_cmp);
        let at = |percent: usize| millis[(millis.len() - 1) * percent / 100];
        format!(
            "p10 {:7.1}  p50 {:7.1}  p90 {:7.1}  max {:7.1} ms",
            at(10),
            at(50),
            at(90),
            at(100)
        )
    }

    fn aws_lc_key(size: aws_lc_rs::rsa::KeySize) {
        if let Err(e) = aws_lc_rs::rsa::KeyPair::generate(size) {
            panic!("aws-lc-rs: {e}");
        }
    }

    /// The generator before session 7: whole AWS-LC key generations raced on every core, the
    /// first finished one taken. The losers are waited for outside the timing, so each
    /// measurement starts on an idle machine (the old pool would have handed a loser's key to
    /// the next request instead).
    fn raced_aws_lc_key(size: aws_lc_rs::rsa::KeySize) -> std::time::Duration {
        let started = std::time::Instant::now();
        let (sender, receiver) = std::sync::mpsc::channel();
        let racers: Vec<_> = (0..parallelism())
            .map(|_| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    aws_lc_key(size);
                    let _ = sender.send(());
                })
            })
            .collect();
        if receiver.recv().is_err() {
            panic!("every racer died");
        }
        let first = started.elapsed();
        for racer in racers {
            if racer.join().is_err() {
                panic!("a racer panicked");
            }
        }
        first
    }

    /// Per-key latency of AWS-LC on one thread, the old race and this generator, measured in
    /// turns so that machine noise hits all three alike. Run by scripts/bench-rsa.
    #[test]
    #[ignore = "benchmark: scripts/bench-rsa"]
    fn bench_key_latency() {
        let keys: usize = std::env::var("RSA_BENCH_KEYS")
            .ok()
            .and_then(|count| count.parse().ok())
            .unwrap_or(40);
        println!("{} cores used", parallelism());
        for (bits, size, count) in [
            (2048, aws_lc_rs::rsa::KeySize::Rsa2048, keys),
            (4096, aws_lc_rs::rsa::KeySize::Rsa4096, keys.div_ceil(4)),
        ] {
            let mut single = Vec::new();
            let mut raced = Vec::new();
            let mut sieved = Vec::new();
            let millis = |elapsed: std::time::Duration| elapsed.as_secs_f64() * 1000.0;
            for _ in 0..count {
                let started = std::time::Instant::now();
                aws_lc_key(size);
                single.push(millis(started.elapsed()));

                raced.push(millis(raced_aws_lc_key(size)));

                // Cold, like a template's first key: no primes left from the last one.
                state_of(&mut lock(), bits).primes.clear();
                let started = std::time::Instant::now();
                if let Err(e) = generate(bits) {
                    panic!("{e}");
                }
                sieved.push(millis(started.elapsed()));
            }
            println!("RSA-{bits}, {count} keys each:");
            println!("  aws-lc-rs, one thread      {}", percentiles(single));
            println!("  aws-lc-rs raced (old)      {}", percentiles(raced));
            println!("  sieved prime search (new)  {}", percentiles(sieved));
        }
    }
}
