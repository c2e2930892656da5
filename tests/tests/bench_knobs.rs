//! `tokend-bench`'s knobs are written three times: in the code that reads them
//! (`Knobs::from_env`, `knob("BENCH_…", default, quick)`), in the bench's module doc and in the
//! README's benchmark section. This keeps the two lists in prose at one with the code: every
//! knob named with its default, and no knob the code does not read.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// `(name, default)` of every `knob("NAME", default, quick)` call in `source`.
fn knobs_read_by(source: &str) -> Vec<(String, u64)> {
    source
        .split("knob(\"")
        .skip(1)
        .map(|call| {
            let (name, rest) = call.split_once('"').expect("a knob's name ends");
            let default = rest
                .trim_start_matches(',')
                .split(',')
                .next()
                .expect("a knob's default")
                .trim()
                .replace('_', "");
            let default = default
                .parse()
                .unwrap_or_else(|_| panic!("{name}'s default {default:?} is not a number"));
            (name.to_owned(), default)
        })
        .collect()
}

/// The default a prose list gives `name`: the number in the parentheses after `` `name` ``
/// (digits grouped by spaces, as the README writes 20 000).
fn default_in(prose: &str, name: &str) -> Option<u64> {
    let after = prose.split_once(&format!("`{name}`"))?.1;
    let inside = after.split_once('(')?.1;
    let digits: String = inside
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ' ')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Every `` `BENCH_…` `` a prose list names.
fn named_in(prose: &str) -> Vec<&str> {
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.starts_with("BENCH_"))
        .collect()
}

#[test]
fn the_benchmark_knobs_in_the_readme_and_the_bench_doc_are_the_ones_it_reads() {
    let main = read("tests/src/bin/tokend-bench/main.rs");
    let knobs = knobs_read_by(&main);
    assert!(knobs.len() >= 10, "found only {knobs:?} in main.rs");

    let readme = read("README.md");
    let readme_list = readme
        .split_once("Knobs (environment variables): ")
        .expect("the README's benchmark section lists its knobs")
        .1
        .split_once(".\n")
        .expect("the knob list ends with a full stop")
        .0;
    let doc: String = main
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let doc_list = doc
        .split_once("Knobs (environment): ")
        .expect("tokend-bench's module doc lists its knobs")
        .1
        .split_once("\n\n")
        .map_or(doc.as_str(), |(list, _)| list)
        .to_owned();

    for (where_, prose) in [
        ("README.md", readme_list),
        ("tokend-bench's doc", &doc_list),
    ] {
        for (name, default) in &knobs {
            assert_eq!(
                default_in(prose, name),
                Some(*default),
                "{where_} does not give `{name}` with its default {default}"
            );
        }
        for name in named_in(prose) {
            assert!(
                knobs.iter().any(|(known, _)| known == name),
                "{where_} lists `{name}`, which tokend-bench does not read"
            );
        }
    }
}
