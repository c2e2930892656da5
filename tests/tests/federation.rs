//! Identity federation against the real OAuth 2.0 server (panva's `oidc-provider`, with the
//! harness's token exchange grant), through the real `tokend` and `tok`: a platform's token file
//! as the client assertion (Azure workload identity and the generic `client_assertion`), re-read
//! at every request; RFC 8693 token exchange of another provider's token (`${provider:NAME}`),
//! and a reference cycle refused; id_tokens served with their own expiry.

use std::path::Path;

use tokend_e2e::oidc::{
    APP, EXCHANGER, OidcServer, PKJWT, SVC_BASIC, TOKEN_EXCHANGE_GRANT, jwt_claims, pkjwt_assertion,
};
use tokend_e2e::{Daemon, code, stderr, stdout};

fn get(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.tok(args);
    assert_eq!(
        code(&out),
        0,
        "tok {args:?}: {}\ndaemon log:\n{}",
        stderr(&out),
        daemon.log()
    );
    stdout(&out).trim_end().to_owned()
}

/// Writes `text` as the platform would: readable by others (a Kubernetes projected volume's
/// default 0644), replaced atomically.
fn write_platform_token(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[test]
fn workload_identity_sends_the_platforms_current_token_at_every_request() {
    let server = OidcServer::start_with_env(&[("AZURE_TENANT", "contoso")]);
    let dir = tempfile::tempdir().unwrap();
    let azure_file = dir.path().join("azure-identity-token");
    let generic_file = dir.path().join("token");
    let azure_url = server.azure_url("token");
    write_platform_token(&azure_file, &pkjwt_assertion(&azure_url));
    write_platform_token(&generic_file, &pkjwt_assertion(&server.token_url()));
    // What the workload identity webhook puts in a pod: nothing else is configured.
    let config = format!(
        r#"
[providers.graph]
preset = "azure-ad"
workload_identity = true
authority = "{}"
scopes = ["api.read"]

[providers.federated]
kind = "oauth2"
grant = "client_credentials"
token_url = "{}"
client_id = "{}"
client_assertion = "${{file:{}}}"
scopes = ["api.write"]
"#,
        server.azure_authority(),
        server.token_url(),
        PKJWT.id,
        generic_file.display()
    );
    let daemon = Daemon::start_with_env(
        &config,
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", azure_file.to_str().unwrap()),
            ("AZURE_TENANT_ID", "contoso"),
            ("AZURE_CLIENT_ID", PKJWT.id),
        ],
    );
    let first = get(&daemon, &["get", "graph"]);
    let first_jti = server.stats()["last_assertion"]["jti"].clone();
    assert!(first_jti.is_string(), "{}", server.stats());
    assert_eq!(jwt_claims(&first)["client_id"], PKJWT.id);
    assert_eq!(jwt_claims(&first)["scope"], "api.read");
    let generic = get(&daemon, &["get", "federated"]);
    assert_eq!(jwt_claims(&generic)["scope"], "api.write");

    // The platform rotates its token file; the next request sends the new token.
    write_platform_token(&azure_file, &pkjwt_assertion(&azure_url));
    assert_eq!(code(&daemon.tok(&["invalidate", "graph"])), 0);
    let second = get(&daemon, &["get", "graph"]);
    assert_ne!(second, first);
    // The assertion sent was the file's new token (a new `jti`), not the one read before.
    let second_jti = server.stats()["last_assertion"]["jti"].clone();
    assert!(
        second_jti.is_string() && second_jti != first_jti,
        "{first_jti} {second_jti}"
    );
    // The server really refuses a token it has seen (a replayed `jti`), so the success above
    // needed the new file: the generic provider's file did not change, and its next request
    // is refused, with the error in plain sight and the assertion nowhere.
    let replayed = std::fs::read_to_string(&generic_file).unwrap();
    assert_eq!(code(&daemon.tok(&["invalidate", "federated"])), 0);
    let out = daemon.tok(&["get", "federated"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid_client"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(replayed.trim()));
    assert!(
        !daemon.log().contains(replayed.trim()),
        "the assertion reached the log"
    );
    let stats = server.stats();
    assert_eq!(stats["by_auth_method"]["client_assertion"], 4, "{stats}");
    assert_eq!(stats["failures"], 1, "{stats}");
}

#[test]
fn token_exchange_trades_another_providers_token_and_cycles_are_refused() {
    let server = OidcServer::start(60);
    let config = format!(
        r#"
[providers.ci]
kind = "oauth2"
grant = "client_credentials"
token_url = "{token_url}"
client_id = "{ci}"
client_secret = "${{env:CI_SECRET}}"
scopes = ["api.read"]

[providers.exchanged]
kind = "oauth2"
grant = "token_exchange"
token_url = "{token_url}"
client_id = "{exchanger}"
client_secret = "${{env:EXCHANGER_SECRET}}"
client_auth = "post"
subject_token = "${{provider:ci}}"
subject_token_type = "urn:ietf:params:oauth:token-type:access_token"
actor_token = "${{provider:ci}}"
actor_token_type = "urn:ietf:params:oauth:token-type:access_token"
requested_token_type = "urn:ietf:params:oauth:token-type:access_token"
audience = "https://other.example.test"
scopes = ["api.read"]
"#,
        token_url = server.token_url(),
        ci = SVC_BASIC.id,
        exchanger = EXCHANGER.id,
    );
    let env = [
        ("CI_SECRET", SVC_BASIC.secret),
        ("EXCHANGER_SECRET", EXCHANGER.secret),
    ];
    let daemon = Daemon::start_with_env(&config, &env);
    let token = get(&daemon, &["get", "exchanged"]);
    let claims = jwt_claims(&token);
    assert_eq!(claims["sub"], SVC_BASIC.id, "the subject carries over");
    assert_eq!(claims["client_id"], EXCHANGER.id);
    assert_eq!(claims["aud"], "https://other.example.test");
    let stats = server.stats();
    let exchange = &stats["last_exchange"];
    assert_eq!(exchange["subject"], SVC_BASIC.id, "{stats}");
    assert_eq!(exchange["actor"], SVC_BASIC.id, "{stats}");
    assert_eq!(exchange["audience"], "https://other.example.test");
    assert_eq!(exchange["scope"], "api.read");
    assert_eq!(
        exchange["requested_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    // The subject token came through `ci`'s cache: one client-credentials request for both
    // references, and `ci` itself is served from it.
    assert_eq!(stats["by_grant"][SVC_BASIC_GRANT], 1, "{stats}");
    assert_eq!(stats["by_grant"][TOKEN_EXCHANGE_GRANT], 1, "{stats}");
    let subject = get(&daemon, &["get", "ci"]);
    assert_eq!(jwt_claims(&subject)["client_id"], SVC_BASIC.id);
    assert_eq!(get(&daemon, &["get", "exchanged"]), token, "cached");
    assert_eq!(server.token_requests(), 2);

    // A cycle is a config error: the reload is refused and the old config stays.
    let cyclic = config.replace(
        "scopes = [\"api.read\"]\n\n[providers.exchanged]",
        "scopes = [\"api.read\"]\nclient_assertion = \"${provider:exchanged}\"\n\n[providers.exchanged]",
    );
    let cyclic = cyclic.replace("client_secret = \"${env:CI_SECRET}\"\n", "");
    std::fs::write(daemon.dir().join("config.toml"), &cyclic).unwrap();
    let out = daemon.tok(&["reload"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cycle: ci → exchanged → ci"),
        "{}",
        stderr(&out)
    );
    assert_eq!(get(&daemon, &["get", "exchanged"]), token);
}

const SVC_BASIC_GRANT: &str = "client_credentials";

#[test]
fn id_tokens_are_kept_and_served_with_their_own_expiry() {
    // Access tokens live 20 s, id_tokens the server's default hour.
    let server = OidcServer::start(20);
    let refresh_token = server.mint_refresh_token();
    let config = format!(
        "{}\n{}",
        server.refresh_token_provider(""),
        format_args!(
            r#"
[providers.api]
kind = "oauth2"
grant = "client_credentials"
token_url = "{}"
client_id = "{}"
client_secret = "${{env:SVC_SECRET}}"
"#,
            server.token_url(),
            SVC_BASIC.id
        )
    );
    let daemon = Daemon::start_with_env(
        &config,
        &[
            ("E2E_CLIENT_SECRET", APP.secret),
            ("E2E_REFRESH_TOKEN", &refresh_token),
            ("SVC_SECRET", SVC_BASIC.secret),
        ],
    );
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&get(&daemon, args)).expect("tok get --json prints JSON")
    };
    let access = json(&["get", "user", "--json", "--min-ttl", "1"]);
    let id = json(&["get", "user", "--id-token", "--json", "--min-ttl", "1"]);
    let id_token = id["token"].as_str().unwrap().to_owned();
    let claims = jwt_claims(&id_token);
    assert_eq!(claims["sub"], "tester");
    assert_eq!(claims["aud"], APP.id);
    assert_eq!(id["header"], format!("Authorization: Bearer {id_token}"));
    // Each expiry is its own: the id_token's is its `exp`, an hour away; the access token's 20 s.
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(
        id["expires_at"],
        tokend_protocol::clock::rfc3339(exp),
        "{id}"
    );
    assert_ne!(id["expires_at"], access["expires_at"]);
    assert_eq!(server.token_requests(), 1, "one refresh gave both");

    // Each is served by its own expiry: the access token cannot last a minute, the id_token
    // can (from the cache: no request).
    let out = daemon.tok(&["get", "user", "--min-ttl", "60"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("less than"), "{}", stderr(&out));
    assert_eq!(
        get(&daemon, &["get", "user", "--id-token", "--min-ttl", "60"]),
        id_token
    );
    assert_eq!(server.token_requests(), 1);
    let status: serde_json::Value =
        serde_json::from_str(&get(&daemon, &["status", "--json"])).unwrap();
    let user = &status["providers"][1];
    assert_eq!(user["name"], "user");
    assert_eq!(user["id_token_expires_at"], id["expires_at"], "{status}");
    assert_eq!(user["expires_at"], access["expires_at"], "{status}");

    // kubectl's exec plugin with --id-token gets the id_token and its expiry.
    let credential: serde_json::Value =
        serde_json::from_str(&get(&daemon, &["kube", "user", "--id-token"])).unwrap();
    assert_eq!(credential["status"]["token"], id_token.as_str());
    assert_eq!(
        credential["status"]["expirationTimestamp"],
        id["expires_at"]
    );
    // The library's equivalent.
    let token = daemon.client().get_id_token("user").unwrap();
    assert_eq!(token.value.expose(), id_token);

    // After an invalidation the id_token wanted for a minute is fetched anew: that the access
    // tokens live 20 s says nothing about it.
    assert_eq!(code(&daemon.tok(&["invalidate", "user"])), 0);
    let renewed = get(&daemon, &["get", "user", "--id-token", "--min-ttl", "60"]);
    assert_eq!(jwt_claims(&renewed)["sub"], "tester");
    assert_eq!(server.token_requests(), 2, "the invalidation's refresh");

    // A grant without openid returns no id_token: said at once, exit 5.
    let out = daemon.tok(&["get", "api", "--id-token"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("without an id_token"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("openid"), "{}", stderr(&out));
}
