//! A token's JWT `exp` claim, and the number-of-seconds forms (`expires_in`, `exp`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tokend::fuzzing::expiry(text);
    }
});
