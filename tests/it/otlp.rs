//! OTLP export end to end: the real sidecar exports OTLP/HTTP protobuf to
//! the embedded collector's `POST /v1/traces`, the spans are read back
//! through the Zipkin API, and Zipkin and OTLP configured together each get
//! every span while the other is down, without slowing a request.

use std::time::{Duration, Instant};

use crate::support::{
    Client, EmbeddedCollector, FakeCollector, FakeUpstream, Sidecar, Yaml, closed_port,
    scrape_until,
};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// `count` requests through the sidecar, each in a trace of its own
/// (`TRACE` with its last digits changed); returns the trace ids. Every
/// answer must be 200, each well within a second.
async fn send(sidecar: &Sidecar, count: u8) -> Vec<String> {
    let client = Client::http1();
    let mut traces = Vec::new();
    for i in 0..count {
        let trace = format!("{}{i:02x}", &TRACE[..30]);
        let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
        let started = Instant::now();
        let reply = client
            .get(
                &format!("{}/users/{i}", sidecar.base),
                &[("traceparent", &traceparent), ("user-agent", "it/1")],
            )
            .await;
        assert_eq!(reply.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "request {i} took {:?}",
            started.elapsed()
        );
        traces.push(trace);
    }
    traces
}

/// The metrics after 20 spans while `down` was unreachable: `up` exported
/// them all, `down` none, and its connection errors are counted.
async fn counted_while_down(sidecar: &Sidecar, up: &str, down: &str) {
    let exported = |exporter: &str, n: u32| {
        format!("tracehop_spans_exported_total{{exporter=\"{exporter}\"}} {n}")
    };
    scrape_until(&sidecar.admin, &exported(up, 20)).await;
    let failed =
        format!("tracehop_export_requests_total{{exporter=\"{down}\",result=\"connect_error\"}}");
    let text = scrape_until(&sidecar.admin, &failed).await;
    assert!(text.contains(&exported(down, 0)), "{text}");
}

fn otlp_export(collector: &EmbeddedCollector) -> String {
    format!(
        "  otlp: http://{}/v1/traces\n  retry: {{max_elapsed: 2s}}\n  shutdown_timeout: 1s\n",
        collector.addr
    )
}

#[tokio::test]
async fn spans_exported_as_otlp_read_back_through_the_zipkin_api() {
    let upstream = FakeUpstream::start().await;
    let zipkin = FakeCollector::start().await;
    let collector = EmbeddedCollector::start().await;
    let export = otlp_export(&collector);
    let yaml = Yaml {
        inbound: "  routes: [\"/users/{id}\"]\n",
        export: &export,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, zipkin.addr).await;
    let traces = send(&sidecar, 1).await;
    let spans = collector.trace(&traces[0], 1).await;
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span["traceId"], traces[0]);
    assert_eq!(span["parentId"], "00f067aa0ba902b7");
    assert_eq!(span["kind"], "SERVER");
    assert_eq!(span["name"], "get /users/{id}");
    assert_eq!(span["localEndpoint"]["serviceName"], "checkout");
    assert_eq!(span["remoteEndpoint"]["ipv4"], "127.0.0.1");
    let tags = &span["tags"];
    assert_eq!(tags["http.request.method"], "GET");
    assert_eq!(tags["http.route"], "/users/{id}");
    assert_eq!(tags["url.path"], "/users/0");
    assert_eq!(tags["http.response.status_code"], "200");
    assert_eq!(tags["user_agent.original"], "it/1");
    assert_eq!(tags["otel.scope.name"], "tracehop");
    assert!(tags.get("error").is_none(), "{span}");
    let instance = tags["service.instance.id"].as_str().expect("instance id");
    assert_eq!(instance.len(), 36, "a UUID: {instance}");
    // The Zipkin exporter got the same span, with the same ids.
    let zipkin_spans = zipkin.wait_for(1).await;
    assert_eq!(zipkin_spans[0]["id"], span["id"]);
    assert_eq!(zipkin_spans[0]["traceId"], span["traceId"]);
    let services = collector.get("/api/v2/services").await;
    assert_eq!(services, serde_json::json!(["checkout"]));
    scrape_until(
        &sidecar.admin,
        r#"tracehop_spans_exported_total{exporter="otlp"} 1"#,
    )
    .await;
    sidecar.stop().await;
    collector.stop().await;
}

#[tokio::test]
async fn otlp_gets_every_span_while_zipkin_is_down() {
    let upstream = FakeUpstream::start().await;
    let collector = EmbeddedCollector::start().await;
    let export = otlp_export(&collector);
    let yaml = Yaml {
        export: &export,
        ..Yaml::default()
    };
    let (_closed_socket, closed) = closed_port();
    let sidecar = Sidecar::start(yaml, upstream.addr, closed).await;
    let traces = send(&sidecar, 20).await;
    for trace in &traces {
        collector.trace(trace, 1).await;
    }
    counted_while_down(&sidecar, "otlp", "zipkin").await;
    sidecar.stop().await;
    collector.stop().await;
}

#[tokio::test]
async fn zipkin_gets_every_span_while_otlp_is_down() {
    let upstream = FakeUpstream::start().await;
    let zipkin = FakeCollector::start().await;
    let (_closed_socket, closed) = closed_port();
    let export = format!(
        "  otlp: http://{closed}/v1/traces\n  retry: {{max_elapsed: 2s}}\n  shutdown_timeout: 1s\n",
    );
    let yaml = Yaml {
        export: &export,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, zipkin.addr).await;
    let traces = send(&sidecar, 20).await;
    let spans = zipkin.wait_for(20).await;
    let mut got: Vec<String> = spans
        .iter()
        .map(|s| s["traceId"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, traces);
    counted_while_down(&sidecar, "zipkin", "otlp").await;
    sidecar.stop().await;
}

#[tokio::test]
async fn the_collector_takes_otlp_json_and_protobuf_over_a_socket() {
    use prost::Message;
    let collector = EmbeddedCollector::start().await;
    let json = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": TRACE, "spanId": "00000000000000a1", "name": "GET /", "kind": 2,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000001000000"
        }]}]
    }]});
    let reply = collector
        .post_to(
            "/v1/traces",
            "application/json",
            json.to_string().into_bytes(),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "{}"));
    assert_eq!(reply.headers["content-type"], "application/json");

    let mut request: tracehop::otlp::ExportTraceServiceRequest = Default::default();
    request.resource_spans.push(tracehop::otlp::ResourceSpans {
        resource: Some(tracehop::otlp::Resource {
            attributes: vec![tracehop::otlp::KeyValue::string(
                "service.name",
                "proto-app",
            )],
            dropped_attributes_count: 0,
        }),
        scope_spans: vec![tracehop::otlp::ScopeSpans {
            spans: vec![tracehop::otlp::Span {
                trace_id: (0x4bf92f3577b34da6a3ce929d0e0e4736u128)
                    .to_be_bytes()
                    .to_vec(),
                span_id: 0xa2u64.to_be_bytes().to_vec(),
                parent_span_id: 0xa1u64.to_be_bytes().to_vec(),
                name: "SELECT".into(),
                kind: tracehop::otlp::SpanKind::Client as i32,
                start_time_unix_nano: 1_700_000_000_000_100_000,
                end_time_unix_nano: 1_700_000_000_000_900_000,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
    let reply = collector
        .post_to(
            "/v1/traces",
            "application/x-protobuf",
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/x-protobuf");
    assert!(reply.body.is_empty(), "an empty ExportTraceServiceResponse");

    let spans = collector.trace(TRACE, 2).await;
    let summary: Vec<(&str, &str, &str)> = spans
        .iter()
        .map(|s| {
            (
                s["localEndpoint"]["serviceName"].as_str().unwrap(),
                s["kind"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("json-app", "SERVER", "get /"),
            ("proto-app", "CLIENT", "select")
        ]
    );
    assert_eq!(spans[1]["parentId"], spans[0]["id"]);
    collector.stop().await;
}
