//! The config loader: any text in, a config or a list of errors out, never
//! a panic; what loads renders to YAML (secrets redacted) without one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tracehop::config::load(text, Default::default()) {
        Ok(config) => drop(config.to_yaml()),
        Err(errors) => assert!(!errors.to_string().is_empty()),
    }
});
