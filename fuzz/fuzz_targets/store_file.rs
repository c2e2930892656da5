//! The store file reader. The first byte chooses: even, the rest is the whole file (header and
//! AEAD envelope); odd, the rest is sealed with the fixed key first, to reach the contents.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((choice, rest)) = data.split_first() {
        tokend::fuzzing::store_file(rest, choice % 2 == 1);
    }
});
