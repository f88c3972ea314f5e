//! Decision order, rule precedence and counting, through [`Sampler`].

use std::time::{Duration, Instant};

use http::{HeaderMap, Method};

use super::*;
use crate::config::{self, Overrides};
use crate::metrics::Metrics;

/// A sampler from the `sampling:` section `yaml` (indented by two spaces).
fn sampler(yaml: &str) -> (Sampler, Metrics, Instant) {
    let text = format!("inbound:\n  upstream: http://x:1\nsampling:\n{yaml}");
    let config = config::load(&text, Overrides::default()).expect("valid sampling config");
    let metrics = Metrics::new();
    let epoch = Instant::now();
    let s = Sampler::starting_at(&config.sampling, &metrics.sampling, epoch);
    (s, metrics, epoch)
}

fn get(path: &str) -> (Method, String, HeaderMap) {
    (Method::GET, path.to_owned(), HeaderMap::new())
}

fn decide(s: &Sampler, incoming: Sampling, request: &(Method, String, HeaderMap)) -> Decision {
    let facts = RequestFacts {
        method: &request.0,
        path: &request.1,
        headers: &request.2,
    };
    s.decide(incoming, TraceId::random(), &facts, Instant::now())
}

#[test]
fn decision_order() {
    use Sampling::*;
    let rules = "  rules:\n    - {name: api, path_prefix: /api/, sampler: {type: always}}\n";
    // (sampling section, incoming, path, want sampling, want reason label)
    let cases = [
        ("  root: {type: never}\n", Debug, "/", Debug, "debug"),
        (
            "  parent_based: false\n  root: {type: never}\n",
            Debug,
            "/",
            Debug,
            "debug",
        ),
        (
            "  root: {type: never}\n",
            Sampled,
            "/",
            Sampled,
            "parent_sampled",
        ),
        (
            "  root: {type: always}\n",
            NotSampled,
            "/",
            NotSampled,
            "parent_unsampled",
        ),
        ("  root: {type: always}\n", Deferred, "/", Sampled, "always"),
        (
            "  parent_based: false\n  root: {type: never}\n",
            Sampled,
            "/",
            NotSampled,
            "never",
        ),
        (
            "  parent_based: false\n  root: {type: always}\n",
            NotSampled,
            "/",
            Sampled,
            "always",
        ),
        (
            "  root: {type: always}\n",
            Deferred,
            "/healthz",
            NotSampled,
            "rule:probes",
        ),
        (
            "  root: {type: always}\n",
            Sampled,
            "/healthz",
            Sampled,
            "parent_sampled",
        ),
        (rules, NotSampled, "/api/x", NotSampled, "parent_unsampled"),
        (rules, Deferred, "/api/x", Sampled, "rule:api"),
        (rules, Deferred, "/other", Sampled, "always"),
        (
            "  root: {type: ratio, ratio: 0}\n",
            Deferred,
            "/",
            NotSampled,
            "ratio",
        ),
    ];
    for (yaml, incoming, path, want, reason) in cases {
        let (s, _m, _) = sampler(yaml);
        let d = decide(&s, incoming, &get(path));
        assert_eq!(
            (d.sampling, s.reason_label(d.reason).as_str()),
            (want, reason),
            "{yaml} {incoming:?} {path}"
        );
    }
}

#[test]
fn first_matching_rule_wins_and_user_rules_come_before_probes() {
    let yaml = "  root: {type: never}\n  rules:\n\
        \x20   - {name: health, path: /healthz, sampler: {type: always}}\n\
        \x20   - {name: writes, method: POST, sampler: {type: always}}\n\
        \x20   - {name: api, path: \"/api/**\", sampler: {type: never}}\n\
        \x20   - {name: canary, headers: [{name: x-canary}], sampler: {type: always}}\n";
    let (s, _m, _) = sampler(yaml);
    let mut canary = HeaderMap::new();
    canary.insert("x-canary", "1".parse().unwrap());
    let cases = [
        ((Method::GET, "/healthz", HeaderMap::new()), "rule:health"),
        ((Method::GET, "/readyz", HeaderMap::new()), "rule:probes"),
        (
            (Method::POST, "/api/orders", HeaderMap::new()),
            "rule:writes",
        ),
        ((Method::GET, "/api/orders", canary.clone()), "rule:api"),
        ((Method::GET, "/home", canary), "rule:canary"),
        ((Method::GET, "/home", HeaderMap::new()), "never"),
    ];
    for ((method, path, headers), want) in cases {
        let d = decide(&s, Sampling::Deferred, &(method, path.to_owned(), headers));
        assert_eq!(s.reason_label(d.reason), want, "{path}");
    }
}

#[test]
fn probes_are_sampled_when_default_rules_are_off() {
    let (s, _m, _) = sampler("  default_rules: false\n");
    for path in PROBE_PATHS {
        let d = decide(&s, Sampling::Deferred, &get(path));
        assert_eq!(d.reason, Reason::Always, "{path}");
    }
}

#[test]
fn two_independent_samplers_agree_on_every_trace() {
    let (a, _ma, _) = sampler("  root: {type: ratio, ratio: 0.1}\n");
    let (b, _mb, _) = sampler("  root: {type: ratio, ratio: 0.1}\n");
    let (half, _mc, _) = sampler("  root: {type: ratio, ratio: 0.5}\n");
    let request = get("/");
    let facts = RequestFacts {
        method: &request.0,
        path: &request.1,
        headers: &request.2,
    };
    let n = 100_000;
    let mut kept = 0;
    for _ in 0..n {
        let id = TraceId::random();
        let now = Instant::now();
        let [x, y, z] = [&a, &b, &half].map(|s| {
            s.decide(Sampling::Deferred, id, &facts, now)
                .sampling
                .is_sampled()
        });
        assert_eq!(x, y, "{id}");
        assert!(!x || z, "{id} kept at 10% but not at 50%");
        kept += usize::from(x);
    }
    let share = kept as f64 / n as f64;
    assert!((0.095..=0.105).contains(&share), "kept {share}");
}

#[test]
fn capped_ratio_counts_the_cap_as_rate_limited() {
    let (s, m, epoch) = sampler("  root: {type: ratio, ratio: 1, max_per_second: 2, burst: 2}\n");
    let request = get("/");
    let facts = RequestFacts {
        method: &request.0,
        path: &request.1,
        headers: &request.2,
    };
    let decide_at = |ms| {
        s.decide(
            Sampling::Deferred,
            TraceId::random(),
            &facts,
            epoch + Duration::from_millis(ms),
        )
        .reason
    };
    assert_eq!(
        [0, 0, 0, 500, 500].map(decide_at),
        [
            Reason::Ratio,
            Reason::Ratio,
            Reason::RateLimited,
            Reason::Ratio,
            Reason::RateLimited
        ]
    );
    let text = String::from_utf8(m.render()).unwrap();
    for line in [
        r#"tracehop_sampling_decisions_total{reason="ratio",sampled="true"} 3"#,
        r#"tracehop_sampling_decisions_total{reason="rate_limited",sampled="false"} 2"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[test]
fn decisions_are_counted_by_reason() {
    let yaml = "  root: {type: adaptive, target_per_second: 5}\n  rules:\n\
        \x20   - {name: api, path_prefix: /api, sampler: {type: always}}\n";
    let (s, m, _) = sampler(yaml);
    decide(&s, Sampling::NotSampled, &get("/"));
    decide(&s, Sampling::Debug, &get("/"));
    decide(&s, Sampling::Deferred, &get("/api"));
    decide(&s, Sampling::Deferred, &get("/healthz"));
    decide(&s, Sampling::Deferred, &get("/"));
    let text = String::from_utf8(m.render()).unwrap();
    for line in [
        r#"{reason="parent_unsampled",sampled="false"} 1"#,
        r#"{reason="debug",sampled="true"} 1"#,
        r#"{reason="rule:api",sampled="true"} 1"#,
        r#"{reason="rule:probes",sampled="false"} 1"#,
        r#"tracehop_sampling_adaptive_ratio{sampler="root"} 0.001"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(text.contains(r#"{reason="adaptive",sampled="#), "{text}");
}

#[test]
fn keep_uses_the_configured_rules() {
    let (s, _m, epoch) = sampler("  keep: {errors: false, slower_than: 2s}\n");
    let outcome = |status, ms| Outcome {
        status,
        duration: Duration::from_millis(ms),
        ..Outcome::default()
    };
    assert_eq!(s.keep(&outcome(503, 10), epoch), None);
    assert_eq!(s.keep(&outcome(200, 2001), epoch), Some(KeepReason::Slow));
}

#[test]
fn live_sampler_swaps_atomically() {
    let (never, _m1, _) = sampler("  root: {type: never}\n");
    let (always, _m2, _) = sampler("  root: {type: always}\n");
    let live = LiveSampler::new(never);
    let held = live.load();
    live.replace(always);
    assert_eq!(
        decide(&held, Sampling::Deferred, &get("/")).reason,
        Reason::Never
    );
    assert_eq!(
        decide(&live.load(), Sampling::Deferred, &get("/")).reason,
        Reason::Always
    );
}
