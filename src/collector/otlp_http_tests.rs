//! `POST /v1/traces` through the collector's handler, in memory.

use std::io::Write as _;

use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::*;
use crate::collector::CollectorConfig;
use crate::otlp::{
    ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, SpanKind,
};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

fn span(id: u8, parent: Option<u8>, kind: SpanKind, name: &str) -> Span {
    Span {
        trace_id: vec![
            0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
            0xc6, 0x0c,
        ],
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent.map_or_else(Vec::new, |p| vec![0, 0, 0, 0, 0, 0, 0, p]),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1_000_000,
        end_time_unix_nano: 1_700_000_000_050_000_000,
        ..Span::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue::string("service.name", "otel-app")],
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

async fn call(
    collector: &Collector,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = collector
        .handle(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await;
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn post(collector: &Collector, media: &str, body: Vec<u8>) -> (StatusCode, HeaderMap, Bytes) {
    let headers = [("content-type", media)];
    call(collector, Method::POST, "/v1/traces", &headers, body).await
}

async fn stored_trace(collector: &Collector) -> Value {
    let uri = format!("/api/v2/trace/{TRACE}");
    let (status, _, body) = call(collector, Method::GET, &uri, &[], Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn protobuf_requests_get_an_empty_protobuf_response_and_show_in_the_zipkin_api() {
    let collector = Collector::new(CollectorConfig::default());
    let body = request(vec![
        span(1, None, SpanKind::Server, "GET /checkout"),
        span(2, Some(1), SpanKind::Client, "SELECT"),
    ])
    .encode_to_vec();
    let (status, headers, answer) = post(&collector, "application/x-protobuf", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    assert_eq!(
        ExportTraceServiceResponse::decode(answer).unwrap(),
        ExportTraceServiceResponse::default()
    );
    let trace = stored_trace(&collector).await;
    let names: Vec<(&str, &str)> = trace
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("SERVER", "get /checkout"), ("CLIENT", "select")]);
    assert_eq!(trace[1]["parentId"], trace[0]["id"]);
    let (_, _, services) = call(&collector, Method::GET, "/api/v2/services", &[], Vec::new()).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&services).unwrap(),
        json!(["otel-app"])
    );
}

#[tokio::test]
async fn json_requests_get_json_answers_gzip_included() {
    let collector = Collector::new(CollectorConfig::default());
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "otel-app"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": TRACE, "spanId": "0000000000000001", "name": "GET /checkout", "kind": 2,
            "startTimeUnixNano": "1700000000001000000", "endTimeUnixNano": "1700000000050000000",
            "status": {"code": 2, "message": "upstream down"}
        }]}]
    }]})
    .to_string();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(body.as_bytes()).unwrap();
    let headers = [
        ("content-type", "application/json; charset=utf-8"),
        ("content-encoding", "gzip"),
    ];
    let (status, answer_headers, answer) = call(
        &collector,
        Method::POST,
        "/v1/traces",
        &headers,
        gzip.finish().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer_headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap(), json!({}));
    let trace = stored_trace(&collector).await;
    assert_eq!(trace[0]["tags"]["error"], "upstream down");
    assert_eq!(trace[0]["localEndpoint"]["serviceName"], "otel-app");
}

#[tokio::test]
async fn spans_with_bad_ids_make_a_partial_success_in_either_encoding() {
    let collector = Collector::new(CollectorConfig::default());
    let mut bad = span(2, Some(1), SpanKind::Client, "SELECT");
    bad.span_id = vec![1, 2, 3];
    let body = request(vec![span(1, None, SpanKind::Server, "GET /"), bad]);
    let (status, _, answer) =
        post(&collector, "application/x-protobuf", body.encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let partial = ExportTraceServiceResponse::decode(answer)
        .unwrap()
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(
        partial.error_message,
        "resourceSpans[0].scopeSpans[0].spans[1]: spanId: expected 8 bytes, got 3"
    );
    assert_eq!(collector.span_count(), 1);

    let json = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "", "spanId": "0000000000000009"}]}]}]});
    let (status, _, answer) = post(&collector, "application/json", json.to_string().into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&answer).unwrap(),
        json!({"partialSuccess": {"rejectedSpans": "1",
            "errorMessage": "resourceSpans[0].scopeSpans[0].spans[0]: traceId: expected 16 bytes, got 0"}})
    );
}

#[tokio::test]
async fn undecodable_bodies_get_400_with_a_status_other_types_415_other_methods_405() {
    let collector = Collector::new(CollectorConfig::default());
    let (status, headers, answer) = post(
        &collector,
        "application/x-protobuf",
        b"\x0a\x05\x0a".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    let rpc = RpcStatus::decode(answer).unwrap();
    assert_eq!(rpc.code, INVALID_ARGUMENT);
    assert!(
        rpc.message.contains("ExportTraceServiceRequest"),
        "{}",
        rpc.message
    );

    let (status, _, answer) = post(
        &collector,
        "application/json",
        b"{\"resourceSpans\": 1}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let rpc: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(rpc["code"], INVALID_ARGUMENT);
    assert_eq!(rpc["message"], "resourceSpans: expected a list (OTLP JSON)");

    let (status, _, _) = post(&collector, "text/plain", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let headers = [
        ("content-type", "application/json"),
        ("content-encoding", "br"),
    ];
    let (status, _, _) = call(
        &collector,
        Method::POST,
        "/v1/traces",
        &headers,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, headers, _) = call(&collector, Method::GET, "/v1/traces", &[], Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(collector.span_count(), 0);
}
