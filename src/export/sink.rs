//! The request path's side of the export queue.
//!
//! [`SpanSink::send`] is a `try_send` into each exporter's bounded queue and
//! a few atomic adds: it never blocks, never awaits and allocates nothing
//! itself (the span, shared by every queue as one `Arc`, moves into the
//! channels, which recycle their storage blocks). A full queue drops the
//! span for that exporter alone and counts it (STYLE habit 5: telemetry
//! never blocks a request); the warning about it is rate-limited so a
//! stalled collector cannot flood the log. The queues share the span rather
//! than copies of it, as the OTLP specification recommends for sending to
//! several destinations ("Multi-Destination Exporting").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::endpoints::EndpointSet;
use crate::metrics::{DropCounter, ExportMetrics, QueueDepth};
use crate::span::Span;

/// Shortest time between two "queue full" warnings.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Cheap-to-clone handle the request path uses to hand off finished spans.
/// Never blocks, never awaits.
#[derive(Clone, Debug)]
pub struct SpanSink {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    /// One endpoint set per exporter; never empty.
    Enabled(Arc<[EndpointSet]>),
    /// Export is off: spans are counted as `disabled` and discarded.
    Disabled { discarded: IntCounter },
}

/// One exporter's queue, as the request path sees it.
#[derive(Clone, Debug)]
pub(super) struct Queue {
    exporter: &'static str,
    sender: mpsc::Sender<Arc<Span>>,
    doorbell: Arc<Doorbell>,
    depth: QueueDepth,
    queue_full: DropCounter,
    closed: DropCounter,
    full_warning: Arc<RateLimit>,
}

impl Queue {
    /// The request path's end of a queue feeding `sender` and ringing
    /// `doorbell`; the batcher owns the receiving end.
    pub(super) fn new(
        sender: mpsc::Sender<Arc<Span>>,
        doorbell: Arc<Doorbell>,
        metrics: &ExportMetrics,
        exporter: &'static str,
    ) -> Self {
        Self {
            exporter,
            sender,
            doorbell,
            depth: metrics.queue_depth.clone(),
            queue_full: metrics.dropped_counter("queue_full"),
            closed: metrics.dropped_counter("shutdown"),
            full_warning: Arc::new(RateLimit::new(FULL_WARNING_INTERVAL)),
        }
    }

    pub(super) fn offer(&self, span: Arc<Span>) {
        // Raise the gauge before the span becomes visible to the batcher,
        // which lowers it on receipt, so it never reads below zero.
        self.depth.add(1);
        match self.sender.try_send(span) {
            Ok(()) => self.doorbell.ring(),
            Err(TrySendError::Full(_)) => {
                self.depth.add(-1);
                self.queue_full.inc();
                if self.full_warning.allow(Instant::now()) {
                    tracing::warn!(
                        exporter = self.exporter,
                        dropped_total = self.queue_full.get(),
                        "span export queue is full; dropping spans"
                    );
                }
            }
            Err(TrySendError::Closed(_)) => {
                self.depth.add(-1);
                self.closed.inc();
            }
        }
    }
}

impl SpanSink {
    /// A sink feeding every exporter's endpoint set in `exporters` (at
    /// least one).
    pub(super) fn enabled(exporters: Vec<EndpointSet>) -> Self {
        Self {
            inner: Inner::Enabled(exporters.into()),
        }
    }

    /// A sink that discards every span, counting it on `discarded`.
    pub(super) fn disabled(discarded: IntCounter) -> Self {
        Self {
            inner: Inner::Disabled { discarded },
        }
    }

    /// Queues `span` for every exporter, in the queue of the endpoint its
    /// trace goes to, or drops and counts it per exporter: `queue_full`
    /// when that queue is at capacity, `shutdown` once its batcher stopped
    /// receiving, `no_endpoint` while DNS has found none; `disabled` when
    /// export is off.
    pub fn send(&self, span: impl Into<Arc<Span>>) {
        let exporters = match &self.inner {
            Inner::Enabled(exporters) => exporters,
            Inner::Disabled { discarded } => {
                discarded.inc();
                return;
            }
        };
        let span = span.into();
        // The last queue takes the caller's reference: with one exporter,
        // the span moves without a reference count change.
        if let Some((last, others)) = exporters.split_last() {
            for exporter in others {
                exporter.offer(span.clone());
            }
            last.offer(span);
        }
    }
}

/// How the request path wakes a batcher that has a batch open: every
/// `every`-th span rings the bell, so the batcher takes spans a few dozen at
/// a time instead of being woken by each one (a wake-up of the batcher costs
/// about what encoding a span does). A batcher with no batch open waits on
/// the queue itself, and the first span wakes it.
#[derive(Debug)]
pub(super) struct Doorbell {
    arrived: AtomicUsize,
    every: usize,
    pub(super) bell: Notify,
}

impl Doorbell {
    /// A bell rung every 32 spans, or every quarter of a smaller queue.
    pub(super) fn new(queue_capacity: usize) -> Self {
        Self {
            arrived: AtomicUsize::new(0),
            every: (queue_capacity / 4).clamp(1, 32),
            bell: Notify::new(),
        }
    }

    fn ring(&self) {
        let arrived = self.arrived.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if arrived.is_multiple_of(self.every) {
            self.bell.notify_one();
        }
    }
}

/// Lets one caller through per interval, across threads, without a lock.
#[derive(Debug)]
struct RateLimit {
    origin: Instant,
    interval_ms: u64,
    /// Milliseconds since `origin` before which nobody is let through.
    next_ms: AtomicU64,
}

impl RateLimit {
    fn new(interval: Duration) -> Self {
        Self {
            origin: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            next_ms: AtomicU64::new(0),
        }
    }

    fn allow(&self, now: Instant) -> bool {
        let now_ms = u64::try_from(now.saturating_duration_since(self.origin).as_millis())
            .unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::endpoints::Endpoint;
    use crate::export::sample::server_span;
    use crate::metrics::Metrics;

    fn rendered(metrics: &Metrics) -> String {
        String::from_utf8(metrics.render()).unwrap()
    }

    /// A sink over one endpoint per queue.
    fn sink_of(metrics: &Metrics, queues: Vec<Queue>) -> SpanSink {
        let no_endpoint = metrics
            .export
            .exporter("zipkin")
            .dropped_counter("no_endpoint");
        SpanSink::enabled(
            queues
                .into_iter()
                .map(|queue| {
                    let endpoint = Endpoint::new("one".into(), queue);
                    EndpointSet::new(vec![endpoint], no_endpoint.clone())
                })
                .collect(),
        )
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let metrics = Metrics::new();
        let zipkin = metrics.export.exporter("zipkin");
        let (sender, mut receiver) = mpsc::channel(2);
        let queue = Queue::new(sender, Arc::new(Doorbell::new(2)), &zipkin, "zipkin");
        let sink = sink_of(&metrics, vec![queue]);
        for _ in 0..5 {
            sink.send(server_span());
        }
        assert_eq!(zipkin.queue_depth.get(), 2);
        let text = rendered(&metrics);
        assert!(
            text.contains(
                r#"tracehop_spans_dropped_total{exporter="zipkin",reason="queue_full"} 3"#
            ),
            "{text}"
        );
        assert!(receiver.try_recv().is_ok());
        receiver.close();
        sink.send(server_span());
        let text = rendered(&metrics);
        assert!(
            text.contains(r#"tracehop_spans_dropped_total{exporter="zipkin",reason="shutdown"} 1"#),
            "{text}"
        );
        assert_eq!(zipkin.queue_depth.get(), 2, "the receiver did not lower it");
    }

    #[test]
    fn every_queue_gets_the_same_span_and_a_full_one_drops_alone() {
        let metrics = Metrics::new();
        let (zipkin, otlp) = (
            metrics.export.exporter("zipkin"),
            metrics.export.exporter("otlp"),
        );
        let (fast, mut fast_rx) = mpsc::channel(8);
        let (stuck, mut stuck_rx) = mpsc::channel(1);
        let sink = sink_of(
            &metrics,
            vec![
                Queue::new(fast, Arc::new(Doorbell::new(8)), &zipkin, "zipkin"),
                Queue::new(stuck, Arc::new(Doorbell::new(1)), &otlp, "otlp"),
            ],
        );
        for _ in 0..3 {
            sink.send(server_span());
        }
        let first = fast_rx.try_recv().unwrap();
        assert!(
            Arc::ptr_eq(&first, &stuck_rx.try_recv().unwrap()),
            "one shared span"
        );
        assert_eq!((zipkin.queue_depth.get(), otlp.queue_depth.get()), (3, 1));
        let text = rendered(&metrics);
        assert!(
            text.contains(r#"tracehop_spans_dropped_total{exporter="otlp",reason="queue_full"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"tracehop_spans_dropped_total{exporter="zipkin",reason="queue_full"} 0"#
            ),
            "{text}"
        );
    }

    #[test]
    fn disabled_sink_discards_and_counts() {
        let metrics = Metrics::new();
        let sink = SpanSink::disabled(metrics.export.disabled_counter());
        sink.clone().send(server_span());
        sink.send(server_span());
        let text = rendered(&metrics);
        assert!(
            text.contains(r#"tracehop_spans_dropped_total{exporter="none",reason="disabled"} 2"#),
            "{text}"
        );
        assert!(!text.contains("tracehop_export_queue_spans{"), "{text}");
    }

    #[test]
    fn warnings_are_rate_limited() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let start = limit.origin;
        assert!(limit.allow(start));
        assert!(!limit.allow(start + Duration::from_secs(9)));
        assert!(limit.allow(start + Duration::from_secs(10)));
        assert!(!limit.allow(start + Duration::from_secs(11)));
        assert!(limit.allow(start + Duration::from_secs(25)));
    }
}
