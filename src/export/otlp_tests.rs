use std::sync::Arc;

use prost::Message;

use super::*;
use crate::export::sample::server_span;
use crate::otlp::{AnyValue, ExportTraceServiceRequest};
use crate::span::{Endpoint, GrpcCall, SpanId, Tag, TraceId};

fn options() -> EncodeOptions {
    EncodeOptions {
        resource_tags: vec![
            ("k8s.pod.name".into(), "users-7d9-x2x".into()),
            ("k8s.namespace.name".into(), "shop".into()),
        ],
        service_instance_id: Some("627cc493-f310-47de-96bd-71410b7dec09".into()),
    }
}

/// Encodes `spans` as one batch and decodes the bytes again.
fn round_trip(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut batch = OtlpBatch::new(&options());
    for span in spans {
        batch.add(span);
    }
    assert_eq!(batch.spans(), spans.len());
    let (bytes, n) = batch.take();
    assert_eq!(n, spans.len());
    ExportTraceServiceRequest::decode(&bytes[..]).expect("prost decodes what it encoded")
}

fn value(attributes: &[KeyValue], key: &str) -> Option<Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|AnyValue { value }| value)
}

fn text(value: &str) -> Option<Value> {
    Some(Value::StringValue(value.into()))
}

fn int(value: i64) -> Option<Value> {
    Some(Value::IntValue(value))
}

#[test]
fn a_server_span_keeps_ids_times_kind_and_attributes() {
    let request = round_trip(&[server_span()]);
    assert_eq!(request.resource_spans.len(), 1);
    let resource = &request.resource_spans[0];
    let attributes = &resource.resource.as_ref().unwrap().attributes;
    assert_eq!(value(attributes, "service.name"), text("User-Service"));
    assert_eq!(
        value(attributes, "service.instance.id"),
        text("627cc493-f310-47de-96bd-71410b7dec09")
    );
    assert_eq!(value(attributes, "k8s.pod.name"), text("users-7d9-x2x"));
    assert_eq!(value(attributes, "k8s.namespace.name"), text("shop"));
    let scope = resource.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("tracehop", env!("CARGO_PKG_VERSION"))
    );

    let span = &resource.scope_spans[0].spans[0];
    assert_eq!(
        span.trace_id,
        [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ]
    );
    assert_eq!(
        span.span_id,
        [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
    assert_eq!(span.parent_span_id, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_123_456_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_124_956_000);
    assert_eq!(span.status, None, "a 200 leaves the status unset");

    let a = &span.attributes;
    assert_eq!(value(a, "http.request.method"), text("GET"));
    assert_eq!(value(a, "url.path"), text("/users/42"));
    assert_eq!(value(a, "url.scheme"), text("http"));
    assert_eq!(value(a, "server.address"), text("users.local"));
    assert_eq!(value(a, "server.port"), int(8080));
    assert_eq!(value(a, "http.route"), text("/users/{id}"));
    assert_eq!(value(a, "http.response.status_code"), int(200));
    assert_eq!(value(a, "network.protocol.version"), text("1.1"));
    assert_eq!(value(a, "user_agent.original"), text("curl/8.5.0"));
    assert_eq!(value(a, "client.address"), text("10.1.2.3"));
    assert_eq!(value(a, "http.response.body.size"), int(512));
    assert_eq!(value(a, "network.peer.address"), text("10.1.2.3"));
    assert_eq!(value(a, "network.peer.port"), int(54321));
    assert_eq!(value(a, "peer.service"), None);
    assert_eq!(value(a, "error.type"), None);
}

#[test]
fn a_client_span_names_its_peer_and_keeps_short_trace_ids_sixteen_bytes() {
    let mut span = server_span();
    span.kind = Kind::Client;
    span.trace_id = TraceId::new(0xa3ce929d0e0e4736).unwrap();
    span.parent_id = None;
    span.duration_us = 0;
    span.remote = Endpoint {
        service_name: Some(Arc::from("order-service")),
        addr: None,
    };
    span.tags.push(Tag {
        key: "http.request.header.x-tenant".into(),
        value: "gold".into(),
    });
    let request = round_trip(&[span]);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(
        span.trace_id,
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36
        ]
    );
    assert!(span.parent_span_id.is_empty(), "a root has no parent id");
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        1_000,
        "at least a microsecond, as in Zipkin"
    );
    let a = &span.attributes;
    assert_eq!(value(a, "peer.service"), text("order-service"));
    assert_eq!(value(a, "client.address"), None, "only SERVER spans");
    assert_eq!(value(a, "http.request.header.x-tenant"), text("gold"));
}

#[test]
fn failures_set_the_error_status_and_error_type() {
    let mut failed = server_span();
    failed.http.status = None;
    failed.error = Some("upstream connect failed: connection refused".into());
    let mut unavailable = server_span();
    unavailable.http.status = Some(503);
    let mut grpc = server_span();
    grpc.kind = Kind::Client;
    grpc.http.grpc = Some(GrpcCall { status: Some(5) });
    grpc.http.target = Some(http::uri::PathAndQuery::from_static(
        "/helloworld.Greeter/SayHello",
    ));
    let request = round_trip(&[failed, unavailable, grpc]);
    let spans = &request.resource_spans[0].scope_spans[0].spans;
    let error = |message: &str| {
        Some(Status {
            message: message.into(),
            code: StatusCode::Error as i32,
        })
    };
    assert_eq!(
        spans[0].status,
        error("upstream connect failed: connection refused")
    );
    assert_eq!(value(&spans[0].attributes, "error.type"), text("_OTHER"));
    assert_eq!(spans[1].status, error(""), "the status code says it");
    assert_eq!(value(&spans[1].attributes, "error.type"), text("503"));
    assert_eq!(spans[2].name, "helloworld.Greeter/SayHello");
    assert_eq!(spans[2].status, error(""));
    assert_eq!(value(&spans[2].attributes, "error.type"), text("5"));
    assert_eq!(value(&spans[2].attributes, "rpc.system"), text("grpc"));
    assert_eq!(value(&spans[2].attributes, "rpc.grpc.status_code"), int(5));
}

#[test]
fn each_run_of_one_service_shares_a_resource() {
    let mut spans: Vec<Span> = (1..=4)
        .map(|i| {
            let mut span = server_span();
            span.id = SpanId::new(i).unwrap();
            span
        })
        .collect();
    spans[2].local_service = Arc::from("orders");
    let request = round_trip(&spans);
    let services: Vec<(Option<Value>, usize)> = request
        .resource_spans
        .iter()
        .map(|r| {
            let attributes = &r.resource.as_ref().unwrap().attributes;
            (
                value(attributes, "service.name"),
                r.scope_spans[0].spans.len(),
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            (text("User-Service"), 2),
            (text("orders"), 1),
            (text("User-Service"), 1)
        ]
    );
    // The batch starts empty again.
    let mut batch = OtlpBatch::new(&options());
    batch.add(&spans[0]);
    let _ = batch.take();
    let (bytes, n) = batch.take();
    assert_eq!((bytes.len(), n), (0, 0));
}

#[test]
fn connect_tunnels_are_named_by_their_host() {
    let mut span = server_span();
    span.http.method = http::Method::CONNECT;
    span.http.target = None;
    let request = round_trip(&[span]);
    assert_eq!(
        request.resource_spans[0].scope_spans[0].spans[0].name,
        "CONNECT users.local:8080"
    );
}

#[test]
fn an_ambiguous_client_span_links_to_its_candidate_parents() {
    let mut span = server_span();
    span.kind = Kind::Client;
    let candidate = |n: u64, sampling| crate::span::SpanContext {
        trace_id: TraceId::new(u128::from(n) << 64).unwrap(),
        span_id: SpanId::new(n).unwrap(),
        sampling,
        random: true,
    };
    span.links = vec![
        candidate(1, crate::span::Sampling::Sampled),
        candidate(2, crate::span::Sampling::NotSampled),
    ];
    let request = round_trip(&[span]);
    let links = &request.resource_spans[0].scope_spans[0].spans[0].links;
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].trace_id, TraceId::new(1 << 64).unwrap().to_bytes());
    assert_eq!(links[0].span_id, 1u64.to_be_bytes());
    assert_eq!(links[0].flags, 0x101, "sampled, known not remote");
    assert_eq!(links[1].span_id, 2u64.to_be_bytes());
    assert_eq!(links[1].flags, 0x100, "not sampled, known not remote");
    let plain = round_trip(&[server_span()]);
    assert!(
        plain.resource_spans[0].scope_spans[0].spans[0]
            .links
            .is_empty()
    );
}
