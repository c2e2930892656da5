//! Reading identity federation's keys: `client_assertion`, `grant = "token_exchange"`,
//! certificate credentials, Azure workload identity (with its environment defaults) and the
//! `google-service-account` preset.

use std::ffi::OsString;
use std::path::Path;

use crate::config::test_support::*;
use crate::config::*;
use crate::kinds::ProviderKind;
use crate::kinds::jwt::SigningAlg;
use crate::kinds::oauth2::google::Wants;
use crate::kinds::oauth2::*;

fn oauth2(config: &Config, name: &str) -> OAuth2Config {
    match &config.providers[name].kind {
        ProviderKind::OAuth2(config) => (**config).clone(),
        other => panic!("{name}: expected oauth2, got {other:?}"),
    }
}

#[test]
fn token_exchange_and_client_assertions() {
    let (config, warnings) = parse_ok(
        r#"
[providers.ci]
kind = "oauth2"
grant = "client_credentials"
token_url = "https://id.example.com/token"
client_id = "ci"
client_assertion = "${file:/var/run/secrets/tokens/token}"

[providers.exchanged]
kind = "oauth2"
grant = "token_exchange"
issuer = "https://sts.example.com"
client_id = "exchanger"
client_secret = "${env:S}"
client_auth = "post"
subject_token = "${provider:ci}"
actor_token = "${file:/run/actor}"
requested_token_type = "urn:ietf:params:oauth:token-type:access_token"
audience = ["api-a", "api-b"]
resource = "https://api.example.com/"
scopes = ["read"]
"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let ci = oauth2(&config, "ci");
    assert_eq!(
        ci.client_auth,
        ClientAuth::ClientAssertion,
        "implied by the key"
    );
    assert_eq!(
        ci.client_assertion,
        Some(tpl("${file:/var/run/secrets/tokens/token}"))
    );
    let exchanged = oauth2(&config, "exchanged");
    assert_eq!(
        exchanged.grant,
        OAuth2Grant::TokenExchange(TokenExchange {
            subject_token: tpl("${provider:ci}"),
            subject_token_type: "urn:ietf:params:oauth:token-type:jwt".to_owned(),
            actor_token: Some((
                tpl("${file:/run/actor}"),
                "urn:ietf:params:oauth:token-type:jwt".to_owned()
            )),
            requested_token_type: Some("urn:ietf:params:oauth:token-type:access_token".to_owned()),
            audience: vec!["api-a".to_owned(), "api-b".to_owned()],
            resource: vec!["https://api.example.com/".to_owned()],
        })
    );
    assert_eq!(config.providers["exchanged"].kind.provider_refs(), ["ci"]);
}

#[test]
fn federation_errors_name_the_key_and_the_fix() {
    let head = "[providers.a]\nkind = \"oauth2\"\ntoken_url = \"https://t/\"\nclient_id = \"c\"\n";
    let case = |what: &str, body: &str, line: usize, key: &str, fragment: &str| {
        (
            what.to_owned(),
            format!("{head}{body}"),
            line,
            Some(format!("key `{key}`")),
            fragment.to_owned(),
        )
    };
    let cases = [
        case(
            "exchange without subject",
            "grant = \"token_exchange\"\n",
            1,
            "subject_token",
            "needs a `subject_token`",
        ),
        case(
            "subject token elsewhere",
            "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\nsubject_token = \"x\"\n",
            7,
            "subject_token",
            "grant = \"token_exchange\"",
        ),
        case(
            "actor type alone",
            "grant = \"token_exchange\"\nsubject_token = \"${env:T}\"\n\
             actor_token_type = \"urn:x\"\n",
            7,
            "actor_token_type",
            "without `actor_token`",
        ),
        case(
            "type with a space",
            "grant = \"token_exchange\"\nsubject_token = \"${env:T}\"\n\
             subject_token_type = \"a b\"\n",
            7,
            "subject_token_type",
            "not a URI",
        ),
        case(
            "audience of a number",
            "grant = \"token_exchange\"\nsubject_token = \"${env:T}\"\naudience = 3\n",
            7,
            "audience",
            "a string or an array of strings",
        ),
        case(
            "assertion with a secret",
            "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
             client_assertion = \"${file:/t}\"\n",
            6,
            "client_secret",
            "an assertion authenticates the client",
        ),
        case(
            "assertion auth without assertion",
            "grant = \"client_credentials\"\nclient_auth = \"client_assertion\"\n",
            1,
            "client_assertion",
            "needs `client_assertion`",
        ),
        case(
            "assertion beside private_key_jwt",
            "grant = \"client_credentials\"\nclient_auth = \"private_key_jwt\"\n\
             private_key = \"${file:/k}\"\nclient_assertion = \"${file:/t}\"\n",
            8,
            "client_assertion",
            "client_auth is not \"client_assertion\"",
        ),
        case(
            "assertion with the device flow",
            "grant = \"device_code\"\ndevice_url = \"https://t/d\"\nclient_assertion = \"${file:/t}\"\n",
            7,
            "client_auth",
            "does not work with grant \"device_code\"",
        ),
        case(
            "unknown signing_alg",
            "grant = \"client_credentials\"\nclient_auth = \"private_key_jwt\"\n\
             private_key = \"${file:/k}\"\nsigning_alg = \"RS512\"\n",
            8,
            "signing_alg",
            "RS256 or PS256",
        ),
        case(
            "certificate without signing",
            "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
             certificate = \"${file:/c.pem}\"\n",
            7,
            "certificate",
            "nothing signs with it",
        ),
    ];
    let cases: Vec<(&str, String, usize, Option<&str>, &str)> = cases
        .iter()
        .map(|(what, text, line, key, fragment)| {
            (
                what.as_str(),
                text.clone(),
                *line,
                key.as_deref(),
                fragment.as_str(),
            )
        })
        .collect();
    check_errors(&cases);
}

#[test]
fn certificate_credentials_sign_with_thumbprints() {
    let (config, _) = parse_ok(
        r#"
[providers.app]
preset = "azure-ad"
tenant = "contoso.onmicrosoft.com"
client_id = "c"
private_key = "${file:~/k.pem}"
certificate = "${file:~/c.pem}"
signing_alg = "PS256"
scopes = ["https://graph.microsoft.com/.default"]
"#,
    );
    let app = oauth2(&config, "app");
    assert_eq!(app.grant, OAuth2Grant::ClientCredentials);
    assert_eq!(app.client_auth, ClientAuth::PrivateKeyJwt);
    let key = app.signing_key.expect("a signing key");
    assert_eq!(key.alg, SigningAlg::Ps256);
    assert_eq!(key.certificate, Some(tpl("${file:~/c.pem}")));
    let error = parse_err(
        "[providers.app]\npreset = \"azure-ad\"\ntenant = \"t\"\nclient_id = \"c\"\n\
         private_key = \"${file:~/k.pem}\"\n",
    )
    .to_string();
    assert!(error.contains("needs `certificate`"), "{error}");
    let error = parse_err(
        "[providers.app]\npreset = \"azure-ad\"\ntenant = \"t\"\nclient_id = \"c\"\n\
         client_secret = \"${env:S}\"\nprivate_key = \"${file:~/k.pem}\"\n",
    )
    .to_string();
    assert!(error.contains("several credentials"), "{error}");
}

fn parse_in(env: &[(&str, &str)], text: &str) -> Result<Config, String> {
    let lookup = |name: &str| {
        env.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| OsString::from(value))
    };
    parse_with_env(text, Path::new(PATH), &lookup)
        .map(|(config, _)| config)
        .map_err(|error| error.to_string())
}

#[test]
fn workload_identity_takes_its_defaults_from_the_webhooks_variables() {
    let pod = [
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
    ];
    let text = "[providers.graph]\npreset = \"azure-ad\"\nworkload_identity = true\n\
                scopes = [\"https://graph.microsoft.com/.default\"]\n";
    let config = parse_in(&pod, text).unwrap();
    let graph = oauth2(&config, "graph");
    assert_eq!(graph.client_id, "11111111-2222-3333-4444-555555555555");
    assert_eq!(
        graph.endpoint,
        TokenEndpoint::TokenUrl(url(
            "https://login.microsoftonline.us/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        ))
    );
    assert_eq!(graph.client_auth, ClientAuth::ClientAssertion);
    assert_eq!(
        graph.client_assertion,
        Some(tpl(
            "${file:/var/run/secrets/azure/tokens/azure-identity-token}"
        ))
    );
    // Keys win over the variables; `federated_token_file` alone selects workload identity.
    let text = "[providers.graph]\npreset = \"azure-ad\"\ntenant = \"contoso.onmicrosoft.com\"\n\
                client_id = \"c\"\nfederated_token_file = \"/run/token\"\n";
    let graph = oauth2(&parse_in(&pod, text).unwrap(), "graph");
    assert_eq!(graph.client_id, "c");
    assert_eq!(graph.client_assertion, Some(tpl("${file:/run/token}")));
    let TokenEndpoint::TokenUrl(token_url) = &graph.endpoint else {
        panic!("a token URL");
    };
    assert!(
        token_url
            .as_str()
            .starts_with("https://login.microsoftonline.us/contoso.onmicrosoft.com/"),
        "{token_url}"
    );
    // The variables only count for workload identity: a person's login still needs the keys.
    let error = parse_in(&pod, "[providers.me]\npreset = \"azure-ad\"\n").unwrap_err();
    assert!(error.contains("needs `tenant`"), "{error}");
    // Outside a pod the error names the variable and the key.
    let error = parse_in(
        &[],
        "[providers.graph]\npreset = \"azure-ad\"\nworkload_identity = true\n",
    )
    .unwrap_err();
    assert!(
        error.contains("AZURE_TENANT_ID is not set") && error.contains("add tenant"),
        "{error}"
    );
    let error = parse_in(
        &pod[..2],
        "[providers.graph]\npreset = \"azure-ad\"\nworkload_identity = true\n",
    )
    .unwrap_err();
    assert!(error.contains("AZURE_FEDERATED_TOKEN_FILE"), "{error}");
    let error = parse_in(
        &pod,
        "[providers.graph]\npreset = \"azure-ad\"\nworkload_identity = true\n\
         client_secret = \"${env:S}\"\n",
    )
    .unwrap_err();
    assert!(error.contains("several credentials"), "{error}");
    let error = parse_in(
        &pod,
        "[providers.graph]\npreset = \"azure-ad\"\nfederated_token_file = \"${env:X}\"\n",
    )
    .unwrap_err();
    assert!(error.contains("a path, not a template"), "{error}");
}

#[test]
fn google_service_account_preset() {
    let (config, _) = parse_ok(
        r#"
[providers.gcp]
preset = "google-service-account"
key_file = "~/keys/sa.json"
scopes = ["https://www.googleapis.com/auth/cloud-platform"]
subject = "admin@example.com"

[providers.run]
preset = "google-service-account"
key_file = "/etc/sa.json"
audience = "https://hello.a.run.app"
"#,
    );
    let ProviderKind::Google(gcp) = &config.providers["gcp"].kind else {
        panic!("google");
    };
    assert_eq!(gcp.key_file, tpl("${file:~/keys/sa.json}"));
    assert_eq!(
        gcp.wants,
        Wants::Scopes(vec![
            "https://www.googleapis.com/auth/cloud-platform".to_owned()
        ])
    );
    assert_eq!(gcp.subject.as_deref(), Some("admin@example.com"));
    assert_eq!(config.providers["gcp"].kind.name(), "oauth2");
    let ProviderKind::Google(run) = &config.providers["run"].kind else {
        panic!("google");
    };
    assert_eq!(
        run.wants,
        Wants::Audience("https://hello.a.run.app".to_owned())
    );
    let head = "[providers.a]\npreset = \"google-service-account\"\n";
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "no key file",
            format!("{head}scopes = [\"s\"]\n"),
            1,
            Some("key `key_file`"),
            "needs `key_file`",
        ),
        (
            "neither",
            format!("{head}key_file = \"/k.json\"\n"),
            1,
            Some("key `scopes`"),
            "`scopes` or `audience`",
        ),
        (
            "both",
            format!("{head}key_file = \"/k.json\"\nscopes = [\"s\"]\naudience = \"x\"\n"),
            5,
            Some("key `audience`"),
            "both set",
        ),
        (
            "template",
            format!("{head}key_file = \"${{env:K}}\"\nscopes = [\"s\"]\n"),
            3,
            Some("key `key_file`"),
            "a path, not a template",
        ),
    ];
    check_errors(cases);
}
