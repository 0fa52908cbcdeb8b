#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gw_fuzz::callback_body(data));
