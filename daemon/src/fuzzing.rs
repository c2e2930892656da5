//! The entry points of the fuzz targets in `fuzz/` (feature `fuzzing`; no build of the daemon
//! has it). Each is a thin wrapper over the real parser, so a target exercises exactly what
//! the daemon runs on that input; none of them returns anything the target could check except
//! by not panicking, hanging or allocating without bound.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tokend_protocol::{Secret, SecretBuf};

use crate::kinds::ProviderKind;
use crate::kinds::fetched::{jwt_expiry, lifetime_of, seconds};
use crate::kinds::http::exchange::read_answer;
use crate::kinds::oauth2::client::status_error;
use crate::kinds::oauth2::grants::described;
use crate::store::StoreKey;
use crate::store::format;
use crate::store::key::KeySource;
use crate::upstream::{Answer, parse_retry_after};

/// The config loader: TOML text to a validated config (what `tokend` and `tok check` run).
pub fn config(text: &str) {
    let _ = crate::config::parse(text, Path::new("/fuzz/config.toml"));
}

/// The secret-reference template parser (`${env:…}`, `${file:…}`, `${cmd:…}`, `${secret:…}`).
pub fn secret_template(text: &str) {
    if let Ok(template) = crate::secret::SecretTemplate::parse(text) {
        let _ = template.is_literal();
        let _ = template.refers_to_secret("fuzz");
    }
}

/// The store file reader. With `sealed`, `bytes` are the contents, sealed with the fixed key
/// first, so the fuzzer reaches the contents parser behind the AEAD envelope (which it cannot
/// forge); without, `bytes` are the whole file (header and envelope).
pub fn store_file(bytes: &[u8], sealed: bool) {
    let key = StoreKey::from_slice(&[7u8; 32]).expect("a 32-byte key");
    let source = KeySource::File("/fuzz/store.key".into());
    if sealed {
        let file = format::seal(bytes, &key, &source);
        let _ = format::decode(&file, &key, &source);
    } else {
        let _ = format::decode(bytes, &key, &source);
    }
}

/// The providers whose answers [`http_answer`] reads: a generic exchange with every pointer,
/// one whose expiry is the JWT's `exp`, and the CRM.COM and Timekit presets.
const HTTP_PROVIDERS: &str = r#"
[providers.pointers]
kind = "http"
url = "https://api.example.com/token"
method = "POST"
token = "/data/access/token"
expires = "/data/access/expires_in"
ok = { pointer = "/status/code", equals = "OK", message = "/status/description" }

[providers.jwt]
kind = "http"
url = "https://api.example.com/token"
token = "/token"

[providers.timestamp]
kind = "http"
url = "https://api.example.com/token"
token = "/token"
expires_at = "/expires_at"

[providers.crm]
preset = "crm.com"
base_url = "https://crm.example.com/crmapi/rest/v2"
api_key = "fuzz-api-key"
authentication_code = "fuzz-code"

[providers.timekit]
preset = "timekit"
app = "fuzz-app"
email = "fuzz@example.com"
api_key = "fuzz-api-key"
"#;

/// An upstream answer to an `http`-kind exchange: the status, the `Retry-After` header and the
/// body, read by each of [`HTTP_PROVIDERS`] as the daemon reads it.
pub fn http_answer(status: u16, retry_after: &str, body: &[u8]) {
    static CONFIG: OnceLock<crate::config::Config> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        crate::config::parse(HTTP_PROVIDERS, Path::new("/fuzz/config.toml"))
            .expect("the answer target's providers are valid")
            .0
    });
    let answer = Answer {
        status,
        retry_after: parse_retry_after(retry_after),
        content_type: Some("application/json".to_owned()),
        headers: http::HeaderMap::new(),
        body: SecretBuf::new(body.to_vec()),
    };
    for provider in config.providers.values() {
        if let ProviderKind::Http(exchange) = &provider.kind {
            let _ = read_answer(exchange, "POST https://api.example.com/token", &answer);
        }
    }
}

/// An OAuth 2.0 token endpoint's answer (RFC 6749 section 5): the token response as the
/// `oauth2` crate reads it (with its OpenID Connect id_token), its lifetime as the engine takes
/// it (`expires_in`, else the JWT `exp`), the answer of the grants whose form tokend builds
/// (token exchange, JWT bearer, Google's service accounts), and the error response as messages
/// show it.
pub fn oauth2_answer(status: u16, body: &[u8]) {
    if let Ok(response) =
        serde_json::from_slice::<crate::kinds::oauth2::client::TokenResponse>(body)
    {
        use oauth2::TokenResponse as _;
        let token = Secret::new(response.access_token().secret().clone());
        let _ = lifetime_of(response.expires_in(), &token, None, false);
        let _ = lifetime_of(None, &token, Some(Duration::from_secs(60)), true);
        if let Some(id_token) = &response.extra_fields().id_token {
            let _ = jwt_expiry(id_token);
        }
    }
    let answer = Answer {
        status,
        retry_after: None,
        content_type: Some("application/json".to_owned()),
        headers: http::HeaderMap::new(),
        body: SecretBuf::new(body.to_vec()),
    };
    let _ = crate::kinds::oauth2::grants::form_grant_answer(
        "token endpoint https://idp.example.com/token",
        &answer,
        None,
        "refused ({})",
    );
    let description = match serde_json::from_slice::<oauth2::basic::BasicErrorResponse>(body) {
        Ok(error) => described(&error),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let _ = status_error("https://idp.example.com/token", status, None, &description);
}

/// The auth proxy's side of one connection: the request heads (and bodies) a local client
/// sends, parsed by hyper's HTTP/1.1 server and checked by the proxy (method, request-target
/// form, `Host`, capability path, the upstream path built from it). Needs a tokio runtime with
/// time enabled (the header-read timeout). Returns the start of the proxy's answer.
pub async fn proxy_request(bytes: &[u8]) -> Vec<u8> {
    static SERVICES: OnceLock<std::sync::Arc<crate::kinds::Services>> = OnceLock::new();
    let services = SERVICES.get_or_init(|| std::sync::Arc::new(crate::kinds::Services::new(None)));
    crate::outlets::proxy::serve_bytes(bytes, std::sync::Arc::clone(services)).await
}

/// A JWT's `exp` claim, and a number of seconds in every form upstream writes one.
pub fn expiry(text: &str) {
    let _ = jwt_expiry(text);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = seconds(&value);
    }
}

#[cfg(test)]
mod tests {
    //! Every entry point over its committed seeds (`fuzz/corpus/`), and over every input a
    //! fuzzer found a problem with (`fuzz/regressions/TARGET/`), in the normal test suite.

    use std::path::PathBuf;

    fn inputs(target: &str) -> Vec<Vec<u8>> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut found = Vec::new();
        for folder in [
            root.join("corpus").join(target),
            root.join("regressions").join(target),
        ] {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries {
                found.push(std::fs::read(entry.expect("a directory entry").path()).expect("read"));
            }
        }
        found
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    #[test]
    fn the_http_providers_of_the_answer_target_are_valid() {
        let (config, _) =
            crate::config::parse(super::HTTP_PROVIDERS, std::path::Path::new("/fuzz/c.toml"))
                .expect("the fuzz target's providers load");
        assert_eq!(config.providers.len(), 5);
    }

    #[test]
    fn the_daemon_side_targets_take_their_seeds() {
        let seeds = inputs("config");
        assert!(
            seeds.len() > 5,
            "the config seeds are in fuzz/corpus/config"
        );
        let loaded = seeds
            .iter()
            .filter(|seed| crate::config::parse(text(seed), "/f.toml".as_ref()).is_ok())
            .count();
        assert!(loaded > 0, "some config seed is a valid config");
        seeds.iter().for_each(|seed| super::config(text(seed)));
        inputs("secret_template")
            .iter()
            .for_each(|seed| super::secret_template(text(seed)));
        for seed in inputs("store_file") {
            if let Some((choice, rest)) = seed.split_first() {
                super::store_file(rest, choice % 2 == 1);
            }
        }
        for seed in inputs("http_answer") {
            let (status, rest) = seed.split_at(2.min(seed.len()));
            let status = 100 + u16::from_be_bytes([status[0], status[1]]) % 500;
            let at = rest.iter().position(|b| *b == b'\n').unwrap_or(0);
            super::http_answer(status, text(&rest[..at]), &rest[at..]);
        }
        for seed in inputs("oauth2_answer") {
            super::oauth2_answer(200, &seed[2.min(seed.len())..]);
        }
        inputs("expiry")
            .iter()
            .for_each(|seed| super::expiry(text(seed)));
    }

    /// The status line of each answer in `answered`, in order.
    fn statuses(answered: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(answered)
            .lines()
            .filter(|line| line.starts_with("HTTP/1.1 "))
            .map(|line| line[9..12].to_owned())
            .collect()
    }

    #[tokio::test]
    async fn the_proxy_target_reaches_every_check() {
        let seeds = inputs("proxy_request");
        assert!(
            seeds.len() >= 6,
            "the proxy seeds are in fuzz/corpus/proxy_request"
        );
        for seed in &seeds {
            super::proxy_request(seed).await;
        }
        let capability = "ab".repeat(16);
        let cases = [
            (
                format!("GET /{capability}/items HTTP/1.1\r\nHost: 127.0.0.1:8701\r\n\r\n"),
                "502",
            ),
            (
                "GET /items HTTP/1.1\r\nHost: 127.0.0.1:8701\r\n\r\n".to_owned(),
                "403",
            ),
            (
                format!("GET /{capability}/ HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
                "421",
            ),
            (
                "CONNECT api.example.com:443 HTTP/1.1\r\nHost: 127.0.0.1:8701\r\n\r\n".to_owned(),
                "405",
            ),
            (
                "GET http://other/ HTTP/1.1\r\nHost: 127.0.0.1:8701\r\n\r\n".to_owned(),
                "400",
            ),
        ];
        for (request, status) in cases {
            let answered = super::proxy_request(request.as_bytes()).await;
            assert_eq!(statuses(&answered), [status], "{request:?}");
        }
        let pipelined = format!(
            "GET /{capability}/a HTTP/1.1\r\nHost: localhost:8701\r\n\r\n\
             GET /b HTTP/1.1\r\nHost: localhost:8701\r\n\r\n"
        );
        let answered = super::proxy_request(pipelined.as_bytes()).await;
        assert_eq!(statuses(&answered), ["502", "403"]);
    }

    #[test]
    fn a_sealed_store_seed_reaches_the_contents() {
        let seed = inputs("store_file")
            .into_iter()
            .find(|seed| seed.first() == Some(&1))
            .expect("a sealed-contents seed");
        let key = crate::store::StoreKey::from_slice(&[7u8; 32]).expect("a key");
        let source = crate::store::KeySource::File("/k".into());
        let file = crate::store::format::seal(&seed[1..], &key, &source);
        let contents = crate::store::format::decode(&file, &key, &source).expect("it opens");
        assert_eq!(contents.secrets.len(), 1);
    }
}
