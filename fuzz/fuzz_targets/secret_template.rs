//! The secret-reference template parser (`${env:…}`, `${file:…}`, `${cmd:…}`, `${secret:…}`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tokend::fuzzing::secret_template(text);
    }
});
