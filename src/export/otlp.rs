//! OTLP/HTTP protobuf encoding of finished spans: one
//! `ExportTraceServiceRequest` per batch ([`crate::otlp`], encoded by prost).
//!
//! The mapping, from the OpenTelemetry specification (OTLP, trace API) and
//! its HTTP and RPC semantic conventions:
//! - resource: `service.name` (the span's local service), `service.instance.id`
//!   of this process, and the pod metadata and `service.tags`
//!   (`resource_tags`); consecutive spans of one service share a
//!   `ResourceSpans`. Instrumentation scope: `tracehop` and the crate version.
//! - ids as bytes (16 and 8, big-endian; a 64-bit B3 trace id left-padded),
//!   start and end in Unix nanoseconds, kind SERVER or CLIENT.
//! - name: `{METHOD} {route}` as the HTTP conventions write it (Zipkin's
//!   lowercase is Zipkin's), `{service}/{method}` for gRPC.
//! - attributes: every tag of [`super::tags`] with its OpenTelemetry name,
//!   numbers as ints; the remote endpoint as `peer.service` (an outbound
//!   route's name) and `network.peer.address`/`network.peer.port`.
//! - status: ERROR when the span failed ([`tags::failure`]), with the error
//!   message when there is one; a status code says enough by itself, so the
//!   description stays empty then and `error.type` carries the code, as the
//!   HTTP conventions ask. Otherwise UNSET: instrumentation leaves OK to
//!   the application.
//!
//! This runs in the batcher, off the request path.

use std::sync::Arc;

use prost::Message;

use super::tags::{self, Failure, Key, Name, TagSink};
use super::zipkin_json::EncodeOptions;
use crate::otlp::{
    ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans,
    SpanKind, Status, StatusCode, Value,
};
use crate::span::{Kind, Span, ip_text};

/// The instrumentation scope of every span.
const SCOPE: &str = "tracehop";

/// The batch being filled: one `ResourceSpans` per run of spans of one service.
pub struct OtlpBatch {
    /// Resource attributes besides `service.name`.
    resource: Vec<KeyValue>,
    request: ExportTraceServiceRequest,
    /// The service of the last `ResourceSpans` in `request`.
    service: Option<Arc<str>>,
    spans: usize,
    /// Scratch space for derived route templates.
    route: String,
}

impl OtlpBatch {
    pub fn new(options: &EncodeOptions) -> Self {
        let instance = options
            .service_instance_id
            .iter()
            .map(|id| KeyValue::string("service.instance.id", id.as_str()));
        let tags = options
            .resource_tags
            .iter()
            .map(|(key, value)| KeyValue::string(key.as_str(), value.as_str()));
        Self {
            resource: instance.chain(tags).collect(),
            request: ExportTraceServiceRequest::default(),
            service: None,
            spans: 0,
            route: String::new(),
        }
    }

    /// Spans in the batch.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Adds `span` to the batch.
    pub fn add(&mut self, span: &Span) {
        let encoded = encode_span(span, &mut self.route);
        if self.service.as_ref() != Some(&span.local_service) {
            self.request
                .resource_spans
                .push(self.resource_spans(&span.local_service));
            self.service = Some(span.local_service.clone());
        }
        if let Some(scope) = self
            .request
            .resource_spans
            .last_mut()
            .and_then(|resource| resource.scope_spans.last_mut())
        {
            scope.spans.push(encoded);
            self.spans += 1;
        }
    }

    /// The encoded request and its span count; the batch starts empty again.
    pub fn take(&mut self) -> (Vec<u8>, usize) {
        let request = std::mem::take(&mut self.request);
        self.service = None;
        (request.encode_to_vec(), std::mem::take(&mut self.spans))
    }

    /// An empty `ResourceSpans` of `service` with this process's scope.
    fn resource_spans(&self, service: &str) -> ResourceSpans {
        let mut attributes = Vec::with_capacity(self.resource.len() + 1);
        attributes.push(KeyValue::string("service.name", service));
        attributes.extend(self.resource.iter().cloned());
        ResourceSpans {
            resource: Some(Resource {
                attributes,
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                spans: Vec::new(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }
}

/// The OTLP span of `span`; `scratch` holds a derived route template.
pub fn encode_span(span: &Span, scratch: &mut String) -> crate::otlp::Span {
    const NANOS_PER_MICRO: u64 = 1_000;
    let route = tags::route_of(span, scratch);
    let name = match tags::name(span, route) {
        Name::Rpc { service, method } => format!("{service}/{method}"),
        Name::Http {
            method,
            target: Some(target),
        } => format!("{method} {target}"),
        Name::Http {
            method,
            target: None,
        } => method.to_string(),
    };
    let mut ip_buf = [0; 45];
    let ip = span
        .remote
        .addr
        .map(|addr| ip_text(addr.ip(), &mut ip_buf))
        .and_then(|ip| std::str::from_utf8(ip).ok());
    let mut attributes = Attributes(Vec::with_capacity(16));
    tags::write_tags(span, route, ip, &mut attributes);
    let mut attributes = attributes.0;
    remote_attributes(span, ip, &mut attributes);
    let failure = tags::failure(span);
    if let Some(failure) = failure {
        attributes.push(KeyValue::string("error.type", error_type(failure)));
    }
    let start = span.timestamp_us.saturating_mul(NANOS_PER_MICRO);
    let duration = span.duration_us.max(1).saturating_mul(NANOS_PER_MICRO);
    crate::otlp::Span {
        trace_id: span.trace_id.to_bytes().to_vec(),
        span_id: span.id.to_bytes().to_vec(),
        parent_span_id: span
            .parent_id
            .map(|id| id.to_bytes().to_vec())
            .unwrap_or_default(),
        name,
        kind: match span.kind {
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
        } as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(duration),
        attributes,
        status: failure.map(status),
        links: span.links.iter().map(link).collect(),
        ..crate::otlp::Span::default()
    }
}

/// A link to `context` (OTLP `Span.Link`): the candidate parents of an
/// ambiguous outbound call ([`crate::inference`]). `flags` carries the
/// W3C sampled bit, and bit 8 set with bit 9 clear: the linked span is
/// known not to be remote (OTLP trace.proto, `SpanFlags`); it is a SERVER
/// span of the same sidecar.
fn link(context: &crate::span::SpanContext) -> crate::otlp::Link {
    const HAS_IS_REMOTE: u32 = 0x100;
    let sampled = u32::from(context.sampling.is_sampled());
    crate::otlp::Link {
        trace_id: context.trace_id.to_bytes().to_vec(),
        span_id: context.span_id.to_bytes().to_vec(),
        flags: HAS_IS_REMOTE | sampled,
        ..crate::otlp::Link::default()
    }
}

/// The remote endpoint: `peer.service` (the remote service's name, an
/// outbound route's) and the peer's socket address.
fn remote_attributes(span: &Span, ip: Option<&str>, attributes: &mut Vec<KeyValue>) {
    if let Some(service) = &span.remote.service_name {
        attributes.push(KeyValue::string("peer.service", &**service));
    }
    // `ip` is the address in canonical text (IPv4-mapped IPv6 as IPv4).
    if let (Some(addr), Some(ip)) = (span.remote.addr, ip) {
        attributes.push(KeyValue::string("network.peer.address", ip));
        if addr.port() != 0 {
            attributes.push(KeyValue::new(
                "network.peer.port",
                Value::IntValue(i64::from(addr.port())),
            ));
        }
    }
}

/// `error.type` (OpenTelemetry's error attribute): the status code as text
/// when there is one, else `_OTHER`, the conventions' value for a failure
/// without a low-cardinality name.
fn error_type(failure: Failure<'_>) -> String {
    match failure {
        Failure::Message(_) => "_OTHER".to_owned(),
        Failure::Status(status) => status.to_string(),
        Failure::Grpc(code) => code.to_string(),
    }
}

/// The ERROR status of a failed span; only a message is a description.
fn status(failure: Failure<'_>) -> Status {
    Status {
        message: match failure {
            Failure::Message(message) => message.to_owned(),
            Failure::Status(_) | Failure::Grpc(_) => String::new(),
        },
        code: StatusCode::Error as i32,
    }
}

/// Collects attributes as `KeyValue`s.
struct Attributes(Vec<KeyValue>);

impl TagSink for Attributes {
    fn text(&mut self, key: Key, value: &str) {
        self.0.push(KeyValue::string(key.name, value));
    }

    fn plain(&mut self, key: Key, value: &str) {
        self.0.push(KeyValue::string(key.name, value));
    }

    fn bytes(&mut self, key: Key, value: &[u8]) {
        self.0
            .push(KeyValue::string(key.name, String::from_utf8_lossy(value)));
    }

    fn number(&mut self, key: Key, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.0.push(KeyValue::new(key.name, Value::IntValue(value)));
    }

    fn any(&mut self, key: &str, value: &str) {
        self.0.push(KeyValue::string(key, value));
    }
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
