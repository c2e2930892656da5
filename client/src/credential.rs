//! The credential-helper protocols: git's (`tok git-credential get|store|erase`, configured as
//! `credential.helper`) and Docker's (the `docker-credential-tok` binary: `get`, `list`, `store`,
//! `erase`, `version`).
//!
//! Both map the host a tool asks about to a provider through the daemon's routes (a provider's
//! `git = { host = ... }` or `docker = { host = ... }` table) and answer with the route's user
//! name and the provider's token as the password. A git route may also have a path prefix
//! (git sends the path with `credential.useHttpPath`) and a user name (git sends the one in the
//! remote URL): of the routes of the host whose prefix covers the path and whose user name is
//! the one asked for, the longest prefix wins, so several accounts share a host. Docker asks by
//! host alone: a registry host has one route. tokend issues tokens; it does not keep passwords
//! that tools hand to it, so git's `store` does nothing and Docker's `store` and `erase` refuse
//! with a message. Git's `erase` (sent after the server rejected the credential)
//! invalidates the provider's cached token, so the next request fetches a new one.
//!
//! Hosts compare case-insensitively, and the protocol's default port (`:443` for https, `:80`
//! for http) is ignored on both sides (git passes the port exactly as the URL has it). Tokens go
//! out only over https, except to loopback hosts (`127.0.0.1`, `[::1]`, `localhost`): a plain
//! `http://` URL elsewhere gets no answer, so a network attacker's 401 cannot fish the token.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::time::Duration;

use serde::Serialize;
use tokend_protocol::{SecretBuf, clock};

use crate::error::exit;
use crate::{Client, CredentialRoute, CredentialTool, Error, GetOptions, Token};

/// Largest request read from a helper's stdin: git and Docker send a few short lines.
const MAX_INPUT: usize = 64 * 1024;

/// A token handed to git or Docker stays valid at least this long: one `git fetch` or
/// `docker pull` makes several requests with the same credential.
const HELPER_MIN_TTL: Duration = Duration::from_secs(60);

/// What Docker's helper client recognises as "no credentials for this server" (the exact text
/// of docker-credential-helpers' `ErrCredentialsNotFound`): Docker then proceeds anonymously.
pub const DOCKER_NOT_FOUND: &str = "credentials not found in native keychain";

/// A failed helper operation.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HelperError {
    /// Talking to the daemon failed.
    #[error(transparent)]
    Client(#[from] Error),
    /// The tool sent something that is not its protocol, or asked for what tokend does not do.
    #[error("{0}")]
    Input(String),
    /// Docker asked about a registry no provider is routed for.
    #[error("{DOCKER_NOT_FOUND}")]
    NotFound,
    /// Reading the request or writing the answer failed.
    #[error("cannot read the request or write the answer: {0}")]
    Io(#[from] std::io::Error),
}

impl HelperError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Client(err) => err.exit_code(),
            Self::Input(_) => exit::USAGE_OR_CONFIG,
            Self::NotFound | Self::Io(_) => exit::OTHER,
        }
    }
}

/// The git credential-helper operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GitAction {
    /// Answer `username` and `password` (and `password_expiry_utc`) for a routed host.
    Get,
    /// Accepted and ignored: tokend issues the token, git has nothing to store.
    Store,
    /// The server rejected the credential: drop the provider's cached token.
    Erase,
}

/// Answers one git credential-helper request read from `input`. A host without a route gets
/// no answer (git then asks its next helper or the user).
pub(crate) fn git(
    client: &mut Client,
    action: GitAction,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), HelperError> {
    let request = read_input(input)?;
    let request = GitRequest::parse(&request)?;
    if action == GitAction::Store {
        return Ok(());
    }
    let (Some(protocol), Some(host)) = (request.protocol.as_deref(), request.host.as_deref())
    else {
        return Ok(());
    };
    let Some(scheme) = Scheme::of(protocol, host) else {
        return Ok(());
    };
    let routes = client.credential_routes()?;
    let route = match find_git_route(
        &routes,
        host,
        scheme,
        request.path.as_deref(),
        request.username.as_deref(),
    ) {
        GitMatch::Route(route) => route,
        GitMatch::Nothing => return Ok(()),
        GitMatch::Ambiguous(names) => {
            return Err(HelperError::Input(format!(
                "several routes of {host} match ({}) and the request names no user; put the \
                 user name in the remote URL (https://USER@{host}/…), or set git config \
                 credential.https://{host}.useHttpPath true and give each route a path",
                names.join(", ")
            )));
        }
    };
    match action {
        GitAction::Get => {
            let token = fetch(client, &route.provider)?;
            let value = token.value.expose();
            if value.contains(['\n', '\0']) {
                return Err(HelperError::Input(format!(
                    "provider {:?}'s token contains a newline or NUL, which git's credential \
                     protocol cannot carry; use `tok get {}` with another tool",
                    route.provider, route.provider
                )));
            }
            write!(out, "username={}\npassword={value}\n", route.username)?;
            if let Some(at) = token.expires_at {
                writeln!(out, "password_expiry_utc={}", clock::unix_secs(at))?;
            }
        }
        GitAction::Erase => {
            // The outcome (dropped or rate-limited) is not git's business.
            client.invalidate(&route.provider)?;
        }
        GitAction::Store => unreachable!("handled above"),
    }
    out.flush()?;
    Ok(())
}

/// The attributes of a git credential request that choose the answer.
#[derive(Debug, Default, PartialEq, Eq)]
struct GitRequest {
    protocol: Option<String>,
    host: Option<String>,
    /// Only with `credential.useHttpPath`.
    path: Option<String>,
    /// The user name of the remote URL, or the one a helper answered before.
    username: Option<String>,
}

impl GitRequest {
    /// `key=value` lines up to a blank line or the end; unknown keys (password,
    /// `capability[]`, `wwwauth[]`, …) are ignored.
    fn parse(input: &[u8]) -> Result<Self, HelperError> {
        let text = std::str::from_utf8(input).map_err(|_| {
            HelperError::Input(
                "the request is not UTF-8 text; run this as git's credential.helper, which \
                 sends key=value lines"
                    .to_owned(),
            )
        })?;
        let mut request = Self::default();
        for (index, line) in text.split('\n').enumerate() {
            if line.is_empty() {
                break;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(HelperError::Input(format!(
                    "line {} of the request is not key=value; run this as git's \
                     credential.helper, which sends key=value lines",
                    index + 1
                )));
            };
            match key {
                "protocol" => request.protocol = Some(value.to_ascii_lowercase()),
                "host" => request.host = Some(value.to_owned()),
                "path" => request.path = Some(value.to_owned()),
                "username" if !value.is_empty() => request.username = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(request)
    }
}

/// The actions `docker-credential-tok` answers; [`docker_main`] dispatches on them and
/// [`docker_command`] documents them (a test keeps the two the same).
const DOCKER_ACTIONS: [(&str, &str); 5] = [
    (
        "get",
        "Read a registry URL on stdin; print its credential as JSON (the provider's token as \
         Secret), or \"credentials not found in native keychain\" for a registry without a route",
    ),
    ("list", "Print the routed registries as JSON"),
    (
        "store",
        "Refused: tokend issues registry tokens itself and keeps no credentials from Docker",
    ),
    ("erase", "Refused, as store"),
    ("version", "Print the version"),
];

/// `docker-credential-tok` as a clap command, for its man page (`tokend-dist`). The helper
/// itself parses its one argument by hand: Docker is its only caller.
#[must_use]
pub fn docker_command() -> clap::Command {
    let mut command = clap::Command::new("docker-credential-tok")
        .version(tokend_protocol::PACKAGE_VERSION)
        .about("Docker's credential helper answered from tokend")
        .long_about(
            "Docker's credential helper answered from tokend. Docker runs it as the credential \
             helper named \"tok\" in ~/.docker/config.json ({\"credHelpers\": \
             {\"REGISTRY\": \"tok\"}} or {\"credsStore\": \"tok\"}); a registry routed \
             to a provider with docker = { host = \"REGISTRY\" } in tokend's config gets that \
             provider's token. Messages go to stdout, which Docker shows when a helper fails.",
        )
        .subcommand_required(true);
    for (name, about) in DOCKER_ACTIONS {
        command = command.subcommand(clap::Command::new(name).about(about));
    }
    command
}

/// Runs `docker-credential-tok` with `args` (program name first) and returns its exit code.
/// Messages go to `out`: Docker shows a helper's stdout when it fails.
pub fn docker_main<I, T>(args: I, input: &mut dyn Read, out: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let action = match args.get(1..).unwrap_or_default() {
        [action] => action.to_str().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    let result = match action.as_str() {
        "get" => docker_get(&mut Client::new(), input, out),
        "list" => docker_list(&mut Client::new(), out),
        "store" | "erase" => {
            // Read (and wipe) what Docker sends, so it never sees a broken pipe.
            let _ = read_input(input);
            Err(HelperError::Input(format!(
                "tokend issues registry tokens itself and keeps no credentials from Docker, so \
                 there is nothing to {action}; route a registry to a provider with \
                 docker = {{ host = \"REGISTRY\" }} in tokend's config instead of `docker \
                 login`/`docker logout`"
            )))
        }
        "version" => writeln!(
            out,
            "docker-credential-tok (tokend) {}",
            tokend_protocol::PACKAGE_VERSION
        )
        .map_err(HelperError::from),
        _ => {
            let actions: Vec<&str> = DOCKER_ACTIONS.iter().map(|(name, _)| *name).collect();
            let _ = writeln!(
                out,
                "usage: docker-credential-tok {} (Docker runs it as the credential helper named \
                 \"tok\" in ~/.docker/config.json)",
                actions.join("|")
            );
            return exit::USAGE_OR_CONFIG;
        }
    };
    match result {
        Ok(()) => exit::OK,
        Err(err) => {
            let _ = writeln!(out, "{err}");
            err.exit_code()
        }
    }
}

#[derive(Serialize)]
struct DockerCredential<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

fn docker_get(
    client: &mut Client,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), HelperError> {
    let request = read_input(input)?;
    let server_url = std::str::from_utf8(&request)
        .map_err(|_| HelperError::Input("the server URL is not UTF-8 text".to_owned()))?
        .trim();
    let routes = client.credential_routes()?;
    let route = registry_host(server_url)
        .and_then(|(scheme, host)| find_route(&routes, CredentialTool::Docker, host, scheme?));
    let Some(route) = route else {
        // Docker recognises this text and carries on without credentials.
        return Err(HelperError::NotFound);
    };
    let token = fetch(client, &route.provider)?;
    let answer = DockerCredential {
        server_url,
        username: &route.username,
        secret: token.value.expose(),
    };
    serde_json::to_writer(&mut *out, &answer).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn docker_list(client: &mut Client, out: &mut dyn Write) -> Result<(), HelperError> {
    let routes = client.credential_routes()?;
    let listed: serde_json::Map<String, serde_json::Value> = routes
        .into_iter()
        .filter(|route| route.tool == CredentialTool::Docker)
        .map(|route| (route.host, serde_json::Value::String(route.username)))
        .collect();
    serde_json::to_writer(&mut *out, &listed).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A web protocol a token may be sent over to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    /// Only to loopback hosts.
    Http,
}

impl Scheme {
    /// The scheme of `protocol` for `host`, or `None` when no token may go there.
    fn of(protocol: &str, host: &str) -> Option<Self> {
        match protocol.to_ascii_lowercase().as_str() {
            "https" => Some(Self::Https),
            "http" if tokend_protocol::host::is_loopback_host(host) => Some(Self::Http),
            _ => None,
        }
    }

    /// `host` without this scheme's default port (`:443` for https, `:80` for http).
    fn without_default_port(self, host: &str) -> &str {
        let port = match self {
            Self::Https => ":443",
            Self::Http => ":80",
        };
        host.strip_suffix(port).unwrap_or(host)
    }
}

/// The scheme and host part of a Docker server URL: `https://registry.example.com/v1/` →
/// `registry.example.com`; a bare `host[:port]` is https (Docker's default). The scheme is
/// `None` for an `http://` URL of a host that is not loopback.
fn registry_host(server_url: &str) -> Option<(Option<Scheme>, &str)> {
    let (protocol, rest) = match server_url.split_once("://") {
        Some((protocol, rest)) => (protocol, rest),
        None => ("https", server_url),
    };
    let host = rest.split('/').next().unwrap_or_default();
    (!host.is_empty()).then(|| (Scheme::of(protocol, host), host))
}

/// What the git routes say about a request.
#[derive(Debug, PartialEq, Eq)]
enum GitMatch<'a> {
    Route(&'a CredentialRoute),
    Nothing,
    /// Several routes (these providers) match equally and the request names no user.
    Ambiguous(Vec<String>),
}

/// The git route for a request of `host`: among the routes whose path prefix covers `path`
/// (whole segments, a `.git` ending ignored; a route without a path covers everything, a
/// route with one needs the request's path) and whose user name is `username` (when the
/// request names one), the one with the longest prefix.
fn find_git_route<'a>(
    routes: &'a [CredentialRoute],
    host: &str,
    scheme: Scheme,
    path: Option<&str>,
    username: Option<&str>,
) -> GitMatch<'a> {
    let asked = scheme.without_default_port(host);
    fn segments(path: &str) -> Vec<&str> {
        path.split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| segment.strip_suffix(".git").unwrap_or(segment))
            .collect()
    }
    let requested = path.map(segments).unwrap_or_default();
    let candidates: Vec<(&CredentialRoute, usize)> = routes
        .iter()
        .filter(|route| {
            route.tool == CredentialTool::Git
                && scheme
                    .without_default_port(&route.host)
                    .eq_ignore_ascii_case(asked)
                && username.is_none_or(|user| user == route.username)
        })
        .filter_map(|route| {
            let prefix = segments(&route.path);
            (requested.len() >= prefix.len() && requested[..prefix.len()] == prefix[..])
                .then_some((route, prefix.len()))
        })
        .collect();
    let Some(longest) = candidates.iter().map(|(_, depth)| *depth).max() else {
        return GitMatch::Nothing;
    };
    let best: Vec<&CredentialRoute> = candidates
        .iter()
        .filter(|(_, depth)| *depth == longest)
        .map(|(route, _)| *route)
        .collect();
    match best[..] {
        [route] => GitMatch::Route(route),
        _ => GitMatch::Ambiguous(
            best.iter()
                .map(|route| format!("{} (user {})", route.provider, route.username))
                .collect(),
        ),
    }
}

/// The route of `tool` for `host`, comparing as the module docs say.
fn find_route<'a>(
    routes: &'a [CredentialRoute],
    tool: CredentialTool,
    host: &str,
    scheme: Scheme,
) -> Option<&'a CredentialRoute> {
    let asked = scheme.without_default_port(host);
    routes.iter().find(|route| {
        route.tool == tool
            && scheme
                .without_default_port(&route.host)
                .eq_ignore_ascii_case(asked)
    })
}

fn fetch(client: &mut Client, provider: &str) -> Result<Token, Error> {
    crate::shell::fetch(
        client,
        provider,
        &GetOptions {
            min_ttl: HELPER_MIN_TTL,
        },
    )
}

/// Reads the whole request (at most [`MAX_INPUT`] bytes) into memory that is wiped on drop:
/// git's `erase` and `store` requests carry the password.
fn read_input(input: &mut dyn Read) -> Result<SecretBuf, HelperError> {
    // Allocated once at full size, so reading never reallocates and leaves copies behind.
    let mut buf = SecretBuf::with_capacity(MAX_INPUT + 1);
    input
        .take(u64::try_from(MAX_INPUT + 1).unwrap_or(u64::MAX))
        .read_to_end(&mut buf)?;
    if buf.len() > MAX_INPUT {
        return Err(HelperError::Input(format!(
            "the request is longer than {} KiB; credential helpers get a few short lines",
            MAX_INPUT / 1024
        )));
    }
    Ok(buf)
}

/// The fuzz targets' entry point (feature `fuzzing`): one credential-helper request as git or
/// Docker sends it, read and matched against routes as `get` does, without a daemon.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_request(input: &[u8]) {
    let routes = [
        CredentialRoute {
            provider: "git".to_owned(),
            tool: CredentialTool::Git,
            host: "git.example.com".to_owned(),
            username: "x-access-token".to_owned(),
            path: "org".to_owned(),
        },
        CredentialRoute {
            provider: "registry".to_owned(),
            tool: CredentialTool::Docker,
            host: "127.0.0.1:5000".to_owned(),
            username: "oauth2accesstoken".to_owned(),
            path: String::new(),
        },
    ];
    let Ok(request) = read_input(&mut &input[..]) else {
        return;
    };
    if let Ok(git) = GitRequest::parse(&request)
        && let (Some(protocol), Some(host)) = (git.protocol.as_deref(), git.host.as_deref())
        && let Some(scheme) = Scheme::of(protocol, host)
    {
        let _ = find_git_route(
            &routes,
            host,
            scheme,
            git.path.as_deref(),
            git.username.as_deref(),
        );
    }
    if let Ok(server_url) = std::str::from_utf8(&request) {
        let _ = registry_host(server_url.trim())
            .and_then(|(scheme, host)| find_route(&routes, CredentialTool::Docker, host, scheme?));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_documented_docker_action_is_answered() {
        let mut out = Vec::new();
        super::docker_main(["docker-credential-tok", "nope"], &mut &b""[..], &mut out);
        let usage = String::from_utf8(out).unwrap();
        assert!(usage.contains(" get|list|store|erase|version "), "{usage}");
        // get and list talk to tokend (tested end to end); the others answer here.
        for (action, _) in &super::DOCKER_ACTIONS[2..] {
            let mut out = Vec::new();
            super::docker_main(["docker-credential-tok", action], &mut &b""[..], &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(!text.starts_with("usage:"), "{action}: {text}");
        }
        let names: Vec<String> = super::docker_command()
            .get_subcommands()
            .map(|sub| sub.get_name().to_owned())
            .collect();
        assert_eq!(names, ["get", "list", "store", "erase", "version"]);
    }

    use super::*;

    fn route(tool: CredentialTool, host: &str, provider: &str) -> CredentialRoute {
        CredentialRoute {
            provider: provider.to_owned(),
            tool,
            host: host.to_owned(),
            username: "oauth2".to_owned(),
            path: String::new(),
        }
    }

    fn git_route(provider: &str, path: &str, username: &str) -> CredentialRoute {
        CredentialRoute {
            provider: provider.to_owned(),
            tool: CredentialTool::Git,
            host: "git.example.com".to_owned(),
            username: username.to_owned(),
            path: path.to_owned(),
        }
    }

    #[test]
    fn git_routes_pick_the_longest_prefix_and_the_named_user() {
        let routes = [
            git_route("host-wide", "", "oauth2"),
            git_route("org", "acme", "oauth2"),
            git_route("repo", "acme/tools", "oauth2"),
            git_route("alice", "", "alice"),
            git_route("bob", "", "bob"),
            route(CredentialTool::Docker, "git.example.com", "registry"),
        ];
        let pick = |path: Option<&str>, user: Option<&str>| match find_git_route(
            &routes,
            "git.example.com",
            Scheme::Https,
            path,
            user,
        ) {
            GitMatch::Route(route) => route.provider.clone(),
            GitMatch::Nothing => "-".to_owned(),
            GitMatch::Ambiguous(names) => format!("ambiguous {}", names.join(",")),
        };
        assert_eq!(pick(Some("acme/tools.git"), Some("oauth2")), "repo");
        assert_eq!(pick(Some("acme/tools/sub"), Some("oauth2")), "repo");
        assert_eq!(pick(Some("acme/tool.git"), Some("oauth2")), "org");
        assert_eq!(pick(Some("acme"), Some("oauth2")), "org");
        // Whole segments only: `acme-corp` is not under `acme`.
        assert_eq!(pick(Some("acme-corp/x.git"), Some("oauth2")), "host-wide");
        assert_eq!(pick(None, Some("oauth2")), "host-wide");
        assert_eq!(pick(Some("acme/tools.git"), Some("alice")), "alice");
        assert_eq!(pick(Some("other/x.git"), Some("bob")), "bob");
        assert_eq!(pick(Some("x"), Some("carol")), "-");
        // No user named and three host-wide routes: git must be told which.
        assert!(
            pick(None, None).starts_with("ambiguous"),
            "{}",
            pick(None, None)
        );
        assert_eq!(pick(Some("acme/tools"), None), "repo");
        let single = [git_route("only", "", "oauth2")];
        assert_eq!(
            find_git_route(&single, "git.example.com", Scheme::Https, None, None),
            GitMatch::Route(&single[0])
        );
    }

    #[test]
    fn git_requests_parse_and_ignore_unknown_keys() {
        let request = GitRequest::parse(
            b"capability[]=authtype\nprotocol=HTTPS\nhost=git.example.com:8443\npath=a/b.git\n\
              password=p=q\nwwwauth[]=Basic realm=\"x\"\n\nhost=after-blank\n",
        )
        .unwrap();
        assert_eq!(
            request,
            GitRequest {
                protocol: Some("https".to_owned()),
                host: Some("git.example.com:8443".to_owned()),
                path: Some("a/b.git".to_owned()),
                username: None,
            }
        );
        assert_eq!(GitRequest::parse(b"").unwrap(), GitRequest::default());
        let err = GitRequest::parse(b"protocol=https\nnonsense\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(GitRequest::parse(b"host=\xff\n").is_err());
    }

    #[test]
    fn routes_match_host_case_and_default_ports() {
        let routes = [
            route(CredentialTool::Docker, "git.example.com", "registry"),
            route(CredentialTool::Git, "git.example.com", "lab"),
            route(CredentialTool::Git, "127.0.0.1:8080", "local"),
        ];
        let found = |tool, host, scheme| {
            find_route(&routes, tool, host, scheme).map(|r| r.provider.as_str())
        };
        let https = Scheme::Https;
        assert_eq!(
            found(CredentialTool::Git, "GIT.example.com", https),
            Some("lab")
        );
        assert_eq!(
            found(CredentialTool::Git, "git.example.com:443", https),
            Some("lab")
        );
        assert_eq!(
            found(CredentialTool::Docker, "git.example.com", https),
            Some("registry")
        );
        assert_eq!(
            found(CredentialTool::Git, "127.0.0.1:8080", https),
            Some("local")
        );
        assert_eq!(found(CredentialTool::Git, "127.0.0.1", https), None);
        assert_eq!(found(CredentialTool::Git, "example.com", https), None);
        // Each scheme ignores its own default port only.
        assert_eq!(
            found(CredentialTool::Git, "git.example.com:80", https),
            None
        );
        assert_eq!(
            found(CredentialTool::Git, "git.example.com:80", Scheme::Http),
            Some("lab")
        );
    }

    #[test]
    fn registry_hosts_from_server_urls() {
        let https = Some(Scheme::Https);
        assert_eq!(
            registry_host("https://index.docker.io/v1/"),
            Some((https, "index.docker.io"))
        );
        assert_eq!(
            registry_host("registry.example.com:5000"),
            Some((https, "registry.example.com:5000"))
        );
        assert_eq!(
            registry_host("http://[::1]:5000/x"),
            Some((Some(Scheme::Http), "[::1]:5000"))
        );
        assert_eq!(
            registry_host("http://registry.example.com"),
            Some((None, "registry.example.com"))
        );
        assert_eq!(registry_host("https://"), None);
        assert_eq!(registry_host(""), None);
    }

    #[test]
    fn tokens_go_over_https_or_to_loopback_only() {
        assert_eq!(Scheme::of("https", "git.example.com"), Some(Scheme::Https));
        assert_eq!(Scheme::of("http", "git.example.com"), None);
        assert_eq!(Scheme::of("http", "127.0.0.1:8080"), Some(Scheme::Http));
        assert_eq!(Scheme::of("http", "[::1]:8080"), Some(Scheme::Http));
        assert_eq!(Scheme::of("HTTP", "localhost"), Some(Scheme::Http));
        assert_eq!(Scheme::of("http", "127.0.0.1.evil.example"), None);
        assert_eq!(Scheme::of("ssh", "git.example.com"), None);
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = vec![b'a'; MAX_INPUT + 1];
        assert!(matches!(
            read_input(&mut big.as_slice()),
            Err(HelperError::Input(_))
        ));
        let fits = vec![b'a'; MAX_INPUT];
        assert_eq!(read_input(&mut fits.as_slice()).unwrap().len(), MAX_INPUT);
    }

    #[test]
    fn docker_usage_errors_exit_2() {
        let mut out = Vec::new();
        assert_eq!(
            docker_main(["docker-credential-tok"], &mut &b""[..], &mut out),
            exit::USAGE_OR_CONFIG
        );
        assert!(String::from_utf8(out).unwrap().starts_with("usage:"));
        let mut out = Vec::new();
        assert_eq!(
            docker_main(
                ["docker-credential-tok", "get", "extra"],
                &mut &b""[..],
                &mut out
            ),
            exit::USAGE_OR_CONFIG
        );
    }
}
