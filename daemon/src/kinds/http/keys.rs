//! The keys of `kind = "http"` and of its nested tables, with their documentation (the one
//! source of their hints and README tables).

use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, Keys, PERSIST, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::kinds::jwt::KEYS as SIGNING;

const OWN: &[Key] = &[
    Key::new(
        "method",
        "no",
        "`GET` or `POST` (any case). Default `GET`, or `POST` with a body.",
    ),
    Key::new("url", "yes", "The token endpoint, an http or https URL."),
    Key::new(
        "basic",
        "no",
        "`{ user = …, password = … }`: HTTP Basic; both credential templates; `password` \
         defaults to `\"\"`.",
    ),
    Key::new(
        "headers",
        "no",
        "Table of header name → template, e.g. `{ Authorization = \"Bearer ${jwt}\" }`. No \
         `Authorization` when `basic` is set.",
    ),
    Key::new(
        "jwt",
        "no",
        "`{ private_key, claims, lifetime, … }`: a JWT signed for every request, which the \
         templates use as `${jwt}` (its keys: `jwt = { … }` below).",
    ),
    Key::new(
        "json",
        "no",
        "The request body: any TOML value tree, sent as JSON (strings are templates; dates are \
         not allowed).",
    ),
    Key::new(
        "form",
        "no",
        "The request body as form fields (values are templates). Not with `json`.",
    ),
    Key::new(
        "token",
        "yes",
        "JSON pointer (RFC 6901) to the token in the response, e.g. `/data/token`.",
    ),
    Key::new(
        "expires",
        "no",
        "`jwt` (the token's `exp` claim, a number or a numeric string), or a JSON pointer to an \
         `expires_in` number of seconds.",
    ),
    Key::new(
        "expires_at",
        "no",
        "Instead of `expires`: a JSON pointer to the expiry as an RFC 3339 timestamp, e.g. \
         `/expires_at` for `\"2026-07-11T22:14:10Z\"`.",
    ),
    Key::new(
        "ttl",
        "no",
        "Lifetime when the response gives none. Without it the token is kept until \
         invalidated.",
    ),
    Key::new(
        "ok",
        "no",
        "`{ pointer, equals, message }`: the response is a success only if the value at \
         `pointer` equals `equals` (a string, integer or boolean); otherwise the error shows \
         the value at `message`.",
    ),
    TIMEOUT,
    PERSIST,
];

/// The keys of `kind = "http"`.
pub(crate) const KEYS: Keys = &[OWN, FLEET, PRESENTATION, ROUTES, OUTLETS];

/// The keys of `jwt = { … }`: the signing key's, then its own.
pub(crate) const JWT: Keys = &[SIGNING, JWT_OWN];

/// The keys of `jwt = { … }` besides the signing key's.
const JWT_OWN: &[Key] = &[
    Key::new(
        "claims",
        "no",
        "Table of claims (strings are templates), e.g. `{ iss = \"123456\" }`; tokend adds \
         `iat`, `exp` and a random `jti`.",
    ),
    Key::new(
        "lifetime",
        "no (`5m`)",
        "`exp` is this long after now (`1s` to `1h`).",
    ),
    Key::new(
        "backdate",
        "no (`0s`)",
        "`iat` is this long before now, for clock drift (at most `5m`).",
    ),
];

/// The keys of `basic = { … }`.
pub(crate) const BASIC: &[Key] = &[
    Key::new("user", "yes", "Credential template, not empty."),
    Key::new("password", "no (`\"\"`)", "Credential template."),
];

/// The keys of `ok = { … }`.
pub(crate) const OK: &[Key] = &[
    Key::new("pointer", "yes", "JSON pointer to the status value."),
    Key::new(
        "equals",
        "yes",
        "The value (string, integer or boolean) that means success.",
    ),
    Key::new(
        "message",
        "no",
        "JSON pointer to the explanation shown when the check fails.",
    ),
];
