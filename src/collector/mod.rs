//! The embedded Zipkin-compatible collector and its trace viewer (DESIGN §7).
//!
//! `tracehop collector` runs this for local development, the demo and tests.
//! It receives spans on `POST /api/v2/spans` (Zipkin JSON or proto3) and on
//! `POST /v1/traces` (OTLP/HTTP, protobuf or JSON), optionally gzip, keeps
//! them in an in-memory store bounded in bytes (`--max-memory`; whole oldest
//! traces evicted first), optionally tail-samples them first (keeps whole
//! traces by policy after they are complete), answers the Zipkin v2 read API (`zipkin2-api.yaml`) so tools that
//! speak Zipkin can read from it, and serves a self-contained trace viewer at
//! `/` (trace list with search by tag, waterfall, dependency graph).
//!
//! Layout:
//! - [`model`]: the generic Zipkin v2 span model (any tracer's spans).
//! - `decode`: upload decoding (JSON, proto3), validation and normalisation
//!   ([`IngestError`]).
//! - `compact`: the encoded-once form spans are held in, and what it costs.
//! - `store`: the bounded store and its service-name indices.
//! - `tail`: tail sampling: the buffer of traces waiting, policies, decisions.
//! - `trace`: Zipkin's rules for one trace: which copies of a span merge, the
//!   B3 shared-span fix-ups, and the trace tree.
//! - `query`: read-API parameters and Zipkin's trace-matching rules.
//! - `dependencies`: the service graph, as Zipkin's `DependencyLinker`.
//! - `api`: routing and HTTP shapes; `otlp_http`: OTLP's answers;
//!   `viewer`: the embedded page.
//!
//! Memory: the store and the tail buffer share one bound in bytes. The
//! buffer may use three quarters of it (beyond, its oldest traces are
//! decided early); the store gets the rest, less what the buffer holds now.
//!
//! Uses [`crate::server`] for the listener loop and [`crate::span`] ids.

mod api;
mod compact;
mod decode;
mod dependencies;
pub mod model;
mod otlp_http;
mod query;
mod store;
mod tail;
mod trace;
mod viewer;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tokio::net::TcpListener;

pub use api::MAX_BODY_BYTES;
pub use decode::otlp::Encoding as OtlpEncoding;
pub use decode::{Format, IngestError};
pub use dependencies::DependencyLink;

use crate::config::TailSampling;
use crate::export::RelaySink;
use crate::metrics::CollectorMetrics;
use crate::server::{self, Body, BoxError, ServerOptions};
use model::Span;
use store::Store;
pub use tail::POLICY_TAG;
use tail::{Kept, TailSampler};

/// Spans kept when not configured otherwise: Zipkin's in-memory default
/// (`MEM_MAX_SPANS`).
pub const DEFAULT_MAX_SPANS: usize = 500_000;

/// `--max-memory` when not set: 256 MiB.
pub const DEFAULT_MAX_MEMORY: usize = 256 << 20;

/// Collector settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectorConfig {
    /// Most spans kept in memory; beyond it whole oldest traces are evicted.
    pub max_spans: usize,
    /// Bytes the store and the tail buffer may count together (see
    /// [`compact`]); beyond it whole oldest traces are evicted.
    pub max_memory: usize,
    /// Tail sampling, when configured.
    pub tail_sampling: Option<TailSampling>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            max_spans: DEFAULT_MAX_SPANS,
            max_memory: DEFAULT_MAX_MEMORY,
            tail_sampling: None,
        }
    }
}

/// The tail buffer's share of `max_memory`: three quarters. With tail
/// sampling on, the store holds only the kept traces (a few percent), while
/// every trace waits in the buffer for `decision_wait`.
fn tail_share(max_memory: usize) -> usize {
    max_memory / 4 * 3
}

/// What the collector holds in memory: the store, and the traces waiting
/// for their tail-sampling decision.
#[derive(Debug)]
struct Holdings {
    store: Store,
    tail: Option<TailSampler>,
    max_memory: usize,
}

impl Holdings {
    /// Stores (or hands to the tail sampler) a batch; returns what was kept
    /// by tail decisions made now.
    fn ingest(&mut self, spans: Vec<Span>, now: tokio::time::Instant) -> Vec<Kept> {
        match &mut self.tail {
            None => {
                self.store.insert(spans);
                Vec::new()
            }
            Some(tail) => tail.offer(spans, now),
        }
    }

    /// Stores kept traces; returns them decoded when `decode` (to forward).
    fn keep(&mut self, kept: Vec<Kept>, decode: bool) -> Vec<Span> {
        let mut decoded = Vec::new();
        for Kept { trace_id, spans } in kept {
            if decode {
                decoded.extend(spans.iter().filter_map(compact::CompactSpan::decode));
            }
            self.store.insert_trace(trace_id, spans);
        }
        self.rebalance();
        decoded
    }

    /// Gives the store what the tail buffer does not use of the bound.
    fn rebalance(&mut self) {
        let held = self.tail.as_ref().map_or(0, TailSampler::memory_bytes);
        self.store
            .set_memory_limit(self.max_memory.saturating_sub(held));
    }

    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes() + self.tail.as_ref().map_or(0, TailSampler::memory_bytes)
    }
}

/// What one OTLP request stored.
#[derive(Debug, PartialEq, Eq)]
pub struct OtlpStored {
    /// Spans stored.
    pub stored: usize,
    /// Spans left out for unreadable ids.
    pub rejected: usize,
    /// Why the first of them was.
    pub first_problem: Option<String>,
}

/// The collector: a shared store plus the HTTP handler. Cloning is cheap and
/// every clone sees the same store.
#[derive(Clone, Debug)]
pub struct Collector {
    holdings: Arc<Mutex<Holdings>>,
    /// Where accepted batches are also relayed (`--forward URL`); with tail
    /// sampling, only kept traces.
    forward: Option<RelaySink>,
    metrics: CollectorMetrics,
}

impl Collector {
    /// An empty collector.
    pub fn new(config: CollectorConfig) -> Self {
        let metrics = CollectorMetrics::new();
        metrics
            .memory_limit_bytes
            .set(i64::try_from(config.max_memory).unwrap_or(i64::MAX));
        let store = Store::new(config.max_spans, config.max_memory);
        let tail = config.tail_sampling.as_ref().map(|tail| {
            let now = tokio::time::Instant::now();
            let share = tail_share(config.max_memory);
            TailSampler::new(tail, share, metrics.clone(), store.keys().clone(), now)
        });
        let holdings = Holdings {
            store,
            tail,
            max_memory: config.max_memory,
        };
        Self {
            holdings: Arc::new(Mutex::new(holdings)),
            forward: None,
            metrics,
        }
    }

    /// The collector's metrics (its `/metrics`; the relay records into
    /// their export families).
    pub fn metrics(&self) -> &CollectorMetrics {
        &self.metrics
    }

    /// How long tail sampling waits for a trace, when it is on.
    pub fn decision_wait(&self) -> Option<Duration> {
        self.with_holdings(|h| h.tail.as_ref().map(TailSampler::decision_wait))
    }

    /// Also relays every accepted batch, as received, through `sink` (to a
    /// real Zipkin-compatible endpoint).
    pub fn forwarding_to(mut self, sink: RelaySink) -> Self {
        self.forward = Some(sink);
        self
    }

    /// Handles one HTTP request (API and viewer). Generic over the body so
    /// tests can call it with an in-memory body and no socket.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        api::handle(self, request).await
    }

    /// Validates a JSON list of spans and stores it; returns how many spans
    /// the batch had. An invalid batch stores nothing.
    pub fn ingest_json(&self, body: &[u8]) -> Result<usize, IngestError> {
        self.ingest_body(Format::Json, body)
    }

    /// Validates an upload in `format` (JSON or proto3 `ListOfSpans`) and
    /// stores it; returns how many spans the batch had. An invalid batch
    /// stores nothing.
    pub fn ingest_body(&self, format: Format, body: &[u8]) -> Result<usize, IngestError> {
        let spans = decode::decode(format, body)?;
        // The relay speaks Zipkin JSON: a JSON upload goes as received,
        // a proto3 one as the JSON of what was decoded from it.
        match (format, &self.forward) {
            // With tail sampling, only kept traces are relayed, once decided.
            (_, Some(_)) if self.tail_sampling() => {}
            (Format::Json, Some(forward)) => {
                forward.send(Bytes::copy_from_slice(body), spans.len() as u64);
            }
            (Format::Proto, Some(_)) => self.forward_decoded(&spans),
            (_, None) => {}
        }
        Ok(self.ingest(spans))
    }

    /// Decodes an OTLP request in `encoding` and stores its spans; spans with
    /// unreadable ids are left out and counted. Only a body that is not a
    /// request at all stores nothing.
    pub fn ingest_otlp(
        &self,
        encoding: OtlpEncoding,
        body: &[u8],
    ) -> Result<OtlpStored, IngestError> {
        let decoded = decode::otlp::decode(encoding, body)?;
        // The relay speaks Zipkin JSON: the JSON of what was decoded.
        if !self.tail_sampling() {
            self.forward_decoded(&decoded.spans);
        }
        let stored = self.ingest(decoded.spans);
        Ok(OtlpStored {
            stored,
            rejected: decoded.rejected,
            first_problem: decoded.first_problem,
        })
    }

    /// Relays decoded spans as Zipkin JSON, when forwarding.
    fn forward_decoded(&self, spans: &[Span]) {
        let Some(forward) = &self.forward else {
            return;
        };
        if spans.is_empty() {
            return;
        }
        match serde_json::to_vec(spans) {
            Ok(json) => forward.send(Bytes::from(json), spans.len() as u64),
            Err(error) => tracing::warn!(%error, "could not encode spans to forward"),
        }
    }

    /// Stores validated spans, or hands them to the tail sampler: the one
    /// place every upload goes through.
    pub fn ingest(&self, spans: Vec<Span>) -> usize {
        let count = spans.len();
        let now = tokio::time::Instant::now();
        let forward = self.with_holdings_mut(|h| {
            let kept = h.ingest(spans, now);
            h.keep(kept, self.forward.is_some())
        });
        self.forward_decoded(&forward);
        count
    }

    /// Makes the tail-sampling decisions that are due (the decision task
    /// calls this); kept traces are stored and relayed.
    pub fn decide_due(&self) {
        self.decide(TailSampler::decide_due);
    }

    /// Decides every trace still waiting, due or not (at shutdown, so kept
    /// traces are stored and relayed before the relay stops).
    pub fn decide_all(&self) {
        self.decide(TailSampler::decide_all);
    }

    fn decide(&self, how: fn(&mut TailSampler, tokio::time::Instant) -> Vec<Kept>) {
        let now = tokio::time::Instant::now();
        let forward = self.with_holdings_mut(|h| {
            let kept = h
                .tail
                .as_mut()
                .map(|tail| how(tail, now))
                .unwrap_or_default();
            h.keep(kept, self.forward.is_some())
        });
        self.forward_decoded(&forward);
    }

    fn tail_sampling(&self) -> bool {
        self.with_holdings(|h| h.tail.is_some())
    }

    /// Spans stored now.
    pub fn span_count(&self) -> usize {
        self.with_store(Store::span_count)
    }

    /// Traces stored now.
    pub fn trace_count(&self) -> usize {
        self.with_store(Store::trace_count)
    }

    /// Whole traces evicted so far to stay within the bounds.
    pub fn evicted_traces(&self) -> u64 {
        self.with_store(Store::evicted_traces)
    }

    /// Bytes the store and the tail buffer count against `max_memory`.
    pub fn memory_bytes(&self) -> usize {
        self.with_holdings(Holdings::memory_bytes)
    }

    /// Traces waiting for their tail-sampling decision.
    pub fn held_traces(&self) -> usize {
        self.with_holdings(|h| h.tail.as_ref().map_or(0, TailSampler::held_traces))
    }

    /// The metrics in the Prometheus text format, the gauges read now.
    pub fn render_metrics(&self) -> Vec<u8> {
        let (memory, spans, evicted) = self.with_holdings(|h| {
            let store = &h.store;
            (h.memory_bytes(), store.span_count(), store.evicted_traces())
        });
        let m = &self.metrics;
        m.memory_bytes
            .set(i64::try_from(memory).unwrap_or(i64::MAX));
        m.stored_spans.set(i64::try_from(spans).unwrap_or(i64::MAX));
        // The store counts evictions; the counter catches up at each scrape.
        m.evicted_traces
            .inc_by(evicted.saturating_sub(m.evicted_traces.get()));
        m.render()
    }

    fn with_store<R>(&self, read: impl FnOnce(&Store) -> R) -> R {
        self.with_holdings(|h| read(&h.store))
    }

    fn with_holdings<R>(&self, read: impl FnOnce(&Holdings) -> R) -> R {
        // Store methods do not panic; were one to, serving what is stored
        // beats failing every later request, so a poisoned lock is used as is.
        let holdings = self.holdings.lock().unwrap_or_else(PoisonError::into_inner);
        read(&holdings)
    }

    fn with_holdings_mut<R>(&self, write: impl FnOnce(&mut Holdings) -> R) -> R {
        let mut holdings = self.holdings.lock().unwrap_or_else(PoisonError::into_inner);
        write(&mut holdings)
    }
}

/// Serves the collector on `listener` until `shutdown` completes.
pub async fn serve(
    collector: Collector,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |request, _connection| {
        let collector = collector.clone();
        async move { collector.handle(request).await }
    };
    server::serve(listener, ServerOptions::default(), handler, shutdown).await;
}

/// Makes tail-sampling decisions as they fall due, until `shutdown`
/// completes; then decides every trace still waiting, so kept traces reach
/// the store and the relay before it stops. Ticks at a tenth of
/// `decision_wait` (10 ms to 1 s), so a trace is decided at most that late.
/// Returns at once when tail sampling is off.
pub async fn run_decisions(collector: Collector, shutdown: impl Future<Output = ()>) {
    let Some(wait) = collector.decision_wait() else {
        return;
    };
    let period = (wait / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = ticks.tick() => collector.decide_due(),
            () = &mut shutdown => break,
        }
    }
    collector.decide_all();
}

#[cfg(test)]
mod tests;
