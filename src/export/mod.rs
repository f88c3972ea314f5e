//! Span export to a Zipkin v2 collector and/or an OTLP/HTTP endpoint (DESIGN §6).
//!
//! The flow, one way only, once per configured exporter:
//!
//! ```text
//!                         ┌─► zipkin queue ─► Batcher ─► Zipkin JSON ─► Delivery ─► POST /api/v2/spans
//! request path ──send───┤    (bounded)
//!   (try_send each)       └─► otlp queue ───► Batcher ─► OTLP protobuf ─► Delivery ─► POST /v1/traces
//!                                                 429 / 5xx / connect / timeout:
//!                                                 retry with backoff + jitter, Retry-After
//! ```
//!
//! 1. [`SpanSink`] (`sink`): the request path's handle. `send` never blocks:
//!    it offers the span (one `Arc`, shared) to every exporter's queue; a
//!    full queue drops it for that exporter alone and counts `queue_full`.
//! 2. The queues: tokio bounded channels of `queue_capacity` spans each; the
//!    `tracehop_export_queue_spans{exporter}` gauge follows each depth.
//! 3. [`Batcher`] (`batcher`, `batch`): one per exporter; encodes spans as
//!    they arrive, flushes at `batch_size` spans or `batch_interval` after a
//!    batch's first span, and runs the final flush at shutdown.
//! 4. Encoding, off the request path: `tags` holds the one list of span
//!    attributes (OpenTelemetry names and values), the name parts and the
//!    failure rule; `zipkin_json` (with `route`, `json`) renders Zipkin v2
//!    JSON, `otlp` an OTLP `ExportTraceServiceRequest` ([`crate::otlp`]).
//! 5. `delivery` and `client`: POST with `b3: 0`; success counts exported
//!    spans (less an OTLP partial success's rejected ones), a refusal drops
//!    the batch as `rejected`, retryable answers are retried (`retry`) until
//!    `max_elapsed`, then dropped as `retries_exhausted`. Which statuses are
//!    retryable is each exporter's rule (`client::retryable`).
//!
//! Independence: each exporter has its own queue, batcher, connection and
//! retries, so a Zipkin that is down fills only Zipkin's queue while OTLP
//! goes on, and the other way round; requests never wait for either.
//!
//! Memory bound: each queue holds at most `queue_capacity` spans and each
//! batcher at most one batch (`batch_size` spans, encoded as they arrive).
//! A batcher receives nothing while its batch is being delivered, so a slow
//! or failing collector fills its queue and the sink starts dropping for
//! it; no collector behaviour makes tracehop buffer more.
//!
//! Uses `config` (the `export` section), `metrics` ([`ExportMetrics`]) and
//! `span` (the records). Nothing here is global: `app` builds the channels,
//! spawns each [`Batcher::run`] and hands clones of the sink to the listeners.

mod batch;
mod batcher;
mod client;
mod delivery;
mod json;
mod otlp;
mod outage;
mod relay;
mod retry;
mod route;
#[cfg(test)]
pub(crate) mod sample;
mod sink;
mod tags;
mod zipkin_json;

pub use batcher::Batcher;
pub use client::ClientError;
pub use otlp::encode_span as encode_otlp_span;
pub use relay::{Relay, RelaySink, relay};
pub use sink::SpanSink;
pub use zipkin_json::{EncodeOptions, SpanEncoder, encode_spans};

pub use crate::tls::{CollectorAccess, ExportAccess};

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{ExportConfig, ExportSettings, Exporter};
use crate::metrics::ExportFamilies;
use batcher::BatchSettings;
use client::CollectorClient;
use delivery::Delivery;
use sink::{Doorbell, Queue};

/// Builds the queues: the sink for the request path and, when export is
/// enabled, one [`Batcher`] to run per exporter. `https://` collectors get
/// the built-in roots and no extra headers; see [`channel_with`].
pub fn channel(
    config: &ExportConfig,
    metrics: &ExportFamilies,
    options: EncodeOptions,
) -> (SpanSink, Vec<Batcher>) {
    channel_with(config, metrics, options, &ExportAccess::default())
}

/// [`channel`] with each collector's TLS setting and extra headers. An
/// exporter whose client cannot be built is logged as an error and left
/// out; with none left, export is disabled.
pub fn channel_with(
    config: &ExportConfig,
    metrics: &ExportFamilies,
    options: EncodeOptions,
    access: &ExportAccess,
) -> (SpanSink, Vec<Batcher>) {
    let ExportConfig::Enabled(settings) = config else {
        return (SpanSink::disabled(metrics.disabled_counter()), Vec::new());
    };
    let mut queues = Vec::new();
    let mut batchers = Vec::new();
    for (exporter, destination) in settings.destinations() {
        let client = CollectorClient::new(
            exporter,
            destination,
            settings.timeout,
            access.of(exporter).clone(),
        );
        let client = match client {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, exporter = exporter.label(), "span export disabled");
                continue;
            }
        };
        let metrics = metrics.exporter(exporter.label());
        let (queue, batcher) = pipeline(
            exporter,
            settings,
            destination.gzip,
            client,
            metrics,
            &options,
        );
        queues.push(queue);
        batchers.push(batcher);
    }
    if queues.is_empty() {
        return (SpanSink::disabled(metrics.disabled_counter()), Vec::new());
    }
    (SpanSink::enabled(queues), batchers)
}

/// One exporter's queue and the batcher that drains it.
fn pipeline(
    exporter: Exporter,
    settings: &ExportSettings,
    gzip: bool,
    client: CollectorClient,
    metrics: crate::metrics::ExportMetrics,
    options: &EncodeOptions,
) -> (Queue, Batcher) {
    // A zero capacity would make tokio panic; validation rejects it anyway.
    let (sender, queue) = mpsc::channel(settings.queue_capacity.max(1));
    let doorbell = Arc::new(Doorbell::new(settings.queue_capacity));
    let sink_end = Queue::new(sender, doorbell.clone(), &metrics, exporter.label());
    let batcher = Batcher {
        exporter,
        queue,
        doorbell,
        settings: BatchSettings {
            batch_size: settings.batch_size.max(1),
            batch_interval: settings.batch_interval,
            gzip,
            shutdown_timeout: settings.shutdown_timeout,
        },
        options: options.clone(),
        delivery: Delivery {
            client,
            retry: settings.retry.clone(),
            timeout: settings.timeout,
            metrics: metrics.clone(),
            outage: Default::default(),
        },
        metrics,
    };
    (sink_end, batcher)
}

#[cfg(test)]
mod tests;
