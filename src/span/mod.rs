//! Trace data: ids, the context that crosses the wire, and the finished span record.
//!
//! Owns [`TraceId`], [`SpanId`], [`SpanContext`] (what propagation reads and
//! writes), [`Span`] (what the proxy hands to the exporter), the clocks and
//! the gRPC rules ([`grpc`]).
//! A [`Span`] keeps typed HTTP facts rather than preformatted tags: turning
//! them into Zipkin names and tag strings is the exporter's job, off the
//! request path.

mod clock;
mod db;
pub mod grpc;
mod id;
mod ip;

pub use clock::{SpanTimer, now_micros};
pub use db::DbFacts;
pub use grpc::GrpcCall;
pub use id::{SpanId, TraceId, instance_id, parse_hex_u64, parse_hex_u128};
pub use ip::{IpBuf, canonical_ip, ip_text, ip_value};

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

/// The sampling state carried by a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// No decision yet (B3 ids without a sampling state): this hop decides.
    Deferred,
    Sampled,
    NotSampled,
    /// B3 debug (`X-B3-Flags: 1`, `b3: …-d`): sampled, and exported with `debug: true`.
    Debug,
}

impl Sampling {
    pub fn is_sampled(self) -> bool {
        matches!(self, Sampling::Sampled | Sampling::Debug)
    }
}

/// The part of a span that crosses process boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    /// The id of the span that sent (or will send) this context.
    pub span_id: SpanId,
    pub sampling: Sampling,
    /// W3C Trace Context Level 2 `random` flag: the trace id's low 56 bits are random.
    pub random: bool,
}

/// Zipkin span kind (Zipkin v2 API, `Span.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The sidecar received the request (inbound).
    Server,
    /// The sidecar sent the request on behalf of its app (outbound).
    Client,
}

/// Where the request came from (SERVER) or went to (CLIENT).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub service_name: Option<Arc<str>>,
    pub addr: Option<SocketAddr>,
}

/// One tag with a name that is not among [`HttpFacts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub key: Cow<'static, str>,
    pub value: Cow<'static, str>,
}

/// Facts about one HTTP exchange, recorded as cheaply as possible on the
/// request path and rendered into OpenTelemetry semantic-convention tags at
/// export time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpFacts {
    pub method: http::Method,
    /// The request target's path and query, as received (the query is
    /// dropped or redacted at export time).
    pub target: Option<http::uri::PathAndQuery>,
    /// The matched configured route template, if any; otherwise the
    /// exporter derives one from the path.
    pub route: Option<Arc<str>>,
    pub scheme: &'static str,
    /// `Host` / `:authority` as received.
    pub host: Option<http::HeaderValue>,
    pub version: http::Version,
    pub user_agent: Option<http::HeaderValue>,
    /// Response status; `None` when no response came back.
    pub status: Option<u16>,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// The gRPC call's facts; `None` when the request is not gRPC
    /// ([`grpc::is_grpc`]).
    pub grpc: Option<GrpcCall>,
}

impl HttpFacts {
    /// The gRPC status that fails a span of `kind`, if any
    /// ([`GrpcCall::error_status`]).
    pub fn grpc_error(&self, kind: Kind) -> Option<u32> {
        self.grpc.and_then(|call| call.error_status(kind))
    }

    /// Moves the facts into storage of their own. Values parsed from a
    /// request share the connection's read buffer; a span waiting in the
    /// export queue would keep that whole buffer alive and make the
    /// connection allocate a new one for its next request.
    pub fn detach(&mut self) {
        let text = |v: Option<&[u8]>| v.unwrap_or_default().len();
        let target = self.target.as_ref().map(|t| t.as_str().as_bytes());
        let host = self.host.as_ref().map(http::HeaderValue::as_bytes);
        let agent = self.user_agent.as_ref().map(http::HeaderValue::as_bytes);
        // One buffer for the three.
        let mut copy = bytes::BytesMut::with_capacity(text(target) + text(host) + text(agent));
        for part in [target, host, agent] {
            copy.extend_from_slice(part.unwrap_or_default());
        }
        let mut copy = copy.freeze();
        let target = copy.split_to(text(target));
        let host = copy.split_to(text(host));
        let value = |v: &http::HeaderValue, bytes: bytes::Bytes| {
            http::HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| v.clone())
        };
        if let Some(old) = &mut self.target
            && let Ok(new) = http::uri::PathAndQuery::from_maybe_shared(target)
        {
            *old = new;
        }
        self.host = self.host.as_ref().map(|v| value(v, host));
        self.user_agent = self.user_agent.as_ref().map(|v| value(v, copy));
    }

    /// The facts of a span that is not an HTTP exchange (a database
    /// query: see [`Span::db`]); the exporter never renders them.
    pub fn unused() -> Self {
        Self {
            method: http::Method::GET,
            target: None,
            route: None,
            scheme: "",
            host: None,
            version: http::Version::HTTP_11,
            user_agent: None,
            status: None,
            request_body_bytes: 0,
            response_body_bytes: 0,
            grpc: None,
        }
    }
}

/// A finished span, ready for export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub trace_id: TraceId,
    pub id: SpanId,
    pub parent_id: Option<SpanId>,
    pub kind: Kind,
    pub debug: bool,
    /// Wall-clock start, microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Monotonic duration in microseconds, at least 1 (Zipkin v2 API).
    pub duration_us: u64,
    pub local_service: Arc<str>,
    pub remote: Endpoint,
    pub http: HttpFacts,
    /// A database query's facts; when present the span is a database
    /// CLIENT span and `http` is [`HttpFacts::unused`].
    pub db: Option<Box<DbFacts>>,
    /// Error message, exported as the `error` tag.
    pub error: Option<Cow<'static, str>>,
    /// Everything else: captured headers, TLS facts, `sampling.reason`, pod metadata.
    pub tags: Vec<Tag>,
    /// Spans this one is linked to without being their child: the
    /// candidate parents of an ambiguous outbound call
    /// ([`crate::inference`]). OTLP exports them as links; Zipkin has none.
    pub links: Vec<SpanContext>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_facts_keep_their_values_in_storage_of_their_own() {
        let buffer = bytes::Bytes::from_static(b"GET /orders/7?q=1 shop.example curl/8");
        let facts = HttpFacts {
            method: http::Method::GET,
            target: Some(http::uri::PathAndQuery::from_maybe_shared(buffer.slice(4..17)).unwrap()),
            route: None,
            scheme: "http",
            host: Some(http::HeaderValue::from_maybe_shared(buffer.slice(18..30)).unwrap()),
            version: http::Version::HTTP_11,
            user_agent: Some(http::HeaderValue::from_maybe_shared(buffer.slice(31..)).unwrap()),
            status: Some(200),
            request_body_bytes: 0,
            response_body_bytes: 0,
            grpc: None,
        };
        let inside = |p: *const u8| buffer.as_ptr_range().contains(&p);
        assert!(inside(facts.host.as_ref().unwrap().as_bytes().as_ptr()));
        let mut detached = facts.clone();
        detached.detach();
        assert_eq!(detached, facts);
        assert!(!inside(detached.target.as_ref().unwrap().as_str().as_ptr()));
        assert!(!inside(detached.host.as_ref().unwrap().as_bytes().as_ptr()));
        assert!(!inside(
            detached.user_agent.as_ref().unwrap().as_bytes().as_ptr()
        ));
    }
}
