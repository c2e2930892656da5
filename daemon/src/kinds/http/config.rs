//! Reading `kind = "http"`: the request (URL, method, Basic pair, headers, body, the signed
//! `jwt`), where the token and its expiry are in the answer, and the success check.

use std::time::Duration;

use toml::de::DeValue;

use super::{
    BasicPair, ExpiresFrom, HttpBody, HttpExchange, HttpJwt, HttpMethod, JsonTemplate, METHODS,
    OkCheck, keys,
};
use crate::config::ConfigError;
use crate::config::reader::{
    CREDENTIAL, CREDENTIAL_OR_EMPTY, Literal, Rules, STRING_HINT, Str, TEXT, Table,
};
use crate::config::values::{is_http_token, is_json_pointer, literal_template};
use crate::kinds::jwt::read_signing_key;
use crate::kinds::{KindSpec, ProviderKind, Read};
use crate::secret::SecretTemplate;

/// Reads `kind = "http"`.
pub(super) fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    let (url, _) = table.url("url")?.ok_or_else(|| {
        table.missing(
            "url",
            "kind \"http\" needs a `url`".to_owned(),
            "add the token endpoint, e.g. url = \"https://api.example.com/token\"",
        )
    })?;

    let basic = match table.table(
        "basic",
        "write it as basic = { user = \"${env:USER}\", password = \"${env:PASSWORD}\" }",
    )? {
        Some(basic) => Some(basic_pair(&basic, literals)?),
        None => None,
    };

    let mut headers: Vec<(String, SecretTemplate)> = Vec::new();
    if let Some(table_headers) = table.table(
        "headers",
        "write it as a table, e.g. headers = { \"X-Client\" = \"tokend\" }",
    )? {
        for &entry in &table_headers.entries {
            let (name, _) = entry;
            let name_span = name.span();
            let found = table_headers.entry_str(entry, STRING_HINT)?;
            let name = name.get_ref().as_ref();
            if !is_http_token(name) {
                return Err(table_headers.error(
                    &name_span,
                    &found.key,
                    "not a valid HTTP header name".to_owned(),
                    "use a header name such as \"X-Client\" (no spaces, colons or control \
                     characters)",
                ));
            }
            if basic.is_some() && name.eq_ignore_ascii_case("authorization") {
                return Err(table_headers.error(
                    &name_span,
                    &found.key,
                    "an Authorization header is set as well as `basic`".to_owned(),
                    "remove one of them: basic already sends the Authorization header",
                ));
            }
            if headers
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
            {
                return Err(table_headers.error(
                    &name_span,
                    &found.key,
                    "this header is given twice (header names ignore case)".to_owned(),
                    "keep one of them",
                ));
            }
            if found.text.is_empty() {
                return Err(table_headers.error(
                    &found.span,
                    &found.key,
                    "the header value is empty".to_owned(),
                    "give it a value, or remove the header",
                ));
            }
            let value = table_headers.parse_template(&found, TEXT, literals)?;
            headers.push((name.to_owned(), value));
        }
    }

    let json = match table.entry("json") {
        Some((name, value)) => Some((name.span(), table.json("json", value)?)),
        None => None,
    };
    let form = match table.table(
        "form",
        "write it as a table, e.g. form = { grant_type = \"password\" }",
    )? {
        Some(form) => {
            let mut fields = Vec::with_capacity(form.entries.len());
            for &entry in &form.entries {
                let found = form.entry_str(entry, STRING_HINT)?;
                let value = form.parse_template(&found, TEXT, literals)?;
                fields.push((entry.0.get_ref().to_string(), value));
            }
            Some((form.anchor.clone(), fields))
        }
        None => None,
    };
    let body = match (json, form) {
        (Some((json_span, _)), Some((form_span, _))) => {
            let (span, key) = if json_span.start > form_span.start {
                (json_span, "json")
            } else {
                (form_span, "form")
            };
            return Err(table.error(
                &span,
                key,
                "`json` and `form` are both set".to_owned(),
                "a request has one body: keep one of them",
            ));
        }
        (Some((_, json)), None) => Some(HttpBody::Json(json)),
        (None, Some((_, form))) => Some(HttpBody::Form(form)),
        (None, None) => None,
    };

    let method = match table.str("method")? {
        None if body.is_some() => HttpMethod::Post,
        None => HttpMethod::Get,
        Some(found) => {
            let method = if found.text.eq_ignore_ascii_case("get") {
                HttpMethod::Get
            } else if found.text.eq_ignore_ascii_case("post") {
                HttpMethod::Post
            } else {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    format!("unknown method {:?}", found.text),
                    format!("use one of: {}", METHODS.map(HttpMethod::as_str).join(", ")),
                ));
            };
            if method == HttpMethod::Get && body.is_some() {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    "method GET cannot send a body (`json` or `form`)".to_owned(),
                    "use method = \"POST\" (the default with a body), or remove the body",
                ));
            }
            method
        }
    };

    let token = table.pointer("token")?.ok_or_else(|| {
        table.missing(
            "token",
            "kind \"http\" needs a `token`".to_owned(),
            "add the JSON pointer to the token in the response, e.g. token = \"/access_token\"",
        )
    })?;

    let expires_at = table.pointer("expires_at")?;
    let expires = match (table.str("expires")?, expires_at) {
        (Some(found), Some(_)) => {
            return Err(table.error(
                &found.span,
                &found.key,
                "`expires` and `expires_at` are both set".to_owned(),
                "keep one: expires for a JWT or a number of seconds, expires_at for a timestamp",
            ));
        }
        (None, Some(pointer)) => ExpiresFrom::At(pointer),
        (found, None) => expires(table, found)?,
    };

    let ttl = table.duration("ttl")?;
    let ok = ok_check(table)?;
    let timeout = table.timeout()?;
    let jwt = jwt(table, literals)?;
    if let Some(span) = table.key_span("jwt")
        && !(headers.iter().any(|(_, value)| value.refers_to_jwt())
            || basic
                .as_ref()
                .is_some_and(|basic| basic.user.refers_to_jwt() || basic.password.refers_to_jwt())
            || match &body {
                Some(HttpBody::Form(fields)) => fields.iter().any(|(_, v)| v.refers_to_jwt()),
                Some(HttpBody::Json(json)) => {
                    let mut templates = Vec::new();
                    json.templates(&mut templates);
                    templates.iter().any(|t| t.refers_to_jwt())
                }
                None => false,
            })
    {
        return Err(table.error(
            &span,
            "jwt",
            "`jwt` is set but no template uses `${jwt}`".to_owned(),
            "send it, e.g. headers = { Authorization = \"Bearer ${jwt}\" }, or remove jwt",
        ));
    }

    let exchange = HttpExchange {
        method,
        url,
        basic,
        headers,
        body,
        token,
        expires,
        ttl,
        ok,
        timeout,
        jwt,
    };
    Ok((ProviderKind::Http(Box::new(exchange)), None))
}

/// `expires = …`: `"jwt"` or a pointer to a number of seconds.
fn expires(table: &Table<'_, '_>, found: Option<Str<'_>>) -> Result<ExpiresFrom, ConfigError> {
    Ok(match found {
        None => ExpiresFrom::Unknown,
        Some(found) if found.text == "jwt" => ExpiresFrom::Jwt,
        Some(found) if is_json_pointer(found.text) => ExpiresFrom::Pointer(found.text.to_owned()),
        Some(found) => {
            return Err(table.error(
                &found.span,
                &found.key,
                "`expires` is neither \"jwt\" nor a JSON pointer".to_owned(),
                "use expires = \"jwt\" when the token is a JWT, or a pointer to an expires_in \
                 number of seconds, e.g. \"/expires_in\"; expires_at for an RFC 3339 \
                 timestamp; or remove it",
            ));
        }
    })
}

/// `jwt = { private_key, signing_alg, key_id, certificate, claims, lifetime, backdate }`.
fn jwt(table: &Table<'_, '_>, literals: &mut Vec<Literal>) -> Result<Option<HttpJwt>, ConfigError> {
    const LIFETIME: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
    const MAX_BACKDATE: Duration = Duration::from_secs(300);
    let Some(jwt) = table.table(
        "jwt",
        "write it as jwt = { private_key = \"${file:…}\", claims = { iss = \"…\" } }",
    )?
    else {
        return Ok(None);
    };
    jwt.check_keys_of(None, keys::JWT, "`jwt`")?;
    let key = read_signing_key(&jwt, literals, true, "sign with the jwt table")?
        .expect("a key is read when needed");
    let claims = match jwt.entry("claims") {
        None => JsonTemplate::Object(Vec::new()),
        Some((name, value)) => {
            if !matches!(value.get_ref(), DeValue::Table(_)) {
                return Err(jwt.wrong_type(
                    &name.span(),
                    &jwt.key_path("claims"),
                    "a table",
                    value.get_ref(),
                    "write the claims as a table, e.g. claims = { iss = \"123456\" }",
                ));
            }
            let claims = jwt.json(&jwt.key_path("claims"), value)?;
            if let JsonTemplate::Object(fields) = &claims
                && let Some((reserved, _)) = fields
                    .iter()
                    .find(|(claim, _)| matches!(claim.as_str(), "iat" | "exp" | "jti"))
            {
                return Err(jwt.error(
                    &name.span(),
                    &jwt.key_path("claims"),
                    format!("`{reserved}` is a claim tokend sets itself"),
                    "remove it: iat and exp come from lifetime and backdate, jti is random",
                ));
            }
            let mut templates = Vec::new();
            claims.templates(&mut templates);
            if templates.iter().any(|t| t.refers_to_jwt()) {
                return Err(jwt.error(
                    &name.span(),
                    &jwt.key_path("claims"),
                    "a claim refers to `${jwt}`, the JWT being signed".to_owned(),
                    "give the claim its value",
                ));
            }
            claims
        }
    };
    let lifetime = jwt
        .duration("lifetime")?
        .unwrap_or(Duration::from_secs(300));
    if !(LIFETIME.0..=LIFETIME.1).contains(&lifetime) {
        let span = jwt.key_span("lifetime").unwrap_or_default();
        return Err(jwt.error(
            &span,
            &jwt.key_path("lifetime"),
            "`lifetime` is out of range".to_owned(),
            "use a duration from 1s to 1h (default 5m)",
        ));
    }
    let backdate = jwt.duration("backdate")?.unwrap_or_default();
    if backdate > MAX_BACKDATE {
        let span = jwt.key_span("backdate").unwrap_or_default();
        return Err(jwt.error(
            &span,
            &jwt.key_path("backdate"),
            "`backdate` is more than 5m".to_owned(),
            "a minute covers the usual clock drift, e.g. backdate = \"60s\"",
        ));
    }
    Ok(Some(HttpJwt {
        key,
        claims,
        lifetime,
        backdate,
    }))
}

/// `basic = { user = …, password = … }`.
fn basic_pair(
    basic: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<BasicPair, ConfigError> {
    basic.check_keys_of(None, &[keys::BASIC], "`basic`")?;
    let user = basic.str("user")?.ok_or_else(|| {
        basic.missing(
            "user",
            "`basic` needs a `user`".to_owned(),
            "add it, e.g. basic = { user = \"${env:USER}\", password = \"${env:PASSWORD}\" }",
        )
    })?;
    let user = basic_user(basic, &user, CREDENTIAL, literals)?;
    let password = match basic.str("password")? {
        Some(found) => basic.parse_template(&found, CREDENTIAL_OR_EMPTY, literals)?,
        None => literal_template(""),
    };
    Ok(BasicPair { user, password })
}

/// The user half of an HTTP Basic pair: a template that, when written literally, has no `:`
/// (RFC 7617).
pub(crate) fn basic_user(
    table: &Table<'_, '_>,
    found: &Str<'_>,
    rules: Rules,
    literals: &mut Vec<Literal>,
) -> Result<SecretTemplate, ConfigError> {
    let template = table.parse_template(found, rules, literals)?;
    if template.is_literal() && found.text.contains(':') {
        return Err(table.error(
            &found.span,
            &found.key,
            format!("`{}` contains `:`", found.key),
            "an HTTP Basic user name cannot contain `:`; fix the value",
        ));
    }
    Ok(template)
}

/// `ok = { pointer = …, equals = …, message = … }`.
fn ok_check(table: &Table<'_, '_>) -> Result<Option<OkCheck>, ConfigError> {
    const HINT: &str = "write it as ok = { pointer = \"/status/code\", equals = \"OK\" }";
    let Some(ok) = table.table("ok", HINT)? else {
        return Ok(None);
    };
    ok.check_keys_of(None, &[keys::OK], "`ok`")?;
    let pointer = ok.pointer("pointer")?.ok_or_else(|| {
        ok.missing(
            "pointer",
            "`ok` needs a `pointer`".to_owned(),
            "add the JSON pointer to the status value, e.g. pointer = \"/status/code\"",
        )
    })?;
    let equals = match ok.entry("equals") {
        None => {
            return Err(ok.missing(
                "equals",
                "`ok` needs `equals`".to_owned(),
                "add the value that means success, e.g. equals = \"OK\"",
            ));
        }
        Some((name, value)) => match value.get_ref() {
            DeValue::String(text) => text.to_string(),
            DeValue::Boolean(flag) => flag.to_string(),
            DeValue::Integer(integer) => i64::from_str_radix(integer.as_str(), integer.radix())
                .map_or_else(|_| integer.to_string(), |number| number.to_string()),
            other => {
                return Err(ok.wrong_type(
                    &name.span(),
                    &ok.key_path("equals"),
                    "a string, integer or boolean",
                    other,
                    "write the success value, e.g. equals = \"OK\" or equals = 0",
                ));
            }
        },
    };
    let message = ok.pointer("message")?;
    Ok(Some(OkCheck {
        pointer,
        equals,
        message,
    }))
}
