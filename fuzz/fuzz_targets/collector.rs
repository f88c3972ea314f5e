//! The collector's ingestion: any bytes as a Zipkin JSON, Zipkin proto3,
//! OTLP protobuf and OTLP JSON upload, into a collector that stores and one
//! that tail-samples (with a memory bound small enough to evict). Never a
//! panic, every read answers, and what the collector serves it accepts
//! back: the traces `/api/v2/traces` returns are a valid Zipkin JSON
//! upload, which a fresh collector stores and serves again unchanged.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tracehop::collector::{Collector, CollectorConfig, Format, OtlpEncoding};
use tracehop::config::{TailPolicy, TailRule, TailSampling};

/// Every span whose timestamp a collector keeps (2^53 - 1 µs) is in this
/// window: `endTs` at the end of it, `lookback` all of it (milliseconds).
const EVERYTHING: &str = "endTs=9007199254740&lookback=9007199254740&limit=10000";

fuzz_target!(|data: &[u8]| {
    runtime().block_on(check(data));
});

/// One runtime for every run (time paused: tail sampling's clock stands
/// still unless a run moves it).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

async fn check(data: &[u8]) {
    let plain = Collector::new(CollectorConfig::default());
    let sampling = Collector::new(CollectorConfig {
        max_memory: 64 * 1024,
        tail_sampling: Some(tail_sampling()),
        ..CollectorConfig::default()
    });
    for collector in [&plain, &sampling] {
        let _ = collector.ingest_body(Format::Json, data);
        let _ = collector.ingest_body(Format::Proto, data);
        let _ = collector.ingest_otlp(OtlpEncoding::Protobuf, data);
        let _ = collector.ingest_otlp(OtlpEncoding::Json, data);
    }
    sampling.decide_all();
    for collector in [&plain, &sampling] {
        let traces = traces(collector).await;
        for trace in &traces {
            let id = trace[0]["traceId"]
                .as_str()
                .expect("a served span has a trace id");
            let (status, _) = get(collector, &format!("/api/v2/trace/{id}")).await;
            assert_eq!(status, StatusCode::OK, "trace {id} is listed but not found");
        }
        for path in [
            "/api/v2/services".to_owned(),
            format!("/api/v2/dependencies?{EVERYTHING}"),
            "/metrics".to_owned(),
        ] {
            let (status, _) = get(collector, &path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        served_spans_are_accepted_back(traces).await;
    }
}

/// The collector's tail-sampling policies, one of each kind.
fn tail_sampling() -> TailSampling {
    let policy = |name: &str, rule| TailPolicy {
        name: name.to_owned(),
        rule,
    };
    TailSampling {
        decision_wait: Duration::from_secs(5),
        max_traces: 100,
        decision_cache: 100,
        policies: vec![
            policy("errors", TailRule::StatusCode),
            policy(
                "slow",
                TailRule::Latency {
                    threshold: Duration::from_millis(1),
                },
            ),
            policy(
                "tagged",
                TailRule::Tag {
                    key: "tier".to_owned(),
                    values: vec!["gold".to_owned()],
                },
            ),
            policy("some", TailRule::Probabilistic { ratio: 0.5 }),
            policy(
                "budget",
                TailRule::RateLimiting {
                    spans_per_second: 100.0,
                },
            ),
        ],
    }
}

/// Re-uploads what was served to a fresh collector, which must store every
/// span and serve the same traces.
async fn served_spans_are_accepted_back(served: Vec<Vec<Value>>) {
    let spans: Vec<&Value> = served.iter().flatten().collect();
    let upload = serde_json::to_vec(&spans).expect("JSON values encode");
    let again = Collector::new(CollectorConfig::default());
    let stored = again
        .ingest_json(&upload)
        .unwrap_or_else(|error| panic!("served spans refused: {error}"));
    assert_eq!(stored, spans.len());
    assert_eq!(canonical(traces(&again).await), canonical(served));
}

/// Every trace the collector serves.
async fn traces(collector: &Collector) -> Vec<Vec<Value>> {
    let (status, body) = get(collector, &format!("/api/v2/traces?{EVERYTHING}")).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).expect("/api/v2/traces is a list of lists of spans")
}

/// The traces as sorted text: their order and their spans' order aside.
fn canonical(traces: Vec<Vec<Value>>) -> Vec<Vec<String>> {
    let mut traces: Vec<Vec<String>> = traces
        .into_iter()
        .map(|trace| {
            let mut spans: Vec<String> = trace.iter().map(Value::to_string).collect();
            spans.sort();
            spans
        })
        .collect();
    traces.sort();
    traces
}

async fn get(collector: &Collector, path: &str) -> (StatusCode, Bytes) {
    let request = Request::get(path)
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let response = collector.handle(request).await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes();
    (status, body)
}
