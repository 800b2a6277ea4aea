//! Sets up tracing output for the binary: `-v` levels, `RUST_LOG`, text or JSON lines on stderr.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` wins over `-v`; without either only warnings and
/// errors are printed, so command output stays clean for scripts.
pub fn init(verbosity: u8, format: LogFormat) {
    let default_level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        // kube warns on every connection to a cluster with insecure-skip-tls-verify; the
        // kubeconfig asked for that, so it is not worth a line per command.
        .unwrap_or_else(|_| {
            EnvFilter::new(format!(
                "keelson={default_level},kube_client::client::tls=error,warn"
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (tests) is harmless: keep whichever subscriber came first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
