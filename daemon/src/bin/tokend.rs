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
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.config_keys {
        let mut stdout = std::io::stdout().lock();
        return match stdout.write_all(tokend::config::key_reference().as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A log line that cannot be written (stderr a closed pipe or terminal) is dropped: the
    // subscriber's own report of that failure would go to stderr too, and fail the same way
    // by panicking the daemon.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    let options = tokend::boot::Options {
        config: args.config,
        socket: args.socket,
        notify_ready: args.notify_ready,
        audit: args.audit,
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
