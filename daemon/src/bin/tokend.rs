//! `tokend`: parses arguments, sets up logging and hands over to [`tokend::boot::run`]. Runs in
//! the foreground (what systemd and tests want).
//!
//! Exit codes: 0 stopped cleanly; 1 runtime error (for example an unsafe socket or data
//! directory, or an unusable key file); 2 usage or config error (also: the chosen OS keystore
//! cannot be reached); 3 another tokend already serves this endpoint.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// tokend: keeps access tokens fresh and hands them to `tok` and the client library.
#[derive(Debug, Parser)]
#[command(name = "tokend", version)]
struct Args {
    /// Config file [default: $TOKEND_CONFIG, else <config dir>/tokend/config.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Socket path [default: $TOKEND_SOCKET, else $XDG_RUNTIME_DIR/tokend/tokend.sock, else
    /// <tmp>/tokend-<uid>/tokend.sock]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print READY on stdout once connections are accepted (used by auto-start)
    #[arg(long)]
    notify_ready: bool,
    /// Turn off the audit trail. It is on by default: the first token a program (uid,
    /// executable) gets from a provider is logged at once, then once a minute the counts per
    /// program and provider (hits, misses, errors, pids); never a token
    #[arg(long)]
    no_audit: bool,
    /// The audit trail is on by default; accepted so that older command lines keep working
    #[arg(long, hide = true, conflicts_with = "no_audit")]
    audit: bool,
    /// Log line format on stderr: `text` for people, `json` (one object per line) for collectors
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    log_format: LogFormat,
    /// Most client connections served at once; at the cap the idlest one makes room for a new
    /// client
    #[arg(long, value_name = "N", default_value_t = tokend::server::MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Print the reference of every config key (Markdown) and exit
    #[arg(long)]
    config_keys: bool,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

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
    let logs = tracing_subscriber::fmt()
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
