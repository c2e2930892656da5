//! `tokend`: parses arguments, sets up logging and hands over to [`tokend::boot::run`]. Runs in
//! the foreground (what systemd and tests want).
//!
//! Exit codes: 0 stopped cleanly; 1 runtime error (for example an unsafe socket or data
//! directory, or an unusable key file); 2 usage or config error (also: the chosen OS keystore
//! cannot be reached); 3 another tokend already serves this endpoint.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tokend::cli::{Args, LogFormat};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.config_keys {
        let mut stdout = std::io::stdout().lock();
        return match stdout.write_all(tokend::config::key_reference().as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    // `RUST_LOG`: a level, or `target=level` directives separated by commas (`info`,
    // `warn,tokend::audit=info`). tracing-subscriber's `Targets`, not its `EnvFilter`: the
    // regular expressions of span and field filters are a lot of code for a daemon to keep
    // resident, and nobody filters its logs by span field.
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = rust_log
        .as_deref()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // A log line that cannot be written (stderr a closed pipe or terminal) is dropped: the
    // subscriber's own report of that failure would go to stderr too, and fail the same way
    // by panicking the daemon.
    // The builder's own filter lets everything through: `filter` decides.
    let logs = tracing_subscriber::fmt()
        .with_max_level(tracing::level_filters::LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish()
            .with(filter)
            .init(),
        LogFormat::Json => logs.json().finish().with(filter).init(),
    }
    if let Some(directives) = rust_log.filter(|d| d.parse::<Targets>().is_err()) {
        tracing::warn!(
            "RUST_LOG={directives:?} is not a level or target=level list; logging at info"
        );
    }
    let options = tokend::boot::Options {
        config: args.config,
        socket: args.socket,
        notify_ready: args.notify_ready,
        audit: !args.no_audit,
        max_connections: usize::try_from(args.max_connections).ok(),
    };
    match tokend::boot::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::from(err.exit_code())
        }
    }
}
