//! The README's "Layout" section draws the source tree: every module file and folder of the
//! three crates must appear in it, so the drawing cannot silently fall behind the tree.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The code block under `## Layout`.
fn layout() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split_once("\n## Layout\n")
        .expect("the README has a Layout section")
        .1;
    let block = section
        .split_once("```\n")
        .expect("the Layout section draws the tree in a code block")
        .1;
    block
        .split_once("```")
        .expect("the code block ends")
        .0
        .to_owned()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source tree") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.push(path.clone());
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn mentions_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '_');
        edge(before) && edge(after)
    })
}

#[test]
fn the_readme_layout_names_every_module() {
    let layout = layout();
    let mut missing = Vec::new();
    for krate in ["protocol/src", "client/src", "daemon/src"] {
        let base = root().join(krate);
        let mut paths = Vec::new();
        walk(&base, &mut paths);
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let relative = path.strip_prefix(&base).unwrap().display().to_string();
            if ["mod.rs", "lib.rs", "tests.rs", "test_support.rs"].contains(&name.as_str())
                || relative.starts_with("bin")
            {
                continue;
            }
            let shown = if path.is_dir() {
                layout.contains(&format!("{name}/"))
            } else {
                let stem = name.trim_end_matches(".rs");
                layout.contains(&name) || mentions_word(&layout, stem)
            };
            if !shown {
                missing.push(format!("{krate}/{relative}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the README's Layout section does not show {missing:?}: add a line for each (what it \
         owns, in a few words)"
    );
}

/// The workspace denies `unsafe` code; three modules alone may allow it, each wrapping calls
/// nothing else wraps behind safe functions: the Win32 calls (`protocol/src/win32.rs`),
/// glibc's `malloc_trim` (`daemon/src/heap.rs`) and the registration of a client socket with
/// tokio's reactor for read readiness only (`daemon/src/server/socket.rs`). Another
/// `allow(unsafe_code)` anywhere fails here, so it cannot slip in.
#[test]
fn unsafe_code_is_allowed_only_in_the_win32_heap_and_socket_modules() {
    let mut offenders = Vec::new();
    for krate in ["protocol", "client", "daemon", "tests", "fuzz"] {
        let mut paths = Vec::new();
        walk(&root().join(krate), &mut paths);
        for path in paths.iter().filter(|path| path.is_file()) {
            let relative = path.strip_prefix(root()).unwrap().display().to_string();
            if relative.contains("/target/") || relative.ends_with("tests/layout.rs") {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains("allow(unsafe_code)") && !UNSAFE_MODULES.contains(&relative.as_str()) {
                offenders.push(relative);
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe code is allowed outside {UNSAFE_MODULES:?} in {offenders:?}: put the call \
         behind a safe function in one of them"
    );
    for module in UNSAFE_MODULES {
        let text = std::fs::read_to_string(root().join(module)).unwrap();
        assert!(text.contains("#![allow(unsafe_code)]"), "{module}");
        // Every unsafe block says why it is sound.
        assert_eq!(
            text.matches("unsafe {").count(),
            text.matches("// SAFETY:").count(),
            "{module}: an unsafe block without its SAFETY comment"
        );
    }
}

/// The modules that may use `unsafe` (see the test above).
const UNSAFE_MODULES: [&str; 3] = [
    "protocol/src/win32.rs",
    "daemon/src/heap.rs",
    "daemon/src/server/socket.rs",
];
