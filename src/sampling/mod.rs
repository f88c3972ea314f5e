//! Sampling: decides whether a trace is recorded and exported.
//!
//! Decision order (DESIGN §5):
//! 1. B3 debug (`X-B3-Flags: 1`, `b3: …-d`) -> sampled, exported with `debug: true`;
//! 2. the downstream's decision, when it sent one and `parent_based` is on;
//! 3. the root sampler: `always`, `never`, or a consistent `ratio`.
//!
//! `ratio` is consistent probability sampling: a pure function of the trace
//! id's low 56 bits, which W3C Trace Context Level 2 (§3.2.2.3 `random`
//! flag) makes random. Every sidecar with the same ratio therefore agrees on
//! every trace, and a lower ratio keeps a subset of what a higher one keeps.
//! Decisions are pure; each is counted by reason in metrics.

use prometheus::IntCounter;

use crate::config::{RootSampler, SamplingConfig};
use crate::metrics::SamplingMetrics;
use crate::span::{Sampling, TraceId};

/// Why a decision came out the way it did (the metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Debug,
    ParentSampled,
    ParentUnsampled,
    Always,
    Never,
    Ratio,
}

impl Reason {
    const ALL: [Reason; 6] = [
        Reason::Debug,
        Reason::ParentSampled,
        Reason::ParentUnsampled,
        Reason::Always,
        Reason::Never,
        Reason::Ratio,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::Debug => "debug",
            Reason::ParentSampled => "parent_sampled",
            Reason::ParentUnsampled => "parent_unsampled",
            Reason::Always => "always",
            Reason::Never => "never",
            Reason::Ratio => "ratio",
        }
    }
}

/// The outcome for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The sampling state written downstream-to-upstream and onto the span.
    pub sampling: Sampling,
    pub reason: Reason,
}

/// The configured sampler plus its pre-resolved decision counters.
pub struct Sampler {
    parent_based: bool,
    root: RootSampler,
    /// Threshold on the 56 random bits: sampled when `bits < threshold`.
    ratio_threshold: u64,
    counters: Vec<[IntCounter; 2]>,
}

/// `ratio` scaled to the 56-bit space of the trace id's random bits.
fn threshold(ratio: f64) -> u64 {
    const SPACE: f64 = (1u64 << 56) as f64;
    (ratio.clamp(0.0, 1.0) * SPACE) as u64
}

impl Sampler {
    pub fn new(config: &SamplingConfig, metrics: &SamplingMetrics) -> Self {
        let ratio = match config.root {
            RootSampler::Ratio(r) => r,
            RootSampler::Always => 1.0,
            RootSampler::Never => 0.0,
        };
        Self {
            parent_based: config.parent_based,
            root: config.root.clone(),
            ratio_threshold: threshold(ratio),
            counters: Reason::ALL
                .iter()
                .map(|r| {
                    [
                        metrics.decision_counter(r.label(), false),
                        metrics.decision_counter(r.label(), true),
                    ]
                })
                .collect(),
        }
    }

    /// Decides for a request whose incoming sampling state is `incoming`
    /// and whose trace id is `trace_id`, and counts the decision.
    pub fn decide(&self, incoming: Sampling, trace_id: TraceId) -> Decision {
        let decision = self.decide_pure(incoming, trace_id);
        let index = Reason::ALL
            .iter()
            .position(|r| *r == decision.reason)
            .unwrap_or(0);
        self.counters[index][usize::from(decision.sampling.is_sampled())].inc();
        decision
    }

    fn decide_pure(&self, incoming: Sampling, trace_id: TraceId) -> Decision {
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
        match self.root {
            RootSampler::Always => decision(true, Reason::Always),
            RootSampler::Never => decision(false, Reason::Never),
            RootSampler::Ratio(_) => {
                decision(trace_id.random_bits() < self.ratio_threshold, Reason::Ratio)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn sampler(parent_based: bool, root: RootSampler) -> (Sampler, Metrics) {
        let metrics = Metrics::new();
        let config = SamplingConfig { parent_based, root };
        (Sampler::new(&config, &metrics.sampling), metrics)
    }

    #[test]
    fn decision_order() {
        let id = TraceId::random();
        let cases = [
            (
                true,
                RootSampler::Never,
                Sampling::Debug,
                Sampling::Debug,
                Reason::Debug,
            ),
            (
                false,
                RootSampler::Never,
                Sampling::Debug,
                Sampling::Debug,
                Reason::Debug,
            ),
            (
                true,
                RootSampler::Never,
                Sampling::Sampled,
                Sampling::Sampled,
                Reason::ParentSampled,
            ),
            (
                true,
                RootSampler::Always,
                Sampling::NotSampled,
                Sampling::NotSampled,
                Reason::ParentUnsampled,
            ),
            (
                true,
                RootSampler::Always,
                Sampling::Deferred,
                Sampling::Sampled,
                Reason::Always,
            ),
            (
                false,
                RootSampler::Never,
                Sampling::Sampled,
                Sampling::NotSampled,
                Reason::Never,
            ),
            (
                false,
                RootSampler::Always,
                Sampling::NotSampled,
                Sampling::Sampled,
                Reason::Always,
            ),
        ];
        for (parent_based, root, incoming, want, reason) in cases {
            let (s, _m) = sampler(parent_based, root);
            let d = s.decide(incoming, id);
            assert_eq!((d.sampling, d.reason), (want, reason), "{incoming:?}");
        }
    }

    #[test]
    fn ratio_is_consistent_and_nested() {
        let (tenth, _a) = sampler(true, RootSampler::Ratio(0.1));
        let (tenth_again, _b) = sampler(true, RootSampler::Ratio(0.1));
        let (half, _c) = sampler(true, RootSampler::Ratio(0.5));
        let mut kept = 0;
        let n = 100_000;
        for _ in 0..n {
            let id = TraceId::random();
            let a = tenth
                .decide_pure(Sampling::Deferred, id)
                .sampling
                .is_sampled();
            let b = tenth_again
                .decide_pure(Sampling::Deferred, id)
                .sampling
                .is_sampled();
            let c = half
                .decide_pure(Sampling::Deferred, id)
                .sampling
                .is_sampled();
            assert_eq!(a, b, "two samplers with the same ratio disagree on {id}");
            assert!(!a || c, "{id} kept at 10% but not at 50%");
            kept += usize::from(a);
        }
        let share = kept as f64 / n as f64;
        assert!((0.095..=0.105).contains(&share), "10% sampler kept {share}");
    }

    #[test]
    fn ratio_edges() {
        let (none, _a) = sampler(true, RootSampler::Ratio(0.0));
        let (all, _b) = sampler(true, RootSampler::Ratio(1.0));
        for _ in 0..1000 {
            let id = TraceId::random();
            assert!(
                !none
                    .decide_pure(Sampling::Deferred, id)
                    .sampling
                    .is_sampled()
            );
            assert!(
                all.decide_pure(Sampling::Deferred, id)
                    .sampling
                    .is_sampled()
            );
        }
    }

    #[test]
    fn decisions_are_counted_by_reason() {
        let (s, m) = sampler(true, RootSampler::Always);
        s.decide(Sampling::NotSampled, TraceId::random());
        s.decide(Sampling::Deferred, TraceId::random());
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(
            r#"tracehop_sampling_decisions_total{reason="parent_unsampled",sampled="false"} 1"#
        ));
        assert!(
            text.contains(r#"tracehop_sampling_decisions_total{reason="always",sampled="true"} 1"#)
        );
    }
}
