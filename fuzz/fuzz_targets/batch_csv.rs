#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lapse_fuzz::bodies::batch_csv(data));
