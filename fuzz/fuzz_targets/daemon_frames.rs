//! What the daemon reads from a connection: the handshake frame (at most MAX_HANDSHAKE_LEN
//! bytes) and its hello, then request frames (at most MAX_FRAME_LEN) read as a GetToken in
//! place and decoded as requests,
//! through the same async framing the daemon's connection task uses.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokend_protocol::frame::nonblocking::{read_frame, read_frame_into};
use tokend_protocol::handshake::Hello;
use tokend_protocol::{MAX_FRAME_LEN, MAX_HANDSHAKE_LEN, Request, SecretBuf, codec};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let mut stream = data;
        let Ok(Some(hello)) = read_frame(&mut stream, MAX_HANDSHAKE_LEN).await else {
            return;
        };
        if Hello::decode(&hello).is_err() {
            return;
        }
        let mut payload = SecretBuf::default();
        // Each frame consumes at least its 4-byte header, so this ends with the input.
        while let Ok(true) = read_frame_into(&mut stream, MAX_FRAME_LEN, &mut payload).await {
            // The daemon's allocation-free read of a GetToken comes first.
            let _ = codec::decode_get_token(&payload);
            if let Ok(request) = codec::decode::<Request>(&payload) {
                // What decodes must encode again (the daemon's replies echo parts of it).
                let _ = codec::encode(&request);
            }
        }
    });
});
