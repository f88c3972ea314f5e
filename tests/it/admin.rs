//! The admin listener's metrics after real traffic.

use crate::support::{Client, FakeCollector, FakeUpstream, Sidecar, Yaml, scrape_until};

#[tokio::test]
async fn metrics_count_requests_spans_and_formats() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let client = Client::http1();
    client.get(&format!("{}/a", sidecar.base), &[]).await;
    client
        .get(
            &format!("{}/status/503", sidecar.base),
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        )
        .await;
    collector.wait_for(2).await;
    let text = scrape_until(
        &sidecar.admin,
        r#"tracehop_spans_exported_total{exporter="zipkin"} 2"#,
    )
    .await;
    for line in [
        r#"tracehop_requests_total{direction="inbound",fallback="none",method="GET",path="direct",status_class="2xx"} 1"#,
        r#"tracehop_requests_total{direction="inbound",fallback="none",method="GET",path="direct",status_class="5xx"} 1"#,
        r#"tracehop_request_duration_seconds_count{direction="inbound",method="GET",status_class="2xx"} 1"#,
        r#"tracehop_trace_context_total{direction="inbound",format="none"} 1"#,
        r#"tracehop_trace_context_total{direction="inbound",format="b3"} 1"#,
        r#"tracehop_sampling_decisions_total{reason="parent_sampled",sampled="true"} 1"#,
        r#"tracehop_requests_in_flight{direction="inbound"} 0"#,
        r#"tracehop_spans_exported_total{exporter="zipkin"} 2"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(!text.contains("/status/503"), "no raw paths in labels");
    sidecar.stop().await;
}

/// An idle keep-alive client connection parks after 100 ms: counted open
/// and parked, then neither once the client closes it.
#[tokio::test]
async fn connection_gauges_count_open_and_parked_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let addr = sidecar.base.trim_start_matches("http://");
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    scrape_until(
        &sidecar.admin,
        r#"tracehop_connections_parked{direction="inbound"} 1"#,
    )
    .await;
    let text = scrape_until(
        &sidecar.admin,
        r#"tracehop_connections_open{direction="inbound"} 1"#,
    )
    .await;
    assert!(
        text.contains(r#"tracehop_connections_open{direction="outbound"} 0"#),
        "{text}"
    );
    drop(client);
    scrape_until(
        &sidecar.admin,
        r#"tracehop_connections_parked{direction="inbound"} 0"#,
    )
    .await;
    scrape_until(
        &sidecar.admin,
        r#"tracehop_connections_open{direction="inbound"} 0"#,
    )
    .await;
    sidecar.stop().await;
}
