//! Delivering one encoded batch: send, classify, back off, resend, and
//! account for the outcome (DESIGN §6).
//!
//! 2xx counts the spans as exported, less those an OTLP collector reports
//! rejected in a partial success (dropped as `rejected`, never resent: the
//! OTLP specification forbids retrying a partial success); 400 and other
//! statuses that will not improve drop the batch as `rejected` without a
//! retry; retryable statuses ([`super::client::retryable`]: 429 and 5xx for
//! Zipkin, 429/502/503/504 for OTLP), connect errors and timeouts are
//! retried with the policy in [`super::retry`] until the batch's budget
//! runs out, then dropped as `retries_exhausted` (or `shutdown` when the
//! final flush's deadline cut it short). Every attempt is timed and counted
//! by result, under its exporter's label.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::client::{Answer, CollectorClient, SendError};
use super::outage::{self, Outage};
use super::retry::next_delay;
use crate::config::RetryConfig;
use crate::metrics::ExportMetrics;

/// A batch ready to POST; retries resend the same bytes.
#[derive(Clone, Debug)]
pub struct EncodedBatch {
    pub body: Bytes,
    pub gzip: bool,
    pub spans: u64,
}

/// Sends batches to the collector and records what happened to them.
pub struct Delivery {
    pub client: CollectorClient,
    pub retry: RetryConfig,
    /// Timeout of one request.
    pub timeout: Duration,
    pub metrics: ExportMetrics,
    /// Whether the collector is failing, for the log (see [`super::outage`]).
    pub outage: Outage,
}

/// Why an attempt did not finish the batch.
enum Failure {
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Send(SendError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { status, .. } => write!(f, "collector answered {status}"),
            Failure::Send(error) => error.fmt(f),
        }
    }
}

impl Delivery {
    /// Delivers `batch`, retrying within the max-elapsed budget and, when
    /// given, before `deadline` (the end of the shutdown flush). No attempt
    /// starts after the budget ends.
    pub async fn deliver(&self, batch: &EncodedBatch, deadline: Option<Instant>) {
        let budget_end = Instant::now() + self.retry.max_elapsed;
        let (end, exhausted) = match deadline {
            Some(deadline) if deadline < budget_end => (deadline, "shutdown"),
            _ => (budget_end, "retries_exhausted"),
        };
        let mut last_failure = None;
        for retry in 0u32.. {
            let remaining = end.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let failure = match self.attempt(batch, self.timeout.min(remaining)).await {
                Ok(()) => {
                    let report = self.outage.reached(Instant::now());
                    outage::log(report, &self.client.target(), &"");
                    return;
                }
                Err(failure) => failure,
            };
            let report = self.outage.failed(Instant::now());
            outage::log(report, &self.client.target(), &failure);
            let retry_after = match &failure {
                Failure::Status { retry_after, .. } => *retry_after,
                Failure::Send(_) => None,
            };
            tracing::debug!(%failure, retry, "span export attempt failed");
            let remaining = end.saturating_duration_since(Instant::now());
            let delay = next_delay(&self.retry, retry, retry_after, remaining, rand::random());
            last_failure = Some(failure);
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => break,
            }
        }
        match last_failure {
            Some(failure) => {
                tracing::warn!(spans = batch.spans, %failure, "span export gave up; batch dropped");
            }
            None => tracing::warn!(spans = batch.spans, "no time left to export; batch dropped"),
        }
        self.metrics.dropped(exhausted, batch.spans);
    }

    /// One request. `Ok` means the batch is finished (accepted or rejected).
    async fn attempt(&self, batch: &EncodedBatch, timeout: Duration) -> Result<(), Failure> {
        let started = Instant::now();
        let result = self
            .client
            .send(batch.body.clone(), batch.gzip, timeout)
            .await;
        self.metrics
            .request_duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(Answer::Accepted { rejected, message }) => {
                self.metrics.request("success");
                let rejected = rejected.min(batch.spans);
                self.metrics.exported(batch.spans - rejected);
                if rejected > 0 {
                    tracing::warn!(rejected, %message, spans = batch.spans, "collector rejected part of a span batch");
                    self.metrics.dropped("rejected", rejected);
                } else if !message.is_empty() {
                    tracing::info!(%message, "collector accepted a span batch with a warning");
                }
                Ok(())
            }
            Ok(Answer::Rejected { status, message }) => {
                self.metrics.request("rejected");
                tracing::warn!(status, %message, spans = batch.spans, "collector rejected a span batch; dropped");
                self.metrics.dropped("rejected", batch.spans);
                Ok(())
            }
            Ok(Answer::Unavailable {
                status,
                retry_after,
            }) => {
                self.metrics.request(if status == 429 {
                    "throttled"
                } else {
                    "server_error"
                });
                Err(Failure::Status {
                    status,
                    retry_after,
                })
            }
            Err(error) => {
                self.metrics.request(match error {
                    SendError::Connect(_) => "connect_error",
                    SendError::Request(_) => "error",
                    SendError::Timeout(_) => "timeout",
                });
                Err(Failure::Send(error))
            }
        }
    }
}
