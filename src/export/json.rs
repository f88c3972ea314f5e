//! A minimal JSON writer into a `Vec<u8>`: strings with correct escaping
//! and unsigned integers, nothing else.
//!
//! The Zipkin encoder writes every span through these few functions instead
//! of building a document tree or calling `format!` per field, so encoding a
//! batch costs no allocation beyond the output buffer (and a lossy copy of
//! the rare header value that is not valid UTF-8).

/// Writes `value` as a JSON string literal, quotes included (RFC 8259 §7).
pub fn write_str(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    write_escaped(out, value);
    out.push(b'"');
}

/// Writes `value` lowercased as a JSON string literal.
pub fn write_str_lowercase(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    write_escaped_lowercase(out, value);
    out.push(b'"');
}

/// Writes text that is known to need no escape (an HTTP method, a static
/// label) as a JSON string literal.
pub fn write_plain_str(out: &mut Vec<u8>, value: &str) {
    debug_assert!(!any_needs_escape(value.as_bytes()), "{value:?}");
    write_quoted(out, value.as_bytes());
}

/// `"value"`, for bytes already known to need no escape.
fn write_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(value);
    out.push(b'"');
}

/// Writes raw bytes as a JSON string; invalid UTF-8 becomes U+FFFD.
pub fn write_bytes_lossy(out: &mut Vec<u8>, value: &[u8]) {
    // Header values are nearly always printable ASCII: no UTF-8 check.
    if !any_needs_escape_or_non_ascii(value) {
        write_quoted(out, value);
        return;
    }
    match std::str::from_utf8(value) {
        Ok(text) => write_str(out, text),
        Err(_) => write_str(out, &String::from_utf8_lossy(value)),
    }
}

/// Writes the body of a JSON string (no quotes), escaping `"`, `\` and the
/// control characters U+0000..U+001F, which RFC 8259 §7 forbids unescaped.
pub fn write_escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    // Nearly every value needs no escape: one scan, one copy.
    if !any_needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if needs_escape(byte) {
            out.extend_from_slice(&bytes[start..i]);
            write_escape(out, byte);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Like [`write_escaped`], lowercasing as it goes. Zipkin lowercases span
/// and service names (Zipkin v2 API, `Span.name`, `Endpoint.serviceName`).
pub fn write_escaped_lowercase(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if !any_needs_escape_or_non_ascii(bytes) {
        let start = out.len();
        out.extend_from_slice(bytes);
        out[start..].make_ascii_lowercase();
        return;
    }
    if value.is_ascii() {
        for &byte in bytes {
            if needs_escape(byte) {
                write_escape(out, byte);
            } else {
                out.push(byte.to_ascii_lowercase());
            }
        }
        return;
    }
    let mut utf8 = [0u8; 4];
    for lower in value.chars().flat_map(char::to_lowercase) {
        write_escaped(out, lower.encode_utf8(&mut utf8));
    }
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any byte needs an escape, eight bytes at a time: for a word
/// `w`, `(w - 0x0101..) & !w & 0x8080..` is non-zero exactly when some
/// byte of `w` is zero (borrows only ever add bits above a zero byte), and
/// `(w - 0x2020..) & !w & 0x8080..` when some byte is below 0x20.
fn any_needs_escape(bytes: &[u8]) -> bool {
    scan(bytes, false)
}

/// Like [`any_needs_escape`], and also true for any byte above 0x7f.
fn any_needs_escape_or_non_ascii(bytes: &[u8]) -> bool {
    scan(bytes, true)
}

#[inline(always)]
fn scan(bytes: &[u8], non_ascii: bool) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let high = if non_ascii { HIGH } else { 0 };
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let bad = |word: [u8; 8]| {
        let w = u64::from_ne_bytes(word);
        w & high != 0
            || w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0
            || zero_byte(w ^ (ONES * u64::from(b'"')))
            || zero_byte(w ^ (ONES * u64::from(b'\\')))
    };
    let (words, rest) = bytes.as_chunks::<8>();
    if words.iter().any(|word| bad(*word)) {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    // The tail as one more word: the last eight bytes (overlapping words
    // already checked), or, in a short value, the bytes padded with spaces.
    if let Some(last) = bytes.last_chunk::<8>() {
        return bad(*last);
    }
    let mut tail = [b' '; 8];
    for (to, from) in tail.iter_mut().zip(rest) {
        *to = *from;
    }
    bad(tail)
}

fn write_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0x0f)],
        ]),
    }
}

/// Writes `value` in decimal, without quotes.
pub fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Writes `value` in decimal as a JSON string (Zipkin tag values are strings).
pub fn write_u64_str(out: &mut Vec<u8>, value: u64) {
    out.push(b'"');
    write_u64(out, value);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_what_rfc_8259_requires() {
        let cases = [
            ("plain", r#""plain""#),
            ("say \"hi\"", r#""say \"hi\"""#),
            ("back\\slash", r#""back\\slash""#),
            ("a\nb\rc\td", r#""a\nb\rc\td""#),
            ("\u{8}\u{c}", r#""\b\f""#),
            ("\u{0}\u{1f}", r#""\u0000\u001f""#),
            ("\u{7f}é☃", "\"\u{7f}é☃\""),
        ];
        for (input, expected) in cases {
            assert_eq!(escaped(input), expected, "{input:?}");
            let parsed: String = serde_json::from_str(expected).unwrap();
            assert_eq!(parsed, input);
        }
    }

    #[test]
    fn lowercases_ascii_and_unicode_while_escaping() {
        let mut out = Vec::new();
        write_str_lowercase(&mut out, "GET /Users/\"X\"");
        assert_eq!(out, br#""get /users/\"x\"""#);
        out.clear();
        write_str_lowercase(&mut out, "ÉTÉ\n");
        assert_eq!(String::from_utf8(out).unwrap(), "\"été\\n\"");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let mut out = Vec::new();
        write_bytes_lossy(&mut out, b"ok\xff\xfe\"");
        let parsed: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, "ok\u{fffd}\u{fffd}\"");
    }

    /// `scan` against `flagged` for every byte at every position of short
    /// runs of plain bytes.
    fn scans_like(scan: fn(&[u8]) -> bool, flagged: fn(u8) -> bool) {
        for len in 0..24 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        scan(&bytes),
                        flagged(byte),
                        "byte {byte:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_word_scan_finds_exactly_the_bytes_that_need_an_escape() {
        scans_like(any_needs_escape, needs_escape);
        // High bytes (UTF-8) next to plain ones are no escape.
        assert!(!any_needs_escape("é☃ plain text, 0123456789".as_bytes()));
        assert!(any_needs_escape("é☃ plain text\u{1f}".as_bytes()));
    }

    #[test]
    fn the_ascii_scan_also_finds_every_high_byte() {
        scans_like(any_needs_escape_or_non_ascii, |byte| {
            needs_escape(byte) || !byte.is_ascii()
        });
    }

    #[test]
    fn header_bytes_take_the_plain_path_or_the_careful_one() {
        for value in [
            &b"curl/8.5.0"[..],
            b"say \"hi\"",
            b"caf\xc3\xa9",
            b"tab\there",
        ] {
            let mut out = Vec::new();
            write_bytes_lossy(&mut out, value);
            let parsed: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed.as_bytes(), value);
        }
    }

    #[test]
    fn writes_integers() {
        for value in [0, 7, 10, 1_700_000_000_000_000, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
        let mut out = Vec::new();
        write_u64_str(&mut out, 503);
        assert_eq!(out, b"\"503\"");
    }
}
