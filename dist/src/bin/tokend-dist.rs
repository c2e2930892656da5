//! `tokend-dist DIR`: writes the Debian package's generated files into DIR; see
//! [`tokend_dist`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: tokend-dist DIR (writes man/, completions/ and systemd/ into DIR)");
        return ExitCode::from(2);
    };
    match tokend_dist::generate(std::path::Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "tokend-dist: cannot write into {}: {err}",
                dir.to_string_lossy()
            );
            ExitCode::from(1)
        }
    }
}
