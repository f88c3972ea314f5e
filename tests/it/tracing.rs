//! Trace context in, SERVER span out, context passed on to the upstream.

use http::StatusCode;
use serde_json::Value;

use crate::support::{Client, FakeCollector, FakeUpstream, Sidecar, Yaml};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Parses `00-trace-span-flags`.
fn traceparent(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn header(seen: &crate::support::Seen, name: &str) -> Option<String> {
    seen.headers
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

crate::on_every_path! {
async fn w3c_context_is_continued_and_the_server_span_is_its_child() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let reply = Client::http1()
        .get(
            &format!("{}/users/42?token=secret", sidecar.base),
            &[
                ("traceparent", PARENT),
                ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
                ("user-agent", "curl/8.0"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = upstream.last();
    let (trace, span, flags) = traceparent(&header(&seen, "traceparent").expect("traceparent"));
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(
        span, "00f067aa0ba902b7",
        "the upstream's parent is the sidecar's span"
    );
    assert_eq!(flags, "01");
    assert_eq!(
        header(&seen, "tracestate").as_deref(),
        Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    );

    let spans = collector.wait_for(1).await;
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(s["traceId"], trace);
    assert_eq!(s["id"], span);
    assert_eq!(s["parentId"], "00f067aa0ba902b7");
    assert_eq!(s["kind"], "SERVER");
    assert_eq!(s["name"], "get /users/{id}");
    assert_eq!(s["localEndpoint"]["serviceName"], "checkout");
    assert_eq!(s["remoteEndpoint"]["ipv4"], "127.0.0.1");
    assert!(s["remoteEndpoint"]["port"].as_u64().unwrap() > 0);
    assert!(s["timestamp"].as_u64().unwrap() > 1_600_000_000_000_000);
    assert!(s["duration"].as_u64().unwrap() >= 1);
    assert!(s.get("shared").is_none() && s.get("debug").is_none());
    let tags = &s["tags"];
    assert_eq!(tags["http.request.method"], "GET");
    assert_eq!(tags["url.path"], "/users/42");
    assert_eq!(tags["url.scheme"], "http");
    assert_eq!(tags["http.route"], "/users/{id}");
    assert_eq!(tags["http.response.status_code"], "200");
    assert_eq!(tags["network.protocol.version"], "1.1");
    assert_eq!(tags["user_agent.original"], "curl/8.0");
    assert_eq!(tags["client.address"], "127.0.0.1");
    assert!(tags.get("error").is_none());
    let text = s.to_string();
    assert!(
        !text.contains("secret"),
        "query strings are not recorded: {text}"
    );
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn a_request_without_context_starts_a_trace() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    Client::http1().get(&sidecar.base, &[]).await;
    let (trace, span, flags) =
        traceparent(&header(&upstream.last(), "traceparent").expect("traceparent"));
    // Sampled (01) and random (02): tracehop generated all 128 bits.
    assert_eq!(flags, "03");
    let spans = collector.wait_for(1).await;
    assert_eq!(spans[0]["traceId"], trace);
    assert_eq!(spans[0]["id"], span);
    assert!(spans[0].get("parentId").is_none());
    assert!(header(&upstream.last(), "b3").is_none());
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn b3_in_b3_out_with_64_bit_ids_and_debug() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    Client::http1()
        .get(
            &sidecar.base,
            &[
                ("x-b3-traceid", "a3ce929d0e0e4736"),
                ("x-b3-spanid", "00f067aa0ba902b7"),
                ("x-b3-flags", "1"),
            ],
        )
        .await;
    let seen = upstream.last();
    assert_eq!(
        header(&seen, "x-b3-traceid").as_deref(),
        Some("a3ce929d0e0e4736")
    );
    let span_id = header(&seen, "x-b3-spanid").expect("span id");
    assert_ne!(span_id, "00f067aa0ba902b7");
    // The sidecar's span is a child of the downstream's: B3 names the parent.
    assert_eq!(
        header(&seen, "x-b3-parentspanid").as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(header(&seen, "x-b3-flags").as_deref(), Some("1"));
    assert!(
        header(&seen, "traceparent").is_none(),
        "inject follows the format that came in"
    );
    let spans = collector.wait_for(1).await;
    assert_eq!(spans[0]["traceId"], "a3ce929d0e0e4736");
    assert_eq!(spans[0]["id"], span_id);
    assert_eq!(spans[0]["parentId"], "00f067aa0ba902b7");
    assert_eq!(spans[0]["debug"], true);
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn inject_both_formats_with_the_same_ids() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        other: "propagation:\n  inject: [w3c, b3single]\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    Client::http1()
        .get(&sidecar.base, &[("traceparent", PARENT)])
        .await;
    let seen = upstream.last();
    let (trace, span, _) = traceparent(&header(&seen, "traceparent").expect("traceparent"));
    assert_eq!(header(&seen, "b3"), Some(format!("{trace}-{span}-1")));
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn invalid_traceparent_restarts_the_trace_and_drops_tracestate() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    Client::http1()
        .get(
            &sidecar.base,
            &[
                (
                    "traceparent",
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
        )
        .await;
    let seen = upstream.last();
    let (trace, _, _) = traceparent(&header(&seen, "traceparent").expect("traceparent"));
    assert_ne!(trace, "00000000000000000000000000000000");
    assert!(header(&seen, "tracestate").is_none());
    let metrics = Client::http1()
        .get(&format!("{}/metrics", sidecar.admin), &[])
        .await;
    assert!(
        metrics
            .body
            .contains(r#"tracehop_trace_context_total{direction="inbound",format="invalid"} 1"#)
    );
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn unsampled_requests_pass_context_on_and_export_nothing() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        other: "sampling:\n  root: {type: never}\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    Client::http1().get(&sidecar.base, &[]).await;
    Client::http1()
        .get(&sidecar.base, &[("traceparent", PARENT)])
        .await;
    let seen = upstream.seen();
    let (_, _, flags) = traceparent(&header(&seen[0], "traceparent").expect("traceparent"));
    assert_eq!(flags, "02", "not sampled, random");
    let (_, _, flags) = traceparent(&header(&seen[1], "traceparent").expect("traceparent"));
    assert_eq!(flags, "01", "the parent's sampled decision is honoured");
    collector.wait_for(1).await;
    sidecar.stop().await;
    let spans: Vec<Value> = collector.spans();
    assert_eq!(spans.len(), 1, "only the parent-sampled request exported");
    assert_eq!(spans[0]["parentId"], "00f067aa0ba902b7");
}
}

crate::on_every_path! {
async fn exports_carry_b3_0_so_uploads_are_never_traced() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    Client::http1().get(&sidecar.base, &[]).await;
    collector.wait_for(1).await;
    let uploads = collector.uploads();
    assert_eq!(uploads[0].get("b3").expect("b3 header"), "0");
    assert_eq!(
        uploads[0].get("content-type").expect("content type"),
        "application/json"
    );
    sidecar.stop().await;
}
}
