//! Sampling rules: which requests get a sampler other than the root one.
//!
//! A rule matches on method, path (exact, prefix, or glob) and request
//! headers; every condition it sets must hold, and the first matching rule
//! wins (DESIGN §5 step 3). Matching borrows the request and never
//! allocates. The built-in rules ([`default_rules`]) never sample the
//! usual probe paths; they come after the user's rules, so a user rule
//! for `/healthz` wins, and `sampling.default_rules: false` drops them.

use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::config::{HeaderMatch, PathMatch, SamplerSpec, SamplingRule};

/// Paths of liveness/readiness probes and scrapes: noise in every trace view.
pub const PROBE_PATHS: [&str; 5] = ["/healthz", "/readyz", "/livez", "/metrics", "/ping"];

/// The request facts rules look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// The built-in rules: one `never` rule named `probes` per probe path.
pub fn default_rules() -> Vec<SamplingRule> {
    let name: Arc<str> = Arc::from("probes");
    PROBE_PATHS
        .iter()
        .map(|path| SamplingRule {
            name: name.clone(),
            method: None,
            path: Some(PathMatch::Exact((*path).to_owned())),
            headers: Vec::new(),
            sampler: SamplerSpec::Never,
        })
        .collect()
}

/// True when every condition of `rule` holds for `request`.
pub fn matches(rule: &SamplingRule, request: &RequestFacts<'_>) -> bool {
    rule.method.as_ref().is_none_or(|m| m == request.method)
        && rule
            .path
            .as_ref()
            .is_none_or(|p| path_matches(p, request.path))
        && rule
            .headers
            .iter()
            .all(|h| header_matches(h, request.headers))
}

fn path_matches(pattern: &PathMatch, path: &str) -> bool {
    match pattern {
        PathMatch::Exact(exact) => path == exact,
        PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
        PathMatch::Glob(glob) => glob_matches(glob, path),
    }
}

fn header_matches(want: &HeaderMatch, headers: &HeaderMap) -> bool {
    match &want.value {
        None => headers.contains_key(&want.name),
        Some(value) => headers.get_all(&want.name).iter().any(|v| v == value),
    }
}

/// Matches `path` against a glob, segment by segment: a `**` segment
/// matches any number of segments (zero included), `*` inside a segment
/// any run of characters but `/`. Backtracking only ever returns to the
/// last `**` (and, within a segment, to the last `*`), which is enough
/// because every `**` matches the same language: the cost stays
/// O(pattern × path) whatever the path.
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    let mut retry = None;
    loop {
        let at = segs.clone().next();
        match (pat.next(), at) {
            (Some("**"), _) => {
                retry = Some((pat.clone(), segs.clone()));
                continue;
            }
            (Some(p), Some(s)) if segment_matches(p.as_bytes(), s.as_bytes()) => {
                segs.next();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        // Mismatch: let the last `**` take one more segment, if any is left.
        let Some((after_stars, from)) = &mut retry else {
            return false;
        };
        if from.next().is_none() {
            return false;
        }
        pat = after_stars.clone();
        segs = from.clone();
    }
}

/// One segment against a pattern where `*` matches any run of bytes.
fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p + 1, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((after, from)) = star {
            p = after;
            t = from + 1;
            star = Some((after, from + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("/api/**", "/api", true),
            ("/api/**", "/api/", true),
            ("/api/**", "/api/v1/users/7", true),
            ("/api/**", "/apix", false),
            ("/api/*", "/api/users", true),
            ("/api/*", "/api/users/7", false),
            ("/api/*/orders", "/api/7/orders", true),
            ("/api/*/orders", "/api/7/8/orders", false),
            ("/api/**/orders", "/api/orders", true),
            ("/api/**/orders", "/api/a/b/c/orders", true),
            ("/api/**/orders", "/api/a/b/c/orders/1", false),
            ("/**/*.json", "/a/b/c.json", true),
            ("/**/*.json", "/c.json", true),
            ("/**/*.json", "/a/b/c.jsonx", false),
            ("/users/*-admin", "/users/bob-admin", true),
            ("/users/*-admin", "/users/bob-admin/x", false),
            ("/**/x/**/y", "/x/a/x/b/y", true),
            ("/**", "/", true),
            ("/*", "/", true),
            ("/a*b*c", "/aXbYc", true),
            ("/a*b*c", "/aXbY", false),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(glob_matches(pattern, path), want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn glob_cost_stays_linear_on_hostile_paths() {
        let path = format!("/{}", "a/".repeat(5_000));
        let start = std::time::Instant::now();
        assert!(!glob_matches("/**/a/**/a/**/b", &path));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    fn rule(
        method: Option<&str>,
        path: Option<PathMatch>,
        headers: &[(&str, Option<&str>)],
    ) -> SamplingRule {
        SamplingRule {
            name: Arc::from("r"),
            method: method.map(|m| m.parse().unwrap()),
            path,
            headers: headers
                .iter()
                .map(|(n, v)| HeaderMatch {
                    name: n.parse().unwrap(),
                    value: v.map(|v| v.parse().unwrap()),
                })
                .collect(),
            sampler: SamplerSpec::Always,
        }
    }

    #[test]
    fn rule_conditions_all_must_hold() {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", "gold".parse().unwrap());
        headers.append("x-tenant", "silver".parse().unwrap());
        headers.insert("x-canary", "".parse().unwrap());
        let prefix = || Some(PathMatch::Prefix("/api/".into()));
        let exact = || Some(PathMatch::Exact("/api/checkout".into()));
        let cases = [
            (rule(Some("POST"), None, &[]), true),
            (rule(Some("GET"), None, &[]), false),
            (rule(None, prefix(), &[]), true),
            (rule(None, exact(), &[]), true),
            (
                rule(None, Some(PathMatch::Exact("/api".into())), &[]),
                false,
            ),
            (rule(None, None, &[("x-canary", None)]), true),
            (rule(None, None, &[("x-missing", None)]), false),
            (rule(None, None, &[("x-tenant", Some("silver"))]), true),
            (rule(None, None, &[("x-tenant", Some("bronze"))]), false),
            (
                rule(Some("POST"), prefix(), &[("x-tenant", Some("gold"))]),
                true,
            ),
            (
                rule(Some("POST"), prefix(), &[("x-tenant", Some("lead"))]),
                false,
            ),
            (
                rule(Some("PUT"), prefix(), &[("x-tenant", Some("gold"))]),
                false,
            ),
        ];
        let request = RequestFacts {
            method: &Method::POST,
            path: "/api/checkout",
            headers: &headers,
        };
        for (i, (rule, want)) in cases.iter().enumerate() {
            assert_eq!(matches(rule, &request), *want, "case {i}: {rule:?}");
        }
    }

    #[test]
    fn default_rules_cover_the_probe_paths_exactly() {
        let headers = HeaderMap::new();
        let rules = default_rules();
        for (path, want) in [
            ("/healthz", true),
            ("/readyz", true),
            ("/livez", true),
            ("/metrics", true),
            ("/ping", true),
            ("/healthz/deep", false),
            ("/api/healthz", false),
            ("/", false),
        ] {
            let request = RequestFacts {
                method: &Method::GET,
                path,
                headers: &headers,
            };
            assert_eq!(rules.iter().any(|r| matches(r, &request)), want, "{path}");
        }
    }
}
