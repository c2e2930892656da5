//! Helpers of the secret-reference tests: no environment, no user secrets, a resolver with a
//! 10 s command timeout, a private temporary directory.

use std::ffi::OsString;
use std::time::Duration;

use tokend_protocol::Secret;

use super::{ResolveError, Resolver, SecretTemplate};

pub(super) fn no_env(_: &str) -> Option<OsString> {
    None
}

pub(super) fn no_secrets(_: &str) -> Option<Secret> {
    None
}

pub(super) async fn resolve_test(template: &str) -> Result<Secret, ResolveError> {
    SecretTemplate::parse(template)
        .expect("template parses")
        .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(10)))
        .await
}

/// A fresh private directory under the system temp dir, removed on drop.
pub(super) fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tokend-secret-ref-{tag}-"))
        .tempdir()
        .expect("create temp dir")
}
