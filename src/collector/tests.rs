//! Collector behaviour through its HTTP surface: in-memory requests for every
//! endpoint and filter, plus real-socket round trips through [`serve`].

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::*;

/// Epoch microseconds of the fixture trace's root span (2023-11-14).
const T0: u64 = 1_700_000_000_000_000;
/// A query window (milliseconds) that holds the fixture.
const WINDOW: &str = "endTs=1700000001000&lookback=60000";

/// A 3-service trace: gateway → users, gateway → orders → users (error).
fn fixture(trace_id: &str) -> Value {
    let span = |id: u64,
                parent: u64,
                kind: &str,
                service: &str,
                remote: &str,
                name: &str,
                start: u64,
                duration: u64| {
        let mut span = json!({"traceId": trace_id, "id": format!("{id:016x}"),
            "kind": kind, "name": name, "timestamp": T0 + start, "duration": duration,
            "localEndpoint": {"serviceName": service}});
        if parent != 0 {
            span["parentId"] = json!(format!("{parent:016x}"));
        }
        if !remote.is_empty() {
            span["remoteEndpoint"] = json!({"serviceName": remote, "port": 8080});
        }
        span
    };
    let mut spans = vec![
        span(
            1,
            0,
            "SERVER",
            "gateway",
            "",
            "get /api/orders/{id}",
            0,
            9_000,
        ),
        span(
            2,
            1,
            "CLIENT",
            "gateway",
            "users",
            "get /users/{id}",
            100,
            1_000,
        ),
        span(3, 2, "SERVER", "users", "", "get /users/{id}", 200, 800),
        span(
            4,
            1,
            "CLIENT",
            "gateway",
            "orders",
            "get /orders/{id}",
            1_200,
            7_000,
        ),
        span(
            5,
            4,
            "SERVER",
            "orders",
            "",
            "get /orders/{id}",
            1_300,
            6_800,
        ),
        span(
            6,
            5,
            "CLIENT",
            "orders",
            "users",
            "get /users/{id}",
            2_000,
            3_000,
        ),
        span(7, 6, "SERVER", "users", "", "get /users/{id}", 2_100, 2_700),
    ];
    spans[0]["tags"] = json!({"http.path": "/api/orders/7", "http.response.status_code": "200"});
    spans[6]["tags"] = json!({"error": "user not found", "http.response.status_code": "500"});
    spans[6]["annotations"] = json!([{"timestamp": T0 + 2_200, "value": "retried"}]);
    Value::Array(spans)
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn loaded() -> Collector {
    let collector = Collector::new(CollectorConfig {
        max_spans: 1_000,
        ..CollectorConfig::default()
    });
    collector
        .ingest_json(fixture(TRACE).to_string().as_bytes())
        .unwrap();
    collector
        .ingest_json(
            fixture("0000000000000000000000000000abcd")
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    collector
}

async fn call(
    collector: &Collector,
    method: Method,
    uri: &str,
    body: Vec<u8>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    respond(collector, request).await
}

async fn respond(
    collector: &Collector,
    request: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let response = collector.handle(request).await;
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn get_json(collector: &Collector, uri: &str) -> Value {
    let (status, headers, body) = call(collector, Method::GET, uri, Vec::new()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
    serde_json::from_slice(&body).unwrap()
}

async fn get_status(collector: &Collector, uri: &str) -> (StatusCode, String) {
    let (status, _, body) = call(collector, Method::GET, uri, Vec::new()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn post(collector: &Collector, body: &[u8]) -> (StatusCode, String) {
    let (status, _, body) = call(collector, Method::POST, "/api/v2/spans", body.to_vec()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The trace ids of a `/traces` answer, in order.
fn trace_ids(traces: &Value) -> Vec<String> {
    traces
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| trace[0]["traceId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn post_accepts_a_batch_with_202() {
    let collector = Collector::new(CollectorConfig::default());
    let (status, body) = post(&collector, fixture(TRACE).to_string().as_bytes()).await;
    assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, ""));
    assert_eq!(collector.span_count(), 7);
    assert_eq!(collector.trace_count(), 1);
}

#[tokio::test]
async fn bad_batches_get_400_with_a_message_and_store_nothing() {
    let collector = Collector::new(CollectorConfig::default());
    let mut bad_id = fixture(TRACE);
    bad_id[3]["id"] = json!("not-hex");
    let mut bad_trace = fixture(TRACE);
    bad_trace[6]["traceId"] = json!("123");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"[{\"traceId\":".to_vec(), "not valid JSON"),
        (b"{}".to_vec(), "must be a JSON list"),
        (b"".to_vec(), "not valid JSON"),
        (
            bad_id.to_string().into_bytes(),
            "span 3: id: expected 16 hex characters",
        ),
        (
            bad_trace.to_string().into_bytes(),
            "span 6: traceId: expected 16 or 32 hex",
        ),
    ];
    for (body, message) in cases {
        let (status, text) = post(&collector, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains(message), "{text:?} lacks {message:?}");
    }
    assert_eq!(collector.span_count(), 0);
}

#[tokio::test]
async fn a_bad_value_is_left_out_and_the_batch_is_stored() {
    let collector = Collector::new(CollectorConfig::default());
    let mut batch = fixture(TRACE);
    batch[1]["timestamp"] = json!(-1);
    batch[2]["duration"] = json!(-800);
    batch[6]["annotations"] = json!([{"timestamp": -3, "value": "retried"},
        {"timestamp": T0 + 2_300, "value": "kept"}]);
    let (status, body) = post(&collector, batch.to_string().as_bytes()).await;
    assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, ""));
    assert_eq!(collector.span_count(), 7);
    let stored = get_json(&collector, &format!("/api/v2/trace/{TRACE}")).await;
    let by_id = |id: &str| {
        stored
            .as_array()
            .unwrap()
            .iter()
            .find(|span| span["id"] == id)
            .cloned()
            .unwrap()
    };
    let client = by_id("0000000000000002");
    assert_eq!(
        (client.get("timestamp"), &client["duration"]),
        (None, &json!(1_000))
    );
    let server = by_id("0000000000000003");
    assert_eq!(
        (&server["timestamp"], server.get("duration")),
        (&json!(T0 + 200), None)
    );
    assert_eq!(
        by_id("0000000000000007")["annotations"],
        json!([{"timestamp": T0 + 2_300, "value": "kept"}])
    );
    // A body that is not a list of spans is still refused whole.
    let (status, text) = post(&collector, br#"{"spans": []}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(collector.span_count(), 7);
}

#[tokio::test]
async fn gzip_bodies_are_accepted() {
    let collector = Collector::new(CollectorConfig::default());
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(fixture(TRACE).to_string().as_bytes())
        .unwrap();
    let gzipped = encoder.finish().unwrap();
    let request = Request::post("/api/v2/spans")
        .header("content-encoding", "gzip")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(gzipped.clone())))
        .unwrap();
    assert_eq!(respond(&collector, request).await.0, StatusCode::ACCEPTED);
    assert_eq!(collector.span_count(), 7);
    // Gzip bytes without the header are not JSON; a broken gzip stream is a 400.
    assert_eq!(post(&collector, &gzipped).await.0, StatusCode::BAD_REQUEST);
    let request = Request::post("/api/v2/spans")
        .header("content-encoding", "gzip")
        .body(Full::new(Bytes::from_static(b"not gzip")))
        .unwrap();
    let (status, _, body) = respond(&collector, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("gzip"));
}

#[tokio::test]
async fn oversized_and_unsupported_bodies_are_refused() {
    let collector = Collector::new(CollectorConfig::default());
    let (status, _) = post(&collector, &vec![b' '; MAX_BODY_BYTES + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A small gzip body that inflates past the limit is refused too.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![b' '; MAX_BODY_BYTES + 1]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 100_000);
    let request = Request::post("/api/v2/spans")
        .header("content-encoding", "gzip")
        .body(Full::new(Bytes::from(bomb)))
        .unwrap();
    assert_eq!(
        respond(&collector, request).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    for (header, value) in [
        ("content-encoding", "br"),
        ("content-type", "application/x-thrift"),
    ] {
        let request = Request::post("/api/v2/spans")
            .header(header, value)
            .body(Full::new(Bytes::from_static(b"[]")))
            .unwrap();
        assert_eq!(
            respond(&collector, request).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}

#[tokio::test]
async fn services_spans_and_remote_services() {
    let collector = loaded();
    assert_eq!(
        get_json(&collector, "/api/v2/services").await,
        json!(["gateway", "orders", "users"])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/spans?serviceName=gateway").await,
        json!([
            "get /api/orders/{id}",
            "get /orders/{id}",
            "get /users/{id}"
        ])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/spans?serviceName=Users").await,
        json!(["get /users/{id}"])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/spans?serviceName=nope").await,
        json!([])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/remoteServices?serviceName=gateway").await,
        json!(["orders", "users"])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/remoteServices?serviceName=users").await,
        json!([])
    );
    for uri in [
        "/api/v2/spans",
        "/api/v2/remoteServices",
        "/api/v2/autocompleteValues",
    ] {
        let (status, text) = get_status(&collector, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(text.contains("is required"), "{text}");
    }
    assert_eq!(
        get_json(&collector, "/api/v2/autocompleteKeys").await,
        json!([])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/autocompleteValues?key=env").await,
        json!([])
    );
}

#[tokio::test]
async fn traces_filter_by_every_parameter() {
    let collector = loaded();
    let both = ["000000000000abcd", TRACE];
    let cases: &[(&str, &[&str])] = &[
        ("", &both),
        ("serviceName=orders", &both),
        ("serviceName=nope", &[]),
        ("serviceName=gateway&remoteServiceName=orders", &both),
        ("serviceName=users&remoteServiceName=orders", &[]),
        ("spanName=get+%2Forders%2F%7Bid%7D", &both),
        ("spanName=get+%2Fnothing", &[]),
        ("annotationQuery=error", &both),
        (
            "annotationQuery=http.path%3D%2Fapi%2Forders%2F7+and+retried",
            &both,
        ),
        ("annotationQuery=http.path%3D%2Fapi%2Forders%2F8", &[]),
        ("serviceName=gateway&annotationQuery=error", &[]),
        ("minDuration=9000", &both),
        ("minDuration=9001", &[]),
        ("serviceName=users&minDuration=2000&maxDuration=3000", &both),
        ("serviceName=users&minDuration=3000&maxDuration=8000", &[]),
        ("limit=1", &both[..1]),
    ];
    for (query, expected) in cases {
        let traces = get_json(&collector, &format!("/api/v2/traces?{WINDOW}&{query}")).await;
        assert_eq!(trace_ids(&traces), *expected, "{query}");
    }
    let traces = get_json(&collector, &format!("/api/v2/traces?{WINDOW}&limit=1")).await;
    assert_eq!(traces[0].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn traces_are_windowed_by_end_ts_and_lookback() {
    let collector = loaded();
    let cases = [
        ("endTs=1700000000000&lookback=1", 2),
        ("endTs=1699999999999&lookback=1000", 0),
        ("endTs=1700000100000&lookback=99999", 0),
        ("endTs=1700000100000&lookback=100000", 2),
    ];
    for (query, expected) in cases {
        let traces = get_json(&collector, &format!("/api/v2/traces?{query}")).await;
        assert_eq!(traces.as_array().unwrap().len(), expected, "{query}");
    }
    // Default window: the last day before now, which the 2023 fixture misses.
    assert_eq!(get_json(&collector, "/api/v2/traces").await, json!([]));
    let (status, text) = get_status(&collector, "/api/v2/traces?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(text, "limit must be greater than 0\n");
    assert_eq!(
        get_status(&collector, "/api/v2/traces?maxDuration=4")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn newest_traces_come_first() {
    let collector = Collector::new(CollectorConfig::default());
    let mut older = fixture("00000000000000aa");
    let mut newer = fixture("00000000000000bb");
    for (spans, shift) in [(&mut older, 0u64), (&mut newer, 5_000)] {
        for span in spans.as_array_mut().unwrap() {
            span["timestamp"] = json!(span["timestamp"].as_u64().unwrap() + shift);
        }
    }
    collector.ingest_json(newer.to_string().as_bytes()).unwrap();
    collector.ingest_json(older.to_string().as_bytes()).unwrap();
    let traces = get_json(&collector, &format!("/api/v2/traces?{WINDOW}")).await;
    assert_eq!(trace_ids(&traces), ["00000000000000bb", "00000000000000aa"]);
}

#[tokio::test]
async fn one_trace_by_id() {
    let collector = loaded();
    let trace = get_json(&collector, &format!("/api/v2/trace/{TRACE}")).await;
    assert_eq!(trace.as_array().unwrap().len(), 7);
    assert_eq!(trace[0], fixture(TRACE)[0]);
    // 64-bit and left-padded 128-bit spellings, any case, name one trace.
    for id in ["000000000000abcd", "0000000000000000000000000000ABCD"] {
        let trace = get_json(&collector, &format!("/api/v2/trace/{id}")).await;
        assert_eq!(trace[0]["traceId"], "000000000000abcd", "{id}");
    }
    let (status, text) = get_status(&collector, "/api/v2/trace/00000000000000ff").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "trace 00000000000000ff not found\n")
    );
    assert_eq!(
        get_status(&collector, "/api/v2/trace/xyz").await.0,
        StatusCode::BAD_REQUEST
    );
    let many = get_json(
        &collector,
        &format!("/api/v2/traceMany?traceIds={TRACE},000000000000abcd,00000000000000ff"),
    )
    .await;
    assert_eq!(many.as_array().unwrap().len(), 2);
    let (status, _) = get_status(&collector, &format!("/api/v2/traceMany?traceIds={TRACE}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dependencies_count_calls_and_errors() {
    let collector = loaded();
    let links = get_json(&collector, &format!("/api/v2/dependencies?{WINDOW}")).await;
    assert_eq!(
        links,
        json!([
            {"parent": "gateway", "child": "orders", "callCount": 2},
            {"parent": "gateway", "child": "users", "callCount": 2},
            {"parent": "orders", "child": "users", "callCount": 2, "errorCount": 2},
        ])
    );
    let outside = get_json(
        &collector,
        "/api/v2/dependencies?endTs=1600000000000&lookback=1000",
    )
    .await;
    assert_eq!(outside, json!([]));
    let (status, text) = get_status(&collector, "/api/v2/dependencies").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::BAD_REQUEST, "endTs is required\n")
    );
}

#[tokio::test]
async fn eviction_keeps_the_bound_by_whole_traces() {
    let collector = Collector::new(CollectorConfig {
        max_spans: 10,
        ..CollectorConfig::default()
    });
    collector
        .ingest_json(fixture("00000000000000aa").to_string().as_bytes())
        .unwrap();
    collector
        .ingest_json(fixture("00000000000000bb").to_string().as_bytes())
        .unwrap();
    assert_eq!((collector.span_count(), collector.evicted_traces()), (7, 1));
    assert_eq!(
        get_status(&collector, "/api/v2/trace/00000000000000aa")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_json(&collector, "/api/v2/trace/00000000000000bb")
            .await
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let collector = loaded();
    for uri in [
        "/nope",
        "/api/v2/nope",
        "/api/v1/spans",
        "/api/v2/trace/",
        "/trace/a/b",
        "/static/x.js",
    ] {
        assert_eq!(
            get_status(&collector, uri).await.0,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
    let (status, headers, _) = call(&collector, Method::DELETE, "/api/v2/spans", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[http::header::ALLOW], "GET, HEAD, POST");
    let (status, headers, _) =
        call(&collector, Method::POST, "/api/v2/traces", b"[]".to_vec()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[http::header::ALLOW], "GET, HEAD");
    assert_eq!(
        call(&collector, Method::PUT, "/", Vec::new()).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn viewer_page_and_assets_are_served() {
    let collector = Collector::new(CollectorConfig::default());
    for uri in ["/", &format!("/trace/{TRACE}")] {
        let (status, headers, body) = call(&collector, Method::GET, uri, Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(
            headers[http::header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(String::from_utf8_lossy(&body).contains("/static/viewer.js"));
    }
    for (uri, media) in [
        ("/static/viewer.js", "text/javascript"),
        ("/static/viewer.css", "text/css"),
    ] {
        let (status, headers, body) = call(&collector, Method::GET, uri, Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[http::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(media)
        );
        assert!(!body.is_empty());
    }
}

/// A collector served on a real socket; stopped when the sender drops.
async fn served() -> (
    Collector,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let collector = Collector::new(CollectorConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(collector.clone(), listener, async {
        let _ = stopped.await;
    }));
    (collector, addr, stop, task)
}

/// Stops a collector from [`served`] and waits for it, within 10 s.
async fn stop_serving(stop: tokio::sync::oneshot::Sender<()>, task: tokio::task::JoinHandle<()>) {
    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn round_trip_over_a_socket() {
    let (collector, addr, stop, task) = served().await;
    let client = client();
    let request = Request::post(format!("http://{addr}/api/v2/spans"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(fixture(TRACE).to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(collector.span_count(), 7);
    let request = Request::get(format!("http://{addr}/api/v2/trace/{TRACE}"))
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let trace: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(trace.as_array().unwrap().len(), 7);
    stop_serving(stop, task).await;
}

/// A stored span back in proto3 form, as a Zipkin proto3 reporter sends it.
fn to_proto(span: &model::Span) -> decode::proto::Span {
    use decode::proto;
    let trace = span.trace_id.get();
    let trace_id = if trace >> 64 == 0 {
        (trace as u64).to_be_bytes().to_vec()
    } else {
        trace.to_be_bytes().to_vec()
    };
    let endpoint = |e: &Option<model::Endpoint>| {
        e.as_ref().map(|e| proto::Endpoint {
            service_name: e.service_name.clone().unwrap_or_default(),
            ipv4: e.ipv4.map(|ip| ip.octets().to_vec()).unwrap_or_default(),
            ipv6: e.ipv6.map(|ip| ip.octets().to_vec()).unwrap_or_default(),
            port: e.port.map_or(0, i32::from),
        })
    };
    proto::Span {
        trace_id,
        parent_id: span
            .parent_id
            .map(|id| id.get().to_be_bytes().to_vec())
            .unwrap_or_default(),
        id: span.id.get().to_be_bytes().to_vec(),
        kind: span.kind.map_or(0, |kind| kind as i32 + 1),
        name: span.name.clone().unwrap_or_default(),
        timestamp: span.timestamp.unwrap_or(0),
        duration: span.duration.unwrap_or(0),
        local_endpoint: endpoint(&span.local_endpoint),
        remote_endpoint: endpoint(&span.remote_endpoint),
        annotations: span
            .annotations
            .iter()
            .map(|a| proto::Annotation {
                timestamp: a.timestamp,
                value: a.value.clone(),
            })
            .collect(),
        tags: span.tags.clone(),
        debug: span.debug,
        shared: span.shared,
    }
}

#[tokio::test]
async fn proto3_uploads_are_stored_like_json_ones() {
    use prost::Message;
    let from_json = loaded();
    let expected = get_json(&from_json, &format!("/api/v2/trace/{TRACE}")).await;
    let spans: Vec<model::Span> = serde_json::from_value(fixture(TRACE)).unwrap();
    let list = decode::proto::ListOfSpans {
        spans: spans.iter().map(to_proto).collect(),
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&list.encode_to_vec()).unwrap();
    let (collector, addr, stop, task) = served().await;
    let client = client();
    for (encoding, body) in [
        ("identity", list.encode_to_vec()),
        ("gzip", encoder.finish().unwrap()),
    ] {
        let request = Request::post(format!("http://{addr}/api/v2/spans"))
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", encoding)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{encoding}");
    }
    // The second upload merged into the first: the same spans again.
    assert_eq!(collector.span_count(), 7);
    let request = Request::get(format!("http://{addr}/api/v2/trace/{TRACE}"))
        .body(Full::default())
        .unwrap();
    let body = client
        .request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let trace: Value = serde_json::from_slice(&body.to_bytes()).unwrap();
    assert_eq!(trace, expected);
    // Not a ListOfSpans: 400 with the reason.
    let request = Request::post("/api/v2/spans")
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::from_static(b"[{\"traceId\": 1}]")))
        .unwrap();
    let (status, _, text) = respond(&collector, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&text).contains("not a protobuf ListOfSpans"));
    stop_serving(stop, task).await;
}

#[tokio::test]
async fn viewer_and_errors_over_a_socket() {
    let (_collector, addr, stop, task) = served().await;
    let client = client();
    let request = Request::get(format!("http://{addr}/"))
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request = Request::post(format!("http://{addr}/api/v2/spans"))
        .body(Full::new(Bytes::from_static(b"[{\"traceId\": \"zz\"}]")))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).starts_with("span 0: traceId:"));
    stop_serving(stop, task).await;
}
