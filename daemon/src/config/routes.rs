//! The credential-helper routes of a provider: its `git` and `docker` tables (see
//! [`super::keys::ROUTES`]), which send a tool's requests for a host to this provider. A host
//! belongs to at most one provider per tool. Routes are not part of a provider's identity on
//! reload: changing one keeps the cached token.

use std::ops::Range;

use tokend_protocol::{CredentialRoute, CredentialTool};

use super::ConfigError;
use super::keys::Key;
use super::reader::Table;

/// The keys of a `git` or `docker` table.
pub(crate) const KEYS: &[Key] = &[
    Key::new(
        "host",
        "yes",
        "The host as the tool sends it, with `:port` when the port is not the default one \
         (no scheme, no path).",
    ),
    Key::new(
        "username",
        "no (`oauth2`)",
        "The user name answered with the token.",
    ),
];

/// The credential-helper tables, with the tool each routes for.
const ROUTE_TABLES: [(&str, CredentialTool); 2] = [
    ("git", CredentialTool::Git),
    ("docker", CredentialTool::Docker),
];
/// The user name credential helpers answer with unless `username` says otherwise: GitLab wants
/// exactly this for OAuth 2.0 tokens, and hosts that take personal access tokens accept any.
const DEFAULT_ROUTE_USERNAME: &str = "oauth2";
const ROUTE_HINT: &str = "write it as git = { host = \"git.example.com\" } \
     (optionally with username = \"...\")";
const ROUTE_HOST_HINT: &str = "give the bare host name as the tool sends it, with :port when \
     the port is not the default one, e.g. \"git.example.com\" or \"127.0.0.1:8080\" \
     (no scheme, no path)";

/// A route and where its `host` is, for the duplicate check.
pub(crate) struct LocatedRoute {
    pub(crate) route: CredentialRoute,
    pub(crate) span: Range<usize>,
    pub(crate) key: String,
}

/// The provider's `git` and `docker` tables.
pub(crate) fn read(table: &Table<'_, '_>) -> Result<Vec<LocatedRoute>, ConfigError> {
    let mut routes = Vec::new();
    for (key, tool) in ROUTE_TABLES {
        let Some(route) = table.table(key, ROUTE_HINT)? else {
            continue;
        };
        route.check_keys_of(None, &[KEYS], &format!("`{key}`"))?;
        let host = route.required_text("host", &format!("`{key}`"), ROUTE_HOST_HINT)?;
        if !is_host_and_port(host.text) {
            return Err(route.error(
                &host.span,
                &host.key,
                format!("`{}` is not a host name", host.key),
                ROUTE_HOST_HINT,
            ));
        }
        let username = match route.str("username")? {
            Some(user) => {
                let hint = "use a non-empty user name without spaces, `:` or control characters";
                route.non_empty(&user, hint)?;
                if user
                    .text
                    .contains(|c: char| c == ':' || c.is_whitespace() || c.is_control())
                {
                    return Err(route.error(
                        &user.span,
                        &user.key,
                        format!(
                            "`{}` contains a space, `:` or a control character",
                            user.key
                        ),
                        hint,
                    ));
                }
                user.text.to_owned()
            }
            None => DEFAULT_ROUTE_USERNAME.to_owned(),
        };
        routes.push(LocatedRoute {
            route: CredentialRoute {
                provider: table.provider.to_owned(),
                tool,
                host: host.text.to_ascii_lowercase(),
                username,
            },
            span: host.span.clone(),
            key: host.key.clone(),
        });
    }
    Ok(routes)
}

/// `name`, `name:port`, `[v6]` or `[v6]:port`: what git sends as `host` and what Docker's server
/// URLs reduce to.
pub(crate) fn is_host_and_port(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => ("v6", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port != 0));
    host_ok && port_ok
}
