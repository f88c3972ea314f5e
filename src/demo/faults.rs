//! Provoked failures and slowness, so error and slow spans can be seen.
//!
//! Two query parameters, accepted by every demo endpoint:
//! - `fail=1` (or `true`): answer 500;
//! - `delay=300ms` (or `2s`, or a bare number of milliseconds): wait first.
//!
//! They travel with the request down the call chain, and only the deepest
//! service on the path acts on them (user-service for `/api/users/…` and for
//! orders that have a user to load; order-service for an unknown order). The
//! services in between see the failure or the wait come back from their own
//! call, as they would in a real incident, so the trace shows where it began.

use std::time::Duration;

/// The longest delay a request may ask for; more is a 400, so a stray
/// query cannot pin a connection for minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// A query parameter the demo services could not understand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    #[error("fail={0:?}: expected 1, 0, true or false")]
    BadFail(String),
    #[error("delay={0:?}: expected a duration such as 300ms or 2s")]
    BadDelay(String),
    #[error("delay={0:?}: longer than the 10s maximum")]
    DelayTooLong(String),
}

/// What a request asked to go wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer 500.
    pub fail: bool,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

impl Faults {
    /// Reads `fail` and `delay` from a query string; other parameters are ignored.
    pub fn from_query(query: Option<&str>) -> Result<Self, FaultError> {
        let mut faults = Faults::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "fail" => faults.fail = parse_fail(value)?,
                "delay" => faults.delay = Some(parse_delay(value)?),
                _ => {}
            }
        }
        Ok(faults)
    }

    /// The query string that carries these faults to the next service, if any.
    pub fn to_query(self) -> Option<String> {
        let fail = self.fail.then(|| "fail=1".to_owned());
        let delay = self
            .delay
            .map(|delay| format!("delay={}ms", delay.as_millis()));
        match (fail, delay) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one),
            (Some(fail), Some(delay)) => Some(format!("{fail}&{delay}")),
        }
    }

    /// `path` with these faults appended as its query string.
    pub fn append_to(self, path: &str) -> String {
        match self.to_query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        }
    }
}

fn parse_fail(value: &str) -> Result<bool, FaultError> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(FaultError::BadFail(value.to_owned())),
    }
}

/// Parses `300ms`, `2s` or `300` (milliseconds).
pub fn parse_delay(value: &str) -> Result<Duration, FaultError> {
    let bad = || FaultError::BadDelay(value.to_owned());
    let (number, unit_ms) = if let Some(number) = value.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = value.strip_suffix('s') {
        (number, 1000)
    } else {
        (value, 1)
    };
    if number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(bad());
    }
    let millis = number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(unit_ms))
        .ok_or_else(|| FaultError::DelayTooLong(value.to_owned()))?;
    let delay = Duration::from_millis(millis);
    if delay > MAX_DELAY {
        return Err(FaultError::DelayTooLong(value.to_owned()));
    }
    Ok(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_parsing() {
        let ms = Duration::from_millis;
        let table: &[(&str, Result<Duration, FaultError>)] = &[
            ("300ms", Ok(ms(300))),
            ("0ms", Ok(ms(0))),
            ("2s", Ok(ms(2000))),
            ("10s", Ok(ms(10_000))),
            ("250", Ok(ms(250))),
            ("10000ms", Ok(ms(10_000))),
            ("10001ms", Err(FaultError::DelayTooLong("10001ms".into()))),
            ("11s", Err(FaultError::DelayTooLong("11s".into()))),
            (
                "99999999999999999999",
                Err(FaultError::DelayTooLong("99999999999999999999".into())),
            ),
            ("", Err(FaultError::BadDelay("".into()))),
            ("ms", Err(FaultError::BadDelay("ms".into()))),
            ("s", Err(FaultError::BadDelay("s".into()))),
            ("1.5s", Err(FaultError::BadDelay("1.5s".into()))),
            ("-5ms", Err(FaultError::BadDelay("-5ms".into()))),
            ("+5ms", Err(FaultError::BadDelay("+5ms".into()))),
            ("5m", Err(FaultError::BadDelay("5m".into()))),
            ("5 ms", Err(FaultError::BadDelay("5 ms".into()))),
            ("abc", Err(FaultError::BadDelay("abc".into()))),
        ];
        for (input, expected) in table {
            assert_eq!(&parse_delay(input), expected, "{input:?}");
        }
    }

    #[test]
    fn query_parsing() {
        let ms = |n| Some(Duration::from_millis(n));
        let faults = |fail, delay| Ok(Faults { fail, delay });
        let table: &[(Option<&str>, Result<Faults, FaultError>)] = &[
            (None, faults(false, None)),
            (Some(""), faults(false, None)),
            (Some("fail=1"), faults(true, None)),
            (Some("fail=true"), faults(true, None)),
            (Some("fail=0"), faults(false, None)),
            (Some("delay=300ms"), faults(false, ms(300))),
            (Some("page=2&fail=1&delay=1s"), faults(true, ms(1000))),
            (Some("fail"), Err(FaultError::BadFail("".into()))),
            (Some("fail=yes"), Err(FaultError::BadFail("yes".into()))),
            (Some("delay=soon"), Err(FaultError::BadDelay("soon".into()))),
            (Some("&&x&"), faults(false, None)),
        ];
        for (query, expected) in table {
            assert_eq!(&Faults::from_query(*query), expected, "{query:?}");
        }
    }

    #[test]
    fn faults_round_trip_through_the_query_string() {
        let delay = Some(Duration::from_millis(300));
        let table = [
            (Faults::default(), "/users/1"),
            (
                Faults {
                    fail: true,
                    delay: None,
                },
                "/users/1?fail=1",
            ),
            (Faults { fail: false, delay }, "/users/1?delay=300ms"),
            (Faults { fail: true, delay }, "/users/1?fail=1&delay=300ms"),
        ];
        for (faults, path) in table {
            assert_eq!(faults.append_to("/users/1"), path);
            let query = path.split_once('?').map(|(_, query)| query);
            assert_eq!(Faults::from_query(query), Ok(faults), "{path}");
        }
    }
}
