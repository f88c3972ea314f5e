//! The proxy: one request, top to bottom.
//!
//! Each listener (inbound, or one outbound route) owns a [`Proxy`]; the
//! server loop calls [`handle`] for every request, which runs these steps:
//!
//! 1. **extract** the downstream's trace context (W3C / B3, configured
//!    precedence); an outbound call without one may take the only inbound
//!    request in flight as its parent ([`crate::inference`]);
//! 2. **sample**: B3 debug, the parent's decision, the first matching rule,
//!    else the root sampler (see [`crate::sampling`]);
//! 3. **start span**: keep the trace id (or start a trace), new span id, start clocks;
//! 4. **inject** the span's context for the upstream, rewrite hop-by-hop and
//!    `X-Forwarded-*` headers (new fields listed apart, see
//!    [`propagation::Outgoing`]);
//! 5. **forward** over the HTTP/1.1 connection kept with the downstream
//!    connection ([`crate::http1::client`]), or a pooled one for HTTP/2,
//!    upgrades and the forward proxy (502 unreachable, 504 timeout);
//! 6. **finish** when the response body ends (the `body` module);
//! 7. **hand off** the span with a non-blocking `try_send` to the exporter,
//!    when sampled or kept for its outcome (failed or slow).
//!
//! Inbound listeners record SERVER spans, and with parent inference on
//! hold their request in the sidecar's register until it has ended;
//! outbound routes record CLIENT spans whose remote service is the route
//! name, and settle an inferred parent when the call ends. Nothing here waits on
//! telemetry or logs per request except the optional access log.

mod affinity;
mod allow;
mod body;
mod connect;
mod error;
mod flight;
mod forward;
mod headers;
mod pause;
mod route;
mod upgrade;
mod upload;
mod via;

pub use body::{ResponseBody, UpstreamBody};
pub use error::ProxyError;
pub use forward::Upstream;
pub use via::{Via, instance_id};

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use prometheus::IntCounter;

use crate::config::{AllowTarget, CaptureConfig, PropagationConfig, RouteTemplate};
use crate::export::SpanSink;
use crate::http1::FieldLookup;
use crate::http1::semantics::{self, ConnectionOptions};
use crate::inference::Register;
use crate::metrics::{ParentOutcomes, ProxyMetrics};
use crate::propagation::{self, Added, Extracted, Outgoing, Seen};
use crate::sampling::{LiveSampler, RequestFacts};
use crate::server::{ConnInfo, RequestBody};
use crate::span::{Endpoint, GrpcCall, HttpFacts, Kind, SpanContext, SpanId, Tag, TraceId};
use body::TracedBody;
use flight::InFlight;
use headers::RequestFields;

/// Everything one listener needs to proxy and trace: what the sidecar's
/// listeners share, and this listener's own part.
pub struct Proxy {
    pub telemetry: Telemetry,
    pub listener: Listener,
    /// `tracehop_trace_context_total`, resolved once per format.
    formats_seen: [IntCounter; 4],
    /// `tracehop_inferred_parents_total` of an outbound listener with
    /// inference on, resolved once.
    parent_outcomes: Option<ParentOutcomes>,
}

/// What a listener forwards to.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Always the configured upstream (inbound listener, outbound routes).
    Reverse,
    /// Wherever the request says, if the allow-list permits (forward proxy).
    Forward {
        allow: Vec<AllowTarget>,
        /// `CONNECT` tunnels permitted (to allowed targets only).
        connect: bool,
        /// Dial timeout for `CONNECT` tunnels.
        connect_timeout: std::time::Duration,
    },
}

/// What every listener of one sidecar shares.
#[derive(Clone)]
pub struct Telemetry {
    pub local_service: Arc<str>,
    pub propagation: PropagationConfig,
    pub sampler: LiveSampler,
    pub sink: SpanSink,
    /// The access log, when on (`log.access_log` and the log filter).
    pub access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// `tracehop dev`: a summary line per request on stdout, with the
    /// trace's URL under this viewer.
    pub summary_viewer: Option<Arc<str>>,
    /// The sidecar's in-flight register; `None` when `inference.parents`
    /// is `off` (nothing is registered or inferred, at no cost).
    pub register: Option<Arc<Register>>,
}

/// One listener's own settings.
pub struct Listener {
    pub kind: Kind,
    /// Outbound routes: the remote service's name.
    pub remote_service: Option<Arc<str>>,
    pub upstream: Upstream,
    pub metrics: ProxyMetrics,
    pub routes: Vec<RouteTemplate>,
    pub capture: CaptureConfig,
    pub mode: Mode,
    /// This listener's `Via` entry, for loop detection.
    pub via: Via,
}

impl Proxy {
    /// Builds one listener's proxy and pre-resolves its counters.
    pub fn new(telemetry: Telemetry, listener: Listener) -> Self {
        let formats_seen = ["w3c", "b3", "none", "invalid"]
            .map(|format| listener.metrics.context_format_counter(format));
        let parent_outcomes = match (listener.kind, &telemetry.register) {
            (Kind::Client, Some(_)) => {
                // The forward proxy's targets are unbounded: one label for all.
                let route = listener
                    .remote_service
                    .as_deref()
                    .unwrap_or("forward_proxy");
                Some(listener.metrics.parent_outcomes(route))
            }
            _ => None,
        };
        Self {
            telemetry,
            listener,
            formats_seen,
            parent_outcomes,
        }
    }

    fn direction(&self) -> &'static str {
        match self.listener.kind {
            Kind::Server => "inbound",
            Kind::Client => "outbound",
        }
    }

    fn count_format(&self, seen: Seen) {
        let i = match seen {
            Seen::W3c => 0,
            Seen::B3Single | Seen::B3Multi => 1,
            Seen::None => 2,
            Seen::Invalid => 3,
        };
        self.formats_seen[i].inc();
    }
}

/// Proxies one request. Never fails: upstream problems become 502/504.
///
/// With parent inference on, an inbound request is in the sidecar's
/// register while it is proxied, and an outbound call without context may
/// take the only request in flight as its parent before sampling (see
/// [`crate::inference`]); the rest is settled when the call ends.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future holds its arguments twice (a copy per request)"
)]
pub fn handle(
    proxy: Arc<Proxy>,
    mut request: Request<RequestBody>,
    conn: ConnInfo,
) -> impl Future<Output = Response<ResponseBody>> {
    async move {
        proxy.listener.metrics.in_flight.inc();
        let target = forward_target(&proxy, &request);
        let fields = RequestFields::of(request.headers());
        let mut extracted = extract(&proxy, &request, fields);
        let call = begin_call(&proxy, &mut extracted);
        let context = sample(&proxy, &request, &extracted);
        let remote_service = remote_service(&proxy, target.as_ref());
        let parent = extracted.parent;
        let mut flight = start_span(
            &proxy,
            &request,
            &conn,
            &context,
            parent,
            remote_service,
            fields,
        );
        flight.link_parent(&proxy, &context, call);
        if let Some(early) = refuse_or_tunnel(&proxy, &request, target, fields.proxy, &conn) {
            return answer_early(&proxy, request, flight, early, &conn).await;
        }
        let (added, upgrade) = inject(
            &proxy,
            &mut request,
            fields,
            &conn,
            &flight,
            &context,
            &extracted,
        );
        let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let path = route(&proxy, &request, upgrade, &flight);
        // Step 5, awaited here: the upstream's future is a few KiB, and a
        // wrapping future would copy it once more per request.
        let sent = proxy
            .listener
            .upstream
            .send(request, added, path, &conn.kept)
            .await;
        finish(&proxy, flight, sent, downstream_upgrade, &conn)
    }
}

/// Forward proxy: where the request wants to go, if it may.
fn forward_target(
    proxy: &Proxy,
    request: &Request<RequestBody>,
) -> Option<Result<(String, u16), ProxyError>> {
    match &proxy.listener.mode {
        Mode::Reverse => None,
        Mode::Forward { allow, .. } => Some(allow::check(allow, request)),
    }
}

/// Step 1: the downstream's trace context, counted by format.
fn extract(proxy: &Proxy, request: &Request<RequestBody>, fields: RequestFields) -> Extracted {
    let extracted = propagation::extract_known(
        request.headers(),
        fields.context,
        &proxy.telemetry.propagation,
    );
    proxy.count_format(extracted.seen);
    if proxy.listener.kind == Kind::Client
        && extracted.parent.is_none()
        && let Some(route) = &proxy.listener.remote_service
    {
        proxy.listener.metrics.untraced_outbound(route);
    }
    extracted
}

/// Step 1, continued, for outbound calls with parent inference on: notes
/// the inbound requests in flight, and when the app sent no context and
/// only one is in flight, takes it as the parent (the context sent
/// downstream then continues its trace).
fn begin_call(proxy: &Proxy, extracted: &mut Extracted) -> Option<flight::Call> {
    let (Kind::Client, Some(register)) = (proxy.listener.kind, &proxy.telemetry.register) else {
        return None;
    };
    let pending = register.begin_call();
    let sent = extracted.parent;
    if sent.is_none() {
        extracted.parent = pending.at_start();
    }
    Some(flight::Call { pending, sent })
}

/// Step 2: the sampling decision, and the span's context with it.
fn sample(proxy: &Proxy, request: &Request<RequestBody>, extracted: &Extracted) -> SpanContext {
    let parent = extracted.parent;
    let incoming = parent.map_or(extracted.sampling_only, |p| p.sampling);
    let trace_id = parent.map_or_else(TraceId::random, |p| p.trace_id);
    let facts = RequestFacts {
        method: request.method(),
        path: request.uri().path(),
        headers: request.headers(),
    };
    let now = std::time::Instant::now();
    let decision = proxy
        .telemetry
        .sampler
        .load()
        .decide(incoming, trace_id, &facts, now);
    SpanContext {
        trace_id,
        span_id: SpanId::random(),
        sampling: decision.sampling,
        random: parent.is_none_or(|p| p.random),
    }
}

/// The span's remote service: the forward proxy's target, else the route's.
fn remote_service(
    proxy: &Proxy,
    target: Option<&Result<(String, u16), ProxyError>>,
) -> Option<Arc<str>> {
    match target {
        Some(Ok((host, _))) => Some(Arc::from(host.as_str())),
        _ => proxy.listener.remote_service.clone(),
    }
}

/// Step 4: hop-by-hop fields out, `X-Forwarded-*` and the span's context
/// in. New fields are listed apart (`added`); the upstream client writes
/// them (see [`Outgoing`]). Also says whether the request is an upgrade.
fn inject(
    proxy: &Proxy,
    request: &mut Request<RequestBody>,
    fields: RequestFields,
    conn: &ConnInfo,
    flight: &InFlight,
    context: &SpanContext,
    extracted: &Extracted,
) -> (Added, bool) {
    let upgrade = fields.upgrade() && is_upgrade(request);
    let via = proxy.listener.via.entry(request.version());
    let headers = request.headers_mut();
    let present = fields.proxy;
    headers::remove_hop_by_hop(headers, present, upgrade);
    let mut added = Added::with_capacity(7);
    let mut out = Outgoing::new(headers, Some(&mut added));
    let http = flight.http();
    headers::add_forwarded(
        &mut out,
        present,
        &conn.peer_value,
        http.scheme,
        http.host.as_ref(),
    );
    headers::add_via(&mut out, present, via);
    propagation::inject_to(
        &mut out,
        fields.context,
        context,
        extracted,
        &proxy.telemetry.propagation,
    );
    (added, upgrade)
}

/// Step 5's choice: the path to the upstream ([`Upstream::path_for`]),
/// logged at debug level with the server path that read the request.
fn route(
    proxy: &Proxy,
    request: &Request<RequestBody>,
    upgrade: bool,
    flight: &InFlight,
) -> crate::http1::path::UpstreamPath {
    let path = proxy.listener.upstream.path_for(request, upgrade);
    tracing::debug!(
        path = flight.served.label(),
        fallback = flight.served.reason(),
        upstream_path = path.label(),
        "forwarding"
    );
    path
}

/// Steps 6 and 7: the response goes downstream in a body that finishes
/// the span when it ends and hands it off (see [`body`]); an upgrade's
/// tunnel opens; a failure becomes a local answer.
fn finish(
    proxy: &Proxy,
    mut flight: InFlight,
    sent: Result<Response<UpstreamBody>, ProxyError>,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => return local_error(proxy, flight, error),
    };
    flight.set_status(response.status().as_u16());
    flight.read_grpc_status(&response);
    capture_headers(&mut flight, &response, false);
    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(downstream)) = (switching, downstream_upgrade)
        && let Some(upstream) = forward::switched(&mut response)
    {
        upgrade::tunnel(&conn.tunnels, downstream, upstream);
    }
    headers::remove_hop_by_hop_response(response.headers_mut(), switching);
    let pause = proxy.listener.upstream.response_body_timeout();
    response.map(|body| TracedBody::new(Either::Left(body), flight).with_pause_limit(pause))
}

/// Answers a request refused before forwarding, or opens its `CONNECT` tunnel.
async fn answer_early(
    proxy: &Arc<Proxy>,
    request: Request<RequestBody>,
    flight: InFlight,
    early: Early,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    match early {
        Early::Refuse(error) => local_error(proxy, flight, error),
        Early::Tunnel(host, port, timeout) => {
            connect::open(proxy, request, flight, &host, port, timeout, &conn.tunnels).await
        }
    }
}

/// A request answered before forwarding.
enum Early {
    Refuse(ProxyError),
    Tunnel(String, u16, std::time::Duration),
}

/// A request that looped back (its `Via` names this listener: 508), the
/// forward-proxy checks, and `CONNECT`: refused unless this is a forward
/// proxy with tunnels enabled and the target is allowed.
fn refuse_or_tunnel(
    proxy: &Proxy,
    request: &Request<RequestBody>,
    target: Option<Result<(String, u16), ProxyError>>,
    present: u16,
    conn: &ConnInfo,
) -> Option<Early> {
    let via = &proxy.listener.via;
    if present & headers::VIA != 0 && via.looped(request.headers()) {
        tracing::warn!(
            peer = %conn.peer,
            uri = %request.uri(),
            via = via.pseudonym(),
            "refused a request that already passed this listener (its Via names it): a forwarding loop"
        );
        return Some(Early::Refuse(ProxyError::Loop {
            pseudonym: via.pseudonym().to_owned(),
        }));
    }
    let is_connect = request.method() == http::Method::CONNECT;
    let tunnel_timeout = match proxy.listener.mode {
        Mode::Forward {
            connect: true,
            connect_timeout,
            ..
        } => Some(connect_timeout),
        _ => None,
    };
    match target {
        None if is_connect => Some(Early::Refuse(ProxyError::BadTarget)),
        None => None,
        Some(Err(error)) => {
            tracing::warn!(peer = %conn.peer, uri = %request.uri(), %error, "forward proxy refused a request");
            Some(Early::Refuse(error))
        }
        Some(Ok((host, port))) if is_connect && tunnel_timeout.is_none() => {
            tracing::warn!(peer = %conn.peer, target = %format!("{host}:{port}"), "forward proxy refused CONNECT: tunnels are disabled");
            Some(Early::Refuse(ProxyError::Denied {
                target: format!("{host}:{port}"),
            }))
        }
        Some(Ok((host, port))) if is_connect => Some(Early::Tunnel(
            host,
            port,
            tunnel_timeout.unwrap_or_default(),
        )),
        Some(Ok(_)) => None,
    }
}

/// Answers for an upstream failure and marks the span.
fn local_error(proxy: &Proxy, mut flight: InFlight, error: ProxyError) -> Response<ResponseBody> {
    let (status, text) = error.status_and_body();
    proxy.listener.metrics.upstream_error(error.kind());
    tracing::debug!(%error, "upstream request failed");
    flight.set_status(status.as_u16());
    flight.set_error(error.to_string());
    let mut response = Response::new(TracedBody::new(
        Either::Right(Full::new(Bytes::from_static(text.as_bytes()))),
        flight,
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether a request that carries `Upgrade` asks for one: only HTTP/1.1
/// upgrades (RFC 9110 §7.8).
fn is_upgrade(request: &Request<RequestBody>) -> bool {
    let connection = request.headers().get_all(http::header::CONNECTION).iter();
    let options = ConnectionOptions::of(connection.map(http::HeaderValue::as_bytes));
    semantics::wants_upgrade(request.version() != http::Version::HTTP_11, options, true)
}

/// Step 3: the in-flight record with the request's facts.
fn start_span(
    proxy: &Arc<Proxy>,
    request: &Request<RequestBody>,
    conn: &ConnInfo,
    context: &SpanContext,
    parent: Option<SpanContext>,
    remote_service: Option<Arc<str>>,
    fields: RequestFields,
) -> InFlight {
    let headers = request.headers();
    let uri = request.uri();
    let host = headers.get(http::header::HOST).cloned().or_else(|| {
        uri.authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    });
    let request_body_bytes = fields
        .content_length
        .then(|| headers.get(http::header::CONTENT_LENGTH))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let remote = match proxy.listener.kind {
        Kind::Server => Endpoint {
            service_name: None,
            addr: Some(conn.peer),
        },
        Kind::Client => Endpoint {
            service_name: remote_service,
            addr: None,
        },
    };
    let http = HttpFacts {
        method: request.method().clone(),
        target: uri.path_and_query().cloned(),
        route: route::match_route(&proxy.listener.routes, uri.path()),
        // A TLS connection is `https` whatever the listener's default.
        scheme: if conn.tls.is_some() { "https" } else { "http" },
        host,
        version: request.version(),
        user_agent: headers.get(http::header::USER_AGENT).cloned(),
        status: None,
        request_body_bytes,
        response_body_bytes: 0,
        grpc: fields
            .content_type
            .then(|| GrpcCall::of_request(headers))
            .flatten(),
    };
    let served = request.body().served_by();
    let mut flight = InFlight::start(
        proxy,
        context,
        parent.map(|p| p.span_id),
        http,
        remote,
        served,
    );
    if proxy.listener.capture.query
        && let Some(query) = uri.query()
    {
        flight.add_tag(Tag {
            key: "url.query".into(),
            value: query.to_owned().into(),
        });
    }
    if let Some(tls) = &conn.tls {
        for tag in tls.tags() {
            flight.add_tag(tag);
        }
    }
    capture_headers(&mut flight, headers, true);
    flight
}

/// Records allow-listed header values as tags.
fn capture_headers(flight: &mut InFlight, headers: &impl FieldLookup, request: bool) {
    let names = if request {
        &flight.proxy.listener.capture.request_headers
    } else {
        &flight.proxy.listener.capture.response_headers
    };
    if names.is_empty() {
        return;
    }
    let prefix = if request {
        "http.request.header."
    } else {
        "http.response.header."
    };
    let mut tags = Vec::new();
    for name in names {
        if let Some(value) = headers.field(name) {
            tags.push(Tag {
                key: format!("{prefix}{name}").into(),
                value: String::from_utf8_lossy(value).into_owned().into(),
            });
        }
    }
    for tag in tags {
        flight.add_tag(tag);
    }
}
