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

use super::Proxy;
use crate::http1::FieldLookup;
use crate::http1::path::ServedBy;
use crate::inference::{self, Entry, PendingCall};
use crate::sampling::Outcome;
use crate::span::{
    Endpoint, HttpFacts, Kind, Sampling, Span, SpanContext, SpanId, SpanTimer, Tag, grpc,
};

/// How a response ended.
pub enum Ending {
    /// The body was sent to the end.
    Complete,
    /// The upstream failed while sending the body.
    UpstreamBodyError(String),
    /// hyper dropped the body; `complete` when nothing was left to send.
    Dropped { complete: bool },
}

/// One request being proxied. The span it becomes is filled in as the
/// request goes and lives on the heap from the start: the record moves
/// with the response through the server and into the export queue as one
/// pointer, not as a few hundred bytes copied at every step.
pub struct InFlight {
    pub(super) proxy: Arc<Proxy>,
    pub(super) sampling: Sampling,
    pub(super) timer: SpanTimer,
    /// Everything but the duration, known when the request ends. Never
    /// shared before [`InFlight::finish`] hands it to the export queues
    /// (which then share it), so [`InFlight::record`] never copies it.
    span: Arc<Span>,
    /// Which server implementation read the request (a metric label).
    pub(super) served: ServedBy,
    /// Parent inference's part: the inbound request's place in the
    /// register, or the outbound call waiting for its verdict.
    parentage: Parentage,
}

/// Parent inference for one request ([`crate::inference`]).
enum Parentage {
    /// Inference off, or nothing to do for this request.
    None,
    /// An inbound request: in the register until this is dropped, which
    /// happens when the response has ended ([`InFlight::finish`]).
    Registered { _entry: Entry },
    /// An outbound call: settled when it ends. Boxed: every request's
    /// record moves with its response, and most are not outbound calls.
    Pending(Box<Call>),
}

/// An outbound call under parent inference.
pub(super) struct Call {
    pub(super) pending: PendingCall,
    /// The context the app sent, if any: the real parent to compare with.
    pub(super) sent: Option<SpanContext>,
}

impl InFlight {
    /// Starts the record of a request whose facts are `http`.
    pub(super) fn start(
        proxy: &Arc<Proxy>,
        context: &SpanContext,
        parent_id: Option<SpanId>,
        http: HttpFacts,
        remote: Endpoint,
        served: ServedBy,
    ) -> Self {
        let timer = SpanTimer::start();
        Self {
            proxy: proxy.clone(),
            sampling: context.sampling,
            span: Arc::new(Span {
                trace_id: context.trace_id,
                id: context.span_id,
                parent_id,
                kind: proxy.listener.kind,
                debug: context.sampling == Sampling::Debug,
                timestamp_us: timer.timestamp_us,
                duration_us: 0,
                local_service: proxy.telemetry.local_service.clone(),
                remote,
                http,
                db: None,
                error: None,
                tags: Vec::new(),
                links: Vec::new(),
            }),
            timer,
            served,
            parentage: Parentage::None,
        }
    }

    /// Joins parent inference when the sidecar has a register: an inbound
    /// request enters it with its span's `context`; an outbound `call`
    /// waits for its verdict.
    pub(super) fn link_parent(
        &mut self,
        proxy: &Arc<Proxy>,
        context: &SpanContext,
        call: Option<Call>,
    ) {
        self.parentage = match (call, &proxy.telemetry.register) {
            (Some(call), _) => Parentage::Pending(Box::new(call)),
            (None, Some(register)) if proxy.listener.kind == Kind::Server => {
                Parentage::Registered {
                    _entry: register.enter(*context),
                }
            }
            (None, _) => Parentage::None,
        };
    }

    /// Leaves the register, or settles an outbound call's parent: counts
    /// the outcome, and a parent named only now also decides whether the
    /// span is exported (its trace's decision).
    fn settle_parent(&mut self) {
        match std::mem::replace(&mut self.parentage, Parentage::None) {
            Parentage::None | Parentage::Registered { .. } => {}
            Parentage::Pending(call) => {
                let Call { pending, sent } = *call;
                let verdict = pending.finish();
                let settled = inference::settle(self.record(), verdict, sent.as_ref());
                if let Some(counters) = &self.proxy.parent_outcomes {
                    counters.count(settled.outcome);
                }
                if let Some(sampling) = settled.sampling {
                    self.sampling = sampling;
                }
            }
        }
    }

    /// The span record, to fill in: the only reference to it until
    /// `finish`, so `make_mut` hands it out in place.
    fn record(&mut self) -> &mut Span {
        Arc::make_mut(&mut self.span)
    }

    pub fn http(&self) -> &HttpFacts {
        &self.span.http
    }

    pub fn http_mut(&mut self) -> &mut HttpFacts {
        &mut self.record().http
    }

    pub fn add_tag(&mut self, tag: Tag) {
        self.record().tags.push(tag);
    }

    pub fn add_response_bytes(&mut self, n: usize) {
        self.record().http.response_body_bytes += n as u64;
    }

    /// Reads `grpc-status` of a gRPC call (trailers, or the response
    /// headers of a Trailers-Only response); other requests ignore it.
    pub fn read_grpc_status(&mut self, fields: &impl FieldLookup) {
        if self.span.http.grpc.is_some()
            && let Some(value) = fields.field(&grpc::GRPC_STATUS)
            && let Some(call) = &mut self.record().http.grpc
        {
            call.read_status(value);
        }
    }

    /// Records the response head.
    pub fn set_status(&mut self, status: u16) {
        self.record().http.status = Some(status);
    }

    pub fn set_error(&mut self, error: impl Into<Cow<'static, str>>) {
        self.record().error = Some(error.into());
    }

    /// Ends the request: metrics, access log, and the span hand-off.
    pub fn finish(mut self, ending: Ending) {
        self.settle_parent();
        match ending {
            Ending::Complete | Ending::Dropped { complete: true } => {}
            Ending::UpstreamBodyError(message) => {
                // The head arrived but the body broke off (reset, tunnel error).
                self.proxy.listener.metrics.upstream_error("body");
                self.set_error(format!("upstream body failed: {message}"));
            }
            Ending::Dropped { complete: false } => self.add_tag(Tag {
                key: "tracehop.downstream_cancelled".into(),
                value: "true".into(),
            }),
        }
        let duration_us = self.timer.duration_us();
        let proxy = &self.proxy;
        let status = self.span.http.status.unwrap_or(502);
        proxy.listener.metrics.record_request(
            &self.span.http.method,
            status,
            duration_us as f64 / 1e6,
            self.served,
        );
        proxy.listener.metrics.in_flight.dec();
        if let Some(log) = &proxy.telemetry.access_log {
            self.log_access(log, status, duration_us);
        }
        if let Some(viewer) = &proxy.telemetry.summary_viewer {
            self.print_summary(viewer, status, duration_us);
        }
        let kept = if self.sampling.is_sampled() {
            None
        } else {
            let outcome = Outcome {
                status,
                upstream_failed: self.span.error.is_some(),
                grpc_failed: self.span.http.grpc_error(self.span.kind).is_some(),
                duration: Duration::from_micros(duration_us),
            };
            match proxy
                .telemetry
                .sampler
                .load()
                .keep(&outcome, Instant::now())
            {
                Some(reason) => Some(reason),
                None => return,
            }
        };
        let span = self.record();
        if let Some(reason) = kept {
            span.tags.push(Tag {
                key: "sampling.reason".into(),
                value: reason.tag().into(),
            });
        }
        span.duration_us = duration_us;
        span.http.detach();
        self.proxy.telemetry.sink.send(self.span);
    }

    /// `tracehop dev`: one line a person reads, with the trace one click away.
    fn print_summary(&self, viewer: &str, status: u16, duration_us: u64) {
        let span = &self.span;
        let route = match (&span.http.route, &span.http.target) {
            (Some(route), _) => route.to_string(),
            (None, Some(target)) => target.path().to_owned(),
            (None, None) => "/".to_owned(),
        };
        let to = match &span.remote.service_name {
            Some(remote) => format!("-> {remote} "),
            None => String::new(),
        };
        let error = span
            .error
            .as_deref()
            .map(|e| format!("  ({e})"))
            .unwrap_or_default();
        println!(
            "{to}{} {route} {status} {:.1} ms  {viewer}/trace/{}{error}",
            span.http.method,
            duration_us as f64 / 1000.0,
            span.trace_id,
        );
    }

    fn log_access(&self, log: &crate::access_log::AccessLog, status: u16, duration_us: u64) {
        let span = &self.span;
        log.record(&crate::access_log::Line {
            direction: self.proxy.direction(),
            method: span.http.method.as_str(),
            path: span.http.target.as_ref().map_or("/", |t| t.path()),
            status,
            duration_us,
            trace_id: span.trace_id,
            span_id: span.id,
            sampled: self.sampling.is_sampled(),
            error: span.error.as_deref(),
        });
    }
}
