//! A request in flight: everything its span needs, and how it ends.
//!
//! [`InFlight`] is created once the sampling decision is made and moves
//! into the response body; [`InFlight::finish`] runs exactly once, when the
//! response is done (or failed), and does the hand-off: metrics, access log,
//! and the span into the export queue when sampled — or, when not sampled,
//! when keep-on-outcome keeps it (failed or slow; tag `sampling.reason`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderName;

use super::Proxy;
use crate::http1::FieldLookup;
use crate::sampling::Outcome;
use crate::span::{Endpoint, HttpFacts, Sampling, Span, SpanId, SpanTimer, Tag, TraceId};

/// How a response ended.
pub enum Ending {
    /// The body was sent to the end.
    Complete,
    /// The upstream failed while sending the body.
    UpstreamBodyError(String),
    /// hyper dropped the body; `complete` when nothing was left to send.
    Dropped { complete: bool },
}

/// One request being proxied.
pub struct InFlight {
    pub(super) proxy: Arc<Proxy>,
    pub(super) trace_id: TraceId,
    pub(super) span_id: SpanId,
    pub(super) parent_id: Option<SpanId>,
    pub(super) sampling: Sampling,
    pub(super) timer: SpanTimer,
    pub(super) http: HttpFacts,
    pub(super) remote: Endpoint,
    pub(super) error: Option<Cow<'static, str>>,
    pub(super) tags: Vec<Tag>,
}

impl InFlight {
    pub fn add_response_bytes(&mut self, n: usize) {
        self.http.response_body_bytes += n as u64;
    }

    /// Reads `grpc-status` (gRPC over HTTP/2: trailers, or the response
    /// headers of a trailers-only response).
    pub fn read_grpc_status(&mut self, fields: &impl FieldLookup) {
        static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
        if let Some(status) = fields
            .field(&GRPC_STATUS)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse().ok())
        {
            self.http.grpc_status = Some(status);
        }
    }

    /// Records the response head.
    pub fn set_status(&mut self, status: u16) {
        self.http.status = Some(status);
    }

    pub fn set_error(&mut self, error: impl Into<Cow<'static, str>>) {
        self.error = Some(error.into());
    }

    /// Ends the request: metrics, access log, and the span hand-off.
    pub fn finish(mut self, ending: Ending) {
        match ending {
            Ending::Complete | Ending::Dropped { complete: true } => {}
            Ending::UpstreamBodyError(message) => {
                // The head arrived but the body broke off (reset, tunnel error).
                self.proxy.metrics.upstream_error("body");
                self.error = Some(format!("upstream body failed: {message}").into());
            }
            Ending::Dropped { complete: false } => self.tags.push(Tag {
                key: "tracehop.downstream_cancelled".into(),
                value: "true".into(),
            }),
        }
        let duration_us = self.timer.duration_us();
        let proxy = &self.proxy;
        let status = self.http.status.unwrap_or(502);
        proxy
            .metrics
            .record_request(&self.http.method, status, duration_us as f64 / 1e6);
        proxy.metrics.in_flight.dec();
        if proxy.access_log {
            self.log_access(status, duration_us);
        }
        let kept = if self.sampling.is_sampled() {
            None
        } else {
            let outcome = Outcome {
                status,
                upstream_failed: self.error.is_some(),
                grpc_status: self.http.grpc_status,
                duration: Duration::from_micros(duration_us),
            };
            match proxy.sampler.load().keep(&outcome, Instant::now()) {
                Some(reason) => Some(reason),
                None => return,
            }
        };
        if let Some(reason) = kept {
            self.tags.push(Tag {
                key: "sampling.reason".into(),
                value: reason.tag().into(),
            });
        }
        let span = Span {
            trace_id: self.trace_id,
            id: self.span_id,
            parent_id: self.parent_id,
            kind: proxy.kind,
            debug: self.sampling == Sampling::Debug,
            timestamp_us: self.timer.timestamp_us,
            duration_us,
            local_service: proxy.local_service.clone(),
            remote: self.remote,
            http: self.http.detached(),
            error: self.error,
            tags: self.tags,
        };
        proxy.sink.send(span);
    }

    fn log_access(&self, status: u16, duration_us: u64) {
        let path = self.http.target.as_ref().map_or("/", |t| t.path());
        tracing::info!(
            target: "tracehop::access",
            direction = self.proxy.direction(),
            method = %self.http.method,
            path,
            status,
            duration_ms = duration_us as f64 / 1000.0,
            trace_id = %self.trace_id,
            span_id = %self.span_id,
            sampled = self.sampling.is_sampled(),
            error = self.error.as_deref(),
        );
    }
}
