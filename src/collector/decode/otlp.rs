//! OTLP trace ingest (`POST /v1/traces`): an `ExportTraceServiceRequest`
//! ([`crate::otlp`]) in binary protobuf (decoded by prost) or in OTLP's JSON
//! form ([`super::otlp_json`]), turned into the span model.
//!
//! The mapping follows OpenTelemetry's "OpenTelemetry to Zipkin
//! Transformation" (`specification/trace/sdk_exporters/zipkin.md`) and
//! "Transformation to non-OTLP Formats" (`specification/common/mapping-to-non-otlp.md`):
//! - `localEndpoint.serviceName` is the resource's `service.name`
//!   (`unknown_service`, the SDK default, when it has none); the other
//!   resource attributes, the instrumentation scope (`otel.scope.name`,
//!   `otel.scope.version` and their `otel.library.*` aliases) and the
//!   span's attributes become tags, the span's winning a clash;
//! - kind SERVER, CLIENT, PRODUCER and CONSUMER keep their name; INTERNAL
//!   and unspecified have none in Zipkin;
//! - start and end (Unix nanoseconds) become `timestamp` and `duration` in
//!   whole microseconds (a span shorter than one lasts one);
//! - status OK is the tag `otel.status_code: OK`; ERROR is
//!   `otel.status_code: ERROR` and the `error` tag holding the description
//!   (empty when there is none), which is how Zipkin marks a failed span;
//!   an `error: false` attribute of a span that did not fail is dropped;
//! - events become annotations: the event's name, or
//!   `{"name":{attributes}}` when it has attributes;
//! - the remote endpoint comes from `peer.service` (or, for CLIENT and
//!   PRODUCER spans, `server.address`) and `network.peer.address` and
//!   `network.peer.port`;
//! - dropped counts are the tags `otel.dropped_*_count` when not zero;
//!   links and `trace_state` have no Zipkin form and are left out.
//!
//! Every value rule is then [`super::normalize`]'s, as for Zipkin uploads.
//! A span whose ids are not OTLP ids (16 and 8 bytes, not all zeros; a
//! parent id empty or 8 bytes) is rejected alone: the rest of the request
//! is stored and the answer is a partial success naming the first problem.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use prost::Message;
use serde_json::{Map, Value as Json};

use super::{FieldError, IngestError, normalize, otlp_json};
use crate::collector::model;
use crate::otlp::{
    AnyValue, Event, ExportTraceServiceRequest, KeyValue, Span, SpanKind, StatusCode, Value,
};
use crate::span::{SpanId, TraceId};

/// `service.name` of a resource without one (OpenTelemetry's SDK default).
const UNKNOWN_SERVICE: &str = "unknown_service";

/// The two OTLP/HTTP encodings (OTLP specification, "OTLP/HTTP").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names; anything else is refused (415).
    pub fn of(content_type: Option<&str>) -> Result<Self, IngestError> {
        let text = content_type.unwrap_or("");
        let essence = text.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Ok(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Ok(Encoding::Json)
        } else {
            Err(IngestError::UnsupportedMediaType(text.to_owned()))
        }
    }

    /// The media type of a response in this encoding: the request's own.
    pub fn media_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// What an OTLP request held.
#[derive(Debug, Default, PartialEq)]
pub struct Converted {
    /// The spans to store, normalised.
    pub spans: Vec<model::Span>,
    /// Spans left out for unreadable ids.
    pub rejected: usize,
    /// Why the first of them was, with its position in the request.
    pub first_problem: Option<String>,
}

/// Decodes a request body; only a body that is not an
/// `ExportTraceServiceRequest` at all is an error.
pub fn decode(encoding: Encoding, body: &[u8]) -> Result<Converted, IngestError> {
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body).map_err(IngestError::Otlp)?,
        Encoding::Json => otlp_json::decode(body)?,
    };
    Ok(convert(request))
}

/// Converts every span of `request`; see the module docs.
pub fn convert(request: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    for (r, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let resource = resource_spans.resource.unwrap_or_default();
        let mut service = None;
        let mut resource_tags = BTreeMap::new();
        for attribute in resource.attributes {
            match (attribute.key.as_str(), &attribute.value) {
                (
                    "service.name",
                    Some(AnyValue {
                        value: Some(Value::StringValue(name)),
                    }),
                ) => {
                    service = Some(name.clone());
                }
                _ => add_tag(&mut resource_tags, attribute),
            }
        }
        dropped_tag(
            &mut resource_tags,
            "otel.dropped_attributes_count",
            resource.dropped_attributes_count,
        );
        let service = service.unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
        for (s, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
            let mut base = resource_tags.clone();
            if let Some(scope) = scope_spans.scope {
                scope_tags(&mut base, scope);
            }
            for (i, span) in scope_spans.spans.into_iter().enumerate() {
                match to_model(span, &service, &base) {
                    Ok(span) => out.spans.push(span),
                    Err(error) => {
                        out.rejected += 1;
                        out.first_problem.get_or_insert_with(|| {
                            format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {error}")
                        });
                    }
                }
            }
        }
    }
    out
}

/// The instrumentation scope as tags (mapping-to-non-otlp, "InstrumentationScope").
fn scope_tags(tags: &mut BTreeMap<String, String>, scope: crate::otlp::InstrumentationScope) {
    for attribute in scope.attributes {
        add_tag(tags, attribute);
    }
    for (keys, value) in [
        (["otel.scope.name", "otel.library.name"], scope.name),
        (
            ["otel.scope.version", "otel.library.version"],
            scope.version,
        ),
    ] {
        if !value.is_empty() {
            for key in keys {
                tags.insert(key.to_owned(), value.clone());
            }
        }
    }
}

fn to_model(
    span: Span,
    service: &str,
    base: &BTreeMap<String, String>,
) -> Result<model::Span, FieldError> {
    let trace_id = TraceId::from_bytes(&span.trace_id, false)
        .ok_or_else(|| id_problem("traceId", &span.trace_id, 16))?;
    let id =
        SpanId::from_bytes(&span.span_id).ok_or_else(|| id_problem("spanId", &span.span_id, 8))?;
    let parent_id = match span.parent_span_id.len() {
        0 => None,
        // All zeros means root, as in Zipkin.
        8 => SpanId::from_bytes(&span.parent_span_id),
        n => {
            let reason = format!("expected 0 or 8 bytes, got {n}");
            return Err(FieldError::new("parentSpanId", reason));
        }
    };
    let kind = SpanKind::try_from(span.kind).ok();
    let mut tags = base.clone();
    let mut remote = model::Endpoint::default();
    for attribute in span.attributes {
        remote_part(&mut remote, kind, &attribute);
        add_tag(&mut tags, attribute);
    }
    dropped_tag(
        &mut tags,
        "otel.dropped_attributes_count",
        span.dropped_attributes_count,
    );
    dropped_tag(
        &mut tags,
        "otel.dropped_events_count",
        span.dropped_events_count,
    );
    dropped_tag(
        &mut tags,
        "otel.dropped_links_count",
        span.dropped_links_count,
    );
    status_tags(&mut tags, span.status);
    let start = span.start_time_unix_nano;
    Ok(normalize(model::Span {
        trace_id,
        parent_id,
        id,
        kind: kind.and_then(zipkin_kind),
        name: Some(span.name),
        timestamp: (start > 0).then_some(start / 1_000),
        duration: duration_micros(start, span.end_time_unix_nano),
        local_endpoint: Some(model::Endpoint {
            service_name: Some(service.to_owned()),
            ..model::Endpoint::default()
        }),
        remote_endpoint: Some(remote),
        annotations: span.events.into_iter().map(annotation).collect(),
        tags,
        debug: false,
        shared: false,
    }))
}

fn id_problem(field: &str, bytes: &[u8], length: usize) -> FieldError {
    let reason = if bytes.len() == length {
        "must not be all zeros".to_owned()
    } else {
        format!("expected {length} bytes, got {}", bytes.len())
    };
    FieldError::new(field, reason)
}

/// Zipkin's kind of an OTLP kind; INTERNAL and unspecified have none.
fn zipkin_kind(kind: SpanKind) -> Option<model::Kind> {
    match kind {
        SpanKind::Server => Some(model::Kind::Server),
        SpanKind::Client => Some(model::Kind::Client),
        SpanKind::Producer => Some(model::Kind::Producer),
        SpanKind::Consumer => Some(model::Kind::Consumer),
        SpanKind::Internal | SpanKind::Unspecified => None,
    }
}

/// Whole microseconds from `start` to `end`, at least one; `None` when
/// either is unset or the span ends before it starts.
fn duration_micros(start: u64, end: u64) -> Option<u64> {
    (start > 0 && end >= start).then(|| ((end - start) / 1_000).max(1))
}

/// Fills the remote endpoint from the attribute, when it names a part of it.
fn remote_part(remote: &mut model::Endpoint, kind: Option<SpanKind>, attribute: &KeyValue) {
    let value = attribute.value.as_ref().and_then(|v| v.value.as_ref());
    match (attribute.key.as_str(), value) {
        ("peer.service", Some(Value::StringValue(name))) => {
            remote.service_name = Some(name.clone())
        }
        // Second in the specification's ranking, for outgoing spans only.
        ("server.address", Some(Value::StringValue(name)))
            if matches!(kind, Some(SpanKind::Client | SpanKind::Producer))
                && remote.service_name.is_none() =>
        {
            remote.service_name = Some(name.clone());
        }
        ("network.peer.address", Some(Value::StringValue(text))) => match text.parse() {
            Ok(IpAddr::V4(ip)) => remote.ipv4 = Some(ip),
            Ok(IpAddr::V6(ip)) => remote.ipv6 = Some(ip),
            Err(_) => {}
        },
        ("network.peer.port", Some(Value::IntValue(port))) => {
            remote.port = u16::try_from(*port).ok();
        }
        _ => {}
    }
}

/// `otel.status_code` and, for ERROR, the `error` tag (Zipkin exporter
/// specification, "Status"); `error: false` goes when the span did not fail.
fn status_tags(tags: &mut BTreeMap<String, String>, status: Option<crate::otlp::Status>) {
    let status = status.unwrap_or_default();
    match StatusCode::try_from(status.code) {
        Ok(StatusCode::Error) => {
            tags.insert("otel.status_code".into(), "ERROR".into());
            tags.insert("error".into(), status.message);
        }
        Ok(StatusCode::Ok) => {
            tags.insert("otel.status_code".into(), "OK".into());
        }
        _ => {}
    }
    if tags.get("error").is_some_and(|value| value == "false") {
        tags.remove("error");
    }
}

fn dropped_tag(tags: &mut BTreeMap<String, String>, key: &str, count: u32) {
    if count > 0 {
        tags.insert(key.to_owned(), count.to_string());
    }
}

/// An event as an annotation: its name, with its attributes as a JSON
/// object when it has some (Zipkin exporter specification, "Events").
fn annotation(event: Event) -> model::Annotation {
    let value = if event.attributes.is_empty() {
        event.name
    } else {
        let attributes = Json::Object(json_object(&event.attributes));
        let mut object = Map::new();
        object.insert(event.name, attributes);
        Json::Object(object).to_string()
    };
    model::Annotation {
        timestamp: event.time_unix_nano / 1_000,
        value,
    }
}

fn add_tag(tags: &mut BTreeMap<String, String>, attribute: KeyValue) {
    let text = attribute.value.as_ref().map(tag_text).unwrap_or_default();
    tags.insert(attribute.key, text);
}

/// An attribute value as a Zipkin tag (Zipkin exporter specification,
/// "Attribute"): strings as they are, booleans `true`/`false`, numbers in
/// decimal, arrays and maps as JSON, bytes in base64; empty is "".
fn tag_text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(text)) => text.clone(),
        None => String::new(),
        Some(_) => match json(value) {
            Json::String(text) => text,
            other => other.to_string(),
        },
    }
}

/// An attribute value as JSON.
fn json(value: &AnyValue) -> Json {
    match &value.value {
        None => Json::Null,
        Some(Value::StringValue(text)) => Json::String(text.clone()),
        Some(Value::BoolValue(flag)) => Json::Bool(*flag),
        Some(Value::IntValue(number)) => Json::from(*number),
        Some(Value::DoubleValue(number)) => serde_json::Number::from_f64(*number).map_or_else(
            || Json::String(non_finite(*number).to_owned()),
            Json::Number,
        ),
        Some(Value::ArrayValue(array)) => Json::Array(array.values.iter().map(json).collect()),
        Some(Value::KvlistValue(list)) => Json::Object(json_object(&list.values)),
        Some(Value::BytesValue(bytes)) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

fn json_object(values: &[KeyValue]) -> Map<String, Json> {
    values
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, json)))
        .collect()
}

/// The text of a number JSON cannot hold (proto3's JSON mapping).
fn non_finite(number: f64) -> &'static str {
    if number.is_nan() {
        "NaN"
    } else if number > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
