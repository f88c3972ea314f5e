//! Span export to a Zipkin v2 collector and/or an OTLP/HTTP endpoint (DESIGN §6).
//!
//! The flow, one way only, once per configured exporter and, within it,
//! once per collector endpoint:
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
//!    it offers the span (one `Arc`, shared) to every exporter; within an
//!    exporter, `endpoints` picks the queue of the collector endpoint the
//!    span's trace goes to (`rendezvous`: every span of a trace, from every
//!    sidecar, to the same collector). A full queue drops the span for that
//!    endpoint alone and counts `queue_full`.
//! 2. The queues: tokio bounded channels of `queue_capacity` spans each,
//!    one per endpoint; `tracehop_export_queue_spans{exporter}` and
//!    `tracehop_export_endpoint_queue_spans{exporter,endpoint}` follow them.
//!    With `export.resolve: dns`, `discovery` adds and removes endpoints
//!    as the collector's host resolves to new addresses.
//! 3. [`Batcher`] (`batcher`, `batch`): one per endpoint; encodes spans as
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
//! Independence: each endpoint of each exporter has its own queue,
//! batcher, connection, retries and outage log, so a Zipkin that is down
//! fills only its own queue while OTLP (or the other collectors) goes on;
//! requests never wait for any. A span is never re-routed to another
//! endpoint because its own is down (`endpoints` says why).
//!
//! Memory bound: each queue holds at most `queue_capacity` spans (so an
//! exporter with n endpoints up to n times that) and each batcher at most
//! one batch (`batch_size` spans, encoded as they arrive).
//! A batcher receives nothing while its batch is being delivered, so a slow
//! or failing collector fills its queue and the sink starts dropping for
//! it; no collector behaviour makes tracehop buffer more.
//!
//! Uses `config` (the `export` section), `metrics` ([`ExportMetrics`]) and
//! `span` (the records). Nothing here is global: `app` builds the channels,
//! spawns each [`ExportTask`] and hands clones of the sink to the listeners.

mod batch;
mod batcher;
mod client;
mod delivery;
mod discovery;
mod endpoints;
pub(crate) mod json;
mod otlp;
mod outage;
mod relay;
pub mod rendezvous;
mod retry;
mod route;
#[cfg(test)]
pub(crate) mod sample;
mod sink;
mod tags;
mod zipkin_json;

pub use batcher::Batcher;
pub use client::ClientError;
pub use discovery::{Discovery, Lookup};
pub use otlp::encode_span as encode_otlp_span;
pub use relay::{Relay, RelaySink, relay};
pub use sink::SpanSink;
pub use zipkin_json::{EncodeOptions, SpanEncoder, encode_spans};

pub use crate::tls::{CollectorAccess, ExportAccess};

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{ExportConfig, ExportSettings, Exporter, Resolve, UpstreamUrl};
use crate::metrics::ExportFamilies;
use batcher::BatchSettings;
use client::CollectorClient;
use delivery::Delivery;
use endpoints::{Endpoint, EndpointSet};
use sink::{Doorbell, Queue};

/// A long-lived export task for `app` to spawn: a batcher, or the task
/// that keeps an exporter's endpoint set in line with DNS (and owns the
/// batchers of the endpoints it adds).
pub enum ExportTask {
    Batcher(Batcher),
    Discovery(Discovery),
}

impl ExportTask {
    /// Runs until `stopped()` completes, then flushes (see
    /// [`Batcher::run`]); a discovery task stops looking up and waits for
    /// its batchers.
    pub async fn run(self, stopped: StopSignal) {
        match self {
            ExportTask::Batcher(batcher) => batcher.run(stopped()).await,
            ExportTask::Discovery(discovery) => discovery.run(stopped).await,
        }
    }
}

/// Makes a future that completes at shutdown; called once per task.
pub type StopSignal = Arc<dyn Fn() -> Box<dyn Future<Output = ()> + Send + Unpin> + Send + Sync>;

/// Builds the queues: the sink for the request path and, when export is
/// enabled, the tasks to run: one [`Batcher`] per collector endpoint, or a
/// [`Discovery`] per exporter with `export.resolve: dns`. `https://`
/// collectors get the built-in roots and no extra headers; see
/// [`channel_with`].
pub fn channel(
    config: &ExportConfig,
    metrics: &ExportFamilies,
    options: EncodeOptions,
) -> (SpanSink, Vec<ExportTask>) {
    channel_with(config, metrics, options, &ExportAccess::default())
}

/// [`channel`] with each collector's TLS setting and extra headers. An
/// endpoint whose client cannot be built is logged as an error and left
/// out; with none left, export is disabled.
pub fn channel_with(
    config: &ExportConfig,
    metrics: &ExportFamilies,
    options: EncodeOptions,
    access: &ExportAccess,
) -> (SpanSink, Vec<ExportTask>) {
    channel_resolving(config, metrics, options, access, discovery::system_lookup())
}

/// [`channel_with`], looking hosts up with `lookup` (tests feed their own).
pub(super) fn channel_resolving(
    config: &ExportConfig,
    metrics: &ExportFamilies,
    options: EncodeOptions,
    access: &ExportAccess,
    lookup: Lookup,
) -> (SpanSink, Vec<ExportTask>) {
    let ExportConfig::Enabled(settings) = config else {
        return (SpanSink::disabled(metrics.disabled_counter()), Vec::new());
    };
    let mut sets = Vec::new();
    let mut tasks = Vec::new();
    for (exporter, destination) in settings.destinations() {
        let pipelines = Pipelines {
            exporter,
            settings: settings.clone(),
            gzip: destination.gzip,
            access: access.of(exporter).clone(),
            families: metrics.clone(),
            options: options.clone(),
        };
        let no_endpoint = metrics
            .exporter(exporter.label())
            .dropped_counter("no_endpoint");
        let set_metrics = metrics.endpoint_set(exporter.label());
        match settings.resolve {
            Resolve::Static => {
                let endpoints = pipelines.listed(&destination.urls, &mut tasks);
                if !endpoints.is_empty() {
                    set_metrics.changed(endpoints.len(), 0, endpoints.len());
                    sets.push(EndpointSet::new(endpoints, no_endpoint));
                }
            }
            // Validation leaves one URL per exporter with DNS.
            Resolve::Dns { interval } => {
                if let Some(url) = destination.urls.first() {
                    let set = EndpointSet::new(Vec::new(), no_endpoint);
                    tasks.push(ExportTask::Discovery(Discovery {
                        url: url.clone(),
                        interval,
                        lookup: lookup.clone(),
                        set: set.clone(),
                        pipelines,
                        metrics: set_metrics,
                    }));
                    sets.push(set);
                }
            }
        }
    }
    if sets.is_empty() {
        return (SpanSink::disabled(metrics.disabled_counter()), Vec::new());
    }
    (SpanSink::enabled(sets), tasks)
}

/// What it takes to add an endpoint to one exporter: its settings, access
/// and metrics families.
struct Pipelines {
    exporter: Exporter,
    settings: ExportSettings,
    gzip: bool,
    access: CollectorAccess,
    families: ExportFamilies,
    options: EncodeOptions,
}

impl Pipelines {
    /// One endpoint per URL of a static list, named by the URL as
    /// configured; their batchers go to `tasks`. A URL whose client cannot
    /// be built is logged and left out.
    fn listed(&self, urls: &[UpstreamUrl], tasks: &mut Vec<ExportTask>) -> Vec<Endpoint> {
        let mut endpoints = Vec::new();
        for url in urls {
            let access = self.access.clone();
            match CollectorClient::new(self.exporter, url, self.settings.timeout, access) {
                Ok(client) => {
                    let (endpoint, batcher) = self.build(&url.to_string(), client);
                    endpoints.push(endpoint);
                    tasks.push(ExportTask::Batcher(batcher));
                }
                Err(error) => tracing::error!(
                    %error,
                    exporter = self.exporter.label(),
                    "span export to this collector disabled"
                ),
            }
        }
        endpoints
    }

    /// The endpoint called `name`, sending through `client`: its queue,
    /// in an [`Endpoint`] for the set, and the batcher that drains it.
    fn build(&self, name: &str, client: CollectorClient) -> (Endpoint, Batcher) {
        let exporter = self.exporter;
        let settings = &self.settings;
        let metrics = self.families.endpoint(exporter.label(), name);
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
                gzip: self.gzip,
                shutdown_timeout: settings.shutdown_timeout,
            },
            options: self.options.clone(),
            delivery: Delivery {
                client,
                retry: settings.retry.clone(),
                timeout: settings.timeout,
                metrics: metrics.clone(),
                outage: Default::default(),
            },
            metrics,
        };
        (Endpoint::new(name.into(), sink_end), batcher)
    }
}

#[cfg(test)]
mod tests;
