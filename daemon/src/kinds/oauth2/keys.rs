//! The keys of `kind = "oauth2"` with their documentation (the one source of its hints and its
//! README table); the `azure-ad` and `google-service-account` presets share some of them.

use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, Keys, PERSIST, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::kinds::jwt::KEYS as SIGNING;

pub(crate) const SCOPES: Key = Key::new(
    "scopes",
    "no",
    "Array of scope names, sent space-separated as `scope`.",
);
pub(crate) const REDIRECT_URI: Key = Key::new(
    "redirect_uri",
    "no (`http://127.0.0.1:0/callback`)",
    "`authorization_code` only: a loopback `http` URL (`127.0.0.1`, `[::1]` or `localhost`) \
     where tokend listens for the redirect; port 0 means any free port (RFC 8252), which the \
     server must allow for native clients.",
);
pub(crate) const LOGIN_TIMEOUT: Key = Key::new(
    "login_timeout",
    "no (`3m`)",
    "`authorization_code` only: how long `tok login` waits for the redirect (`10s` to `30m`).",
);

pub(crate) const CLIENT_ASSERTION: Key = Key::new(
    "client_assertion",
    "with `client_assertion`",
    "Template of the JWT the platform hands the job, e.g. \
     `\"${file:/var/run/secrets/tokens/azure-identity-token}\"` (a Kubernetes projected \
     service-account token; a `${file:…}` here may be readable by others, not writable), \
     `${env:…}` or `${cmd:…}`; read anew for every token request.",
);

const OWN: &[Key] = &[
    Key::new(
        "grant",
        "yes",
        "`client_credentials` (RFC 6749 4.4); `refresh_token` (a long-lived refresh token \
         exchanged for access tokens; rotated refresh tokens are followed); \
         `authorization_code` or `device_code` (a person logs in with `tok login`, see \
         [Logins](#logins)); `jwt_bearer` (RFC 7523 2.1: a signed assertion is the grant, for \
         service accounts); `token_exchange` (RFC 8693: `subject_token` is exchanged, see \
         [Identity federation](#identity-federation)).",
    ),
    Key::new(
        "token_url",
        "this or `issuer`",
        "The token endpoint (an http or https URL).",
    ),
    Key::new(
        "issuer",
        "this or `token_url`",
        "An OpenID Connect issuer whose discovery document names the token endpoint (and the \
         authorization, device and revocation endpoints).",
    ),
    Key::new("client_id", "yes", "Plain text."),
    Key::new(
        "client_secret",
        "for `client_credentials` (unless an assertion authenticates)",
        "Credential template. Leave it out for a public client.",
    ),
    Key::new(
        "client_auth",
        "no (`basic`)",
        "`basic` (HTTP Basic) or `post` (in the form body), with a `client_secret`; \
         `private_key_jwt` (RFC 7523 2.2: a JWT signed with `private_key` instead of a secret, \
         signed anew for every request); or `client_assertion` (the JWT the platform issues, \
         from `client_assertion`). Assertions do not work with `device_code`.",
    ),
    CLIENT_ASSERTION,
    SCOPES,
    Key::new(
        "params",
        "no",
        "Table of extra form parameters, e.g. `{ audience = \"…\" }` or `{ resource = \"…\" }`; \
         not `grant_type`, `scope`, `client_id`, `client_secret` or `refresh_token`.",
    ),
    Key::new(
        "refresh_token",
        "with `grant = \"refresh_token\"` only",
        "Credential template.",
    ),
    Key::new(
        "auth_url",
        "`authorization_code` with `token_url`",
        "The authorization endpoint (with `issuer`: from discovery).",
    ),
    Key::new(
        "device_url",
        "`device_code` with `token_url`",
        "The device authorization endpoint (with `issuer`: from discovery).",
    ),
    REDIRECT_URI,
    LOGIN_TIMEOUT,
    Key::new(
        "auth_params",
        "no",
        "`authorization_code` only: extra authorization-request parameters, e.g. \
         `{ prompt = \"consent\" }`; not the ones tokend sets (`response_type`, `client_id`, \
         `redirect_uri`, `scope`, `state`, PKCE).",
    ),
    Key::new(
        "revocation_url",
        "no",
        "Where `tok logout` revokes the refresh token (RFC 7009; with `issuer`: discovery's \
         `revocation_endpoint`).",
    ),
];

const ASSERTION_CLAIMS: &[Key] = &[
    Key::new(
        "assertion_issuer",
        "no (`client_id`)",
        "`jwt_bearer` only: the assertion's `iss`.",
    ),
    Key::new(
        "assertion_subject",
        "no (the issuer)",
        "`jwt_bearer` only: the assertion's `sub`.",
    ),
    Key::new(
        "assertion_audience",
        "no (the token endpoint URL)",
        "`jwt_bearer` only: the assertion's `aud`.",
    ),
];

/// The keys of `grant = "token_exchange"`.
const TOKEN_EXCHANGE: &[Key] = &[
    Key::new(
        "subject_token",
        "with `token_exchange`",
        "Credential template of the token to exchange: `${provider:NAME}` (another provider's \
         current token), a platform token file `${file:…}` (may be readable by others), \
         `${env:…}`, `${cmd:…}`; resolved for every request.",
    ),
    Key::new(
        "subject_token_type",
        "no (`urn:ietf:params:oauth:token-type:jwt`)",
        "The subject token's type URI (RFC 8693 3), e.g. \
         `urn:ietf:params:oauth:token-type:access_token`.",
    ),
    Key::new(
        "actor_token",
        "no",
        "`token_exchange` only: credential template of the token of who acts for the subject \
         (delegation), like `subject_token`.",
    ),
    Key::new(
        "actor_token_type",
        "with `actor_token` (`urn:ietf:params:oauth:token-type:jwt`)",
        "The actor token's type URI.",
    ),
    Key::new(
        "requested_token_type",
        "no",
        "`token_exchange` only: the type URI of the token wanted back.",
    ),
    Key::new(
        "audience",
        "no",
        "`token_exchange` only: where the new token is used, a name or an array of names.",
    ),
    Key::new(
        "resource",
        "no",
        "`token_exchange` only: where the new token is used, a URI or an array of URIs.",
    ),
];

const LIFETIME: &[Key] = &[
    Key::new(
        "ttl",
        "no",
        "Lifetime when the response has no `expires_in` and the token is no JWT with `exp` \
         (`90s`, `15m`, `2h`, `1d`).",
    ),
    TIMEOUT,
    PERSIST,
];

/// The keys of `kind = "oauth2"`.
pub(crate) const KEYS: Keys = &[
    OWN,
    SIGNING,
    ASSERTION_CLAIMS,
    TOKEN_EXCHANGE,
    LIFETIME,
    FLEET,
    PRESENTATION,
    ROUTES,
    OUTLETS,
];
