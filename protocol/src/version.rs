//! The protocol version: an explicit integer, never derived from the crate version.
//!
//! Bump it whenever the encoding of any [`crate::Request`] or [`crate::Response`] changes in a way
//! an older peer would misread (new variants appended at the end are also a bump, because an old
//! daemon cannot decode them). The golden fixtures in `tests/fixtures/` fail when the encoding
//! changes without a bump being considered.

/// The version both sides announce in the handshake (2: `Invalidate`, more provider states and
/// refresh times in status; 3: `Reload`; 4: counters in status, `Metrics`; 5:
/// `CredentialRoutes`; 6: `Login`, `AwaitLogin`, `Logout`; 7: the store's protection in status,
/// user secrets; 8: a response larger than a frame travels as several frames, see
/// [`crate::frame::MORE`]; 9: the fleet in status: its state, each provider's origin and share; 10: auth proxies and
/// token files in status, `ProxyUrl`; 11: `GetIdToken`, `Rotate` / `Rotated`, id_token expiry and key
/// rotation in status, path-prefix credential routes). Peers with different versions refuse each other in the handshake, before any
/// bincode payload is exchanged.
pub const PROTOCOL_VERSION: u32 = 11;

/// Version of this build of tokend/tok, shown by `tok ping` (informational only).
pub const PACKAGE_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_version_is_pinned() {
        // Changing this constant is a deliberate act: update the golden fixtures with it.
        assert_eq!(PROTOCOL_VERSION, 11);
    }
}
