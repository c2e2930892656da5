//! How a token is presented: `header`, `scheme`, `basic_user`, their defaults, the header
//! value they make, and which header names are valid.

use serde::Deserialize;
use tokend_protocol::Secret;

use crate::config::test_support::*;
use crate::config::values::is_http_token;
use crate::config::*;

#[test]
fn defaults_and_other_schemes() {
    let (config, _) = parse_ok(
        r#"
[providers.a]
kind = "static"
secret = "${env:A}"

[providers.b]
kind = "static"
secret = "${env:B}"
scheme = "basic"
basic_user = "me"

[providers.c]
kind = "static"
secret = "${env:C}"
scheme = "raw"
header = "PRIVATE-TOKEN"

[providers."d.e_f-1"]
kind = "static"
secret = "${env:D}"
scheme = "basic"
"#,
    );
    let presentation = |name: &str| config.providers[name].presentation.clone();
    assert_eq!(
        presentation("a"),
        Presentation {
            header: "Authorization".to_owned(),
            scheme: Scheme::Bearer,
            basic_user: String::new(),
        }
    );
    assert_eq!(presentation("b").scheme, Scheme::Basic);
    assert_eq!(presentation("b").basic_user, "me");
    assert_eq!(presentation("c").scheme, Scheme::Raw);
    assert_eq!(presentation("c").header, "PRIVATE-TOKEN");
    assert_eq!(presentation("d.e_f-1").basic_user, "");
}

#[test]
fn header_values() {
    let token = Secret::from("tok");
    let with = |scheme, basic_user: &str| Presentation {
        header: "Authorization".to_owned(),
        scheme,
        basic_user: basic_user.to_owned(),
    };
    assert_eq!(
        with(Scheme::Bearer, "").header_value(&token).expose(),
        "Bearer tok"
    );
    assert_eq!(
        with(Scheme::Basic, "").header_value(&token).expose(),
        "Basic OnRvaw=="
    );
    assert_eq!(
        with(Scheme::Basic, "u").header_value(&token).expose(),
        "Basic dTp0b2s="
    );
    assert_eq!(with(Scheme::Raw, "").header_value(&token).expose(), "tok");
}

#[test]
fn scheme_serde_names() {
    #[derive(Deserialize)]
    struct Holder {
        scheme: Scheme,
    }
    for scheme in Scheme::ALL {
        let holder: Holder = toml::from_str(&format!("scheme = \"{scheme}\"")).unwrap();
        assert_eq!(holder.scheme, scheme);
    }
}

#[test]
fn http_token_check() {
    for good in [
        "Authorization",
        "X-API-KEY",
        "PRIVATE-TOKEN",
        "a!#$%&'*+-.^_`|~9",
    ] {
        assert!(is_http_token(good), "{good}");
    }
    for bad in ["", "X API", "X:Y", "X\tY", "X\r\nY", "Ä", "(x)", "a/b"] {
        assert!(!is_http_token(bad), "{bad:?}");
    }
}
