//! The auth proxy's request heads: the bytes one local client sends to a loopback TCP proxy,
//! parsed by hyper's HTTP/1.1 server and checked by the proxy (method, request-target form,
//! `Host`, capability path, the upstream path built from it), pipelined requests included.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(tokend::fuzzing::proxy_request(data));
});
