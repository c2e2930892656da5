//! Reading `kind = "oauth2"` and `preset = "azure-ad"`.
use std::time::Duration;

use url::Url;

use crate::config::test_support::*;
use crate::config::*;
use crate::kinds::ProviderKind;
use crate::kinds::oauth2::*;

#[test]
fn interactive_grants() {
    let (config, _) = parse_ok(
        "[providers.lab]\nkind = \"oauth2\"\ngrant = \"authorization_code\"\n\
         token_url = \"https://id.example.com/token\"\n\
         auth_url = \"https://id.example.com/authorize\"\nclient_id = \"cli\"\n\
         redirect_uri = \"http://[::1]:8400/cb\"\nlogin_timeout = \"5m\"\n\
         auth_params = { prompt = \"consent\" }\n\
         revocation_url = \"https://id.example.com/revoke\"\n\
         [providers.tv]\nkind = \"oauth2\"\ngrant = \"device_code\"\n\
         issuer = \"https://id.example.com\"\nclient_id = \"tv\"\n",
    );
    let ProviderKind::OAuth2(lab) = &config.providers["lab"].kind else {
        panic!("oauth2");
    };
    assert_eq!(
        lab.grant,
        OAuth2Grant::AuthorizationCode(AuthorizationCodeLogin {
            auth_url: Some(Url::parse("https://id.example.com/authorize").unwrap()),
            redirect_uri: Url::parse("http://[::1]:8400/cb").unwrap(),
            timeout: Duration::from_secs(300),
            auth_params: vec![("prompt".to_owned(), "consent".to_owned())],
        })
    );
    assert_eq!(
        lab.revocation_url.as_ref().map(Url::as_str),
        Some("https://id.example.com/revoke")
    );
    assert!(lab.client_secret.is_none(), "public clients need no secret");
    let ProviderKind::OAuth2(tv) = &config.providers["tv"].kind else {
        panic!("oauth2");
    };
    assert_eq!(
        tv.grant,
        OAuth2Grant::DeviceCode(DeviceLogin { device_url: None })
    );
    // Defaults: the ephemeral loopback redirect and a three-minute wait.
    let (config, _) = parse_ok(
        "[providers.a]\nkind = \"oauth2\"\ngrant = \"authorization_code\"\n\
         issuer = \"https://id.example.com\"\nclient_id = \"c\"\n",
    );
    let ProviderKind::OAuth2(a) = &config.providers["a"].kind else {
        panic!("oauth2");
    };
    let OAuth2Grant::AuthorizationCode(login) = &a.grant else {
        panic!("authorization_code");
    };
    assert_eq!(login.redirect_uri.as_str(), "http://127.0.0.1:0/callback");
    assert_eq!(login.timeout, Duration::from_secs(180));

    let head = "[providers.a]\nkind = \"oauth2\"\nclient_id = \"c\"\n";
    for (body, location, problem) in [
        (
            "grant = \"authorization_code\"\ntoken_url = \"https://t/\"\n",
            "key `auth_url`",
            "needs an `auth_url`",
        ),
        (
            "grant = \"device_code\"\ntoken_url = \"https://t/\"\n",
            "key `device_url`",
            "needs a `device_url`",
        ),
        (
            "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
             token_url = \"https://t/\"\nauth_url = \"https://t/a\"\n",
            "key `auth_url`",
            "grant is \"client_credentials\"",
        ),
        (
            "grant = \"device_code\"\nissuer = \"https://t/\"\n\
             redirect_uri = \"http://127.0.0.1:0/cb\"\n",
            "key `redirect_uri`",
            "grant is \"device_code\"",
        ),
        (
            "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
             redirect_uri = \"https://127.0.0.1/cb\"\n",
            "key `redirect_uri`",
            "loopback http URL",
        ),
        (
            "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
             redirect_uri = \"http://example.com/cb\"\n",
            "key `redirect_uri`",
            "loopback http URL",
        ),
        (
            "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
             login_timeout = \"2s\"\n",
            "key `login_timeout`",
            "out of range",
        ),
        (
            "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
             auth_params = { state = \"x\" }\n",
            "key `auth_params.state`",
            "sets itself",
        ),
        (
            "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
             refresh_token = \"${env:R}\"\n",
            "key `refresh_token`",
            "`tok login NAME` obtains",
        ),
        (
            "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
             token_url = \"https://t/\"\nprivate_key = \"${file:/k.pem}\"\n",
            "key `private_key`",
            "nothing signs with it",
        ),
        (
            "grant = \"jwt_bearer\"\ntoken_url = \"https://t/\"\n",
            "key `private_key`",
            "needs `private_key`",
        ),
        (
            "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
             client_auth = \"private_key_jwt\"\ntoken_url = \"https://t/\"\n\
             private_key = \"${file:/k.pem}\"\n",
            "key `client_secret`",
            "an assertion authenticates the client",
        ),
        (
            "grant = \"device_code\"\nissuer = \"https://t/\"\n\
             client_auth = \"private_key_jwt\"\nprivate_key = \"${file:/k.pem}\"\n",
            "key `client_auth`",
            "does not work with grant \"device_code\"",
        ),
        (
            "grant = \"jwt_bearer\"\ntoken_url = \"https://t/\"\n\
             private_key = \"${file:/k.pem}\"\nsigning_alg = \"HS256\"\n",
            "key `signing_alg`",
            "RS256",
        ),
        (
            "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
             token_url = \"https://t/\"\nassertion_subject = \"x\"\n",
            "key `assertion_subject`",
            "grant = \"jwt_bearer\"",
        ),
    ] {
        let error = parse_err(&format!("{head}{body}")).to_string();
        assert!(
            error.contains(location) && error.contains(problem),
            "{body}: {error}"
        );
    }
}

#[test]
fn azure_ad_preset() {
    let (config, _) = parse_ok(
        "[providers.admin]\npreset = \"azure-ad\"\ntenant = \"contoso.onmicrosoft.com\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\n\
         scopes = [\"https://salestim.example/.default\"]\n",
    );
    let ProviderKind::OAuth2(admin) = &config.providers["admin"].kind else {
        panic!("oauth2");
    };
    assert_eq!(
        admin.endpoint,
        TokenEndpoint::TokenUrl(
            Url::parse(
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
            )
            .unwrap()
        )
    );
    let OAuth2Grant::AuthorizationCode(login) = &admin.grant else {
        panic!("interactive by default");
    };
    assert_eq!(
        login.auth_url.as_ref().map(Url::as_str),
        Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize")
    );
    assert_eq!(
        admin.scopes,
        ["https://salestim.example/.default", "offline_access"]
    );
    assert_eq!(
        config.providers["admin"].presentation,
        Presentation::default()
    );

    let (config, _) = parse_ok(
        "[providers.app]\npreset = \"azure-ad\"\ntenant = \"t1\"\nclient_id = \"c\"\n\
         client_secret = \"${env:S}\"\nauthority = \"http://127.0.0.1:9/base\"\n",
    );
    let ProviderKind::OAuth2(app) = &config.providers["app"].kind else {
        panic!("oauth2");
    };
    assert_eq!(app.grant, OAuth2Grant::ClientCredentials);
    assert_eq!(
        app.endpoint,
        TokenEndpoint::TokenUrl(
            Url::parse("http://127.0.0.1:9/base/t1/oauth2/v2.0/token").unwrap()
        )
    );

    for (body, location, problem) in [
        (
            "tenant = \"a/b\"\nclient_id = \"c\"\n",
            "key `tenant`",
            "not a tenant",
        ),
        ("client_id = \"c\"\n", "key `tenant`", "needs `tenant`"),
        (
            "tenant = \"t\"\nclient_id = \"c\"\nclient_secret = \"${env:S}\"\n\
             redirect_uri = \"http://127.0.0.1:0/cb\"\n",
            "key `redirect_uri`",
            "the app logs in as itself",
        ),
        (
            "tenant = \"t\"\nclient_id = \"c\"\ngrant = \"x\"\n",
            "key `grant`",
            "known keys",
        ),
    ] {
        let error = parse_err(&format!("[providers.a]\npreset = \"azure-ad\"\n{body}")).to_string();
        assert!(
            error.contains(location) && error.contains(problem),
            "{body}: {error}"
        );
    }
}

#[test]
fn oauth2_variants() {
    let (config, warnings) = parse_ok(
        r#"
[providers.issuer]
kind = "oauth2"
grant = "client_credentials"
issuer = "https://login.example.com/tenant/v2.0"
client_id = "svc"
client_secret = "${file:~/.secret}"
client_auth = "post"
scopes = ["a", "b:c/d"]
header = "X-Token"

[providers.public]
kind = "oauth2"
grant = "refresh_token"
token_url = "http://127.0.0.1:8080/token"
client_id = "cli"
refresh_token = "${cmd:pass show rt}"
params = { resource = "r", audience = "a" }
"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let ProviderKind::OAuth2(issuer) = &config.providers["issuer"].kind else {
        panic!("{config:?}");
    };
    assert_eq!(
        issuer.endpoint,
        TokenEndpoint::Issuer(url("https://login.example.com/tenant/v2.0"))
    );
    assert_eq!(issuer.client_auth, ClientAuth::Post);
    assert_eq!(issuer.scopes, ["a", "b:c/d"]);
    // A custom header carries the bare token, as for every kind.
    assert_eq!(config.providers["issuer"].presentation.scheme, Scheme::Raw);

    let ProviderKind::OAuth2(public) = &config.providers["public"].kind else {
        panic!("{config:?}");
    };
    assert_eq!(public.client_secret, None);
    assert_eq!(
        public.endpoint,
        TokenEndpoint::TokenUrl(url("http://127.0.0.1:8080/token"))
    );
    // In file order, not sorted.
    assert_eq!(
        public.params,
        [
            ("resource".to_owned(), "r".to_owned()),
            ("audience".to_owned(), "a".to_owned())
        ]
    );
}

#[test]
fn oauth2_errors_name_file_line_and_key() {
    let oauth2 = |rest: &str| {
        format!(
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
             client_id = \"svc\"\n{rest}"
        )
    };
    let cc = |rest: &str| {
        oauth2(&format!(
            "token_url = \"https://a.example/token\"\nclient_secret = \"${{env:S}}\"\n{rest}"
        ))
    };
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "oauth2 unknown key",
            cc(&format!("secret = \"{SECRET}\"\n")),
            7,
            Some("[providers.a] key `secret`"),
            "remove it or fix its spelling; known keys: kind, \
             grant, token_url",
        ),
        (
            "oauth2 without grant",
            "[providers.a]\nkind = \"oauth2\"\ntoken_url = \"https://a.example/\"\n".to_owned(),
            1,
            Some("[providers.a] key `grant`"),
            "add grant = \"client_credentials\" or grant = \"refresh_token\"",
        ),
        (
            "oauth2 unknown grant",
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"password\"\n".to_owned(),
            3,
            Some("[providers.a] key `grant`"),
            "use one of: client_credentials, refresh_token",
        ),
        (
            "refresh_token with client_credentials",
            cc(&format!("\nrefresh_token = \"{SECRET}\"\n")),
            8,
            Some("[providers.a] key `refresh_token`"),
            "set grant = \"refresh_token\"",
        ),
        (
            "refresh_token grant without refresh_token",
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"refresh_token\"\n".to_owned(),
            1,
            Some("[providers.a] key `refresh_token`"),
            "grant \"refresh_token\" needs a `refresh_token`",
        ),
        (
            "empty refresh_token",
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"refresh_token\"\nrefresh_token = \"\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `refresh_token`"),
            "`refresh_token` is empty",
        ),
        (
            "token_url and issuer",
            oauth2("token_url = \"https://a.example/t\"\nissuer = \"https://a.example\"\n"),
            6,
            Some("[providers.a] key `issuer`"),
            "`token_url` and `issuer` are both set",
        ),
        (
            "neither token_url nor issuer",
            oauth2("client_secret = \"${env:S}\"\n"),
            1,
            Some("[providers.a] key `token_url`"),
            "needs a `token_url` or an `issuer`",
        ),
        (
            "token_url not a URL",
            oauth2(&format!("token_url = \"{SECRET}\"\n")),
            5,
            Some("[providers.a] key `token_url`"),
            "`token_url` is not a valid URL",
        ),
        (
            "token_url not http",
            oauth2(&format!("token_url = \"ftp://host/{SECRET}\"\n")),
            5,
            Some("[providers.a] key `token_url`"),
            "not an http or https URL",
        ),
        (
            "token_url with credentials",
            oauth2(&format!(
                "token_url = \"https://svc:{SECRET}@a.example/t\"\n"
            )),
            5,
            Some("[providers.a] key `token_url`"),
            "has a user name or password in it",
        ),
        (
            "issuer with query",
            oauth2(&format!("issuer = \"https://a.example/?k={SECRET}\"\n")),
            5,
            Some("[providers.a] key `issuer`"),
            "`issuer` has a query or a fragment",
        ),
        (
            "missing client_id",
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
             token_url = \"https://a.example/t\"\n"
                .to_owned(),
            1,
            Some("[providers.a] key `client_id`"),
            "kind \"oauth2\" needs `client_id`",
        ),
        (
            "empty client_id",
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
             token_url = \"https://a.example/t\"\nclient_id = \"\"\n"
                .to_owned(),
            5,
            Some("[providers.a] key `client_id`"),
            "`client_id` is empty",
        ),
        (
            "client_credentials without client_secret",
            oauth2("token_url = \"https://a.example/t\"\n"),
            1,
            Some("[providers.a] key `client_secret`"),
            "grant \"client_credentials\" needs a `client_secret`",
        ),
        (
            "bad client_secret template",
            oauth2(&format!(
                "token_url = \"https://a.example/t\"\nclient_secret = \"{SECRET}${{bad}}\"\n"
            )),
            6,
            Some("[providers.a] key `client_secret`"),
            "invalid secret",
        ),
        (
            "client_secret not a string",
            oauth2("token_url = \"https://a.example/t\"\nclient_secret = 42\n"),
            6,
            Some("[providers.a] key `client_secret`"),
            "expected a string, found an integer",
        ),
        (
            "unknown client_auth",
            cc("client_auth = \"jwt\"\n"),
            7,
            Some("[providers.a] key `client_auth`"),
            "use one of: basic, post",
        ),
        (
            "client_auth without client_secret",
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"refresh_token\"\n\
             refresh_token = \"${env:R}\"\ntoken_url = \"https://a.example/t\"\n\
             client_id = \"cli\"\nclient_auth = \"post\"\n"
                .to_owned(),
            7,
            Some("[providers.a] key `client_auth`"),
            "there is no `client_secret`",
        ),
        (
            "scopes not an array",
            cc("scopes = \"a b\"\n"),
            7,
            Some("[providers.a] key `scopes`"),
            "expected an array of strings, found a string",
        ),
        (
            "scope not a string",
            cc("scopes = [\n  \"a\",\n  1,\n]\n"),
            9,
            Some("[providers.a] key `scopes[1]`"),
            "expected a string, found an integer",
        ),
        (
            "scope with a space",
            cc("scopes = [\"a b\"]\n"),
            7,
            Some("[providers.a] key `scopes[0]`"),
            "not a valid scope name",
        ),
        (
            "params not a table",
            cc("params = \"audience=x\"\n"),
            7,
            Some("[providers.a] key `params`"),
            "expected a table, found a string",
        ),
        (
            "params overrides scope",
            cc("params = { audience = \"x\", scope = \"y\" }\n"),
            7,
            Some("[providers.a] key `params.scope`"),
            "a parameter tokend sets itself",
        ),
        (
            "params overrides client_secret",
            cc(&format!(
                "[providers.a.params]\nclient_secret = \"{SECRET}\"\n"
            )),
            8,
            Some("[providers.a] key `params.client_secret`"),
            "a parameter tokend sets itself",
        ),
        (
            "params with an empty name",
            cc("params = { \"\" = \"x\" }\n"),
            7,
            Some("[providers.a] key `params.\"\"`"),
            "a parameter has an empty name",
        ),
        (
            "params value not a string",
            cc("params = { audience = 1 }\n"),
            7,
            Some("[providers.a] key `params.audience`"),
            "expected a string, found an integer",
        ),
        (
            "bad ttl",
            cc("ttl = \"1w\"\n"),
            7,
            Some("[providers.a] key `ttl`"),
            "unknown unit",
        ),
        (
            "zero ttl",
            cc("ttl = \"0s\"\n"),
            7,
            Some("[providers.a] key `ttl`"),
            "zero",
        ),
        (
            "ttl not a string",
            cc("ttl = 3600\n"),
            7,
            Some("[providers.a] key `ttl`"),
            "expected a string, found an integer",
        ),
    ];
    check_errors(cases);
}
