use std::process::ExitCode;

// The renderer allocates many small, short-lived values (tokens, YAML nodes, template values);
// glibc's malloc spent about a fifth of a `keelson template` process on them. See
// docs/dependencies.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keelson::cli::main()
}
