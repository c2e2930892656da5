//! The name rule: provider names (`[providers.NAME]`, `tok get NAME`) and user-secret names
//! (`${secret:NAME}`, `tok secret set NAME`) are typed on command lines and appear in messages,
//! so they are short words of `A-Z a-z 0-9 . _ -`; and the environment variable a provider's
//! token goes in ([`token_var`]).

/// What the rule allows, as error messages say it.
pub const NAME_RULE: &str = "use only letters, digits, `.`, `_` and `-`";

/// Whether `name` is a valid provider or secret name: not empty, only `A-Z a-z 0-9 . _ -`.
#[must_use]
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// The environment variable a provider's token goes in by default (`tok env`, `tok exec`, the
/// `env` format of token files): the name upper-cased, every character other than `A-Z 0-9`
/// replaced by `_`, a `_` in front of a leading digit, and `_TOKEN` appended (`crm.com` →
/// `CRM_COM_TOKEN`).
#[must_use]
pub fn token_var(provider: &str) -> String {
    let mut var: String = provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if var.starts_with(|c: char| c.is_ascii_digit()) {
        var.insert(0, '_');
    }
    var.push_str("_TOKEN");
    var
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_vars_are_upper_snake_with_a_token_suffix() {
        assert_eq!(token_var("crm.com"), "CRM_COM_TOKEN");
        assert_eq!(token_var("gitlab"), "GITLAB_TOKEN");
        assert_eq!(token_var("1password-cli"), "_1PASSWORD_CLI_TOKEN");
    }

    #[test]
    fn names() {
        for good in ["crm", "d.e_f-1", "A"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "a b", "a/b", "ü", "a=b", "${x}"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
