//! A Rust hello world: the whole-process floor for any Rust shell helper. `tokend-bench` times
//! `tok get NAME` against this binary (same toolchain, same release profile).

// Printing to stdout is this program's whole job.
#![allow(clippy::print_stdout)]

fn main() {
    println!("hello");
}
