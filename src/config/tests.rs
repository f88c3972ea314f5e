//! One test per validation rule, plus the example file.

use super::*;
use std::time::Duration;

fn errors(yaml: &str) -> ConfigErrors {
    load(yaml, Overrides::default()).expect_err("config should be rejected")
}

/// Fails unless `yaml` is rejected with a problem at `path`.
fn assert_problem_at(yaml: &str, path: &str) {
    let e = errors(yaml);
    assert!(
        e.has(path),
        "expected a problem at {path} for:\n{yaml}\ngot: {e}"
    );
}

const MINIMAL: &str = "inbound:\n  upstream: http://127.0.0.1:8080\n";

#[test]
fn example_config_parses_and_matches_defaults() {
    let example = include_str!("../../config.example.yaml");
    let config = load(example, Overrides::default()).expect("example config is valid");
    let defaults = load(MINIMAL, Overrides::default()).unwrap();
    // The example documents the defaults: both render the same apart from the name.
    assert_eq!(
        config.to_yaml().replace("my-service", "unknown_service"),
        defaults.to_yaml()
    );
    // Its commented OTLP line, switched on, adds OTLP beside Zipkin.
    let with_otlp = example.replace(
        "  # otlp: http://otel-collector:4318/v1/traces",
        "  otlp: http://otel-collector:4318/v1/traces",
    );
    assert_ne!(with_otlp, example, "the example shows export.otlp");
    let config = load(&with_otlp, Overrides::default()).expect("valid with otlp");
    let ExportConfig::Enabled(export) = config.export else {
        panic!("export enabled")
    };
    let exporters: Vec<_> = export.destinations().map(|(e, _)| e).collect();
    assert_eq!(exporters, [Exporter::Zipkin, Exporter::Otlp]);
}

#[test]
fn effective_config_with_otlp_round_trips_through_yaml() {
    let text = format!(
        "{MINIMAL}export:\n  otlp:\n    url: https://otlp.example.com/v1/traces\n    headers: {{x-api-key: {{value_from_env: KEY}}}}\n"
    );
    let config = load(&text, Overrides::default()).unwrap();
    let yaml = config.to_yaml();
    assert!(!yaml.contains("zipkin"), "{yaml}");
    let again = load(&yaml, Overrides::default()).unwrap();
    assert_eq!(yaml, again.to_yaml());
}

#[test]
fn effective_config_round_trips_through_yaml() {
    let config = load(MINIMAL, Overrides::default()).unwrap();
    let again = load(&config.to_yaml(), Overrides::default()).unwrap();
    assert_eq!(config.to_yaml(), again.to_yaml());
}

#[test]
fn minimal_config_gets_defaults() {
    let c = load(MINIMAL, Overrides::default()).unwrap();
    assert_eq!(&*c.service.name, "unknown_service");
    assert_eq!(c.inbound.listen.to_string(), "127.0.0.1:15006");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:15000");
    assert_eq!(c.propagation.extract, vec![Format::W3c, Format::B3]);
    assert!(c.propagation.inject.is_empty());
    assert_eq!(c.sampling.root, SamplerSpec::Always);
    assert!(c.sampling.default_rules && c.sampling.rules.is_empty());
    assert!(c.sampling.keep.errors);
    assert_eq!(c.sampling.keep.slower_than, Some(Duration::from_secs(10)));
    assert!(c.sampling.parent_based);
    assert!(matches!(c.export, ExportConfig::Enabled(ref z) if z.batch_size == 512));
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let e = errors("inbound:\n  upstream: http://x:1\n  timeouts:\n    idel: 5s\n");
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].path, "inbound.timeouts.idel");
    assert_eq!(e.0[0].message, "unknown key; did you mean `idle`?");
    // The path is said once, in the problem's line.
    assert_eq!(
        e.to_string(),
        "invalid configuration (1 problem):\n  inbound.timeouts.idel: unknown key; did you mean `idle`?\n"
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once_in_yaml_words() {
    let e = errors(
        "service:\n  nmae: x\n\
         inbound:\n  upstream: http://127.0.0.1:3000\n  limits:\n    max_connections: lots\n  \
         timeouts:\n    idle: 5\n    header_read: 5 days\n\
         sampling:\n  root: {type: ratio, ratio: high}\n\
         export:\n  batch_size: -3\n  gzip: maybe\n\
         outbound:\n  routes:\n    - {name: a, listen: [1], upstream: 'http://a:1'}\n    \
         - {name: b, lisen: '127.0.0.1:1', upstream: 'http://b:1'}\n    \
         - {name: c, listen: [2], upstream: 'http://c:1'}\n\
         colour: blue\n",
    );
    let got: Vec<(&str, &str)> =
        e.0.iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
    let want = [
        ("service.nmae", "unknown key; did you mean `name`?"),
        (
            "inbound.limits.max_connections",
            "expected a whole number (0 or more), found the text \"lots\"",
        ),
        (
            "inbound.timeouts.idle",
            "expected a duration like 500ms or 10s, found the number 5",
        ),
        (
            "sampling.root.ratio",
            "expected a number between 0 and 1, found the text \"high\"",
        ),
        (
            "export.batch_size",
            "expected a whole number (0 or more), found the number -3",
        ),
        (
            "export.gzip",
            "expected true or false, found the text \"maybe\"",
        ),
        ("outbound.routes[0].listen", "expected text, found a list"),
        (
            "outbound.routes[1].lisen",
            "unknown key; did you mean `listen`?",
        ),
        ("outbound.routes[2].listen", "expected text, found a list"),
        (
            "colour",
            "unknown key; valid keys here: service, inbound, outbound, propagation, sampling, export, admin, log, shutdown, inference",
        ),
    ];
    for (path, message) in want {
        assert!(
            got.contains(&(path, message)),
            "missing {path}: {message}\n{e}"
        );
    }
    // Validation still runs on the rest, and says nothing more about a
    // key reading refused: `listen` of routes 0 and 2 is not also "required".
    assert!(e.has("inbound.timeouts.header_read"), "{e}");
    assert!(
        !e.has("outbound.routes[0].listen")
            || e.0
                .iter()
                .filter(|p| p.path == "outbound.routes[0].listen")
                .count()
                == 1,
        "{e}"
    );
    assert!(
        e.has("outbound.routes[1].listen"),
        "route b has no listen: {e}"
    );
    let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
    let mut unique = paths.clone();
    unique.dedup();
    assert_eq!(paths.len(), unique.len(), "each problem once: {e}");
}

#[test]
fn a_reload_names_the_changes_that_need_a_restart() {
    let yaml = |ratio: &str, listen: &str| {
        format!(
            "inbound: {{ upstream: 'http://127.0.0.1:3000', listen: '{listen}' }}\n\
             sampling: {{ root: {{ type: ratio, ratio: {ratio} }} }}\n"
        )
    };
    let load_one = |text: String| load(&text, Overrides::default()).expect("valid");
    let running = load_one(yaml("0.5", "127.0.0.1:15006"));
    assert!(
        running
            .restart_needed(&load_one(yaml("0.1", "127.0.0.1:15006")))
            .is_empty()
    );
    assert_eq!(
        running.restart_needed(&load_one(yaml("0.1", "127.0.0.1:16006"))),
        ["inbound.listen"]
    );
}

#[test]
fn yaml_syntax_errors_are_reported() {
    let e = errors("inbound: [unclosed\n");
    assert!(!e.0[0].message.is_empty());
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors(
        "inbound:\n  listen: nowhere\n  upstream: ftp://x\n  timeouts:\n    idle: 5 days\n\
         export:\n  batch_interval: 0s\nlog:\n  format: xml\n",
    );
    for path in [
        "inbound.listen",
        "inbound.upstream",
        "inbound.timeouts.idle",
        "export.batch_interval",
        "log.format",
    ] {
        assert!(e.has(path), "missing {path} in {e}");
    }
    let text = e.to_string();
    assert!(
        text.starts_with("invalid configuration (5 problems)"),
        "{text}"
    );
}

#[test]
fn validation_rules() {
    let up = "inbound:\n  upstream: http://x:1\n";
    let cases: &[(&str, &str)] = &[
        ("inbound: {}\n", "inbound.upstream"),
        (
            "inbound:\n  upstream: \"127.0.0.1:8080\"\n",
            "inbound.upstream",
        ),
        (
            "inbound:\n  upstream: http://x:1\n  protocol: h3\n",
            "inbound.protocol",
        ),
        (
            "inbound:\n  upstream: http://x:1\n  routes: [\"users/{id}\"]\n",
            "inbound.routes[0]",
        ),
        (
            "inbound:\n  upstream: http://x:1\n  routes: [\"/a{id}\"]\n",
            "inbound.routes[0]",
        ),
        (
            "inbound:\n  upstream: http://x:1\n  limits: {max_connections: 0}\n",
            "inbound.limits.max_connections",
        ),
        (
            "inbound:\n  upstream: http://x:1\n  timeouts: {upstream_connect: 0s}\n",
            "inbound.timeouts.upstream_connect",
        ),
        (
            "inbound:\n  upstream: http://x:1\n  capture: {request_headers: [Authorization]}\n",
            "inbound.capture.request_headers[0]",
        ),
        (
            "inbound:\n  upstream: http://x:1\n  capture: {response_headers: [\"bad header\"]}\n",
            "inbound.capture.response_headers[0]",
        ),
        ("service:\n  name: \" \"\n", "service.name"),
        (
            "outbound:\n  routes: [{listen: \"127.0.0.1:1\", upstream: \"http://y:1\"}]\n",
            "outbound.routes[0].name",
        ),
        (
            "outbound:\n  routes: [{name: a, upstream: \"http://y:1\"}]\n",
            "outbound.routes[0].listen",
        ),
        (
            "outbound:\n  routes: [{name: a, listen: \"127.0.0.1:1\"}]\n",
            "outbound.routes[0].upstream",
        ),
        (
            "outbound:\n  routes: [{name: a, listen: \"127.0.0.1:1\", upstream: \"http://y:1\"}, {name: a, listen: \"127.0.0.1:2\", upstream: \"http://y:1\"}]\n",
            "outbound.routes[1].name",
        ),
        (
            "outbound:\n  routes: [{name: a, listen: \"127.0.0.1:1\", upstream: \"http://y:1\"}, {name: b, listen: \"127.0.0.1:1\", upstream: \"http://y:1\"}]\n",
            "outbound.routes[1].listen",
        ),
        (
            "propagation:\n  extract: [w3c, jaeger]\n",
            "propagation.extract[1]",
        ),
        (
            "propagation:\n  inject: [b3, b3]\n",
            "propagation.inject[1]",
        ),
        (
            "sampling:\n  root: {type: ratio, ratio: 1.5}\n",
            "sampling.root.ratio",
        ),
        ("sampling:\n  root: {type: ratio}\n", "sampling.root.ratio"),
        (
            "sampling:\n  root: {type: sometimes}\n",
            "sampling.root.type",
        ),
        (
            "sampling:\n  root: {type: always, ratio: 0.5}\n",
            "sampling.root.ratio",
        ),
        (
            "sampling:\n  root: {type: ratio, ratio: 0.1, burst: 5}\n",
            "sampling.root.burst",
        ),
        (
            "sampling:\n  root: {type: ratio, ratio: 0.1, max_per_second: 0}\n",
            "sampling.root.max_per_second",
        ),
        (
            "sampling:\n  root: {type: rate_limited}\n",
            "sampling.root.per_second",
        ),
        (
            "sampling:\n  root: {type: rate_limited, per_second: -1}\n",
            "sampling.root.per_second",
        ),
        (
            "sampling:\n  root: {type: rate_limited, per_second: 5, burst: 0}\n",
            "sampling.root.burst",
        ),
        (
            "sampling:\n  root: {type: rate_limited, per_second: 5, ratio: 0.1}\n",
            "sampling.root.ratio",
        ),
        (
            "sampling:\n  root: {type: adaptive}\n",
            "sampling.root.target_per_second",
        ),
        (
            "sampling:\n  root: {type: adaptive, target_per_second: 10, window: 0s}\n",
            "sampling.root.window",
        ),
        (
            "sampling:\n  root: {type: adaptive, target_per_second: 10, min_ratio: 0.5, max_ratio: 0.1}\n",
            "sampling.root.min_ratio",
        ),
        (
            "sampling:\n  root: {type: adaptive, target_per_second: 10, max_ratio: 2}\n",
            "sampling.root.max_ratio",
        ),
        (
            "sampling:\n  root: {type: never, per_second: 3}\n",
            "sampling.root.per_second",
        ),
        (
            "sampling:\n  rules: [{path: /a, sampler: {type: never}}]\n",
            "sampling.rules[0].name",
        ),
        (
            "sampling:\n  rules: [{name: probes, path: /a, sampler: {type: never}}]\n",
            "sampling.rules[0].name",
        ),
        (
            "sampling:\n  rules: [{name: a, path: /a}]\n",
            "sampling.rules[0].sampler",
        ),
        (
            "sampling:\n  rules: [{name: a, path: /a, sampler: {type: sometimes}}]\n",
            "sampling.rules[0].sampler.type",
        ),
        (
            "sampling:\n  rules: [{name: a, sampler: {type: never}}]\n",
            "sampling.rules[0]",
        ),
        (
            "sampling:\n  rules: [{name: a, method: \"GE T\", sampler: {type: never}}]\n",
            "sampling.rules[0].method",
        ),
        (
            "sampling:\n  rules: [{name: a, path: api, sampler: {type: never}}]\n",
            "sampling.rules[0].path",
        ),
        (
            "sampling:\n  rules: [{name: a, path: \"/a**\", sampler: {type: never}}]\n",
            "sampling.rules[0].path",
        ),
        (
            "sampling:\n  rules: [{name: a, path: /a, path_prefix: /b, sampler: {type: never}}]\n",
            "sampling.rules[0].path_prefix",
        ),
        (
            "sampling:\n  rules: [{name: a, headers: [{value: x}], sampler: {type: never}}]\n",
            "sampling.rules[0].headers[0].name",
        ),
        (
            "sampling:\n  rules: [{name: a, headers: [{name: \"x y\"}], sampler: {type: never}}]\n",
            "sampling.rules[0].headers[0].name",
        ),
        (
            "sampling:\n  rules: [{name: a, headers: [{name: x, value: \"a\\nb\"}], sampler: {type: never}}]\n",
            "sampling.rules[0].headers[0].value",
        ),
        (
            "sampling:\n  rules: [{name: a, path: /a, sampler: {type: never}}, {name: a, path: /b, sampler: {type: never}}]\n",
            "sampling.rules",
        ),
        (
            "sampling:\n  keep: {slower_than: soon}\n",
            "sampling.keep.slower_than",
        ),
        (
            "sampling:\n  keep: {max_per_second: 0}\n",
            "sampling.keep.max_per_second",
        ),
        ("export:\n  zipkin: localhost:9411\n", "export.zipkin"),
        (
            "export:\n  queue_capacity: 10\n  batch_size: 20\n",
            "export.batch_size",
        ),
        ("export:\n  batch_size: 0\n", "export.batch_size"),
        ("export:\n  timeout: 5\n", "export.timeout"),
        (
            "export:\n  retry: {max_backoff: 1x}\n",
            "export.retry.max_backoff",
        ),
        ("admin:\n  listen: \":15000\"\n", "admin.listen"),
        ("log:\n  level: \"[\"\n", "log.level"),
        (
            "shutdown:\n  grace_period: forever\n",
            "shutdown.grace_period",
        ),
    ];
    for (yaml, path) in cases {
        let yaml = if yaml.starts_with("inbound") {
            (*yaml).to_owned()
        } else {
            format!("{up}{yaml}")
        };
        assert_problem_at(&yaml, path);
    }
}

#[test]
fn export_can_be_disabled() {
    let c = load(
        &format!("{MINIMAL}export:\n  enabled: false\n"),
        Overrides::default(),
    )
    .unwrap();
    assert!(matches!(c.export, ExportConfig::Disabled));
}

#[test]
fn overrides_win_over_the_file() {
    let overrides = Overrides {
        service_name: Some("checkout".into()),
        listen: Some("127.0.0.1:9000".into()),
        upstream: Some("http://127.0.0.1:3000".into()),
        zipkin: vec!["http://127.0.0.1:9412/api/v2/spans".into()],
        admin: Some("127.0.0.1:9001".into()),
        sample_ratio: Some(0.25),
        resource_tags: vec![("k8s.pod.name".into(), "pod-1".into())],
        ..Overrides::default()
    };
    let c = load("service:\n  name: file-name\n", overrides).unwrap();
    assert_eq!(&*c.service.name, "checkout");
    assert_eq!(c.inbound.listen.port(), 9000);
    assert_eq!(c.inbound.upstream.authority.as_str(), "127.0.0.1:3000");
    assert_eq!(c.admin.listen.port(), 9001);
    assert_eq!(
        c.sampling.root,
        SamplerSpec::Ratio {
            ratio: 0.25,
            cap: None
        }
    );
    assert_eq!(
        c.service.resource_tags,
        vec![("k8s.pod.name".to_owned(), "pod-1".to_owned())]
    );
    let ExportConfig::Enabled(e) = c.export else {
        panic!("export enabled")
    };
    let zipkin = e.zipkin.expect("zipkin set");
    assert_eq!(zipkin.urls[0].authority.as_str(), "127.0.0.1:9412");
    assert!(e.otlp.is_none());
}

/// The export section of `yaml` (after MINIMAL) with `overrides`.
fn export_of(yaml: &str, overrides: Overrides) -> ExportSettings {
    let c = load(&format!("{MINIMAL}{yaml}"), overrides).unwrap();
    let ExportConfig::Enabled(e) = c.export else {
        panic!("export enabled")
    };
    e
}

#[test]
fn zipkin_is_the_default_unless_only_otlp_is_named() {
    let plain = export_of("", Overrides::default());
    let names: Vec<_> = plain
        .destinations()
        .map(|(e, d)| (e, d.urls[0].clone()))
        .collect();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].0, Exporter::Zipkin);
    assert_eq!(names[0].1.path, "/api/v2/spans");

    let otlp_only = export_of(
        "export:\n  otlp: http://otel-collector:4318/v1/traces\n  gzip: true\n",
        Overrides::default(),
    );
    assert!(
        otlp_only.zipkin.is_none(),
        "naming OTLP alone replaces the default"
    );
    let otlp = otlp_only.otlp.expect("otlp set");
    assert_eq!(otlp.urls[0].authority.as_str(), "otel-collector:4318");
    assert_eq!(otlp.urls[0].path, "/v1/traces");
    assert!(otlp.gzip, "export.gzip is the default for OTLP too");

    let both = export_of(
        "export:\n  zipkin: http://zipkin:9411/api/v2/spans\n  otlp:\n    url: https://otlp.example.com\n    gzip: false\n    tls: {trust: system}\n    headers: {x-api-key: {value: k}}\n  gzip: true\n  batch_size: 64\n",
        Overrides::default(),
    );
    let kinds: Vec<_> = both.destinations().map(|(e, _)| e).collect();
    assert_eq!(kinds, [Exporter::Zipkin, Exporter::Otlp]);
    let otlp = both.otlp.as_ref().unwrap();
    assert_eq!(
        otlp.urls[0].path, "/v1/traces",
        "a URL without a path gets OTLP's"
    );
    assert!(!otlp.gzip && both.zipkin.as_ref().unwrap().gzip);
    assert_eq!(otlp.headers.len(), 1);
    assert!(otlp.tls.is_some());
    assert!(both.zipkin.as_ref().unwrap().headers.is_empty());
    assert_eq!(both.batch_size, 64, "batching is shared");
}

#[test]
fn the_otlp_flag_adds_otlp_beside_the_file_s_zipkin() {
    let overrides = Overrides {
        otlp: vec!["http://127.0.0.1:4318/v1/traces".into()],
        ..Overrides::default()
    };
    let e = export_of(
        "export:\n  zipkin: http://zipkin:9411/api/v2/spans\n  otlp: {url: http://old:4318, gzip: true}\n",
        overrides,
    );
    assert_eq!(e.zipkin.unwrap().urls[0].authority.as_str(), "zipkin:9411");
    let otlp = e.otlp.unwrap();
    assert_eq!(otlp.urls[0].authority.as_str(), "127.0.0.1:4318");
    assert!(otlp.gzip, "the flag sets the URL only");
}

#[test]
fn otlp_problems_name_their_keys() {
    let cases = [
        ("export:\n  otlp: {url: ftp://x}\n", "export.otlp.url"),
        ("export:\n  otlp: {gzip: true}\n", "export.otlp.url"),
        (
            "export:\n  otlp: {url: http://x:4318, tls: {trust: system}}\n",
            "export.otlp.tls",
        ),
        (
            "export:\n  otlp: {url: https://x, headers: {content-type: {value: a}}}\n",
            "export.otlp.headers.content-type",
        ),
        (
            "export:\n  otlp: http://x:4318\n  headers: {authorization: {value: a}}\n",
            "export.headers",
        ),
        (
            "export:\n  otlp: http://x:4318\n  tls: {trust: system}\n",
            "export.tls",
        ),
    ];
    for (yaml, path) in cases {
        let errors = load(&format!("{MINIMAL}{yaml}"), Overrides::default()).unwrap_err();
        assert!(
            errors.0.iter().any(|e| e.path == path),
            "{yaml}: want {path}, got {errors}"
        );
    }
    let typo = load(
        &format!("{MINIMAL}export:\n  otlp: {{url: http://x, gzpi: true}}\n"),
        Overrides::default(),
    )
    .unwrap_err();
    assert!(typo.to_string().contains("gzpi"), "{typo}");
}

#[test]
fn environment_supplies_service_name_and_pod_metadata() {
    let env = |name: &str| match name {
        "TRACEHOP_SERVICE_NAME" => Some("from-env".to_owned()),
        "TRACEHOP_POD_NAMESPACE" => Some("shop".to_owned()),
        "TRACEHOP_POD_NAME" => Some(String::new()),
        _ => None,
    };
    let c = load(MINIMAL, Overrides::from_env(env)).unwrap();
    assert_eq!(&*c.service.name, "from-env");
    assert_eq!(
        c.service.resource_tags,
        vec![("k8s.namespace.name".to_owned(), "shop".to_owned())]
    );
}

#[test]
fn route_templates_are_split_into_segments() {
    let c = load(
        "inbound:\n  upstream: http://x:1\n  routes: [\"/users/{id}/orders\"]\n",
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        c.inbound.routes[0].segments,
        vec![Some("users".into()), None, Some("orders".into())]
    );
    assert_eq!(c.inbound.timeouts.idle, Duration::from_secs(60));
}

#[test]
fn forward_proxy_allow_list_parses() {
    let c = load(
        "inbound: {upstream: \"http://x:1\"}\noutbound:\n  forward_proxy:\n    listen: 127.0.0.1:3128\n    \
         allow: [\"API.example.com:443\", \"*.internal:*\", \"[::1]:8080\"]\n    connect: true\n",
        Overrides::default(),
    )
    .unwrap();
    let ForwardProxy::Enabled(f) = &c.outbound.forward_proxy else {
        panic!("forward proxy enabled")
    };
    assert!(f.connect);
    assert_eq!(
        f.allow,
        vec![
            AllowTarget {
                host: "api.example.com".into(),
                port: Some(443)
            },
            AllowTarget {
                host: "*.internal".into(),
                port: None
            },
            AllowTarget {
                host: "::1".into(),
                port: Some(8080)
            },
        ]
    );
    let again = load(&c.to_yaml(), Overrides::default()).unwrap();
    assert_eq!(c.to_yaml(), again.to_yaml());
}

#[test]
fn sampling_section_parses_every_sampler_and_rule_shape() {
    let c = load(
        &format!(
            "{MINIMAL}sampling:\n  default_rules: false\n  keep: {{errors: false, slower_than: 0s, max_per_second: 5}}\n\
             \x20 root: {{type: ratio, ratio: 0.1, max_per_second: 50}}\n  rules:\n\
             \x20   - {{name: Checkout, method: post, path: \"/api/*/checkout\", headers: [{{name: X-Tenant, value: gold}}, {{name: x-canary}}], sampler: {{type: always}}}}\n\
             \x20   - {{name: search, path_prefix: /search, sampler: {{type: rate_limited, per_second: 2.5}}}}\n\
             \x20   - {{name: feed, path: /feed, sampler: {{type: adaptive, target_per_second: 20, window: 30s}}}}\n"
        ),
        Overrides::default(),
    )
    .unwrap();
    let s = &c.sampling;
    assert!(!s.default_rules);
    assert!(!s.keep.errors);
    assert_eq!(s.keep.slower_than, None, "0s turns the slow rule off");
    assert_eq!(s.keep.limit.per_second, 5.0);
    assert_eq!(
        s.root,
        SamplerSpec::Ratio {
            ratio: 0.1,
            cap: Some(RateLimit {
                per_second: 50.0,
                burst: 50
            })
        }
    );
    let checkout = &s.rules[0];
    assert_eq!(&*checkout.name, "Checkout");
    assert_eq!(checkout.method, Some(http::Method::POST));
    assert_eq!(
        checkout.path,
        Some(PathMatch::Glob("/api/*/checkout".into()))
    );
    assert_eq!(checkout.headers[0].name.as_str(), "x-tenant");
    assert_eq!(checkout.headers[0].value.as_ref().unwrap(), "gold");
    assert_eq!(checkout.headers[1].value, None);
    assert_eq!(s.rules[1].path, Some(PathMatch::Prefix("/search".into())));
    assert_eq!(
        s.rules[1].sampler,
        SamplerSpec::RateLimited(RateLimit {
            per_second: 2.5,
            burst: 3
        })
    );
    assert_eq!(s.rules[2].path, Some(PathMatch::Exact("/feed".into())));
    assert_eq!(
        s.rules[2].sampler,
        SamplerSpec::Adaptive(AdaptiveSpec {
            target_per_second: 20.0,
            window: Duration::from_secs(30),
            min_ratio: 0.001,
            max_ratio: 1.0
        })
    );
    // The effective config renders every shape and loads back the same.
    let again = load(&c.to_yaml(), Overrides::default()).unwrap();
    assert_eq!(again.to_yaml(), c.to_yaml());
    assert_eq!(again.sampling.rules, c.sampling.rules);
}

#[test]
fn sample_ratio_override_replaces_the_whole_root_sampler() {
    let overrides = Overrides {
        sample_ratio: Some(0.5),
        ..Overrides::default()
    };
    let c = load(
        &format!("{MINIMAL}sampling:\n  root: {{type: adaptive, target_per_second: 5}}\n"),
        overrides,
    )
    .unwrap();
    assert_eq!(
        c.sampling.root,
        SamplerSpec::Ratio {
            ratio: 0.5,
            cap: None
        }
    );
}

#[test]
fn tls_sections_are_validated() {
    let https = "inbound:\n  upstream: https://x:1\n";
    let cases: &[(&str, &str)] = &[
        ("  tls: {cert: a.pem}\n", "inbound.tls.key"),
        ("  tls: {key: a.key}\n", "inbound.tls.cert"),
        (
            "  tls: {cert: a, key: b, client_auth: required}\n",
            "inbound.tls.client_ca",
        ),
        (
            "  tls: {cert: a, key: b, client_ca: c, client_auth: sometimes}\n",
            "inbound.tls.client_auth",
        ),
        (
            "  tls: {cert: a, key: b, reload_interval: 0s}\n",
            "inbound.tls.reload_interval",
        ),
        (
            "  upstream_tls: {trust: ca_file}\n",
            "inbound.upstream_tls.ca_file",
        ),
        (
            "  upstream_tls: {trust: browser}\n",
            "inbound.upstream_tls.trust",
        ),
        (
            "  upstream_tls: {trust: system, ca_file: ca.pem}\n",
            "inbound.upstream_tls.ca_file",
        ),
        (
            "  upstream_tls: {client_cert: c.pem}\n",
            "inbound.upstream_tls.client_key",
        ),
        (
            "  upstream_tls: {server_name: \"not a name\"}\n",
            "inbound.upstream_tls.server_name",
        ),
        (
            "export:\n  zipkin: https://z:1/api/v2/spans\n  headers: {Authorization: {}}\n",
            "export.headers.Authorization",
        ),
        (
            "export:\n  headers: {X-Token: {value: a, value_from_env: B}}\n",
            "export.headers.X-Token",
        ),
        (
            "export:\n  headers: {Content-Type: {value: text/plain}}\n",
            "export.headers.Content-Type",
        ),
        (
            "export:\n  headers: {X-Token: {value: \"a\\nb\"}}\n",
            "export.headers.X-Token.value",
        ),
        ("export:\n  tls: {trust: system}\n", "export.tls"),
    ];
    for (extra, path) in cases {
        let yaml = format!("{https}{extra}");
        assert_problem_at(&yaml, path);
    }
    let http = errors("inbound:\n  upstream: http://x:1\n  upstream_tls: {trust: system}\n");
    assert!(http.has("inbound.upstream_tls"), "{http}");
}

#[test]
fn tls_sections_load_and_render() {
    let yaml = "inbound:\n  upstream: https://app:8443\n  \
                tls: {cert: /tls/tls.crt, key: /tls/tls.key, client_ca: /tls/ca.crt, client_auth: optional}\n  \
                upstream_tls: {ca_file: /tls/app-ca.crt, server_name: app.internal}\n\
                export:\n  zipkin: https://zipkin:9411/api/v2/spans\n  \
                headers:\n    Authorization: {value_from_env: ZIPKIN_TOKEN}\n    X-Key: {value: hunter2}\n";
    let c = load(yaml, Overrides::default()).unwrap();
    let tls = c.inbound.tls.as_ref().unwrap();
    assert_eq!(
        tls.client_auth,
        ClientAuth::Optional {
            ca: "/tls/ca.crt".into()
        }
    );
    assert_eq!(tls.reload_interval, Duration::from_secs(5));
    let up = c.inbound.upstream_tls.as_ref().unwrap();
    assert_eq!(up.trust, Trust::CaFile("/tls/app-ca.crt".into()));
    assert_eq!(up.server_name.as_deref(), Some("app.internal"));
    let text = c.to_yaml();
    assert!(
        text.contains("<redacted>") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("ZIPKIN_TOKEN"), "{text}");
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "Debug hides literals"
    );
    let again = load(&text, Overrides::default()).unwrap();
    assert_eq!(again.to_yaml(), text);
}

#[test]
fn tls_flags_enable_inbound_tls() {
    let overrides = Overrides {
        tls_cert: Some("/tls/tls.crt".into()),
        tls_key: Some("/tls/tls.key".into()),
        ..Overrides::default()
    };
    let c = load(MINIMAL, overrides).unwrap();
    let tls = c.inbound.tls.unwrap();
    assert_eq!(tls.cert, std::path::PathBuf::from("/tls/tls.crt"));
    assert_eq!(tls.client_auth, ClientAuth::Off);
}

/// Two outbound routes; `first` and `second` add lines to each (indented
/// for a route's keys), `other` adds `outbound:` keys.
fn two_routes(first: &str, second: &str, other: &str) -> String {
    format!(
        "{MINIMAL}outbound:\n  routes:\n\
         \x20   - name: a\n      listen: 127.0.0.1:15001\n      upstream: http://a:1\n{first}\
         \x20   - name: b\n      listen: 127.0.0.1:15002\n      upstream: http://b:1\n{second}{other}"
    )
}

const FORWARD: &str = "  forward_proxy:\n    listen: 127.0.0.1:3128\n    allow: [\"x:443\"]\n";

#[test]
fn listener_timeouts_and_limits_are_validated_with_their_paths() {
    let cases = [
        (
            two_routes("", "", "  timeouts: {idle: 5 days}\n"),
            "outbound.timeouts.idle",
        ),
        (
            two_routes("", "", "  limits: {max_connections: 0}\n"),
            "outbound.limits.max_connections",
        ),
        (
            two_routes("", "      timeouts: {idle: soon}\n", ""),
            "outbound.routes[1].timeouts.idle",
        ),
        (
            two_routes("      timeouts: {upstream_response: 0s}\n", "", ""),
            "outbound.routes[0].timeouts.upstream_response",
        ),
        (
            two_routes("", "      limits: {max_concurrent_streams: 0}\n", ""),
            "outbound.routes[1].limits.max_concurrent_streams",
        ),
        (
            two_routes(
                "",
                "",
                &format!("{FORWARD}    timeouts: {{upstream_connect: 0s}}\n"),
            ),
            "outbound.forward_proxy.timeouts.upstream_connect",
        ),
        (
            two_routes(
                "",
                "",
                &format!("{FORWARD}    limits: {{max_header_bytes: 0}}\n"),
            ),
            "outbound.forward_proxy.limits.max_header_bytes",
        ),
        // Unknown keys are refused wherever timeouts and limits appear.
        (
            two_routes("", "", "  timeouts: {idel: 5s}\n"),
            "outbound.timeouts.idel",
        ),
        (
            two_routes("", "      limits: {max_conns: 5}\n", ""),
            "outbound.routes[1].limits.max_conns",
        ),
        (
            two_routes("", "", &format!("{FORWARD}    timeouts: {{read: 5s}}\n")),
            "outbound.forward_proxy.timeouts.read",
        ),
    ];
    for (yaml, path) in &cases {
        assert_problem_at(yaml, path);
    }
}

#[test]
fn every_listener_timeout_problem_is_reported_at_once() {
    let yaml = two_routes(
        "",
        "      timeouts: {idle: soon}\n",
        &format!(
            "  timeouts: {{header_read: never}}\n{FORWARD}    limits: {{max_connections: 0}}\n"
        ),
    );
    let e = errors(&yaml);
    let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "outbound.timeouts.header_read",
            "outbound.routes[1].timeouts.idle",
            "outbound.forward_proxy.limits.max_connections",
        ],
        "{e}"
    );
}

#[test]
fn each_listener_kind_has_its_own_timeouts_and_limits() {
    let s = Duration::from_secs;
    let yaml = two_routes(
        "      timeouts: {upstream_response: 2s}\n      limits: {max_connections: 7}\n",
        "",
        &format!(
            "  timeouts: {{idle: 30s, upstream_response: 20s}}\n  limits: {{max_connections: 50}}\n\
             {FORWARD}    timeouts: {{upstream_connect: 3s}}\n    limits: {{max_header_bytes: 1024}}\n"
        ),
    )
    // Inbound's configured values are not inherited by anyone.
    .replace(
        "upstream: http://127.0.0.1:8080\n",
        "upstream: http://127.0.0.1:8080\n  timeouts: {idle: 5s, header_read: 1s}\n  limits: {max_connections: 3}\n",
    );
    let c = load(&yaml, Overrides::default()).expect("valid config");
    let ForwardProxy::Enabled(forward) = &c.outbound.forward_proxy else {
        panic!("forward proxy enabled")
    };
    let [a, b] = &c.outbound.routes[..] else {
        panic!("two routes")
    };
    // (listener, header_read, idle, upstream_connect, upstream_response, max_connections, max_header_bytes)
    let cases = [
        (
            "inbound",
            &c.inbound.timeouts,
            &c.inbound.limits,
            [1, 5, 5, 15],
            3,
            65536,
        ),
        (
            "outbound",
            &c.outbound.timeouts,
            &c.outbound.limits,
            [10, 30, 5, 20],
            50,
            65536,
        ),
        // Route a overrides two fields; the rest come from outbound.*.
        ("route a", &a.timeouts, &a.limits, [10, 30, 5, 2], 7, 65536),
        (
            "route b",
            &b.timeouts,
            &b.limits,
            [10, 30, 5, 20],
            50,
            65536,
        ),
        // The forward proxy starts from the defaults, not from outbound.*.
        (
            "forward proxy",
            &forward.timeouts,
            &forward.limits,
            [10, 60, 3, 15],
            10_000,
            1024,
        ),
    ];
    for (name, timeouts, limits, [header_read, idle, connect, response], conns, head) in cases {
        let got = (
            timeouts.header_read,
            timeouts.idle,
            timeouts.upstream_connect,
            timeouts.upstream_response,
            limits.max_connections,
            limits.max_header_bytes,
        );
        let want = (
            s(header_read),
            s(idle),
            s(connect),
            s(response),
            conns,
            head,
        );
        assert_eq!(got, want, "{name}");
        assert_eq!(timeouts.request_body, s(10), "{name}");
        assert_eq!(limits.max_concurrent_streams, 256, "{name}");
    }
    // check-config shows each route's and the forward proxy's effective
    // values, and they load back the same.
    let text = c.to_yaml();
    assert!(text.contains("upstream_response: 2s"), "{text}");
    assert!(text.contains("upstream_connect: 3s"), "{text}");
    let again = load(&text, Overrides::default()).unwrap();
    assert_eq!(again.to_yaml(), text);
    assert_eq!(again.outbound.routes[0].timeouts, a.timeouts);
    assert_eq!(again.outbound.routes[1].limits, b.limits);
}

#[test]
fn without_the_new_keys_every_listener_gets_the_inbound_defaults() {
    let c = load(&two_routes("", "", FORWARD), Overrides::default()).unwrap();
    let ForwardProxy::Enabled(forward) = &c.outbound.forward_proxy else {
        panic!("forward proxy enabled")
    };
    let defaults = load(MINIMAL, Overrides::default()).unwrap().inbound;
    for (timeouts, limits) in [
        (&c.outbound.timeouts, &c.outbound.limits),
        (&c.outbound.routes[0].timeouts, &c.outbound.routes[0].limits),
        (&c.outbound.routes[1].timeouts, &c.outbound.routes[1].limits),
        (&forward.timeouts, &forward.limits),
    ] {
        assert_eq!(timeouts, &defaults.timeouts);
        assert_eq!(limits, &defaults.limits);
    }
}

#[test]
fn an_upstream_that_is_one_of_the_sidecars_listeners_is_refused_naming_both_keys() {
    let loop_to_self = load(
        "",
        Overrides {
            listen: Some("127.0.0.1:8700".into()),
            upstream: Some("http://127.0.0.1:8700".into()),
            ..Overrides::default()
        },
    )
    .expect_err("an upstream on the inbound listener loops");
    let problem = loop_to_self
        .0
        .iter()
        .find(|e| e.path == "inbound.upstream")
        .expect("the problem is at inbound.upstream");
    assert!(
        problem.message.contains("`inbound.listen`"),
        "{}",
        problem.message
    );
    // An outbound route pointing at the admin port, via localhost.
    let e = errors(
        "inbound: { upstream: 'http://127.0.0.1:3000' }\n\
         admin: { listen: '127.0.0.1:15000' }\n\
         outbound:\n  routes:\n    - { name: users, listen: '127.0.0.1:15001', upstream: 'http://localhost:15000' }\n",
    );
    let problem =
        e.0.iter()
            .find(|e| e.path == "outbound.routes[0].upstream")
            .expect("route problem");
    assert!(
        problem.message.contains("`admin.listen`"),
        "{}",
        problem.message
    );
}

#[test]
fn two_listeners_on_one_address_are_refused_naming_both_keys() {
    let e = errors(
        "inbound: { listen: '0.0.0.0:15006', upstream: 'http://127.0.0.1:3000' }\n\
         admin: { listen: '127.0.0.1:15006' }\n\
         outbound:\n  routes:\n    - { name: a, listen: '127.0.0.1:15001', upstream: 'http://127.0.0.1:9001' }\n    - { name: b, listen: '127.0.0.1:15001', upstream: 'http://127.0.0.1:9002' }\n",
    );
    let at = |path: &str| {
        e.0.iter()
            .find(|problem| problem.path == path)
            .unwrap_or_else(|| panic!("no problem at {path}: {e}"))
            .message
            .clone()
    };
    assert!(at("admin.listen").contains("`inbound.listen`"));
    assert!(at("outbound.routes[1].listen").contains("`outbound.routes[0].listen`"));
    // Port 0 picks a free port: never a clash.
    load(
        "inbound: { listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:3000' }\nadmin: { listen: '127.0.0.1:0' }\n",
        Overrides::default(),
    )
    .expect("port 0 twice is fine");
}

#[test]
fn parent_inference_defaults_to_unambiguous_and_can_be_turned_off() {
    let c = load(MINIMAL, Overrides::default()).unwrap();
    assert_eq!(c.inference.parents, ParentInference::Unambiguous);
    let off = load(
        &format!("{MINIMAL}inference:\n  parents: off\n"),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(off.inference.parents, ParentInference::Off);
    let again = load(&off.to_yaml(), Overrides::default()).unwrap();
    assert_eq!(again.inference.parents, ParentInference::Off);
    // The flag wins over the file.
    let flag = Overrides {
        infer_parents: Some("unambiguous".into()),
        ..Overrides::default()
    };
    let c = load(&format!("{MINIMAL}inference:\n  parents: \"off\"\n"), flag).unwrap();
    assert_eq!(c.inference.parents, ParentInference::Unambiguous);
    assert!(
        c.restart_needed(&off)
            .contains(&"inference.parents".to_owned())
    );
}

#[test]
fn an_unknown_parent_inference_mode_is_named_with_its_key() {
    let e = errors(&format!("{MINIMAL}inference:\n  parents: always\n"));
    assert!(e.has("inference.parents"), "{e}");
    assert!(e.to_string().contains("use unambiguous or off"), "{e}");
    assert_problem_at(
        &format!("{MINIMAL}inference:\n  guess: true\n"),
        "inference.guess",
    );
}

#[test]
fn several_collectors_are_a_list_of_urls_for_either_exporter() {
    let e = export_of(
        "export:\n  zipkin: [http://c0:9411/api/v2/spans, http://c1:9411/api/v2/spans]\n  otlp: [http://o0:4318, http://o1:4318/v1/traces]\n",
        Overrides::default(),
    );
    let zipkin: Vec<String> = e
        .zipkin
        .unwrap()
        .urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(
        zipkin,
        ["http://c0:9411/api/v2/spans", "http://c1:9411/api/v2/spans"]
    );
    let otlp: Vec<String> = e.otlp.unwrap().urls.iter().map(|u| u.to_string()).collect();
    assert_eq!(
        otlp,
        ["http://o0:4318/v1/traces", "http://o1:4318/v1/traces"]
    );
    assert_eq!(e.resolve, Resolve::Static);

    let block = export_of(
        "export:\n  otlp: {url: [http://o0:4318, http://o1:4318], gzip: true}\n",
        Overrides::default(),
    );
    assert_eq!(block.otlp.unwrap().urls.len(), 2);

    // The flags take a list too (repeated or comma-separated in the CLI).
    let flags = export_of(
        "export:\n  zipkin: http://file:9411/api/v2/spans\n",
        Overrides {
            zipkin: vec![
                "http://a:9411/api/v2/spans".into(),
                "http://b:9411/api/v2/spans".into(),
            ],
            ..Overrides::default()
        },
    );
    assert_eq!(
        flags.zipkin.unwrap().urls.len(),
        2,
        "the flags replace the file's list"
    );

    // The effective config shows a list as a list and reads back the same.
    let text = format!(
        "{MINIMAL}export:\n  zipkin: [http://c0:9411/api/v2/spans, http://c1:9411/api/v2/spans]\n"
    );
    let yaml = load(&text, Overrides::default()).unwrap().to_yaml();
    assert!(yaml.contains("- http://c1:9411/api/v2/spans"), "{yaml}");
    assert_eq!(load(&yaml, Overrides::default()).unwrap().to_yaml(), yaml);
}

#[test]
fn dns_resolution_takes_one_url_and_an_interval() {
    let e = export_of(
        "export:\n  zipkin: http://collector.tracing.svc:9411/api/v2/spans\n  resolve: dns\n",
        Overrides::default(),
    );
    assert_eq!(
        e.resolve,
        Resolve::Dns {
            interval: Duration::from_secs(30)
        }
    );
    let e = export_of(
        "export:\n  zipkin: http://collector:9411/api/v2/spans\n  resolve: dns\n  resolve_interval: 5s\n",
        Overrides::default(),
    );
    assert_eq!(
        e.resolve,
        Resolve::Dns {
            interval: Duration::from_secs(5)
        }
    );
    let yaml = load(
        &format!("{MINIMAL}export:\n  resolve: dns\n  resolve_interval: 5s\n"),
        Overrides::default(),
    )
    .unwrap()
    .to_yaml();
    assert!(
        yaml.contains("resolve: dns") && yaml.contains("resolve_interval: 5s"),
        "{yaml}"
    );
}

#[test]
fn endpoint_list_problems_name_the_key_and_the_index() {
    let cases = [
        ("export:\n  zipkin: []\n", "export.zipkin", "lists no URL"),
        (
            "export:\n  zipkin: [http://a:9411/api/v2/spans, ftp://b]\n",
            "export.zipkin[1]",
            "",
        ),
        (
            "export:\n  zipkin: [http://a:9411/x, http://b:9411/x, http://a:9411/x]\n",
            "export.zipkin[2]",
            "listed twice",
        ),
        (
            "export:\n  otlp: [http://a:4318, 7]\n",
            "export.otlp[1]",
            "",
        ),
        (
            "export:\n  zipkin: [http://a:9411/x, http://b:9411/x]\n  resolve: dns\n",
            "export.resolve",
            "export.zipkin lists 2",
        ),
        (
            "export:\n  zipkin: [http://a:9411/x, ftp://b, http://a:9411/x]\n  resolve: dns\n",
            "export.resolve",
            "export.zipkin lists 3",
        ),
        (
            "export:\n  otlp: {url: [http://a:4318, http://b:4318]}\n  resolve: dns\n",
            "export.resolve",
            "export.otlp lists 2",
        ),
        (
            "export:\n  resolve: consul\n",
            "export.resolve",
            "static or dns",
        ),
        (
            "export:\n  resolve_interval: 5s\n",
            "export.resolve_interval",
            "dns",
        ),
        (
            "export:\n  resolve: dns\n  resolve_interval: 0s\n",
            "export.resolve_interval",
            "",
        ),
    ];
    for (yaml, path, words) in cases {
        let errors = errors(&format!("{MINIMAL}{yaml}"));
        let found = errors.0.iter().find(|e| e.path == path);
        assert!(
            found.is_some_and(|e| e.message.contains(words)),
            "{yaml}: want {path} ({words}), got {errors}"
        );
    }
}
