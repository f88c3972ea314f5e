//! Shared by the HTTP/1.1 differential targets: the deliberate differences
//! between tracehop's reading of a head and hyper's, written once.

use std::ops::Range;

/// RFC 9110 §5.5: a list value with obs-text (bytes above 0x7f) is opaque
/// only where that text stands; its other elements still count, while
/// hyper ignores the whole value. Replaces those bytes with `x` in the
/// `values` of `input` so both read the same; the reason when it did.
pub fn mask_obs_text(
    input: &mut [u8],
    values: impl IntoIterator<Item = Range<usize>>,
) -> Option<&'static str> {
    let mut opaque = false;
    for value in values {
        for byte in &mut input[value] {
            if !byte.is_ascii() {
                *byte = b'x';
                opaque = true;
            }
        }
    }
    opaque.then_some("RFC 9110 §5.5: obs-text is opaque; the list's other elements count")
}
