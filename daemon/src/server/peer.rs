//! Who is on the other end of a connection: the peer's uid (which must be the daemon's own; on
//! Windows its user SID) and, for the audit trail, its pid and executable. Resolved once per
//! connection.

use std::sync::Arc;

use interprocess::local_socket::tokio::Stream;

/// Who is on the other end (for the audit trail), resolved once per connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) pid: Option<u32>,
    pub(crate) uid: Option<u32>,
    /// The peer's executable, where the OS tells it (`/proc/PID/exe` on Linux), `-` where it
    /// does not; looked up the first time it is asked for ([`Peer::exe`]).
    exe: Option<Arc<str>>,
}

impl Peer {
    fn new(pid: Option<u32>, uid: Option<u32>) -> Self {
        Self {
            pid,
            uid,
            exe: None,
        }
    }

    /// The peer's executable: a system call the first time (the audit trail asks for it as the
    /// connection is accepted, while the peer surely still runs).
    pub(crate) fn exe(&mut self) -> &Arc<str> {
        let pid = self.pid;
        self.exe.get_or_insert_with(|| {
            pid.and_then(executable_of)
                .map_or_else(|| "-".into(), Arc::from)
        })
    }
}

#[cfg(target_os = "linux")]
fn executable_of(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|path| path.display().to_string())
}

#[cfg(not(target_os = "linux"))]
fn executable_of(_pid: u32) -> Option<String> {
    None
}

/// Only the daemon's own user may connect (the 0700 directory already keeps others out; this is
/// the second wall).
#[cfg(unix)]
pub(crate) fn check_peer(stream: &Stream) -> Result<Peer, String> {
    use interprocess::local_socket::traits::StreamCommon as _;
    let creds = stream
        .peer_creds()
        .map_err(|err| format!("cannot read the peer's credentials: {err}"))?;
    let me = rustix::process::geteuid().as_raw();
    let pid = creds.pid().and_then(|pid| u32::try_from(pid).ok());
    match creds.euid() {
        Some(uid) if uid == me => Ok(Peer::new(pid, Some(uid))),
        Some(uid) => Err(format!(
            "peer uid {uid} (pid {}) is not this daemon's user (uid {me})",
            pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
        )),
        None => Err("the OS did not report the peer's uid".to_owned()),
    }
}

/// Windows: only a process of the daemon's own user may connect. The pipe's DACL grants only
/// this user already; this is the second wall, as on Unix: the client's pid
/// (`GetNamedPipeClientProcessId`) and its process token's user SID
/// ([`tokend_protocol::peer_user`]).
#[cfg(windows)]
pub(crate) fn check_peer(stream: &Stream) -> Result<Peer, String> {
    use interprocess::local_socket::traits::StreamCommon as _;
    let pid = stream
        .peer_creds()
        .map_err(|err| format!("cannot read the client's process id: {err}"))?
        .pid()
        .ok_or_else(|| "the OS did not report the client's process id".to_owned())?;
    tokend_protocol::peer_user::check_process("client", pid)?;
    Ok(Peer::new(Some(pid), None))
}
