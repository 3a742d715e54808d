#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_tests::fuzz_checks::listing(data));
