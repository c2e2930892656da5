//! The credential-helper routes of a provider: its `git` and `docker` tables (see
//! [`super::keys::ROUTES`]), which send a tool's requests for a host to this provider. A git
//! route may also name a path prefix (git sends the path with `credential.useHttpPath`) and a
//! user name, so that several accounts share a host; the client picks the longest matching
//! prefix. A host, path and user name belong to at most one provider per tool. Routes are not
//! part of a provider's identity on reload: changing one keeps the cached token.

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
        "path",
        "no (the whole host)",
        "`git` only: a path prefix such as `org` or `org/repo` (whole segments; `.git` is \
         ignored). Requests under it come here; the longest matching prefix wins. git sends \
         the path only with `credential.useHttpPath` (see [Credential \
         helpers](#credential-helpers-git-docker-kubectl)).",
    ),
    Key::new(
        "username",
        "no (`oauth2`; `github-app`: `x-access-token`)",
        "The user name answered with the token. A request that names a user (`https://alice@host/…`) \
         only matches routes with that user name.",
    ),
];

/// The credential-helper tables, with the tool each routes for.
const ROUTE_TABLES: [(&str, CredentialTool); 2] = [
    ("git", CredentialTool::Git),
    ("docker", CredentialTool::Docker),
];
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

const PATH_HINT: &str = "give a path prefix such as \"org\" or \"org/repo\": segments of \
     letters, digits, `.`, `_`, `-` and `~` separated by `/`, without a leading or trailing `/`";

/// The provider's `git` and `docker` tables; routes answer with `default_username` unless they
/// say otherwise.
pub(crate) fn read(
    table: &Table<'_, '_>,
    default_username: &str,
) -> Result<Vec<LocatedRoute>, ConfigError> {
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
            None => default_username.to_owned(),
        };
        let path = match route.str("path")? {
            None => String::new(),
            Some(found) if tool == CredentialTool::Docker => {
                return Err(route.error(
                    &found.span,
                    &found.key,
                    "`path` is for git routes only".to_owned(),
                    "remove it: Docker asks for a registry host, never a path",
                ));
            }
            Some(found) => {
                let path = found.text.trim_end_matches(".git");
                if !is_route_path(path) {
                    return Err(route.error(
                        &found.span,
                        &found.key,
                        format!("`{}` is not a path prefix", found.key),
                        PATH_HINT,
                    ));
                }
                path.to_owned()
            }
        };
        routes.push(LocatedRoute {
            route: CredentialRoute {
                provider: table.provider.to_owned(),
                tool,
                host: host.text.to_ascii_lowercase(),
                username,
                path,
            },
            span: host.span.clone(),
            key: host.key.clone(),
        });
    }
    Ok(routes)
}

/// `org` or `org/repo`: non-empty segments of URL-safe characters, none of them `.` or `..`.
fn is_route_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'))
        })
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

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn git_routes_with_paths_and_accounts() {
        let (config, _) = parse_ok(
            r#"
[providers.work]
kind = "static"
secret = "${env:W}"
git = { host = "github.com", path = "acme", username = "me-at-work" }

[providers.tools]
kind = "static"
secret = "${env:T}"
git = { host = "github.com", path = "acme/tools.git" }

[providers.personal]
kind = "static"
secret = "${env:P}"
git = { host = "github.com", username = "me" }
"#,
        );
        let route = |provider: &str| {
            config
                .routes
                .iter()
                .find(|route| route.provider == provider)
                .unwrap()
        };
        assert_eq!(route("work").path, "acme");
        assert_eq!(route("tools").path, "acme/tools", "`.git` is dropped");
        assert_eq!(route("tools").username, "oauth2");
        assert_eq!(route("personal").path, "");
        let static_git = |git: &str| {
            format!("[providers.a]\nkind = \"static\"\nsecret = \"${{env:A}}\"\ngit = {git}\n")
        };
        let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
            (
                "leading slash",
                static_git("{ host = \"h\", path = \"/acme\" }"),
                4,
                Some("key `git.path`"),
                "not a path prefix",
            ),
            (
                "dot dot",
                static_git("{ host = \"h\", path = \"acme/../x\" }"),
                4,
                Some("key `git.path`"),
                "not a path prefix",
            ),
            (
                "docker path",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:A}\"\n\
                 docker = { host = \"r\", path = \"x\" }\n"
                    .to_owned(),
                4,
                Some("key `docker.path`"),
                "git routes only",
            ),
            (
                "one docker host, two user names",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:A}\"\n\
                 docker = { host = \"registry.example\", username = \"alice\" }\n\
                 [providers.b]\nkind = \"static\"\nsecret = \"${env:B}\"\n\
                 docker = { host = \"registry.example\", username = \"bob\" }\n"
                    .to_owned(),
                8,
                Some("key `docker.host`"),
                "docker host \"registry.example\" is already routed to provider \"a\"",
            ),
            (
                "the same account twice",
                format!(
                    "{}[providers.b]\nkind = \"static\"\nsecret = \"${{env:B}}\"\n\
                     git = {{ host = \"h\", path = \"acme\" }}\n",
                    static_git("{ host = \"h\", path = \"acme\" }")
                ),
                8,
                Some("key `git.host`"),
                "already routed to provider \"a\"",
            ),
        ];
        check_errors(cases);
    }
}
