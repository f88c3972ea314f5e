use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::otlp::{
    ArrayValue, InstrumentationScope, KeyValueList, Resource, ResourceSpans, ScopeSpans, Status,
};

fn attr(key: &str, value: Value) -> KeyValue {
    KeyValue::new(key, value)
}

fn text(value: &str) -> Value {
    Value::StringValue(value.into())
}

/// A SERVER span of `checkout` as an OpenTelemetry SDK sends it.
fn sdk_span() -> Span {
    Span {
        trace_id: vec![0x4b; 16],
        span_id: vec![0x0f; 8],
        parent_span_id: vec![0x01; 8],
        name: "GET /Users/{id}".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_123_456_789,
        end_time_unix_nano: 1_700_000_000_125_000_000,
        attributes: vec![
            attr("http.request.method", text("GET")),
            attr("http.response.status_code", Value::IntValue(503)),
            attr("network.peer.address", text("::ffff:10.0.0.7")),
            attr("network.peer.port", Value::IntValue(51234)),
        ],
        events: vec![Event {
            time_unix_nano: 1_700_000_000_124_000_000,
            name: "retry".into(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
        }],
        status: Some(Status {
            message: String::new(),
            code: StatusCode::Error as i32,
        }),
        ..Span::default()
    }
}

fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.2.3".into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn service() -> Vec<KeyValue> {
    vec![
        attr("service.name", text("Checkout")),
        attr("k8s.pod.name", text("checkout-7d9")),
    ]
}

#[test]
fn an_sdk_span_becomes_the_zipkin_span_the_specification_describes() {
    let converted = convert(request(service(), vec![sdk_span()]));
    assert_eq!((converted.rejected, converted.first_problem), (0, None));
    assert_eq!(
        serde_json::to_value(&converted.spans).unwrap(),
        json!([{
            "traceId": "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b",
            "parentId": "0101010101010101",
            "id": "0f0f0f0f0f0f0f0f",
            "kind": "SERVER",
            "name": "get /users/{id}",
            "timestamp": 1_700_000_000_123_456u64,
            "duration": 1543,
            "localEndpoint": {"serviceName": "checkout"},
            "remoteEndpoint": {"ipv4": "10.0.0.7", "port": 51234},
            "annotations": [{"timestamp": 1_700_000_000_124_000u64, "value": "retry"}],
            "tags": {
                "error": "",
                "http.request.method": "GET",
                "http.response.status_code": "503",
                "k8s.pod.name": "checkout-7d9",
                "network.peer.address": "::ffff:10.0.0.7",
                "network.peer.port": "51234",
                "otel.library.name": "io.opentelemetry.http",
                "otel.library.version": "1.2.3",
                "otel.scope.name": "io.opentelemetry.http",
                "otel.scope.version": "1.2.3",
                "otel.status_code": "ERROR"
            }
        }])
    );
}

#[test]
fn kinds_map_as_the_specification_says() {
    let cases = [
        (SpanKind::Unspecified as i32, None),
        (SpanKind::Internal as i32, None),
        (SpanKind::Server as i32, Some(model::Kind::Server)),
        (SpanKind::Client as i32, Some(model::Kind::Client)),
        (SpanKind::Producer as i32, Some(model::Kind::Producer)),
        (SpanKind::Consumer as i32, Some(model::Kind::Consumer)),
        (42, None),
    ];
    for (kind, expected) in cases {
        let span = Span { kind, ..sdk_span() };
        let converted = convert(request(service(), vec![span]));
        assert_eq!(converted.spans[0].kind, expected, "kind {kind}");
    }
}

#[test]
fn values_become_tag_text_and_events_with_attributes_become_json() {
    let mut span = sdk_span();
    span.status = Some(Status {
        message: "fine".into(),
        code: StatusCode::Ok as i32,
    });
    span.kind = SpanKind::Client as i32;
    span.attributes = vec![
        attr("b", Value::BoolValue(false)),
        attr("d", Value::DoubleValue(1.5)),
        attr("nan", Value::DoubleValue(f64::NAN)),
        attr("bytes", Value::BytesValue(vec![0, 255])),
        attr(
            "list",
            Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(text("a")),
                    },
                    AnyValue {
                        value: Some(Value::IntValue(2)),
                    },
                ],
            }),
        ),
        attr(
            "map",
            Value::KvlistValue(KeyValueList {
                values: vec![attr("k", Value::BoolValue(true))],
            }),
        ),
        KeyValue {
            key: "none".into(),
            value: None,
        },
        attr("error", text("false")),
        attr("server.address", text("Payments.internal")),
    ];
    span.events[0].attributes = vec![attr("attempt", Value::IntValue(2))];
    span.dropped_events_count = 3;
    let converted = convert(request(vec![], vec![span]));
    let span = &converted.spans[0];
    let tag = |key: &str| span.tags.get(key).map(String::as_str);
    assert_eq!(tag("b"), Some("false"));
    assert_eq!(tag("d"), Some("1.5"));
    assert_eq!(tag("nan"), Some("NaN"));
    assert_eq!(tag("bytes"), Some("AP8="));
    assert_eq!(tag("list"), Some(r#"["a",2]"#));
    assert_eq!(tag("map"), Some(r#"{"k":true}"#));
    assert_eq!(tag("none"), Some(""));
    assert_eq!(
        tag("error"),
        None,
        "error=false on a span that did not fail goes"
    );
    assert_eq!(tag("otel.status_code"), Some("OK"));
    assert_eq!(tag("otel.dropped_events_count"), Some("3"));
    assert_eq!(span.annotations[0].value, r#"{"retry":{"attempt":2}}"#);
    assert_eq!(span.local_service_name(), Some("unknown_service"));
    assert_eq!(span.remote_service_name(), Some("payments.internal"));
}

#[test]
fn spans_with_bad_ids_are_rejected_alone() {
    let bad = |breaks: fn(&mut Span)| {
        let mut span = sdk_span();
        breaks(&mut span);
        span
    };
    let spans = vec![
        sdk_span(),
        bad(|s| s.trace_id = vec![1; 8]),
        bad(|s| s.span_id = vec![0; 8]),
        bad(|s| s.parent_span_id = vec![1; 4]),
        bad(|s| s.trace_id = vec![0; 16]),
    ];
    let converted = convert(request(service(), spans));
    assert_eq!(converted.spans.len(), 1);
    assert_eq!(converted.rejected, 4);
    assert_eq!(
        converted.first_problem.as_deref(),
        Some("resourceSpans[0].scopeSpans[0].spans[1]: traceId: expected 16 bytes, got 8")
    );
    // An all-zero parent is a root; times that make no sense are left out.
    let mut root = sdk_span();
    root.parent_span_id = vec![0; 8];
    root.start_time_unix_nano = 0;
    let converted = convert(request(service(), vec![root]));
    let span = &converted.spans[0];
    assert_eq!(
        (span.parent_id, span.timestamp, span.duration),
        (None, None, None)
    );
}

#[test]
fn protobuf_and_json_bodies_decode_to_the_same_spans() {
    let protobuf = request(service(), vec![sdk_span()]).encode_to_vec();
    let json = json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "Checkout"}},
            {"key": "k8s.pod.name", "value": {"stringValue": "checkout-7d9"}}]},
        "scopeSpans": [{
            "scope": {"name": "io.opentelemetry.http", "version": "1.2.3"},
            "spans": [{
                "traceId": "4B4B4B4B4B4B4B4B4B4B4B4B4B4B4B4B", "spanId": "0f0f0f0f0f0f0f0f",
                "parentSpanId": "0101010101010101", "name": "GET /Users/{id}", "kind": 2,
                "startTimeUnixNano": "1700000000123456789", "endTimeUnixNano": "1700000000125000000",
                "attributes": [
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "http.response.status_code", "value": {"intValue": "503"}},
                    {"key": "network.peer.address", "value": {"stringValue": "::ffff:10.0.0.7"}},
                    {"key": "network.peer.port", "value": {"intValue": 51234}}],
                "events": [{"timeUnixNano": "1700000000124000000", "name": "retry"}],
                "status": {"code": 2}
            }]
        }]
    }]});
    let from_protobuf = decode(Encoding::Protobuf, &protobuf).unwrap();
    let from_json = decode(Encoding::Json, json.to_string().as_bytes()).unwrap();
    assert_eq!(from_protobuf, from_json);
    assert_eq!(from_protobuf.spans.len(), 1);
    assert!(matches!(
        decode(Encoding::Protobuf, b"\x0a\x05\x0a"),
        Err(IngestError::Otlp(_))
    ));
    assert!(matches!(
        decode(Encoding::Json, b"[1]"),
        Err(IngestError::OtlpJson { .. })
    ));
}

#[test]
fn content_types_pick_the_encoding() {
    let cases = [
        (Some("application/x-protobuf"), Some(Encoding::Protobuf)),
        (
            Some("Application/X-Protobuf; charset=x"),
            Some(Encoding::Protobuf),
        ),
        (Some("application/json"), Some(Encoding::Json)),
        (
            Some("application/json; charset=utf-8"),
            Some(Encoding::Json),
        ),
        (Some("text/plain"), None),
        (Some("application/protobuf"), None),
        (None, None),
    ];
    for (content_type, expected) in cases {
        assert_eq!(
            Encoding::of(content_type).ok(),
            expected,
            "{content_type:?}"
        );
    }
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(Encoding::Protobuf, &body);
        let _ = decode(Encoding::Json, &body);
    }

    #[test]
    fn any_ids_times_and_values_convert_without_panicking(
        trace in proptest::collection::vec(any::<u8>(), 0..20),
        id in proptest::collection::vec(any::<u8>(), 0..10),
        parent in proptest::collection::vec(any::<u8>(), 0..10),
        kind in any::<i32>(), code in any::<i32>(),
        start in any::<u64>(), end in any::<u64>(), event_time in any::<u64>(),
        port in any::<i64>(), number in any::<f64>(), text in ".{0,8}",
    ) {
        let mut span = sdk_span();
        span.trace_id = trace;
        span.span_id = id;
        span.parent_span_id = parent;
        span.kind = kind;
        span.status = Some(Status { message: text.clone(), code });
        span.start_time_unix_nano = start;
        span.end_time_unix_nano = end;
        span.events[0].time_unix_nano = event_time;
        span.attributes.push(attr("network.peer.port", Value::IntValue(port)));
        span.attributes.push(attr("network.peer.address", Value::StringValue(text.clone())));
        span.attributes.push(attr(&text, Value::DoubleValue(number)));
        let converted = convert(request(service(), vec![span]));
        prop_assert_eq!(converted.spans.len() + converted.rejected, 1);
        for span in converted.spans {
            prop_assert!(span.timestamp.is_none_or(|t| t <= super::super::MAX_MICROS));
        }
    }
}
