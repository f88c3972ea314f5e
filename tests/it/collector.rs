//! `tracehop collector --forward`: what the embedded collector accepts is
//! relayed to another Zipkin endpoint; what it rejects is not.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::support::{
    Client, EmbeddedCollector, FakeCollector, FakeUpstream, Sidecar, Yaml, bind, client::read,
    stopper,
};
use tracehop::collector::CollectorConfig;

const BATCH: &str = r#"[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"00f067aa0ba902b7",
  "name":"get /users/{id}","kind":"SERVER","timestamp":1700000000000000,"duration":1200,
  "localEndpoint":{"serviceName":"user-service"}}]"#;

/// A fake Zipkin and the `--forward` settings that relay to it.
async fn forward_target() -> (FakeCollector, tracehop::config::ExportSettings) {
    let target = FakeCollector::start().await;
    let forward =
        tracehop::config::export_defaults_for(&format!("http://{}/api/v2/spans", target.addr))
            .expect("valid forward URL");
    (target, forward)
}

#[tokio::test]
async fn accepted_batches_are_relayed_to_the_forward_target() {
    let (target, forward) = forward_target().await;
    let (listener, addr) = bind().await;
    let (stop, shutdown) = stopper();
    let task = tokio::spawn(tracehop::app::serve_collector(
        listener,
        CollectorConfig::default(),
        Some(forward),
        shutdown,
    ));
    let post = |body: &'static str| {
        Request::post(format!("http://{addr}/api/v2/spans"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("request")
    };
    let client = Client::http1();
    assert_eq!(
        read(client.send(post("not json")).await).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        read(client.send(post(BATCH)).await).await.status,
        StatusCode::ACCEPTED
    );

    let relayed = target.wait_for(1).await;
    assert_eq!(relayed.len(), 1, "only the accepted batch is relayed");
    assert_eq!(relayed[0]["id"], "00f067aa0ba902b7");
    assert_eq!(target.uploads()[0].get("b3").expect("b3 header"), "0");
    // And the embedded collector kept it too.
    let stored = client
        .get(
            &format!("http://{addr}/api/v2/trace/4bf92f3577b34da6a3ce929d0e0e4736"),
            &[],
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    drop(stop);
    task.await.expect("join").expect("collector ran");
}

/// A span-sharing B3 tracer in the app (zipkin-js `supportsJoin`, Brave)
/// reports its SERVER span with the sidecar's span id and `shared: true`.
/// Zipkin keeps both spans; so does the embedded collector, and its graph
/// counts each hop once.
#[tokio::test]
async fn a_span_sharing_app_behind_the_sidecar_keeps_both_spans() {
    let collector = EmbeddedCollector::start().await;
    let upstream = FakeUpstream::start().await;
    let sidecar = Sidecar::start(
        Yaml::default(),
        upstream.addr,
        collector
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("addr"),
    )
    .await;
    let trace_id = "463ac35c9f6413ad48485a3953bb6124";
    let frontend_span = "a2fb4a1d1a96d312";
    let reply = Client::http1()
        .get(
            &format!("{}/users/7", sidecar.base),
            &[
                ("x-b3-traceid", trace_id),
                ("x-b3-spanid", frontend_span),
                ("x-b3-sampled", "1"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // The app joins the id it was given, as zipkin-js does, and reports
    // its span along with the frontend's CLIENT span.
    let seen = upstream.last();
    let header = |name: &str| seen.headers.get(name).map(|v| v.to_str().expect("ascii"));
    let joined = header("x-b3-spanid").expect("the sidecar sent its span id");
    let now = tracehop::span::now_micros();
    let app_span = serde_json::json!([
        {"traceId": trace_id, "id": frontend_span, "kind": "CLIENT", "name": "get",
         "timestamp": now - 5_000, "duration": 4_000,
         "localEndpoint": {"serviceName": "frontend"},
         "remoteEndpoint": {"serviceName": "checkout"}},
        {"traceId": trace_id, "id": joined, "parentId": header("x-b3-parentspanid"),
         "kind": "SERVER", "shared": true, "name": "get /users/:id",
         "timestamp": now - 3_000, "duration": 1_000,
         "localEndpoint": {"serviceName": "checkout-app"},
         "tags": {"http.route": "/users/:id"}}
    ]);
    assert_eq!(
        collector
            .post("application/json", app_span.to_string().into_bytes())
            .await,
        StatusCode::ACCEPTED
    );

    let spans = collector.trace(trace_id, 3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let with_id: Vec<_> = spans.iter().filter(|s| s["id"] == joined).collect();
    assert_eq!(
        with_id.len(),
        2,
        "both spans with the shared id: {spans:#?}"
    );
    let sidecar_span = with_id
        .iter()
        .find(|s| s.get("shared").is_none())
        .expect("sidecar's");
    let app = with_id.iter().find(|s| s["shared"] == true).expect("app's");
    assert_eq!(sidecar_span["localEndpoint"]["serviceName"], "checkout");
    assert_eq!(sidecar_span["tags"]["url.path"], "/users/7");
    assert_eq!(app["localEndpoint"]["serviceName"], "checkout-app");
    assert_eq!(app["tags"]["http.route"], "/users/:id");
    assert!(app["tags"].get("url.path").is_none(), "tags were not mixed");
    // Told no parent id or not, the shared span has the sidecar span's parent.
    assert_eq!(app["parentId"], frontend_span);
    assert_eq!(sidecar_span["parentId"], frontend_span);

    assert_eq!(
        collector.get("/api/v2/services").await,
        serde_json::json!(["checkout", "checkout-app", "frontend"])
    );
    let window = format!("endTs={}&lookback=60000", now / 1000 + 1_000);
    assert_eq!(
        collector
            .get(&format!("/api/v2/dependencies?{window}"))
            .await,
        serde_json::json!([
            {"parent": "checkout", "child": "checkout-app", "callCount": 1},
            {"parent": "frontend", "child": "checkout", "callCount": 1},
        ])
    );
    sidecar.stop().await;
    collector.stop().await;
}

/// With tail sampling, the collector holds each trace for `decision_wait`,
/// then stores and relays the kept ones whole (their root tagged with the
/// policy that kept them) and nothing of the others; `/metrics` counts it.
#[tokio::test]
async fn tail_sampling_keeps_and_relays_only_kept_traces() {
    let (target, forward) = forward_target().await;
    let tail = tracehop::config::load_tail_sampling(
        "decision_wait: 200ms\npolicies: [{ name: errors, type: status_code }]",
    )
    .expect("valid tail sampling");
    let config = CollectorConfig {
        tail_sampling: Some(tail),
        ..CollectorConfig::default()
    };
    let (listener, addr) = bind().await;
    let (stop, shutdown) = stopper();
    let task = tokio::spawn(tracehop::app::serve_collector(
        listener,
        config,
        Some(forward),
        shutdown,
    ));
    let span = |trace: &str, id: &str, parent: Option<&str>, error: bool| {
        let mut span = serde_json::json!({"traceId": trace, "id": id, "name": "get /",
            "timestamp": 1_700_000_000_000_000u64, "duration": 10,
            "localEndpoint": {"serviceName": "svc"}});
        if let Some(parent) = parent {
            span["parentId"] = parent.into();
        }
        if error {
            span["tags"] = serde_json::json!({"error": "500"});
        }
        span
    };
    let (failed, fine) = ("000000000000000e", "000000000000000a");
    let root = "0000000000000001";
    // Each trace's spans come in two uploads, as from two sidecars.
    let uploads = [
        vec![
            span(failed, root, None, false),
            span(fine, root, None, false),
        ],
        vec![
            span(failed, "0000000000000002", Some(root), true),
            span(fine, "0000000000000002", Some(root), false),
        ],
    ];
    let client = Client::http1();
    for upload in uploads {
        let request = Request::post(format!("http://{addr}/api/v2/spans"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&upload).unwrap())))
            .expect("request");
        assert_eq!(
            read(client.send(request).await).await.status,
            StatusCode::ACCEPTED
        );
    }
    let relayed = target.wait_for(2).await;
    assert_eq!(relayed.len(), 2, "the kept trace, whole");
    assert!(relayed.iter().all(|span| span["traceId"] == failed));
    let root_span = relayed
        .iter()
        .find(|span| span["id"] == root)
        .expect("root");
    assert_eq!(root_span["tags"][tracehop::collector::POLICY_TAG], "errors");
    let trace = |id: &str| format!("http://{addr}/api/v2/trace/{id}");
    assert_eq!(client.get(&trace(failed), &[]).await.status, StatusCode::OK);
    assert_eq!(
        client.get(&trace(fine), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let metrics = client.get(&format!("http://{addr}/metrics"), &[]).await;
    let text = metrics.body;
    for series in [
        r#"tracehop_collector_tail_traces_total{outcome="kept"} 1"#,
        r#"tracehop_collector_tail_traces_total{outcome="dropped"} 1"#,
        r#"tracehop_collector_tail_policy_decisions_total{outcome="kept",policy="errors"} 1"#,
        "tracehop_collector_tail_traces_held 0",
        "tracehop_collector_stored_spans 2",
        "tracehop_collector_memory_limit_bytes 268435456",
    ] {
        assert!(
            text.lines().any(|line| line == series),
            "{series} in\n{text}"
        );
    }
    drop(stop);
    task.await.expect("join").expect("collector ran");
}
