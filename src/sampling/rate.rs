//! A lock-free token bucket, for `rate_limited` and the cap on `ratio`.
//!
//! Implemented as GCRA (the generic cell rate algorithm, ITU-T I.371): one
//! `AtomicU64` holds the *theoretical arrival time* — when the bucket
//! would be full again. A request at `now` passes when that time is at most
//! `burst - 1` intervals ahead of `now`, and pushes it one interval further.
//! This is exactly a token bucket of `burst` tokens refilled at `per_second`,
//! updated with one compare-and-swap and no lock. Time is passed in (in
//! nanoseconds since the sampler's epoch) so tests need no sleeps.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::RateLimit;

/// A token bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    /// Nanoseconds per token.
    interval_ns: u64,
    /// How far ahead of now the arrival time may run: `(burst - 1)` intervals.
    tolerance_ns: u64,
    /// Theoretical arrival time, nanoseconds since the epoch.
    tat_ns: AtomicU64,
}

impl TokenBucket {
    /// A full bucket at time zero.
    pub fn new(limit: RateLimit) -> Self {
        let interval_ns = (1e9 / limit.per_second).clamp(1.0, u64::MAX as f64) as u64;
        Self {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(limit.burst.max(1) - 1)),
            tat_ns: AtomicU64::new(0),
        }
    }

    /// Takes a token at `now_ns` if one is available.
    pub fn try_acquire(&self, now_ns: u64) -> bool {
        self.try_acquire_n(now_ns, 1)
    }

    /// Takes `n` tokens at `now_ns` if that many are available (all or
    /// none; more than the burst never are). The collector's tail sampler
    /// takes one per span of a trace.
    pub fn try_acquire_n(&self, now_ns: u64, n: u64) -> bool {
        let Some(extra) = n.checked_sub(1) else {
            return true;
        };
        let cost = self.interval_ns.saturating_mul(n);
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now_ns);
            // The last of the n tokens must be within the tolerance.
            let last = start.saturating_add(self.interval_ns.saturating_mul(extra));
            if last - now_ns > self.tolerance_ns {
                return false;
            }
            let next = start.saturating_add(cost);
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn bucket(per_second: f64, burst: u32) -> TokenBucket {
        TokenBucket::new(RateLimit { per_second, burst })
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_the_rate() {
        let b = bucket(10.0, 5);
        let at_zero = (0..100).filter(|_| b.try_acquire(0)).count();
        assert_eq!(at_zero, 5, "the burst");
        assert!(!b.try_acquire(SECOND / 20), "no token yet after 50 ms");
        assert!(b.try_acquire(SECOND / 10), "one token per 100 ms");
        assert!(!b.try_acquire(SECOND / 10));
    }

    #[test]
    fn n_tokens_at_once_or_none() {
        let b = bucket(10.0, 10);
        assert!(b.try_acquire_n(0, 0), "nothing asked, nothing taken");
        assert!(b.try_acquire_n(0, 6));
        assert!(!b.try_acquire_n(0, 5), "only four left");
        assert!(b.try_acquire_n(0, 4));
        assert!(!b.try_acquire(0));
        assert!(
            b.try_acquire_n(SECOND / 2, 5),
            "five refilled in half a second"
        );
        assert!(
            !b.try_acquire_n(10 * SECOND, 11),
            "more than the burst never passes"
        );
    }

    /// Offers 1,000 requests per simulated second for 20 seconds: no
    /// one-second window passes more than `per_second + burst`, and each
    /// full second after the first passes `per_second` (within one).
    #[test]
    fn never_exceeds_the_rate_beyond_the_burst() {
        for (per_second, burst) in [(50.0, 50), (50.0, 1), (7.0, 20), (0.5, 2)] {
            let b = bucket(per_second, burst);
            let step = SECOND / 1000;
            let passed: Vec<u64> = (0..20_000u64)
                .map(|i| i * step)
                .filter(|&t| b.try_acquire(t))
                .collect();
            let limit = per_second.ceil() as usize + burst as usize;
            for (i, &start) in passed.iter().enumerate() {
                let in_window = passed[i..].iter().take_while(|&&t| t < start + SECOND);
                assert!(
                    in_window.count() <= limit,
                    "{per_second}/s burst {burst}: more than {limit} in the second from {start}"
                );
            }
            for second in 1..20 {
                let n = passed.iter().filter(|&&t| t / SECOND == second).count() as f64;
                assert!(
                    (n - per_second).abs() <= 1.0,
                    "{per_second}/s: {n} passed in second {second}"
                );
            }
        }
    }

    #[test]
    fn an_idle_bucket_refills_to_the_burst_only() {
        let b = bucket(100.0, 10);
        assert!(b.try_acquire(0));
        let later = 3600 * SECOND;
        let n = (0..1000).filter(|_| b.try_acquire(later)).count();
        assert_eq!(n, 10);
    }

    #[test]
    fn concurrent_takers_share_the_tokens_exactly() {
        let b = std::sync::Arc::new(bucket(1.0, 1000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..1000).filter(|_| b.try_acquire(0)).count())
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }
}
