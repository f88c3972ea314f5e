//! The demo topology end to end: one request, one trace of five spans.

use serde_json::Value;

use crate::support::{Client, DEADLINE, scrape_until};
use tracehop::app::{Demo, DemoSettings, start_demo};

async fn demo(propagate: bool) -> Demo {
    start_demo(DemoSettings {
        base_port: 0,
        propagate,
        latency: false,
    })
    .await
    .expect("demo starts on ephemeral ports")
}

/// Waits until the collector holds at least `n` spans, via its HTTP API.
async fn spans_of_service(demo: &Demo, service: &str, n: usize) -> Vec<Value> {
    let url = format!(
        "http://{}/api/v2/traces?serviceName={service}&limit=100",
        demo.collector_addr
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = Client::http1().get(&url, &[]).await;
        let traces: Vec<Vec<Value>> = serde_json::from_str(&reply.body).expect("JSON traces");
        let spans: Vec<Value> = traces.into_iter().flatten().collect();
        if spans.len() >= n {
            return spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} spans",
            spans.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn find<'a>(spans: &'a [Value], service: &str, kind: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["localEndpoint"]["serviceName"] == service && s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} span of {service} in {spans:#?}"))
}

/// Asserts that `spans` are one trace, gateway -> order-service ->
/// user-service, each span the child of the one before; returns them in
/// that order.
fn assert_one_chain(spans: &[Value]) -> [&Value; 5] {
    let trace = spans[0]["traceId"].as_str().expect("trace id");
    assert!(spans.iter().all(|s| s["traceId"] == trace), "{spans:#?}");
    let gateway = find(spans, "api-gateway", "SERVER");
    let to_order = find(spans, "api-gateway", "CLIENT");
    let order = find(spans, "order-service", "SERVER");
    let to_user = find(spans, "order-service", "CLIENT");
    let user = find(spans, "user-service", "SERVER");
    assert!(
        gateway.get("parentId").is_none(),
        "the gateway's span is the root"
    );
    for (child, parent) in [
        (to_order, gateway),
        (order, to_order),
        (to_user, order),
        (user, to_user),
    ] {
        assert_eq!(
            child["parentId"], parent["id"],
            "{child} should be a child of {parent}"
        );
    }
    [gateway, to_order, order, to_user, user]
}

#[tokio::test]
async fn one_request_is_one_trace_across_three_services() {
    let demo = demo(true).await;
    let reply = Client::http1()
        .get(&format!("http://{}/api/orders/1001", demo.gateway), &[])
        .await;
    assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.body);
    assert!(
        reply.body.contains("Ada Lovelace"),
        "order enriched with its user"
    );

    let spans = spans_of_service(&demo, "api-gateway", 5).await;
    assert_eq!(
        spans.len(),
        5,
        "exactly one trace of five spans: {spans:#?}"
    );
    let trace = spans[0]["traceId"].as_str().expect("trace id").to_owned();
    let [gateway, to_order, _, to_user, _] = assert_one_chain(&spans);
    assert_eq!(gateway["name"], "get /api/orders/{id}");
    assert_eq!(to_order["remoteEndpoint"]["serviceName"], "order-service");
    assert_eq!(to_user["remoteEndpoint"]["serviceName"], "user-service");
    assert!(to_order.get("shared").is_none());

    let by_id = Client::http1()
        .get(
            &format!("http://{}/api/v2/trace/{trace}", demo.collector_addr),
            &[],
        )
        .await;
    let one: Vec<Value> = serde_json::from_str(&by_id.body).expect("trace JSON");
    assert_eq!(one.len(), 5);
    // The apps copy headers: inference is checked against them.
    let summary = demo.parent_summary();
    assert_eq!(
        (summary.confirmed, summary.contradicted),
        (2, 0),
        "{summary}"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn apps_that_drop_headers_still_give_one_trace_per_request_by_inference() {
    let demo = demo(false).await;
    for id in [1001, 1002] {
        let reply = Client::http1()
            .get(&format!("http://{}/api/orders/{id}", demo.gateway), &[])
            .await;
        assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.body);
    }
    let url = format!(
        "http://{}/api/v2/traces?serviceName=api-gateway&limit=10",
        demo.collector_addr
    );
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let traces = loop {
        let body = Client::http1().get(&url, &[]).await.body;
        let traces: Vec<Vec<Value>> = serde_json::from_str(&body).expect("JSON traces");
        let complete = traces.len() == 2 && traces.iter().all(|t| t.len() == 5);
        if complete || tokio::time::Instant::now() > deadline {
            break traces;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(traces.len(), 2, "one trace per request: {traces:#?}");
    for spans in &traces {
        assert_eq!(spans.len(), 5, "five connected spans: {spans:#?}");
        let [_, to_order, _, to_user, _] = assert_one_chain(spans);
        for client in [to_order, to_user] {
            assert_eq!(client["tags"]["tracehop.parent"], "inferred", "{client:#}");
        }
    }
    let gateway_admin = format!("http://{}", demo.sidecars[0].1.admin_addr);
    // The app still sends no context: counted as before, and inferred.
    scrape_until(
        &gateway_admin,
        r#"tracehop_outbound_untraced_requests_total{route="order-service"} 2"#,
    )
    .await;
    scrape_until(
        &gateway_admin,
        r#"tracehop_inferred_parents_total{outcome="inferred",route="order-service"} 2"#,
    )
    .await;
    let summary = demo.parent_summary();
    assert_eq!((summary.inferred, summary.ambiguous), (4, 0), "{summary}");
    demo.shutdown().await;
}
