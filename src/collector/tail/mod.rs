//! Tail-based sampling: hold each trace until it is complete, then decide.
//!
//! Head sampling decides before a request has happened; the collector sees
//! whole traces and can keep the errors and slow ones a 1 % head ratio
//! would lose (the OpenTelemetry Collector's `tail_sampling` processor is
//! the model). The steps for a span:
//!
//! 1. its trace was decided and the decision is remembered
//!    ([`cache::DecisionCache`]): a late span, counted, stored and
//!    forwarded when its trace was kept, discarded when it was dropped;
//! 2. else it joins its trace in the buffer (the trace's clock starts with
//!    its first span), encoded once ([`CompactSpan`]) with the trace's
//!    [`policy::Facts`] updated;
//! 3. when the buffer holds more than `max_traces` traces or more bytes than
//!    its share of `--max-memory`, the oldest traces are decided at once
//!    (early, counted).
//!
//! [`TailSampler::decide_due`], called by the collector's decision task,
//! decides every trace whose `decision_wait` has passed. A kept trace's root
//! span (or its first span, when the root never came) gets the tag
//! `sampling.tail.policy` naming the policy that kept it, and the whole trace
//! goes to the store and the relay; a dropped one goes nowhere. Time is
//! passed in (`tokio::time::Instant`), so tests drive it with paused time.

mod cache;
mod policy;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use std::sync::Arc;

use super::compact::{CompactSpan, TagKeys};
use super::model::Span;
use crate::config::TailSampling;
use crate::metrics::CollectorMetrics;
use crate::span::TraceId;
use cache::DecisionCache;
use policy::{Facts, Policies};

/// The tag naming the policy that kept a trace, on its root span.
pub const POLICY_TAG: &str = "sampling.tail.policy";

/// Counted per held trace beyond its spans: its map entry with its facts
/// (a hash table at up to twice the entries it holds), its place in the
/// arrival order, its list's header and slack.
const HELD_TRACE_OVERHEAD: usize = 2 * (std::mem::size_of::<(TraceId, Held)>() + 16) + 64;

/// The spans of one kept trace, to store and forward.
#[derive(Debug)]
pub struct Kept {
    /// The trace.
    pub trace_id: TraceId,
    /// Its spans: the whole trace when just decided, late spans after.
    pub spans: Vec<CompactSpan>,
}

/// A trace waiting for its decision.
#[derive(Debug)]
struct Held {
    spans: Vec<CompactSpan>,
    facts: Facts,
    /// When its first span arrived; its entry in the arrival order.
    since: Instant,
    memory_bytes: usize,
}

/// The tail sampler: the buffer of traces waiting, their policies, the
/// decisions remembered. Not synchronised: the collector holds it under
/// its lock, beside the store.
#[derive(Debug)]
pub struct TailSampler {
    policies: Policies,
    decision_wait: Duration,
    max_traces: usize,
    memory_limit: usize,
    /// Time zero of the rate limits.
    epoch: Instant,
    held: HashMap<TraceId, Held>,
    /// Held traces by arrival of their first span: the decision order.
    arrival: VecDeque<(TraceId, Instant)>,
    cache: DecisionCache,
    memory_bytes: usize,
    metrics: CollectorMetrics,
    /// The store's tag-key table, so kept spans move there as they are.
    keys: Arc<TagKeys>,
}

impl TailSampler {
    /// A sampler for `config` whose buffer counts at most `memory_limit`
    /// bytes; `now` is the time zero of its rate limits.
    pub fn new(
        config: &TailSampling,
        memory_limit: usize,
        metrics: CollectorMetrics,
        keys: Arc<TagKeys>,
        now: Instant,
    ) -> Self {
        Self {
            policies: Policies::new(&config.policies, &metrics),
            decision_wait: config.decision_wait,
            max_traces: config.max_traces,
            memory_limit,
            epoch: now,
            held: HashMap::new(),
            arrival: VecDeque::new(),
            cache: DecisionCache::new(config.decision_cache),
            memory_bytes: 0,
            metrics,
            keys,
        }
    }

    /// Traces held waiting now.
    pub fn held_traces(&self) -> usize {
        self.held.len()
    }

    /// Bytes the buffer and the decision cache count against the bound.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes + self.cache.len() * cache::ENTRY_BYTES
    }

    /// How long a trace waits for its decision (the decision task ticks
    /// at a fraction of it).
    pub fn decision_wait(&self) -> Duration {
        self.decision_wait
    }

    /// Takes a batch of spans at `now`; returns what is kept right away
    /// (late spans of kept traces, traces decided early).
    pub fn offer(&mut self, spans: Vec<Span>, now: Instant) -> Vec<Kept> {
        let mut kept: Vec<Kept> = Vec::new();
        // Late spans of kept traces, by trace: their index in `kept`.
        let mut late: HashMap<TraceId, usize> = HashMap::new();
        for span in spans {
            let trace_id = span.trace_id;
            match self.cache.get(trace_id) {
                Some(true) => {
                    self.metrics.tail_late_spans(true).inc();
                    let index = *late.entry(trace_id).or_insert_with(|| {
                        kept.push(Kept {
                            trace_id,
                            spans: Vec::new(),
                        });
                        kept.len() - 1
                    });
                    kept[index]
                        .spans
                        .push(CompactSpan::encode(span, &self.keys));
                }
                Some(false) => self.metrics.tail_late_spans(false).inc(),
                None => self.hold(span, now),
            }
        }
        while self.held.len() > self.max_traces || self.memory_bytes > self.memory_limit {
            let Some(decided) = self.decide_oldest(now) else {
                break;
            };
            self.metrics.tail_early_decisions.inc();
            kept.extend(decided);
        }
        self.metrics.tail_traces_held.set(gauge(self.held.len()));
        kept
    }

    /// Decides every trace held for `decision_wait` or longer at `now`.
    pub fn decide_due(&mut self, now: Instant) -> Vec<Kept> {
        let mut kept = Vec::new();
        while let Some(&(_, since)) = self.arrival.front() {
            if now.saturating_duration_since(since) < self.decision_wait {
                break;
            }
            kept.extend(self.decide_oldest(now).flatten());
        }
        self.metrics.tail_traces_held.set(gauge(self.held.len()));
        kept
    }

    /// Decides every trace held, whatever its age (at shutdown).
    pub fn decide_all(&mut self, now: Instant) -> Vec<Kept> {
        let mut kept = Vec::new();
        while !self.arrival.is_empty() {
            kept.extend(self.decide_oldest(now).flatten());
        }
        self.metrics.tail_traces_held.set(0);
        kept
    }

    fn hold(&mut self, span: Span, now: Instant) {
        let trace_id = span.trace_id;
        let held = self.held.entry(trace_id).or_insert_with(|| {
            self.arrival.push_back((trace_id, now));
            self.memory_bytes += HELD_TRACE_OVERHEAD;
            Held {
                spans: Vec::new(),
                facts: Facts::default(),
                since: now,
                memory_bytes: HELD_TRACE_OVERHEAD,
            }
        });
        self.policies.observe(&mut held.facts, &span);
        // Without its names: most held traces are dropped, and a kept
        // one's names are read back when it goes to the store.
        let compact = CompactSpan::encode(span, &self.keys).unnamed();
        let bytes = compact.memory_bytes();
        held.memory_bytes += bytes;
        self.memory_bytes += bytes;
        held.spans.push(compact);
    }

    /// Decides the oldest held trace; its spans when kept. `None` when
    /// nothing is held.
    fn decide_oldest(&mut self, now: Instant) -> Option<Option<Kept>> {
        let (trace_id, since) = self.arrival.pop_front()?;
        // An entry whose trace was decided and then held again (its
        // decision forgotten) belongs to the newer arrival, not this one.
        if self
            .held
            .get(&trace_id)
            .is_none_or(|held| held.since != since)
        {
            return Some(None);
        }
        let Some(held) = self.held.remove(&trace_id) else {
            return Some(None);
        };
        self.memory_bytes -= held.memory_bytes;
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let keeper = self.policies.decide(trace_id, &held.facts, now_ns);
        self.cache.insert(trace_id, keeper.is_some());
        self.metrics.tail_traces(keeper.is_some()).inc();
        let Some(policy) = keeper.map(str::to_owned) else {
            return Some(None);
        };
        let mut spans: Vec<CompactSpan> = held.spans.into_iter().map(CompactSpan::named).collect();
        tag_root(&mut spans, &policy, &self.keys);
        Some(Some(Kept { trace_id, spans }))
    }

    /// Sets the buffer's share of the memory bound.
    #[cfg(test)]
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.memory_limit = bytes;
    }
}

/// Tags the root span (the first span when no root came) with the policy
/// that kept the trace; only that span is decoded and encoded again.
fn tag_root(spans: &mut [CompactSpan], policy: &str, keys: &Arc<TagKeys>) {
    let position = spans.iter().position(|span| span.root).unwrap_or(0);
    let Some(slot) = spans.get_mut(position) else {
        return;
    };
    if let Some(mut span) = slot.decode() {
        span.tags.insert(POLICY_TAG.to_owned(), policy.to_owned());
        *slot = CompactSpan::encode(span, keys);
    }
}

fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
