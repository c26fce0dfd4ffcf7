#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faros_machinery::fuzzing::strategic_merge(data));
