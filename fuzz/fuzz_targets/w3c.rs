//! W3C Trace Context: `traceparent` / `tracestate` (and anything else) in,
//! never a panic, and a round trip through inject.
#![no_main]

#[path = "propagation.rs"]
mod propagation;

use libfuzzer_sys::fuzz_target;
use tracehop::config::Format;

fuzz_target!(|data: &[u8]| {
    propagation::check(data, vec![Format::W3c], vec![Format::W3c]);
    propagation::check(data, vec![Format::W3c, Format::B3], Vec::new());
});
