//! HTTP/1.1 message syntax (RFC 9112) shared by the server's fast path
//! ([`crate::server`]) and the proxy's upstream connections: field lines,
//! chunk framing, `Content-Length` values and `Connection` tokens.

use std::io::Write as _;

use http::{HeaderName, HeaderValue};

/// Writes one field line.
pub fn encode_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes the size line that opens a chunk of `len` bytes (§7.1).
pub fn encode_chunk_size(out: &mut Vec<u8>, len: usize) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

/// A `Content-Length` value: ASCII digits only, at most 19 of them.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Whether a comma-separated field value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_digits_only_and_bounded() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"1234"), Some(1234));
        assert_eq!(
            parse_decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [&b""[..], b"+1", b"1 ", b"0x10", b"12345678901234567890"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_found_in_lists_whatever_their_case() {
        assert!(has_token(b"close", "close"));
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(!has_token(b"closed, x-close", "close"));
        assert!(!has_token(b"", "close"));
    }

    #[test]
    fn chunk_sizes_are_lower_case_hex() {
        let mut out = Vec::new();
        encode_chunk_size(&mut out, 0x1fa0);
        assert_eq!(out, b"1fa0\r\n");
    }
}
