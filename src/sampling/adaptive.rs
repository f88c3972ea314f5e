//! The adaptive sampler: a consistent ratio that follows the traffic.
//!
//! It aims at `target_per_second` sampled traces. Once per window it
//! recomputes its ratio from what that window saw, then samples with
//! [`super::ratio::Threshold`] like the `ratio` sampler (so sidecars with
//! the same ratio still agree on a trace). The new ratio is
//! `target / (seen rate × efficiency)`: the seen rate makes it follow a
//! traffic step within one window, and the *efficiency* — traces actually
//! sampled over `ratio × seen`, smoothed over windows — closes the loop on
//! what it really sampled. For uniformly random trace ids the efficiency
//! is 1; for ids whose low bits are not uniform (a client that does not
//! follow W3C Level 2) it is not, and a sampler that only counted requests
//! would drift away from its target. Below [`MIN_SAMPLES`] in a window the
//! efficiency is left alone (too noisy to learn from). The ratio stays in
//! `[min_ratio, max_ratio]` and starts at `min_ratio`: under-sampling one
//! window is cheaper than flooding the collector at start-up.
//!
//! State is a handful of atomics; the request that crosses the window end
//! wins a compare-and-swap and does the update. A few requests racing that
//! update may land in either window, which only adds noise.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::Gauge;

use super::ratio::Threshold;
use crate::config::AdaptiveSpec;
use crate::span::TraceId;

/// Below this many samples in a window, the efficiency is not updated.
const MIN_SAMPLES: u64 = 20;
/// Weight of the newest window in the smoothed efficiency.
const SMOOTHING: f64 = 0.25;

/// An adaptive ratio sampler.
#[derive(Debug)]
pub struct Adaptive {
    spec: AdaptiveSpec,
    window_ns: u64,
    /// Start of the current window, nanoseconds since the epoch.
    window_start_ns: AtomicU64,
    seen: AtomicU64,
    sampled: AtomicU64,
    /// The current ratio, as `f64` bits.
    ratio_bits: AtomicU64,
    /// Smoothed `sampled / (ratio × seen)`, as `f64` bits (only the
    /// window-rolling caller writes it).
    efficiency_bits: AtomicU64,
    threshold: AtomicU64,
    gauge: Gauge,
}

impl Adaptive {
    /// Starts at `min_ratio`, window opening at time zero.
    pub fn new(spec: AdaptiveSpec, gauge: Gauge) -> Self {
        let ratio = spec.min_ratio;
        gauge.set(ratio);
        Self {
            window_ns: u64::try_from(spec.window.as_nanos())
                .unwrap_or(u64::MAX)
                .max(1),
            spec,
            window_start_ns: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
            ratio_bits: AtomicU64::new(ratio.to_bits()),
            efficiency_bits: AtomicU64::new(1.0f64.to_bits()),
            threshold: AtomicU64::new(Threshold::new(ratio).get()),
            gauge,
        }
    }

    /// The current ratio.
    pub fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio_bits.load(Ordering::Relaxed))
    }

    /// Decides for one trace at `now_ns`, and counts the decision.
    pub fn sample(&self, trace_id: TraceId, now_ns: u64) -> bool {
        self.roll_window(now_ns);
        let sampled = trace_id.random_bits() < self.threshold.load(Ordering::Relaxed);
        self.seen.fetch_add(1, Ordering::Relaxed);
        if sampled {
            self.sampled.fetch_add(1, Ordering::Relaxed);
        }
        sampled
    }

    /// At the end of a window, one caller recomputes the ratio.
    fn roll_window(&self, now_ns: u64) {
        let start = self.window_start_ns.load(Ordering::Relaxed);
        let elapsed = now_ns.saturating_sub(start);
        if elapsed < self.window_ns
            || self
                .window_start_ns
                .compare_exchange(start, now_ns, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let seen = self.seen.swap(0, Ordering::Relaxed);
        let sampled = self.sampled.swap(0, Ordering::Relaxed);
        if seen == 0 {
            return;
        }
        let old = self.ratio();
        let mut efficiency = f64::from_bits(self.efficiency_bits.load(Ordering::Relaxed));
        if sampled >= MIN_SAMPLES {
            let measured = sampled as f64 / (old * seen as f64);
            efficiency += SMOOTHING * (measured - efficiency);
            efficiency = efficiency.clamp(1e-3, 1e3);
            self.efficiency_bits
                .store(efficiency.to_bits(), Ordering::Relaxed);
        }
        // A quiet spell longer than a window counts at its real length.
        let wanted = self.spec.target_per_second * elapsed as f64 / 1e9;
        let ratio = wanted / (seen as f64 * efficiency);
        let ratio = ratio.clamp(self.spec.min_ratio, self.spec.max_ratio);
        self.ratio_bits.store(ratio.to_bits(), Ordering::Relaxed);
        self.threshold
            .store(Threshold::new(ratio).get(), Ordering::Relaxed);
        self.gauge.set(ratio);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::time::Duration;

    const SECOND: u64 = 1_000_000_000;

    fn adaptive(target: f64, window_s: u64) -> Adaptive {
        let spec = AdaptiveSpec {
            target_per_second: target,
            window: Duration::from_secs(window_s),
            min_ratio: 0.0001,
            max_ratio: 1.0,
        };
        Adaptive::new(spec, Gauge::new("g", "test").unwrap())
    }

    /// Runs `rate` evenly spaced requests per second from `from_s` for
    /// `seconds`, with ids passed through `ids`; returns the sampled count
    /// per window.
    fn run(
        a: &Adaptive,
        rng: &mut StdRng,
        from_s: u64,
        seconds: u64,
        rate: u64,
        window_s: u64,
        ids: impl Fn(TraceId) -> TraceId,
    ) -> Vec<u64> {
        let mut per_window = vec![0; (seconds / window_s) as usize];
        let step = SECOND / rate;
        for i in 0..seconds * rate {
            let t = from_s * SECOND + i * step;
            let id = ids(TraceId::new(rng.random::<u128>() | 1).unwrap());
            if a.sample(id, t) {
                per_window[(i * step / (window_s * SECOND)) as usize] += 1;
            }
        }
        per_window
    }

    /// Windows from `skip` on: their mean is within 10% of `wanted`, and
    /// none is more than 15% off (a window of ~1,000 samples has about 3%
    /// Poisson noise, so 15% is a real miss, not bad luck).
    fn assert_on_target(windows: &[u64], skip: usize, wanted: f64, what: &str) {
        let settled = &windows[skip..];
        for (i, &n) in settled.iter().enumerate() {
            let error = (n as f64 - wanted).abs() / wanted;
            assert!(
                error <= 0.15,
                "{what}, window {}: sampled {n}, want {wanted}",
                i + skip
            );
        }
        let mean = settled.iter().sum::<u64>() as f64 / settled.len() as f64;
        let error = (mean - wanted).abs() / wanted;
        assert!(error <= 0.10, "{what}: mean {mean}, want {wanted}");
    }

    /// A traffic step from 100 to 10,000 requests/s and back: from the
    /// third window after each step on, the sampler is on target.
    #[test]
    fn converges_to_the_target_after_traffic_steps() {
        let (target, window) = (50.0, 20);
        let a = adaptive(target, window);
        let mut rng = StdRng::seed_from_u64(7);
        for (from, rate) in [(0, 100), (160, 10_000), (320, 100)] {
            let windows = run(&a, &mut rng, from, 160, rate, window, |id| id);
            let what = format!("{rate} req/s");
            assert_on_target(&windows, 2, target * window as f64, &what);
        }
    }

    /// Trace ids whose random bits only cover the lower half of the space
    /// are sampled twice as often as the ratio says; counting what was
    /// sampled brings it back to the target.
    #[test]
    fn counts_what_it_samples_so_skewed_ids_do_not_drift() {
        let (target, window) = (50.0, 20);
        let a = adaptive(target, window);
        let mut rng = StdRng::seed_from_u64(3);
        let skew = |id: TraceId| TraceId::new(id.get() & !(1 << 55)).unwrap();
        let windows = run(&a, &mut rng, 0, 400, 1000, window, skew);
        assert_on_target(&windows, 10, target * window as f64, "skewed ids");
    }

    #[test]
    fn stays_within_its_bounds() {
        let spec = AdaptiveSpec {
            target_per_second: 10.0,
            window: Duration::from_secs(1),
            min_ratio: 0.2,
            max_ratio: 0.5,
        };
        let a = Adaptive::new(spec, Gauge::new("g", "test").unwrap());
        let mut rng = StdRng::seed_from_u64(1);
        for (from, rate) in [(0, 10_000), (10, 1)] {
            run(&a, &mut rng, from, 10, rate, 1, |id| id);
            let r = a.ratio();
            assert!((0.2..=0.5).contains(&r), "{rate}/s: ratio {r}");
        }
        assert_eq!(a.ratio(), 0.5, "low traffic pushes it to max_ratio");
        assert_eq!(a.gauge.get(), 0.5);
    }

    #[test]
    fn no_traffic_keeps_the_ratio() {
        let a = adaptive(10.0, 1);
        let before = a.ratio();
        a.roll_window(100 * SECOND);
        assert_eq!(a.ratio(), before);
    }
}
