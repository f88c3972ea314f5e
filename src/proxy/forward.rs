//! Sending a request to the upstream over keep-alive connections.
//!
//! Every HTTP/1.1 request goes out through tracehop's own client
//! ([`crate::http1::client`]), on the connection kept with its downstream
//! connection when it has one ([`super::affinity`]), else on one from the
//! shared idle list (HTTP/2 downstreams, upgrades; the forward proxy keeps
//! a list per target). HTTP/2 requests go through hyper's HTTP/2 client;
//! `protocol: auto` sends gRPC over HTTP/2 (it needs trailers) and the
//! rest over HTTP/1.1. Which of these a request takes is
//! [`crate::http1::path::upstream`]'s one decision. For an `https://`
//! upstream both connect through TLS, offering ALPN `http/1.1` and `h2`
//! respectively (cleartext HTTP/2 uses prior knowledge). The connect
//! timeout gives 502, the response-head timeout 504, a stalled request
//! body 408 and a malformed one 400 (see [`upload`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::affinity::Http1Connections;
use super::body::UpstreamBody;
use super::error::ProxyError;
use super::error::UpstreamError;
use super::upload::{self, UploadBody};
use crate::config::{self, ProxyTimeouts, UpstreamProtocol, UpstreamUrl};
use crate::http1::client::Wire;
use crate::http1::path::{self, Forced, PoolReason, UpstreamFacts, UpstreamPath};
use crate::http1::server::Prefixed;
use crate::propagation::Added;
use crate::server::{ConnLocal, RequestBody};
use crate::span::grpc;
use crate::tls::{Alpn, ClientTls, HttpsConnector};

/// Idle pooled connections to the upstream are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One upstream and the clients that reach it.
pub struct Upstream {
    /// `None` for the forward proxy: each request names its own target
    /// (absolute-form request URI, RFC 9112 §3.2.2).
    authority: Option<Authority>,
    scheme: Scheme,
    /// Path prefix from the upstream URL (`""` when it is `/`).
    prefix: String,
    protocol: UpstreamProtocol,
    http2: Client<HttpsConnector, UploadBody>,
    /// HTTP/1.1 connections to the upstream: kept per downstream
    /// connection, or shared ([`Http1Connections`]).
    http1: Option<Arc<Http1Connections>>,
    /// The forward proxy's HTTP/1.1 connections, by target.
    targets: Option<Targets>,
    response_timeout: Duration,
    /// Longest pause in the downstream's request body.
    body_timeout: Duration,
    /// Longest pause in the upstream's response body.
    response_body_timeout: Duration,
    /// Paths forced for tests ([`crate::http1::path::Forced`]).
    forced: Forced,
}

/// The forward proxy's connections to the targets it was asked for.
struct Targets {
    connector: HttpsConnector,
    by_authority: Mutex<HashMap<Authority, Arc<Http1Connections>>>,
}

/// Targets the forward proxy keeps connections to, at most; past it the
/// list starts over (the allow-list keeps the set of targets small).
const MAX_TARGETS: usize = 256;

impl Targets {
    /// The connections to `authority` (an `http://` target).
    fn to(&self, authority: &Authority) -> Result<Arc<Http1Connections>, ProxyError> {
        let mut targets = self
            .by_authority
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(connections) = targets.get(authority) {
            return Ok(connections.clone());
        }
        let target = origin(Scheme::HTTP, authority.clone()).ok_or(ProxyError::BadTarget)?;
        if targets.len() >= MAX_TARGETS {
            targets.clear();
        }
        let connections = Http1Connections::new(self.connector.clone(), target, POOL_IDLE_TIMEOUT);
        targets.insert(authority.clone(), connections.clone());
        Ok(connections)
    }
}

/// `scheme://authority/`, what a connector dials.
fn origin(scheme: Scheme, authority: Authority) -> Option<Uri> {
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query("/")
        .build()
        .ok()
}

fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector
}

impl Upstream {
    /// Clients for `url`; `tls` is used when it is `https://`.
    pub fn new(
        url: &UpstreamUrl,
        protocol: UpstreamProtocol,
        timeouts: &ProxyTimeouts,
        tls: Option<&ClientTls>,
    ) -> Self {
        let connect = |alpn| HttpsConnector::new(connector(timeouts.upstream_connect), tls, alpn);
        let http2 = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http2_only(true)
            .timer(TokioTimer::new())
            .build(connect(Alpn::Http2));
        let scheme = match url.scheme {
            config::Scheme::Http => Scheme::HTTP,
            config::Scheme::Https => Scheme::HTTPS,
        };
        let http1 = origin(scheme.clone(), url.authority.clone())
            .map(|target| Http1Connections::new(connect(Alpn::Http1), target, POOL_IDLE_TIMEOUT));
        Self {
            authority: Some(url.authority.clone()),
            scheme,
            prefix: url.path.trim_end_matches('/').to_owned(),
            protocol,
            http2,
            http1,
            targets: None,
            response_timeout: timeouts.upstream_response,
            body_timeout: timeouts.request_body,
            response_body_timeout: timeouts.response_body,
            forced: Forced::default(),
        }
    }

    /// Sends every request the way `forced` says (tests).
    pub fn force(mut self, forced: Forced) -> Self {
        self.forced = forced;
        self
    }

    /// An upstream for the forward proxy: requests go where their
    /// absolute-form URI says (the allow-list was checked before), over HTTP/1.1.
    pub fn forward(timeouts: &ProxyTimeouts) -> Self {
        let placeholder = UpstreamUrl {
            scheme: crate::config::Scheme::Http,
            authority: Authority::from_static("forward-proxy:80"),
            path: "/".into(),
        };
        let connector = connector(timeouts.upstream_connect);
        Self {
            authority: None,
            http1: None,
            targets: Some(Targets {
                connector: HttpsConnector::new(connector, None, Alpn::Http1),
                by_authority: Mutex::new(HashMap::new()),
            }),
            ..Self::new(&placeholder, UpstreamProtocol::Http1, timeouts, None)
        }
    }

    /// Longest pause in a response body from this upstream.
    pub fn response_body_timeout(&self) -> Duration {
        self.response_body_timeout
    }

    /// `host:port` of the upstream, for spans and errors.
    pub fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

    /// The upstream URI for a downstream request.
    fn uri_for(&self, uri: &Uri) -> Result<Uri, ProxyError> {
        let Some(authority) = &self.authority else {
            // Forward proxy: the target is the absolute-form URI itself.
            return match (uri.scheme(), uri.authority()) {
                (Some(scheme), Some(_)) if *scheme == Scheme::HTTP => Ok(uri.clone()),
                _ => Err(ProxyError::BadTarget),
            };
        };
        let path_and_query = self.path_and_query(uri)?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ProxyError::BadTarget)
    }

    /// The request target's path and query under the upstream's path prefix.
    fn path_and_query(&self, uri: &Uri) -> Result<PathAndQuery, ProxyError> {
        let target = uri.path_and_query();
        match (self.prefix.is_empty(), target) {
            (true, Some(target)) => Ok(target.clone()),
            (true, None) => Ok(PathAndQuery::from_static("/")),
            (false, target) => {
                let rest = target.map_or("/", |t| t.as_str());
                PathAndQuery::try_from(format!("{}{rest}", self.prefix))
                    .map_err(|_| ProxyError::BadTarget)
            }
        }
    }

    /// Whether `request` goes out over HTTP/2. `auto` sends gRPC (HTTP/2
    /// with `content-type: application/grpc*`) as HTTP/2, since gRPC needs
    /// HTTP/2 end to end, and everything else as HTTP/1.1, which every app
    /// server speaks.
    fn use_http2(&self, request: &Request<RequestBody>) -> bool {
        match self.protocol {
            UpstreamProtocol::Auto => {
                request.version() == Version::HTTP_2 && grpc::is_grpc(request.headers())
            }
            UpstreamProtocol::Http1 => false,
            UpstreamProtocol::Http2 => true,
        }
    }

    /// The connection `request` takes to the upstream (the one decision,
    /// [`path::upstream`]).
    pub fn path_for(&self, request: &Request<RequestBody>, upgrade: bool) -> UpstreamPath {
        path::upstream(&UpstreamFacts {
            forward_proxy: self.authority.is_none(),
            http2_upstream: !upgrade && self.use_http2(request),
            sequential: request.version() <= Version::HTTP_11,
            upgrade,
            forced: self.forced,
        })
    }

    /// Sends `request` (headers already rewritten, and gaining the fields
    /// in `added`) over `path` and waits for the response head, at most
    /// the response timeout. `kept` is the downstream connection's store
    /// for its upstream connection.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn's future holds its arguments twice (a copy per request)"
    )]
    pub fn send(
        &self,
        mut request: Request<RequestBody>,
        mut added: Added,
        path: UpstreamPath,
        kept: &ConnLocal,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, ProxyError>> {
        async move {
            let http2 = path == UpstreamPath::Pooled(PoolReason::Http2);
            // An HTTP/2 request has no Host header (RFC 9113 §8.3.1: :authority);
            // an HTTP/1.1 upstream needs one (RFC 9112 §3.2), carrying the
            // original authority, or the upstream's for an HTTP/1.0 request
            // that named none.
            if !http2
                && !request.headers().contains_key(http::header::HOST)
                && let Some(host) = request.uri().authority().or(self.authority.as_ref())
                && let Ok(value) = HeaderValue::from_str(host.as_str())
            {
                request.headers_mut().insert(http::header::HOST, value);
            }
            // The forward proxy's upstream is the request's target.
            let target = match &self.authority {
                Some(_) => None,
                None => Some(self.uri_for(request.uri())?.authority().cloned()),
            }
            .flatten();
            let timeout = self.response_timeout;
            let sent = if http2 {
                // hyper's client writes the map: the new fields go in.
                for (name, value) in added.drain(..) {
                    request.headers_mut().append(name, value);
                }
                *request.uri_mut() = self.uri_for(request.uri())?;
                *request.version_mut() = Version::HTTP_2;
                let request = request.map(|body| UploadBody::new(body, self.body_timeout));
                match tokio::time::timeout(timeout, self.http2.request(request)).await {
                    Err(_) => Err(UpstreamError::Timeout),
                    Ok(Ok(response)) => Ok(response.map(Either::Left)),
                    Ok(Err(error)) if error.is_connect() => {
                        Err(UpstreamError::Connect(error.into()))
                    }
                    Ok(Err(error)) => Err(from_hyper(error)),
                }
            } else {
                // Origin form (RFC 9112 §3.2.1): the connection knows the host.
                *request.uri_mut() = Uri::from(self.path_and_query(request.uri())?);
                *request.version_mut() = Version::HTTP_11;
                let request = request.map(|body| UploadBody::new(body, self.body_timeout));
                let connections = match (&target, &self.targets, &self.http1) {
                    (Some(target), Some(targets), _) => targets.to(target)?,
                    (_, _, Some(connections)) => connections.clone(),
                    _ => return Err(ProxyError::BadTarget),
                };
                // Both wait at most the response timeout for the head: kept
                // connections on a timer of their own (see `affinity`).
                let response = match path {
                    UpstreamPath::Kept => connections.send(kept, request, &added, timeout).await,
                    UpstreamPath::Pooled(_) => {
                        connections.send_shared(request, &added, timeout).await
                    }
                };
                response.map(|response| response.map(Either::Right))
            };
            let upstream = || {
                self.authority
                    .as_ref()
                    .or(target.as_ref())
                    .map_or_else(String::new, ToString::to_string)
            };
            sent.map_err(|error| ProxyError::from_upstream(error, upstream(), timeout))
        }
    }
}

/// A failed HTTP/2 request as an [`UpstreamError`]: hyper's client wraps
/// a failure of the request body, which is found again here.
fn from_hyper(error: hyper_util::client::legacy::Error) -> UpstreamError {
    match upload::behind(&error).cloned() {
        Some(upload) => UpstreamError::Upload(upload),
        None => UpstreamError::Response(error.into()),
    }
}

/// The upstream's side of a `101 Switching Protocols` response: its
/// connection, now speaking the new protocol.
pub fn switched(response: &mut Response<UpstreamBody>) -> Option<Prefixed<Wire>> {
    match response.body_mut() {
        Either::Right(body) => body.take_switched(),
        // HTTP/2 upstreams never carry an HTTP/1.1 upgrade.
        Either::Left(_) => None,
    }
}
