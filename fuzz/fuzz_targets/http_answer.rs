//! An `http`-kind token endpoint's answer (generic pointers, JWT expiry, CRM.COM's status
//! object, Timekit): two bytes of status, a `Retry-After` value up to the first newline, then
//! the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((status, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 100 + u16::from_be_bytes(*status) % 500;
    let (retry_after, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&[][..], rest),
    };
    tokend::fuzzing::http_answer(status, &String::from_utf8_lossy(retry_after), body);
});
