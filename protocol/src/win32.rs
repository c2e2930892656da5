//! The few Win32 calls that neither the standard library nor `interprocess` wraps, behind safe
//! functions: who a process runs as (its token's user SID), what a kernel object's security
//! descriptor says, cancelling a blocked read or write on a handle from another thread, and a
//! handle's inheritance flag.
//!
//! This is the only module of the workspace allowed `unsafe` code (`tests/layout.rs` checks
//! that): the workspace denies it everywhere else. Every `unsafe` block calls one documented
//! Win32 function with pointers to live locals, and every handle or buffer the OS returns is
//! owned by a Rust value that closes or frees it exactly once.
//!
//! The daemon uses [`process_user_sid`] on each client's pid (`GetNamedPipeClientProcessId`)
//! and the client on the pipe server's pid, both against [`current_user_sid`], as `SO_PEERCRED`
//! is used on Unix.
#![allow(unsafe_code)]

use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{
    GetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT, HLOCAL, LocalFree, SetHandleInformation,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW, GetSecurityInfo,
    SDDL_REVISION_1, SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, GetTokenInformation, OWNER_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::System::IO::CancelIoEx;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// The user SID (`S-1-5-21-…`) of this process's token.
///
/// # Errors
/// The OS error of opening or reading the token.
pub fn current_user_sid() -> io::Result<String> {
    // SAFETY: GetCurrentProcess takes no arguments and returns a pseudo-handle that needs no
    // closing; it is valid for the life of the process.
    let process = unsafe { GetCurrentProcess() };
    token_user_sid(process)
}

/// The user SID of the token of the process `pid` (a pipe peer's).
///
/// # Errors
/// The OS error of opening the process or its token: the process may have exited, or run as
/// a user whose processes this one may not inspect (which is then not this user).
pub fn process_user_sid(pid: u32) -> io::Result<String> {
    // SAFETY: OpenProcess takes plain values; it returns a new handle or null (checked).
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a handle we own (just opened, not null); OwnedHandle closes it once.
    let process = unsafe { OwnedHandle::from_raw_handle(raw) };
    token_user_sid(process.as_raw_handle())
}

/// The user SID of the primary token of `process` (a handle with query rights).
fn token_user_sid(process: HANDLE) -> io::Result<String> {
    let mut raw_token: HANDLE = ptr::null_mut();
    // SAFETY: `process` is a live process handle; `raw_token` is a local the call writes.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &raw mut raw_token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so `raw_token` is a token handle we own; closed once on drop.
    let token = unsafe { OwnedHandle::from_raw_handle(raw_token) };
    // TOKEN_USER is a SID pointer into the same buffer plus the SID itself: 128 bytes hold any
    // SID (at most 68 bytes) with room to spare; the size the OS asks for is honoured anyway.
    // u64 elements keep the buffer aligned for the struct.
    let mut buffer = vec![0u64; 32];
    loop {
        let capacity = u32::try_from(buffer.len() * 8).unwrap_or(u32::MAX);
        let mut needed = 0u32;
        // SAFETY: the buffer is `capacity` bytes of writable memory we own; `needed` is a local.
        let ok = unsafe {
            GetTokenInformation(
                token.as_raw_handle(),
                TokenUser,
                buffer.as_mut_ptr().cast(),
                capacity,
                &raw mut needed,
            )
        };
        if ok != 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if needed > capacity {
            buffer.resize((needed as usize).div_ceil(8), 0);
            continue;
        }
        return Err(err);
    }
    // SAFETY: GetTokenInformation(TokenUser) succeeded, so the buffer starts with a TOKEN_USER
    // (the buffer is 8-byte aligned) whose SID pointer points into the same live buffer.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: `sid` is a valid SID (see above); `text` is a local the call sets to a string it
    // allocates with LocalAlloc.
    if unsafe { ConvertSidToStringSidW(sid, &raw mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `text` is a NUL-terminated UTF-16 string from LocalAlloc; read, then freed once.
    Ok(unsafe { take_local_string(text) })
}

/// The owner and DACL of the kernel object behind `handle` (a pipe, a file), in the security
/// descriptor string format (`O:S-1-5-21-…D:P(A;;FA;;;S-1-5-21-…)`). The end-to-end tests read
/// back what tokend's pipe grants with it.
///
/// # Errors
/// The OS error of reading the security descriptor (the handle needs `READ_CONTROL`).
pub fn security_descriptor_sddl(handle: BorrowedHandle<'_>) -> io::Result<String> {
    let what = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: the handle is live for the call; the out pointers are locals. The descriptor the
    // call allocates (LocalAlloc) is freed below, once; the owner and DACL pointers (null here)
    // would point into it.
    let status = unsafe {
        GetSecurityInfo(
            handle.as_raw_handle(),
            SE_KERNEL_OBJECT,
            what,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &raw mut descriptor,
        )
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(
            i32::try_from(status).unwrap_or(i32::MAX),
        ));
    }
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: `descriptor` is the valid self-relative descriptor just returned; `text` is a local.
    let converted = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor,
            SDDL_REVISION_1,
            what,
            &raw mut text,
            ptr::null_mut(),
        )
    };
    let result = if converted == 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a NUL-terminated UTF-16 string from LocalAlloc; read, then freed once.
        Ok(unsafe { take_local_string(text) })
    };
    // SAFETY: allocated by GetSecurityInfo with LocalAlloc, freed once, not used afterwards.
    unsafe { LocalFree(descriptor as HLOCAL) };
    result
}

/// Cancels every read or write pending on `handle`, from any thread of this process: the
/// blocked call returns an error (`ERROR_OPERATION_ABORTED`). A synchronous named pipe has no
/// I/O timeouts; the blocking client arms a watchdog that calls this when its deadline passes.
/// Nothing pending is not an error.
pub fn cancel_io(handle: BorrowedHandle<'_>) {
    // SAFETY: the handle is live for the call; a null OVERLAPPED pointer means "all requests".
    unsafe { CancelIoEx(handle.as_raw_handle(), ptr::null()) };
}

/// Whether `handle` is inherited by the processes this one starts.
///
/// # Errors
/// The OS error of reading the handle's flags.
pub fn is_inheritable(handle: BorrowedHandle<'_>) -> io::Result<bool> {
    let mut flags = 0u32;
    // SAFETY: the handle is live for the call; `flags` is a local the call writes.
    if unsafe { GetHandleInformation(handle.as_raw_handle(), &raw mut flags) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & HANDLE_FLAG_INHERIT != 0)
}

/// Makes `handle` inherited (or not) by the processes this one starts. Windows passes every
/// inheritable handle to a new process, so a long-lived child (an auto-started tokend) would
/// otherwise keep its starter's stdout open, and whoever reads it (`$(tok get x)`) would wait
/// for the end of the daemon.
///
/// # Errors
/// The OS error of changing the flag.
pub fn set_inheritable(handle: BorrowedHandle<'_>, inheritable: bool) -> io::Result<()> {
    let value = if inheritable { HANDLE_FLAG_INHERIT } else { 0 };
    // SAFETY: the handle is live for the call; the flags are plain values.
    if unsafe { SetHandleInformation(handle.as_raw_handle(), HANDLE_FLAG_INHERIT, value) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads and frees a NUL-terminated UTF-16 string that the OS allocated with `LocalAlloc`.
///
/// # Safety
/// `text` must be such a string, not used again afterwards.
unsafe fn take_local_string(text: *mut u16) -> String {
    let mut len = 0usize;
    // SAFETY: the string is NUL-terminated (the caller's contract), so every index read before
    // the NUL is in bounds.
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` UTF-16 units starting at `text` are initialised (counted above).
    let units = unsafe { std::slice::from_raw_parts(text, len) };
    let value = String::from_utf16_lossy(units);
    // SAFETY: allocated with LocalAlloc (the caller's contract) and freed exactly once here.
    unsafe { LocalFree(text.cast()) };
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_user_sid_and_its_pid_says_the_same() {
        let mine = current_user_sid().unwrap();
        assert!(mine.starts_with("S-1-"), "{mine}");
        assert_eq!(process_user_sid(std::process::id()).unwrap(), mine);
    }

    #[test]
    fn a_process_that_does_not_exist_has_no_user() {
        // Process ids are multiples of 4; this one is never handed out.
        assert!(process_user_sid(u32::MAX - 2).is_err());
    }
}
