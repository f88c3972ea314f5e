//! Time for spans: wall clock once at start, monotonic clock for the duration.
//!
//! Zipkin v2 wants `timestamp` as epoch microseconds and `duration` as
//! microseconds of at least 1 (Zipkin v2 API, `Span.duration`). Taking the
//! duration from [`std::time::Instant`] keeps it correct across wall-clock
//! steps (NTP).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, from the wall clock.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Start time of a span in both clocks.
#[derive(Clone, Copy, Debug)]
pub struct SpanTimer {
    pub timestamp_us: u64,
    pub started: Instant,
}

impl SpanTimer {
    pub fn start() -> Self {
        Self {
            timestamp_us: now_micros(),
            started: Instant::now(),
        }
    }

    /// Elapsed microseconds, never less than 1.
    pub fn duration_us(&self) -> u64 {
        let micros = self.started.elapsed().as_micros();
        u64::try_from(micros).unwrap_or(u64::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_is_at_least_one_microsecond() {
        let timer = SpanTimer::start();
        assert!(timer.duration_us() >= 1);
        assert!(timer.timestamp_us > 1_600_000_000_000_000);
    }
}
