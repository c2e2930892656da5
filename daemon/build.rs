//! Links the `tokend` binary with the code it runs laid out together, where the linker can.
//!
//! `link/tokend.order` lists the functions tokend runs to start and to answer a cache hit
//! (mangled names, written by `link/regenerate` from a callgrind run of the release build). LLD
//! places them side by side, so the code an idle daemon has touched sits in about 1 MiB of pages
//! instead of being spread over 8 MiB of text (the kernel maps code 64 KiB around each fault):
//! idle RSS falls from about 6.5 to 3.8 MiB. Only LLD takes `--symbol-ordering-file`, so the flag
//! is passed when building for x86_64-unknown-linux-gnu with rustc 1.90 or newer (whose default
//! linker there is its own LLD) and no other linker configured; elsewhere tokend links as before.
//! Names the binary no longer has are skipped: a stale list costs memory, never a build. The
//! names' hashes depend on the features cargo unified, so the list fits tokend built on its own
//! (`cargo build --release -p tokend`, `cargo install`), not beside other packages;
//! tokend-bench's `d. code ordering` row counts the names found.
//!
//! With the same linker, when the C library tokend is built against is glibc 2.36 or newer
//! (the first to read them), relative relocations are packed (`-z pack-relative-relocs`,
//! DT_RELR): a position-independent tokend carries 290 KiB of `.rela.dyn` entries that the loader
//! reads at every start, and RELR says the same in 3.5 KiB, which takes about 0.4 MiB off the
//! idle RSS. Such a tokend needs glibc 2.36 where it runs (the loader refuses it otherwise), as
//! the Debian package's dependency says; built against an older glibc, it is linked as before.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/tokend.order");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if !links_with_rust_lld() {
        return;
    }
    let dir = env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = Path::new(&dir).join("link").join("tokend.order");
    println!(
        "cargo:rustc-link-arg-bin=tokend=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bin=tokend=-Wl,--no-warn-symbol-ordering");
    if builds_for_glibc_with_relr() {
        println!("cargo:rustc-link-arg-bin=tokend=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this build's glibc reads packed relative relocations (2.36 or newer): the build
/// machine's, as `getconf GNU_LIBC_VERSION` prints it (`glibc 2.36`), when building for it.
fn builds_for_glibc_with_relr() -> bool {
    if env::var("HOST") != env::var("TARGET") {
        return false;
    }
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .strip_prefix("glibc ")
        .and_then(|version| {
            let mut parts = version.split('.');
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next()?.parse().ok()?;
            Some((major, minor) >= (2, 36))
        })
        .unwrap_or(false)
}

/// Whether rustc links this build with its own LLD: x86_64 Linux with glibc, rustc 1.90 or
/// newer, and neither a configured linker nor linker flags of one's own.
fn links_with_rust_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("RUSTC_LINKER").is_some()
    {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.split('\x1f').any(|flag| {
        flag.contains("linker") || flag.contains("link-self-contained") || flag.contains("fuse-ld")
    }) {
        return false;
    }
    rustc_minor_version().is_some_and(|minor| minor >= 90)
}

/// The minor version of the rustc cargo runs (`rustc 1.95.0 (…)` gives 95).
fn rustc_minor_version() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let output = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut parts = text.split_whitespace().nth(1)?.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}
