//! The value of `tok secret set NAME`: typed at the terminal without echo, or read from stdin,
//! never from argv, into memory that is wiped.

use tokend_protocol::SecretBuf;

use super::Failure;
use crate::Secret;

/// The largest value `tok secret set` accepts (a frame must carry it).
const MAX_SECRET_LEN: usize = 32 * 1024;

/// The terminal's echo, off until this drops (then as it was); `None` where it cannot be read.
#[cfg(unix)]
fn quiet_terminal() -> Option<impl Drop> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    struct Restore(std::fs::File, rustix::termios::Termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(&self.0, OptionalActions::Now, &self.1);
        }
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let saved = tcgetattr(&tty).ok()?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&tty, OptionalActions::Now, &quiet).ok()?;
    Some(Restore(tty, saved))
}

/// Windows: rpassword turns the console's echo off itself.
#[cfg(not(unix))]
fn quiet_terminal() -> Option<()> {
    None
}

/// Reads the value for `tok secret set NAME`: from the terminal without echo, or all of stdin
/// with one trailing line break removed (`echo value | tok secret set NAME`).
pub(super) fn read_secret_value(name: &str) -> Result<Secret, Failure> {
    use std::io::{IsTerminal, Read};
    let value = if std::io::stdin().is_terminal() {
        // rpassword prints the prompt before it turns echo off: what is typed (or pasted) right
        // after the prompt appears would be shown. Echo goes off first.
        let _quiet = quiet_terminal();
        rpassword::prompt_password(format!("tok: value for secret `{name}` (not shown): "))
            .map_err(|err| {
                Failure::Usage(format!("cannot read the value from the terminal: {err}"))
            })?
    } else {
        // Sized up front so the buffer never reallocates and leaves copies behind; wiped on drop.
        let mut bytes = SecretBuf::with_capacity(MAX_SECRET_LEN + 2);
        let mut chunk = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        loop {
            let read = stdin.read(&mut chunk).map_err(|err| {
                Failure::Usage(format!("cannot read the value from stdin: {err}"))
            })?;
            if read == 0 {
                break;
            }
            if bytes.len() + read > MAX_SECRET_LEN + 2 {
                chunk.fill(0);
                return Err(Failure::Usage(format!(
                    "the value on stdin is longer than {} KiB; a secret is one line",
                    MAX_SECRET_LEN / 1024
                )));
            }
            bytes.extend_from_slice(&chunk[..read]);
        }
        chunk.fill(0);
        let mut end = bytes.len();
        if bytes[..end].ends_with(b"\n") {
            end -= 1;
            if bytes[..end].ends_with(b"\r") {
                end -= 1;
            }
        }
        std::str::from_utf8(&bytes[..end])
            .map_err(|_| Failure::Usage("the value on stdin is not UTF-8 text".to_owned()))?
            .to_owned()
    };
    if value.is_empty() {
        return Err(Failure::Usage(format!(
            "no value for secret `{name}`: pipe it in (`… | tok secret set {name}`) or type it \
             at the prompt"
        )));
    }
    Ok(Secret::new(value))
}
