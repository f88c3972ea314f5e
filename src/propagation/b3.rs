//! B3 propagation (openzipkin/b3-propagation README): the single `b3`
//! header and the multi `X-B3-*` headers.
//!
//! Owns the B3 header names and their parsing and writing. Uses the hex
//! helpers of [`crate::span`]. A B3 context has no `random` flag, so it is
//! always read as `false`. A received parent span id is validated but not
//! kept: the sidecar's spans take the sender's span id as their parent.
//! When writing, the sender's span id, the parent of the sidecar's span,
//! goes out as `X-B3-ParentSpanId` with the multi headers (README,
//! "ParentSpanId"). The single header, where the field is
//! optional and can follow only a sampling state, leaves it out.

use super::{Carried, Outgoing, trim_ows, wire_value};
use crate::span::{Sampling, SpanContext, SpanId, TraceId};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The single header (README, "Single Header").
pub(super) static B3: HeaderName = HeaderName::from_static("b3");
/// Multi headers (README, "Multiple Headers"), lowercase as HTTP/2 needs.
pub(super) static X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub(super) static X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub(super) static X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub(super) static X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub(super) static X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// `{trace 32}-{span 16}-{state 1}`: the longest single value written.
const SINGLE_MAX_LEN: usize = 32 + 1 + 16 + 1 + 1;

/// Why B3 headers were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum B3Error {
    #[error("trace id is not 16 or 32 lowercase hex digits, or is zero")]
    TraceId,
    #[error("span id is not 16 lowercase hex digits, or is zero")]
    SpanId,
    #[error("parent span id is not 16 lowercase hex digits, or is zero")]
    ParentSpanId,
    #[error("sampling state is not one of the values B3 defines")]
    SamplingState,
    #[error("trace id and span id must be sent together")]
    MissingId,
    #[error("the b3 header has more than four fields")]
    ExtraField,
}

/// Reads the single `b3` header: `Ok(None)` when absent. The first value
/// wins when it is repeated.
pub(super) fn extract_single(headers: &HeaderMap) -> Result<Option<Carried>, B3Error> {
    headers
        .get(&B3)
        .map(|value| parse_single(value.as_bytes()))
        .transpose()
}

/// Parses `{trace}-{span}[-{state}[-{parent}]]` or a sampling state alone.
pub(super) fn parse_single(value: &[u8]) -> Result<Carried, B3Error> {
    let value = trim_ows(value);
    if let [state] = value {
        return single_state(*state).map(Carried::SamplingOnly);
    }
    let mut fields = value.split(|&b| b == b'-');
    let trace_id = fields.next().and_then(|f| TraceId::parse_hex(f, true));
    let trace_id = trace_id.ok_or(B3Error::TraceId)?;
    let span_id = fields.next().ok_or(B3Error::MissingId)?;
    let span_id = SpanId::parse_hex(span_id).ok_or(B3Error::SpanId)?;
    let sampling = match fields.next() {
        None => Sampling::Deferred,
        Some([state]) => single_state(*state)?,
        Some(_) => return Err(B3Error::SamplingState),
    };
    if let Some(parent) = fields.next() {
        SpanId::parse_hex(parent).ok_or(B3Error::ParentSpanId)?;
    }
    if fields.next().is_some() {
        return Err(B3Error::ExtraField);
    }
    Ok(Carried::Context(SpanContext {
        trace_id,
        span_id,
        sampling,
        random: false,
    }))
}

/// The single header's sampling state: `1` accept, `0` deny, `d` debug.
fn single_state(state: u8) -> Result<Sampling, B3Error> {
    match state {
        b'1' => Ok(Sampling::Sampled),
        b'0' => Ok(Sampling::NotSampled),
        b'd' => Ok(Sampling::Debug),
        _ => Err(B3Error::SamplingState),
    }
}

/// Reads the `X-B3-*` headers: `Ok(None)` when none is present; a sampling
/// state alone when no id header is present.
pub(super) fn extract_multi(headers: &HeaderMap) -> Result<Option<Carried>, B3Error> {
    let first = |name: &HeaderName| headers.get(name).map(|v| trim_ows(v.as_bytes()));
    let trace_id = first(&X_B3_TRACEID);
    let span_id = first(&X_B3_SPANID);
    let parent = first(&X_B3_PARENTSPANID);
    let sampled = first(&X_B3_SAMPLED);
    let flags = first(&X_B3_FLAGS);
    if [trace_id, span_id, parent, sampled, flags]
        .iter()
        .all(Option::is_none)
    {
        return Ok(None);
    }
    let sampling = multi_sampling(sampled, flags)?;
    let (trace_id, span_id) = match (trace_id, span_id, parent) {
        (None, None, None) => return Ok(Some(Carried::SamplingOnly(sampling))),
        (Some(trace_id), Some(span_id), _) => (trace_id, span_id),
        _ => return Err(B3Error::MissingId),
    };
    if let Some(parent) = parent {
        SpanId::parse_hex(parent).ok_or(B3Error::ParentSpanId)?;
    }
    Ok(Some(Carried::Context(SpanContext {
        trace_id: TraceId::parse_hex(trace_id, true).ok_or(B3Error::TraceId)?,
        span_id: SpanId::parse_hex(span_id).ok_or(B3Error::SpanId)?,
        sampling,
        random: false,
    })))
}

/// `X-B3-Flags: 1` is debug, which implies accept whatever `X-B3-Sampled`
/// says; `X-B3-Sampled` is `1`/`0`, or `true`/`false` from older tracers.
fn multi_sampling(sampled: Option<&[u8]>, flags: Option<&[u8]>) -> Result<Sampling, B3Error> {
    let debug = match flags {
        None | Some(b"0") => false,
        Some(b"1") => true,
        Some(_) => return Err(B3Error::SamplingState),
    };
    let sampling = match sampled {
        None => Sampling::Deferred,
        Some(b"1") => Sampling::Sampled,
        Some(b"0") => Sampling::NotSampled,
        Some(v) if v.eq_ignore_ascii_case(b"true") => Sampling::Sampled,
        Some(v) if v.eq_ignore_ascii_case(b"false") => Sampling::NotSampled,
        Some(_) => return Err(B3Error::SamplingState),
    };
    Ok(if debug { Sampling::Debug } else { sampling })
}

/// Writes `b3: {trace}-{span}[-{state}]`; a deferred decision has no state.
pub(super) fn inject_single(sink: &mut Outgoing<'_>, context: &SpanContext) {
    let mut out = [0u8; SINGLE_MAX_LEN];
    let trace_hex = context.trace_id.to_hex();
    let trace = short_trace_hex(context.trace_id, &trace_hex);
    let mut len = trace.len();
    out[..len].copy_from_slice(trace);
    out[len] = b'-';
    out[len + 1..len + 17].copy_from_slice(&context.span_id.to_hex());
    len += 17;
    let state = match context.sampling {
        Sampling::Deferred => None,
        Sampling::Sampled => Some(b'1'),
        Sampling::NotSampled => Some(b'0'),
        Sampling::Debug => Some(b'd'),
    };
    if let Some(state) = state {
        out[len] = b'-';
        out[len + 1] = state;
        len += 2;
    }
    sink.set(&B3, wire_value(&out[..len]));
}

/// Writes `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-ParentSpanId` when the span
/// has a parent ("must be present on a child span and absent on the root
/// span", README "ParentSpanId"), and the sampling state: debug as
/// `X-B3-Flags: 1` without `X-B3-Sampled` (README, "Debug Flag"), a
/// deferred decision as no header at all.
pub(super) fn inject_multi(out: &mut Outgoing<'_>, context: &SpanContext, parent: Option<SpanId>) {
    let trace_hex = context.trace_id.to_hex();
    let trace = short_trace_hex(context.trace_id, &trace_hex);
    out.set(&X_B3_TRACEID, wire_value(trace));
    out.set(&X_B3_SPANID, wire_value(&context.span_id.to_hex()));
    if let Some(parent) = parent {
        out.set(&X_B3_PARENTSPANID, wire_value(&parent.to_hex()));
    }
    let (name, value) = match context.sampling {
        Sampling::Deferred => return,
        Sampling::Sampled => (&X_B3_SAMPLED, "1"),
        Sampling::NotSampled => (&X_B3_SAMPLED, "0"),
        Sampling::Debug => (&X_B3_FLAGS, "1"),
    };
    out.set(name, HeaderValue::from_static(value));
}

/// B3 keeps a 64-bit trace id in its 16-digit form (README, "TraceId").
fn short_trace_hex(trace_id: TraceId, hex: &[u8; 32]) -> &[u8] {
    if trace_id.is_64bit() { &hex[16..] } else { hex }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";

    fn context(trace: u128, sampling: Sampling) -> Carried {
        Carried::Context(SpanContext {
            trace_id: TraceId::new(trace).unwrap(),
            span_id: SpanId::new(0xe457b5a2e4d86bd1).unwrap(),
            sampling,
            random: false,
        })
    }

    #[test]
    fn single_header_readme_examples() {
        use Sampling::*;
        let full = 0x80f198ee56343ba864fe8b2a57d3eff7;
        let cases: &[(&str, Result<Carried, B3Error>)] = &[
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
                Ok(context(full, Sampled)),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
                Ok(context(full, Sampled)),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d",
                Ok(context(full, Debug)),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0",
                Ok(context(full, NotSampled)),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
                Ok(context(full, Deferred)),
            ),
            (
                "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
                Ok(context(0x64fe8b2a57d3eff7, Sampled)),
            ),
            (
                " 64fe8b2a57d3eff7-e457b5a2e4d86bd1\t",
                Ok(context(0x64fe8b2a57d3eff7, Deferred)),
            ),
            ("0", Ok(Carried::SamplingOnly(NotSampled))),
            ("1", Ok(Carried::SamplingOnly(Sampled))),
            (" d ", Ok(Carried::SamplingOnly(Debug))),
            ("", Err(B3Error::TraceId)),
            ("2", Err(B3Error::SamplingState)),
            ("true", Err(B3Error::TraceId)),
            (
                "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1",
                Err(B3Error::TraceId),
            ),
            (
                "00000000000000000000000000000000-e457b5a2e4d86bd1",
                Err(B3Error::TraceId),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1",
                Err(B3Error::TraceId),
            ),
            ("80f198ee56343ba864fe8b2a57d3eff7", Err(B3Error::MissingId)),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000",
                Err(B3Error::SpanId),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd",
                Err(B3Error::SpanId),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-",
                Err(B3Error::SamplingState),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-true",
                Err(B3Error::SamplingState),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
                Err(B3Error::ParentSpanId),
            ),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x",
                Err(B3Error::ExtraField),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(&parse_single(value.as_bytes()), expected, "{value:?}");
        }
    }

    type Pairs<'a> = &'a [(&'a HeaderName, &'a str)];
    type Outcome = Result<Option<Carried>, B3Error>;

    fn multi(headers: Pairs) -> Outcome {
        let mut map = HeaderMap::new();
        for &(name, value) in headers {
            map.append(name, value.parse().unwrap());
        }
        extract_multi(&map)
    }

    #[test]
    fn multi_headers_readme_examples() {
        use Sampling::*;
        let (t, s, p) = (&X_B3_TRACEID, &X_B3_SPANID, &X_B3_PARENTSPANID);
        let (sampled, flags) = (&X_B3_SAMPLED, &X_B3_FLAGS);
        let full = 0x80f198ee56343ba864fe8b2a57d3eff7;
        let ok = |trace, sampling| Ok(Some(context(trace, sampling)));
        let only = |sampling| Ok(Some(Carried::SamplingOnly(sampling)));
        let cases: &[(Pairs, Outcome)] = &[
            (
                &[
                    (t, TRACE),
                    (p, "05e3ac9a4f6e3b90"),
                    (s, SPAN),
                    (sampled, "1"),
                ],
                ok(full, Sampled),
            ),
            (&[(t, TRACE), (s, SPAN)], ok(full, Deferred)),
            (
                &[(t, "64fe8b2a57d3eff7"), (s, SPAN), (sampled, "0")],
                ok(0x64fe8b2a57d3eff7, NotSampled),
            ),
            (
                &[(t, TRACE), (s, SPAN), (sampled, "true")],
                ok(full, Sampled),
            ),
            (
                &[(t, TRACE), (s, SPAN), (sampled, "false")],
                ok(full, NotSampled),
            ),
            (&[(t, TRACE), (s, SPAN), (flags, "1")], ok(full, Debug)),
            (
                &[(t, TRACE), (s, SPAN), (flags, "1"), (sampled, "0")],
                ok(full, Debug),
            ),
            (
                &[(t, TRACE), (s, SPAN), (flags, "0"), (sampled, "1")],
                ok(full, Sampled),
            ),
            // The first value of a repeated header wins (README).
            (
                &[(t, TRACE), (s, SPAN), (sampled, "1"), (sampled, "0")],
                ok(full, Sampled),
            ),
            (&[(sampled, "0")], only(NotSampled)),
            (&[(flags, "1")], only(Debug)),
            (&[], Ok(None)),
            (&[(t, TRACE)], Err(B3Error::MissingId)),
            (&[(s, SPAN), (sampled, "1")], Err(B3Error::MissingId)),
            (&[(p, "05e3ac9a4f6e3b90")], Err(B3Error::MissingId)),
            (
                &[(t, TRACE), (s, SPAN), (p, "0000000000000000")],
                Err(B3Error::ParentSpanId),
            ),
            (&[(t, &TRACE[1..]), (s, SPAN)], Err(B3Error::TraceId)),
            (&[(t, TRACE), (s, "E457B5A2E4D86BD1")], Err(B3Error::SpanId)),
            (
                &[(t, TRACE), (s, SPAN), (sampled, "d")],
                Err(B3Error::SamplingState),
            ),
            (
                &[(t, TRACE), (s, SPAN), (flags, "2")],
                Err(B3Error::SamplingState),
            ),
            (&[(sampled, "yes")], Err(B3Error::SamplingState)),
        ];
        for (headers, expected) in cases {
            assert_eq!(&multi(headers), expected, "{headers:?}");
        }
    }

    #[test]
    fn writes_single_header() {
        let cases: &[(u128, Sampling, &str)] = &[
            (
                0x80f198ee56343ba864fe8b2a57d3eff7,
                Sampling::Sampled,
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
            ),
            (
                0x80f198ee56343ba864fe8b2a57d3eff7,
                Sampling::NotSampled,
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0",
            ),
            (
                0x80f198ee56343ba864fe8b2a57d3eff7,
                Sampling::Debug,
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d",
            ),
            (
                0x80f198ee56343ba864fe8b2a57d3eff7,
                Sampling::Deferred,
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
            ),
            (
                0x64fe8b2a57d3eff7,
                Sampling::Sampled,
                "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
            ),
        ];
        for &(trace, sampling, expected) in cases {
            let Carried::Context(context) = context(trace, sampling) else {
                unreachable!()
            };
            let mut headers = HeaderMap::new();
            inject_single(&mut Outgoing::new(&mut headers, None), &context);
            assert_eq!(headers[&B3], expected);
            assert_eq!(headers.len(), 1);
        }
    }

    #[test]
    fn writes_multi_headers() {
        // (trace id, sampling, parent, X-B3-TraceId, X-B3-Sampled, X-B3-Flags,
        // X-B3-ParentSpanId)
        type Case<'a> = (
            u128,
            Sampling,
            Option<u64>,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let full = 0x80f198ee56343ba864fe8b2a57d3eff7;
        let parent = Some(0x05e3ac9a4f6e3b90);
        let parent_hex = Some("05e3ac9a4f6e3b90");
        let cases: &[Case] = &[
            (full, Sampling::Sampled, None, TRACE, Some("1"), None, None),
            (
                full,
                Sampling::NotSampled,
                None,
                TRACE,
                Some("0"),
                None,
                None,
            ),
            (full, Sampling::Debug, None, TRACE, None, Some("1"), None),
            (
                0x64fe8b2a57d3eff7,
                Sampling::Deferred,
                None,
                "64fe8b2a57d3eff7",
                None,
                None,
                None,
            ),
            // A child span: the README's example, parent and all.
            (
                full,
                Sampling::Sampled,
                parent,
                TRACE,
                Some("1"),
                None,
                parent_hex,
            ),
            (
                full,
                Sampling::Debug,
                parent,
                TRACE,
                None,
                Some("1"),
                parent_hex,
            ),
            (
                0x64fe8b2a57d3eff7,
                Sampling::Deferred,
                Some(1),
                "64fe8b2a57d3eff7",
                None,
                None,
                Some("0000000000000001"),
            ),
        ];
        for &(trace, sampling, parent, trace_hex, sampled, flags, parent_hex) in cases {
            let Carried::Context(context) = context(trace, sampling) else {
                unreachable!()
            };
            let parent = parent.map(|id| SpanId::new(id).unwrap());
            let mut headers = HeaderMap::new();
            inject_multi(&mut Outgoing::new(&mut headers, None), &context, parent);
            assert_eq!(headers[&X_B3_TRACEID], trace_hex);
            assert_eq!(headers[&X_B3_SPANID], SPAN);
            let text = |name| headers.get(name).map(|v| v.to_str().unwrap());
            assert_eq!(text(&X_B3_SAMPLED), sampled, "{sampling:?}");
            assert_eq!(text(&X_B3_FLAGS), flags, "{sampling:?}");
            assert_eq!(text(&X_B3_PARENTSPANID), parent_hex, "{parent:?}");
            // What is written reads back as the same context.
            assert_eq!(extract_multi(&headers), Ok(Some(Carried::Context(context))));
        }
    }
}
