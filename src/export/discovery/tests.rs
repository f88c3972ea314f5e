//! `export.resolve: dns` against a lookup table the tests change: the
//! endpoint set follows it on the interval, keeps its last answer when a
//! lookup fails, and spans reach the address their trace hashes to, still
//! naming the host. No real DNS: the lookup is the seam.

use std::sync::Mutex;

use tokio::task::JoinHandle;

use super::*;
use crate::config::{ExportConfig, Resolve};
use crate::export::sample::server_span;
use crate::export::tests::{Fake, Reply, metric, stop_signal, zipkin};
use crate::export::{EncodeOptions, ExportAccess, SpanSink, channel_resolving, rendezvous};
use crate::metrics::Metrics;
use crate::span::{SpanId, TraceId};

/// What the fake DNS answers, and how often it was asked.
struct Table {
    answer: Mutex<io::Result<Vec<SocketAddr>>>,
    asked: Mutex<Vec<String>>,
}

impl Table {
    fn new(addrs: &[SocketAddr]) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(Ok(addrs.to_vec())),
            asked: Mutex::new(Vec::new()),
        })
    }

    fn answer(&self, answer: io::Result<Vec<SocketAddr>>) {
        *self.answer.lock().unwrap() = answer;
    }

    fn asked(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    fn lookup(self: &Arc<Self>) -> Lookup {
        let table = self.clone();
        Arc::new(move |authority| {
            table.asked.lock().unwrap().push(authority);
            let answer = match &*table.answer.lock().unwrap() {
                Ok(addrs) => Ok(addrs.clone()),
                Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
            };
            Box::pin(async move { answer })
        })
    }
}

/// The sidecar's export with `resolve: dns` on `url_host`, resolved by `table`.
struct Running {
    sink: SpanSink,
    metrics: Metrics,
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn start(table: &Arc<Table>, interval: Duration) -> Running {
    let mut settings = zipkin("127.0.0.1:9".parse().unwrap());
    settings.resolve = Resolve::Dns { interval };
    settings.batch_size = 1;
    let url = &mut settings.zipkin.as_mut().unwrap().urls[0];
    url.authority = "collector.tracing.svc:9411".parse().unwrap();
    let metrics = Metrics::new();
    let (sink, mut tasks) = channel_resolving(
        &ExportConfig::Enabled(settings),
        &metrics.export,
        EncodeOptions::default(),
        &ExportAccess::default(),
        table.lookup(),
    );
    assert_eq!(tasks.len(), 1, "one discovery task, no batcher yet");
    let (stop, stopped) = stop_signal();
    let task = tokio::spawn(tasks.remove(0).run(stopped));
    Running {
        sink,
        metrics,
        stop,
        task,
    }
}

/// Waits (10 ms at a time, at most 100 s of the test's clock) until `done`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn endpoints(metrics: &Metrics) -> f64 {
    metric(metrics, r#"tracehop_export_endpoints{exporter="zipkin"}"#)
}

fn changes(metrics: &Metrics, change: &str) -> f64 {
    metric(
        metrics,
        &format!(
            r#"tracehop_export_endpoint_changes_total{{change="{change}",exporter="zipkin"}}"#
        ),
    )
}

fn has_series(metrics: &Metrics, endpoint: &str) -> bool {
    let text = String::from_utf8(metrics.render()).unwrap();
    text.contains(&format!(r#"endpoint="{endpoint}""#))
}

#[tokio::test(start_paused = true)]
async fn the_set_follows_dns_every_interval_and_keeps_its_last_answer_on_failure() {
    let table = Table::new(&[addr(1), addr(2)]);
    let running = start(&table, Duration::from_secs(30));
    let m = &running.metrics;
    until("the first lookup", || endpoints(m) == 2.0).await;
    assert_eq!(table.asked.lock().unwrap()[0], "collector.tracing.svc:9411");
    assert!(has_series(m, "127.0.0.1:1") && has_series(m, "127.0.0.1:2"));

    // Nothing is looked up again before the interval.
    table.answer(Ok(vec![addr(2), addr(3), addr(2)]));
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!((table.asked(), endpoints(m)), (1, 2.0));
    until("the second lookup", || changes(m, "added") == 3.0).await;
    assert_eq!(table.asked(), 2);
    assert_eq!((endpoints(m), changes(m, "removed")), (2.0, 1.0));
    until("the left endpoint's series to go", || {
        !has_series(m, "127.0.0.1:1")
    })
    .await;
    assert!(has_series(m, "127.0.0.1:3"));

    // A failed or empty lookup keeps the set.
    table.answer(Err(io::Error::other("SERVFAIL")));
    until("the third lookup", || table.asked() == 3).await;
    table.answer(Ok(Vec::new()));
    until("the fourth lookup", || table.asked() == 4).await;
    assert_eq!(endpoints(m), 2.0);
    assert_eq!(changes(m, "removed"), 1.0);

    running.stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(60), running.task)
        .await
        .expect("discovery stops with its batchers")
        .unwrap();
    drop(running.sink);
}

#[tokio::test(start_paused = true)]
async fn spans_wait_for_the_first_answer_as_no_endpoint_drops() {
    let table = Table::new(&[]);
    table.answer(Err(io::Error::other("NXDOMAIN")));
    let running = start(&table, Duration::from_secs(30));
    until("the first lookup", || table.asked() == 1).await;
    running.sink.send(server_span());
    let dropped = metric(
        &running.metrics,
        r#"tracehop_spans_dropped_total{exporter="zipkin",reason="no_endpoint"}"#,
    );
    assert_eq!(dropped, 1.0);
    running.stop.send_replace(true);
    running.task.await.unwrap();
}

#[tokio::test]
async fn each_trace_reaches_the_one_address_it_hashes_to_naming_the_host() {
    let fakes = [
        Fake::start(|_, _| Reply::Status(202)).await,
        Fake::start(|_, _| Reply::Status(202)).await,
        Fake::start(|_, _| Reply::Status(202)).await,
    ];
    let addrs: Vec<SocketAddr> = fakes.iter().map(|f| f.addr).collect();
    let table = Table::new(&addrs);
    let running = start(&table, Duration::from_secs(30));
    let m = &running.metrics;
    until("three endpoints found", || endpoints(m) >= 3.0).await;
    let seeds: Vec<u64> = addrs
        .iter()
        .map(|a| rendezvous::seed(&a.to_string()))
        .collect();
    let mut expected = vec![Vec::new(); 3];
    for t in 1..=30u64 {
        let trace = TraceId::new(u128::from(t) * 0x9e37_79b9_7f4a_7c15_0123_4567).unwrap();
        let owner = rendezvous::pick(trace, seeds.iter().copied()).unwrap();
        for s in 0..2 {
            let mut span = server_span();
            span.trace_id = trace;
            span.id = SpanId::new(t * 10 + s).unwrap();
            expected[owner].push(span.id.to_string());
            running.sink.send(span);
        }
    }
    for (fake, want) in fakes.iter().zip(&expected) {
        let uploads = fake.wait_for_uploads(want.len()).await;
        let mut got: Vec<String> = uploads.iter().flat_map(|u| u.ids.clone()).collect();
        got.sort();
        let mut want = want.clone();
        want.sort();
        assert_eq!(
            got, want,
            "every span of a trace on its owner, and only there"
        );
        assert!(
            uploads
                .iter()
                .all(|u| u.headers["host"] == "collector.tracing.svc:9411"),
            "the Host header names the looked-up host"
        );
    }
    assert!(
        expected.iter().all(|spans| !spans.is_empty()),
        "all three got traces"
    );
    running.stop.send_replace(true);
    running.task.await.unwrap();
}

#[tokio::test]
async fn the_system_lookup_resolves_localhost() {
    let found = system_lookup()("localhost:9411".into()).await.unwrap();
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|a| a.port() == 9411 && a.ip().is_loopback()),
        "{found:?}"
    );
}
