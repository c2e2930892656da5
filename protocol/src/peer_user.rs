//! The same-user rule of a Windows named pipe, applied by both ends: the daemon to each client
//! (its pid from `GetNamedPipeClientProcessId`) and the client to the pipe's server (its pid from
//! `GetNamedPipeServerProcessId`) before it sends anything. It is the Windows counterpart of the
//! peer-uid check (`SO_PEERCRED`) on Unix; the pipe's DACL, which grants only this user, is the
//! first wall.
//!
//! [`judge`] is the rule itself, platform-independent so its refusals are tested everywhere;
//! `check_process` (Windows) feeds it the SIDs of this process and of the peer.

use std::io;

/// Whether the process `pid`, the pipe's `role` (`"client"` or `"server"`), runs as this user.
/// `mine` is this process's user SID; `theirs` the peer's, or why it could not be read.
///
/// # Errors
/// Why the peer is refused (its user is another, or cannot be told), for a log line or an
/// error message. Never a secret: SIDs and pids only.
pub fn judge(role: &str, pid: u32, mine: &str, theirs: io::Result<String>) -> Result<(), String> {
    match theirs {
        Ok(theirs) if theirs == mine => Ok(()),
        Ok(theirs) => Err(format!(
            "the pipe's {role} (pid {pid}) runs as user {theirs}, not as this user ({mine})"
        )),
        // A process of another user may not be opened at all; one that exited cannot be either.
        // Either way nobody can vouch for it.
        Err(err) => Err(format!(
            "cannot tell which user runs the pipe's {role} (pid {pid}): {err}"
        )),
    }
}

/// [`judge`] applied to the live process `pid`.
///
/// # Errors
/// As [`judge`], and when this process's own user cannot be read.
#[cfg(windows)]
pub fn check_process(role: &str, pid: u32) -> Result<(), String> {
    let mine = crate::win32::current_user_sid()
        .map_err(|err| format!("cannot read this process's own user: {err}"))?;
    judge(role, pid, &mine, crate::win32::process_user_sid(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "S-1-5-21-1-2-3-1000";

    #[test]
    fn the_same_user_passes() {
        assert_eq!(judge("server", 8, ME, Ok(ME.to_owned())), Ok(()));
    }

    #[test]
    fn another_user_is_refused_with_both_sids() {
        let err = judge("server", 8, ME, Ok("S-1-5-21-1-2-3-1001".to_owned())).unwrap_err();
        assert!(
            err.contains("pid 8") && err.contains("S-1-5-21-1-2-3-1001"),
            "{err}"
        );
        assert!(err.contains(ME), "{err}");
    }

    #[test]
    fn a_process_that_cannot_be_inspected_is_refused() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let err = judge("client", 12, ME, Err(denied)).unwrap_err();
        assert!(
            err.contains("cannot tell") && err.contains("client (pid 12)"),
            "{err}"
        );
    }
}
