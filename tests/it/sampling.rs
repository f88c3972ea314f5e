//! Sampling end to end: keep-on-outcome and live reload of the sampling section.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Response, StatusCode};
use serde_json::Value;

use crate::support::{
    Client, FakeCollector, FakeUpstream, Sidecar, Stopper, Yaml, bind, scrape_until, upstream_with,
};
use tracehop::server::{Body, full};

/// An upstream that answers `/slow` after `delay` and everything else at once.
async fn slow_upstream(delay: Duration) -> (SocketAddr, Stopper) {
    upstream_with(move |request| async move {
        if request.uri().path() == "/slow" {
            // The slowness under test: the server side of the request, not a wait in the test.
            tokio::time::sleep(delay).await;
        }
        Response::<Body>::new(full("ok"))
    })
    .await
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["tags"][key].as_str()
}

#[tokio::test]
async fn unsampled_failures_are_kept_with_their_reason() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        other: "sampling:\n  root: {type: never}\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let client = Client::http1();
    let ok = client.get(&format!("{}/fine", sidecar.base), &[]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let failed = client
        .get(&format!("{}/status/503", sidecar.base), &[])
        .await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    let spans = collector.wait_for(1).await;
    scrape_until(
        &sidecar.admin,
        r#"tracehop_sampling_decisions_total{reason="kept_error",sampled="true"} 1"#,
    )
    .await;
    sidecar.stop().await;
    let spans_after_flush = collector.spans();
    assert_eq!(
        spans_after_flush.len(),
        1,
        "only the failure is exported: {spans_after_flush:?}"
    );
    let span = &spans[0];
    assert_eq!(tag(span, "url.path"), Some("/status/503"));
    assert_eq!(tag(span, "sampling.reason"), Some("error"));
    assert!(span.get("debug").is_none());
    let sent = upstream.last();
    let flags = sent.headers["traceparent"]
        .to_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(flags, "02", "the upstream was told: not sampled");
}

#[tokio::test]
async fn unsampled_upstream_errors_are_kept() {
    let collector = FakeCollector::start().await;
    // A port with nothing listening: bind, note the address, close.
    let dead = bind().await.1;
    let yaml = Yaml {
        other: "sampling:\n  root: {type: never}\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, dead, collector.addr).await;
    let reply = Client::http1().get(&sidecar.base, &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let spans = collector.wait_for(1).await;
    assert_eq!(tag(&spans[0], "sampling.reason"), Some("error"));
    assert!(tag(&spans[0], "error").is_some());
    sidecar.stop().await;
}

#[tokio::test]
async fn unsampled_slow_requests_are_kept_and_fast_ones_are_not() {
    let (upstream, _stop) = slow_upstream(Duration::from_millis(300)).await;
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        other: "sampling:\n  root: {type: never}\n  keep: {slower_than: 150ms}\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream, collector.addr).await;
    let client = Client::http1();
    client.get(&format!("{}/fast", sidecar.base), &[]).await;
    client.get(&format!("{}/slow", sidecar.base), &[]).await;
    let spans = collector.wait_for(1).await;
    scrape_until(
        &sidecar.admin,
        r#"tracehop_sampling_decisions_total{reason="never",sampled="false"} 2"#,
    )
    .await;
    sidecar.stop().await;
    assert_eq!(
        collector.spans().len(),
        1,
        "the fast request exports nothing"
    );
    assert_eq!(tag(&spans[0], "url.path"), Some("/slow"));
    assert_eq!(tag(&spans[0], "sampling.reason"), Some("slow"));
    assert!(spans[0]["duration"].as_u64().unwrap() >= 150_000);
}

#[tokio::test]
async fn reload_changes_decisions_without_dropping_connections() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let never = Yaml {
        other: "sampling:\n  root: {type: never}\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(never, upstream.addr, collector.addr).await;
    // One pooled HTTP/1.1 connection, reused across the reload.
    let client = Client::http1();
    client.get(&format!("{}/before", sidecar.base), &[]).await;
    let always = Yaml {
        other: "sampling:\n  root: {type: ratio, ratio: 1}\n",
        ..Yaml::default()
    };
    sidecar
        .running
        .reload_sampling(
            &always.render(upstream.addr, collector.addr),
            Default::default(),
        )
        .expect("valid reload");
    let reply = client.get(&format!("{}/after", sidecar.base), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let spans = collector.wait_for(1).await;
    assert_eq!(tag(&spans[0], "url.path"), Some("/after"));
    scrape_until(
        &sidecar.admin,
        r#"tracehop_sampling_decisions_total{reason="ratio",sampled="true"} 1"#,
    )
    .await;

    // A broken text is refused with every problem, and the ratio stays.
    let broken = Yaml {
        other: "sampling:\n  root: {type: ratio, ratio: 3}\n  rules: [{name: x}]\n",
        ..Yaml::default()
    };
    let errors = sidecar
        .running
        .reload_sampling(
            &broken.render(upstream.addr, collector.addr),
            Default::default(),
        )
        .expect_err("invalid reload");
    for path in [
        "sampling.root.ratio",
        "sampling.rules[0].sampler",
        "sampling.rules[0]",
    ] {
        assert!(errors.has(path), "missing {path} in {errors}");
    }
    client.get(&format!("{}/still", sidecar.base), &[]).await;
    collector.wait_for(2).await;
    sidecar.stop().await;
    let paths: Vec<_> = collector
        .spans()
        .iter()
        .map(|s| tag(s, "url.path").map(str::to_owned))
        .collect();
    assert_eq!(
        paths,
        [Some("/after".to_owned()), Some("/still".to_owned())]
    );
}
