//! Every frame and handshake decoder of the process pool's wire protocol,
//! fed arbitrary bytes. Run with `cargo +nightly fuzz run wire`; `.ci/run`
//! runs it for a bounded time.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| concurrent_futures::fuzz_wire(bytes));
