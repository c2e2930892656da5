//! The config reader's tests, one module per concern; here only what several of them share.

mod errors;
mod literals;
mod loading;
mod presentation;
mod providers;
mod routes;
mod store;
mod timeouts;

/// A fresh private directory under the system temp dir, removed on drop.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tokend-config-{tag}-"))
        .tempdir()
        .expect("create temp dir")
}

const EXAMPLE: &str = r#"
[providers.salestim]            # the table name is what `tok get` takes
kind = "static"                 # a fixed secret: API key or personal access token
secret = "${env:SALESTIM_API_KEY}"
header = "X-API-KEY"            # presented as `X-API-KEY: <secret>`

[providers.gitlab]
kind = "static"
secret = "${file:~/.config/gitlab.pat}"
scheme = "bearer"
"#;
