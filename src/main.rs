use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() -> ExitCode {
    // Errors are printed as their chain of messages, never with a backtrace, yet anyhow
    // captures one for every error when RUST_BACKTRACE is set (as it often is, for panics):
    // the first capture of a static build sorts the whole unwind table (~10 ms). Panics still
    // follow RUST_BACKTRACE; RUST_LIB_BACKTRACE, when set, still decides for errors.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let code = keelson::cli::main();
    end_process(code)
}

/// Ends the process without running C libraries' exit-time destructors. Helper threads may
/// still be working when the command is done (a parse or speculative-execution helper that
/// found nothing left, a prime search on another core); when key generation ran in the
/// background, AWS-LC's destructor once locked every thread's random state for good and the
/// generating thread aborted the whole process (exit status 134 after correct output, seen 1
/// run in 30). Only buffered standard output needs flushing first; nothing of keelson's runs
/// at exit.
fn end_process(code: ExitCode) -> ExitCode {
    use std::io::Write;
    // As at a normal exit, a failed flush of what is left does not change the status.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let status = if code == ExitCode::SUCCESS { 0 } else { 1 };
    // SAFETY: _exit ends the process at once; no Rust state is observed afterwards.
    unsafe { libc::_exit(status) }
}

/// `keelson template` allocates with mimalloc; every other command, the controller above all,
/// with the system allocator.
///
/// A render makes many small, short-lived allocations (tokens, YAML nodes, template values),
/// and glibc's malloc/free took about a fifth of its instructions; mimalloc took vault/default
/// from 52M to 42M. A long-running controller is the opposite case: under mimalloc an idle
/// `keelson run` over 1,000 releases held 85 MiB against 42 MiB with glibc limited to two
/// arenas (benches/controller.rs). See docs/dependencies.md.
struct CommandAllocator;

/// Chosen once, before `main` and before any Rust code allocates, so every block is freed by
/// the allocator that made it.
static USE_MIMALLOC: AtomicBool = AtomicBool::new(false);

#[global_allocator]
static ALLOCATOR: CommandAllocator = CommandAllocator;

// SAFETY: each call goes to one of two allocators that uphold GlobalAlloc's contract, and the
// choice between them never changes after the first allocation (see `choose_allocator`).
unsafe impl GlobalAlloc for CommandAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            // SAFETY: `ptr` came from the same allocator (the choice never changes).
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        } else {
            // SAFETY: `ptr` came from the same allocator (the choice never changes).
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            // SAFETY: `ptr` came from the same allocator (the choice never changes).
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        } else {
            // SAFETY: `ptr` came from the same allocator (the choice never changes).
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

/// glibc calls the executable's `.init_array` functions with argc and argv before `main` (std
/// reads its arguments the same way); no Rust code has allocated yet. Elsewhere (musl, other
/// systems) the system allocator stays.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[unsafe(link_section = ".init_array")]
static CHOOSE_ALLOCATOR: extern "C" fn(
    libc::c_int,
    *const *const libc::c_char,
    *const *const libc::c_char,
) = choose_allocator;

/// `mi_option_arena_reserve` of mimalloc v3's `mi_option_e` (mimalloc.h), in KiB. The
/// `mimalloc` crate declares only options up to 21, so this one is declared here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MI_OPTION_ARENA_RESERVE: libc::c_int = 23;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn mi_option_set(option: libc::c_int, value: libc::c_long);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" fn choose_allocator(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    _envp: *const *const libc::c_char,
) {
    if argc < 2 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes the process's own argv, `argc` entries long, to init_array
    // functions; the entries are NUL-terminated strings that live for the whole process.
    let first = unsafe { *argv.add(1) };
    if first.is_null() {
        return;
    }
    // SAFETY: as above.
    let first = unsafe { std::ffi::CStr::from_ptr(first) };
    // The same test as the command line's fast path for `template`.
    if first.to_bytes() == b"template" {
        USE_MIMALLOC.store(true, Ordering::Relaxed);
        // mimalloc asks for transparent huge pages, and the kernel then zeroes 2 MiB at each
        // first touch of a region. Measured side by side (docs/renderer.md, "Huge pages"),
        // every corpus chart renders as fast or faster without them since session 8 (argo-cd
        // 0.68x the time, keda 0.78x, postgresql 0.91x).
        // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag of this process.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        // mimalloc reserves its first arena at 1 GiB and writes that arena's bitmaps at start:
        // 38 fresh pages of a small chart's 346 (~0.15 ms). A render that needs more than
        // 32 MiB gets further arenas.
        // SAFETY: mi_option_set only stores an option value; mimalloc reads it when it
        // reserves an arena, which happens at its first allocation, after this function.
        unsafe { mi_option_set(MI_OPTION_ARENA_RESERVE, 32 * 1024) };
    }
}
