//! Tail-sampling policies: what each keeps, judged from a trace's facts.
//!
//! A trace's spans are held compactly encoded, so the policies never read
//! them back: as each span arrives, [`Policies::observe`] folds what the
//! policies need into the trace's [`Facts`] (span count, error, root
//! duration, start and end, one bit per `tag` rule). At the decision every
//! policy is evaluated and counted, as the OpenTelemetry Collector's
//! `tail_sampling` processor does; the trace is kept when any keeps it, and
//! the first that does (in configuration order) names itself.
//!
//! - `status_code`: any span carries Zipkin's `error` tag (how Zipkin and
//!   tracehop mark a failed call; OTLP's `STATUS_CODE_ERROR` is decoded to it).
//! - `latency`: the root span's duration, or without a root (or without its
//!   duration) the whole trace's, from its earliest start to its latest end.
//! - `tag`: some span has the key with one of the values.
//! - `probabilistic`: [`Threshold`], the sidecar's consistent ratio sampler
//!   on the trace id's random bits, so a collector at ratio r keeps exactly
//!   the traces a sidecar at ratio r would.
//! - `rate_limiting`: a token bucket of `spans_per_second` tokens (the
//!   sidecar's [`TokenBucket`]); a trace takes one per span, all or none.
//! - `and`: every sub-rule keeps. They are evaluated in order and stop at
//!   the first that does not keep, so a `rate_limiting` placed last spends
//!   its budget only on traces the others keep ("at most N spans/s of slow
//!   checkouts").

use std::time::Duration;

use prometheus::IntCounter;

use crate::collector::model::Span;
use crate::config::{RateLimit, TailPolicy, TailRule};
use crate::metrics::CollectorMetrics;
use crate::sampling::{Threshold, TokenBucket};
use crate::span::TraceId;

/// What the policies need to know of a trace, updated per span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Spans seen.
    pub spans: u64,
    /// Some span carries the `error` tag.
    pub error: bool,
    /// The root span's duration (microseconds), once seen.
    pub root_duration: Option<u64>,
    /// Earliest start and latest end seen (epoch microseconds).
    pub start: Option<u64>,
    pub end: Option<u64>,
    /// Bit `i` set when some span matched tag rule `i`.
    pub tags: u64,
}

impl Facts {
    /// The trace's duration as `latency` reads it (microseconds).
    fn duration(&self) -> Option<u64> {
        self.root_duration
            .or_else(|| Some(self.end?.saturating_sub(self.start?)))
    }
}

/// One rule, ready to evaluate.
#[derive(Debug)]
enum Rule {
    StatusCode,
    /// Microseconds.
    Latency(u64),
    /// The bit of the tag rule in [`Facts::tags`].
    Tag(u32),
    Probabilistic(Threshold),
    RateLimiting(TokenBucket),
    And(Vec<Rule>),
}

/// A named policy and its decision counters.
#[derive(Debug)]
struct Policy {
    name: String,
    rule: Rule,
    kept: IntCounter,
    dropped: IntCounter,
}

/// Every configured policy, in order.
#[derive(Debug)]
pub struct Policies {
    /// (key, values) of each tag rule, by bit.
    tag_rules: Vec<(String, Vec<String>)>,
    policies: Vec<Policy>,
}

impl Policies {
    /// The policies of `config`, counting into `metrics`.
    pub fn new(config: &[TailPolicy], metrics: &CollectorMetrics) -> Self {
        let mut tag_rules = Vec::new();
        let policies = config
            .iter()
            .map(|policy| Policy {
                name: policy.name.clone(),
                rule: compile(&policy.rule, &mut tag_rules),
                kept: metrics.tail_policy_decision(&policy.name, true),
                dropped: metrics.tail_policy_decision(&policy.name, false),
            })
            .collect();
        Self {
            tag_rules,
            policies,
        }
    }

    /// Folds `span` into its trace's `facts`.
    pub fn observe(&self, facts: &mut Facts, span: &Span) {
        facts.spans += 1;
        facts.error |= span.has_error_tag();
        if span.parent_id.is_none() && span.duration.is_some() {
            facts.root_duration = span.duration;
        }
        if let Some(start) = span.timestamp {
            facts.start = Some(facts.start.map_or(start, |s| s.min(start)));
            let end = start.saturating_add(span.duration.unwrap_or(0));
            facts.end = Some(facts.end.map_or(end, |e| e.max(end)));
        }
        for (bit, (key, values)) in self.tag_rules.iter().enumerate() {
            if span
                .tags
                .get(key)
                .is_some_and(|value| values.contains(value))
            {
                facts.tags |= 1 << bit;
            }
        }
    }

    /// Evaluates every policy (each counted); the name of the first that
    /// keeps the trace, or `None` when none does. `now_ns` is for rate
    /// limits (nanoseconds since the sampler started).
    pub fn decide(&self, trace_id: TraceId, facts: &Facts, now_ns: u64) -> Option<&str> {
        let mut keeper = None;
        for policy in &self.policies {
            let keeps = evaluate(&policy.rule, trace_id, facts, now_ns);
            if keeps {
                policy.kept.inc();
                keeper = keeper.or(Some(policy.name.as_str()));
            } else {
                policy.dropped.inc();
            }
        }
        keeper
    }
}

fn compile(rule: &TailRule, tag_rules: &mut Vec<(String, Vec<String>)>) -> Rule {
    match rule {
        TailRule::StatusCode => Rule::StatusCode,
        TailRule::Latency { threshold } => Rule::Latency(micros(*threshold)),
        TailRule::Tag { key, values } => {
            tag_rules.push((key.clone(), values.clone()));
            // Validation allows at most 64 tag rules.
            Rule::Tag(u32::try_from(tag_rules.len() - 1).unwrap_or(u32::MAX))
        }
        TailRule::Probabilistic { ratio } => Rule::Probabilistic(Threshold::new(*ratio)),
        TailRule::RateLimiting { spans_per_second } => {
            Rule::RateLimiting(TokenBucket::new(RateLimit {
                per_second: *spans_per_second,
                // One second's worth may pass at once.
                burst: spans_per_second.clamp(1.0, f64::from(u32::MAX)) as u32,
            }))
        }
        TailRule::And(rules) => Rule::And(rules.iter().map(|r| compile(r, tag_rules)).collect()),
    }
}

fn evaluate(rule: &Rule, trace_id: TraceId, facts: &Facts, now_ns: u64) -> bool {
    match rule {
        Rule::StatusCode => facts.error,
        Rule::Latency(threshold) => facts.duration().is_some_and(|d| d >= *threshold),
        Rule::Tag(bit) => facts.tags & 1u64.checked_shl(*bit).unwrap_or(0) != 0,
        Rule::Probabilistic(threshold) => threshold.samples(trace_id),
        Rule::RateLimiting(bucket) => bucket.try_acquire_n(now_ns, facts.spans),
        Rule::And(rules) => rules
            .iter()
            .all(|rule| evaluate(rule, trace_id, facts, now_ns)),
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::decode_span;
    use serde_json::{Value, json};

    const SECOND: u64 = 1_000_000_000;

    fn policies(yaml: &str) -> (Policies, CollectorMetrics) {
        let config = crate::config::load_tail_sampling(yaml).unwrap();
        let metrics = CollectorMetrics::new();
        (Policies::new(&config.policies, &metrics), metrics)
    }

    fn span(trace: u128, id: u64, extra: Value) -> Span {
        let mut value = json!({"traceId": format!("{trace:032x}"), "id": format!("{id:016x}")});
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) {
            map.extend(extra);
        }
        decode_span(value).unwrap()
    }

    fn facts(policies: &Policies, spans: &[Span]) -> Facts {
        let mut facts = Facts::default();
        for span in spans {
            policies.observe(&mut facts, span);
        }
        facts
    }

    fn trace_id(value: u128) -> TraceId {
        TraceId::new(value).unwrap()
    }

    #[test]
    fn status_code_keeps_a_trace_with_any_error_span() {
        let (p, metrics) = policies("policies: [{ name: errors, type: status_code }]");
        let ok = [
            span(1, 1, json!({})),
            span(1, 2, json!({"tags": {"http.response.status_code": "200"}})),
        ];
        let failed = [
            span(2, 1, json!({})),
            span(
                2,
                2,
                json!({"parentId": "0000000000000001", "tags": {"error": "502"}}),
            ),
        ];
        assert_eq!(p.decide(trace_id(1), &facts(&p, &ok), 0), None);
        assert_eq!(
            p.decide(trace_id(2), &facts(&p, &failed), 0),
            Some("errors")
        );
        let text = String::from_utf8(metrics.render()).unwrap();
        for outcome in ["kept", "dropped"] {
            let series = format!(
                "tracehop_collector_tail_policy_decisions_total{{outcome=\"{outcome}\",policy=\"errors\"}} 1"
            );
            assert!(text.contains(&series), "{series} in\n{text}");
        }
    }

    #[test]
    fn latency_reads_the_root_else_the_whole_trace() {
        let (p, _) = policies("policies: [{ name: slow, type: latency, threshold: 500ms }]");
        let decide = |spans: &[Span]| p.decide(trace_id(1), &facts(&p, spans), 0).is_some();
        let t0 = 1_700_000_000_000_000u64;
        // A fast root with a slow child (an async tail): the root rules.
        assert!(!decide(&[
            span(1, 1, json!({"timestamp": t0, "duration": 100_000})),
            span(
                1,
                2,
                json!({"parentId": "0000000000000001", "timestamp": t0, "duration": 900_000})
            ),
        ]));
        assert!(decide(&[span(
            1,
            1,
            json!({"timestamp": t0, "duration": 500_000})
        )]));
        // No root: earliest start to latest end, 200 ms + 400 ms apart.
        let child = |id, start, duration| {
            span(
                1,
                id,
                json!({"parentId": "00000000000000ff", "timestamp": start, "duration": duration}),
            )
        };
        assert!(decide(&[
            child(2, t0, 200_000),
            child(3, t0 + 400_000, 200_000)
        ]));
        assert!(!decide(&[
            child(2, t0, 200_000),
            child(3, t0 + 100_000, 200_000)
        ]));
        assert!(!decide(&[child(2, t0, 0)]), "no timing: not slow");
    }

    #[test]
    fn tag_keeps_listed_values_of_the_key_only() {
        let (p, _) = policies(
            r#"policies:
                 - { name: checkout, type: tag, key: http.route, values: ["/api/orders/{id}", "/api/cart"] }"#,
        );
        let with = |tags: Value| {
            let spans = [span(1, 1, json!({})), span(1, 2, json!({"tags": tags}))];
            p.decide(trace_id(1), &facts(&p, &spans), 0)
        };
        assert_eq!(with(json!({"http.route": "/api/cart"})), Some("checkout"));
        assert_eq!(
            with(json!({"http.route": "/api/orders/{id}"})),
            Some("checkout")
        );
        assert_eq!(with(json!({"http.route": "/api/users/{id}"})), None);
        assert_eq!(with(json!({"url.path": "/api/cart"})), None);
    }

    #[test]
    fn probabilistic_agrees_with_the_sidecars_ratio_sampler() {
        let (p, _) = policies("policies: [{ name: baseline, type: probabilistic, ratio: 0.1 }]");
        let head = Threshold::new(0.1);
        let mut kept = 0;
        for _ in 0..20_000 {
            let id = TraceId::random();
            let tail = p.decide(id, &Facts::default(), 0).is_some();
            assert_eq!(tail, head.samples(id), "{id}");
            kept += usize::from(tail);
        }
        assert!((1_700..=2_300).contains(&kept), "kept {kept} of 20000");
    }

    #[test]
    fn rate_limiting_spends_one_token_per_span() {
        let (p, _) =
            policies("policies: [{ name: budget, type: rate_limiting, spans_per_second: 10 }]");
        let of_spans = |n: u64| Facts {
            spans: n,
            ..Facts::default()
        };
        assert!(p.decide(trace_id(1), &of_spans(6), 0).is_some());
        assert!(
            p.decide(trace_id(2), &of_spans(6), 0).is_none(),
            "4 tokens left"
        );
        assert!(p.decide(trace_id(3), &of_spans(4), 0).is_some());
        assert!(p.decide(trace_id(4), &of_spans(1), 0).is_none());
        assert!(
            p.decide(trace_id(5), &of_spans(10), SECOND).is_some(),
            "refilled"
        );
    }

    #[test]
    fn and_needs_every_rule_and_the_first_keeper_is_named() {
        let (p, _) = policies(
            r#"policies:
                 - name: slow-orders
                   type: and
                   policies:
                     - { type: latency, threshold: 1s }
                     - { type: tag, key: http.route, values: ["/orders"] }
                 - { name: errors, type: status_code }"#,
        );
        let t0 = 1_700_000_000_000_000u64;
        let root = |duration: u64, tags: Value| {
            span(
                1,
                1,
                json!({"timestamp": t0, "duration": duration, "tags": tags}),
            )
        };
        let decide = |span: Span| p.decide(trace_id(1), &facts(&p, &[span]), 0);
        assert_eq!(
            decide(root(2_000_000, json!({"http.route": "/orders"}))),
            Some("slow-orders")
        );
        assert_eq!(
            decide(root(2_000_000, json!({"http.route": "/users"}))),
            None
        );
        assert_eq!(decide(root(10, json!({"http.route": "/orders"}))), None);
        // Both keep: the first in configuration order names itself.
        let both = root(2_000_000, json!({"http.route": "/orders", "error": "500"}));
        assert_eq!(decide(both), Some("slow-orders"));
        assert_eq!(decide(root(10, json!({"error": "500"}))), Some("errors"));
    }
}
