//! What can go wrong with the config file ([`ConfigError`]: one line naming the file, the line
//! and the key, ending with what to do, never a secret value) and what only deserves a warning
//! ([`Warning`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A problem that does not stop the daemon (it logs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line in the config file; `0` when it is about the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// Why the config could not be found or loaded. Messages are one line, name the file (and line
/// and key when there is one) and end with what to do; they never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{path}: cannot read the config file: {source}; check its permissions, \
         or point --config or TOKEND_CONFIG at another file"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path}:{line}: the config file is not valid UTF-8: save it as UTF-8")]
    NotUtf8 { path: PathBuf, line: usize },

    #[error("{path}:{line}: TOML syntax error: {message}: {hint}")]
    Syntax {
        path: PathBuf,
        line: usize,
        /// The TOML parser's description.
        message: String,
        hint: &'static str,
    },

    #[error("{path}:{line}: {problem}{}: {hint}", location(.provider.as_deref(), .key.as_deref()))]
    Invalid {
        /// Boxed: keeps the error small enough to return by value everywhere (on Windows a
        /// `PathBuf` is larger).
        path: Box<Path>,
        line: usize,
        /// The `[providers.NAME]` table, when the problem is inside one.
        provider: Option<String>,
        /// The offending key.
        key: Option<String>,
        problem: String,
        /// What to do about it.
        hint: Box<str>,
    },

    #[error(
        "cannot locate the config file: no home directory found; \
         pass --config PATH or set TOKEND_CONFIG"
    )]
    NoConfigDir,
}

fn location(provider: Option<&str>, key: Option<&str>) -> String {
    match (provider, key) {
        (Some(provider), Some(key)) => format!(" (in [providers.{provider}] key `{key}`)"),
        (Some(provider), None) => format!(" (in [providers.{provider}])"),
        (None, Some(key)) => format!(" (top-level key `{key}`)"),
        (None, None) => String::new(),
    }
}
