//! Trace-context propagation: reading the downstream's context from request
//! headers ([`extract`]) and writing the sidecar's own context onto the
//! request it forwards ([`inject`]).
//!
//! Owns the wire formats: W3C Trace Context (`traceparent`, `tracestate`;
//! `w3c`, `tracestate`) and B3 (single `b3` and multi `X-B3-*`; `b3`).
//! Uses [`crate::span`] for ids and [`crate::config::PropagationConfig`] for
//! which formats are read and written. Nothing here allocates while reading
//! unless a `tracestate` has to be kept.
//!
//! # Precedence when reading
//!
//! The formats in `extract` are tried in their configured order; formats not
//! listed are ignored entirely. The first format whose headers are present
//! *and* valid wins, whether it carries ids or only a sampling state (B3
//! `b3: 0`). When some listed format's headers were present but none was
//! valid, the result is [`Seen::Invalid`] and the hop starts a new trace.
//! Within B3, the single `b3` header takes precedence over `X-B3-*` (B3
//! README, "Http Encodings"); an invalid `b3` falls back to `X-B3-*`.
//!
//! # W3C Trace Context
//!
//! - `traceparent` (Level 1 §3.2.2): lowercase hex only, exact field lengths;
//!   an all-zero trace id (§3.2.2.3) or parent id (§3.2.2.4) is invalid, and
//!   so is version `ff` (§3.2.2.1). Version `00` is exactly 55 characters.
//!   Higher versions are read by their first 55 characters, which must be
//!   followed by `-` or the end, and are written back as `00` (§3.2.4).
//!   Two `traceparent` fields are invalid (W3C test suite,
//!   `test_traceparent_duplicated`). Surrounding spaces and tabs are ignored.
//! - `trace-flags` (§3.2.2.5): bit 0 is `sampled`; bit 1 is the `random`
//!   flag Level 2 adds ("Random Trace ID Flag"). The other bits are reserved:
//!   ignored when read, written as zero ("Other Flags").
//! - `tracestate` (Level 2, "Tracestate Header") is read only when
//!   `traceparent` was valid and won; an invalid `traceparent` means it is
//!   never parsed. Multiple fields are combined in order. Keys follow the
//!   Level 2 grammar (`@` anywhere after the first character, at most 256
//!   characters). A repeated key keeps its first entry; later ones are
//!   dropped and the rest of the list goes on ("Combined Header Value").
//!   A list that otherwise breaks the grammar or has more than 32 members is
//!   dropped while the `traceparent` is kept. The kept list is written
//!   without empty members or optional whitespace and shortened to at most
//!   512 characters by removing whole entries ("tracestate Limits").
//!
//! # B3 (openzipkin/b3-propagation README)
//!
//! - Single: `b3: {trace}-{span}[-{state}[-{parent}]]` with state `1`, `0` or
//!   `d` (debug), or the state alone (`b3: 0`).
//! - Multi: `X-B3-TraceId` (16 or 32 hex), `X-B3-SpanId`,
//!   `X-B3-ParentSpanId` (validated when present), `X-B3-Sampled` `1`/`0`
//!   (also `true`/`false`), `X-B3-Flags: 1` = debug. The first value of a
//!   repeated header wins, as the README says.
//! - Absent sampling state is [`Sampling::Deferred`]: this hop decides.
//!   64-bit trace ids are kept as 128-bit ids with a zero high half, so they
//!   are written left-padded in W3C and in their 16-digit form in B3.
//!
//! # Writing
//!
//! [`inject`] first removes every trace-context header of every format, then
//! writes the configured formats (or the one that came in) with the same ids.
//! Multi B3 also carries `X-B3-ParentSpanId` when the sidecar's span has a
//! parent: the README says it "must be present on a child span", and older
//! Zipkin instrumentation expects it. `baggage` is never touched.

mod b3;
mod tracestate;
mod w3c;

pub use tracestate::TraceState;

use crate::config::{Format, PropagationConfig};
use crate::span::{Sampling, SpanContext};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Which format a received request's context came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A valid `traceparent`.
    W3c,
    /// A valid single `b3` header (ids or a sampling state alone).
    B3Single,
    /// Valid `X-B3-*` headers (ids or a sampling state alone).
    B3Multi,
    /// No header of any configured format was present.
    None,
    /// Some configured format's headers were present, but none was valid.
    Invalid,
}

impl Seen {
    /// Low-cardinality metric label: `w3c`, `b3`, `none` or `invalid`.
    pub fn label(self) -> &'static str {
        match self {
            Seen::W3c => "w3c",
            Seen::B3Single | Seen::B3Multi => "b3",
            Seen::None => "none",
            Seen::Invalid => "invalid",
        }
    }

    /// The format to write when `inject` is not configured: the one that
    /// came in, W3C for new roots.
    fn reply_format(self) -> Format {
        match self {
            Seen::W3c | Seen::None | Seen::Invalid => Format::W3c,
            Seen::B3Single => Format::B3Single,
            Seen::B3Multi => Format::B3,
        }
    }
}

/// What the downstream sent, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// The caller's context when a configured format carried valid ids
    /// (the first valid one in `extract` order).
    pub parent: Option<SpanContext>,
    /// A sampling state sent without ids (`b3: 0`, `b3: d`, a lone
    /// `X-B3-Sampled` or `X-B3-Flags`); `Deferred` when none.
    pub sampling_only: Sampling,
    /// Validated tracestate; only ever `Some` when `parent` came from a
    /// valid W3C `traceparent`.
    pub trace_state: Option<TraceState>,
    /// Which format won, or why none did.
    pub seen: Seen,
}

/// What a format's headers carried when they were present and valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carried {
    Context(SpanContext),
    /// A sampling state without ids (B3 only).
    SamplingOnly(Sampling),
}

/// The outcome of reading one configured format.
enum Found {
    Absent,
    Invalid,
    Valid(Extracted),
}

/// Every header this module reads or writes, removed before writing.
pub(crate) static CONTEXT_HEADERS: [&HeaderName; 8] = [
    &w3c::TRACEPARENT,
    &w3c::TRACESTATE,
    &b3::B3,
    &b3::X_B3_TRACEID,
    &b3::X_B3_SPANID,
    &b3::X_B3_PARENTSPANID,
    &b3::X_B3_SAMPLED,
    &b3::X_B3_FLAGS,
];

/// Which of [`CONTEXT_HEADERS`] `headers` holds, one bit each, from one
/// pass over the names: most maps hold none or one, and a pass is cheaper
/// than a hashed lookup per name.
fn present(headers: &HeaderMap) -> u8 {
    headers
        .keys()
        .fold(0, |mask, name| mask | context_bit(name.as_str()))
}

/// The bit of [`CONTEXT_HEADERS`] for the (lowercase) field name `name`
/// (its position); 0 for another name.
pub fn context_bit(name: &str) -> u8 {
    match name {
        "traceparent" => 1,
        "tracestate" => 1 << 1,
        "b3" => 1 << 2,
        "x-b3-traceid" => 1 << 3,
        "x-b3-spanid" => 1 << 4,
        "x-b3-parentspanid" => 1 << 5,
        "x-b3-sampled" => 1 << 6,
        "x-b3-flags" => 1 << 7,
        _ => 0,
    }
}

/// Reads the downstream's trace context from `headers`, trying the formats
/// of `config.extract` in order (see the module docs for precedence).
pub fn extract(headers: &HeaderMap, config: &PropagationConfig) -> Extracted {
    extract_known(headers, present(headers), config)
}

/// [`extract`] for `headers` known to hold the context fields `present`
/// ([`context_bit`]'s bits).
pub fn extract_known(headers: &HeaderMap, present: u8, config: &PropagationConfig) -> Extracted {
    let mut seen = Seen::None;
    let formats: &[Format] = if present == 0 { &[] } else { &config.extract };
    for &format in formats {
        match read_format(headers, format) {
            Found::Valid(extracted) => return extracted,
            Found::Invalid => seen = Seen::Invalid,
            Found::Absent => {}
        }
    }
    Extracted {
        parent: None,
        sampling_only: Sampling::Deferred,
        trace_state: None,
        seen,
    }
}

/// Parses one W3C `traceparent` value found outside HTTP headers (a SQL
/// comment: sqlcommenter); `None` when invalid (Trace Context §3.2).
pub fn parse_traceparent(value: &[u8]) -> Option<SpanContext> {
    w3c::parse(value).ok()
}

/// Reads one format. `tracestate` is parsed only once `traceparent` is
/// known valid (W3C Trace Context Level 2, "Tracestate Header").
fn read_format(headers: &HeaderMap, format: Format) -> Found {
    match format {
        Format::W3c => match w3c::extract(headers) {
            Ok(Some(parent)) => Found::Valid(Extracted {
                parent: Some(parent),
                sampling_only: Sampling::Deferred,
                // An invalid list is dropped; the traceparent stands
                // (Level 2, "Tracestate Header").
                trace_state: tracestate::extract(headers).ok().flatten(),
                seen: Seen::W3c,
            }),
            Ok(None) => Found::Absent,
            Err(_) => Found::Invalid,
        },
        Format::B3Single => from_b3(b3::extract_single(headers), Seen::B3Single),
        Format::B3 => match from_b3(b3::extract_single(headers), Seen::B3Single) {
            Found::Valid(extracted) => Found::Valid(extracted),
            single => match from_b3(b3::extract_multi(headers), Seen::B3Multi) {
                Found::Absent => single,
                multi => multi,
            },
        },
    }
}

fn from_b3<E>(result: Result<Option<Carried>, E>, seen: Seen) -> Found {
    let (parent, sampling_only) = match result {
        Ok(Some(Carried::Context(context))) => (Some(context), Sampling::Deferred),
        Ok(Some(Carried::SamplingOnly(sampling))) => (None, sampling),
        Ok(None) => return Found::Absent,
        Err(_) => return Found::Invalid,
    };
    Found::Valid(Extracted {
        parent,
        sampling_only,
        trace_state: None,
        seen,
    })
}

/// Removes every trace-context header of every format (`traceparent`,
/// `tracestate`, `b3`, `x-b3-*`), then writes `context` (whose `span_id` is
/// the sidecar's own span, the upstream's parent) in the configured inject
/// formats, or in the format that came in (`incoming.seen`) when
/// `config.inject` is empty (W3C when it is `None`/`Invalid`).
/// `incoming.trace_state` is written only alongside `traceparent`; the
/// downstream's span (`incoming.parent`), the parent of the sidecar's span,
/// goes out as `X-B3-ParentSpanId` with multi B3. `baggage` is never
/// touched. B3 trace ids that are 64-bit (high half zero) are written in
/// their 16-digit form.
pub fn inject(
    headers: &mut HeaderMap,
    context: &SpanContext,
    incoming: &Extracted,
    config: &PropagationConfig,
) {
    let present = present(headers);
    let mut out = Outgoing::new(headers, None);
    inject_to(&mut out, present, context, incoming, config);
}

/// [`inject`], with the new fields going to `out` (see [`Outgoing`]);
/// `present`: the context fields the map holds ([`context_bit`]'s bits).
pub fn inject_to(
    out: &mut Outgoing<'_>,
    present: u8,
    context: &SpanContext,
    incoming: &Extracted,
    config: &PropagationConfig,
) {
    for (i, name) in CONTEXT_HEADERS.iter().enumerate() {
        if present & (1 << i) != 0 {
            out.headers.remove(*name);
        }
    }
    let reply = [incoming.seen.reply_format()];
    let formats: &[Format] = if config.inject.is_empty() {
        &reply
    } else {
        &config.inject
    };
    for format in formats {
        match format {
            Format::W3c => w3c::inject(out, context),
            Format::B3 => b3::inject_multi(out, context, incoming.parent.map(|p| p.span_id)),
            Format::B3Single => b3::inject_single(out, context),
        }
    }
    // `tracestate` is a companion of `traceparent` (Level 2, "Tracestate
    // Header"): only with W3C.
    if let Some(state) = &incoming.trace_state
        && formats.contains(&Format::W3c)
    {
        out.set(&w3c::TRACESTATE, state.header_value().clone());
    }
}

/// Header fields a request gains on its way upstream.
pub type Added = Vec<(&'static HeaderName, HeaderValue)>;

/// Where new header fields go: into the request's own map, or, when the
/// request is written to the wire by tracehop itself, into a list written
/// after the map's fields. The list saves growing the map (hyper sizes it
/// for the fields it parsed) and hashing each name. A field set here must
/// be absent from the map (removed first, or never there).
pub struct Outgoing<'a> {
    pub headers: &'a mut HeaderMap,
    added: Option<&'a mut Added>,
}

impl<'a> Outgoing<'a> {
    pub fn new(headers: &'a mut HeaderMap, added: Option<&'a mut Added>) -> Self {
        Self { headers, added }
    }

    /// Sets `name` (absent from the map) to `value`.
    pub fn set(&mut self, name: &'static HeaderName, value: HeaderValue) {
        match &mut self.added {
            // The name is a static: no reference count to keep.
            Some(added) => added.push((name, value)),
            None => {
                self.headers.insert(name, value);
            }
        }
    }
}

/// Strips optional whitespace (RFC 7230 §3.2.3 `OWS`: spaces and tabs).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A header value built from a stack buffer of hex digits and dashes.
fn wire_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).expect("hex digits and dashes are valid header value bytes")
}

#[cfg(test)]
mod tests;
