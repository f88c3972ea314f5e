//! The `sampling:` section: raw YAML structs and their validation.
//!
//! Owns the raw serde structs of the section (private to `config`,
//! `deny_unknown_fields`) and turns them into [`SamplingConfig`], recording
//! every problem with its YAML path. A sampler is written the same way at
//! `sampling.root` and in every rule's `sampler`: `type` picks the kind,
//! the other keys are its settings, and a key that does not belong to the
//! chosen type is an error (it would otherwise be silently ignored).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;
use super::types::{
    AdaptiveSpec, HeaderMatch, KeepConfig, PathMatch, RateLimit, SamplerSpec, SamplingConfig,
    SamplingRule,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSampling {
    pub parent_based: Option<bool>,
    pub rules: Option<Vec<RawRule>>,
    pub default_rules: Option<bool>,
    pub root: Option<RawSampler>,
    pub keep: Option<RawKeep>,
}

/// A sampler: `type` picks the kind, the other keys are its settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSampler {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::ratio")]
    pub ratio: Option<f64>,
    pub max_per_second: Option<f64>,
    pub per_second: Option<f64>,
    pub burst: Option<u32>,
    pub target_per_second: Option<f64>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub window: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::ratio")]
    pub min_ratio: Option<f64>,
    #[serde(default, deserialize_with = "super::yaml::ratio")]
    pub max_ratio: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub name: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub headers: Option<Vec<RawHeaderMatch>>,
    pub sampler: Option<RawSampler>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderMatch {
    pub name: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeep {
    pub errors: Option<bool>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub slower_than: Option<String>,
    pub max_per_second: Option<f64>,
}

/// Default keep threshold for slow requests.
const KEEP_SLOWER_THAN: Duration = Duration::from_secs(10);
/// Default cap on kept spans per second.
const KEEP_PER_SECOND: f64 = 100.0;

pub(super) fn sampling(raw: RawSampling, p: &mut Problems) -> SamplingConfig {
    let rules = raw
        .rules
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, rule)| self::rule(&format!("sampling.rules[{i}]"), rule, p))
        .collect::<Vec<SamplingRule>>();
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.name == rule.name) {
            p.push(
                "sampling.rules",
                format!("rule name `{}` is used twice", rule.name),
            );
        }
    }
    SamplingConfig {
        parent_based: raw.parent_based.unwrap_or(true),
        rules,
        default_rules: raw.default_rules.unwrap_or(true),
        root: match raw.root {
            Some(root) => sampler("sampling.root", root, p),
            None => SamplerSpec::Always,
        },
        keep: keep(raw.keep.unwrap_or_default(), p),
    }
}

fn keep(raw: RawKeep, p: &mut Problems) -> KeepConfig {
    let slower_than = p.duration(
        "sampling.keep.slower_than",
        raw.slower_than.as_deref(),
        KEEP_SLOWER_THAN,
    );
    let per_second = positive(
        p,
        "sampling.keep.max_per_second",
        raw.max_per_second.unwrap_or(KEEP_PER_SECOND),
    );
    KeepConfig {
        errors: raw.errors.unwrap_or(true),
        // Zero turns the slow rule off (every request is slower than zero).
        slower_than: (!slower_than.is_zero()).then_some(slower_than),
        limit: RateLimit {
            per_second,
            burst: default_burst(per_second),
        },
    }
}

/// A number that must be finite and above zero; 1 after a recorded problem.
fn positive(p: &mut Problems, path: &str, value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        p.push(path, format!("{value} must be a number above 0"));
        1.0
    }
}

/// A ratio in `[0, 1]`; `fallback` after a recorded problem.
fn ratio(p: &mut Problems, path: &str, value: f64, fallback: f64) -> f64 {
    if (0.0..=1.0).contains(&value) {
        value
    } else {
        p.push(path, format!("{value} is not between 0 and 1"));
        fallback
    }
}

/// One second's worth of tokens, at least one.
fn default_burst(per_second: f64) -> u32 {
    per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

fn rate_limit(p: &mut Problems, path: &str, per_second: f64, burst: Option<u32>) -> RateLimit {
    let per_second = positive(p, path, per_second);
    let burst = match burst {
        Some(0) => {
            p.push(
                path.rsplit_once('.')
                    .map_or("burst".to_owned(), |(at, _)| format!("{at}.burst")),
                "must be at least 1",
            );
            1
        }
        Some(n) => n,
        None => default_burst(per_second),
    };
    RateLimit { per_second, burst }
}

/// Keys each sampler type accepts besides `type`.
const KEYS: &[(&str, &[&str])] = &[
    ("always", &[]),
    ("never", &[]),
    ("ratio", &["ratio", "max_per_second", "burst"]),
    ("rate_limited", &["per_second", "burst"]),
    (
        "adaptive",
        &["target_per_second", "window", "min_ratio", "max_ratio"],
    ),
];

/// The keys set in `raw`, by name.
fn keys_set(raw: &RawSampler) -> impl Iterator<Item = &'static str> {
    [
        ("ratio", raw.ratio.is_some()),
        ("max_per_second", raw.max_per_second.is_some()),
        ("per_second", raw.per_second.is_some()),
        ("burst", raw.burst.is_some()),
        ("target_per_second", raw.target_per_second.is_some()),
        ("window", raw.window.is_some()),
        ("min_ratio", raw.min_ratio.is_some()),
        ("max_ratio", raw.max_ratio.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
}

pub(super) fn sampler(path: &str, raw: RawSampler, p: &mut Problems) -> SamplerSpec {
    let kind = raw.kind.as_deref().unwrap_or("ratio");
    let Some((_, allowed)) = KEYS.iter().find(|(k, _)| *k == kind) else {
        p.push(
            format!("{path}.type"),
            format!(
                "`{kind}` is not a sampler: use always, never, ratio, rate_limited or adaptive"
            ),
        );
        return SamplerSpec::Always;
    };
    for key in keys_set(&raw).filter(|key| !allowed.contains(key)) {
        p.push(
            format!("{path}.{key}"),
            format!("does not apply to type `{kind}`"),
        );
    }
    let at = |key: &str| format!("{path}.{key}");
    let required = |p: &mut Problems, key: &str, value: Option<f64>| {
        value.unwrap_or_else(|| {
            p.push(at(key), format!("is required for type `{kind}`"));
            1.0
        })
    };
    match kind {
        "always" => SamplerSpec::Always,
        "never" => SamplerSpec::Never,
        "ratio" => {
            let value = required(p, "ratio", raw.ratio);
            if raw.burst.is_some() && raw.max_per_second.is_none() {
                p.push(at("burst"), "only applies with max_per_second");
            }
            SamplerSpec::Ratio {
                ratio: ratio(p, &at("ratio"), value, 1.0),
                cap: raw
                    .max_per_second
                    .map(|n| rate_limit(p, &at("max_per_second"), n, raw.burst)),
            }
        }
        "rate_limited" => {
            let per_second = required(p, "per_second", raw.per_second);
            SamplerSpec::RateLimited(rate_limit(p, &at("per_second"), per_second, raw.burst))
        }
        _ => adaptive(
            path,
            &raw,
            required(p, "target_per_second", raw.target_per_second),
            p,
        ),
    }
}

fn adaptive(path: &str, raw: &RawSampler, target: f64, p: &mut Problems) -> SamplerSpec {
    let at = |key: &str| format!("{path}.{key}");
    let min_ratio = ratio(p, &at("min_ratio"), raw.min_ratio.unwrap_or(0.001), 0.0);
    let max_ratio = ratio(p, &at("max_ratio"), raw.max_ratio.unwrap_or(1.0), 1.0);
    if min_ratio > max_ratio {
        p.push(
            at("min_ratio"),
            format!("{min_ratio} is larger than max_ratio ({max_ratio})"),
        );
    }
    SamplerSpec::Adaptive(AdaptiveSpec {
        target_per_second: positive(p, &at("target_per_second"), target),
        window: p.positive_duration(
            &at("window"),
            raw.window.as_deref(),
            Duration::from_secs(10),
        ),
        min_ratio: min_ratio.min(max_ratio),
        max_ratio,
    })
}

fn rule(path: &str, raw: RawRule, p: &mut Problems) -> Option<SamplingRule> {
    let at = |key: &str| format!("{path}.{key}");
    let name = raw.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        p.push(at("name"), "is required");
    } else if name == "probes" {
        p.push(
            at("name"),
            "`probes` is the name of the built-in rules; pick another",
        );
    }
    let method = raw.method.as_deref().and_then(|m| {
        let upper = m.trim().to_ascii_uppercase();
        http::Method::from_bytes(upper.as_bytes())
            .map_err(|_| p.push(at("method"), format!("`{m}` is not an HTTP method")))
            .ok()
    });
    let path_match = path_match(path, raw.path, raw.path_prefix, p);
    let headers = raw
        .headers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| header_match(&format!("{path}.headers[{i}]"), h, p))
        .collect::<Vec<_>>();
    if method.is_none() && path_match.is_none() && headers.is_empty() && raw.method.is_none() {
        p.push(
            path,
            "matches every request: set method, path, path_prefix or headers (or use sampling.root)",
        );
    }
    let sampler = match raw.sampler {
        Some(s) => sampler(&at("sampler"), s, p),
        None => {
            p.push(at("sampler"), "is required");
            SamplerSpec::Always
        }
    };
    (!name.is_empty()).then(|| SamplingRule {
        name: Arc::from(name),
        method,
        path: path_match,
        headers,
        sampler,
    })
}

fn path_match(
    path: &str,
    exact_or_glob: Option<String>,
    prefix: Option<String>,
    p: &mut Problems,
) -> Option<PathMatch> {
    let (key, text) = match (exact_or_glob, prefix) {
        (Some(_), Some(_)) => {
            p.push(
                format!("{path}.path_prefix"),
                "set either path or path_prefix",
            );
            return None;
        }
        (Some(text), None) => ("path", text),
        (None, Some(text)) => ("path_prefix", text),
        (None, None) => return None,
    };
    let at = format!("{path}.{key}");
    if !text.starts_with('/') {
        p.push(at, format!("`{text}` must start with `/`"));
        return None;
    }
    if key == "path_prefix" {
        return Some(PathMatch::Prefix(text));
    }
    if !text.contains('*') {
        return Some(PathMatch::Exact(text));
    }
    if text
        .split('/')
        .any(|segment| segment.contains("**") && segment != "**")
    {
        p.push(at, format!("`{text}`: `**` must be a whole path segment"));
        return None;
    }
    Some(PathMatch::Glob(text))
}

fn header_match(path: &str, raw: RawHeaderMatch, p: &mut Problems) -> Option<HeaderMatch> {
    let Some(name) = raw.name else {
        p.push(format!("{path}.name"), "is required");
        return None;
    };
    let Ok(name) = http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()) else {
        p.push(
            format!("{path}.name"),
            format!("`{name}` is not a valid header name"),
        );
        return None;
    };
    let value = match raw
        .value
        .map(|v| http::HeaderValue::from_str(&v).map_err(|_| v))
    {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(v)) => {
            p.push(
                format!("{path}.value"),
                format!("`{v}` is not a valid header value"),
            );
            return None;
        }
    };
    Some(HeaderMatch { name, value })
}
