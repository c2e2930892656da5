//! The fast path of `tok get NAME` and `tok header NAME`: the command lines scripts run most,
//! parsed without clap. Building clap's whole command tree grows with every subcommand and cost
//! more than the rest of such a run (measured); the tests pin that both parse these lines the
//! same.

use std::ffi::OsString;

use super::args::{Cli, Command};

/// `tok get NAME` or `tok header NAME` with no option, as clap would parse it; `None` for any
/// other command line, including a NAME that could be an option: clap parses those.
pub(super) fn fast_parse(args: &[OsString]) -> Option<Cli> {
    let [_, command, name] = args else {
        return None;
    };
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
        socket: None,
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
            ["tok", "get", "crm"],
            ["tok", "header", "crm.com"],
            ["tok", "get", "a_b-c"],
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
            vec!["tok", "--socket", "/s", "get", "crm"],
            vec!["tok", "get", "-h"],
            vec!["tok", "get", ""],
        ] {
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            assert!(fast_parse(&args).is_none(), "{line:?}");
        }
    }
}
