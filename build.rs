//! Link the keelson binary as a fixed-address (non-PIE) executable, with the code a render runs
//! packed together.
//!
//! A position-independent executable makes the dynamic loader apply ~40,000 relocations at
//! every start and copy the pages they touch; `keelson template` on a small chart spent about
//! as long starting as rendering. Library code is unaffected (it stays position-independent).
//!
//! `scripts/symbol-order.txt` lists the functions `keelson template` runs (written by
//! `scripts/symbol-order`); lld places them first, so a start faults in a third as many code
//! pages. Rust links x86_64 Linux executables with lld; another linker would not know the
//! option, so `KEELSON_NO_SYMBOL_ORDER=1` leaves it out.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=scripts/symbol-order.txt");
    println!("cargo:rerun-if-env-changed=KEELSON_NO_SYMBOL_ORDER");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    let order = std::path::Path::new("scripts/symbol-order.txt");
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && std::env::var_os("KEELSON_NO_SYMBOL_ORDER").is_none()
        && order.is_file()
    {
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let path = std::path::Path::new(&manifest_dir).join(order);
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            path.display()
        );
        // Functions renamed since the list was written are skipped without a word.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
