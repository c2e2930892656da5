//! The fast path of `tok get NAME` and `tok header NAME`: the command lines scripts run most,
//! parsed without clap. Building clap's whole command tree grows with every subcommand and cost
//! more than the rest of such a run (measured); the tests pin that both parse these lines the
//! same.

use std::ffi::OsString;

use super::args::{Cli, Command};

/// `tok get NAME` or `tok header NAME` with no option but a leading `--socket PATH` (or
/// `--socket=PATH`), as clap would parse it; `None` for any other command line, including a
/// NAME or PATH that could be an option: clap parses those.
pub(super) fn fast_parse(args: &[OsString]) -> Option<Cli> {
    let (socket, command, name) = match args {
        [_, command, name] => (None, command, name),
        [_, flag, path, command, name] if flag == "--socket" => (Some(path.clone()), command, name),
        [_, flag, command, name] => {
            let path = flag.to_str()?.strip_prefix("--socket=")?;
            (Some(OsString::from(path)), command, name)
        }
        _ => return None,
    };
    if socket
        .as_ref()
        .is_some_and(|path| path.is_empty() || path.to_str().is_none_or(|p| p.starts_with('-')))
    {
        return None;
    }
    let name = name.to_str()?;
    if name.is_empty() || name.starts_with('-') {
        return None;
    }
    let min_ttl = crate::DEFAULT_MIN_TTL;
    let command = match command.to_str()? {
        "get" => Command::Get {
            name: name.to_owned(),
            min_ttl,
            json: false,
            id_token: false,
        },
        "header" => Command::Header {
            name: name.to_owned(),
            min_ttl,
        },
        _ => return None,
    };
    Some(Cli {
        socket: socket.map(std::path::PathBuf::from),
        command,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_fast_path_parses_like_clap() {
        for line in [
            vec!["tok", "get", "crm"],
            vec!["tok", "header", "crm.com"],
            vec!["tok", "get", "a_b-c"],
            vec!["tok", "--socket", "/run/t.sock", "get", "crm"],
            vec!["tok", "--socket=/run/t.sock", "header", "crm"],
        ] {
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            let fast = fast_parse(&args).expect("fast path");
            let clap = Cli::try_parse_from(&args).expect("clap");
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line:?}");
        }
        for line in [
            vec!["tok", "get", "--json"],
            vec!["tok", "get", "crm", "--json"],
            vec!["tok", "status", "x"],
            vec!["tok", "--socket", "-s", "get", "crm"],
            vec!["tok", "--socket=", "get", "crm"],
            vec!["tok", "--sock", "/s", "get", "crm"],
            vec!["tok", "get", "crm", "--socket", "/s"],
            vec!["tok", "get", "-h"],
            vec!["tok", "get", ""],
        ] {
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            assert!(fast_parse(&args).is_none(), "{line:?}");
        }
    }
}
