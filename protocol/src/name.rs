//! The name rule: provider names (`[providers.NAME]`, `tok get NAME`) and user-secret names
//! (`${secret:NAME}`, `tok secret set NAME`) are typed on command lines and appear in messages,
//! so they are short words of `A-Z a-z 0-9 . _ -`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
