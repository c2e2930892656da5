//! The exchange itself: signs the request's JWT (`${jwt}`) if it has one, builds the request from
//! the templates (resolving every secret at each fetch, so a rotated secret file is picked up),
//! sends it, classifies the answer and reads the token and its lifetime from the JSON.

use std::time::Duration;

use serde_json::Value;
use tokend_protocol::{Secret, clock};

use super::{ExpiresFrom, HttpBody, HttpExchange, HttpJwt, HttpMethod, JsonTemplate};
use crate::kinds::fetched::{lifetime_of, one_line, seconds};
use crate::kinds::jwt::{random_jti, sign};
use crate::kinds::{FetchCx, FetchError, Fetched, Lifetime};
use crate::upstream::{Answer, shown};

/// Sends the exchange's request and reads the token (and its expiry) from the answer.
pub(crate) async fn fetch(
    cx: &FetchCx<'_>,
    exchange: &HttpExchange,
) -> Result<Fetched, FetchError> {
    let (where_, answer) = send(cx, exchange).await?;
    read_answer(exchange, &where_, &answer)
}

/// Sends the exchange's request: its answer, whatever its status, and how messages name the
/// request (`POST URL`).
pub(crate) async fn send(
    cx: &FetchCx<'_>,
    exchange: &HttpExchange,
) -> Result<(String, Answer), FetchError> {
    let signed = match &exchange.jwt {
        Some(jwt) => Some(Secret::new(sign_jwt(cx, jwt).await?)),
        None => None,
    };
    let cx = &FetchCx {
        jwt: signed.as_ref(),
        ..*cx
    };
    let where_ = format!("{} {}", exchange.method.as_str(), shown(&exchange.url));
    let method = match exchange.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
    };
    let mut request = cx.http.client().request(method, exchange.url.clone());
    if let Some(timeout) = exchange.timeout {
        request = request.timeout(timeout);
    }
    if let Some(basic) = &exchange.basic {
        let user = cx.resolve("basic.user", &basic.user).await?;
        let password = cx
            .resolve_allow_empty("basic.password", &basic.password)
            .await?;
        cx.sent.record_basic(user.expose(), password.expose());
        request = request.basic_auth(user.expose(), Some(password.expose()));
    }
    for (header, template) in &exchange.headers {
        let value = cx.resolve(&format!("headers.{header}"), template).await?;
        request = request.header(header.as_str(), value.expose());
    }
    match &exchange.body {
        Some(HttpBody::Json(template)) => {
            let body = json_value(cx, template).await?;
            request = request.json(&body);
        }
        Some(HttpBody::Form(fields)) => {
            let mut pairs = Vec::with_capacity(fields.len());
            for (key, template) in fields {
                let value = cx
                    .resolve_allow_empty(&format!("form.{key}"), template)
                    .await?;
                pairs.push((key.clone(), value.expose().to_owned()));
            }
            request = request.form(&pairs);
        }
        None => {}
    }
    let request = request
        .build()
        .map_err(|err| FetchError::Config(format!("{where_}: {err}")))?;
    let answer = cx.send(request).await?;
    Ok((where_, answer))
}

/// Reads the token and its lifetime from the endpoint's answer: the status, the `ok` check, the
/// token pointer and the expiry (`where_` names the request in messages).
pub(crate) fn read_answer(
    exchange: &HttpExchange,
    where_: &str,
    answer: &Answer,
) -> Result<Fetched, FetchError> {
    let document = parse_answer(where_, answer)?;
    if let Some(check) = &exchange.ok {
        let value = document.pointer(&check.pointer).map(scalar_text);
        if value.as_deref() != Some(check.equals.as_str()) {
            let explanation = check
                .message
                .as_deref()
                .and_then(|pointer| document.pointer(pointer))
                .map(scalar_text)
                .filter(|text| !text.is_empty())
                .map(|text| format!(": {}", one_line(&text)))
                .unwrap_or_default();
            return Err(FetchError::Rejected {
                message: format!(
                    "{where_}: {} is {} instead of {:?}{explanation}",
                    check.pointer,
                    value.map_or_else(|| "missing".to_owned(), |v| format!("{:?}", one_line(&v))),
                    check.equals
                ),
                needs_login: false,
            });
        }
    }
    let token = document
        .pointer(&exchange.token)
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(|token| Secret::new(token.to_owned()))
        .ok_or_else(|| FetchError::Transient {
            message: format!(
                "{where_}: the response has no token (a string) at {}",
                exchange.token
            ),
            retry_after: None,
        })?;
    let lifetime = match &exchange.expires {
        ExpiresFrom::Jwt => {
            lifetime_of(None, &token, exchange.ttl, true).map_err(|err| err.at(where_))?
        }
        ExpiresFrom::Pointer(pointer) => {
            let seconds = document.pointer(pointer).and_then(seconds).ok_or_else(|| {
                FetchError::Transient {
                    message: format!(
                        "{where_}: the response has no number of seconds at {pointer}"
                    ),
                    retry_after: None,
                }
            })?;
            Lifetime::Expires(Duration::from_secs(seconds))
        }
        ExpiresFrom::At(pointer) => {
            let at = document
                .pointer(pointer)
                .and_then(Value::as_str)
                .and_then(|text| chrono::DateTime::parse_from_rfc3339(text.trim()).ok())
                .ok_or_else(|| FetchError::Transient {
                    message: format!(
                        "{where_}: the response has no RFC 3339 timestamp at {pointer}"
                    ),
                    retry_after: None,
                })?;
            // Before the epoch or past: expired (the cache refuses it as such). Measured to
            // the nanosecond against the whole second, rounded down, it names.
            let at = u64::try_from(at.timestamp()).unwrap_or(0);
            Lifetime::Expires(clock::until_unix_secs(at).unwrap_or(Duration::MAX))
        }
        ExpiresFrom::Unknown => exchange.ttl.map_or(Lifetime::Unbounded, Lifetime::Expires),
    };
    Ok(Fetched::new(token, lifetime))
}

/// Signs the request's JWT: the configured claims, `iat` (`backdate` ago), `exp` (`lifetime`
/// from now) and a random `jti`.
pub(crate) async fn sign_jwt(cx: &FetchCx<'_>, jwt: &HttpJwt) -> Result<String, FetchError> {
    let mut claims = match json_value(cx, &jwt.claims).await? {
        Value::Object(claims) => claims,
        _ => serde_json::Map::new(),
    };
    let now = clock::unix_now();
    claims.insert(
        "iat".to_owned(),
        Value::from(now.saturating_sub(jwt.backdate.as_secs())),
    );
    claims.insert("exp".to_owned(), Value::from(now + jwt.lifetime.as_secs()));
    claims.insert("jti".to_owned(), Value::from(random_jti()));
    sign(cx, &jwt.key, &Value::Object(claims))
        .await
        .map_err(|err| err.map_message(|message| format!("jwt: {message}")))
}

/// Classifies a non-2xx answer, or parses a 2xx one as JSON.
pub(crate) fn parse_answer(where_: &str, answer: &Answer) -> Result<Value, FetchError> {
    match answer.status {
        200..=299 => serde_json::from_slice(&answer.body).map_err(|_| FetchError::Transient {
            message: format!("{where_}: expected JSON, got {}", answer.describe_body()),
            retry_after: answer.retry_after,
        }),
        401 | 403 => Err(FetchError::Rejected {
            message: format!(
                "{where_}: HTTP {} (credentials refused); check the provider's keys",
                answer.status
            ),
            needs_login: false,
        }),
        429 | 500..=599 => Err(FetchError::Transient {
            message: format!(
                "{where_}: HTTP {} with {}",
                answer.status,
                answer.describe_body()
            ),
            retry_after: answer.retry_after,
        }),
        status => Err(FetchError::Rejected {
            message: format!(
                "{where_}: HTTP {status} with {}; check the provider's settings",
                answer.describe_body()
            ),
            needs_login: false,
        }),
    }
}

/// Builds the JSON body, resolving every string template.
async fn json_value(cx: &FetchCx<'_>, template: &JsonTemplate) -> Result<Value, FetchError> {
    // Iterative rather than recursive: async recursion would need boxing.
    enum Work<'a> {
        Visit(&'a JsonTemplate),
        Array(usize),
        Object(Vec<String>),
    }
    let mut work = vec![Work::Visit(template)];
    let mut values: Vec<Value> = Vec::new();
    while let Some(item) = work.pop() {
        match item {
            Work::Visit(node) => match node {
                JsonTemplate::Bool(b) => values.push(Value::Bool(*b)),
                JsonTemplate::Integer(i) => values.push(Value::from(*i)),
                JsonTemplate::Float(f) => values.push(Value::from(*f)),
                JsonTemplate::String(text) => {
                    let resolved = cx.resolve_allow_empty("json", text).await?;
                    values.push(Value::String(resolved.expose().to_owned()));
                }
                JsonTemplate::Array(items) => {
                    work.push(Work::Array(items.len()));
                    work.extend(items.iter().rev().map(Work::Visit));
                }
                JsonTemplate::Object(fields) => {
                    work.push(Work::Object(
                        fields.iter().map(|(k, _)| k.clone()).collect(),
                    ));
                    work.extend(fields.iter().rev().map(|(_, v)| Work::Visit(v)));
                }
            },
            Work::Array(len) => {
                let items = values.split_off(values.len() - len);
                values.push(Value::Array(items));
            }
            Work::Object(keys) => {
                let items = values.split_off(values.len() - keys.len());
                values.push(Value::Object(keys.into_iter().zip(items).collect()));
            }
        }
    }
    Ok(values.pop().unwrap_or(Value::Null))
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretTemplate;

    #[tokio::test]
    async fn json_bodies_keep_structure_and_order() {
        let template = JsonTemplate::Object(vec![
            (
                "access_token_identifier".into(),
                JsonTemplate::Object(vec![(
                    "authentication_code".into(),
                    JsonTemplate::String(SecretTemplate::parse("code-1").unwrap()),
                )]),
            ),
            (
                "unit".into(),
                JsonTemplate::String(SecretTemplate::parse("1").unwrap()),
            ),
            (
                "list".into(),
                JsonTemplate::Array(vec![JsonTemplate::Integer(1), JsonTemplate::Bool(true)]),
            ),
        ]);
        let secrets = std::sync::Arc::new(crate::secret::Resolver::new(None));
        let http = std::sync::Arc::new(crate::upstream::Upstream::default());
        let sent = crate::kinds::SentSecrets::default();
        let cx = FetchCx {
            name: "crm",
            secrets: &secrets,
            http: &http,
            sent: &sent,
            jwt: None,
        };
        let value = json_value(&cx, &template).await.unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "access_token_identifier": {"authentication_code": "code-1"},
                "unit": "1",
                "list": [1, true]
            })
        );
    }
}
