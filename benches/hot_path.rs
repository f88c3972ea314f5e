//! Micro-benchmarks of the per-request work tracehop adds and of the
//! exporter's per-span work, through the public API.
//!
//! - request path: `traceparent` parse (with and without `tracestate`) and
//!   format, B3 single and multi parse, a request with no context, the
//!   sampling decision;
//! - parent inference: an inbound request entering and leaving the
//!   in-flight register, and an outbound call's start and verdict with 0,
//!   1 and 16 inbound requests in flight;
//! - export path (off the request path, in the batcher): one span to Zipkin
//!   v2 JSON through a long-lived encoder (as the batcher encodes), a
//!   512-span batch, and gzip of that batch at level 1 (what the batcher
//!   uses) and at the default level for comparison; and the choice of a
//!   span's collector among 3 and 8 (rendezvous hashing, on the request
//!   path when several collectors are listed), to compare with encoding.
//!
//! Runs are kept short (1 s warm-up, 2 s measurement per benchmark), which
//! is plenty for functions this small; command-line flags such as
//! `--warm-up-time` and `--measurement-time` still override:
//! `cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{HeaderMap, HeaderName, HeaderValue};
use tracehop::config::{Format, Overrides, PropagationConfig};
use tracehop::export::{EncodeOptions, SpanEncoder, encode_spans, rendezvous};
use tracehop::inference::Register;
use tracehop::metrics::Metrics;
use tracehop::propagation::{Extracted, Seen, extract, inject};
use tracehop::sampling::{RequestFacts, Sampler};
use tracehop::span::{Endpoint, HttpFacts, Kind, Sampling, Span, SpanContext, SpanId, TraceId};

/// The W3C Trace Context specification's example values (§3.2.2, §3.3.1).
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
/// The B3 README's example ids.
const B3_SINGLE: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";

/// Headers a typical client sends, plus `extra` (the trace context).
fn request_headers(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("users.local:8080"));
    headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    for (name, value) in extra {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers
}

fn propagation(extract_formats: Vec<Format>) -> PropagationConfig {
    PropagationConfig {
        extract: extract_formats,
        inject: Vec::new(),
    }
}

fn bench_propagation(c: &mut Criterion) {
    let mut group = c.benchmark_group("propagation");
    let both = propagation(vec![Format::W3c, Format::B3]);
    let cases: [(&str, HeaderMap); 5] = [
        (
            "traceparent_parse",
            request_headers(&[("traceparent", TRACEPARENT)]),
        ),
        (
            "traceparent_tracestate_parse",
            request_headers(&[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]),
        ),
        ("b3_single_parse", request_headers(&[("b3", B3_SINGLE)])),
        (
            "b3_multi_parse",
            request_headers(&[
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
                ("x-b3-sampled", "1"),
            ]),
        ),
        ("no_context_parse", request_headers(&[])),
    ];
    for (name, headers) in &cases {
        group.bench_function(*name, |b| b.iter(|| extract(black_box(headers), &both)));
    }

    let context = SpanContext {
        trace_id: TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).expect("non-zero"),
        span_id: SpanId::new(0x00f0_67aa_0ba9_02b7).expect("non-zero"),
        sampling: Sampling::Sampled,
        random: true,
    };
    // `inject` first removes every context header, so writing into the same
    // map again measures exactly one removal pass plus one insertion.
    let mut headers = request_headers(&[("traceparent", TRACEPARENT)]);
    let came_in = |seen| Extracted {
        parent: None,
        sampling_only: Sampling::Deferred,
        trace_state: None,
        seen,
    };
    let w3c_in = came_in(Seen::W3c);
    group.bench_function("traceparent_format", |b| {
        b.iter(|| inject(&mut headers, black_box(&context), &w3c_in, &both));
    });
    let b3_out = PropagationConfig {
        extract: vec![Format::B3],
        inject: vec![Format::B3],
    };
    let b3_in = came_in(Seen::B3Multi);
    group.bench_function("b3_multi_format", |b| {
        b.iter(|| inject(&mut headers, black_box(&context), &b3_in, &b3_out));
    });
    group.finish();
}

fn bench_sampling(c: &mut Criterion) {
    let metrics = Metrics::new();
    // The default rules (probe paths) are on, as in production.
    let config = tracehop::config::load(
        "inbound: {upstream: \"http://127.0.0.1:8080\"}\nsampling: {root: {type: ratio, ratio: 0.1}}\n",
        Overrides::default(),
    )
    .expect("valid sampling config");
    let sampler = Sampler::new(&config.sampling, &metrics.sampling);
    let trace_id = TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736).expect("non-zero");
    let headers = http::HeaderMap::new();
    let facts = RequestFacts {
        method: &http::Method::GET,
        path: "/users/42",
        headers: &headers,
    };
    let now = std::time::Instant::now();
    let mut group = c.benchmark_group("sampling");
    group.bench_function("decide_root_ratio", |b| {
        b.iter(|| {
            sampler.decide(
                black_box(Sampling::Deferred),
                black_box(trace_id),
                &facts,
                now,
            )
        });
    });
    group.bench_function("decide_parent_sampled", |b| {
        b.iter(|| {
            sampler.decide(
                black_box(Sampling::Sampled),
                black_box(trace_id),
                &facts,
                now,
            )
        });
    });
    group.bench_function("new_trace_id", |b| b.iter(TraceId::random));
    group.finish();
}

/// A SERVER span as the inbound proxy records it: `GET /users/{n}` with a
/// query, remote address, host and user agent, answered 200.
fn server_span(n: u64) -> Span {
    let target = format!("/users/{n}?fields=name,email");
    Span {
        trace_id: TraceId::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0000_0000 | u128::from(n) << 8 | 1)
            .expect("non-zero"),
        id: SpanId::new(0x00f0_67aa_0000_0000 | n).expect("non-zero"),
        parent_id: SpanId::new(0x0102_0304_0506_0708),
        kind: Kind::Server,
        debug: false,
        timestamp_us: 1_700_000_000_123_456 + n * 137,
        duration_us: 1_500 + n % 700,
        local_service: Arc::from("user-service"),
        remote: Endpoint {
            service_name: None,
            addr: Some("10.1.2.3:54321".parse().expect("valid address")),
        },
        http: HttpFacts {
            method: http::Method::GET,
            target: Some(target.parse().expect("valid path and query")),
            route: None,
            scheme: "http",
            host: Some(HeaderValue::from_static("users.local:8080")),
            version: http::Version::HTTP_11,
            user_agent: Some(HeaderValue::from_static("curl/8.5.0")),
            status: Some(if n.is_multiple_of(50) { 503 } else { 200 }),
            request_body_bytes: 0,
            response_body_bytes: 512,
            grpc: None,
        },
        error: None,
        tags: Vec::new(),
        links: Vec::new(),
    }
}

fn bench_export(c: &mut Criterion) {
    let options = EncodeOptions::default();
    let one = [server_span(42)];
    let batch: Vec<Span> = (1..=512).map(server_span).collect();
    let mut out = Vec::with_capacity(512 * 1024);
    let mut group = c.benchmark_group("export");

    // One span at a time through a long-lived encoder, as the batcher does.
    let mut encoder = SpanEncoder::new(&options);
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_span", |b| {
        b.iter(|| {
            out.clear();
            encoder.encode(black_box(&one[0]), &mut out);
        });
    });

    group.throughput(Throughput::Elements(512));
    group.bench_function("encode_batch_512", |b| {
        b.iter(|| {
            out.clear();
            encode_spans(black_box(&batch), &options, &mut out);
        });
    });

    // Which collector a span's trace goes to, with 3 and 8 listed.
    for n in [3, 8] {
        let seeds: Vec<u64> = (0..n)
            .map(|i| rendezvous::seed(&format!("http://collector-{i}:9411/api/v2/spans")))
            .collect();
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("pick_collector_of_{n}"), |b| {
            b.iter(|| rendezvous::pick(black_box(one[0].trace_id), seeds.iter().copied()));
        });
    }

    let mut json = Vec::new();
    encode_spans(&batch, &options, &mut json);
    // The default level (6), and the fastest one, which the batcher uses.
    for (name, level) in [
        ("gzip_batch_512", Compression::default()),
        ("gzip_batch_512_level1", Compression::fast()),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || GzEncoder::new(Vec::with_capacity(json.len() / 4), level),
                |encoder| {
                    encoder
                        .write_all(black_box(&json))
                        .expect("writing to memory");
                    encoder.try_finish().expect("writing to memory");
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn bench_inference(c: &mut Criterion) {
    let register = Arc::new(Register::new());
    let context = |n: u64| SpanContext {
        trace_id: TraceId::new(u128::from(n)).expect("non-zero"),
        span_id: SpanId::new(n).expect("non-zero"),
        sampling: Sampling::Sampled,
        random: true,
    };
    let mut group = c.benchmark_group("inference");
    group.bench_function("enter_and_leave", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            drop(black_box(register.enter(context(n))));
        })
    });
    for in_flight in [0u64, 1, 16] {
        let held: Vec<_> = (1..=in_flight)
            .map(|n| register.enter(context(n)))
            .collect();
        group.bench_function(format!("call_with_{in_flight}_in_flight"), |b| {
            b.iter(|| black_box(register.begin_call()).finish())
        });
        drop(held);
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

criterion_group! {
    name = hot_path;
    config = config();
    targets = bench_propagation, bench_sampling, bench_inference, bench_export
}
criterion_main!(hot_path);
