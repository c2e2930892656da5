//! The keys of the config file, declared once with their documentation.
//!
//! Every kind and preset lists the keys it accepts as a [`Keys`] value (groups of [`Key`]s); the
//! same list gives the "known keys" hint of an unknown-key error ([`unknown_key_hint`]) and the
//! key tables of the README ([`readme_table`]; a test fails when the README's tables differ
//! from what the lists say). The groups shared by several kinds (presentation, credential-helper
//! routes, and the [`TIMEOUT`] and [`PERSIST`] keys) are declared here; the auth proxy and
//! token file keys in [`super::outlets`].

/// One key of a table, as the README documents it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// The key as written in the file.
    pub(crate) name: &'static str,
    /// When it must be given (`yes`, `no`, `no (default)`, or the condition).
    pub(crate) required: &'static str,
    /// What it means (Markdown, one line).
    pub(crate) meaning: &'static str,
}

impl Key {
    /// A key and its documentation.
    pub(crate) const fn new(
        name: &'static str,
        required: &'static str,
        meaning: &'static str,
    ) -> Self {
        Self {
            name,
            required,
            meaning,
        }
    }
}

/// The keys a table accepts, in groups, in the order hints and the README list them.
pub(crate) type Keys = &'static [&'static [Key]];

/// How the token is presented: every kind but `anonymous`, and every preset.
pub(crate) const PRESENTATION: &[Key] = &[
    Key::new(
        "header",
        "no (`Authorization`)",
        "The header the token is sent in.",
    ),
    Key::new(
        "scheme",
        "no (`bearer` for `Authorization`, `raw` for any other header)",
        "`bearer` → `Bearer <token>`; `basic` → `Basic base64(basic_user \":\" token)`; `raw` → \
         the token as is.",
    ),
    Key::new(
        "basic_user",
        "no (`\"\"`)",
        "The user half of `scheme = \"basic\"` only.",
    ),
];

/// The credential-helper routes: every kind but `anonymous`, and every preset.
pub(crate) const ROUTES: &[Key] = &[
    Key::new(
        "git",
        "no",
        "`{ host = \"git.example.com\", path = \"org\", username = \"oauth2\" }`: `tok \
         git-credential` answers git for that host (with `:port` when not the default), and \
         path prefix if given, with `username` and the token as the password.",
    ),
    Key::new(
        "docker",
        "no",
        "`{ host = \"registry.example.com\", username = \"oauth2\" }`: the same for \
         `docker-credential-tok` and a registry host.",
    ),
];

/// `timeout`, for every kind and preset that sends a token request.
pub(crate) const TIMEOUT: Key = Key::new(
    "timeout",
    "no (10 s)",
    "The whole token request must finish within this time (`1s` to `120s`).",
);

/// `persist`, for the kinds and presets whose access tokens the store can keep.
pub(crate) const PERSIST: Key = Key::new(
    "persist",
    "no (`true`)",
    "`false` keeps this provider's access tokens out of the store; rotated refresh tokens are \
     always kept.",
);

/// The names of `keys`, after `leading` (the `kind` or `preset` key).
pub(crate) fn names(leading: Option<&'static str>, keys: Keys) -> Vec<&'static str> {
    leading
        .into_iter()
        .chain(
            keys.iter()
                .flat_map(|group| group.iter().map(|key| key.name)),
        )
        .collect()
}

/// The hint of an unknown key: what the table accepts.
pub(crate) fn unknown_key_hint(leading: Option<&'static str>, keys: Keys) -> String {
    format!(
        "remove it or fix its spelling; known keys: {}",
        names(leading, keys).join(", ")
    )
}

/// The Markdown table of `keys`: one row per key. With `shared`, the presentation and route
/// groups are not repeated (the reference documents them once): a closing line names them.
fn readme_table(keys: Keys, shared_once: bool) -> String {
    let mut table = String::from("| key | required | meaning |\n| --- | --- | --- |\n");
    let mut shared = Vec::new();
    let is = |group: &[Key], shared: &[Key]| {
        group
            .iter()
            .map(|key| key.name)
            .eq(shared.iter().map(|key| key.name))
    };
    for group in keys {
        if shared_once && is(group, PRESENTATION) {
            shared.push("the [presentation keys](#presentation)");
            continue;
        }
        if shared_once && is(group, ROUTES) {
            shared.push("the [credential-helper routes](#credential-helper-routes)");
            continue;
        }
        if shared_once && is(group, super::outlets::OUTLETS) {
            shared.push("the [`proxy` and `file` keys](#auth-proxy-and-token-file)");
            continue;
        }
        for key in *group {
            table.push_str(&format!(
                "| `{}` | {} | {} |\n",
                key.name, key.required, key.meaning
            ));
        }
    }
    if !shared.is_empty() {
        let listed = match shared.split_last() {
            Some((last, rest)) if rest.len() > 1 => format!("{}, and {last}", rest.join(", ")),
            _ => shared.join(" and "),
        };
        table.push_str(&format!("\nAlso: {listed}.\n"));
    }
    table
}

/// The key reference: every table of the config file with its keys, as Markdown. `tokend
/// --config-keys` prints it; the README's "Keys" section is a copy (checked by a test).
#[must_use]
pub fn reference() -> String {
    let mut out = String::new();
    let mut section = |heading: &str, about: &str, keys: Keys, shared: bool| {
        out.push_str(&format!("#### {heading}\n\n"));
        if !about.is_empty() {
            out.push_str(about);
            out.push_str("\n\n");
        }
        if keys.iter().all(|group| group.is_empty()) {
            out.push_str("No other keys.\n\n");
        } else {
            out.push_str(&readme_table(keys, shared));
            out.push('\n');
        }
    };
    section(
        "Presentation",
        "Every kind except `anonymous`, and every preset. Presets set their own defaults; each \
         of the three keys can still be set on its own.",
        &[PRESENTATION],
        false,
    );
    section(
        "Credential-helper routes",
        "Every kind except `anonymous`, and every preset: `git` and `docker` tables with these \
         keys. A git host (with a path and user name) belongs to at most one provider, a \
         docker host to one provider; changing a route on reload keeps the cached token.",
        &[super::routes::KEYS],
        false,
    );
    section(
        "Auth proxy and token file",
        "Every kind and preset (`anonymous`: `proxy` only, which then adds no header). Changing \
         either on reload keeps the cached token.",
        &[super::outlets::OUTLETS],
        false,
    );
    for spec in crate::kinds::KINDS.iter().chain(&crate::kinds::PRESETS) {
        section(
            &format!("`{} = \"{}\"`", spec.key, spec.name),
            spec.summary,
            spec.keys,
            true,
        );
    }
    section(
        "`basic = { … }` (kind `http`)",
        "",
        &[crate::kinds::http::keys::BASIC],
        false,
    );
    section(
        "`ok = { … }` (kind `http`)",
        "",
        &[crate::kinds::http::keys::OK],
        false,
    );
    section(
        "`jwt = { … }` (kind `http`)",
        "A JWT signed for every request, which the request's templates use as `${jwt}` (e.g. \
         `headers = { Authorization = \"Bearer ${jwt}\" }`).",
        crate::kinds::http::keys::JWT,
        false,
    );
    section(
        "`rotate = { … }` (kind `static`, preset `salestim`)",
        "How an API replaces the key (see [API-key rotation](#api-key-rotation)).",
        &[crate::kinds::static_secret::rotate::KEYS],
        false,
    );
    section("`proxy = { … }`", "", &[super::outlets::PROXY_KEYS], false);
    section("`file = { … }`", "", &[super::outlets::FILE_KEYS], false);
    section(
        "`[fleet]`",
        "The shared store of the `share`d providers (see [Fleet](#fleet-many-machines-one-token)).",
        &[super::fleet::KEYS],
        false,
    );
    section(
        "`[store]`",
        "Where the key of the encrypted store comes from (see [The store](#the-store-what-survives-a-restart)).",
        &[super::store::KEYS],
        false,
    );
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_list_every_key_in_order() {
        const OWN: &[Key] = &[Key::new("a", "yes", "A.")];
        let keys: Keys = &[OWN, &[TIMEOUT], PRESENTATION];
        assert_eq!(
            unknown_key_hint(Some("kind"), keys),
            "remove it or fix its spelling; known keys: kind, a, timeout, header, scheme, \
             basic_user"
        );
        let table = readme_table(keys, true);
        assert!(table.contains("| `a` | yes | A. |\n"), "{table}");
        assert!(table.contains("| `timeout` |"), "{table}");
        assert!(!table.contains("| `header` |"), "{table}");
        assert!(table.ends_with("Also: the [presentation keys](#presentation).\n"));
    }

    /// The README's "Keys" section is the reference, between its two markers. To update it,
    /// paste the output of `tokend --config-keys` there.
    #[test]
    fn the_readme_shows_the_key_reference() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        let begin = "<!-- BEGIN generated by `tokend --config-keys` -->\n";
        let end = "<!-- END generated -->";
        let start = readme.find(begin).expect("the README has the begin marker") + begin.len();
        let stop = readme[start..]
            .find(end)
            .expect("the README has the end marker")
            + start;
        let shown = readme[start..stop].trim();
        let reference = reference();
        if shown != reference.trim() {
            let first = shown
                .lines()
                .zip(reference.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "the README's key reference differs from `tokend --config-keys` at its line {}:\n\
                 README:    {:?}\nreference: {:?}\nreplace the README's section with the \
                 output of `tokend --config-keys`",
                first + 1,
                shown.lines().nth(first),
                reference.lines().nth(first)
            );
        }
    }
}
