//! The command line of `tokend`: its clap definition, here in the library so that the man page
//! and shell completions of the Debian package are generated from the same definition
//! (`tokend-dist`). The binary parses it and hands over to [`crate::boot::run`].

use std::path::PathBuf;

use clap::Parser;

/// tokend: keeps access tokens fresh and hands them to `tok` and the client library.
#[derive(Debug, Parser)]
#[command(name = "tokend", version)]
pub struct Args {
    /// Config file [default: $TOKEND_CONFIG, else <config dir>/tokend/config.toml]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Socket path, or pipe name on Windows [default: $TOKEND_SOCKET, else
    /// $XDG_RUNTIME_DIR/tokend/tokend.sock, else <tmp>/tokend-<uid>/tokend.sock; Windows:
    /// tokend-<user>]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print READY on stdout once connections are accepted (used by auto-start)
    #[arg(long)]
    pub notify_ready: bool,
    /// Turn off the audit trail. It is on by default: the first token a program (uid,
    /// executable) gets from a provider is logged at once, then once a minute the counts per
    /// program and provider (hits, misses, errors, pids); never a token
    #[arg(long)]
    pub no_audit: bool,
    /// The audit trail is on by default; accepted so that older command lines keep working
    #[arg(long, hide = true, conflicts_with = "no_audit")]
    pub audit: bool,
    /// Log line format on stderr: `text` for people, `json` (one object per line) for collectors
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Most client connections served at once; at the cap the idlest one makes room for a new
    /// client
    #[arg(long, value_name = "N", default_value_t = crate::server::MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Print the reference of every config key (Markdown) and exit
    #[arg(long)]
    pub config_keys: bool,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The clap command of `tokend` (for the man page and completions).
#[must_use]
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::command().debug_assert();
    }
}
