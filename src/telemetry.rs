//! Tracing set-up. Security events use the `audit` target (`tracing::info!(target: "audit", …)`),
//! so they can be routed separately, e.g. `RUST_LOG=audit=info,warn`. Secrets are never logged:
//! tokens, codes, passwords and client secrets never appear in a span or event.

use std::io::IsTerminal;

use tracing_subscriber::fmt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored, which tests rely on).
/// `RUST_LOG` wins over `level`.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr so that command output on stdout (e.g. `--json`) stays parseable.
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        // Colour codes only for a terminal; files, pipes and journald get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
