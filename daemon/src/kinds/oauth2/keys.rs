//! The keys of `kind = "oauth2"` with their documentation (the one source of its hints and its
//! README table); the `azure-ad` preset shares some of them.

use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, Keys, PERSIST, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;

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

const OWN: &[Key] = &[
    Key::new(
        "grant",
        "yes",
        "`client_credentials` (RFC 6749 4.4); `refresh_token` (a long-lived refresh token \
         exchanged for access tokens; rotated refresh tokens are followed); \
         `authorization_code` or `device_code` (a person logs in with `tok login`, see \
         [Logins](#logins)); `jwt_bearer` (RFC 7523 2.1: a signed assertion is the grant, for \
         service accounts).",
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
        "for `client_credentials` (unless `private_key_jwt`)",
        "Credential template. Leave it out for a public client.",
    ),
    Key::new(
        "client_auth",
        "no (`basic`)",
        "`basic` (HTTP Basic) or `post` (in the form body), with a `client_secret`; or \
         `private_key_jwt` (RFC 7523 2.2: a JWT signed with `private_key` instead of a secret, \
         signed anew for every request; not with `device_code`).",
    ),
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
    Key::new(
        "private_key",
        "with `private_key_jwt` or `jwt_bearer`",
        "Credential template holding a PEM private key (PKCS#8, PKCS#1 or SEC1; line breaks \
         allowed), e.g. `\"${file:~/.config/tokend/key.pem}\"`.",
    ),
    Key::new("key_id", "no", "The `kid` header of the signed assertions."),
    Key::new(
        "signing_alg",
        "no (`RS256`)",
        "`RS256` (RSA key) or `ES256` (P-256 key).",
    ),
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
pub(crate) const KEYS: Keys = &[OWN, FLEET, PRESENTATION, ROUTES, OUTLETS];
