//! `${cmd:…}`: running a command without a shell, stdin closed, killed after its timeout or once
//! it prints more than a secret could be; its trimmed stdout is the value, and the first line of
//! its stderr (bounded, control characters replaced) goes into the error when it fails.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{CmdRef, ResolveError};

/// How long a `${cmd:…}` may run before it is killed.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Most output a `${cmd:…}` may print: a secret is small; more means the wrong command (it is
/// killed at this point, so a runaway command cannot fill the daemon's memory).
pub const MAX_CMD_OUTPUT: usize = 64 * 1024;

/// How much of a command's stderr is kept (for the first line in an error); the rest is read
/// and dropped, so a chatty command never blocks on a full pipe.
const MAX_CMD_STDERR: usize = 4 * 1024;

/// How much of a failed command's first stderr line goes into the error.
const STDERR_EXCERPT_CHARS: usize = 200;

pub(super) async fn run_command(
    cmd: &CmdRef,
    timeout: Duration,
) -> Result<Zeroizing<String>, ResolveError> {
    use tokio::io::AsyncReadExt as _;
    let program = || cmd.program.clone();
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // On timeout or overflow the future (and the child with it) is dropped: this kills the
        // process.
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ResolveError::CmdSpawn {
            program: program(),
            source,
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ResolveError::CmdWait {
            program: program(),
            source: io::Error::other("no output pipes"),
        });
    };
    let run = async {
        // stdout up to one byte over the limit (that byte says it overflowed); stderr: the
        // first few KiB kept, the rest drained so the command never blocks on it.
        let mut output = Zeroizing::new(Vec::new());
        let read_stdout = async {
            stdout
                .take(MAX_CMD_OUTPUT as u64 + 1)
                .read_to_end(&mut output)
                .await
        };
        let read_stderr = async {
            let mut kept = Vec::new();
            let mut stderr = stderr;
            let mut chunk = [0u8; 1024];
            loop {
                match stderr.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        let room = MAX_CMD_STDERR.saturating_sub(kept.len());
                        kept.extend_from_slice(&chunk[..read.min(room)]);
                    }
                }
            }
            kept
        };
        let (read, errors) = tokio::join!(read_stdout, read_stderr);
        read.map_err(|source| ResolveError::CmdWait {
            program: program(),
            source,
        })?;
        if output.len() > MAX_CMD_OUTPUT {
            return Err(ResolveError::CmdOutputTooLarge {
                program: program(),
                limit: MAX_CMD_OUTPUT,
            });
        }
        let status = child.wait().await.map_err(|source| ResolveError::CmdWait {
            program: program(),
            source,
        })?;
        Ok((status, output, errors))
    };
    let (status, stdout, stderr) = match tokio::time::timeout(timeout, run).await {
        Err(_elapsed) => {
            return Err(ResolveError::CmdTimeout {
                program: program(),
                timeout,
            });
        }
        Ok(result) => result?,
    };
    if !status.success() {
        return Err(ResolveError::CmdFailed {
            program: program(),
            status,
            stderr: stderr_excerpt(&stderr),
        });
    }
    let text = std::str::from_utf8(&stdout)
        .map_err(|_| ResolveError::CmdOutputNotUtf8 { program: program() })?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// The first non-empty stderr line, trimmed, cut to 200 characters, control characters replaced
/// (it ends up in logs and on the client's terminal).
fn stderr_excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    let mut excerpt: String = line
        .chars()
        .take(STDERR_EXCERPT_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if line.chars().count() > STDERR_EXCERPT_CHARS {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::super::test_support::resolve_test;
    #[cfg(unix)]
    use super::super::test_support::{no_env, no_secrets};
    #[cfg(unix)]
    use super::super::{Resolver, SecretTemplate};
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_stdout_trimmed() {
        let secret = resolve_test("${cmd:printf %s abc}").await.unwrap();
        assert_eq!(secret.expose(), "abc");
        let secret = resolve_test("${cmd:printf '  padded\\n'}").await.unwrap();
        assert_eq!(secret.expose(), "padded");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_nonzero_exit() {
        let error = resolve_test("${cmd:sh -c \"echo 'bad thing happened' >&2; exit 3\"}")
            .await
            .unwrap_err();
        let ResolveError::CmdFailed {
            program,
            status,
            stderr,
        } = &error
        else {
            panic!("expected CmdFailed: {error}");
        };
        assert_eq!(program, "sh");
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr, "bad thing happened");
        let message = error.to_string();
        assert!(
            message.contains("`sh`") && message.contains("bad thing happened"),
            "{message}"
        );

        let error = resolve_test("${cmd:sh -c \"exit 3\"}").await.unwrap_err();
        assert!(error.to_string().contains("no error output"), "{error}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_timeout() {
        let template = SecretTemplate::parse("${cmd:sleep 5}").unwrap();
        let started = std::time::Instant::now();
        let error = template
            .resolve(&Resolver::with(
                no_env,
                no_secrets,
                Duration::from_millis(200),
            ))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(matches!(error, ResolveError::CmdTimeout { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("`sleep`") && message.contains("200ms"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn resolve_cmd_missing_program() {
        let error = resolve_test("${cmd:tokend-no-such-program-xyz --flag}")
            .await
            .unwrap_err();
        assert!(matches!(error, ResolveError::CmdSpawn { .. }), "{error}");
        assert!(
            error.to_string().contains("tokend-no-such-program-xyz"),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_output_not_utf8() {
        let error = resolve_test("${cmd:printf '\\377'}").await.unwrap_err();
        assert!(
            matches!(error, ResolveError::CmdOutputNotUtf8 { .. }),
            "{error}"
        );
    }

    #[test]
    fn stderr_excerpt_is_first_line_truncated_and_clean() {
        assert_eq!(stderr_excerpt(b"\n  first\nsecond\n"), "first");
        let long = "x".repeat(300);
        let excerpt = stderr_excerpt(long.as_bytes());
        assert_eq!(excerpt.chars().count(), STDERR_EXCERPT_CHARS + 1);
        assert!(excerpt.ends_with('…'));
        assert_eq!(stderr_excerpt(b"a\x1b[31mb"), "a?[31mb");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_command_printing_too_much_is_killed() {
        // 400 MB unless stopped: the daemon must not buffer it.
        let template = SecretTemplate::parse("${cmd:head -c 400000000 /dev/zero}").unwrap();
        let started = std::time::Instant::now();
        let error = template
            .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(error, ResolveError::CmdOutputTooLarge { limit, .. } if limit == MAX_CMD_OUTPUT),
            "{error}"
        );
        // Endless stderr does not block it either: the token still arrives.
        let template =
            SecretTemplate::parse("${cmd:sh -c 'head -c 1000000 /dev/zero >&2; echo tok3n'}")
                .unwrap();
        let value = template
            .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(value.expose(), "tok3n");
    }
}
