//! Trace and span identifiers: fixed-size integers, lowercase hex on the wire.
//!
//! Ids are generated here and nowhere else (STYLE: time and ids come from one
//! place). Hex encoding works on whole words into fixed-size buffers:
//! formatting an id with `format!` costs an allocation per id on the request
//! path, and a digit-by-digit table lookup five times the instructions.

use std::fmt;

/// A 128-bit trace id. Never zero (W3C Trace Context §3.2.2.3: all-zero is invalid).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

/// A 64-bit span id. Never zero (W3C Trace Context §3.2.2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

impl TraceId {
    /// Wraps a raw value; `None` for the invalid all-zero id.
    pub fn new(value: u128) -> Option<Self> {
        (value != 0).then_some(Self(value))
    }

    /// A fresh random id. All 128 bits are random, so the W3C Level 2
    /// `random` flag may be set for traces this process starts.
    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::new(rand::random()) {
                return id;
            }
        }
    }

    pub fn get(self) -> u128 {
        self.0
    }

    /// True when the high 64 bits are zero: a 64-bit B3 trace id.
    pub fn is_64bit(self) -> bool {
        self.0 >> 64 == 0
    }

    /// The low 56 bits, which W3C Trace Context Level 2 §3.2.2.3 declares
    /// random when the `random` flag is set; consistent sampling uses them.
    pub fn random_bits(self) -> u64 {
        (self.0 as u64) & ((1 << 56) - 1)
    }

    /// Parses exactly 32 (or, when `allow_64bit`, 16) lowercase hex digits.
    pub fn parse_hex(hex: &[u8], allow_64bit: bool) -> Option<Self> {
        match hex.len() {
            32 => Self::new(parse_hex_u128(hex)?),
            16 if allow_64bit => Self::new(u128::from(parse_hex_u64(hex)?)),
            _ => None,
        }
    }

    /// 32 lowercase hex digits (W3C form, 64-bit ids left-padded with zeros).
    pub fn to_hex(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&hex16((self.0 >> 64) as u64));
        out[16..].copy_from_slice(&hex16(self.0 as u64));
        out
    }

    /// The 16 bytes, most significant first (OTLP `trace_id`, Zipkin proto3).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Reads 16 bytes, most significant first (or, when `allow_64bit`, the 8
    /// of a 64-bit B3 id); `None` for another length or all zeros.
    pub fn from_bytes(bytes: &[u8], allow_64bit: bool) -> Option<Self> {
        match bytes.len() {
            16 => Self::new(u128::from_be_bytes(bytes.try_into().ok()?)),
            8 if allow_64bit => Self::new(u128::from(u64::from_be_bytes(bytes.try_into().ok()?))),
            _ => None,
        }
    }

    /// The shortest Zipkin/B3 form: 16 digits when the high half is zero, else 32.
    pub fn write_short_hex(self, out: &mut Vec<u8>) {
        if !self.is_64bit() {
            out.extend_from_slice(&hex16((self.0 >> 64) as u64));
        }
        out.extend_from_slice(&hex16(self.0 as u64));
    }
}

impl SpanId {
    /// Wraps a raw value; `None` for the invalid all-zero id.
    pub fn new(value: u64) -> Option<Self> {
        (value != 0).then_some(Self(value))
    }

    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::new(rand::random()) {
                return id;
            }
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses exactly 16 lowercase hex digits.
    pub fn parse_hex(hex: &[u8]) -> Option<Self> {
        if hex.len() != 16 {
            return None;
        }
        Self::new(parse_hex_u64(hex)?)
    }

    pub fn to_hex(self) -> [u8; 16] {
        hex16(self.0)
    }

    /// The 8 bytes, most significant first (OTLP `span_id`, Zipkin proto3).
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Reads 8 bytes, most significant first; `None` for another length or
    /// all zeros.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Self::new(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// A fresh random RFC 9562 version 4 UUID in its text form, the
/// `service.instance.id` of this process: OpenTelemetry's service
/// conventions recommend a random UUID where the instance has no id of its
/// own (`docs/resource/service.md`).
pub fn instance_id() -> String {
    let mut value: u128 = rand::random();
    value = (value & !(0xf << 76)) | (0x4 << 76); // version 4 (RFC 9562 §5.4)
    value = (value & !(0b11 << 62)) | (0b10 << 62); // variant 10 (§4.1)
    let mut hex = [0u8; 32];
    hex[..16].copy_from_slice(&hex16((value >> 64) as u64));
    hex[16..].copy_from_slice(&hex16(value as u64));
    let mut text = String::with_capacity(36);
    for (i, digit) in hex.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            text.push('-');
        }
        text.push(char::from(*digit));
    }
    text
}

/// The 16 lowercase hex digits of `value`, most significant first, computed
/// on one 128-bit word: each nibble is spread into a byte of its own, then
/// every byte becomes its digit at once (`'0' + n`, plus `'a' - '0' - 10`
/// where `n >= 10`). No byte ever carries into the next: nibbles are at most
/// 15 and digits at most `b'f'`.
#[inline]
fn hex16(value: u64) -> [u8; 16] {
    const fn bytes(byte: u8) -> u128 {
        u128::from_ne_bytes([byte; 16])
    }
    let mut n = u128::from(value);
    n = (n | n << 32) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    n = (n | n << 16) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    n = (n | n << 8) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    n = (n | n << 4) & bytes(0x0f);
    // Byte i (from the least significant) now holds nibble i of `value`.
    let letters = ((n + bytes(6)) >> 4) & bytes(1);
    (n + bytes(b'0') + letters * u128::from(b'a' - b'0' - 10)).to_be_bytes()
}

/// Value of one lowercase hex digit. Uppercase is rejected: W3C Trace Context
/// §3.2.2 requires lowercase, and B3 ids are lowercase hex too.
fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// Parses up to 16 lowercase hex digits.
pub fn parse_hex_u64(hex: &[u8]) -> Option<u64> {
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    hex.iter()
        .try_fold(0u64, |acc, &b| Some((acc << 4) | u64::from(hex_digit(b)?)))
}

/// Parses up to 32 lowercase hex digits.
pub fn parse_hex_u128(hex: &[u8]) -> Option<u128> {
    if hex.is_empty() || hex.len() > 32 {
        return None;
    }
    hex.iter().try_fold(0u128, |acc, &b| {
        Some((acc << 4) | u128::from(hex_digit(b)?))
    })
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let t = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
        assert_eq!(&t.to_hex(), b"4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceId::parse_hex(&t.to_hex(), false), Some(t));
        let s = SpanId::new(0x00f067aa0ba902b7).unwrap();
        assert_eq!(&s.to_hex(), b"00f067aa0ba902b7");
        assert_eq!(SpanId::parse_hex(b"00f067aa0ba902b7"), Some(s));
    }

    #[test]
    fn word_hex_matches_the_formatter() {
        let mut values = vec![0, 1, 9, 10, 15, 16, u64::MAX, 0x0123_4567_89ab_cdef];
        // Every nibble value at every position, and a spread of mixed words.
        for shift in (0..64).step_by(4) {
            values.extend((0..16u64).map(|nibble| nibble << shift));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x);
        }
        for value in values {
            assert_eq!(
                hex16(value),
                *format!("{value:016x}").as_bytes(),
                "{value:#x}"
            );
        }
        let t = TraceId::new(0x0000_0000_0000_0001_ffff_ffff_ffff_fffe).unwrap();
        assert_eq!(t.to_string(), format!("{:032x}", t.get()));
        let mut short = Vec::new();
        t.write_short_hex(&mut short);
        assert_eq!(short, format!("{:032x}", t.get()).as_bytes());
    }

    #[test]
    fn rejects_zero_uppercase_and_bad_lengths() {
        assert_eq!(TraceId::parse_hex(&[b'0'; 32], false), None);
        assert_eq!(SpanId::parse_hex(b"0000000000000000"), None);
        assert_eq!(SpanId::parse_hex(b"00F067AA0BA902B7"), None);
        assert_eq!(SpanId::parse_hex(b"00f067aa0ba902b"), None);
        assert_eq!(TraceId::parse_hex(b"a3ce929d0e0e4736", false), None);
    }

    #[test]
    fn sixty_four_bit_trace_ids_are_left_padded() {
        let t = TraceId::parse_hex(b"a3ce929d0e0e4736", true).unwrap();
        assert!(t.is_64bit());
        assert_eq!(&t.to_hex(), b"0000000000000000a3ce929d0e0e4736");
        let mut short = Vec::new();
        t.write_short_hex(&mut short);
        assert_eq!(short, b"a3ce929d0e0e4736");
    }

    #[test]
    fn byte_forms_round_trip_and_refuse_bad_lengths() {
        let t = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
        assert_eq!(t.to_bytes()[0], 0x4b);
        assert_eq!(TraceId::from_bytes(&t.to_bytes(), false), Some(t));
        let short = TraceId::new(0xa3ce929d0e0e4736).unwrap();
        assert_eq!(
            TraceId::from_bytes(&short.to_bytes()[8..], true),
            Some(short)
        );
        assert_eq!(TraceId::from_bytes(&short.to_bytes()[8..], false), None);
        assert_eq!(TraceId::from_bytes(&[0; 16], false), None);
        assert_eq!(TraceId::from_bytes(&[1; 15], true), None);
        let s = SpanId::new(0x00f067aa0ba902b7).unwrap();
        assert_eq!(
            s.to_bytes(),
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(SpanId::from_bytes(&s.to_bytes()), Some(s));
        assert_eq!(SpanId::from_bytes(&[0; 8]), None);
        assert_eq!(SpanId::from_bytes(&[1; 9]), None);
    }

    #[test]
    fn instance_ids_are_version_4_uuids() {
        let id = instance_id();
        let parts: Vec<&str> = id.split('-').collect();
        let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(instance_id(), id);
    }

    #[test]
    fn random_ids_are_nonzero_and_differ() {
        assert_ne!(TraceId::random(), TraceId::random());
        assert_ne!(SpanId::random().get(), 0);
    }
}
