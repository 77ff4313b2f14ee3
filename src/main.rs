//! The `latchkey` binary: parse the command line, load settings, start telemetry, run.

use clap::Parser;

use latchkey::cli::{self, Cli};
use latchkey::config::Settings;
use latchkey::telemetry;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // `.env` only fills variables that are not set already; loaded first so that it can also
    // name the configuration file (LATCHKEY_CONFIG).
    let _ = dotenvy::dotenv();
    let args = Cli::parse();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log_level, settings.log_format);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    match cli::run(args.command, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("latchkey: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
