//! Where an OAuth 2.0 server's endpoints are: as configured, or found through OpenID Connect
//! discovery (`{issuer}/.well-known/openid-configuration`), cached for the provider's life.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::{OAuth2Config, OAuth2Grant, TokenEndpoint};
use crate::kinds::{FetchCx, FetchError, FetchState};
use crate::upstream::shown;

/// An OAuth 2.0 server's endpoints, from the config or from discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) token: Url,
    pub(crate) authorization: Option<Url>,
    pub(crate) device: Option<Url>,
    pub(crate) revocation: Option<Url>,
}

/// The provider's endpoints: as configured, or (with an `issuer`) from discovery, which is
/// cached in `state`. Configured `auth_url`, `device_url` and `revocation_url` win over
/// discovered ones.
pub(crate) async fn endpoints(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    state: &mut FetchState,
) -> Result<Endpoints, FetchError> {
    let mut found = match &config.endpoint {
        TokenEndpoint::TokenUrl(url) => Endpoints {
            token: url.clone(),
            authorization: None,
            device: None,
            revocation: None,
        },
        TokenEndpoint::Issuer(issuer) => match &state.discovered {
            Some(found) => (**found).clone(),
            None => {
                let found = discover(cx, issuer, config.timeout).await?;
                state.discovered = Some(Box::new(found.clone()));
                found
            }
        },
    };
    match &config.grant {
        OAuth2Grant::AuthorizationCode(login) if login.auth_url.is_some() => {
            found.authorization.clone_from(&login.auth_url);
        }
        OAuth2Grant::DeviceCode(login) if login.device_url.is_some() => {
            found.device.clone_from(&login.device_url);
        }
        _ => {}
    }
    if config.revocation_url.is_some() {
        found.revocation.clone_from(&config.revocation_url);
    }
    Ok(found)
}

/// Finds the token endpoint of an OpenID Connect issuer.
async fn discover(
    cx: &FetchCx<'_>,
    issuer: &Url,
    timeout: Option<Duration>,
) -> Result<Endpoints, FetchError> {
    let mut url = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    url.set_path(&path);
    let where_ = format!("discovery document {}", shown(&url));
    let mut request = reqwest::Request::new(reqwest::Method::GET, url);
    if timeout.is_some() {
        *request.timeout_mut() = timeout;
    }
    let answer = cx.send(request).await?;
    if answer.status != 200 {
        return Err(super::client::status_error(
            &where_,
            answer.status,
            answer.retry_after,
            &answer.describe_body(),
        ));
    }
    let document: Value =
        serde_json::from_slice(&answer.body).map_err(|_| FetchError::Transient {
            message: format!("{where_}: expected JSON, got {}", answer.describe_body()),
            retry_after: None,
        })?;
    let endpoint = |key: &str| -> Result<Option<Url>, FetchError> {
        let Some(text) = document.get(key) else {
            return Ok(None);
        };
        let url = text
            .as_str()
            .and_then(|text| Url::parse(text).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| FetchError::Transient {
                message: format!("{where_}: `{key}` is not an http(s) URL"),
                retry_after: None,
            })?;
        Ok(Some(url))
    };
    let token = endpoint("token_endpoint")?.ok_or_else(|| FetchError::Transient {
        message: format!("{where_}: no `token_endpoint` in the document"),
        retry_after: None,
    })?;
    Ok(Endpoints {
        token,
        authorization: endpoint("authorization_endpoint")?,
        device: endpoint("device_authorization_endpoint")?,
        revocation: endpoint("revocation_endpoint")?,
    })
}
