//! Collects every configuration problem with its YAML path, so a user fixes
//! them all in one round instead of one per run.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::parse;
use super::types::UpstreamUrl;

/// One problem: where in the YAML, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted YAML path, e.g. `inbound.timeouts.idle` or `outbound.routes[1].listen`.
    pub path: String,
    pub message: String,
}

/// Every problem found in one configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(
            f,
            "invalid configuration ({count} problem{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            writeln!(f, "  {}: {}", error.path, error.message)?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// True when some problem sits at exactly `path` (used by tests).
    pub fn has(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

/// The accumulator validation functions write into.
#[derive(Default)]
pub(super) struct Problems(Vec<ConfigError>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// The problems found reading the YAML first, then the validation
    /// problems that are not about a key reading already refused (a key
    /// with the wrong type falls back to its default, and a "required" or
    /// range problem there would only repeat it).
    pub fn after_reading(self, read: Vec<ConfigError>) -> Self {
        let repeats = |problem: &ConfigError| {
            read.iter().any(|r| {
                problem.path == r.path
                    || problem
                        .path
                        .strip_prefix(r.path.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
        };
        let mut all = read.clone();
        all.extend(self.0.into_iter().filter(|problem| !repeats(problem)));
        Self(all)
    }

    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.0))
        }
    }

    /// A duration at `path`, or `default` when absent; on error, records it
    /// and returns the default so validation can go on.
    pub fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        match value.map(parse::duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(message)) => {
                self.push(path, message);
                default
            }
        }
    }

    /// Like [`Problems::duration`] but zero is refused.
    pub fn positive_duration(
        &mut self,
        path: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        let d = self.duration(path, value, default);
        if d.is_zero() {
            self.push(path, "must be greater than zero");
            return default;
        }
        d
    }

    pub fn socket_addr(&mut self, path: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let fallback = || {
            default
                .parse()
                .expect("default listen addresses are valid literals")
        };
        match value.map(parse::socket_addr) {
            None => fallback(),
            Some(Ok(a)) => a,
            Some(Err(message)) => {
                self.push(path, message);
                fallback()
            }
        }
    }

    /// A required URL; `None` (with the problem recorded) when absent or invalid.
    pub fn url(&mut self, path: &str, value: Option<&str>) -> Option<UpstreamUrl> {
        match value.map(parse::url) {
            None => {
                self.push(path, "is required");
                None
            }
            Some(Ok(u)) => Some(u),
            Some(Err(message)) => {
                self.push(path, message);
                None
            }
        }
    }

    /// A count that must be at least 1.
    pub fn at_least_one(&mut self, path: &str, value: Option<usize>, default: usize) -> usize {
        match value {
            None => default,
            Some(0) => {
                self.push(path, "must be at least 1");
                default
            }
            Some(n) => n,
        }
    }
}
