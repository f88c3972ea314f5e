//! The embedded Zipkin-compatible collector and its trace viewer (DESIGN §7).
//!
//! `tracehop collector` runs this for local development, the demo and tests.
//! It receives spans on `POST /api/v2/spans` (Zipkin JSON or proto3) and on
//! `POST /v1/traces` (OTLP/HTTP, protobuf or JSON), optionally gzip, keeps them in a bounded in-memory store (whole oldest traces evicted
//! first), answers the Zipkin v2 read API (`zipkin2-api.yaml`) so tools that
//! speak Zipkin can read from it, and serves a self-contained trace viewer at
//! `/` (trace list with search by tag, waterfall, dependency graph).
//!
//! Layout:
//! - [`model`]: the generic Zipkin v2 span model (any tracer's spans).
//! - `decode`: upload decoding (JSON, proto3), validation and normalisation
//!   ([`IngestError`]).
//! - `store`: the bounded store and its service-name indices.
//! - `trace`: Zipkin's rules for one trace: which copies of a span merge, the
//!   B3 shared-span fix-ups, and the trace tree.
//! - `query`: read-API parameters and Zipkin's trace-matching rules.
//! - `dependencies`: the service graph, as Zipkin's `DependencyLinker`.
//! - `api`: routing and HTTP shapes; `otlp_http`: OTLP's answers;
//!   `viewer`: the embedded page.
//!
//! Uses [`crate::server`] for the listener loop and [`crate::span`] ids.

mod api;
mod decode;
mod dependencies;
pub mod model;
mod otlp_http;
mod query;
mod store;
mod trace;
mod viewer;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response};
use tokio::net::TcpListener;

pub use api::MAX_BODY_BYTES;
pub use decode::otlp::Encoding as OtlpEncoding;
pub use decode::{Format, IngestError};
pub use dependencies::DependencyLink;

use crate::export::RelaySink;
use crate::server::{self, Body, BoxError, ServerOptions};
use model::Span;
use store::Store;

/// Spans kept when not configured otherwise: Zipkin's in-memory default
/// (`MEM_MAX_SPANS`).
pub const DEFAULT_MAX_SPANS: usize = 500_000;

/// Collector settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Most spans kept in memory; beyond it whole oldest traces are evicted.
    pub max_spans: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            max_spans: DEFAULT_MAX_SPANS,
        }
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
    store: Arc<Mutex<Store>>,
    /// Where accepted batches are also relayed (`--forward URL`).
    forward: Option<RelaySink>,
}

impl Collector {
    /// An empty collector.
    pub fn new(config: CollectorConfig) -> Self {
        Self {
            store: Arc::new(Mutex::new(Store::new(config.max_spans))),
            forward: None,
        }
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
        self.forward_decoded(&decoded.spans);
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
        match serde_json::to_vec(spans) {
            Ok(json) => forward.send(Bytes::from(json), spans.len() as u64),
            Err(error) => tracing::warn!(%error, "could not encode spans to forward"),
        }
    }

    /// Stores validated spans: the one place every upload goes through (the
    /// natural spot to also hand spans to a forwarding exporter).
    pub fn ingest(&self, spans: Vec<Span>) -> usize {
        let count = spans.len();
        self.with_store_mut(|store| store.insert(spans));
        count
    }

    /// Spans stored now.
    pub fn span_count(&self) -> usize {
        self.with_store(Store::span_count)
    }

    /// Traces stored now.
    pub fn trace_count(&self) -> usize {
        self.with_store(Store::trace_count)
    }

    /// Whole traces evicted so far to stay within `max_spans`.
    pub fn evicted_traces(&self) -> u64 {
        self.with_store(Store::evicted_traces)
    }

    fn with_store<R>(&self, read: impl FnOnce(&Store) -> R) -> R {
        // Store methods do not panic; were one to, serving what is stored
        // beats failing every later request, so a poisoned lock is used as is.
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        read(&store)
    }

    fn with_store_mut<R>(&self, write: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        write(&mut store)
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

#[cfg(test)]
mod tests;
