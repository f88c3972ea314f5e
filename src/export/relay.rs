//! Relaying Zipkin JSON that is already encoded: the embedded collector's
//! `--forward URL`, which passes what it receives on to a real Zipkin,
//! Jaeger or Tempo.
//!
//! Same guarantees as span export: [`RelaySink::send`] never blocks (a
//! bounded queue of batches; full means drop and count), and [`Relay::run`]
//! delivers with the exporter's retry rules, one batch at a time, then
//! flushes what is queued at shutdown within `shutdown_timeout`.

use std::future::Future;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::{ClientError, CollectorClient};
use super::delivery::{Delivery, EncodedBatch};
use crate::config::{Destination, ExportSettings, Exporter};
use crate::metrics::ExportMetrics;
use crate::tls::CollectorAccess;

/// Batches waiting for the forward target at most.
const QUEUE_BATCHES: usize = 64;

/// The receiving side's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct RelaySink {
    queue: mpsc::Sender<EncodedBatch>,
    metrics: ExportMetrics,
}

impl std::fmt::Debug for RelaySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySink").finish_non_exhaustive()
    }
}

impl RelaySink {
    /// Queues one JSON list of `spans` spans for forwarding.
    pub fn send(&self, json: Bytes, spans: u64) {
        let batch = EncodedBatch {
            body: json,
            gzip: false,
            spans,
        };
        if self.queue.try_send(batch).is_err() {
            self.metrics.dropped("queue_full", spans);
            tracing::debug!(spans, "forward queue full; batch dropped");
        }
    }
}

/// Delivers queued batches to the forward target.
pub struct Relay {
    queue: mpsc::Receiver<EncodedBatch>,
    delivery: Delivery,
    shutdown_timeout: std::time::Duration,
}

/// Builds the relay to the Zipkin endpoint `target`, with the retry and
/// timeout settings of `config`.
pub fn relay(
    config: &ExportSettings,
    target: &Destination,
    metrics: ExportMetrics,
    access: CollectorAccess,
) -> Result<(RelaySink, Relay), ClientError> {
    // `--forward` names one URL: the relay sends to its first.
    let url = target
        .urls
        .first()
        .expect("a validated destination has at least one URL");
    let client = CollectorClient::new(Exporter::Zipkin, url, config.timeout, access)?;
    let (sender, queue) = mpsc::channel(QUEUE_BATCHES);
    let sink = RelaySink {
        queue: sender,
        metrics: metrics.clone(),
    };
    let relay = Relay {
        queue,
        delivery: Delivery {
            client,
            retry: config.retry.clone(),
            timeout: config.timeout,
            metrics,
            outage: Default::default(),
        },
        shutdown_timeout: config.shutdown_timeout,
    };
    Ok((sink, relay))
}

impl Relay {
    /// Forwards until `shutdown`, then delivers what is queued before the
    /// shutdown deadline.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                batch = self.queue.recv() => match batch {
                    Some(batch) => self.delivery.deliver(&batch, None).await,
                    None => return,
                },
                () = &mut shutdown => break,
            }
        }
        self.queue.close();
        let deadline = Instant::now() + self.shutdown_timeout;
        while let Some(batch) = self.queue.recv().await {
            self.delivery.deliver(&batch, Some(deadline)).await;
        }
    }
}
