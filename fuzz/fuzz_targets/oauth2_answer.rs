//! An OAuth 2.0 token endpoint's answer: two bytes of status, then the body (a token response
//! or an error response).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    tokend::fuzzing::oauth2_answer(100 + u16::from_be_bytes(*status) % 500, body);
});
