//! Where log lines go and how they look: stderr, filtered by `RUST_LOG`, as text (coloured
//! only on a terminal) or as one JSON object per line (`--log-format json`).

use std::io::IsTerminal as _;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields.
    Json,
}

/// The filter when `RUST_LOG` is not set: the hub's own information, only the warnings of
/// the HTTP and Kubernetes client libraries.
const DEFAULT_FILTER: &str = "info,kube=warn,hyper=warn";

/// Installs the process's log subscriber.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only where a person reads them: never in a file or the journal.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.with_ansi(false).json().flatten_event(true).init(),
    }
}
