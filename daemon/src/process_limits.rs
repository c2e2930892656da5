//! Process-wide limits the daemon needs: enough file descriptors for
//! [`MAX_CONNECTIONS`](crate::server::MAX_CONNECTIONS) clients.

/// Descriptors kept for everything but client connections (listener, log, upstream sockets).
#[cfg(unix)]
const SPARE_DESCRIPTORS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` towards what the connection cap needs, within the hard limit
/// (best effort: a daemon with fewer descriptors still runs, and backs off on `EMFILE`). Returns
/// the soft limit in force afterwards, if known.
#[cfg(unix)]
pub fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let wanted = crate::server::MAX_CONNECTIONS as u64 + SPARE_DESCRIPTORS;
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    if current >= wanted {
        return Some(current);
    }
    let target = limit.maximum.map_or(wanted, |max| wanted.min(max));
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => Some(target),
        Err(err) => {
            tracing::warn!("cannot raise the open-file limit from {current} to {target}: {err}");
            Some(current)
        }
    }
}

/// Windows has no per-process descriptor limit to raise.
#[cfg(not(unix))]
pub fn raise_descriptor_limit() -> Option<u64> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn the_limit_covers_the_connection_cap_when_the_hard_limit_allows() {
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        let soft = super::raise_descriptor_limit().unwrap();
        let wanted = crate::server::MAX_CONNECTIONS as u64 + super::SPARE_DESCRIPTORS;
        assert!(
            soft >= wanted.min(hard.unwrap_or(wanted)),
            "soft limit {soft}"
        );
    }
}
