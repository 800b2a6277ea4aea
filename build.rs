//! Link the keelson binary as a fixed-address (non-PIE) executable.
//!
//! A position-independent executable makes the dynamic loader apply ~40,000 relocations at
//! every start and copy the pages they touch; `keelson template` on a small chart spent about
//! as long starting as rendering. Library code is unaffected (it stays position-independent).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
