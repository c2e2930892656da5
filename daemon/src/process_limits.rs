//! Process-wide limits the daemon needs: enough file descriptors for its connection cap
//! ([`MAX_CONNECTIONS`](crate::server::MAX_CONNECTIONS) by default), and no way for its memory (which
//! holds every secret in clear) to end up in a core dump or be read by another process of the
//! same user through ptrace or `/proc/PID/mem`.

/// Descriptors kept for everything but client connections (listener, log, upstream sockets).
#[cfg(unix)]
const SPARE_DESCRIPTORS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` towards what the connection cap needs, within the hard limit
/// (best effort: a daemon with fewer descriptors still runs, and backs off on `EMFILE`). Returns
/// the soft limit in force afterwards, if known.
#[cfg(unix)]
pub fn raise_descriptor_limit(connections: usize) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let wanted = u64::try_from(connections)
        .unwrap_or(u64::MAX)
        .saturating_add(SPARE_DESCRIPTORS);
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

/// The connection cap that fits the descriptors this process may open: `wanted`, once the
/// soft limit is raised towards it, or fewer when the hard limit leaves room for fewer (a cap
/// above the descriptors would let a flood of idle connections use them all up before the cap
/// makes room for a new client). Never below 16.
#[must_use]
pub fn fit_connection_cap(wanted: usize) -> usize {
    #[cfg(unix)]
    if let Some(limit) = raise_descriptor_limit(wanted) {
        let room = usize::try_from(limit.saturating_sub(SPARE_DESCRIPTORS)).unwrap_or(usize::MAX);
        return wanted.min(room).max(16);
    }
    wanted
}

/// Windows has no per-process descriptor limit to raise.
#[cfg(not(unix))]
pub fn raise_descriptor_limit(_connections: usize) -> Option<u64> {
    None
}

/// Makes the process non-dumpable (`PR_SET_DUMPABLE 0`: no core dump, and other processes of
/// the same user can no longer ptrace it or read `/proc/PID/mem`) and sets `RLIMIT_CORE` to 0,
/// so that a crash never writes the secrets in memory to disk. Errors name what failed; the
/// caller decides whether to go on.
#[cfg(unix)]
pub fn forbid_core_dumps() -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    // Other unix systems have no portable `PR_SET_DUMPABLE`: `RLIMIT_CORE` 0 at least.
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|err| format!("cannot make the process non-dumpable (PR_SET_DUMPABLE): {err}"))?;
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|err| format!("cannot set the core-file size limit to 0 (RLIMIT_CORE): {err}"))
}

/// Windows writes no core files of its own accord.
#[cfg(not(unix))]
pub fn forbid_core_dumps() -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn the_limit_covers_the_connection_cap_when_the_hard_limit_allows() {
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        let soft = super::raise_descriptor_limit(crate::server::MAX_CONNECTIONS).unwrap();
        let wanted = crate::server::MAX_CONNECTIONS as u64 + super::SPARE_DESCRIPTORS;
        assert!(
            soft >= wanted.min(hard.unwrap_or(wanted)),
            "soft limit {soft}"
        );
    }
}

/// Changes the test process itself: harmless (it only loses core dumps and ptrace by others).
#[cfg(all(test, target_os = "linux"))]
mod dump_tests {
    use rustix::process::{DumpableBehavior, Resource, dumpable_behavior, getrlimit};

    #[test]
    fn the_process_becomes_non_dumpable_with_no_core_size() {
        super::forbid_core_dumps().unwrap();
        assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
        let core = getrlimit(Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    }
}
