//! The sampler's buffer, decisions, late spans and early decisions, on
//! paused tokio time.

use super::*;
use crate::collector::decode::decode_span;
use serde_json::{Value, json};

const ERROR_TRACE: u128 = 0xe;

fn sampler(yaml: &str) -> (TailSampler, CollectorMetrics) {
    let config = crate::config::load_tail_sampling(yaml).unwrap();
    let metrics = CollectorMetrics::new();
    let keys = Arc::default();
    let sampler = TailSampler::new(&config, usize::MAX, metrics.clone(), keys, Instant::now());
    (sampler, metrics)
}

const ERRORS: &str = "decision_wait: 5s\npolicies: [{ name: errors, type: status_code }]";

fn span(trace: u128, id: u64, extra: Value) -> Span {
    let mut value = json!({"traceId": format!("{trace:032x}"), "id": format!("{id:016x}")});
    if let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) {
        map.extend(extra);
    }
    decode_span(value).unwrap()
}

/// A root and a child; the child failed when `trace` is [`ERROR_TRACE`].
fn trace(trace: u128) -> Vec<Span> {
    let tags = if trace == ERROR_TRACE {
        json!({"error": "500"})
    } else {
        json!({})
    };
    vec![
        span(
            trace,
            2,
            json!({"parentId": "0000000000000001", "tags": tags}),
        ),
        span(trace, 1, json!({"name": "get /"})),
    ]
}

fn decoded(kept: &[Kept]) -> Vec<(u128, Vec<Span>)> {
    kept.iter()
        .map(|k| {
            let spans = k.spans.iter().filter_map(CompactSpan::decode).collect();
            (k.trace_id.get(), spans)
        })
        .collect()
}

fn scrape(metrics: &CollectorMetrics, series: &str) -> bool {
    String::from_utf8(metrics.render())
        .unwrap()
        .lines()
        .any(|line| line == series)
}

#[tokio::test(start_paused = true)]
async fn decides_after_decision_wait_and_tags_the_kept_root() {
    let (mut sampler, metrics) = sampler(ERRORS);
    assert!(sampler.offer(trace(ERROR_TRACE), Instant::now()).is_empty());
    assert!(sampler.offer(trace(0xa), Instant::now()).is_empty());
    assert_eq!(sampler.held_traces(), 2);
    assert!(sampler.memory_bytes() > 0);
    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert!(sampler.decide_due(Instant::now()).is_empty(), "not yet");
    tokio::time::advance(Duration::from_millis(1)).await;
    let kept = decoded(&sampler.decide_due(Instant::now()));
    assert_eq!(kept.len(), 1, "only the error trace");
    let (trace_id, spans) = &kept[0];
    assert_eq!(*trace_id, ERROR_TRACE);
    assert_eq!(spans.len(), 2, "whole");
    assert_eq!(
        spans[1].tags.get(POLICY_TAG).map(String::as_str),
        Some("errors")
    );
    assert!(!spans[0].tags.contains_key(POLICY_TAG), "only the root");
    assert_eq!(
        (sampler.held_traces(), sampler.memory_bytes() > 0),
        (0, true)
    );
    assert!(scrape(
        &metrics,
        r#"tracehop_collector_tail_traces_total{outcome="kept"} 1"#
    ));
    assert!(scrape(
        &metrics,
        r#"tracehop_collector_tail_traces_total{outcome="dropped"} 1"#
    ));
    assert!(scrape(&metrics, "tracehop_collector_tail_traces_held 0"));
}

#[tokio::test(start_paused = true)]
async fn the_clock_starts_at_a_traces_first_span() {
    let (mut sampler, _) = sampler(ERRORS);
    let mut spans = trace(ERROR_TRACE);
    let child = spans.remove(0);
    sampler.offer(spans, Instant::now());
    tokio::time::advance(Duration::from_secs(3)).await;
    // A later span does not restart the clock.
    sampler.offer(vec![child], Instant::now());
    tokio::time::advance(Duration::from_secs(2)).await;
    let kept = decoded(&sampler.decide_due(Instant::now()));
    assert_eq!(
        kept[0].1.len(),
        2,
        "decided 5 s after the first span, whole"
    );
}

#[tokio::test(start_paused = true)]
async fn late_spans_follow_the_remembered_decision() {
    let (mut sampler, metrics) = sampler(ERRORS);
    sampler.offer(trace(ERROR_TRACE), Instant::now());
    sampler.offer(trace(0xa), Instant::now());
    tokio::time::advance(Duration::from_secs(5)).await;
    sampler.decide_due(Instant::now());
    let late = vec![
        span(ERROR_TRACE, 3, json!({"parentId": "0000000000000001"})),
        span(0xa, 3, json!({"parentId": "0000000000000001"})),
        span(ERROR_TRACE, 4, json!({"parentId": "0000000000000001"})),
    ];
    let kept = decoded(&sampler.offer(late, Instant::now()));
    assert_eq!(kept.len(), 1);
    let ids: Vec<u64> = kept[0].1.iter().map(|s| s.id.get()).collect();
    assert_eq!((kept[0].0, ids), (ERROR_TRACE, vec![3, 4]));
    assert!(
        !kept[0].1[0].tags.contains_key(POLICY_TAG),
        "tagged once, on the root"
    );
    assert_eq!(
        sampler.held_traces(),
        0,
        "nothing waits for a decided trace"
    );
    assert!(scrape(
        &metrics,
        r#"tracehop_collector_tail_late_spans_total{outcome="kept"} 2"#
    ));
    assert!(scrape(
        &metrics,
        r#"tracehop_collector_tail_late_spans_total{outcome="dropped"} 1"#
    ));
}

#[tokio::test(start_paused = true)]
async fn a_forgotten_decision_starts_the_trace_again() {
    let yaml = "decision_cache: 1\npolicies: [{ name: errors, type: status_code }]";
    let (mut sampler, _) = sampler(yaml);
    sampler.offer(trace(0xa), Instant::now());
    sampler.offer(trace(0xb), Instant::now());
    tokio::time::advance(Duration::from_secs(5)).await;
    sampler.decide_due(Instant::now());
    // 0xa's decision was pushed out by 0xb's: its late span is held anew.
    sampler.offer(vec![span(0xa, 9, json!({}))], Instant::now());
    sampler.offer(vec![span(0xb, 9, json!({}))], Instant::now());
    assert_eq!(sampler.held_traces(), 1);
}

#[tokio::test(start_paused = true)]
async fn max_traces_decides_the_oldest_early_and_counts_it() {
    let yaml = "max_traces: 2\npolicies: [{ name: errors, type: status_code }]";
    let (mut sampler, metrics) = sampler(yaml);
    sampler.offer(trace(ERROR_TRACE), Instant::now());
    tokio::time::advance(Duration::from_millis(10)).await;
    sampler.offer(trace(0xa), Instant::now());
    let kept = sampler.offer(trace(0xb), Instant::now());
    // The oldest (the error trace) is decided at once, and kept whole.
    let kept = decoded(&kept);
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].0, kept[0].1.len()), (ERROR_TRACE, 2));
    assert_eq!(sampler.held_traces(), 2);
    sampler.offer(trace(0xc), Instant::now());
    assert_eq!(sampler.held_traces(), 2);
    assert!(scrape(
        &metrics,
        "tracehop_collector_tail_early_decisions_total 2"
    ));
    // The rest wait their full time.
    tokio::time::advance(Duration::from_millis(4_990)).await;
    sampler.decide_due(Instant::now());
    assert_eq!(sampler.held_traces(), 2);
    tokio::time::advance(Duration::from_millis(10)).await;
    sampler.decide_due(Instant::now());
    assert_eq!(sampler.held_traces(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_memory_share_decides_the_oldest_early() {
    let (mut sampler, metrics) = sampler(ERRORS);
    sampler.offer(trace(0xa), Instant::now());
    let one_trace = sampler.memory_bytes();
    sampler.set_memory_limit(one_trace * 2);
    sampler.offer(trace(0xb), Instant::now());
    assert_eq!(sampler.held_traces(), 2, "exactly at the limit");
    sampler.offer(trace(0xc), Instant::now());
    assert_eq!(sampler.held_traces(), 2);
    assert_eq!(metrics.tail_early_decisions.get(), 1);
    assert!(scrape(
        &metrics,
        "tracehop_collector_tail_early_decisions_total 1"
    ));
}

#[tokio::test(start_paused = true)]
async fn decide_all_empties_the_buffer() {
    let (mut sampler, _) = sampler(ERRORS);
    sampler.offer(trace(ERROR_TRACE), Instant::now());
    sampler.offer(trace(0xa), Instant::now());
    let kept = sampler.decide_all(Instant::now());
    assert_eq!(kept.len(), 1);
    assert_eq!(sampler.held_traces(), 0);
}
