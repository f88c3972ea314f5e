use std::sync::Arc;

use super::*;
use crate::export::sample::server_span;
use crate::span::{SpanId, TraceId};

fn context(n: u64) -> SpanContext {
    SpanContext {
        trace_id: TraceId::new(u128::from(n) << 64 | 7).expect("non-zero"),
        span_id: SpanId::new(n).expect("non-zero"),
        sampling: Sampling::Sampled,
        random: true,
    }
}

#[test]
fn nobody_in_flight_means_no_candidate() {
    let register = Arc::new(Register::new());
    let call = register.begin_call();
    assert_eq!(call.at_start(), None);
    assert_eq!(call.finish(), Verdict::NoCandidate);
}

#[test]
fn the_only_request_in_flight_is_the_parent_from_the_start() {
    let register = Arc::new(Register::new());
    let entry = register.enter(context(1));
    let call = register.begin_call();
    assert_eq!(call.at_start(), Some(context(1)));
    // Decided at the start: it holds even if the request ends first.
    drop(entry);
    assert_eq!(
        call.finish(),
        Verdict::Inferred {
            parent: context(1),
            rule: Rule::OnlyOne
        }
    );
    assert_eq!(register.in_flight(), 0);
}

#[test]
fn with_several_candidates_only_one_spanning_the_whole_call_is_the_parent() {
    let register = Arc::new(Register::new());
    let a = register.enter(context(1));
    let b = register.enter(context(2));
    let call = register.begin_call();
    assert_eq!(call.at_start(), None);
    assert_eq!(call.candidates_at_start(), 2);
    // A request that starts during the call never becomes a candidate.
    let late = register.enter(context(3));
    drop(a);
    assert_eq!(
        call.finish(),
        Verdict::Inferred {
            parent: context(2),
            rule: Rule::Containment
        }
    );
    drop((b, late));
}

#[test]
fn several_spanning_the_whole_call_are_ambiguous() {
    let register = Arc::new(Register::new());
    let entries: Vec<Entry> = (1..=3).map(|n| register.enter(context(n))).collect();
    let call = register.begin_call();
    let Verdict::Ambiguous { mut candidates } = call.finish() else {
        panic!("three requests in flight throughout must be ambiguous");
    };
    candidates.sort_by_key(|c| c.span_id);
    assert_eq!(candidates, vec![context(1), context(2), context(3)]);
    drop(entries);
}

#[test]
fn a_call_outliving_every_candidate_is_not_attributed() {
    let register = Arc::new(Register::new());
    let a = register.enter(context(1));
    let b = register.enter(context(2));
    let call = register.begin_call();
    drop((a, b));
    // A new request reusing the freed slots is not mistaken for a candidate.
    let reused = register.enter(context(1 + SHARDS as u64));
    let Verdict::Ambiguous { candidates } = call.finish() else {
        panic!("a fire-and-forget call must not be attributed");
    };
    assert_eq!(candidates.len(), 2);
    drop(reused);
}

#[test]
fn slots_are_reused_so_the_register_stops_growing() {
    let register = Arc::new(Register::new());
    for n in 1..=1000 {
        drop(register.enter(context(n)));
    }
    let held: Vec<Entry> = (1..=40).map(|n| register.enter(context(n))).collect();
    assert_eq!(register.in_flight(), 40);
    drop(held);
    assert_eq!(register.in_flight(), 0);
    let slots: usize = register.shard_capacity();
    assert!(slots <= 40, "{slots} slots for at most 40 at once");
}

#[test]
fn outcomes_compare_inference_with_the_real_parent() {
    let inferred = |n| Verdict::Inferred {
        parent: context(n),
        rule: Rule::Containment,
    };
    let ambiguous = Verdict::Ambiguous {
        candidates: vec![context(1), context(2)],
    };
    let other_span_same_trace = SpanContext {
        span_id: SpanId::new(99).expect("non-zero"),
        ..context(1)
    };
    let cases = [
        (inferred(1), Some(context(1)), Outcome::Confirmed),
        (inferred(1), Some(context(2)), Outcome::Contradicted),
        (
            inferred(1),
            Some(other_span_same_trace),
            Outcome::Contradicted,
        ),
        (
            ambiguous.clone(),
            Some(context(1)),
            Outcome::WouldBeAmbiguous,
        ),
        (
            Verdict::NoCandidate,
            Some(context(1)),
            Outcome::WouldBeNoCandidate,
        ),
        (inferred(1), None, Outcome::Inferred),
        (ambiguous, None, Outcome::Ambiguous),
        (Verdict::NoCandidate, None, Outcome::NoCandidate),
    ];
    for (verdict, sent, expected) in cases {
        assert_eq!(
            Outcome::judge(&verdict, sent.as_ref()),
            expected,
            "{verdict:?} {sent:?}"
        );
    }
    let labels: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
    assert_eq!(labels.len(), Outcome::ALL.len());
}

fn tag_value<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_ref())
}

#[test]
fn containment_moves_the_span_into_the_parents_trace() {
    let mut span = server_span();
    let own_trace = span.trace_id;
    let parent = SpanContext {
        sampling: Sampling::NotSampled,
        ..context(5)
    };
    let verdict = Verdict::Inferred {
        parent,
        rule: Rule::Containment,
    };
    let settled = settle(&mut span, verdict, None);
    assert_eq!(settled.outcome, Outcome::Inferred);
    assert_eq!(settled.sampling, Some(Sampling::NotSampled));
    assert_eq!(span.trace_id, parent.trace_id);
    assert_eq!(span.parent_id, Some(parent.span_id));
    assert_eq!(tag_value(&span, PARENT_TAG), Some("inferred"));
    let downstream = own_trace.to_string();
    assert_eq!(
        tag_value(&span, DOWNSTREAM_TRACE_TAG),
        Some(downstream.as_str())
    );
}

#[test]
fn an_inference_at_the_start_only_tags_the_span() {
    let mut span = server_span();
    let before = (span.trace_id, span.parent_id);
    let verdict = Verdict::Inferred {
        parent: context(5),
        rule: Rule::OnlyOne,
    };
    let settled = settle(&mut span, verdict, None);
    assert_eq!(settled.sampling, None);
    assert_eq!((span.trace_id, span.parent_id), before);
    assert_eq!(tag_value(&span, PARENT_TAG), Some("inferred"));
    assert_eq!(tag_value(&span, DOWNSTREAM_TRACE_TAG), None);
}

#[test]
fn an_ambiguous_span_keeps_its_trace_and_names_its_candidates() {
    let mut span = server_span();
    let before = (span.trace_id, span.parent_id);
    let candidates = vec![context(1), context(2), context(3)];
    let verdict = Verdict::Ambiguous {
        candidates: candidates.clone(),
    };
    let settled = settle(&mut span, verdict, None);
    assert_eq!(settled.outcome, Outcome::Ambiguous);
    assert_eq!((span.trace_id, span.parent_id), before);
    assert_eq!(tag_value(&span, PARENT_TAG), Some("ambiguous"));
    assert_eq!(tag_value(&span, CANDIDATES_TAG), Some("3"));
    assert_eq!(span.links, candidates);
}

#[test]
fn a_call_with_context_keeps_its_span_as_the_app_made_it() {
    let mut span = server_span();
    let before = span.clone();
    let verdict = Verdict::Inferred {
        parent: context(5),
        rule: Rule::Containment,
    };
    let settled = settle(&mut span, verdict, Some(&context(6)));
    assert_eq!(settled.outcome, Outcome::Contradicted);
    assert_eq!(span, before);
}
