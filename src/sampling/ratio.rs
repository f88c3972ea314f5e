//! Consistent probability sampling on the trace id's random bits.
//!
//! W3C Trace Context Level 2 (§3.2.2.3, the `random` trace flag) makes the
//! low 56 bits of a trace id random. Sampling "when those bits are below
//! `ratio × 2^56`" is then a pure function of the trace id: every sidecar
//! with the same ratio agrees on every trace, and a lower ratio keeps a
//! subset of what a higher one keeps — the same scheme as OpenTelemetry's
//! consistent probability sampling (rejection threshold on 56 bits).

use crate::span::TraceId;

/// `ratio` scaled to the 56-bit space: sampled when `bits < threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold(u64);

impl Threshold {
    const SPACE: f64 = (1u64 << 56) as f64;

    /// The threshold for `ratio` (clamped to `[0, 1]`).
    pub fn new(ratio: f64) -> Self {
        Self((ratio.clamp(0.0, 1.0) * Self::SPACE) as u64)
    }

    /// The raw threshold (for storing in an atomic).
    pub fn get(self) -> u64 {
        self.0
    }

    /// True when `trace_id` falls below the threshold.
    pub fn samples(self, trace_id: TraceId) -> bool {
        trace_id.random_bits() < self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_nested_and_on_target() {
        let tenth = Threshold::new(0.1);
        let tenth_again = Threshold::new(0.1);
        let half = Threshold::new(0.5);
        let n = 100_000;
        let mut kept = 0;
        for _ in 0..n {
            let id = TraceId::random();
            let (a, b, c) = (tenth.samples(id), tenth_again.samples(id), half.samples(id));
            assert_eq!(a, b, "two samplers with the same ratio disagree on {id}");
            assert!(!a || c, "{id} kept at 10% but not at 50%");
            kept += usize::from(a);
        }
        let share = kept as f64 / n as f64;
        assert!((0.095..=0.105).contains(&share), "10% sampler kept {share}");
    }

    #[test]
    fn edges() {
        let max = TraceId::new(u128::MAX).unwrap();
        let low = TraceId::new(1 << 56).unwrap(); // random bits all zero
        assert!(!Threshold::new(0.0).samples(low));
        assert!(Threshold::new(1.0).samples(max));
        assert!(Threshold::new(1e-9).samples(low));
        assert!(!Threshold::new(0.999_999).samples(max));
        assert_eq!(Threshold::new(2.0), Threshold::new(1.0));
        assert_eq!(Threshold::new(-1.0), Threshold::new(0.0));
    }
}
