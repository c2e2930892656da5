//! The config loader: TOML text to a validated config, every kind and preset included.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tokend::fuzzing::config(text);
    }
});
