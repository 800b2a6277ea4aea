//! Prints the chart the differential test (tests/differential.rs) generates from a seed,
//! without rendering it; with a directory, writes the chart there too, ready for
//! `helm template rel DIR -n demo` and `keelson template rel DIR -n demo`.
//!
//! Usage: `cargo run --example differential_chart -- SEED [DIR]`

#[path = "../tests/differential/generator.rs"]
mod generator;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(seed) = args
        .first()
        .and_then(|text| text.trim().parse::<u64>().ok())
    else {
        eprintln!("usage: cargo run --example differential_chart -- SEED [DIR]");
        return ExitCode::from(2);
    };
    let chart = generator::generate(seed);
    println!("{}", chart.listing());
    if let Some(dir) = args.get(1) {
        if let Err(err) = chart.write(std::path::Path::new(dir)) {
            eprintln!("cannot write the chart of seed {seed} to {dir}: {err}");
            return ExitCode::FAILURE;
        }
        eprintln!("seed {seed} written to {dir}");
    }
    ExitCode::SUCCESS
}
