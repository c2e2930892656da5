//! Row d's code-ordering check: how many of the functions `daemon/link/tokend.order` lists the
//! measured tokend has.
//!
//! The list names functions by their mangled names (daemon/build.rs hands it to the linker).
//! Those names carry hashes that change with the rustc, the dependency versions, the features
//! the build unified (tokend built beside tokend-client gets other hashes than tokend built on
//! its own) and the profile's LTO setting; CI's quick smoke run uses the debug build. The linker
//! skips names it does not find, so a stale list costs no error, only idle memory: about 6.5 MiB
//! instead of under 4. This counts the names found, so every run shows whether the list still
//! fits, and a list written by the same rustc that is mostly missing fails a full run: it was
//! written for another build, or the code moved on without `daemon/link/regenerate`.

use std::path::Path;
use std::process::Command;

/// The list, next to the daemon's sources (the bench runs from the build tree).
const ORDER_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../daemon/link/tokend.order");
/// Below this share of names found, a list written by the same rustc is stale.
pub(crate) const FRESH_SHARE: f64 = 0.9;

/// What the check found.
#[derive(Debug)]
pub(crate) struct Coverage {
    /// Function names in the list.
    pub(crate) listed: usize,
    /// Of those, the names the binary defines.
    pub(crate) found: usize,
    /// The rustc the list's header names (`1.95.0 (59807616e 2026-04-14)`).
    pub(crate) list_rustc: Option<String>,
    /// The rustc that built the binary (from its `.comment` section).
    pub(crate) binary_rustc: Option<String>,
}

impl Coverage {
    /// The share of listed names the binary has (0 for an empty list).
    pub(crate) fn share(&self) -> f64 {
        if self.listed == 0 {
            0.0
        } else {
            self.found as f64 / self.listed as f64
        }
    }

    /// Whether both come from the same rustc, so that their names can be compared at all.
    pub(crate) fn same_rustc(&self) -> bool {
        self.list_rustc.is_some() && self.list_rustc == self.binary_rustc
    }

    /// Stale: written by this rustc, yet most names are not in the binary.
    pub(crate) fn stale(&self) -> bool {
        self.same_rustc() && self.share() < FRESH_SHARE
    }

    /// What to do about a list that does not fit this binary (`None` when it fits).
    pub(crate) fn advice(&self) -> Option<String> {
        let unknown = || "unknown".to_owned();
        if self.stale() {
            Some(format!(
                "daemon/link/tokend.order is stale: {} of its {} functions are in this tokend \
                 (built by the same rustc). Build tokend on its own with the release profile \
                 (`cargo build --release -p tokend`, not beside other packages), or run \
                 daemon/link/regenerate after a dependency update or a rename, and commit the \
                 new list.",
                self.found, self.listed
            ))
        } else if !self.same_rustc() {
            Some(format!(
                "daemon/link/tokend.order was written for rustc {}, this tokend was built by \
                 rustc {}: run daemon/link/regenerate to lay out the code for this toolchain.",
                self.list_rustc.clone().unwrap_or_else(unknown),
                self.binary_rustc.clone().unwrap_or_else(unknown)
            ))
        } else {
            None
        }
    }
}

/// Counts the list's names in `tokend` (its symbol table, by `nm`).
pub(crate) fn check(tokend: &Path) -> Result<Coverage, String> {
    let list = std::fs::read_to_string(ORDER_FILE)
        .map_err(|err| format!("cannot read {ORDER_FILE}: {err}"))?;
    let list_rustc = list
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .find_map(|comment| comment.trim().strip_prefix("rustc "))
        .map(|version| version.trim().to_owned());
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();

    let output = Command::new("nm")
        .arg("--defined-only")
        .arg(tokend)
        .output()
        .map_err(|err| format!("cannot run nm (binutils) on {}: {err}", tokend.display()))?;
    if !output.status.success() {
        return Err(format!(
            "nm {} failed ({}): {}",
            tokend.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let symbols = String::from_utf8_lossy(&output.stdout);
    let defined: std::collections::HashSet<&str> = symbols
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    let found = names.iter().filter(|name| defined.contains(*name)).count();

    let binary =
        std::fs::read(tokend).map_err(|err| format!("cannot read {}: {err}", tokend.display()))?;
    Ok(Coverage {
        listed: names.len(),
        found,
        list_rustc,
        binary_rustc: rustc_of(&binary),
    })
}

/// The rustc version in a binary's `.comment` section: `rustc version 1.95.0 (…)` up to its NUL.
fn rustc_of(binary: &[u8]) -> Option<String> {
    const MARK: &[u8] = b"rustc version ";
    let start = binary
        .windows(MARK.len())
        .position(|window| window == MARK)?
        + MARK.len();
    let len = binary[start..].iter().position(|&byte| byte == 0)?;
    let version = std::str::from_utf8(&binary[start..start + len]).ok()?;
    Some(version.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rustc_of_a_comment_section_is_read_up_to_its_nul() {
        let binary = b"\x7fELF...\0GCC: (Debian)\0rustc version 1.95.0 (59807616e 2026-04-14)\0x";
        assert_eq!(
            rustc_of(binary).as_deref(),
            Some("1.95.0 (59807616e 2026-04-14)")
        );
        assert_eq!(rustc_of(b"no comment here"), None);
    }

    #[test]
    fn a_list_mostly_missing_is_stale_only_when_written_by_the_same_rustc() {
        let mut coverage = Coverage {
            listed: 100,
            found: 50,
            list_rustc: Some("1.95.0 (a)".to_owned()),
            binary_rustc: Some("1.95.0 (a)".to_owned()),
        };
        assert!(coverage.stale());
        assert!(
            coverage
                .advice()
                .is_some_and(|text| text.contains("50 of its 100"))
        );
        coverage.found = 95;
        assert!(!coverage.stale());
        assert_eq!(coverage.advice(), None);
        coverage.found = 10;
        coverage.binary_rustc = Some("1.96.0 (b)".to_owned());
        assert!(!coverage.stale());
        assert!(
            coverage
                .advice()
                .is_some_and(|text| text.contains("1.96.0 (b)"))
        );
    }
}
