//! One configured sampler ([`SamplerSpec`]) turned into its running form.
//!
//! The root sampler and every rule's sampler are a [`Policy`]: `always`,
//! `never`, a consistent `ratio` (optionally capped by a token bucket),
//! `rate_limited`, or `adaptive`. State (token buckets, adaptive windows)
//! lives in atomics, so deciding takes no lock.

use prometheus::Gauge;

use super::adaptive::Adaptive;
use super::rate::TokenBucket;
use super::ratio::Threshold;
use crate::config::SamplerSpec;
use crate::span::TraceId;

/// Which part of a policy made the call (the metric reason for the root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Always,
    Never,
    Ratio,
    /// The token bucket said no (or, for `rate_limited`, yes).
    RateLimited,
    Adaptive,
}

/// A running sampler.
#[derive(Debug)]
pub enum Policy {
    Always,
    Never,
    Ratio {
        threshold: Threshold,
        cap: Option<TokenBucket>,
    },
    RateLimited(TokenBucket),
    Adaptive(Adaptive),
}

impl Policy {
    /// Builds the policy; `gauge` is asked for only by `adaptive`.
    pub fn new(spec: &SamplerSpec, gauge: impl FnOnce() -> Gauge) -> Self {
        match spec {
            SamplerSpec::Always => Policy::Always,
            SamplerSpec::Never => Policy::Never,
            SamplerSpec::Ratio { ratio, cap } => Policy::Ratio {
                threshold: Threshold::new(*ratio),
                cap: cap.map(TokenBucket::new),
            },
            SamplerSpec::RateLimited(limit) => Policy::RateLimited(TokenBucket::new(*limit)),
            SamplerSpec::Adaptive(spec) => Policy::Adaptive(Adaptive::new(*spec, gauge())),
        }
    }

    /// Decides for `trace_id` at `now_ns` (nanoseconds since the sampler's epoch).
    pub fn decide(&self, trace_id: TraceId, now_ns: u64) -> (bool, Stage) {
        match self {
            Policy::Always => (true, Stage::Always),
            Policy::Never => (false, Stage::Never),
            Policy::Ratio { threshold, cap } => {
                if !threshold.samples(trace_id) {
                    (false, Stage::Ratio)
                } else if cap.as_ref().is_none_or(|c| c.try_acquire(now_ns)) {
                    (true, Stage::Ratio)
                } else {
                    (false, Stage::RateLimited)
                }
            }
            Policy::RateLimited(bucket) => (bucket.try_acquire(now_ns), Stage::RateLimited),
            Policy::Adaptive(adaptive) => (adaptive.sample(trace_id, now_ns), Stage::Adaptive),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimit;

    fn gauge() -> Gauge {
        Gauge::new("g", "test").unwrap()
    }

    #[test]
    fn ratio_then_cap() {
        let spec = SamplerSpec::Ratio {
            ratio: 0.5,
            cap: Some(RateLimit {
                per_second: 10.0,
                burst: 10,
            }),
        };
        let policy = Policy::new(&spec, gauge);
        let (mut sampled, mut capped, mut out) = (0, 0, 0);
        for _ in 0..1000 {
            match policy.decide(TraceId::random(), 0) {
                (true, Stage::Ratio) => sampled += 1,
                (false, Stage::RateLimited) => capped += 1,
                (false, Stage::Ratio) => out += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(sampled, 10, "the cap holds within one instant");
        assert!(
            capped > 400 && out > 400,
            "{capped} capped, {out} not drawn"
        );
    }

    #[test]
    fn fixed_policies() {
        let id = TraceId::random();
        assert_eq!(
            Policy::new(&SamplerSpec::Always, gauge).decide(id, 0),
            (true, Stage::Always)
        );
        assert_eq!(
            Policy::new(&SamplerSpec::Never, gauge).decide(id, 0),
            (false, Stage::Never)
        );
        let limited = Policy::new(
            &SamplerSpec::RateLimited(RateLimit {
                per_second: 1.0,
                burst: 1,
            }),
            gauge,
        );
        assert_eq!(limited.decide(id, 0), (true, Stage::RateLimited));
        assert_eq!(limited.decide(id, 0), (false, Stage::RateLimited));
    }
}
