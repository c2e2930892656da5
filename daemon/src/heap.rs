//! What the daemon hands back to the system once a config is loaded: the C allocator's free
//! pages. Parsing a config builds the whole TOML document (about 1 KiB per provider table) and
//! frees it once the providers exist; glibc keeps freed memory inside its heap (its trim
//! threshold rises with the largest block it has freed, and holes below the top are never
//! trimmed), so a daemon of 10 000 providers would carry the parse's high-water mark for its
//! whole life. `malloc_trim` returns every free page, wherever it lies.
//!
//! The one `unsafe` call of the daemon (see `tests/layout.rs`): glibc has no safe wrapper, and
//! no crate offers one without a global allocator of its own.
#![allow(unsafe_code)]

/// Returns the allocator's free pages to the system (glibc's `malloc_trim(0)`). Elsewhere
/// (musl, macOS, Windows) the system allocator returns large freed regions by itself, and
/// nothing is done.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and no ownership; it walks glibc's own arenas under
    // their locks and madvises pages no allocation uses. Any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
