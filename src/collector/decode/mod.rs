//! Decoding of span uploads into the span model.
//!
//! `POST /api/v2/spans` takes two wire forms, as Zipkin's own collector takes
//! them: a JSON list of spans (`json`, Zipkin v2 API `ListOfSpans`) and the
//! proto3 `ListOfSpans` message (`proto`, `proto/zipkin.proto`,
//! `Content-Type: application/x-protobuf`). `POST /v1/traces` takes OTLP's
//! `ExportTraceServiceRequest` (`otlp`, binary or JSON via `otlp_json`).
//! Each maps its wire types and checks their shape; every rule about values
//! is here, in [`normalize`], so every form stores the same span for the
//! same data. A span whose ids cannot be read cannot be stored faithfully: it
//! rejects the whole batch with an error naming the span's index and field.
//!
//! Normalisation follows Zipkin's `Span.Builder` and `Endpoint.Builder`: a
//! 32-digit trace id whose high half is zero is the 16-digit one (the
//! [`crate::span::TraceId`] value is the same), `parentId == id` is dropped,
//! `shared` is never kept on a CLIENT span, service and span names are
//! lowercased with empty meaning absent, IPv4-mapped IPv6 addresses are IPv4,
//! port 0 is absent, an endpoint with nothing set is absent, and annotations
//! are sorted and unique.
//!
//! Bad values, not bad batches: a `timestamp`, `duration` or annotation
//! timestamp that is not usable is left out of the span (an annotation is left
//! out whole: it is a point in time) and the rest of the batch is stored, as
//! Zipkin does. The rule is [`usable_micros`]: a whole number from 1 to
//! [`MAX_MICROS`]. Zipkin's `Span.Builder` turns negative values into 0 and
//! treats 0 as absent; fractions mean nothing in whole microseconds; a value
//! past `MAX_MICROS` is a unit mistake (epoch nanoseconds) or garbage.

mod json;
pub mod otlp;
mod otlp_json;
pub mod proto;

#[cfg(test)]
pub use json::decode_span;
pub use json::parse_trace_id;

use crate::collector::model::{Endpoint, Kind, Span};

/// The largest timestamp or duration kept, in microseconds: 2^53 - 1, the
/// largest integer a JavaScript reader (this collector's viewer, Zipkin's UI,
/// most tracers' SDKs) holds exactly. As an epoch timestamp it is in the year
/// 2255; as a duration, 285 years.
pub const MAX_MICROS: u64 = (1 << 53) - 1;

/// A timestamp or duration as stored: `None` for 0 (Zipkin: unset) and for
/// anything past [`MAX_MICROS`].
pub fn usable_micros(value: u64) -> Option<u64> {
    (1..=MAX_MICROS).contains(&value).then_some(value)
}

/// The wire form of an upload, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, and any type that is not one of the others (curl's
    /// default form type, none at all), as before proto3 was accepted.
    Json,
    /// `application/x-protobuf` (or `application/protobuf`): proto3 `ListOfSpans`.
    Proto,
}

impl Format {
    /// The format a `Content-Type` names; Thrift (Zipkin v1) is refused.
    pub fn of(content_type: Option<&str>) -> Result<Self, IngestError> {
        let Some(text) = content_type else {
            return Ok(Format::Json);
        };
        let essence = text.split(';').next().unwrap_or("").trim();
        let is = |name: &str| essence.eq_ignore_ascii_case(name);
        if is("application/x-protobuf") || is("application/protobuf") {
            Ok(Format::Proto)
        } else if essence.to_ascii_lowercase().contains("thrift") {
            Err(IngestError::UnsupportedMediaType(text.to_owned()))
        } else {
            Ok(Format::Json)
        }
    }
}

/// Decodes and validates a whole upload; a span with unreadable ids, or a
/// body that is not a list of spans, fails the batch.
pub fn decode(format: Format, body: &[u8]) -> Result<Vec<Span>, IngestError> {
    match format {
        Format::Json => json::decode_spans(body),
        Format::Proto => proto::decode_spans(body),
    }
}

/// Why a span upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not JSON at all.
    #[error("body is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The body is JSON but not a list.
    #[error("body must be a JSON list of spans (Zipkin v2 ListOfSpans)")]
    NotAList,
    /// The body is not a proto3 `ListOfSpans` message.
    #[error("body is not a protobuf ListOfSpans (zipkin.proto3): {0}")]
    Proto(#[source] prost::DecodeError),
    /// The body is not a protobuf OTLP `ExportTraceServiceRequest`.
    #[error("body is not a protobuf ExportTraceServiceRequest (OTLP): {0}")]
    Otlp(#[source] prost::DecodeError),
    /// The body is JSON but a field of the OTLP request has the wrong type.
    #[error("{field}: expected {expected} (OTLP JSON)")]
    OtlpJson {
        /// Path of the field in the request.
        field: String,
        /// What the OTLP JSON encoding puts there.
        expected: String,
    },
    /// One span of the batch breaks the spec.
    #[error("span {index}: {field}: {reason}")]
    InvalidSpan {
        /// Position of the span in the uploaded list, from 0.
        index: usize,
        /// Path of the offending field inside the span.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body (or its decompressed form) is larger than the collector accepts.
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// `Content-Encoding: gzip` but the body does not decompress.
    #[error("gzip body could not be decompressed: {0}")]
    Gzip(#[source] std::io::Error),
    /// A content encoding other than gzip or identity.
    #[error("unsupported Content-Encoding {0:?}; use gzip or none")]
    UnsupportedEncoding(String),
    /// A media type the collector cannot read (for example Thrift).
    #[error("unsupported Content-Type {0:?}; use application/json or application/x-protobuf")]
    UnsupportedMediaType(String),
    /// Reading the request body failed.
    #[error("reading the request body failed: {0}")]
    Body(String),
}

/// A problem with one field of one span, before the span's index is known.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldError {
    field: String,
    reason: String,
}

impl FieldError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Prefixes the field path with its parent object (`localEndpoint.port`).
    fn under(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }

    fn at(self, index: usize) -> IngestError {
        IngestError::InvalidSpan {
            index,
            field: self.field,
            reason: self.reason,
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Applies every value rule (see the module docs) to a span as decoded.
fn normalize(mut span: Span) -> Span {
    // Zipkin Span.Builder.build undoes a circular reference.
    if span.parent_id == Some(span.id) {
        span.parent_id = None;
    }
    // Span.Builder.build: shared is for the server side only.
    span.shared &= span.kind != Some(Kind::Client);
    span.name = name(span.name);
    span.timestamp = span.timestamp.and_then(usable_micros);
    span.duration = span.duration.and_then(usable_micros);
    span.local_endpoint = span.local_endpoint.and_then(endpoint);
    span.remote_endpoint = span.remote_endpoint.and_then(endpoint);
    span.annotations
        .retain(|annotation| usable_micros(annotation.timestamp).is_some());
    // The spec marks annotations `uniqueItems`; Zipkin keeps them sorted.
    span.annotations.sort();
    span.annotations.dedup();
    span
}

/// Lowercased; empty means absent (Zipkin `Span.Builder.name`).
fn name(name: Option<String>) -> Option<String> {
    name.filter(|name| !name.is_empty())
        .map(|name| name.to_lowercase())
}

fn endpoint(mut endpoint: Endpoint) -> Option<Endpoint> {
    endpoint.service_name = name(endpoint.service_name);
    // Endpoint.Builder.parseIp stores IPv4-mapped IPv6 addresses as IPv4.
    if let Some(v4) = endpoint.ipv6.and_then(|ip| ip.to_ipv4_mapped()) {
        endpoint.ipv4.get_or_insert(v4);
        endpoint.ipv6 = None;
    }
    endpoint.port = endpoint.port.filter(|&port| port != 0);
    (!endpoint.is_empty()).then_some(endpoint)
}
