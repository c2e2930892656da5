//! The located errors of the top-level and provider tables (file, line, key, what to do),
//! and the hints they give (known keys, kinds, presets, schemes, grants).

use crate::config::keys;
use crate::config::test_support::*;
use crate::config::values::{MAX_TIMEOUT, TIMEOUT_HINT};
use crate::config::*;
use crate::kinds::{KINDS, PRESETS};

#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "toml syntax",
            format!("[providers.a]\nkind = \"static\"\nsecret = {SECRET}\n"),
            3,
            None,
            "TOML syntax error",
        ),
        (
            "duplicate table",
            "[providers.a]\nkind = \"static\"\n[providers.a]\nkind = \"static\"\n".to_owned(),
            3,
            None,
            "may appear only once",
        ),
        (
            "unknown top-level key",
            "\n\ntop = 1\n".to_owned(),
            3,
            Some("top-level key `top`"),
            "unknown key",
        ),
        (
            "unknown top-level table",
            "[provider.a]\nkind = \"static\"\n".to_owned(),
            1,
            Some("top-level key `provider`"),
            "unknown key",
        ),
        (
            "unknown provider key",
            format!(
                "[providers.a]\nkind = \"static\"\nsecret = \"${{env:X}}\"\nsecrett = \"{SECRET}\"\n"
            ),
            4,
            Some("[providers.a] key `secrett`"),
            "known keys: kind, secret",
        ),
        (
            "route on an anonymous provider",
            "[providers.a]\nkind = \"anonymous\"\ngit = { host = \"h\" }\n".to_owned(),
            3,
            Some("[providers.a] key `git`"),
            "no meaning for kind \"anonymous\"",
        ),
        (
            "route is not a table",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = \"h\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `git`"),
            "expected a table",
        ),
        (
            "route without host",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\n\n[providers.a.docker]\nusername = \"u\"\n"
                .to_owned(),
            5,
            Some("[providers.a] key `docker.host`"),
            "`docker` needs `host`",
        ),
        (
            "route host with a scheme",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"https://h/x\" }\n"
                .to_owned(),
            4,
            Some("[providers.a] key `git.host`"),
            "no scheme, no path",
        ),
        (
            "route unknown key",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { hots = \"h\" }\n"
                .to_owned(),
            4,
            Some("[providers.a] key `git.hots`"),
            "known keys: host, path, username",
        ),
        (
            "route username with a colon",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"h\", username = \"a:b\" }\n"
                .to_owned(),
            4,
            Some("[providers.a] key `git.username`"),
            "contains a space",
        ),
        (
            "host routed twice",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"H:8080\" }\n\
             [providers.b]\nkind = \"static\"\nsecret = \"${env:Y}\"\ngit = { host = \"h:8080\" }\n"
                .to_owned(),
            8,
            Some("[providers.b] key `git.host`"),
            "already routed to provider \"a\"",
        ),
        (
            "unknown provider sub-table",
            "[providers.a]\nkind = \"static\"\n\n[providers.a.extra]\nx = 1\n".to_owned(),
            4,
            Some("[providers.a] key `extra`"),
            "unknown key",
        ),
        (
            "missing kind",
            "\n[providers.a]\nsecret = \"${env:X}\"\n".to_owned(),
            2,
            Some("[providers.a] key `kind`"),
            "missing `kind`",
        ),
        (
            "unknown kind",
            "[providers.a]\nsecret = \"${env:X}\"\nkind = \"oauth\"\n".to_owned(),
            3,
            Some("[providers.a] key `kind`"),
            "use one of: static",
        ),
        (
            "kind not a string",
            "[providers.a]\nkind = 3\n".to_owned(),
            2,
            Some("[providers.a] key `kind`"),
            "expected a string, found an integer",
        ),
        (
            "secret not a string",
            "[providers.a]\nkind = \"static\"\nsecret = { env = \"X\" }\n".to_owned(),
            3,
            Some("[providers.a] key `secret`"),
            "expected a string, found a table",
        ),
        (
            "static without secret",
            "[providers.a]\nkind = \"static\"\n".to_owned(),
            1,
            Some("[providers.a] key `secret`"),
            "needs a `secret`",
        ),
        (
            "empty secret",
            "[providers.a]\nkind = \"static\"\nsecret = \"\"\n".to_owned(),
            3,
            Some("[providers.a] key `secret`"),
            "`secret` is empty",
        ),
        (
            "bad secret template",
            format!("[providers.a]\nkind = \"static\"\n\nsecret = \"{SECRET}${{nope:X}}\"\n"),
            4,
            Some("[providers.a] key `secret`"),
            "at byte 14",
        ),
        (
            "unclosed secret reference",
            format!("[providers.a]\nkind = \"static\"\nsecret = \"${{env:{SECRET}\"\n"),
            3,
            Some("[providers.a] key `secret`"),
            "no closing",
        ),
        (
            "bad scheme",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nscheme = \"digest\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `scheme`"),
            "use one of: bearer, basic, raw",
        ),
        (
            "basic_user without basic",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nbasic_user = \"me\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `basic_user`"),
            "scheme is \"bearer\"",
        ),
        (
            "basic_user with raw",
            "[providers.a]\nkind = \"static\"\nscheme = \"raw\"\nbasic_user = \"\"\nsecret = \"${env:X}\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `basic_user`"),
            "scheme is \"raw\"",
        ),
        (
            "basic_user with colon",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nscheme = \"basic\"\nbasic_user = \"a:b\"\n"
                .to_owned(),
            5,
            Some("[providers.a] key `basic_user`"),
            "contains `:`",
        ),
        (
            "header with space",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X API\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `header`"),
            "not a valid HTTP header name",
        ),
        (
            "header with colon",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X-Key:\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `header`"),
            "not a valid HTTP header name",
        ),
        (
            "empty header",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `header`"),
            "not a valid HTTP header name",
        ),
        (
            "header with control character",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X\\tY\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `header`"),
            "not a valid HTTP header name",
        ),
        (
            "provider name with space",
            "\n[providers.\"a b\"]\nkind = \"static\"\nsecret = \"${env:X}\"\n".to_owned(),
            2,
            None,
            "invalid provider name \"a b\"",
        ),
        (
            "empty provider name",
            "[providers.\"\"]\nkind = \"static\"\nsecret = \"${env:X}\"\n".to_owned(),
            1,
            None,
            "invalid provider name \"\"",
        ),
        (
            "provider is not a table",
            format!("[providers]\ngitlab = \"{SECRET}\"\n"),
            2,
            Some("[providers.gitlab]"),
            "a provider must be a table, found a string",
        ),
        (
            "array of provider tables",
            "\n[[providers]]\nkind = \"static\"\n".to_owned(),
            2,
            Some("top-level key `providers`"),
            "expected a table, found an array",
        ),
        (
            "providers is not a table",
            format!("providers = \"{SECRET}\"\n"),
            1,
            Some("top-level key `providers`"),
            "expected a table, found a string",
        ),
    ];
    check_errors(cases);
}

#[test]
fn hints_list_what_the_format_allows() {
    let schemes: Vec<&str> = Scheme::ALL.iter().map(|scheme| scheme.as_str()).collect();
    let error =
        parse_err("[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nscheme = \"x\"\n");
    assert!(error.to_string().ends_with(&schemes.join(", ")), "{error}");
    // Each kind's and preset's unknown-key hint lists exactly its keys.
    for spec in KINDS.iter().chain(&PRESETS) {
        let error = parse_err(&format!(
            "[providers.a]\n{} = \"{}\"\nzzz = 1\n",
            spec.key, spec.name
        ))
        .to_string();
        let listed = error.split("known keys: ").nth(1).unwrap();
        assert_eq!(
            listed,
            keys::names(Some(spec.key), spec.keys).join(", "),
            "{error}"
        );
    }
    // Every key the static hint lists is accepted (this one has them all).
    let (config, _) = parse_ok(
        "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"H\"\n\
         scheme = \"basic\"\nbasic_user = \"u\"\n",
    );
    assert_eq!(config.providers["a"].kind.name(), "static");
    // The kind hints list every kind, the preset hints every preset.
    let unknown_kind = provider::unknown_kind_hint();
    let missing_kind = provider::missing_kind_hint();
    let unknown_preset = provider::unknown_preset_hint();
    for kind in KINDS.map(|spec| spec.name) {
        assert!(unknown_kind.contains(kind), "{kind}");
        assert!(missing_kind.contains(kind), "{kind}");
    }
    assert!(unknown_kind.starts_with("use one of: static, anonymous, oauth2, http"));
    for preset in PRESETS.map(|spec| spec.name) {
        assert!(unknown_kind.contains(preset), "{preset}");
        assert!(unknown_preset.contains(preset), "{preset}");
        assert!(missing_kind.contains(preset), "{preset}");
    }
    let error = parse_err(
        "[providers.a]\nkind = \"oauth2\"\ngrant = \"x\"\ntoken_url = \"https://a/t\"\n\
         client_id = \"c\"\n",
    );
    assert!(
        error
            .to_string()
            .ends_with("authorization_code, device_code, jwt_bearer, token_exchange"),
        "{error}"
    );
    // The timeout hint states the real limit.
    let limit = format!("to {}s,", MAX_TIMEOUT.as_secs());
    assert!(TIMEOUT_HINT.contains(&limit), "{TIMEOUT_HINT}");
}
