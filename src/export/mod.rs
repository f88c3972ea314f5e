//! Span export to a Zipkin v2 collector (DESIGN §6).
//!
//! The flow, one way only:
//!
//! ```text
//! request path ──SpanSink::send (try_send)──► bounded queue ──► Batcher
//!   ──SpanEncoder, span by span (+gzip)──► Delivery ──CollectorClient POST──► collector
//!                                 ▲    │ 429 / 5xx / connect / timeout
//!                                 └────┘ retry: backoff + jitter, Retry-After
//! ```
//!
//! 1. [`SpanSink`] (`sink`): the request path's handle. `send` never blocks;
//!    a full queue drops the span and counts `queue_full`.
//! 2. The queue: a tokio bounded channel of `queue_capacity` spans; the
//!    `tracehop_export_queue_spans` gauge follows its depth.
//! 3. [`Batcher`] (`batcher`): encodes spans as they arrive, flushes at
//!    `batch_size` spans or `batch_interval` after a batch's first span,
//!    and runs the final flush at shutdown.
//! 4. `zipkin_json` (with `route`, `json`): renders typed spans into Zipkin
//!    v2 JSON, names and OpenTelemetry tags included, off the request path.
//! 5. `delivery` and `client`: POST with `b3: 0`; 2xx done, 400 and other
//!    4xx dropped as `rejected`, 429/5xx/connect errors/timeouts retried
//!    (`retry`) until `max_elapsed`, then dropped as `retries_exhausted`.
//!
//! Memory bound: the queue holds at most `queue_capacity` spans and the
//! batcher at most one batch (`batch_size` spans, encoded as they arrive).
//! The batcher receives nothing while a batch is being delivered, so a slow
//! or failing collector fills the queue and the sink starts dropping; no
//! collector behaviour makes tracehop buffer more.
//!
//! Uses `config` (the `export` section), `metrics` ([`ExportMetrics`]) and
//! `span` (the records). Nothing here is global: `app` builds the channel,
//! spawns [`Batcher::run`] and hands clones of the sink to the listeners.

mod batcher;
mod client;
mod delivery;
mod json;
mod relay;
mod retry;
mod route;
#[cfg(test)]
mod sample;
mod sink;
mod zipkin_json;

pub use batcher::Batcher;
pub use client::{ClientError, CollectorAccess};
pub use relay::{Relay, RelaySink, relay};
pub use sink::SpanSink;
pub use zipkin_json::{EncodeOptions, SpanEncoder, encode_spans};

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::ExportConfig;
use crate::metrics::ExportMetrics;
use batcher::BatchSettings;
use client::CollectorClient;
use delivery::Delivery;
use sink::Doorbell;

/// Builds the queue: the sink for the request path and, when export is
/// enabled, the [`Batcher`] to run. An `https://` collector gets the
/// built-in roots and no extra headers; see [`channel_with`].
pub fn channel(
    config: &ExportConfig,
    metrics: ExportMetrics,
    options: EncodeOptions,
) -> (SpanSink, Option<Batcher>) {
    channel_with(config, metrics, options, CollectorAccess::default())
}

/// [`channel`] with the collector's TLS setting and extra headers. A
/// client that cannot be built is logged as an error and export disabled.
pub fn channel_with(
    config: &ExportConfig,
    metrics: ExportMetrics,
    options: EncodeOptions,
    access: CollectorAccess,
) -> (SpanSink, Option<Batcher>) {
    let zipkin = match config {
        ExportConfig::Enabled(zipkin) => zipkin,
        ExportConfig::Disabled => return (SpanSink::disabled(&metrics), None),
    };
    let client = match CollectorClient::new(zipkin, access) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "span export disabled");
            return (SpanSink::disabled(&metrics), None);
        }
    };
    // A zero capacity would make tokio panic; validation rejects it anyway.
    let (sender, queue) = mpsc::channel(zipkin.queue_capacity.max(1));
    let doorbell = Arc::new(Doorbell::new(zipkin.queue_capacity));
    let sink = SpanSink::enabled(sender, doorbell.clone(), &metrics);
    let batcher = Batcher {
        queue,
        doorbell,
        settings: BatchSettings {
            batch_size: zipkin.batch_size.max(1),
            batch_interval: zipkin.batch_interval,
            gzip: zipkin.gzip,
            shutdown_timeout: zipkin.shutdown_timeout,
        },
        encoder: SpanEncoder::new(&options),
        delivery: Delivery {
            client,
            retry: zipkin.retry.clone(),
            timeout: zipkin.timeout,
            metrics: metrics.clone(),
        },
        metrics,
    };
    (sink, Some(batcher))
}

#[cfg(test)]
mod tests;
