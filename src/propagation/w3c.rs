//! W3C Trace Context `traceparent`: parsing exactly per Level 1 §3.2 (with
//! the Level 2 `random` flag) and writing version `00`.
//!
//! Owns the `traceparent` and `tracestate` header names; the `tracestate`
//! list itself lives in [`super::tracestate`]. Uses the hex helpers of
//! [`crate::span`]. Parsing works on the header's bytes in place.

use super::{Outgoing, trim_ows, wire_value};
use crate::span::{Sampling, SpanContext, SpanId, TraceId, parse_hex_u64};
use http::{HeaderMap, HeaderName};

/// `traceparent` (W3C Trace Context §3.2.1).
pub(super) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context Level 2, "Tracestate Header").
pub(super) static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Length of a version `00` value; the prefix every version shares (§3.2.4).
const LEN: usize = 55;
/// Bit 0 of `trace-flags` (§3.2.2.5.1).
const FLAG_SAMPLED: u8 = 0x01;
/// Bit 1 of `trace-flags`, added by Trace Context Level 2.
const FLAG_RANDOM: u8 = 0x02;

/// Why a `traceparent` was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum TraceparentError {
    #[error("more than one traceparent header")]
    Duplicate,
    #[error("version is not two lowercase hex digits or is the forbidden `ff` (§3.2.2.1)")]
    Version,
    #[error("version {version:02x} value has {len} characters, expected {expected}")]
    Length {
        version: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("a field is not followed by `-` at position {at} (§3.2.2, §3.2.4)")]
    Delimiter { at: usize },
    #[error("trace-id is not 32 lowercase hex digits or is all zeros (§3.2.2.3)")]
    TraceId,
    #[error("parent-id is not 16 lowercase hex digits or is all zeros (§3.2.2.4)")]
    ParentId,
    #[error("trace-flags is not two lowercase hex digits (§3.2.2.5)")]
    Flags,
}

/// Reads the `traceparent` header: `Ok(None)` when absent.
pub(super) fn extract(headers: &HeaderMap) -> Result<Option<SpanContext>, TraceparentError> {
    let mut values = headers.get_all(&TRACEPARENT).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TraceparentError::Duplicate);
    }
    parse(value.as_bytes()).map(Some)
}

/// Parses one `traceparent` value.
pub(super) fn parse(value: &[u8]) -> Result<SpanContext, TraceparentError> {
    let value = trim_ows(value);
    let version = value
        .get(..2)
        .and_then(parse_hex_u64)
        .and_then(|v| u8::try_from(v).ok())
        .filter(|&v| v != 0xff)
        .ok_or(TraceparentError::Version)?;
    check_length(version, value)?;
    for at in [2, 35, 52] {
        if value[at] != b'-' {
            return Err(TraceparentError::Delimiter { at });
        }
    }
    let trace_id = TraceId::parse_hex(&value[3..35], false).ok_or(TraceparentError::TraceId)?;
    let span_id = SpanId::parse_hex(&value[36..52]).ok_or(TraceparentError::ParentId)?;
    let flags = parse_hex_u64(&value[53..LEN]).ok_or(TraceparentError::Flags)?;
    Ok(SpanContext {
        trace_id,
        span_id,
        sampling: if flags & u64::from(FLAG_SAMPLED) != 0 {
            Sampling::Sampled
        } else {
            Sampling::NotSampled
        },
        random: flags & u64::from(FLAG_RANDOM) != 0,
    })
}

/// Version `00` is exactly 55 characters; higher versions are at least 55,
/// and what follows the flags must start with `-` (§3.2.4).
fn check_length(version: u8, value: &[u8]) -> Result<(), TraceparentError> {
    let length_error = |expected| TraceparentError::Length {
        version,
        len: value.len(),
        expected,
    };
    if version == 0 && value.len() != LEN {
        return Err(length_error("exactly 55"));
    }
    if value.len() < LEN {
        return Err(length_error("at least 55"));
    }
    if value.len() > LEN && value[LEN] != b'-' {
        return Err(TraceparentError::Delimiter { at: LEN });
    }
    Ok(())
}

/// Writes `traceparent: 00-{trace-id}-{parent-id}-{flags}`, always version
/// `00` (§3.2.4), reserved flag bits zero (§3.2.2.5).
pub(super) fn inject(out: &mut Outgoing<'_>, context: &SpanContext) {
    out.set(&TRACEPARENT, wire_value(&encode(context)));
}

/// The 55-byte `traceparent` value for `context`.
fn encode(context: &SpanContext) -> [u8; LEN] {
    let mut out = [b'-'; LEN];
    out[..2].copy_from_slice(b"00");
    out[3..35].copy_from_slice(&context.trace_id.to_hex());
    out[36..52].copy_from_slice(&context.span_id.to_hex());
    let mut flags = 0;
    if context.sampling.is_sampled() {
        flags |= FLAG_SAMPLED;
    }
    if context.random {
        flags |= FLAG_RANDOM;
    }
    // Only the two low bits can be set, so the high digit is always `0`.
    out[53] = b'0';
    out[54] = b'0' + flags;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
    const SPEC_PARENT: u64 = 0x00f067aa0ba902b7;

    fn context(sampling: Sampling, random: bool) -> SpanContext {
        SpanContext {
            trace_id: TraceId::new(SPEC_TRACE).unwrap(),
            span_id: SpanId::new(SPEC_PARENT).unwrap(),
            sampling,
            random,
        }
    }

    #[test]
    fn accepts_spec_examples_and_future_versions() {
        use Sampling::{NotSampled, Sampled};
        let cases: &[(&str, Sampling, bool)] = &[
            // W3C Trace Context §3.2.3, both examples.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Sampled,
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                NotSampled,
                false,
            ),
            // Level 2 `random` flag, alone and with `sampled`.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
                NotSampled,
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                Sampled,
                true,
            ),
            // Reserved bits are ignored (§3.2.2.5), not an error.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                Sampled,
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-08",
                NotSampled,
                false,
            ),
            // Surrounding OWS (W3C test suite, test_traceparent_ows_handling).
            (
                " \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t ",
                Sampled,
                false,
            ),
            // Higher versions: first 55 chars, then `-` or the end (§3.2.4).
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Sampled,
                false,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
                Sampled,
                false,
            ),
            (
                "fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-",
                NotSampled,
                false,
            ),
        ];
        for &(value, sampling, random) in cases {
            assert_eq!(
                parse(value.as_bytes()),
                Ok(context(sampling, random)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn rejects_what_the_spec_forbids() {
        use TraceparentError::*;
        let length = |version, len, expected| Length {
            version,
            len,
            expected,
        };
        let cases: &[(&str, TraceparentError)] = &[
            ("", Version),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                length(0, 56, "exactly 55"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                length(0, 54, "exactly 55"),
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                length(0xcc, 54, "at least 55"),
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
                Delimiter { at: 55 },
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Delimiter { at: 2 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                Delimiter { at: 35 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                Delimiter { at: 52 },
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G",
                Flags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                Flags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-AB",
                Flags,
            ),
            // Inner whitespace is not OWS.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736- 0f067aa0ba902b7-01",
                ParentId,
            ),
        ];
        for (value, error) in cases {
            assert_eq!(parse(value.as_bytes()), Err(*error), "{value:?}");
        }
    }

    /// Vectors from the W3C trace-context test suite (`test/test.py`,
    /// `test_traceparent_*`): which values keep the trace and which restart it.
    #[test]
    fn w3c_test_suite_traceparent_vectors() {
        let valid = [
            "00-12345678901234567890123456789012-1234567890123456-01",
            "cc-12345678901234567890123456789012-1234567890123456-01",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            " 00-12345678901234567890123456789012-1234567890123456-01",
            "\t00-12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456-01 ",
            "00-12345678901234567890123456789012-1234567890123456-01\t",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        ];
        for value in valid {
            let parsed = parse(value.as_bytes()).map(|c| c.trace_id.get());
            assert_eq!(parsed, Ok(0x12345678901234567890123456789012), "{value:?}");
        }
        let invalid = [
            "00-12345678901234567890123456789012-1234567890123456-01.",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            "ff-12345678901234567890123456789012-1234567890123456-01",
            ".0-12345678901234567890123456789012-1234567890123456-01",
            "0.-12345678901234567890123456789012-1234567890123456-01",
            "000-12345678901234567890123456789012-1234567890123456-01",
            "0000-12345678901234567890123456789012-1234567890123456-01",
            "0-12345678901234567890123456789012-1234567890123456-01",
            "00-00000000000000000000000000000000-1234567890123456-01",
            "00-.2345678901234567890123456789012-1234567890123456-01",
            "00-1234567890123456789012345678901.-1234567890123456-01",
            "00-123456789012345678901234567890123-1234567890123456-01",
            "00-1234567890123456789012345678901-1234567890123456-01",
            "00-12345678901234567890123456789012-0000000000000000-01",
            "00-12345678901234567890123456789012-.234567890123456-01",
            "00-12345678901234567890123456789012-123456789012345.-01",
            "00-12345678901234567890123456789012-12345678901234567-01",
            "00-12345678901234567890123456789012-123456789012345-01",
            "00-12345678901234567890123456789012-1234567890123456-.0",
            "00-12345678901234567890123456789012-1234567890123456-0.",
            "00-12345678901234567890123456789012-1234567890123456-001",
            "00-12345678901234567890123456789012-1234567890123456-1",
        ];
        for value in invalid {
            assert!(parse(value.as_bytes()).is_err(), "{value:?}");
        }
    }

    #[test]
    fn two_traceparent_fields_are_invalid() {
        let mut headers = HeaderMap::new();
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.append(&TRACEPARENT, value.parse().unwrap());
        assert_eq!(
            extract(&headers),
            Ok(Some(context(Sampling::Sampled, false)))
        );
        headers.append(&TRACEPARENT, value.parse().unwrap());
        assert_eq!(extract(&headers), Err(TraceparentError::Duplicate));
        assert_eq!(extract(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn writes_version_00_with_only_known_flags() {
        let cases: &[(Sampling, bool, &str)] = &[
            (Sampling::Sampled, false, "01"),
            (Sampling::NotSampled, false, "00"),
            (Sampling::Deferred, false, "00"),
            (Sampling::Debug, false, "01"),
            (Sampling::Sampled, true, "03"),
            (Sampling::NotSampled, true, "02"),
        ];
        for &(sampling, random, flags) in cases {
            let mut headers = HeaderMap::new();
            inject(
                &mut Outgoing::new(&mut headers, None),
                &context(sampling, random),
            );
            let expected = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
            assert_eq!(headers[&TRACEPARENT], expected.as_str(), "{sampling:?}");
        }
    }

    #[test]
    fn future_versions_are_written_back_as_00() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra";
        let parsed = parse(future.as_bytes()).unwrap();
        assert_eq!(
            &encode(&parsed),
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn sixty_four_bit_trace_ids_are_left_padded() {
        let context = SpanContext {
            trace_id: TraceId::new(0xa3ce929d0e0e4736).unwrap(),
            span_id: SpanId::new(SPEC_PARENT).unwrap(),
            sampling: Sampling::Sampled,
            random: false,
        };
        assert_eq!(
            &encode(&context),
            b"00-0000000000000000a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }
}
