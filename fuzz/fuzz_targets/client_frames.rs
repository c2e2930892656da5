//! What the client reads from the daemon: the welcome frame, then responses that may span
//! several frames (up to MAX_MESSAGE_LEN), through the blocking framing the client uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokend_protocol::frame::{MAX_MESSAGE_LEN, read_frame, read_message_into};
use tokend_protocol::handshake::Welcome;
use tokend_protocol::{MAX_HANDSHAKE_LEN, Response, SecretBuf, codec};

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    let Ok(Some(welcome)) = read_frame(&mut stream, MAX_HANDSHAKE_LEN) else {
        return;
    };
    if Welcome::decode(&welcome).is_err() {
        return;
    }
    let mut answer = SecretBuf::default();
    while let Ok(true) = read_message_into(&mut stream, MAX_MESSAGE_LEN, &mut answer) {
        let _ = codec::decode_message::<Response>(&answer);
    }
});
