//! Several collectors behind one sidecar (`export.zipkin` a list): every
//! span of a trace lands on exactly one collector, the same one for every
//! request of the trace, and stopping a collector keeps its traces queued
//! for it (retried, then dropped and counted) while the others' traces
//! stay where they were.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde_json::Value;

use crate::support::{Client, FakeCollector, FakeUpstream, Sidecar, eventually, scrape_until};

/// Traces sent per round; each gets two requests (two SERVER spans).
const TRACES: u32 = 60;

/// A sidecar in front of `upstream` exporting to every one of `collectors`.
async fn sidecar(upstream: SocketAddr, collectors: &[SocketAddr]) -> Sidecar {
    let urls: Vec<String> = collectors
        .iter()
        .map(|addr| format!("http://{addr}/api/v2/spans"))
        .collect();
    let text = format!(
        "service:\n  name: checkout\nlog:\n  access_log: false\n\
         inbound:\n  listen: 127.0.0.1:0\n  upstream: http://{upstream}\n\
         admin:\n  listen: 127.0.0.1:0\n\
         export:\n  zipkin: [{}]\n  batch_interval: 20ms\n  retry: {{max_elapsed: 2s}}\n  shutdown_timeout: 1s\n",
        urls.join(", ")
    );
    let config = tracehop::config::load(&text, Default::default())
        .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
    Sidecar::from_config(config).await
}

fn trace_id(i: u32) -> String {
    format!(
        "{:016x}{:016x}",
        0x5eed_0000_0000_0000_u64 + u64::from(i),
        u64::from(i) * 0x9e37_79b9
    )
}

/// Two requests in each of the traces `0..TRACES`, one parent span per request.
async fn round(sidecar: &Sidecar, round: u32) {
    let client = Client::http1();
    for i in 0..TRACES {
        for request in 0..2u32 {
            let parent = format!("{:016x}", 0x1000 + round * 16 + request + 1);
            let traceparent = format!("00-{}-{parent}-01", trace_id(i));
            let reply = client
                .get(
                    &format!("{}/users/{i}", sidecar.base),
                    &[("traceparent", &traceparent)],
                )
                .await;
            assert_eq!(reply.status, 200);
        }
    }
}

/// How many spans of each trace a collector holds.
fn per_trace(spans: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for span in spans {
        let trace = span["traceId"].as_str().expect("traceId").to_owned();
        *out.entry(trace).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn each_trace_lands_whole_on_one_collector_and_stays_there_when_another_stops() {
    let upstream = FakeUpstream::start().await;
    let mut collectors = vec![
        FakeCollector::start().await,
        FakeCollector::start().await,
        FakeCollector::start().await,
    ];
    let addrs: Vec<SocketAddr> = collectors.iter().map(|c| c.addr).collect();
    let sidecar = sidecar(upstream.addr, &addrs).await;

    round(&sidecar, 0).await;
    let total = 2 * TRACES as usize;
    eventually("every span at some collector", || {
        collectors.iter().map(|c| c.spans().len()).sum::<usize>() >= total
    })
    .await;
    let owners: Vec<BTreeMap<String, usize>> =
        collectors.iter().map(|c| per_trace(&c.spans())).collect();
    let mut seen = BTreeSet::new();
    for (n, owned) in owners.iter().enumerate() {
        assert!(!owned.is_empty(), "collector {n} got no trace: {owners:?}");
        for (trace, spans) in owned {
            assert_eq!(*spans, 2, "trace {trace} split: {owners:?}");
            assert!(
                seen.insert(trace.clone()),
                "trace {trace} on two collectors"
            );
        }
    }
    assert_eq!(seen.len(), TRACES as usize);

    // Collector 1 stops: its traces wait for it; the others' stay put.
    let stopped = collectors.remove(1);
    let stopped_traces = owners[1].clone();
    drop(stopped);
    round(&sidecar, 1).await;
    for (collector, owned) in collectors.iter().zip([&owners[0], &owners[2]]) {
        let want = 2 * owned.len();
        let spans = collector.wait_for(2 * want).await;
        let now = per_trace(&spans);
        assert_eq!(now.len(), owned.len(), "a trace moved in: {now:?}");
        assert!(
            owned.keys().all(|trace| now.get(trace) == Some(&4)),
            "the collector holds each of its traces whole: {now:?}"
        );
        assert!(stopped_traces.keys().all(|trace| !now.contains_key(trace)));
    }
    let down = format!(
        "tracehop_export_endpoint_requests_total{{endpoint=\"http://{}/api/v2/spans\",exporter=\"zipkin\",result=\"connect_error\"}}",
        addrs[1]
    );
    let text = scrape_until(&sidecar.admin, &down).await;
    assert!(
        text.contains("tracehop_export_endpoints{exporter=\"zipkin\"} 3"),
        "{text}"
    );
    let exported = |addr: SocketAddr, spans: usize| {
        format!(
            "tracehop_export_endpoint_spans_total{{endpoint=\"http://{addr}/api/v2/spans\",exporter=\"zipkin\",outcome=\"exported\"}} {spans}"
        )
    };
    assert!(
        text.contains(&exported(addrs[0], 4 * owners[0].len())),
        "{text}"
    );
    assert!(
        text.contains(&exported(addrs[2], 4 * owners[2].len())),
        "{text}"
    );
    sidecar.stop().await;
}
