//! The provider keys for callers that cannot link the client: `proxy = { … }` (a local
//! auth-injecting proxy to one upstream origin, see [`crate::outlets::proxy`]) and `file = { … }`
//! (a token file kept current, see [`crate::outlets::file`]). Like the credential-helper
//! routes, they are not part of a provider's identity on reload: changing one keeps the cached
//! token.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeValue;
use url::Url;

use super::ConfigError;
use super::keys::Key;
use super::reader::Table;
use super::store::path_beside;

/// `proxy`: every kind and preset (an anonymous provider's proxy adds no header).
pub(crate) const PROXY: Key = Key::new(
    "proxy",
    "no",
    "`{ listen = \"127.0.0.1:8701\", upstream = \"https://api.example.com\" }`: a local auth \
     proxy that forwards to that one origin with the provider's header (see [The auth \
     proxy](#the-auth-proxy)).",
);

/// `file`: every kind and preset but `anonymous`.
pub(crate) const FILE: Key = Key::new(
    "file",
    "no",
    "`{ path = \"~/.cache/tokend/NAME.token\", format = \"raw\" }`: a token file the daemon \
     keeps current (see [Token files](#token-files)).",
);

/// The group every kind and preset that has a token lists.
pub(crate) const OUTLETS: &[Key] = &[PROXY, FILE];

/// The keys of a `proxy` table.
pub(crate) const PROXY_KEYS: &[Key] = &[
    Key::new(
        "listen",
        "yes",
        "`HOST:PORT` on a loopback address (`127.0.0.1:8701`, `[::1]:8701`; port 0 picks a free \
         one) or `unix:PATH` (a socket in a private directory; `~/` is the home directory).",
    ),
    Key::new(
        "upstream",
        "yes",
        "The one origin requests go to, `https://host[:port]`, optionally with a base path; \
         `http://` only for a loopback host.",
    ),
    Key::new(
        "retry_on",
        "no (`[401]`)",
        "Upstream statuses after which the token is invalidated and the request sent once more \
         with a fresh one (when its body is at most 1 MiB); `[]` turns this off.",
    ),
];

/// The keys of a `file` table.
pub(crate) const FILE_KEYS: &[Key] = &[
    Key::new(
        "path",
        "yes",
        "The file (`~/` is the home directory, a relative path is relative to the config file's \
         directory). Its directory is created 0700 if missing; the file is 0600.",
    ),
    Key::new(
        "format",
        "no (`raw`)",
        "`raw`: the token; `header`: the header line (`Authorization: Bearer …`); `json`: \
         the object `tok get --json` prints; `env`: `NAME_TOKEN='…'` (a systemd \
         `EnvironmentFile`, or `source` it).",
    ),
];

const PROXY_HINT: &str = "write it as proxy = { listen = \"127.0.0.1:8701\", upstream = \
     \"https://api.example.com\" }";
const LISTEN_HINT: &str = "use a loopback address and port such as \"127.0.0.1:8701\" or \
     \"[::1]:8701\" (the proxy is for this machine only), or \"unix:~/.cache/tokend/NAME.sock\"";
const UPSTREAM_HINT: &str = "use the API's origin, e.g. \"https://api.example.com\" (a base path \
     such as \"/v2\" may follow; no query, no user name or password); plain http only for \
     127.0.0.1, [::1] or localhost";
const FILE_HINT: &str = "write it as file = { path = \"~/.cache/tokend/NAME.token\" } \
     (optionally with format = \"raw\", \"header\", \"json\" or \"env\")";
const FORMAT_HINT: &str = "use one of: raw, header, json, env";

/// Where an auth proxy listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyListen {
    /// A loopback TCP address (port 0: any free port). Requests need the capability path
    /// prefix that `tok proxy-url` prints.
    Tcp(SocketAddr),
    /// A Unix socket, in a private directory; only this user's processes may connect.
    Unix(PathBuf),
}

impl std::fmt::Display for ProxyListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(address) => write!(f, "{address}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A provider's `proxy` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The provider whose header it adds.
    pub provider: String,
    pub listen: ProxyListen,
    /// The origin (and optional base path) every request goes to.
    pub upstream: Url,
    /// Upstream statuses that invalidate the token and retry once.
    pub retry_on: Vec<u16>,
}

/// What a token file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFileFormat {
    Raw,
    Header,
    Json,
    Env,
}

impl TokenFileFormat {
    const ALL: [(&'static str, Self); 4] = [
        ("raw", Self::Raw),
        ("header", Self::Header),
        ("json", Self::Json),
        ("env", Self::Env),
    ];

    /// The name as the config writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, format)| *format == self)
            .map_or("raw", |(name, _)| name)
    }
}

/// A provider's `file` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFileConfig {
    /// The provider whose token it holds.
    pub provider: String,
    pub path: PathBuf,
    pub format: TokenFileFormat,
}

/// A provider's outlets, with where each is written (for the duplicate checks across providers).
pub(crate) struct ReadOutlets {
    pub(crate) proxy: Option<(ProxyConfig, Range<usize>)>,
    pub(crate) file: Option<(TokenFileConfig, Range<usize>)>,
}

/// Reads the `proxy` and `file` tables of a provider (`check_keys` already refused them where
/// the kind does not list them).
pub(crate) fn read(table: &Table<'_, '_>) -> Result<ReadOutlets, ConfigError> {
    Ok(ReadOutlets {
        proxy: read_proxy(table)?,
        file: read_file(table)?,
    })
}

fn read_proxy(table: &Table<'_, '_>) -> Result<Option<(ProxyConfig, Range<usize>)>, ConfigError> {
    let Some(proxy) = table.table("proxy", PROXY_HINT)? else {
        return Ok(None);
    };
    proxy.check_keys_of(None, &[PROXY_KEYS], "`proxy`")?;
    let found = proxy.required_text("listen", "`proxy`", LISTEN_HINT)?;
    let listen = if let Some(path) = found.text.strip_prefix("unix:") {
        if cfg!(not(unix)) {
            return Err(proxy.error(
                &found.span,
                &found.key,
                "Unix-socket listeners need a Unix system".to_owned(),
                "listen on a loopback address such as \"127.0.0.1:8701\"",
            ));
        }
        if path.is_empty() {
            return Err(proxy.error(
                &found.span,
                &found.key,
                "`unix:` names no socket path".to_owned(),
                LISTEN_HINT,
            ));
        }
        ProxyListen::Unix(path_beside(table.ctx.path, path))
    } else {
        let address: SocketAddr = found.text.parse().map_err(|_| {
            proxy.error(
                &found.span,
                &found.key,
                format!("`{}` is not an address and port", found.key),
                LISTEN_HINT,
            )
        })?;
        if !address.ip().is_loopback() {
            return Err(proxy.error(
                &found.span,
                &found.key,
                format!("{} is not a loopback address", address.ip()),
                LISTEN_HINT,
            ));
        }
        ProxyListen::Tcp(address)
    };
    let span = found.span;

    let found = proxy.required_text("upstream", "`proxy`", UPSTREAM_HINT)?;
    let bad = |problem: String| proxy.error(&found.span, &found.key, problem, UPSTREAM_HINT);
    let mut upstream = Url::parse(found.text)
        .map_err(|err| bad(format!("`{}` is not a URL ({err})", found.key)))?;
    let host = upstream.host_str().unwrap_or_default().to_owned();
    match upstream.scheme() {
        "https" => {}
        "http" if tokend_protocol::host::is_loopback_host(&host) => {}
        "http" => {
            return Err(bad(format!(
                "plain http to {host} would send the token unencrypted"
            )));
        }
        other => return Err(bad(format!("unsupported scheme `{other}`"))),
    }
    if host.is_empty() {
        return Err(bad(format!("`{}` names no host", found.key)));
    }
    if upstream.query().is_some() || upstream.fragment().is_some() {
        return Err(bad(format!("`{}` has a query or fragment", found.key)));
    }
    if !upstream.username().is_empty() || upstream.password().is_some() {
        return Err(bad(format!(
            "`{}` holds a user name or password",
            found.key
        )));
    }
    // The base path, without a trailing slash: `/v2` + `/items` is `/v2/items`.
    let base = upstream.path().trim_end_matches('/').to_owned();
    upstream.set_path(&base);

    let retry_on = match proxy.entry("retry_on") {
        None => vec![401],
        Some((key, value)) => {
            let hint = "write a list of HTTP statuses, e.g. retry_on = [401, 403], or [] to never \
                        retry";
            let path = proxy.key_path("retry_on");
            let DeValue::Array(items) = value.get_ref() else {
                return Err(proxy.wrong_type(
                    &key.span(),
                    &path,
                    "an array",
                    value.get_ref(),
                    hint,
                ));
            };
            let mut statuses = Vec::new();
            for item in items {
                let status = match item.get_ref() {
                    DeValue::Integer(integer) => {
                        i64::from_str_radix(integer.as_str(), integer.radix()).ok()
                    }
                    _ => None,
                }
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| (400..=599).contains(n));
                match status {
                    Some(status) => statuses.push(status),
                    None => {
                        return Err(proxy.error(
                            &item.span(),
                            &path,
                            "not an HTTP error status (400 to 599)".to_owned(),
                            hint,
                        ));
                    }
                }
            }
            statuses
        }
    };
    Ok(Some((
        ProxyConfig {
            provider: table.provider.to_owned(),
            listen,
            upstream,
            retry_on,
        },
        span,
    )))
}

fn read_file(
    table: &Table<'_, '_>,
) -> Result<Option<(TokenFileConfig, Range<usize>)>, ConfigError> {
    let Some(file) = table.table("file", FILE_HINT)? else {
        return Ok(None);
    };
    file.check_keys_of(None, &[FILE_KEYS], "`file`")?;
    let found = file.required_text("path", "`file`", FILE_HINT)?;
    let path = path_beside(table.ctx.path, found.text);
    let span = found.span;
    let format = match file.str("format")? {
        None => TokenFileFormat::Raw,
        Some(found) => TokenFileFormat::ALL
            .iter()
            .find(|(name, _)| *name == found.text)
            .map(|(_, format)| *format)
            .ok_or_else(|| {
                file.error(
                    &found.span,
                    &found.key,
                    format!("unknown format {:?}", found.text),
                    FORMAT_HINT,
                )
            })?,
    };
    Ok(Some((
        TokenFileConfig {
            provider: table.provider.to_owned(),
            path,
            format,
        },
        span,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{check_errors, parse_ok};

    const STATIC: &str = "[providers.crm]\nkind = \"static\"\nsecret = \"${env:CRM}\"\n";

    #[test]
    fn proxies_and_files_are_read_apart_from_the_provider() {
        // Unix-socket listeners exist on Unix only; elsewhere the second proxy is on TCP.
        let (open_listen, open_expected) = if cfg!(unix) {
            (
                "unix:/run/x/open.sock",
                ProxyListen::Unix("/run/x/open.sock".into()),
            )
        } else {
            (
                "127.0.0.1:9",
                ProxyListen::Tcp("127.0.0.1:9".parse().unwrap()),
            )
        };
        let (config, _) = parse_ok(&format!(
            "{STATIC}proxy = {{ listen = \"127.0.0.1:0\", upstream = \"https://crm.example.com/api/\" }}\n\
             file = {{ path = \"tokens/crm.token\", format = \"env\" }}\n\
             [providers.open]\nkind = \"anonymous\"\n\
             proxy = {{ listen = \"{open_listen}\", upstream = \"http://127.0.0.1:9/\", retry_on = [] }}\n"
        ));
        assert_eq!(config.proxies.len(), 2);
        let crm = &config.proxies[0];
        assert_eq!(crm.provider, "crm");
        assert_eq!(crm.listen, ProxyListen::Tcp("127.0.0.1:0".parse().unwrap()));
        assert_eq!(crm.upstream.as_str(), "https://crm.example.com/api");
        assert_eq!(crm.retry_on, [401]);
        let open = &config.proxies[1];
        assert_eq!(open.listen, open_expected);
        assert!(open.retry_on.is_empty());
        assert_eq!(
            config.token_files,
            [TokenFileConfig {
                provider: "crm".into(),
                path: "/etc/tokend-test/tokens/crm.token".into(),
                format: TokenFileFormat::Env,
            }]
        );
    }

    #[test]
    fn outlet_errors_name_file_line_and_key() {
        let proxy = |body: &str| format!("{STATIC}proxy = {{ {body} }}\n");
        let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
            (
                "non-loopback listener",
                proxy("listen = \"0.0.0.0:8701\", upstream = \"https://x.example\""),
                4,
                Some("proxy.listen"),
                "not a loopback address",
            ),
            (
                "listen without a port",
                proxy("listen = \"127.0.0.1\", upstream = \"https://x.example\""),
                4,
                Some("proxy.listen"),
                "not an address and port",
            ),
            (
                "plain http to a remote host",
                proxy("listen = \"127.0.0.1:1\", upstream = \"http://x.example\""),
                4,
                Some("proxy.upstream"),
                "unencrypted",
            ),
            (
                "upstream with a query",
                proxy("listen = \"127.0.0.1:1\", upstream = \"https://x.example/?a=b\""),
                4,
                Some("proxy.upstream"),
                "query",
            ),
            (
                "upstream with credentials",
                proxy("listen = \"127.0.0.1:1\", upstream = \"https://u:p@x.example\""),
                4,
                Some("proxy.upstream"),
                "user name or password",
            ),
            (
                "missing upstream",
                proxy("listen = \"127.0.0.1:1\""),
                4,
                Some("proxy.upstream"),
                "needs `upstream`",
            ),
            (
                "unknown proxy key",
                proxy("listen = \"127.0.0.1:1\", upstream = \"https://x.example\", tls = true"),
                4,
                Some("proxy.tls"),
                "known keys: listen, upstream, retry_on",
            ),
            (
                "retry_on not a status",
                proxy(
                    "listen = \"127.0.0.1:1\", upstream = \"https://x.example\", retry_on = [200]",
                ),
                4,
                Some("proxy.retry_on"),
                "400 to 599",
            ),
            (
                "two proxies on one address",
                format!(
                    "{}[providers.b]\nkind = \"anonymous\"\nproxy = {{ listen = \"127.0.0.1:1\", upstream = \"https://y.example\" }}\n",
                    proxy("listen = \"127.0.0.1:1\", upstream = \"https://x.example\"")
                ),
                7,
                Some("proxy.listen"),
                "already the proxy of provider \"crm\"",
            ),
            (
                "unknown file format",
                format!("{STATIC}file = {{ path = \"/t/crm\", format = \"yaml\" }}\n"),
                4,
                Some("file.format"),
                "use one of: raw, header, json, env",
            ),
            (
                "file on an anonymous provider",
                "[providers.a]\nkind = \"anonymous\"\nfile = { path = \"/t/a\" }\n".to_owned(),
                3,
                Some("file"),
                "no meaning for kind \"anonymous\"",
            ),
            (
                "two providers, one token file",
                format!(
                    "{STATIC}file = {{ path = \"/t/x\" }}\n[providers.b]\nkind = \"static\"\nsecret = \"${{env:B}}\"\nfile = {{ path = \"/t/x\" }}\n"
                ),
                8,
                Some("file.path"),
                "already the token file of provider \"crm\"",
            ),
        ];
        check_errors(cases);
    }
}
