//! The collector's configuration: `tracehop collector --config FILE` and
//! `--tail-sampling FILE` (the `tail_sampling:` section alone).
//!
//! Same conventions as the sidecar's config: raw structs private and
//! `deny_unknown_fields`, every problem reported at once with its YAML path
//! (`tail_sampling.policies[2].ratio`), validated types handed to
//! [`crate::collector`]. Command-line flags override the file; `main` applies
//! them.
//!
//! ```yaml
//! listen: 0.0.0.0:9411
//! max_memory: 256MiB
//! forward: http://zipkin:9411/api/v2/spans
//! tail_sampling:
//!   decision_wait: 5s
//!   max_traces: 100000
//!   policies:
//!     - { name: errors, type: status_code }
//!     - { name: slow, type: latency, threshold: 500ms }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::problems::{ConfigErrors, Problems};
use super::{parse, yaml};

/// `decision_wait` when not set: long enough for a request's spans from
/// every sidecar to arrive (export batches leave every second by default).
pub const DEFAULT_DECISION_WAIT: Duration = Duration::from_secs(5);
/// `max_traces` when not set.
pub const DEFAULT_MAX_TRACES: usize = 100_000;
/// `decision_cache` when not set.
pub const DEFAULT_DECISION_CACHE: usize = 100_000;
/// The most `tag` policies (each is one bit of a trace's facts).
pub const MAX_TAG_POLICIES: usize = 64;

/// A collector config file, validated; unset keys are `None` so flags and
/// built-in defaults can fill them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectorFile {
    /// `listen`: address of the API and viewer.
    pub listen: Option<SocketAddr>,
    /// `max_memory`: bytes the store and the tail buffer may count.
    pub max_memory: Option<usize>,
    /// `max_spans`: most spans stored.
    pub max_spans: Option<usize>,
    /// `forward`: the Zipkin-compatible URL kept spans are relayed to.
    pub forward: Option<String>,
    /// `tail_sampling`: decide per whole trace what to keep.
    pub tail_sampling: Option<TailSampling>,
}

/// Tail sampling settings (`tail_sampling:`).
#[derive(Clone, Debug, PartialEq)]
pub struct TailSampling {
    /// How long after a trace's first span its decision is made.
    pub decision_wait: Duration,
    /// Traces held waiting; beyond it the oldest is decided early.
    pub max_traces: usize,
    /// Decisions remembered for spans arriving after them.
    pub decision_cache: usize,
    /// A trace is kept when any of these keeps it; the first that does
    /// names itself in the root span's `sampling.tail.policy` tag.
    pub policies: Vec<TailPolicy>,
}

/// One named policy.
#[derive(Clone, Debug, PartialEq)]
pub struct TailPolicy {
    /// Unique; the `policy` label of the decision metrics.
    pub name: String,
    /// What it keeps.
    pub rule: TailRule,
}

/// What a policy keeps (`type:`).
#[derive(Clone, Debug, PartialEq)]
pub enum TailRule {
    /// `status_code`: any span marked as failed (Zipkin's `error` tag).
    StatusCode,
    /// `latency`: the root span (or the whole trace without a root) lasted
    /// at least `threshold`.
    Latency {
        /// `threshold`.
        threshold: Duration,
    },
    /// `tag`: some span has tag `key` with one of `values`.
    Tag {
        /// `key`.
        key: String,
        /// `values`.
        values: Vec<String>,
    },
    /// `probabilistic`: consistent on the trace id, as head sampling.
    Probabilistic {
        /// `ratio`, 0 to 1.
        ratio: f64,
    },
    /// `rate_limiting`: keeps traces while their spans fit in the budget.
    RateLimiting {
        /// `spans_per_second`.
        spans_per_second: f64,
    },
    /// `and`: every sub-policy keeps.
    And(Vec<TailRule>),
}

/// Loads a collector config file (`--config`).
pub fn load_collector(text: &str) -> Result<CollectorFile, ConfigErrors> {
    let (raw, read_problems): (RawCollector, _) = yaml::read(text);
    let mut p = Problems::default();
    let file = collector(raw, &mut p);
    p.after_reading(read_problems).into_result(file)
}

/// Loads a tail-sampling file (`--tail-sampling`): the section alone.
pub fn load_tail_sampling(text: &str) -> Result<TailSampling, ConfigErrors> {
    let (raw, read_problems): (RawTailSampling, _) = yaml::read(text);
    let mut p = Problems::default();
    let tail = tail_sampling(raw, "", &mut p);
    p.after_reading(read_problems).into_result(tail)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    listen: Option<String>,
    max_memory: Option<String>,
    max_spans: Option<usize>,
    forward: Option<String>,
    tail_sampling: Option<RawTailSampling>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTailSampling {
    #[serde(default, deserialize_with = "super::yaml::duration")]
    decision_wait: Option<String>,
    max_traces: Option<usize>,
    decision_cache: Option<usize>,
    policies: Option<Vec<RawPolicy>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    threshold: Option<String>,
    key: Option<String>,
    values: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::yaml::ratio")]
    ratio: Option<f64>,
    spans_per_second: Option<f64>,
    policies: Option<Vec<RawPolicy>>,
}

fn collector(raw: RawCollector, p: &mut Problems) -> CollectorFile {
    let listen = raw.listen.as_deref().and_then(|text| {
        parse::socket_addr(text)
            .map_err(|message| p.push("listen", message))
            .ok()
    });
    let max_memory = raw
        .max_memory
        .as_deref()
        .and_then(|text| positive_size("max_memory", text, p));
    if raw.max_spans == Some(0) {
        p.push("max_spans", "must be greater than zero");
    }
    CollectorFile {
        listen,
        max_memory,
        max_spans: raw.max_spans,
        forward: raw.forward,
        tail_sampling: raw
            .tail_sampling
            .map(|tail| tail_sampling(tail, "tail_sampling.", p)),
    }
}

/// A size in bytes greater than zero, or the problem recorded at `path`.
fn positive_size(path: &str, text: &str, p: &mut Problems) -> Option<usize> {
    match parse::byte_size(text) {
        Ok(0) => p.push(path, "must be greater than zero"),
        Ok(bytes) => return Some(bytes),
        Err(message) => p.push(path, message),
    }
    None
}

/// Validates the section; `prefix` is its path in the file (`tail_sampling.` or empty).
fn tail_sampling(raw: RawTailSampling, prefix: &str, p: &mut Problems) -> TailSampling {
    let at = |key: &str| format!("{prefix}{key}");
    let decision_wait = p.positive_duration(
        &at("decision_wait"),
        raw.decision_wait.as_deref(),
        DEFAULT_DECISION_WAIT,
    );
    let mut positive = |key: &str, value: Option<usize>, default: usize| match value {
        Some(0) => {
            p.push(at(key), "must be greater than zero");
            default
        }
        value => value.unwrap_or(default),
    };
    let max_traces = positive("max_traces", raw.max_traces, DEFAULT_MAX_TRACES);
    let decision_cache = positive("decision_cache", raw.decision_cache, DEFAULT_DECISION_CACHE);
    let raw_policies = raw.policies.unwrap_or_default();
    if raw_policies.is_empty() {
        p.push(
            at("policies"),
            "list at least one policy (with none, every trace would be dropped)",
        );
    }
    let mut policies: Vec<TailPolicy> = Vec::new();
    for (i, raw) in raw_policies.into_iter().enumerate() {
        let path = at(&format!("policies[{i}]"));
        let name = raw.name.clone().unwrap_or_default();
        if name.trim().is_empty() {
            p.push(format!("{path}.name"), "every policy needs a name");
        } else if policies.iter().any(|policy| policy.name == name) {
            p.push(format!("{path}.name"), format!("`{name}` is used twice"));
        }
        let rule = rule(raw, &path, p);
        policies.push(TailPolicy { name, rule });
    }
    let tags: usize = policies.iter().map(|policy| tag_rules(&policy.rule)).sum();
    if tags > MAX_TAG_POLICIES {
        p.push(
            at("policies"),
            format!("at most {MAX_TAG_POLICIES} tag policies, found {tags}"),
        );
    }
    TailSampling {
        decision_wait,
        max_traces,
        decision_cache,
        policies,
    }
}

/// `tag` rules in `rule`, `and` included.
fn tag_rules(rule: &TailRule) -> usize {
    match rule {
        TailRule::Tag { .. } => 1,
        TailRule::And(rules) => rules.iter().map(tag_rules).sum(),
        _ => 0,
    }
}

/// Validates one policy's rule at `path`; the keys a type does not use
/// are refused, so a misplaced key is not silently ignored.
fn rule(raw: RawPolicy, path: &str, p: &mut Problems) -> TailRule {
    let kind = raw.kind.as_deref().unwrap_or("");
    let used: &[&str] = match kind {
        "status_code" => &[],
        "latency" => &["threshold"],
        "tag" => &["key", "values"],
        "probabilistic" => &["ratio"],
        "rate_limiting" => &["spans_per_second"],
        "and" => &["policies"],
        "" => {
            p.push(
                format!("{path}.type"),
                "required: status_code, latency, tag, probabilistic, rate_limiting or and",
            );
            return TailRule::StatusCode;
        }
        other => {
            p.push(format!("{path}.type"), format!("unknown type `{other}`: use status_code, latency, tag, probabilistic, rate_limiting or and"));
            return TailRule::StatusCode;
        }
    };
    let set = [
        ("threshold", raw.threshold.is_some()),
        ("key", raw.key.is_some()),
        ("values", raw.values.is_some()),
        ("ratio", raw.ratio.is_some()),
        ("spans_per_second", raw.spans_per_second.is_some()),
        ("policies", raw.policies.is_some()),
    ];
    for (key, _) in set.iter().filter(|(key, set)| *set && !used.contains(key)) {
        p.push(format!("{path}.{key}"), format!("not used by type {kind}"));
    }
    let at = |key: &str| format!("{path}.{key}");
    match kind {
        "latency" => {
            let threshold = match raw.threshold.as_deref() {
                None => {
                    p.push(at("threshold"), "required, e.g. 500ms");
                    Duration::ZERO
                }
                text => p.positive_duration(&at("threshold"), text, Duration::ZERO),
            };
            TailRule::Latency { threshold }
        }
        "tag" => {
            let key = raw.key.unwrap_or_default();
            if key.is_empty() {
                p.push(at("key"), "required: the tag name, e.g. http.route");
            }
            let values = raw.values.unwrap_or_default();
            if values.is_empty() {
                p.push(at("values"), "list at least one value");
            }
            TailRule::Tag { key, values }
        }
        "probabilistic" => {
            let ratio = raw.ratio.unwrap_or(f64::NAN);
            if !(0.0..=1.0).contains(&ratio) {
                p.push(at("ratio"), "required: a number between 0 and 1");
            }
            TailRule::Probabilistic { ratio }
        }
        "rate_limiting" => {
            let spans_per_second = raw.spans_per_second.unwrap_or(0.0);
            if !(spans_per_second.is_finite() && spans_per_second >= 1.0) {
                p.push(at("spans_per_second"), "required: a number of at least 1");
            }
            TailRule::RateLimiting { spans_per_second }
        }
        "and" => {
            let subs = raw.policies.unwrap_or_default();
            if subs.is_empty() {
                p.push(
                    at("policies"),
                    "list the policies that must all keep the trace",
                );
            }
            let rules = subs
                .into_iter()
                .enumerate()
                .map(|(i, sub)| rule(sub, &format!("{path}.policies[{i}]"), p))
                .collect();
            TailRule::And(rules)
        }
        _ => TailRule::StatusCode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
listen: 0.0.0.0:9411
max_memory: 128MiB
forward: http://zipkin:9411/api/v2/spans
tail_sampling:
  decision_wait: 2s
  max_traces: 5000
  policies:
    - { name: errors,   type: status_code }
    - { name: slow,     type: latency, threshold: 500ms }
    - { name: checkout, type: tag, key: http.route, values: ["/api/orders/{id}"] }
    - { name: baseline, type: probabilistic, ratio: 0.05 }
    - { name: budget,   type: rate_limiting, spans_per_second: 2000 }
    - name: slow-checkout
      type: and
      policies:
        - { type: latency, threshold: 200ms }
        - { type: tag, key: http.route, values: ["/api/orders"] }
"#;

    #[test]
    fn the_example_loads() {
        let file = load_collector(EXAMPLE).unwrap();
        assert_eq!(file.listen, Some("0.0.0.0:9411".parse().unwrap()));
        assert_eq!(file.max_memory, Some(128 << 20));
        let tail = file.tail_sampling.unwrap();
        assert_eq!(tail.decision_wait, Duration::from_secs(2));
        assert_eq!(tail.max_traces, 5000);
        assert_eq!(tail.decision_cache, DEFAULT_DECISION_CACHE);
        let names: Vec<_> = tail.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "errors",
                "slow",
                "checkout",
                "baseline",
                "budget",
                "slow-checkout"
            ]
        );
        assert_eq!(
            tail.policies[5].rule,
            TailRule::And(vec![
                TailRule::Latency {
                    threshold: Duration::from_millis(200)
                },
                TailRule::Tag {
                    key: "http.route".into(),
                    values: vec!["/api/orders".into()]
                },
            ])
        );
        // The section alone, as --tail-sampling reads it.
        let section = EXAMPLE.split_once("tail_sampling:\n").unwrap().1;
        let unindented: String = section
            .lines()
            .map(|line| line.strip_prefix("  ").unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(load_tail_sampling(&unindented).unwrap(), tail);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let yaml = r#"
max_memory: lots
tail_sampling:
  decision_wait: 0s
  max_traces: 0
  policies:
    - { type: status_code }
    - { name: slow, type: latency }
    - { name: slow, type: probabilistic, ratio: 1.5, threshold: 1s }
    - { name: t, type: tag, key: "" }
    - { name: r, type: rate_limiting }
    - { name: x, type: sometimes }
    - { name: a, type: and, policies: [{ type: latency, threshold: nope }] }
    - { name: b, type: status_code, colour: red }
"#;
        let errors = load_collector(yaml).unwrap_err();
        for path in [
            "max_memory",
            "tail_sampling.decision_wait",
            "tail_sampling.max_traces",
            "tail_sampling.policies[0].name",
            "tail_sampling.policies[1].threshold",
            "tail_sampling.policies[2].name",
            "tail_sampling.policies[2].ratio",
            "tail_sampling.policies[2].threshold",
            "tail_sampling.policies[3].key",
            "tail_sampling.policies[3].values",
            "tail_sampling.policies[4].spans_per_second",
            "tail_sampling.policies[5].type",
            "tail_sampling.policies[6].policies[0].threshold",
            "tail_sampling.policies[7].colour",
        ] {
            assert!(errors.has(path), "no problem at {path}:\n{errors}");
        }
        let missing = "tail_sampling.policies[1].threshold";
        let at_missing = errors.0.iter().filter(|e| e.path == missing).count();
        assert_eq!(at_missing, 1, "a missing key is one problem:\n{errors}");
        let empty = load_tail_sampling("decision_wait: 1s").unwrap_err();
        assert!(empty.has("policies"), "{empty}");
    }
}
