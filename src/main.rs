use std::process::ExitCode;

fn main() -> ExitCode {
    keelson::cli::main()
}
