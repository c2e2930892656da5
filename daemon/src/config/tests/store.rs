//! The `[store]` table: where the store's key comes from.

use std::path::{Path, PathBuf};

use crate::config::test_support::*;
use crate::store::KeySource;

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
