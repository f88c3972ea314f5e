//! The exporter end to end against an in-process fake collector on
//! 127.0.0.1:0. Tests that depend on intervals or backoff run on tokio's
//! paused clock, which jumps ahead whenever every task is waiting.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::*;
use crate::config::{Destination, ExportSettings, RetryConfig, Scheme, UpstreamUrl};
use crate::export::rendezvous;
use crate::export::sample::spans;
use crate::metrics::Metrics;
use crate::server::{self, ServerOptions};

/// Long enough for anything these tests wait for, short enough to fail fast.
const WAIT: Duration = Duration::from_secs(30);

/// What the fake collector answers.
#[derive(Clone, Copy)]
pub(super) enum Reply {
    Status(u16),
    RetryAfter(u16, &'static str),
    /// Wait for [`Fake::release`] and then answer 202.
    Stall,
    /// 200 with an OTLP partial success rejecting this many spans.
    Partial(i64),
}

/// The span ids (hex) of an OTLP request.
fn otlp_ids(body: &[u8]) -> Vec<String> {
    let request: crate::otlp::ExportTraceServiceRequest =
        prost::Message::decode(body).expect("uploads are ExportTraceServiceRequests");
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|span| {
            let id = crate::span::SpanId::from_bytes(&span.span_id).expect("8-byte span id");
            id.to_string()
        })
        .collect()
}

/// Chooses the reply from the upload's index and its span ids.
type Responder = Box<dyn Fn(usize, &[String]) -> Reply + Send + Sync>;

/// One request the fake received.
#[derive(Clone, Debug)]
pub(super) struct Upload {
    at: Instant,
    pub(super) headers: http::HeaderMap,
    /// The body after gzip decoding.
    json: Vec<u8>,
    pub(super) ids: Vec<String>,
}

struct FakeState {
    responder: Responder,
    uploads: Mutex<Vec<Upload>>,
    count: watch::Sender<usize>,
    release: Notify,
}

pub(super) struct Fake {
    pub(super) addr: SocketAddr,
    state: Arc<FakeState>,
}

impl Fake {
    pub(super) async fn start(
        responder: impl Fn(usize, &[String]) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState {
            responder: Box::new(responder),
            uploads: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            release: Notify::new(),
        });
        let handler_state = state.clone();
        let handler = move |request, _| handle(handler_state.clone(), request);
        let options = ServerOptions {
            header_read_timeout: None,
            ..ServerOptions::default()
        };
        tokio::spawn(server::serve(
            listener,
            options,
            handler,
            std::future::pending(),
        ));
        Self { addr, state }
    }

    pub(super) async fn wait_for_uploads(&self, n: usize) -> Vec<Upload> {
        let mut count = self.state.count.subscribe();
        tokio::time::timeout(WAIT, count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("no {n} uploads in time"))
            .unwrap();
        self.uploads()
    }

    pub(super) fn uploads(&self) -> Vec<Upload> {
        self.state.uploads.lock().unwrap().clone()
    }

    fn release(&self) {
        self.state.release.notify_one();
    }
}

async fn handle(
    state: Arc<FakeState>,
    request: http::Request<crate::server::RequestBody>,
) -> http::Response<server::Body> {
    let (parts, body) = request.into_parts();
    let raw = body.collect().await.unwrap().to_bytes();
    let json = if parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip")
    {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw.to_vec()
    };
    let ids = if parts.headers["content-type"] == "application/x-protobuf" {
        otlp_ids(&json)
    } else {
        let list: Vec<Value> = serde_json::from_slice(&json).expect("uploads are JSON lists");
        list.iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let index = {
        let mut uploads = state.uploads.lock().unwrap();
        uploads.push(Upload {
            at: Instant::now(),
            headers: parts.headers,
            json,
            ids: ids.clone(),
        });
        uploads.len() - 1
    };
    let reply = (state.responder)(index, &ids);
    state.count.send_modify(|c| *c += 1);
    let (status, retry_after) = match reply {
        Reply::Status(status) => (status, None),
        Reply::RetryAfter(status, after) => (status, Some(after)),
        Reply::Partial(rejected) => {
            let response = crate::otlp::ExportTraceServiceResponse {
                partial_success: Some(crate::otlp::ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: "span has no name".into(),
                }),
            };
            return http::Response::new(server::full(prost::Message::encode_to_vec(&response)));
        }
        Reply::Stall => {
            state.release.notified().await;
            (202, None)
        }
    };
    let status = http::StatusCode::from_u16(status).unwrap();
    let mut response = server::text_response(status, "bad span: missing traceId");
    if let Some(after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", http::HeaderValue::from_static(after));
    }
    response
}

/// A destination on `addr` at `path`.
fn destination(addr: SocketAddr, path: &str) -> Destination {
    Destination {
        urls: vec![UpstreamUrl {
            scheme: Scheme::Http,
            authority: addr.to_string().parse().unwrap(),
            path: path.into(),
        }],
        gzip: false,
        tls: None,
        headers: Vec::new(),
    }
}

/// Export to a Zipkin collector on `addr`, in batches of 2.
pub(super) fn zipkin(addr: SocketAddr) -> ExportSettings {
    ExportSettings {
        zipkin: Some(destination(addr, "/api/v2/spans")),
        otlp: None,
        queue_capacity: 100,
        batch_size: 2,
        batch_interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(10),
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            max_elapsed: Duration::from_secs(20),
        },
        shutdown_timeout: Duration::from_secs(20),
        resolve: crate::config::Resolve::Static,
    }
}

/// Export to an OTLP endpoint on `addr` alone.
fn otlp(addr: SocketAddr) -> ExportSettings {
    ExportSettings {
        zipkin: None,
        otlp: Some(destination(addr, "/v1/traces")),
        ..zipkin(addr)
    }
}

/// A stop signal for export tasks, fired by sending `true`.
pub(super) fn stop_signal() -> (watch::Sender<bool>, StopSignal) {
    let (stop, stopped) = watch::channel(false);
    let signal: StopSignal = Arc::new(move || {
        let mut stopped = stopped.clone();
        Box::new(Box::pin(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    (stop, signal)
}

/// Running batchers (one per exporter) with their sink and metrics.
struct Exporter {
    sink: SpanSink,
    metrics: Metrics,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Exporter {
    fn start(config: ExportSettings) -> Self {
        let metrics = Metrics::new();
        let options = EncodeOptions::default();
        let (sink, batchers) = channel(&ExportConfig::Enabled(config), &metrics.export, options);
        assert!(!batchers.is_empty(), "export is enabled");
        let (stop, stopped) = stop_signal();
        let tasks = batchers
            .into_iter()
            .map(|task| tokio::spawn(task.run(stopped.clone())))
            .collect();
        Self {
            sink,
            metrics,
            stop,
            tasks,
        }
    }

    fn send(&self, spans: Vec<crate::span::Span>) {
        spans.into_iter().for_each(|span| self.sink.send(span));
    }

    /// Triggers shutdown and waits for the final flushes to end.
    async fn shut_down(self) -> (SpanSink, Metrics) {
        self.stop.send_replace(true);
        for task in self.tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("batcher stops")
                .unwrap();
        }
        (self.sink, self.metrics)
    }
}

/// The value of one sample line of the rendered metrics, 0 when absent.
pub(super) fn metric(metrics: &Metrics, series: &str) -> f64 {
    let text = String::from_utf8(metrics.render()).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

/// A series of the Zipkin exporter: `name{exporter="zipkin"}`.
fn zipkin_metric(metrics: &Metrics, name: &str) -> f64 {
    metric(metrics, &format!("{name}{{exporter=\"zipkin\"}}"))
}

fn dropped(metrics: &Metrics, reason: &str) -> f64 {
    dropped_by(metrics, "zipkin", reason)
}

fn dropped_by(metrics: &Metrics, exporter: &str, reason: &str) -> f64 {
    metric(
        metrics,
        &format!("tracehop_spans_dropped_total{{exporter=\"{exporter}\",reason=\"{reason}\"}}"),
    )
}

fn requests(metrics: &Metrics, result: &str) -> f64 {
    requests_by(metrics, "zipkin", result)
}

fn requests_by(metrics: &Metrics, exporter: &str, result: &str) -> f64 {
    metric(
        metrics,
        &format!("tracehop_export_requests_total{{exporter=\"{exporter}\",result=\"{result}\"}}"),
    )
}

/// An exporter whose batches (100 spans) fill only by the `interval`.
fn large_batches(fake: &Fake, interval: Duration) -> Exporter {
    Exporter::start(ExportSettings {
        batch_size: 100,
        batch_interval: interval,
        ..zipkin(fake.addr)
    })
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|i| format!("{i:016x}")).collect()
}

#[tokio::test]
async fn flushes_full_batches_with_json_and_b3_0() {
    let fake = Fake::start(|_, _| Reply::Status(202)).await;
    let exporter = Exporter::start(ExportSettings {
        batch_size: 3,
        ..zipkin(fake.addr)
    });
    exporter.send(spans(7));
    let uploads = fake.wait_for_uploads(2).await;
    assert_eq!(uploads[0].ids, ids(1..=3));
    assert_eq!(uploads[1].ids, ids(4..=6));
    for upload in &uploads {
        assert_eq!(upload.headers["b3"], "0", "never trace our own uploads");
        assert_eq!(upload.headers["content-type"], "application/json");
        assert!(upload.headers.get("content-encoding").is_none());
    }
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(
        fake.uploads()[2].ids,
        ids(7..=7),
        "the final flush sends the rest"
    );
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        7.0
    );
    assert_eq!(requests(&metrics, "success"), 3.0);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_export_batch_spans_count"),
        3.0
    );
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_export_batch_spans_sum"),
        7.0
    );
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_export_request_duration_seconds_count"),
        3.0
    );
    assert_eq!(zipkin_metric(&metrics, "tracehop_export_queue_spans"), 0.0);
}

#[tokio::test(start_paused = true)]
async fn flushes_partial_batches_after_the_interval() {
    let fake = Fake::start(|_, _| Reply::Status(202)).await;
    let interval = Duration::from_secs(5);
    let exporter = large_batches(&fake, interval);
    let started = Instant::now();
    exporter.send(spans(2));
    let uploads = fake.wait_for_uploads(1).await;
    assert_eq!(uploads[0].ids, ids(1..=2));
    let waited = uploads[0].at - started;
    assert!(waited >= interval && waited < interval * 2, "{waited:?}");
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(fake.uploads().len(), 1);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        2.0
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_batch_takes_spans_when_the_doorbell_rings_or_at_the_deadline() {
    let fake = Fake::start(|_, _| Reply::Status(202)).await;
    // A queue of 100 rings the doorbell every 25 spans.
    let exporter = large_batches(&fake, Duration::from_secs(5));
    let queued =
        |exporter: &Exporter| zipkin_metric(&exporter.metrics, "tracehop_export_queue_spans");
    exporter.send(spans(1));
    tokio::task::yield_now().await;
    assert_eq!(
        queued(&exporter),
        0.0,
        "an idle batcher takes a span at once"
    );
    exporter.send(spans(23));
    tokio::task::yield_now().await;
    assert_eq!(queued(&exporter), 23.0, "then lets the next ones gather");
    exporter.send(spans(1));
    tokio::task::yield_now().await;
    assert_eq!(queued(&exporter), 0.0, "the 25th span rings");
    exporter.send(spans(3));
    let uploads = fake.wait_for_uploads(1).await;
    assert_eq!(uploads[0].ids.len(), 28, "the deadline takes the rest");
    assert_eq!(queued(&exporter), 0.0);
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(fake.uploads().len(), 1);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        28.0
    );
}

#[tokio::test]
async fn spans_queued_at_shutdown_while_a_batch_is_open_are_sent() {
    let fake = Fake::start(|_, _| Reply::Status(202)).await;
    let exporter = large_batches(&fake, Duration::from_secs(3600));
    exporter.send(spans(1));
    tokio::task::yield_now().await;
    exporter.send(spans(5));
    let (_, metrics) = exporter.shut_down().await;
    let uploads = fake.uploads();
    assert_eq!(uploads.iter().map(|u| u.ids.len()).sum::<usize>(), 6);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        6.0
    );
}

#[tokio::test]
async fn rejected_batches_are_dropped_and_not_retried() {
    let fake = Fake::start(|index, _| Reply::Status(if index == 0 { 400 } else { 202 })).await;
    let exporter = Exporter::start(zipkin(fake.addr));
    exporter.send(spans(2));
    fake.wait_for_uploads(1).await;
    exporter.send(spans(4).split_off(2));
    let uploads = fake.wait_for_uploads(2).await;
    assert_eq!(uploads[0].ids, ids(1..=2));
    assert_eq!(
        uploads[1].ids,
        ids(3..=4),
        "the rejected batch was not sent again"
    );
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(fake.uploads().len(), 2);
    assert_eq!(dropped(&metrics, "rejected"), 2.0);
    assert_eq!(requests(&metrics, "rejected"), 1.0);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        2.0
    );
}

#[tokio::test]
async fn unavailable_collector_is_retried_until_it_accepts() {
    let fake = Fake::start(|index, _| Reply::Status(if index == 0 { 503 } else { 202 })).await;
    let exporter = Exporter::start(zipkin(fake.addr));
    exporter.send(spans(2));
    let uploads = fake.wait_for_uploads(2).await;
    assert_eq!(uploads[0].ids, uploads[1].ids);
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(fake.uploads().len(), 2);
    assert_eq!(requests(&metrics, "server_error"), 1.0);
    assert_eq!(requests(&metrics, "success"), 1.0);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        2.0
    );
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_export_batch_spans_count"),
        1.0
    );
    assert_eq!(dropped(&metrics, "retries_exhausted"), 0.0);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let fake = Fake::start(|index, _| match index {
        0 => Reply::RetryAfter(429, "3"),
        _ => Reply::Status(202),
    })
    .await;
    let exporter = Exporter::start(zipkin(fake.addr));
    exporter.send(spans(2));
    let uploads = fake.wait_for_uploads(2).await;
    let waited = uploads[1].at - uploads[0].at;
    assert!(waited >= Duration::from_secs(3), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(4), "retried after {waited:?}");
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(requests(&metrics, "throttled"), 1.0);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        2.0
    );
}

#[tokio::test(start_paused = true)]
async fn retries_end_at_max_elapsed() {
    let doomed = ids(1..=2);
    let fake =
        Fake::start(move |_, ids| Reply::Status(if ids == doomed { 503 } else { 202 })).await;
    let max_elapsed = Duration::from_secs(2);
    let mut config = zipkin(fake.addr);
    config.retry = RetryConfig {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        max_elapsed,
    };
    let exporter = Exporter::start(config);
    exporter.send(spans(4));
    // The second batch waits in the queue until the first is given up.
    let delivered = ids(3..=4);
    let mut count = fake.state.count.subscribe();
    let done = count.wait_for(|_| fake.uploads().iter().any(|u| u.ids == delivered));
    tokio::time::timeout(WAIT, done)
        .await
        .expect("second batch delivered")
        .unwrap();
    let uploads = fake.uploads();
    let attempts: Vec<Instant> = uploads
        .iter()
        .filter(|u| u.ids == ids(1..=2))
        .map(|u| u.at)
        .collect();
    assert!(attempts.len() >= 3, "{} attempts", attempts.len());
    assert!(attempts[attempts.len() - 1] - attempts[0] < max_elapsed);
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(dropped(&metrics, "retries_exhausted"), 2.0);
    assert_eq!(requests(&metrics, "server_error"), attempts.len() as f64);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        2.0
    );
}

#[tokio::test(start_paused = true)]
async fn timed_out_requests_are_retried() {
    let fake = Fake::start(|index, _| {
        if index == 0 {
            Reply::Stall
        } else {
            Reply::Status(202)
        }
    })
    .await;
    let timeout = Duration::from_secs(2);
    let exporter = Exporter::start(ExportSettings {
        timeout,
        ..zipkin(fake.addr)
    });
    exporter.send(spans(2));
    let uploads = fake.wait_for_uploads(2).await;
    assert_eq!(uploads[0].ids, uploads[1].ids);
    assert!(uploads[1].at - uploads[0].at >= timeout);
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(requests(&metrics, "timeout"), 1.0);
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        2.0
    );
}

#[tokio::test(start_paused = true)]
async fn connect_errors_are_retried_then_dropped() {
    let (_closed_socket, closed) = crate::testing::closed_port();
    let mut config = zipkin(closed);
    config.retry.max_elapsed = Duration::from_secs(1);
    let exporter = Exporter::start(config);
    exporter.send(spans(2));
    let Exporter {
        sink,
        metrics,
        stop,
        tasks,
    } = exporter;
    drop(sink); // Every sink gone: the batcher flushes and returns.
    for task in tasks {
        tokio::time::timeout(WAIT, task)
            .await
            .expect("batcher stops")
            .unwrap();
    }
    drop(stop);
    assert_eq!(dropped(&metrics, "retries_exhausted"), 2.0);
    assert!(requests(&metrics, "connect_error") >= 2.0);
}

#[tokio::test]
async fn a_stalled_collector_fills_the_queue_and_never_blocks_send() {
    let fake = Fake::start(|index, _| {
        if index == 0 {
            Reply::Stall
        } else {
            Reply::Status(202)
        }
    })
    .await;
    let exporter = Exporter::start(ExportSettings {
        queue_capacity: 4,
        ..zipkin(fake.addr)
    });
    exporter.send(spans(2));
    fake.wait_for_uploads(1).await;
    // The batcher is stuck in delivery: 4 spans fit, the other 6 are dropped.
    exporter.send(spans(12).split_off(2));
    assert_eq!(
        zipkin_metric(&exporter.metrics, "tracehop_export_queue_spans") as i64,
        4
    );
    assert_eq!(dropped(&exporter.metrics, "queue_full"), 6.0);
    fake.release();
    let (_, metrics) = exporter.shut_down().await;
    let delivered: Vec<String> = fake.uploads().into_iter().flat_map(|u| u.ids).collect();
    assert_eq!(delivered, ids(1..=6));
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        6.0
    );
    assert_eq!(zipkin_metric(&metrics, "tracehop_export_queue_spans"), 0.0);
}

#[tokio::test]
async fn gzip_bodies_decode_to_the_encoded_json() {
    let fake = Fake::start(|_, _| Reply::Status(202)).await;
    let mut config = zipkin(fake.addr);
    config.zipkin.as_mut().unwrap().gzip = true;
    let exporter = Exporter::start(config);
    exporter.send(spans(2));
    let uploads = fake.wait_for_uploads(1).await;
    assert_eq!(uploads[0].headers["content-encoding"], "gzip");
    assert_eq!(uploads[0].headers["b3"], "0");
    let mut expected = Vec::new();
    encode_spans(&spans(2), &EncodeOptions::default(), &mut expected);
    assert_eq!(uploads[0].json, expected);
    exporter.shut_down().await;
}

#[tokio::test]
async fn shutdown_flushes_queued_spans_then_counts_late_ones() {
    let fake = Fake::start(|_, _| Reply::Status(202)).await;
    let exporter = Exporter::start(ExportSettings {
        batch_size: 100,
        ..zipkin(fake.addr)
    });
    exporter.send(spans(5));
    let (sink, metrics) = exporter.shut_down().await;
    assert_eq!(fake.uploads().len(), 1);
    assert_eq!(fake.uploads()[0].ids, ids(1..=5));
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        5.0
    );
    sink.send(spans(1).remove(0));
    assert_eq!(dropped(&metrics, "shutdown"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_bounds_the_final_flush() {
    let fake = Fake::start(|_, _| Reply::Status(503)).await;
    let shutdown_timeout = Duration::from_secs(1);
    let exporter = Exporter::start(ExportSettings {
        shutdown_timeout,
        ..zipkin(fake.addr)
    });
    exporter.send(spans(6));
    let started = Instant::now();
    let (_, metrics) = exporter.shut_down().await;
    assert!(
        started.elapsed() < shutdown_timeout * 2,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(dropped(&metrics, "shutdown"), 6.0);
    assert_eq!(dropped(&metrics, "retries_exhausted"), 0.0);
    assert!(!fake.uploads().is_empty());
    assert_eq!(zipkin_metric(&metrics, "tracehop_export_queue_spans"), 0.0);
}

#[tokio::test]
async fn disabled_or_unusable_export_discards_spans() {
    let metrics = Metrics::new();
    let (sink, batchers) = channel(
        &ExportConfig::Disabled,
        &metrics.export,
        EncodeOptions::default(),
    );
    assert!(batchers.is_empty());
    sink.send(spans(1).remove(0));
    assert_eq!(dropped_by(&metrics, "none", "disabled"), 1.0);

    let mut unusable = zipkin("127.0.0.1:9411".parse().unwrap());
    unusable.zipkin.as_mut().unwrap().urls[0].path = "/api/v2/spans with spaces".into();
    let (sink, batchers) = channel(
        &ExportConfig::Enabled(unusable.clone()),
        &metrics.export,
        EncodeOptions::default(),
    );
    assert!(
        batchers.is_empty(),
        "an invalid collector URI disables export"
    );
    sink.send(spans(1).remove(0));
    assert_eq!(dropped_by(&metrics, "none", "disabled"), 2.0);

    // An unusable Zipkin leaves OTLP alone.
    unusable.otlp = Some(destination("127.0.0.1:4318".parse().unwrap(), "/v1/traces"));
    let (_, batchers) = channel(
        &ExportConfig::Enabled(unusable),
        &metrics.export,
        EncodeOptions::default(),
    );
    assert_eq!(batchers.len(), 1);

    let mut https = zipkin("127.0.0.1:9411".parse().unwrap());
    https.zipkin.as_mut().unwrap().urls[0].scheme = Scheme::Https;
    let (_, batchers) = channel(
        &ExportConfig::Enabled(https),
        &metrics.export,
        EncodeOptions::default(),
    );
    assert_eq!(batchers.len(), 1, "HTTPS collectors are supported");
}

#[tokio::test]
async fn otlp_uploads_are_protobuf_and_count_a_partial_success() {
    let fake = Fake::start(|index, _| match index {
        0 => Reply::Partial(1),
        _ => Reply::Status(200),
    })
    .await;
    let mut config = otlp(fake.addr);
    config.otlp.as_mut().unwrap().gzip = true;
    let exporter = Exporter::start(config);
    exporter.send(spans(4));
    let uploads = fake.wait_for_uploads(2).await;
    assert_eq!(uploads[0].headers["content-type"], "application/x-protobuf");
    assert_eq!(uploads[0].headers["content-encoding"], "gzip");
    assert_eq!(uploads[0].headers["b3"], "0");
    assert_eq!(
        (uploads[0].ids.clone(), uploads[1].ids.clone()),
        (ids(1..=2), ids(3..=4))
    );
    let (_, metrics) = exporter.shut_down().await;
    let otlp_metric = |name: &str| metric(&metrics, &format!("{name}{{exporter=\"otlp\"}}"));
    assert_eq!(otlp_metric("tracehop_spans_exported_total"), 3.0);
    assert_eq!(dropped_by(&metrics, "otlp", "rejected"), 1.0);
    assert_eq!(requests_by(&metrics, "otlp", "success"), 2.0);
    assert_eq!(fake.uploads().len(), 2, "a partial success is never resent");
}

#[tokio::test(start_paused = true)]
async fn otlp_retries_only_what_its_specification_lists() {
    // 500 is final for OTLP; 503 (with Retry-After) is worth another try.
    let fake = Fake::start(|index, _| match index {
        0 => Reply::Status(500),
        1 => Reply::RetryAfter(503, "1"),
        _ => Reply::Status(200),
    })
    .await;
    let exporter = Exporter::start(otlp(fake.addr));
    exporter.send(spans(4));
    let uploads = fake.wait_for_uploads(3).await;
    assert_eq!(uploads[0].ids, ids(1..=2));
    assert_eq!(uploads[1].ids, ids(3..=4));
    assert_eq!(uploads[2].ids, ids(3..=4));
    assert!(uploads[2].at - uploads[1].at >= Duration::from_secs(1));
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(dropped_by(&metrics, "otlp", "rejected"), 2.0);
    assert_eq!(requests_by(&metrics, "otlp", "rejected"), 1.0);
    assert_eq!(requests_by(&metrics, "otlp", "server_error"), 1.0);
    assert_eq!(
        metric(&metrics, "tracehop_spans_exported_total{exporter=\"otlp\"}"),
        2.0
    );
}

#[tokio::test]
async fn a_stalled_exporter_never_holds_up_the_other() {
    let stalled = Fake::start(|index, _| {
        if index == 0 {
            Reply::Stall
        } else {
            Reply::Status(202)
        }
    })
    .await;
    let healthy = Fake::start(|_, _| Reply::Status(200)).await;
    let config = ExportSettings {
        queue_capacity: 4,
        otlp: Some(destination(healthy.addr, "/v1/traces")),
        ..zipkin(stalled.addr)
    };
    let exporter = Exporter::start(config);
    exporter.send(spans(2));
    stalled.wait_for_uploads(1).await;
    healthy.wait_for_uploads(1).await;
    // Zipkin's batcher is stuck in its first delivery; OTLP takes every span.
    for chunk in 1..=5u64 {
        let spans: Vec<_> = spans(chunk * 2 + 2).split_off(usize::try_from(chunk * 2).unwrap());
        exporter.send(spans);
        healthy
            .wait_for_uploads(usize::try_from(chunk).unwrap() + 1)
            .await;
    }
    let uploads = healthy.uploads();
    let delivered: Vec<String> = uploads.into_iter().flat_map(|u| u.ids).collect();
    assert_eq!(delivered, ids(1..=12));
    assert_eq!(dropped_by(&exporter.metrics, "zipkin", "queue_full"), 6.0);
    assert_eq!(dropped_by(&exporter.metrics, "otlp", "queue_full"), 0.0);
    stalled.release();
    let (_, metrics) = exporter.shut_down().await;
    assert_eq!(
        zipkin_metric(&metrics, "tracehop_spans_exported_total"),
        6.0
    );
    assert_eq!(
        metric(&metrics, "tracehop_spans_exported_total{exporter=\"otlp\"}"),
        12.0
    );
}

#[tokio::test(start_paused = true)]
async fn otlp_spreads_traces_over_its_endpoints_and_never_reroutes_a_failing_one() {
    let up = Fake::start(|_, _| Reply::Status(200)).await;
    let down = Fake::start(|_, _| Reply::Status(503)).await;
    let mut config = otlp(up.addr);
    let otlp = config.otlp.as_mut().unwrap();
    otlp.urls
        .push(destination(down.addr, "/v1/traces").urls.remove(0));
    let names: Vec<String> = otlp.urls.iter().map(ToString::to_string).collect();
    config.batch_size = 1;
    let exporter = Exporter::start(config);
    let seeds: Vec<u64> = names.iter().map(|n| rendezvous::seed(n)).collect();
    let (mut to_up, mut to_down) = (Vec::new(), Vec::new());
    for (i, mut span) in spans(40).into_iter().enumerate() {
        let trace = crate::span::TraceId::new(0x51_u128 << 100 | (i as u128 + 1) << 40).unwrap();
        span.trace_id = trace;
        match rendezvous::pick(trace, seeds.iter().copied()) {
            Some(0) => to_up.push(span.id.to_string()),
            _ => to_down.push(span.id.to_string()),
        }
        exporter.send(vec![span]);
    }
    assert!(
        !to_up.is_empty() && !to_down.is_empty(),
        "both endpoints own traces"
    );
    let got: Vec<String> = up
        .wait_for_uploads(to_up.len())
        .await
        .iter()
        .flat_map(|u| u.ids.clone())
        .collect();
    assert_eq!(
        got, to_up,
        "the endpoint that is up gets its own traces only"
    );
    // One batch at a time is in flight, retried: the rest of the failing
    // endpoint's share waits in its queue behind it.
    let tried = down.wait_for_uploads(3).await;
    assert!(
        tried
            .iter()
            .flat_map(|u| &u.ids)
            .all(|id| to_down.contains(id)),
        "the failing endpoint is sent its own share only"
    );
    let (_, metrics) = exporter.shut_down().await;
    let series = |endpoint: &str, result: &str| {
        metric(
            &metrics,
            &format!(
                "tracehop_export_endpoint_requests_total{{endpoint=\"{endpoint}\",exporter=\"otlp\",result=\"{result}\"}}"
            ),
        )
    };
    assert_eq!(series(&names[0], "success"), to_up.len() as f64);
    assert_eq!(series(&names[0], "server_error"), 0.0);
    assert!(series(&names[1], "server_error") >= 3.0);
    assert_eq!(series(&names[1], "success"), 0.0);
    assert_eq!(
        up.uploads().len(),
        to_up.len(),
        "nothing re-routed to it later"
    );
}
