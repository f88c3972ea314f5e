//! When to try an export request again: exponential backoff with full
//! jitter, `Retry-After`, and the max-elapsed bound.
//!
//! Pure functions of their inputs (the random draw is passed in), so the
//! policy is tested without clocks. Full jitter (a uniform draw between zero
//! and the exponential cap) spreads the retries of many sidecars that lost
//! the same collector at the same moment.

use std::time::{Duration, SystemTime};

use crate::config::RetryConfig;

/// The delay before retry number `retry` (0 for the first retry), or `None`
/// when the batch should be dropped because no further attempt could start
/// within `remaining` (what is left of the max-elapsed budget).
///
/// `jitter` is a uniform draw from `[0, 1)`. A `Retry-After` from the
/// collector (RFC 9110 §10.2.3) is a minimum: it is never shortened, so a
/// batch whose `Retry-After` ends past the budget is dropped now.
pub fn next_delay(
    config: &RetryConfig,
    retry: u32,
    retry_after: Option<Duration>,
    remaining: Duration,
    jitter: f64,
) -> Option<Duration> {
    let cap = config
        .initial_backoff
        .saturating_mul(1u32 << retry.min(31))
        .min(config.max_backoff);
    let backoff = cap.mul_f64(jitter.clamp(0.0, 1.0));
    let delay = retry_after.map_or(backoff, |asked| asked.max(backoff));
    (delay < remaining).then_some(delay)
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date,
/// which is turned into a delay from `now` (zero if it lies in the past).
pub fn parse_retry_after(value: &http::HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurd values rather than rejecting them: the budget check
        // drops the batch either way.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RetryConfig {
        RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(60),
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_scales_it() {
        let long = Duration::from_secs(60);
        // (retry, jitter) -> delay: the cap is 100ms * 2^retry, at most 2s.
        let cases = [
            (0, 0.999_999, MS(99)),
            (1, 0.5, MS(100)),
            (3, 0.5, MS(400)),
            (5, 0.5, MS(1000)),
            (40, 0.5, MS(1000)),
            (2, 0.0, MS(0)),
        ];
        for (retry, jitter, expected) in cases {
            let delay = next_delay(&config(), retry, None, long, jitter).unwrap();
            assert_eq!(delay.as_millis(), expected.as_millis(), "retry {retry}");
        }
    }

    #[test]
    fn retry_after_is_a_minimum() {
        let long = Duration::from_secs(60);
        let asked = Some(Duration::from_secs(3));
        assert_eq!(
            next_delay(&config(), 0, asked, long, 0.5),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            next_delay(&config(), 9, Some(MS(0)), long, 0.5),
            Some(MS(1000))
        );
    }

    #[test]
    fn never_waits_past_the_budget() {
        // Retry 3 caps at 800ms; jitter 0.999 draws 799.2ms.
        assert_eq!(next_delay(&config(), 3, None, MS(799), 0.999), None);
        let delay = next_delay(&config(), 3, None, MS(801), 0.999).unwrap();
        assert_eq!(delay.as_micros(), 799_200);
        let asked = Some(Duration::from_secs(30));
        assert_eq!(
            next_delay(&config(), 0, asked, Duration::from_secs(29), 0.0),
            None
        );
        assert_eq!(next_delay(&config(), 0, None, Duration::ZERO, 0.0), None);
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            (" 5 ", Some(Duration::from_secs(5))),
            ("0", Some(Duration::ZERO)),
            (
                "Sun, 06 Nov 1994 08:50:07 GMT",
                Some(Duration::from_secs(30)),
            ),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)),
            ("-1", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let value = http::HeaderValue::from_str(text).unwrap();
            assert_eq!(parse_retry_after(&value, now), expected, "{text:?}");
        }
    }
}
