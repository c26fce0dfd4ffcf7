//! Where log lines go and how they look: stderr, filtered by `RUST_LOG`, as text (coloured
//! only on a terminal) or as one JSON object per line (`--log-format json`).
//!
//! `RUST_LOG` takes a default level and per-target levels (`info,kube=warn,faros=debug`).
//! Span and field filters are not supported: their parser needs regular expressions, which
//! would otherwise be the only ones in the device agent's binary.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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
    let requested = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let (filter, refused) = match requested.as_deref().map(str::parse::<Targets>) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (default_filter(), Some(e)),
        None => (default_filter(), None),
    };
    subscriber(format, filter, std::io::stderr().is_terminal()).init();
    if let Some(e) = refused {
        tracing::warn!(error = %e, "RUST_LOG is not a list of [target=]level directives; logging at {DEFAULT_FILTER}");
    }
}

/// Lines in `format` on stderr, with colour codes only when `ansi` (a person reads them:
/// never in a file or the journal), filtered by `filter` alone.
fn subscriber(format: LogFormat, filter: Targets, ansi: bool) -> Box<dyn tracing::Subscriber + Send + Sync> {
    // The formatter's own level cap (INFO unless told otherwise) would keep `RUST_LOG` from
    // turning on debug lines: the filter decides.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::level_filters::LevelFilter::TRACE);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish().with(filter)),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .json()
                .flatten_event(true)
                .finish()
                .with(filter),
        ),
    }
}

fn default_filter() -> Targets {
    DEFAULT_FILTER.parse().expect("the default filter parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    use tracing::Level;

    #[test]
    fn filters_take_levels_per_target() {
        let filter = default_filter();
        assert!(filter.would_enable("faros_hub", &Level::INFO));
        assert!(!filter.would_enable("faros_hub", &Level::DEBUG));
        assert!(!filter.would_enable("kube_client::client", &Level::INFO));
        assert!(filter.would_enable("hyper::proto", &Level::WARN));
        let custom: Targets = "warn,edge_agent=debug".parse().unwrap();
        assert!(custom.would_enable("edge_agent::tunnel", &Level::DEBUG));
        assert!(!custom.would_enable("kube", &Level::INFO));
        assert!("kube=nonsense".parse::<Targets>().is_err());
    }

    #[test]
    fn the_filter_alone_decides_what_is_logged() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let filter: Targets = "warn,edge_agent=trace".parse().unwrap();
            tracing::subscriber::with_default(subscriber(format, filter, false), || {
                assert!(tracing::enabled!(target: "edge_agent::tunnel", Level::TRACE));
                assert!(tracing::enabled!(target: "edge_agent", Level::DEBUG));
                assert!(!tracing::enabled!(target: "faros_storage", Level::INFO));
                assert!(tracing::enabled!(target: "faros_storage", Level::WARN));
            });
        }
    }
}
