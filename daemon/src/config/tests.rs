//! The config file as a whole: finding and loading it, top-level and provider-table errors,
//! presentation, routes, `[store]`, warnings, timeouts.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokend_protocol::{CredentialTool, Secret};

use crate::config::keys;
use crate::config::routes::is_host_and_port;
use crate::config::test_support::*;
use crate::config::values::{MAX_TIMEOUT, TIMEOUT_HINT, is_http_token, literal_template};
use crate::config::*;
use crate::kinds::ProviderKind;
use crate::kinds::http::crm::CRM_TTL;
use crate::kinds::http::*;
use crate::kinds::oauth2::*;
use crate::kinds::{KINDS, PRESETS};
use crate::secret::SecretTemplate;
use crate::store::KeySource;

/// A fresh private directory under the system temp dir, removed on drop.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tokend-config-{tag}-"))
        .tempdir()
        .expect("create temp dir")
}

const EXAMPLE: &str = r#"
[providers.salestim]            # the table name is what `tok get` takes
kind = "static"                 # a fixed secret: API key or personal access token
secret = "${env:SALESTIM_API_KEY}"
header = "X-API-KEY"            # presented as `X-API-KEY: <secret>`

[providers.gitlab]
kind = "static"
secret = "${file:~/.config/gitlab.pat}"
scheme = "bearer"
"#;

#[test]
fn examples_parse() {
    let (config, warnings) = parse_ok(EXAMPLE);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.source, ConfigSource::File(PathBuf::from(PATH)));
    assert_eq!(config.providers.len(), 2);

    let salestim = &config.providers["salestim"];
    assert_eq!(salestim.name, "salestim");
    assert_eq!(salestim.kind.name(), "static");
    assert_eq!(
        salestim.kind,
        ProviderKind::Static {
            secret: SecretTemplate::parse("${env:SALESTIM_API_KEY}").unwrap(),
            rotate: None,
        }
    );
    assert_eq!(salestim.presentation.header, "X-API-KEY");
    // A custom header without a scheme carries the bare secret.
    assert_eq!(salestim.presentation.scheme, Scheme::Raw);
    assert_eq!(salestim.presentation.basic_user, "");

    let gitlab = &config.providers["gitlab"];
    assert_eq!(gitlab.presentation, Presentation::default());
    assert_eq!(
        gitlab.kind,
        ProviderKind::Static {
            secret: SecretTemplate::parse("${file:~/.config/gitlab.pat}").unwrap(),
            rotate: None,
        }
    );
}

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

#[test]
fn empty_file_has_no_providers() {
    let (config, warnings) = parse_ok("# nothing yet\n");
    assert!(config.providers.is_empty());
    assert!(warnings.is_empty());
    let (config, _) = parse_ok("[providers]\n");
    assert!(config.providers.is_empty());
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

/// Each case: description, config text, expected line, expected key, expected fragment.
#[test]
fn the_store_table_chooses_the_key_source() {
    let config_dir = Path::new(PATH).parent().unwrap();
    let (config, _) = parse_ok("");
    assert_eq!(
        config.store.key,
        KeySource::File(config_dir.join("store.key")),
        "default: a key file beside the config file"
    );
    let (config, _) = parse_ok("[store]\nkey = \"keyring\"\n");
    assert_eq!(config.store.key, KeySource::Keyring);
    let (config, _) = parse_ok("[store]\nkey = \"file\"\nkey_file = \"keys/k\"\n");
    assert_eq!(config.store.key, KeySource::File(config_dir.join("keys/k")));
    let (config, _) = parse_ok("[store]\nkey_file = \"/abs/k\"\n");
    assert_eq!(config.store.key, KeySource::File(PathBuf::from("/abs/k")));

    for (text, line, key, needle) in [
        (
            "[store]\nkey = \"plain\"\n",
            2,
            "store.key",
            "use one of: file (a key file",
        ),
        (
            "[store]\n\nkey = 1\n",
            3,
            "store.key",
            "expected a string, found an integer",
        ),
        (
            "[store]\nkeyfile = \"k\"\n",
            2,
            "store.keyfile",
            "known keys: key, key_file",
        ),
        (
            "[store]\nkey = \"keyring\"\nkey_file = \"k\"\n",
            3,
            "store.key_file",
            "remove key_file, or set key = \"file\"",
        ),
        ("store = 1\n", 1, "store", "write it as a [store] table"),
    ] {
        let error = parse_err(text).to_string();
        assert!(error.starts_with(&format!("{PATH}:{line}:")), "{error}");
        assert!(error.contains(&format!("top-level key `{key}`")), "{error}");
        assert!(error.contains(needle), "{error}");
    }
}

#[test]
fn persist_is_a_boolean_of_fetching_kinds_only() {
    let oauth = "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                 token_url = \"https://a.example/t\"\nclient_id = \"c\"\n\
                 client_secret = \"${env:S}\"\n";
    assert!(parse_ok(oauth).0.providers["a"].persist, "on by default");
    let (config, _) = parse_ok(&format!("{oauth}persist = false\n"));
    assert!(!config.providers["a"].persist);
    let error = parse_err(&format!("{oauth}persist = \"no\"\n")).to_string();
    assert!(
        error.contains(":7:") && error.contains("expected a boolean"),
        "{error}"
    );
    let error =
        parse_err("[providers.s]\nkind = \"static\"\nsecret = \"${env:S}\"\npersist = false\n")
            .to_string();
    assert!(
        error.contains(":4:") && error.contains("unknown key"),
        "{error}"
    );
}

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
fn literal_secret_warns_without_leaking() {
    let text = format!("[providers.lit]\nkind = \"static\"\n\nsecret = \"{SECRET}\"\n");
    let (config, warnings) = parse_ok(&text);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert_eq!(warning.line, 4);
    assert!(warning.message.contains("[providers.lit]"), "{warning}");
    assert!(warning.message.contains("`secret`"), "{warning}");
    assert!(warning.message.contains("${env:…}"), "{warning}");
    assert!(warning.to_string().starts_with("line 4: "), "{warning}");

    let shown = format!("{config:?} {warnings:?} {warning}");
    assert!(!shown.contains(SECRET), "{shown}");
    let ProviderKind::Static { secret, .. } = &config.providers["lit"].kind else {
        panic!("expected a static provider: {config:?}");
    };
    assert!(secret.is_literal());
}

#[test]
fn missing_file_is_empty_config() {
    let dir = temp_dir("missing");
    let path = dir.path().join("config.toml");
    let (config, warnings) = load(&path).unwrap();
    assert_eq!(config.source, ConfigSource::Missing(path.clone()));
    assert_eq!(config.source.path(), path);
    assert!(config.providers.is_empty());
    assert!(warnings.is_empty());
}

#[test]
fn load_reads_file_and_reports_errors_with_path() {
    let dir = temp_dir("load");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let (config, _) = load(&path).unwrap();
    assert_eq!(config.source, ConfigSource::File(path.clone()));
    assert_eq!(config.providers.len(), 2);

    std::fs::write(&path, "[providers.a]\nkind = \"oauth\"\n").unwrap();
    let message = load(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:2: ", path.display())),
        "{message}"
    );
}

#[test]
fn load_rejects_non_utf8() {
    let dir = temp_dir("utf8");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, b"[providers.a]\nkind = \"st\xffatic\"\n").unwrap();
    let error = load(&path).unwrap_err();
    assert!(
        matches!(error, ConfigError::NotUtf8 { line: 2, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("{}:2:", path.display())),
        "{message}"
    );
    assert!(message.contains("UTF-8"), "{message}");
}

#[test]
fn load_directory_is_read_error() {
    let dir = temp_dir("dir");
    let error = load(dir.path()).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string()),
        "{error}"
    );
}

#[cfg(unix)]
#[test]
fn load_warns_about_readable_file_with_literal_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("mode");
    let path = dir.path().join("config.toml");
    let set_mode = |mode| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let literal = format!("[providers.lit]\nkind = \"static\"\nsecret = \"{SECRET}\"\n");

    std::fs::write(&path, &literal).unwrap();
    set_mode(0o644);
    let (_, warnings) = load(&path).unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let mode_warning = &warnings[1];
    assert_eq!(mode_warning.line, 3);
    assert!(
        mode_warning
            .message
            .contains(&format!("run chmod 600 {}", path.display())),
        "{mode_warning}"
    );
    assert!(mode_warning.message.contains("0644"), "{mode_warning}");
    assert!(!format!("{warnings:?}").contains(SECRET));

    set_mode(0o600);
    let (_, warnings) = load(&path).unwrap();
    assert_eq!(warnings.len(), 1, "only the literal warning: {warnings:?}");

    // Readable but without a literal secret: nothing to protect.
    std::fs::write(&path, EXAMPLE).unwrap();
    set_mode(0o644);
    let (_, warnings) = load(&path).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");

    set_mode(0o664);
    let (_, warnings) = load(&path).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].message.contains("writable by group or others"));
    assert_eq!(warnings[0].line, 0);
}

#[test]
fn resolve_path_order() {
    let explicit = Path::new("/explicit/config.toml");
    let with_env = |name: &str| (name == CONFIG_ENV).then(|| OsString::from("/from/env.toml"));
    let empty_env = |name: &str| (name == CONFIG_ENV).then(OsString::new);
    let no_env = |_: &str| None;

    assert_eq!(
        resolve_path(Some(explicit), &with_env).unwrap(),
        PathBuf::from("/explicit/config.toml")
    );
    assert_eq!(
        resolve_path(None, &with_env).unwrap(),
        PathBuf::from("/from/env.toml")
    );
    // Empty TOKEND_CONFIG is ignored like an unset one.
    for env in [&empty_env as &dyn Fn(&str) -> Option<OsString>, &no_env] {
        match resolve_path(None, env) {
            Ok(path) => assert!(path.ends_with("tokend/config.toml"), "{}", path.display()),
            Err(error) => assert!(matches!(error, ConfigError::NoConfigDir)),
        }
    }
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

const NEW_KINDS: &str = r#"
[providers.store]               # SalesTim anonymous access
kind = "anonymous"

[providers.api]                 # OAuth 2.0 client credentials
kind = "oauth2"
grant = "client_credentials"
token_url = "https://auth.example.com/oauth/token"
client_id = "svc"
client_secret = "${env:API_SECRET}"
client_auth = "basic"
scopes = ["api.read"]
params = { audience = "https://api.example.com" }
ttl = "1h"

[providers.refreshing]
kind = "oauth2"
grant = "refresh_token"
token_url = "https://auth.example.com/oauth/token"
client_id = "cli"
refresh_token = "${env:MY_REFRESH_TOKEN}"

[providers.exchange]
kind = "http"
method = "post"
url = "https://api.example.com/token"
basic = { user = "${env:KEY}", password = "" }
headers = { "Some-Header" = "value" }
json = { any = { nested = "${env:X}" } }
token = "/data/token"
expires = "jwt"
ttl = "2h"
ok = { pointer = "/status/code", equals = "OK", message = "/status/description" }
"#;

#[test]
fn new_kinds_parse() {
    let (config, warnings) = parse_ok(NEW_KINDS);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.providers.len(), 4);

    let store = &config.providers["store"];
    assert_eq!(store.kind, ProviderKind::Anonymous);
    assert_eq!(store.kind.name(), "anonymous");
    assert_eq!(store.presentation, Presentation::default());

    let api = &config.providers["api"];
    assert_eq!(
        api.kind,
        ProviderKind::OAuth2(Box::new(OAuth2Config {
            grant: OAuth2Grant::ClientCredentials,
            endpoint: TokenEndpoint::TokenUrl(url("https://auth.example.com/oauth/token")),
            client_id: "svc".to_owned(),
            client_secret: Some(tpl("${env:API_SECRET}")),
            client_auth: ClientAuth::Basic,
            scopes: vec!["api.read".to_owned()],
            params: vec![("audience".to_owned(), "https://api.example.com".to_owned())],
            ttl: Some(Duration::from_secs(3600)),
            timeout: None,
            revocation_url: None,
            signing_key: None,
            client_assertion: None,
        }))
    );
    assert_eq!(api.presentation, Presentation::default());

    assert_eq!(
        config.providers["refreshing"].kind,
        ProviderKind::OAuth2(Box::new(OAuth2Config {
            grant: OAuth2Grant::RefreshToken {
                refresh_token: tpl("${env:MY_REFRESH_TOKEN}"),
            },
            endpoint: TokenEndpoint::TokenUrl(url("https://auth.example.com/oauth/token")),
            client_id: "cli".to_owned(),
            client_secret: None,
            client_auth: ClientAuth::Basic,
            scopes: Vec::new(),
            params: Vec::new(),
            ttl: None,
            timeout: None,
            revocation_url: None,
            signing_key: None,
            client_assertion: None,
        }))
    );

    assert_eq!(
        http(&config, "exchange"),
        HttpExchange {
            method: HttpMethod::Post,
            url: url("https://api.example.com/token"),
            basic: Some(BasicPair {
                user: tpl("${env:KEY}"),
                password: tpl(""),
            }),
            headers: vec![("Some-Header".to_owned(), tpl("value"))],
            body: Some(HttpBody::Json(object(&[(
                "any",
                object(&[("nested", json_str("${env:X}"))]),
            )]))),
            token: "/data/token".to_owned(),
            expires: ExpiresFrom::Jwt,
            ttl: Some(Duration::from_secs(7200)),
            ok: Some(OkCheck {
                pointer: "/status/code".to_owned(),
                equals: "OK".to_owned(),
                message: Some("/status/description".to_owned()),
            }),
            timeout: None,
            jwt: None,
        }
    );
    assert_eq!(
        config.providers["exchange"].presentation,
        Presentation::default()
    );
}

#[test]
fn literal_credentials_warn_without_leaking() {
    let text = format!(
        r#"[providers.o]
kind = "oauth2"
grant = "refresh_token"
token_url = "https://a.example/token"
client_id = "not-a-secret"
client_secret = "{SECRET}1"
refresh_token = "{SECRET}2"
params = {{ audience = "plain" }}

[providers.h]
kind = "http"
url = "https://a.example/"
token = "/t"
basic = {{ user = "{SECRET}3", password = "{SECRET}4" }}
headers = {{ X-Plain = "value" }}
json = {{ a = "text" }}

[providers.crm]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "{SECRET}5"
identifier = "card"
pass_code = "{SECRET}6"

[providers.crm2]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${{env:K}}"
authentication_code = "{SECRET}7"

[providers.crm3]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${{env:K}}"
jwt = "{SECRET}8"
organisation = "org"

[providers.tk]
preset = "timekit"
app = "slug"
email = "me@example.com"
api_key = "{SECRET}9"

[providers.st]
preset = "salestim"
api_key = "{SECRET}10"

[providers.empty-password]
kind = "http"
url = "https://a.example/"
token = "/t"
basic = {{ user = "${{env:U}}", password = "" }}
"#
    );
    let (_, warnings) = parse_ok(&text);
    let got: Vec<(usize, &str)> = warnings
        .iter()
        .map(|warning| {
            let key = warning.message.split('`').nth(1).unwrap();
            (warning.line, key)
        })
        .collect();
    assert_eq!(
        got,
        [
            (6, "client_secret"),
            (7, "refresh_token"),
            (14, "basic.user"),
            (14, "basic.password"),
            (21, "api_key"),
            (23, "pass_code"),
            (29, "authentication_code"),
            (35, "jwt"),
            (42, "api_key"),
            (46, "api_key"),
        ]
    );
    for warning in &warnings {
        assert!(!warning.to_string().contains(SECRET), "{warning}");
        assert!(warning.message.contains("literal secret"), "{warning}");
    }
}

#[test]
fn literal_template_escapes_references() {
    for text in [
        "",
        "plain",
        "${env:X}",
        "$${",
        "$$${",
        "a$",
        "$",
        "}${",
        "x${y}z$${",
    ] {
        let template = literal_template(text);
        assert!(template.is_literal(), "{text}");
        let escaped = text.replace("${", "$${");
        assert_eq!(template, tpl(&escaped), "{text}");
    }
}

#[test]
fn timeout_for_token_kinds_and_presets() {
    let (config, warnings) = parse_ok(
        r#"
[providers.oauth]
kind = "oauth2"
grant = "client_credentials"
token_url = "https://auth.example.com/token"
client_id = "svc"
client_secret = "${env:S}"
timeout = "5s"

[providers.exchange]
kind = "http"
url = "https://api.example.com/token"
token = "/token"
timeout = "2m"

[providers.tk]
preset = "timekit"
app = "a"
email = "${env:E}"
api_key = "${env:K}"
timeout = "30"

[providers.crm]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${env:K}"
authentication_code = "${env:C}"
timeout = "120s"

[providers.default]
kind = "http"
url = "https://api.example.com/token"
token = "/token"
"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let ProviderKind::OAuth2(oauth) = &config.providers["oauth"].kind else {
        panic!("{config:?}");
    };
    assert_eq!(oauth.timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        http(&config, "exchange").timeout,
        Some(Duration::from_secs(120))
    );
    assert_eq!(http(&config, "tk").timeout, Some(Duration::from_secs(30)));
    // The rest of a preset's expansion is unchanged by a timeout.
    let crm = http(&config, "crm");
    assert_eq!(crm.timeout, Some(MAX_TIMEOUT));
    assert_eq!(crm.ttl, Some(CRM_TTL));
    assert_eq!(http(&config, "default").timeout, None);
}

#[test]
fn timeout_errors_name_file_line_and_key() {
    // `timeout` is always on line 7.
    let oauth2 = |value: &str| {
        format!(
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
             token_url = \"https://a.example/token\"\nclient_id = \"svc\"\n\
             client_secret = \"${{env:S}}\"\ntimeout = {value}\n"
        )
    };
    let http = |value: &str| {
        format!(
            "[providers.a]\nkind = \"http\"\nurl = \"https://a.example/t\"\n\
             token = \"/t\"\n\n\ntimeout = {value}\n"
        )
    };
    let timekit = |value: &str| {
        format!(
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
             api_key = \"${{env:K}}\"\n\ntimeout = {value}\n"
        )
    };
    let crm = |value: &str| {
        format!(
            "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example/\"\n\
             api_key = \"${{env:K}}\"\nauthentication_code = \"${{env:C}}\"\n\n\
             timeout = {value}\n"
        )
    };
    let key = Some("[providers.a] key `timeout`");
    let mut cases: Vec<(&str, String, usize, Option<&str>, &str)> = Vec::new();
    for (kind, config) in [
        ("oauth2", &oauth2 as &dyn Fn(&str) -> String),
        ("http", &http),
        ("timekit", &timekit),
        ("crm.com", &crm),
    ] {
        cases.extend([
            (
                kind,
                config("\"0s\""),
                7,
                key,
                "zero lets no request finish",
            ),
            (kind, config("\"0\""), 7, key, "use at least 1s"),
            (
                kind,
                config("\"3m\""),
                7,
                key,
                "`timeout` is 180s: at most 120s",
            ),
            (kind, config("\"121s\""), 7, key, "at most 120s"),
            (kind, config("\"soon\""), 7, key, "not a duration"),
            (kind, config("\"5w\""), 7, key, "unknown unit"),
            (
                kind,
                config("5"),
                7,
                key,
                "expected a string, found an integer",
            ),
            (
                kind,
                config("\"5s\"\ntimeout2 = \"1s\""),
                8,
                None,
                "timeout2",
            ),
        ]);
    }
    // The hint gives the accepted range.
    cases.push(("zero hint", http("\"0s\""), 7, key, "from 1s to 120s"));
    cases.push(("long hint", crm("\"1h\""), 7, key, "from 1s to 120s"));
    // Not for kinds and presets that make no request.
    cases.extend([
        (
            "static",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:S}\"\ntimeout = \"5s\"\n"
                .to_owned(),
            4,
            key,
            "unknown key for kind \"static\"",
        ),
        (
            "anonymous",
            "[providers.a]\nkind = \"anonymous\"\ntimeout = \"5s\"\n".to_owned(),
            3,
            key,
            "unknown key for kind \"anonymous\"",
        ),
        (
            "salestim",
            "[providers.a]\npreset = \"salestim\"\napi_key = \"${env:K}\"\ntimeout = \"5s\"\n"
                .to_owned(),
            4,
            key,
            "unknown key for preset \"salestim\"",
        ),
    ]);
    check_errors(&cases);
}

#[test]
fn kind_and_preset_errors_name_file_line_and_key() {
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "kind and preset",
            "[providers.a]\nkind = \"static\"\npreset = \"salestim\"\n".to_owned(),
            3,
            Some("[providers.a] key `preset`"),
            "both `kind` and `preset` are set",
        ),
        (
            "preset and kind",
            "[providers.a]\npreset = \"salestim\"\nkind = \"static\"\n".to_owned(),
            3,
            Some("[providers.a] key `kind`"),
            "both `kind` and `preset` are set",
        ),
        (
            "unknown preset",
            "[providers.a]\n\npreset = \"timekit2\"\n".to_owned(),
            3,
            Some("[providers.a] key `preset`"),
            "use one of: timekit, crm.com, salestim",
        ),
        (
            "preset not a string",
            "[providers.a]\npreset = [\"timekit\"]\n".to_owned(),
            2,
            Some("[providers.a] key `preset`"),
            "expected a string, found an array",
        ),
        (
            "missing kind mentions presets",
            "[providers.a]\napi_key = \"${env:K}\"\n".to_owned(),
            1,
            Some("[providers.a] key `kind`"),
            "known presets: timekit, crm.com, salestim",
        ),
        (
            "unknown kind lists new kinds",
            "[providers.a]\nkind = \"oauth\"\n".to_owned(),
            2,
            Some("[providers.a] key `kind`"),
            "use one of: static, anonymous, oauth2, http",
        ),
    ];
    check_errors(cases);
}
