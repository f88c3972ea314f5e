//! Sample spans for the exporter's tests.

use std::sync::Arc;

use crate::span::{Endpoint, HttpFacts, Kind, Span, SpanId, TraceId};

/// A sampled SERVER span for `GET /users/42?token=secret` answered 200.
pub fn server_span() -> Span {
    Span {
        trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).expect("non-zero"),
        id: SpanId::new(0x00f067aa0ba902b7).expect("non-zero"),
        parent_id: SpanId::new(0x0102030405060708),
        kind: Kind::Server,
        debug: false,
        timestamp_us: 1_700_000_000_123_456,
        duration_us: 1_500,
        local_service: Arc::from("User-Service"),
        remote: Endpoint {
            service_name: None,
            addr: Some("10.1.2.3:54321".parse().expect("valid address")),
        },
        http: HttpFacts {
            method: http::Method::GET,
            target: Some(http::uri::PathAndQuery::from_static(
                "/users/42?token=secret",
            )),
            route: None,
            scheme: "http",
            host: Some(http::HeaderValue::from_static("users.local:8080")),
            version: http::Version::HTTP_11,
            user_agent: Some(http::HeaderValue::from_static("curl/8.5.0")),
            status: Some(200),
            request_body_bytes: 0,
            response_body_bytes: 512,
            grpc: None,
        },
        error: None,
        tags: Vec::new(),
        links: Vec::new(),
    }
}

/// `n` distinct spans, each with its own span id.
pub fn spans(n: u64) -> Vec<Span> {
    (1..=n)
        .map(|i| {
            let mut span = server_span();
            span.id = SpanId::new(i).expect("non-zero");
            span
        })
        .collect()
}
