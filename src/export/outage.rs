//! Export trouble said out loud: the first failed upload of an outage is
//! logged at once, with the collector's URL and the reason; while it lasts,
//! a reminder at most every [`REMIND_EVERY`]; its end is logged too.
//!
//! Requests never notice (spans wait in the queue, then are dropped and
//! counted); this is how an operator does.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Least time between two "still failing" lines of one outage.
pub const REMIND_EVERY: Duration = Duration::from_secs(30);

/// What to say after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    Nothing,
    /// The first failure after a success (or since start).
    Down,
    /// Still failing: attempts since the outage began.
    StillDown {
        failures: u64,
        since: Duration,
    },
    /// An upload succeeded after an outage this long.
    Recovered {
        after: Duration,
        failures: u64,
    },
}

/// One exporter's outage state.
#[derive(Default)]
pub struct Outage(Mutex<State>);

#[derive(Default)]
enum State {
    #[default]
    Healthy,
    Down {
        since: Instant,
        failures: u64,
        reminded: Instant,
    },
}

impl Outage {
    /// An upload attempt failed at `now`.
    pub fn failed(&self, now: Instant) -> Report {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            State::Healthy => {
                *state = State::Down {
                    since: now,
                    failures: 1,
                    reminded: now,
                };
                Report::Down
            }
            State::Down {
                since,
                failures,
                reminded,
            } => {
                *failures += 1;
                if now.duration_since(*reminded) >= REMIND_EVERY {
                    *reminded = now;
                    Report::StillDown {
                        failures: *failures,
                        since: now.duration_since(*since),
                    }
                } else {
                    Report::Nothing
                }
            }
        }
    }

    /// An upload reached the collector at `now` (accepted or rejected: it
    /// answered).
    pub fn reached(&self, now: Instant) -> Report {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::take(&mut *state) {
            State::Healthy => Report::Nothing,
            State::Down {
                since, failures, ..
            } => Report::Recovered {
                after: now.duration_since(since),
                failures,
            },
        }
    }
}

/// Logs `report` for the collector at `target` (`zipkin http://...`).
pub fn log(report: Report, target: &str, reason: &dyn std::fmt::Display) {
    match report {
        Report::Nothing => {}
        Report::Down => tracing::warn!(
            collector = target,
            %reason,
            "span export failing; requests are unaffected, spans wait in the queue and are retried"
        ),
        Report::StillDown { failures, since } => tracing::warn!(
            collector = target,
            %reason,
            failures,
            for_seconds = since.as_secs(),
            "span export still failing"
        ),
        Report::Recovered { after, failures } => tracing::info!(
            collector = target,
            failures,
            after_seconds = after.as_secs(),
            "span export recovered"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_said_at_once_reminded_at_most_every_thirty_seconds_and_its_end_said() {
        let outage = Outage::default();
        let t0 = Instant::now();
        let at = |seconds: u64| t0 + Duration::from_secs(seconds);
        assert_eq!(outage.reached(at(0)), Report::Nothing);
        assert_eq!(outage.failed(at(1)), Report::Down);
        assert_eq!(outage.failed(at(2)), Report::Nothing);
        assert_eq!(outage.failed(at(30)), Report::Nothing);
        assert_eq!(
            outage.failed(at(31)),
            Report::StillDown {
                failures: 4,
                since: Duration::from_secs(30)
            }
        );
        assert_eq!(outage.failed(at(40)), Report::Nothing);
        assert_eq!(
            outage.reached(at(45)),
            Report::Recovered {
                after: Duration::from_secs(44),
                failures: 5
            }
        );
        assert_eq!(outage.reached(at(46)), Report::Nothing);
        // The next outage is said at once again.
        assert_eq!(outage.failed(at(50)), Report::Down);
    }
}
