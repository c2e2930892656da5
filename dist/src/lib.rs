//! What the Debian package installs besides the binaries, generated from the code so that it
//! cannot drift from it: man pages (`clap_mangen`) and bash, zsh and fish completions
//! (`clap_complete`) from the clap definitions of `tok`, `tokend` and `docker-credential-tok`,
//! and the systemd user units `tok service install` writes, with tokend at `/usr/bin/tokend`.
//!
//! `tokend-dist DIR` writes `DIR/man/*.1`, `DIR/completions/{tok,tokend}.{bash,fish}`,
//! `DIR/completions/_{tok,tokend}` and `DIR/systemd/tokend.{socket,service}`; the
//! `[package.metadata.deb]` table of `daemon/Cargo.toml` takes them from `dist/generated/`
//! (`.ci/run` builds the package).

use std::io;
use std::path::Path;

use clap_complete::Shell;

/// Where the package installs tokend.
pub const INSTALLED_TOKEND: &str = "/usr/bin/tokend";

/// The commands with their man pages and completions.
fn commands() -> Vec<clap::Command> {
    vec![
        tokend_client::cli::command(),
        tokend::cli::command(),
        tokend_client::credential::docker_command(),
    ]
}

/// Writes every generated file under `dir` (created if missing).
///
/// # Errors
/// The I/O error of a write, or a unit that cannot be generated.
pub fn generate(dir: &Path) -> io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    let systemd = dir.join("systemd");
    for sub in [&man, &completions, &systemd] {
        std::fs::create_dir_all(sub)?;
    }
    for command in commands() {
        // One page for the command and one per subcommand (tok-get.1, …).
        clap_mangen::generate_to(command, &man)?;
    }
    for mut command in commands().into_iter().take(2) {
        let name = command.get_name().to_owned();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                Shell::Fish => format!("{name}.fish"),
                _ => format!("{name}.bash"),
            };
            let mut out = std::fs::File::create(completions.join(file))?;
            clap_complete::generate(shell, &mut command, &name, &mut out);
        }
    }
    let units = tokend_client::cli::systemd_user_units(Path::new(INSTALLED_TOKEND))
        .map_err(io::Error::other)?;
    for (name, text) in units {
        std::fs::write(systemd.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_completions_and_units_are_generated() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let read = |path: &str| std::fs::read_to_string(dir.path().join(path)).unwrap();
        let tok = read("man/tok.1");
        assert!(
            tok.starts_with(".ie \\n(.g .ds Aq") || tok.contains(".TH tok 1"),
            "{tok}"
        );
        assert!(tok.contains("Print access tokens held by tokend"), "{tok}");
        assert!(read("man/tok-get.1").contains(".TH tok-get 1"));
        assert!(read("man/tokend.1").contains("\\-\\-config"));
        assert!(read("man/docker-credential-tok.1").contains("credential helper"));
        assert!(read("completions/tok.bash").contains("complete -F"));
        assert!(read("completions/_tok").starts_with("#compdef tok"));
        assert!(read("completions/tokend.fish").contains("complete -c tokend"));
        let service = read("systemd/tokend.service");
        assert!(
            service.contains("\nExecStart=/usr/bin/tokend\n"),
            "{service}"
        );
        assert!(read("systemd/tokend.socket").contains("ListenStream=%t/tokend/tokend.sock"));
    }
}
