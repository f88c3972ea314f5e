//! The session fed with message sequences as drivers send them, and the
//! sanitising property: no literal or parameter value reaches a tag.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::config::{self, Overrides};
use crate::export::{EncodeOptions, encode_spans};
use crate::inference::Register;
use crate::metrics::Metrics;
use crate::postgres::{Route, Telemetry};
use crate::sampling::{LiveSampler, Sampler};
use crate::span::SpanContext;

fn config_with(sampling: &str) -> crate::config::Config {
    let yaml = format!(
        "service: {{name: user-service}}\ninbound: {{upstream: http://127.0.0.1:9}}\n\
         outbound:\n  routes:\n    - {{name: users-db, protocol: postgres, listen: 127.0.0.1:0, \
         upstream: tcp://127.0.0.1:5432}}\nexport: {{enabled: false}}\n{sampling}"
    );
    config::load(&yaml, Overrides::default()).expect("valid test config")
}

fn session_with(sampling: &str, metrics: &Metrics) -> Session {
    session_in(sampling, metrics, None)
}

/// A session of a sidecar whose parent-inference register is `register`.
fn session_in(sampling: &str, metrics: &Metrics, register: Option<Arc<Register>>) -> Session {
    let config = config_with(sampling);
    let (sink, _) = crate::export::channel(&config.export, &metrics.export, Default::default());
    let telemetry = Telemetry {
        local_service: config.service.name.clone(),
        sampler: LiveSampler::new(Sampler::new(&config.sampling, &metrics.sampling)),
        sink,
        register,
    };
    let route = Route::new(
        &config.outbound.postgres[0],
        metrics.db.clone(),
        &metrics.outbound,
        telemetry,
    );
    Session::new(Arc::new(route), Some("shop"))
}

fn session() -> Session {
    session_with("sampling: {root: {type: always}}", &Metrics::new())
}

/// NUL-terminated fields, concatenated.
fn body(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(field);
        out.push(0);
    }
    out
}

fn query(s: &mut Session, sql: &str) {
    s.frontend(b'Q', &body(&[sql.as_bytes()]));
}

fn parse(s: &mut Session, name: &str, sql: &str) {
    s.frontend(b'P', &body(&[name.as_bytes(), sql.as_bytes()]));
}

/// `Bind` of `portal` to `statement` with parameter values that must
/// never be seen (they follow the names; the framer cuts bodies at 130
/// bytes, the test passes them whole).
fn bind(s: &mut Session, portal: &str, statement: &str, values: &[&str]) {
    let mut b = body(&[portal.as_bytes(), statement.as_bytes()]);
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for value in values {
        b.extend_from_slice(&(value.len() as u32).to_be_bytes());
        b.extend_from_slice(value.as_bytes());
    }
    s.frontend(b'B', &b);
}

fn execute(s: &mut Session, portal: &str) {
    s.frontend(b'E', &body(&[portal.as_bytes(), &[0, 0, 0]]));
}

fn complete(s: &mut Session, tag: &str) {
    s.backend(b'C', &body(&[tag.as_bytes()]));
}

fn error(s: &mut Session, code: &str) {
    let mut b = body(&[
        b"SERROR",
        b"VERROR",
        format!("C{code}").as_bytes(),
        b"Msecret 'x'",
    ]);
    b.push(0);
    s.backend(b'E', &b);
}

fn ready(s: &mut Session) {
    s.backend(b'Z', b"I");
}

fn spans(s: &mut Session) -> Vec<Span> {
    s.take_finished().collect()
}

fn db(span: &Span) -> &DbFacts {
    span.db.as_deref().expect("a database span")
}

#[test]
fn a_simple_query_is_one_span_with_sanitised_text_and_rows() {
    let mut s = session();
    query(&mut s, "SELECT * FROM users WHERE email = 'a@b.c'");
    s.backend(b'T', b"");
    s.backend(b'D', b"");
    complete(&mut s, "SELECT 1");
    ready(&mut s);
    let spans = spans(&mut s);
    assert_eq!(spans.len(), 1);
    let facts = db(&spans[0]);
    assert_eq!(&*facts.query_text, "SELECT * FROM users WHERE email = ?");
    assert_eq!(facts.operation.as_deref(), Some("SELECT"));
    assert_eq!(facts.collection.as_deref(), Some("users"));
    assert_eq!(facts.namespace.as_deref(), Some("shop"));
    assert_eq!(facts.returned_rows, Some(1));
    assert_eq!(spans[0].kind, Kind::Client);
    assert_eq!(spans[0].remote.service_name.as_deref(), Some("users-db"));
    assert_eq!(spans[0].parent_id, None, "no context: a root");
}

#[test]
fn each_statement_of_a_transaction_is_its_own_span() {
    let mut s = session();
    query(
        &mut s,
        "BEGIN; UPDATE users SET name = 'x' WHERE id = 1; COMMIT",
    );
    for tag in ["BEGIN", "UPDATE 1", "COMMIT"] {
        complete(&mut s, tag);
    }
    ready(&mut s);
    let ops: Vec<_> = spans(&mut s)
        .iter()
        .map(|span| db(span).operation.as_deref().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ops, ["BEGIN", "UPDATE", "COMMIT"]);
}

#[test]
fn a_pipelined_batch_reusing_a_named_statement_pairs_in_order() {
    let mut s = session();
    parse(&mut s, "s1", "SELECT name FROM users WHERE id = $1");
    s.frontend(b'D', b"Ss1\0");
    s.frontend(b'S', b"");
    s.backend(b'1', b"");
    s.backend(b't', b"");
    ready(&mut s);
    assert!(spans(&mut s).is_empty(), "preparing is not a query");
    // Two batches sent before either is answered.
    for id in ["7", "8"] {
        bind(&mut s, "", "s1", &[id]);
        execute(&mut s, "");
        s.frontend(b'S', b"");
    }
    for rows in ["SELECT 1", "SELECT 0"] {
        s.backend(b'2', b"");
        complete(&mut s, rows);
        ready(&mut s);
    }
    let spans = spans(&mut s);
    let rows: Vec<_> = spans.iter().map(|span| db(span).returned_rows).collect();
    assert_eq!(rows, [Some(1), Some(0)]);
    assert_eq!(
        &*db(&spans[0]).query_text,
        "SELECT name FROM users WHERE id = $1"
    );
}

#[test]
fn an_unknown_table_fails_at_parse_with_its_sqlstate_and_skips_the_rest() {
    let mut s = session();
    parse(&mut s, "", "SELECT * FROM nosuch");
    bind(&mut s, "", "", &[]);
    execute(&mut s, "");
    s.frontend(b'S', b"");
    error(&mut s, "42P01");
    ready(&mut s);
    let spans = spans(&mut s);
    assert_eq!(spans.len(), 1, "the skipped Execute never ran");
    assert_eq!(db(&spans[0]).status_text(), Some("42P01"));
    assert_eq!(db(&spans[0]).collection.as_deref(), Some("nosuch"));
    // The next batch pairs normally.
    query(&mut s, "SELECT 1");
    complete(&mut s, "SELECT 1");
    ready(&mut s);
    assert_eq!(db(&s.take_finished().next().unwrap()).status_code, None);
}

#[test]
fn an_error_in_a_simple_query_ends_it() {
    let mut s = session();
    query(&mut s, "SELECT 1; SELECT * FROM nosuch; SELECT 2");
    complete(&mut s, "SELECT 1");
    error(&mut s, "42P01");
    ready(&mut s);
    let codes: Vec<_> = spans(&mut s).iter().map(|x| db(x).status_code).collect();
    assert_eq!(codes, [None, Some(*b"42P01")]);
}

#[test]
fn a_closed_connection_fails_what_was_waiting() {
    let mut s = session();
    query(&mut s, "SELECT pg_sleep(10)");
    s.close("the connection closed before the query completed");
    let spans = spans(&mut s);
    assert_eq!(spans.len(), 1);
    assert!(spans[0].error.is_some());
}

#[test]
fn a_sqlcommenter_traceparent_is_the_parent() {
    let mut s = session_with("", &Metrics::new());
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    query(&mut s, &format!("SELECT 1 /*traceparent='{tp}'*/"));
    complete(&mut s, "SELECT 1");
    let span = s.take_finished().next().expect("sampled by its parent");
    assert_eq!(span.trace_id.to_hex(), *b"0af7651916cd43dd8448eb211c80319c");
    assert_eq!(span.parent_id, SpanId::new(0xb7ad6b7169203331));
}

#[test]
fn unparented_queries_follow_the_root_sampler_and_are_all_counted() {
    let metrics = Metrics::new();
    let mut s = session_with("sampling: {root: {type: never}}", &metrics);
    for _ in 0..3 {
        query(&mut s, "SELECT 1");
        complete(&mut s, "SELECT 1");
        ready(&mut s);
    }
    assert!(spans(&mut s).is_empty());
    let scrape = String::from_utf8(metrics.render()).unwrap();
    assert!(
        scrape.contains(
            r#"tracehop_db_queries_total{operation="SELECT",outcome="ok",route="users-db"} 3"#
        ),
        "{scrape}"
    );
}

/// Every tag and the name of every span, as the Zipkin encoder writes them.
fn exported(spans: &[Span]) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    encode_spans(spans, &EncodeOptions::default(), &mut out);
    let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    let mut all = Vec::new();
    for span in json.as_array().expect("an array") {
        let mut tags: BTreeMap<String, String> = span["tags"]
            .as_object()
            .expect("tags")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        tags.insert(
            "name".into(),
            span["name"].as_str().unwrap_or_default().into(),
        );
        all.push(tags);
    }
    for span in spans {
        // The OTLP encoder renders the same attributes.
        let otlp = crate::export::encode_otlp_span(span, &mut String::new());
        let mut attributes = BTreeMap::new();
        for kv in &otlp.attributes {
            attributes.insert(kv.key.clone(), format!("{:?}", kv.value));
        }
        attributes.insert("name".into(), otlp.name.clone());
        all.push(attributes);
    }
    all
}

/// Runs `sql` as a simple query, then as a prepared statement whose
/// parameters are `params`, and returns what was exported.
fn run(sql: &str, statement: &str, params: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut s = session();
    query(&mut s, sql);
    complete(&mut s, "SELECT 1");
    ready(&mut s);
    parse(&mut s, "q", statement);
    bind(&mut s, "", "q", params);
    execute(&mut s, "");
    s.frontend(b'S', b"");
    s.backend(b'1', b"");
    complete(&mut s, "INSERT 0 1");
    ready(&mut s);
    let spans = spans(&mut s);
    assert_eq!(spans.len(), 2);
    exported(&spans)
}

/// Query shapes with `{s}` (a string value) and `{n}` (a number) slots.
const SHAPES: [&str; 8] = [
    "SELECT * FROM users WHERE email = '{s}' AND id = {n}",
    "SELECT * FROM users WHERE note = E'{s}' OR score > {n}.5e3",
    "INSERT INTO users (name, age) VALUES ($${s}$$, {n})",
    "UPDATE users SET bio = $body${s}$body$ WHERE id = {n}",
    "SELECT {n}, U&'{s}' -- {s}",
    "SELECT /* {s} */ name FROM users WHERE id IN ({n}, -{n})",
    "DELETE FROM users WHERE token = '{s}'; SELECT {n}",
    "SELECT '{s}", // unterminated: the rest is a constant
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// No literal or parameter value ever appears in an exported tag or
    /// name: what is exported is the same whatever the values are.
    #[test]
    fn no_literal_or_parameter_value_is_ever_exported(
        shape in 0..SHAPES.len(),
        text in "[A-Za-z0-9 _@.%,;:()*'=-]{1,24}",
        number in 0u64..u64::MAX,
        param in "[ -~]{1,40}",
    ) {
        // Inside '…' a quote is written twice; $$…$$ cannot hold `$`.
        let fill = |s: &str, n: &str| SHAPES[shape].replace("{s}", &s.replace('\'', "''")).replace("{n}", n);
        let sql = fill(&text, &number.to_string());
        let statement = "INSERT INTO users (name, token) VALUES ($1, $2)";
        let got = run(&sql, statement, &[&param, &text]);
        let baseline = run(&fill("x", "0"), statement, &["x", "y"]);
        prop_assert_eq!(&got, &baseline, "exported tags depend on the values of {}", sql);
        let all: String = got.iter().flat_map(|t| t.values().cloned()).collect();
        let baseline: String = baseline.iter().flat_map(|t| t.values().cloned()).collect();
        for value in [text.as_str(), &number.to_string(), param.as_str()] {
            if value.len() > 3 && !baseline.contains(value) {
                prop_assert!(!all.contains(value), "{} leaked from {}", value, sql);
            }
        }
    }
}

fn inbound(trace: u128, span: u64) -> SpanContext {
    SpanContext {
        trace_id: crate::span::TraceId::new(trace).unwrap(),
        span_id: crate::span::SpanId::new(span).unwrap(),
        sampling: crate::span::Sampling::Sampled,
        random: false,
    }
}

fn tag<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.tags.iter().find(|t| t.key == key).map(|t| &*t.value)
}

/// The one span of a query answered now.
fn answered(s: &mut Session) -> Span {
    complete(s, "SELECT 1");
    ready(s);
    let [span] = <[Span; 1]>::try_from(spans(s)).expect("one span");
    span
}

#[test]
fn queries_get_the_inferred_parent_and_never_a_guess() {
    let register = Arc::new(Register::new());
    let metrics = Metrics::new();
    let mut s = session_in(
        "sampling: {root: {type: never}}",
        &metrics,
        Some(register.clone()),
    );
    let outcomes = |m: &Metrics| m.outbound.parent_outcome_totals();

    // One inbound request in flight: the query is its child, even though
    // the root sampler would drop an unparented query.
    let a = inbound(1, 10);
    let entry_a = register.enter(a);
    query(&mut s, "SELECT * FROM users");
    let span = answered(&mut s);
    assert_eq!(
        (span.trace_id, span.parent_id),
        (a.trace_id, Some(a.span_id))
    );
    assert_eq!(tag(&span, "tracehop.parent"), Some("inferred"));

    // Two in flight at the start, one gone before the end: containment
    // names the other.
    let b = inbound(2, 20);
    let entry_b = register.enter(b);
    query(&mut s, "SELECT * FROM orders");
    drop(entry_b);
    let span = answered(&mut s);
    assert_eq!(
        (span.trace_id, span.parent_id),
        (a.trace_id, Some(a.span_id))
    );

    // Two in flight for the whole query: ambiguous, no parent; dropped by
    // the root sampler like any root.
    let entry_b = register.enter(b);
    query(&mut s, "SELECT 1");
    complete(&mut s, "SELECT 1");
    ready(&mut s);
    assert!(spans(&mut s).is_empty());

    // The app's own sqlcommenter parent wins and is compared.
    drop(entry_b);
    query(
        &mut s,
        "SELECT 1 /*traceparent='00-00000000000000000000000000000001-000000000000000a-01'*/",
    );
    complete(&mut s, "SELECT 1");
    ready(&mut s);
    assert_eq!(spans(&mut s)[0].parent_id, Some(a.span_id));
    drop(entry_a);

    let count = |label: &str| {
        let i = crate::inference::Outcome::ALL
            .iter()
            .position(|o| o.label() == label)
            .unwrap();
        outcomes(&metrics)[i]
    };
    assert_eq!(
        (
            count("inferred"),
            count("ambiguous"),
            count("confirmed"),
            count("contradicted")
        ),
        (2, 1, 1, 0)
    );
}
