//! The soak's providers: about 50, of every kind and preset and every secret source, each with
//! its credentials, its token lifetime at the chaos upstream, and its `[providers.NAME]` table.
//! Secrets reach tokend through `${env:…}`, `${file:…}`, `${cmd:…}` and `${secret:…}`, never
//! as literals in the config.

use std::fmt::Write as _;
use std::path::Path;

/// Where a static provider's secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Env,
    File,
    Cmd,
    Secret,
}

/// What a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Static(Source),
    Salestim,
    Anonymous,
    /// `kind = "http"`: the expiry from a pointer (`expires_in` as a string) or the JWT `exp`.
    Http {
        jwt: bool,
        post: bool,
    },
    /// `grant = "client_credentials"`, the secret in Basic or in the form; a JWT without
    /// `expires_in`, or an opaque token with it.
    ClientCredentials {
        basic: bool,
        jwt: bool,
    },
    /// `grant = "refresh_token"`, rotating at every use.
    RefreshToken,
    AzureAd {
        jwt: bool,
    },
    Timekit,
    Crm,
}

impl Kind {
    /// Whether its token comes from the chaos upstream.
    pub(crate) fn fetches(self) -> bool {
        !matches!(self, Self::Static(_) | Self::Salestim | Self::Anonymous)
    }
}

/// One provider.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// The client secret, API key or static token.
    pub(crate) secret: String,
    /// The first refresh token of a `refresh_token` provider; CRM.COM's authentication code.
    pub(crate) refresh_token: String,
    /// Token lifetime at the upstream, in seconds.
    pub(crate) lifetime: u64,
    /// Asked for rarely (its token has expired by then: a cold get), not in the hot loop.
    pub(crate) cold: bool,
    /// The environment variable holding `secret` (and `<VAR>_CODE` the second one).
    pub(crate) var: String,
}

/// Every provider of the soak.
pub(crate) fn all() -> Vec<Spec> {
    use Kind::{
        Anonymous, AzureAd, ClientCredentials, Crm, Http, RefreshToken, Salestim, Static, Timekit,
    };
    let mut kinds = vec![
        (Static(Source::Env), 2),
        (Static(Source::File), 2),
        (Static(Source::Cmd), 1),
        (Static(Source::Secret), 1),
        (Salestim, 2),
        (Anonymous, 2),
        (
            Http {
                jwt: false,
                post: false,
            },
            4,
        ),
        (
            Http {
                jwt: false,
                post: true,
            },
            3,
        ),
        (
            Http {
                jwt: true,
                post: false,
            },
            3,
        ),
        (
            Http {
                jwt: true,
                post: true,
            },
            2,
        ),
        (
            ClientCredentials {
                basic: true,
                jwt: false,
            },
            3,
        ),
        (
            ClientCredentials {
                basic: true,
                jwt: true,
            },
            2,
        ),
        (
            ClientCredentials {
                basic: false,
                jwt: false,
            },
            3,
        ),
        (
            ClientCredentials {
                basic: false,
                jwt: true,
            },
            2,
        ),
        (RefreshToken, 6),
        (AzureAd { jwt: true }, 2),
        (AzureAd { jwt: false }, 2),
        (Timekit, 3),
        (Crm, 4),
    ];
    let mut specs = Vec::new();
    for (kind, count) in kinds.drain(..) {
        for _ in 0..count {
            let index = specs.len();
            let prefix = match kind {
                Static(_) => "static",
                Salestim => "salestim",
                Anonymous => "anon",
                Http { .. } => "http",
                ClientCredentials { .. } => "cc",
                RefreshToken => "rt",
                AzureAd { .. } => "azure",
                Timekit => "timekit",
                Crm => "crm",
            };
            // Every fifth fetching provider is cold, and lives shorter than the gap between
            // its gets.
            let cold = kind.fetches() && kind != RefreshToken && index % 5 == 0;
            specs.push(Spec {
                name: format!("{prefix}-{index:02}"),
                kind,
                secret: format!("soak-secret-{index:02}-{:016x}", fastrand::u64(..)),
                refresh_token: format!("rt-first-{index:02}-{:016x}", fastrand::u64(..)),
                lifetime: if cold {
                    fastrand::u64(20..=40)
                } else {
                    fastrand::u64(45..=150)
                },
                cold,
                var: format!("SOAK_SECRET_{index:02}"),
            });
        }
    }
    specs
}

/// The environment tokend gets: each provider's secrets.
pub(crate) fn environment(specs: &[Spec]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for spec in specs {
        env.push((spec.var.clone(), spec.secret.clone()));
        if matches!(spec.kind, Kind::RefreshToken | Kind::Crm) {
            env.push((format!("{}_CODE", spec.var), spec.refresh_token.clone()));
        }
    }
    env
}

/// Writes the files `${file:…}` and `${cmd:cat …}` read (0600, in `dir`, which is private).
pub(crate) fn write_secret_files(specs: &[Spec], dir: &Path) {
    for spec in specs {
        if matches!(spec.kind, Kind::Static(Source::File | Source::Cmd)) {
            tokend_e2e::write_private(&dir.join(&spec.name), &spec.secret);
        }
    }
}

/// The whole config. `variant` flips a detail of every OAuth 2.0 and `http` provider (scopes,
/// timeout), so that a reload between the two variants replaces those providers and keeps the
/// others.
pub(crate) fn config(specs: &[Spec], base: &str, secrets_dir: &Path, variant: bool) -> String {
    let mut toml = String::new();
    let scopes = if variant {
        r#"["soak.read", "soak.write"]"#
    } else {
        r#"["soak.read"]"#
    };
    let timeout = if variant { "9s" } else { "10s" };
    for spec in specs {
        let name = &spec.name;
        let var = &spec.var;
        let _ = writeln!(toml, "\n[providers.{name}]");
        let table = match spec.kind {
            Kind::Static(Source::Env) => format!("kind = \"static\"\nsecret = \"${{env:{var}}}\""),
            Kind::Static(Source::File) => format!(
                "kind = \"static\"\nsecret = \"${{file:{}}}\"",
                secrets_dir.join(name).display()
            ),
            Kind::Static(Source::Cmd) => format!(
                "kind = \"static\"\nsecret = \"${{cmd:cat {}}}\"",
                secrets_dir.join(name).display()
            ),
            Kind::Static(Source::Secret) => {
                format!("kind = \"static\"\nsecret = \"${{secret:{name}}}\"")
            }
            Kind::Salestim => format!("preset = \"salestim\"\napi_key = \"${{env:{var}}}\""),
            Kind::Anonymous => "kind = \"anonymous\"".to_owned(),
            Kind::Http { jwt, post } => {
                let mut table = format!(
                    "kind = \"http\"\nurl = \"{base}/http/{name}/token\"\n\
                     headers = {{ X-API-KEY = \"${{env:{var}}}\" }}\ntimeout = \"{timeout}\"\n"
                );
                if post {
                    table.push_str("method = \"POST\"\njson = { grant = \"soak\" }\n");
                }
                if jwt {
                    table.push_str("token = \"/token\"\nexpires = \"jwt\"");
                } else {
                    table.push_str("token = \"/data/token\"\nexpires = \"/data/expires_in\"");
                }
                table
            }
            Kind::ClientCredentials { basic, .. } => format!(
                "kind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                 token_url = \"{base}/oauth/{name}/token\"\nclient_id = \"{name}\"\n\
                 client_secret = \"${{env:{var}}}\"\nclient_auth = \"{}\"\nscopes = {scopes}",
                if basic { "basic" } else { "post" }
            ),
            Kind::RefreshToken => format!(
                "kind = \"oauth2\"\ngrant = \"refresh_token\"\n\
                 token_url = \"{base}/refresh/{name}/token\"\nclient_id = \"{name}\"\n\
                 client_secret = \"${{env:{var}}}\"\nrefresh_token = \"${{env:{var}_CODE}}\"\n\
                 scopes = {scopes}"
            ),
            Kind::AzureAd { .. } => format!(
                "preset = \"azure-ad\"\nauthority = \"{base}/azure\"\ntenant = \"{name}\"\n\
                 client_id = \"{name}\"\nclient_secret = \"${{env:{var}}}\"\n\
                 scopes = [\"api://soak/.default\"]\ntimeout = \"{timeout}\""
            ),
            Kind::Timekit => format!(
                "preset = \"timekit\"\nbase_url = \"{base}/timekit/{name}\"\napp = \"{name}\"\n\
                 email = \"{name}@example.com\"\napi_key = \"${{env:{var}}}\""
            ),
            Kind::Crm => format!(
                "preset = \"crm.com\"\nbase_url = \"{base}/crm/{name}\"\n\
                 api_key = \"${{env:{var}}}\"\nauthentication_code = \"${{env:{var}_CODE}}\""
            ),
        };
        toml.push_str(&table);
        toml.push('\n');
    }
    toml
}
