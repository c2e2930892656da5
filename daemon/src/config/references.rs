//! The references between providers: `${provider:NAME}` in a template and the `auth` of a
//! `rotate` table each name a provider whose token the referring one needs at fetch time. Each
//! must name another configured provider that has a token, and they may not form a cycle (a
//! provider's fetch would wait for itself).

use std::collections::BTreeMap;
use std::ops::Range;

use super::reader::Ctx;
use super::{ConfigError, ProviderConfig};
use crate::kinds::ProviderKind;

/// Checks every provider's references; `spans` locates each provider's table name.
pub(crate) fn check(
    ctx: &Ctx<'_>,
    providers: &BTreeMap<String, ProviderConfig>,
    spans: &BTreeMap<String, Range<usize>>,
) -> Result<(), ConfigError> {
    let at = |name: &str| spans.get(name).cloned().unwrap_or_default();
    for (name, provider) in providers {
        for target in provider.kind.provider_refs() {
            let problem = if target == name {
                Some(format!(
                    "provider `{name}` refers to its own token (`${{provider:{name}}}` or \
                     rotate.auth)"
                ))
            } else {
                match providers.get(target) {
                    None => Some(format!(
                        "provider `{name}` refers to provider `{target}`, which is not configured"
                    )),
                    Some(other) if other.kind == ProviderKind::Anonymous => Some(format!(
                        "provider `{name}` refers to provider `{target}`, which is anonymous and \
                         has no token"
                    )),
                    Some(_) => None,
                }
            };
            if let Some(problem) = problem {
                return Err(ctx.invalid(
                    &at(name),
                    Some(name),
                    None,
                    problem,
                    format!(
                        "name a configured provider that has a token, e.g. add \
                         [providers.{target}], or fix the name"
                    ),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(providers) {
        let first = &cycle[0];
        return Err(ctx.invalid(
            &at(first),
            Some(first),
            None,
            format!(
                "the providers' references form a cycle: {}",
                cycle.join(" → ")
            ),
            "each provider's token request would wait for its own; break the cycle (a \
             ${provider:…} or rotate.auth must not lead back)",
        ));
    }
    Ok(())
}

/// A cycle of references, as the names along it with the first repeated at the end.
fn find_cycle(providers: &BTreeMap<String, ProviderConfig>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in providers.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Depth-first, iteratively: the path and, per node on it, the references left to visit.
        let mut path: Vec<(&str, Vec<&str>)> = Vec::new();
        marks.insert(start, Mark::Open);
        path.push((start, refs(providers, start)));
        while let Some((node, pending)) = path.last_mut() {
            let node = *node;
            let Some(next) = pending.pop() else {
                marks.insert(node, Mark::Done);
                path.pop();
                continue;
            };
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                    cycle.push(next.to_owned());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    marks.insert(next, Mark::Open);
                    path.push((next, refs(providers, next)));
                }
            }
        }
    }
    None
}

/// The configured providers `name` refers to (unknown names were refused before).
fn refs<'a>(providers: &'a BTreeMap<String, ProviderConfig>, name: &str) -> Vec<&'a str> {
    providers.get(name).map_or_else(Vec::new, |provider| {
        provider
            .kind
            .provider_refs()
            .into_iter()
            .filter_map(|target| providers.get_key_value(target).map(|(k, _)| k.as_str()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    fn exchange(name: &str, subject: &str) -> String {
        format!(
            "[providers.{name}]\nkind = \"oauth2\"\ngrant = \"token_exchange\"\n\
             token_url = \"https://t/\"\nclient_id = \"c\"\nsubject_token = \"{subject}\"\n"
        )
    }

    #[test]
    fn references_name_providers_with_tokens_and_form_no_cycle() {
        let (config, _) = parse_ok(&format!(
            "{}{}[providers.ci]\nkind = \"static\"\nsecret = \"${{env:CI}}\"\n",
            exchange("a", "${provider:b}"),
            exchange("b", "x-${provider:ci}")
        ));
        assert_eq!(config.providers["a"].kind.provider_refs(), ["b"]);
        let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
            (
                "unknown",
                exchange("a", "${provider:nobody}"),
                1,
                Some("[providers.a]"),
                "provider `nobody`, which is not configured",
            ),
            (
                "itself",
                exchange("a", "${provider:a}"),
                1,
                Some("[providers.a]"),
                "refers to its own token",
            ),
            (
                "anonymous",
                format!(
                    "{}[providers.s]\nkind = \"anonymous\"\n",
                    exchange("a", "${provider:s}")
                ),
                1,
                Some("[providers.a]"),
                "anonymous and has no token",
            ),
            (
                "a cycle of three",
                format!(
                    "{}{}{}",
                    exchange("a", "${provider:b}"),
                    exchange("b", "${provider:c}"),
                    exchange("c", "${provider:a}")
                ),
                1,
                Some("[providers.a]"),
                "cycle: a → b → c → a",
            ),
            (
                "in [fleet]",
                "[fleet]\nurl = \"redis://127.0.0.1/0\"\nkey = \"${provider:a}\"\n".to_owned(),
                3,
                Some("fleet.key"),
                "only work in a provider's keys",
            ),
        ];
        check_errors(cases);
    }
}
