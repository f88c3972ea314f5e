//! Sampling: decides whether a trace is recorded and exported.
//!
//! Decision order (DESIGN §5), first that applies wins:
//! 1. **debug** — B3 debug (`X-B3-Flags: 1`, `b3: …-d`): sampled, exported
//!    with Zipkin `debug: true`;
//! 2. **parent** — the downstream's sampled / not-sampled decision, when it
//!    sent one and `parent_based` is on (the default). B3 ids without a
//!    sampling state are *deferred*: this hop decides, as for a new trace;
//! 3. **rules** — the first rule matching method, path and headers decides
//!    with its own sampler; the user's rules first, then the built-in ones
//!    that never sample probe paths ([`rules::PROBE_PATHS`]);
//! 4. **root** — `always`, `never`, `ratio` (consistent: a function of the
//!    trace id's random low 56 bits, see [`ratio`]), `ratio` capped by
//!    `max_per_second`, `rate_limited` (token bucket, see [`rate`]), or
//!    `adaptive` (a ratio steered to a target rate, see [`adaptive`]).
//!
//! After the response, [`Sampler::keep`] may still export an unsampled
//! span whose request failed or was slow (keep-on-outcome, see [`keep`]).
//!
//! Every decision is counted in `tracehop_sampling_decisions_total{reason,
//! sampled}`; the counters are resolved when the sampler is built, so a
//! decision is a few atomic operations: no allocation, no lock, no log.
//! Time is passed in (`now`), so tests drive rate limits and adaptive
//! windows without sleeping. [`LiveSampler`] holds the current sampler and
//! swaps it atomically when the configuration is reloaded.

mod adaptive;
mod keep;
mod policy;
mod rate;
mod ratio;
mod rules;

pub use keep::{KeepReason, Outcome};
pub use rate::TokenBucket;
pub use ratio::Threshold;
pub use rules::{PROBE_PATHS, RequestFacts};

use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use prometheus::IntCounter;

use crate::config::{SamplingConfig, SamplingRule};
use crate::metrics::SamplingMetrics;
use crate::span::{Sampling, TraceId};
use keep::Keep;
use policy::{Policy, Stage};

/// Why a decision came out the way it did (the metric's `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// B3 debug.
    Debug,
    /// The parent said sampled (`parent_based`).
    ParentSampled,
    /// The parent said not sampled (`parent_based`).
    ParentUnsampled,
    /// The rule at this index of [`Sampler`]'s rule list (`rule:<name>`).
    Rule(usize),
    /// The root sampler, by its kind; a capped `ratio` refusing counts as
    /// `RateLimited`.
    Always,
    Never,
    Ratio,
    RateLimited,
    Adaptive,
}

/// Labels of the reasons that are not rules, in [`Reason::fixed_index`] order.
const FIXED_LABELS: [&str; 8] = [
    "debug",
    "parent_sampled",
    "parent_unsampled",
    "always",
    "never",
    "ratio",
    "rate_limited",
    "adaptive",
];

impl Reason {
    fn fixed_index(self) -> Option<usize> {
        Some(match self {
            Reason::Debug => 0,
            Reason::ParentSampled => 1,
            Reason::ParentUnsampled => 2,
            Reason::Rule(_) => return None,
            Reason::Always => 3,
            Reason::Never => 4,
            Reason::Ratio => 5,
            Reason::RateLimited => 6,
            Reason::Adaptive => 7,
        })
    }

    fn from_stage(stage: Stage) -> Self {
        match stage {
            Stage::Always => Reason::Always,
            Stage::Never => Reason::Never,
            Stage::Ratio => Reason::Ratio,
            Stage::RateLimited => Reason::RateLimited,
            Stage::Adaptive => Reason::Adaptive,
        }
    }
}

/// The outcome for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The sampling state written to the upstream and onto the span.
    pub sampling: Sampling,
    pub reason: Reason,
}

/// A rule with its running sampler and counters.
struct Rule {
    config: SamplingRule,
    policy: Policy,
    /// `rule:<name>` × `[not sampled, sampled]`.
    counters: [IntCounter; 2],
}

/// The configured sampler: rules, root sampler, keep-on-outcome, counters.
pub struct Sampler {
    parent_based: bool,
    rules: Vec<Rule>,
    root: Policy,
    keep: Keep,
    /// [`FIXED_LABELS`] × `[not sampled, sampled]`.
    counters: [[IntCounter; 2]; 8],
    /// Time zero of rate limiters and adaptive windows.
    epoch: Instant,
}

fn counter_pair(metrics: &SamplingMetrics, label: &str) -> [IntCounter; 2] {
    [false, true].map(|sampled| metrics.decision_counter(label, sampled))
}

impl Sampler {
    /// Builds the sampler; rate limits and windows start now.
    pub fn new(config: &SamplingConfig, metrics: &SamplingMetrics) -> Self {
        Self::starting_at(config, metrics, Instant::now())
    }

    /// Builds the sampler with `epoch` as time zero (tests pass their own).
    pub fn starting_at(config: &SamplingConfig, metrics: &SamplingMetrics, epoch: Instant) -> Self {
        let defaults = if config.default_rules {
            rules::default_rules()
        } else {
            Vec::new()
        };
        let rules = config
            .rules
            .iter()
            .cloned()
            .chain(defaults)
            .map(|rule| {
                let label = format!("rule:{}", rule.name);
                Rule {
                    policy: Policy::new(&rule.sampler, || metrics.adaptive_ratio(&label)),
                    counters: counter_pair(metrics, &label),
                    config: rule,
                }
            })
            .collect();
        Self {
            parent_based: config.parent_based,
            rules,
            root: Policy::new(&config.root, || metrics.adaptive_ratio("root")),
            keep: Keep::new(&config.keep, metrics),
            counters: FIXED_LABELS.map(|label| counter_pair(metrics, label)),
            epoch,
        }
    }

    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Decides for a request whose incoming sampling state is `incoming`,
    /// whose trace id is `trace_id`, at `now`; counts the decision.
    pub fn decide(
        &self,
        incoming: Sampling,
        trace_id: TraceId,
        request: &RequestFacts<'_>,
        now: Instant,
    ) -> Decision {
        self.counted(self.decide_uncounted(incoming, trace_id, Some(request), now))
    }

    /// Decides for a database query (no HTTP request for rules to match):
    /// B3 debug, then the parent's decision, then the root sampler, so a
    /// busy connection pool's unparented queries are sampled like any
    /// other root; counts the decision.
    pub fn decide_query(&self, incoming: Sampling, trace_id: TraceId, now: Instant) -> Decision {
        self.counted(self.decide_uncounted(incoming, trace_id, None, now))
    }

    fn counted(&self, decision: Decision) -> Decision {
        let sampled = usize::from(decision.sampling.is_sampled());
        match decision.reason.fixed_index() {
            Some(i) => self.counters[i][sampled].inc(),
            None => {
                if let Reason::Rule(i) = decision.reason {
                    self.rules[i].counters[sampled].inc();
                }
            }
        }
        decision
    }

    fn decide_uncounted(
        &self,
        incoming: Sampling,
        trace_id: TraceId,
        request: Option<&RequestFacts<'_>>,
        now: Instant,
    ) -> Decision {
        let decision = |sampled: bool, reason| Decision {
            sampling: if sampled {
                Sampling::Sampled
            } else {
                Sampling::NotSampled
            },
            reason,
        };
        match incoming {
            Sampling::Debug => {
                return Decision {
                    sampling: Sampling::Debug,
                    reason: Reason::Debug,
                };
            }
            Sampling::Sampled if self.parent_based => {
                return decision(true, Reason::ParentSampled);
            }
            Sampling::NotSampled if self.parent_based => {
                return decision(false, Reason::ParentUnsampled);
            }
            _ => {}
        }
        let now_ns = self.nanos_since_epoch(now);
        if let Some((i, rule)) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, rule)| request.is_some_and(|r| rules::matches(&rule.config, r)))
        {
            return decision(rule.policy.decide(trace_id, now_ns).0, Reason::Rule(i));
        }
        let (sampled, stage) = self.root.decide(trace_id, now_ns);
        decision(sampled, Reason::from_stage(stage))
    }

    /// Keep-on-outcome for a request that was *not* sampled: whether to
    /// export its span anyway, and why (the `sampling.reason` tag).
    pub fn keep(&self, outcome: &Outcome, now: Instant) -> Option<KeepReason> {
        self.keep.keep(outcome, self.nanos_since_epoch(now))
    }

    /// The metric label of `reason` (`rule:<name>` for rules).
    pub fn reason_label(&self, reason: Reason) -> String {
        match (reason, reason.fixed_index()) {
            (Reason::Rule(i), _) => format!("rule:{}", self.rules[i].config.name),
            (_, Some(i)) => FIXED_LABELS[i].to_owned(),
            (_, None) => String::new(),
        }
    }
}

/// The sampler in use, replaced as a whole on reload.
///
/// Readers take a cheap [`Guard`] per request (arc-swap's lock-free read
/// path: no shared counter is touched); a reload swaps in a new sampler
/// atomically, and requests already in flight finish with the one they
/// loaded. Rate-limiter and adaptive state start afresh with the new one.
#[derive(Clone)]
pub struct LiveSampler(Arc<ArcSwap<Sampler>>);

impl LiveSampler {
    /// Starts with `sampler`.
    pub fn new(sampler: Sampler) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(sampler)))
    }

    /// The current sampler.
    pub fn load(&self) -> Guard<Arc<Sampler>> {
        self.0.load()
    }

    /// Makes `sampler` the current one.
    pub fn replace(&self, sampler: Sampler) {
        self.0.store(Arc::new(sampler));
    }
}

#[cfg(test)]
mod tests;
