//! A git or Docker credential-helper request, read and routed as `get` does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tokend_client::credential::fuzz_request(data);
});
