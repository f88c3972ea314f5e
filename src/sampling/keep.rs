//! Keep-on-outcome (DESIGN §5 step 5): export an unsampled span anyway
//! when its request failed or was slow.
//!
//! The decision to sample was made when the request arrived, and the
//! upstream already received `sampled=0`; only this hop's span can still
//! be kept once the outcome is known, so the rest of that trace is
//! usually missing. Kept spans are capped per second by a token bucket:
//! when the upstream is down every request fails, and the collector must
//! not receive every one of them.

use std::time::Duration;

use prometheus::IntCounter;

use super::rate::TokenBucket;
use crate::config::KeepConfig;
use crate::metrics::SamplingMetrics;

/// How a request ended, as far as keep-on-outcome cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The response status sent downstream (502/504 for local errors).
    pub status: u16,
    /// No (complete) response from the upstream: connect, timeout, body error.
    pub upstream_failed: bool,
    /// A gRPC status that fails the span ([`crate::span::HttpFacts::grpc_error`]).
    pub grpc_failed: bool,
    pub duration: Duration,
}

impl Outcome {
    /// 5xx, an upstream failure, or a gRPC status that fails the span
    /// (gRPC over HTTP/2 answers 200 and reports failure in `grpc-status`).
    pub fn failed(&self) -> bool {
        self.status >= 500 || self.upstream_failed || self.grpc_failed
    }
}

/// Why an unsampled span was kept: the `sampling.reason` tag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// The request failed ([`Outcome::failed`]).
    Error,
    /// The request took longer than `keep.slower_than`.
    Slow,
}

impl KeepReason {
    /// The `sampling.reason` tag value.
    pub fn tag(self) -> &'static str {
        match self {
            KeepReason::Error => "error",
            KeepReason::Slow => "slow",
        }
    }

    /// The decision metric's reason label.
    pub fn label(self) -> &'static str {
        match self {
            KeepReason::Error => "kept_error",
            KeepReason::Slow => "kept_slow",
        }
    }
}

/// The configured keep rules, their cap, and their counters.
#[derive(Debug)]
pub struct Keep {
    errors: bool,
    slower_than: Option<Duration>,
    limit: TokenBucket,
    /// `[error, slow]` × `[not kept (capped), kept]`.
    counters: [[IntCounter; 2]; 2],
}

impl Keep {
    /// Builds the rules and resolves their counters.
    pub fn new(config: &KeepConfig, metrics: &SamplingMetrics) -> Self {
        let pair = |reason: KeepReason| {
            [false, true].map(|kept| metrics.decision_counter(reason.label(), kept))
        };
        Self {
            errors: config.errors,
            slower_than: config.slower_than,
            limit: TokenBucket::new(config.limit),
            counters: [pair(KeepReason::Error), pair(KeepReason::Slow)],
        }
    }

    /// Whether to export the unsampled span of a request that ended with
    /// `outcome` at `now_ns`; counts the answer when a rule applied.
    pub fn keep(&self, outcome: &Outcome, now_ns: u64) -> Option<KeepReason> {
        let reason = if self.errors && outcome.failed() {
            KeepReason::Error
        } else if self.slower_than.is_some_and(|t| outcome.duration > t) {
            KeepReason::Slow
        } else {
            return None;
        };
        let kept = self.limit.try_acquire(now_ns);
        self.counters[reason as usize][usize::from(kept)].inc();
        kept.then_some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimit;
    use crate::metrics::Metrics;

    fn keep(errors: bool, slower_than: Option<u64>, per_second: f64) -> (Keep, Metrics) {
        let metrics = Metrics::new();
        let config = KeepConfig {
            errors,
            slower_than: slower_than.map(Duration::from_millis),
            limit: RateLimit {
                per_second,
                burst: 1,
            },
        };
        (Keep::new(&config, &metrics.sampling), metrics)
    }

    fn outcome(status: u16, grpc_failed: bool, failed: bool, ms: u64) -> Outcome {
        Outcome {
            status,
            upstream_failed: failed,
            grpc_failed,
            duration: Duration::from_millis(ms),
        }
    }

    #[test]
    fn outcomes() {
        use KeepReason::*;
        let cases = [
            (true, Some(100), outcome(200, false, false, 5), None),
            (true, Some(100), outcome(503, false, false, 5), Some(Error)),
            (true, Some(100), outcome(502, false, true, 5), Some(Error)),
            (true, Some(100), outcome(200, true, false, 5), Some(Error)),
            (true, Some(100), outcome(200, false, false, 5), None),
            (true, Some(100), outcome(404, false, false, 5), None),
            (true, Some(100), outcome(200, false, false, 101), Some(Slow)),
            (
                true,
                Some(100),
                outcome(500, false, false, 101),
                Some(Error),
            ),
            (false, Some(100), outcome(500, false, false, 5), None),
            (
                false,
                Some(100),
                outcome(500, false, false, 101),
                Some(Slow),
            ),
            (true, None, outcome(200, false, false, 60_000), None),
        ];
        for (i, (errors, slow, outcome, want)) in cases.into_iter().enumerate() {
            let (k, _m) = keep(errors, slow, 1000.0);
            assert_eq!(k.keep(&outcome, 0), want, "case {i}");
        }
    }

    #[test]
    fn kept_spans_are_capped_and_counted() {
        let (k, m) = keep(true, None, 1.0);
        let failed = outcome(503, false, false, 1);
        assert_eq!(k.keep(&failed, 0), Some(KeepReason::Error));
        assert_eq!(k.keep(&failed, 1), None, "over the cap");
        assert_eq!(k.keep(&failed, 1_000_000_000), Some(KeepReason::Error));
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"tracehop_sampling_decisions_total{reason="kept_error",sampled="true"} 2"#,
            r#"tracehop_sampling_decisions_total{reason="kept_error",sampled="false"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
