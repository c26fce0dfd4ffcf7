#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faros_machinery::fuzzing::json_patch(data));
