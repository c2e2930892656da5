//! A Rust hello world: the whole-process floor for any Rust shell helper. `tokend-bench` times
//! `tok get NAME` against this binary (same toolchain, same release profile), built both the
//! default way (dynamically linked against glibc, the floor the targets are set against) and
//! statically for x86_64-unknown-linux-musl like the packaged `tok`.

// Printing to stdout is this program's whole job.
#![allow(clippy::print_stdout)]

fn main() {
    println!("hello");
}
