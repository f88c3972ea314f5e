//! B3 single and multi headers (and baggage) in, never a panic, and a
//! round trip through inject in both B3 forms.
#![no_main]

#[path = "propagation.rs"]
mod propagation;

use libfuzzer_sys::fuzz_target;
use tracehop::config::Format;

fuzz_target!(|data: &[u8]| {
    propagation::check(data, vec![Format::B3], vec![Format::B3]);
    propagation::check(data, vec![Format::B3Single], vec![Format::B3Single]);
    propagation::check(
        data,
        vec![Format::B3, Format::W3c],
        vec![Format::W3c, Format::B3],
    );
});
