//! Sets up tracing output for the binary: `-v` levels, `RUST_LOG`, text or JSON lines on stderr.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let level = match verbosity {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    // Only a set RUST_LOG needs EnvFilter: building one from a directive string cost about
    // 80 µs at every start (it compiles matchers), as much as `keelson template` spends
    // rendering a small chart's values. An invalid RUST_LOG falls back to the defaults.
    let from_env =
        std::env::var_os("RUST_LOG").and_then(|_| EnvFilter::try_from_default_env().ok());
    let defaults = from_env.is_none().then(|| {
        Targets::new()
            .with_target("keelson", level)
            // kube warns on every connection to a cluster with insecure-skip-tls-verify; the
            // kubeconfig asked for that, so it is not worth a line per command.
            .with_target("kube_client::client::tls", LevelFilter::ERROR)
            .with_default(LevelFilter::WARN)
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    // A second init (tests) is harmless: keep whichever subscriber came first.
    let _ = tracing_subscriber::registry()
        .with(from_env)
        .with(defaults)
        .with(text)
        .with(json)
        .try_init();
}
