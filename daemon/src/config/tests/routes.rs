//! The git and Docker credential-helper routes (`git`, `docker`) and the hosts they accept.

use tokend_protocol::CredentialTool;

use crate::config::routes::is_host_and_port;
use crate::config::test_support::*;

#[test]
fn credential_routes() {
    let (config, _) = parse_ok(
        "[providers.lab]\nkind = \"static\"\nsecret = \"${env:X}\"\n\
         git = { host = \"GitLab.Example.com\" }\n\
         docker = { host = \"[::1]:5000\", username = \"robot\" }\n\
         [providers.crm]\npreset = \"crm.com\"\nbase_url = \"https://crm/api\"\n\
         api_key = \"${env:K}\"\nauthentication_code = \"${env:C}\"\n\
         git = { host = \"127.0.0.1:8080\" }\n",
    );
    let routes: Vec<_> = config
        .routes
        .iter()
        .map(|r| {
            (
                r.provider.as_str(),
                r.tool,
                r.host.as_str(),
                r.username.as_str(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("crm", CredentialTool::Git, "127.0.0.1:8080", "oauth2"),
            ("lab", CredentialTool::Git, "gitlab.example.com", "oauth2"),
            ("lab", CredentialTool::Docker, "[::1]:5000", "robot"),
        ]
    );
    // The same host may be routed once per tool.
    parse_ok(
        "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"h\" }\n\
         [providers.b]\nkind = \"static\"\nsecret = \"${env:X}\"\ndocker = { host = \"h\" }\n",
    );
    for host in ["h", "h.example", "h:1", "[::1]", "[fe80::1]:443", "a_b-c.d"] {
        assert!(is_host_and_port(host), "{host}");
    }
    for host in [
        "",
        "h:",
        "h:0",
        "h:70000",
        "h/x",
        "https://h",
        "[::1",
        "[]",
        "[x]",
        "h h",
        ":80",
    ] {
        assert!(!is_host_and_port(host), "{host}");
    }
}
