//! Running one parsed `tok` command against the daemon: [`execute`] calls the client, prints the
//! requested value on stdout (formatted by [`super::output`]) and notes on stderr; `tok login`'s
//! conversation is [`login`].

use std::io::Write;
use std::time::Duration;

use clap::CommandFactory;

use super::Failure;
use super::args::{Cli, Command, SecretCommand};
use super::output::{
    exec_credential, status_json, token_json, write_secret_list, write_status_table,
};
use super::secret_input::read_secret_value;
use crate::error::exit;
use crate::timefmt::{human, rfc3339};
use crate::{Client, GetOptions};
use crate::{credential, service, shell, supervise};

/// Runs one command; `Ok` holds the exit code (always 0, except the program's for exec and curl).
pub(super) fn execute(
    client: &mut Client,
    command: Command,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<u8, Failure> {
    match command {
        Command::Get {
            name,
            min_ttl,
            json,
            id_token,
        } => {
            let options = GetOptions { min_ttl };
            let token = if id_token {
                shell::fetch_id_token(client, &name, &options)?
            } else {
                shell::fetch(client, &name, &options)?
            };
            if json {
                writeln!(out, "{}", token_json(&token))?;
            } else {
                writeln!(out, "{}", token.value.expose())?;
            }
        }
        Command::Header { name, min_ttl } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            // Anonymous providers have no header: print nothing and succeed.
            if let Some(header) = &token.header {
                writeln!(out, "{}", header.line().expose())?;
            }
        }
        Command::Status { json } => {
            let status = client.status()?;
            if json {
                writeln!(out, "{}", status_json(&status))?;
            } else {
                write_status_table(&status, out)?;
            }
        }
        Command::Ping => {
            let info = client.ping()?;
            writeln!(
                out,
                "tokend {} (protocol {}), pid {}, up {}, at {}",
                info.daemon_version,
                info.protocol,
                info.pid,
                human(Duration::from_secs(info.uptime_secs)),
                client.endpoint()
            )?;
        }
        Command::Invalidate { name } => {
            let outcome = client.invalidate(&name)?;
            // Nothing on stdout: the outcome is a diagnostic.
            if !outcome.dropped {
                return Err(Failure::Note(outcome.message));
            }
        }
        Command::Metrics => write!(out, "{}", client.metrics()?)?,
        Command::ProxyUrl { name } => writeln!(out, "{}", client.proxy_url(&name)?.expose())?,
        Command::Secret(SecretCommand::Set { name }) => {
            let value = read_secret_value(&name)?;
            let entry = client.secret_set(&name, value)?;
            return Err(Failure::Note(format!("secret `{}` set", entry.name)));
        }
        Command::Secret(SecretCommand::List { json }) => {
            write_secret_list(&client.secret_list()?, json, out)?;
        }
        Command::Secret(SecretCommand::Rm { name }) => {
            let entry = client.secret_remove(&name)?;
            return Err(Failure::Note(format!("secret `{}` removed", entry.name)));
        }
        Command::Reload => {
            let summary = client.reload()?;
            // Nothing on stdout: what changed is a diagnostic.
            let list = |names: &[String]| {
                if names.is_empty() {
                    "-".to_owned()
                } else {
                    names.join(", ")
                }
            };
            return Err(Failure::Note(format!(
                "reloaded: added {}; changed {}; removed {}; unchanged (tokens kept) {}",
                list(&summary.added),
                list(&summary.changed),
                list(&summary.removed),
                list(&summary.kept)
            )));
        }
        Command::Stop => client.shutdown()?,
        Command::Env { name, var, min_ttl } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            let var = var.unwrap_or_else(|| tokend_protocol::token_var(&name));
            out.write_all(shell::export_line(&var, &token.value).expose().as_bytes())?;
        }
        Command::Exec {
            names,
            var,
            min_ttl,
            restart_on_change,
            signal,
            grace,
            command,
        } => {
            let wanted = supervise::assign_vars(&names, &var).map_err(Failure::Usage)?;
            let on_change = match (restart_on_change, signal) {
                (true, _) => supervise::OnChange::Restart { grace },
                (false, Some(signal)) => supervise::OnChange::Signal(signal),
                (false, None) => supervise::OnChange::Nothing,
            };
            let (program, args) = command.split_first().expect("clap requires PROGRAM");
            let plan = supervise::Plan {
                wanted,
                min_ttl,
                on_change,
                program: program.clone(),
                args: args.to_vec(),
            };
            return match supervise::run(client, &plan) {
                Ok(code) => Ok(code),
                Err(supervise::ExecError::Token(err)) => Err(Failure::Client(err)),
                Err(supervise::ExecError::Run(err)) => Err(Failure::Run(err)),
            };
        }
        Command::Curl {
            name,
            min_ttl,
            args,
        } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            client.disconnect();
            return Ok(shell::curl(&token, &args)?);
        }
        Command::Kube {
            name,
            min_ttl,
            id_token,
        } => {
            let options = GetOptions { min_ttl };
            let token = if id_token {
                shell::fetch_id_token(client, &name, &options)?
            } else {
                shell::fetch(client, &name, &options)?
            };
            writeln!(out, "{}", exec_credential(&token))?;
        }
        Command::Rotate { name } => {
            let outcome = client.rotate(&name)?;
            let next = outcome
                .next_rotation_unix
                .map(|at| format!("; the next rotation is due at {}", rfc3339(at)))
                .unwrap_or_default();
            return Err(Failure::Note(format!(
                "provider `{name}`: the key was replaced at {} and the new one is in force{next}",
                rfc3339(outcome.rotated_at_unix)
            )));
        }
        Command::Login { name, no_browser } => login(client, &name, no_browser, notes)?,
        Command::Logout { name } => {
            let outcome = client.logout(&name)?;
            let _ = writeln!(notes, "tok: {}", outcome.message);
        }
        Command::Service { action } => {
            if let Err(err) = service::run(action, out, notes) {
                return Err(Failure::Run(shell::RunError {
                    message: err.message,
                    code: err.code,
                }));
            }
        }
        Command::GitCredential { action } => {
            credential::git(client, action, &mut std::io::stdin().lock(), out)?;
        }
        Command::Completions { shell: target } => {
            shell::completions(target, &mut Cli::command(), out);
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

/// `tok login NAME`: start the login, show the person what to do, wait for the outcome.
fn login(
    client: &mut Client,
    name: &str,
    no_browser: bool,
    notes: &mut dyn Write,
) -> Result<(), Failure> {
    let prompt = client.login(name)?;
    match &prompt.user_code {
        Some(code) => writeln!(
            notes,
            "tok: to log in to {name}, open {} and enter the code {code}",
            prompt.url
        )?,
        None => writeln!(
            notes,
            "tok: to log in to {name}, open this URL in a browser:\n\n    {}\n",
            prompt.url
        )?,
    }
    if !no_browser {
        match shell::open_browser(&prompt.url) {
            Ok(program) => writeln!(notes, "tok: opened it with {program}")?,
            Err(reason) => writeln!(notes, "tok: {reason}; open it yourself")?,
        }
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        writeln!(
            notes,
            "tok: waiting for the login to complete (up to {})…",
            human(Duration::from_secs(prompt.expires_in_secs))
        )?;
    }
    // A little longer than the daemon's own limit, so the daemon's message wins.
    let wait = Duration::from_secs(prompt.expires_in_secs.saturating_add(30));
    let outcome = client.await_login(name, wait)?;
    let expiry = outcome
        .expires_at_unix
        .map(|at| format!("; the access token expires at {}", rfc3339(at)))
        .unwrap_or_default();
    writeln!(notes, "tok: logged in to {name}{expiry}")?;
    if !outcome.refreshable {
        writeln!(
            notes,
            "tok: the server issued no refresh token, so the session ends when this token \
             expires (ask for offline access, e.g. the offline_access scope)"
        )?;
    }
    Ok(())
}
