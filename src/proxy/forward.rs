//! Sending a request to the upstream over keep-alive connections.
//!
//! HTTP/1.1 requests from HTTP/1.x downstreams go over the connection kept
//! with their downstream connection ([`super::affinity`]). Everything else
//! (HTTP/2 downstreams, upgrades, the forward proxy) uses pooled clients:
//! one HTTP/1.1 and one HTTP/2 client for one upstream; `protocol:
//! auto` sends gRPC over HTTP/2 (it needs trailers) and the rest over
//! HTTP/1.1. For an `https://` upstream both connect through TLS, the
//! HTTP/1.1 client offering ALPN `http/1.1` and the HTTP/2 client `h2`
//! (cleartext HTTP/2 uses prior knowledge). The connect timeout gives 502,
//! the response-head timeout 504, a stalled request body 408 (see [`upload`]).

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::affinity::{Failure, Http1Connections};
use super::body::UpstreamBody;
use super::error::{self, ProxyError};
use super::upload::{self, UploadBody, UploadFault};
use crate::config::{self, ProxyTimeouts, UpstreamProtocol, UpstreamUrl};
use crate::http1::path::{self, Forced, PoolReason, UpstreamFacts, UpstreamPath};
use crate::http1::semantics::{self, MAX_RESPONSE_HEAD};
use crate::propagation::Added;
use crate::server::{ConnLocal, RequestBody};
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
    http1: Client<HttpsConnector, UploadBody>,
    http2: Client<HttpsConnector, UploadBody>,
    /// HTTP/1.1 connections kept per downstream connection (reverse proxy).
    kept: Option<Arc<Http1Connections>>,
    response_timeout: Duration,
    /// Longest pause in the downstream's request body.
    body_timeout: Duration,
    /// Longest pause in the upstream's response body.
    response_body_timeout: Duration,
    /// Paths forced for tests ([`crate::http1::path::Forced`]).
    forced: Forced,
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
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // The response head limit of the kept connections, for hyper's.
            .http1_max_buf_size(MAX_RESPONSE_HEAD);
        let connect = |alpn| HttpsConnector::new(connector(timeouts.upstream_connect), tls, alpn);
        let http1 = builder.build(connect(Alpn::Http1));
        let http2 = builder
            .http2_only(true)
            .timer(TokioTimer::new())
            .build(connect(Alpn::Http2));
        let scheme = match url.scheme {
            config::Scheme::Http => Scheme::HTTP,
            config::Scheme::Https => Scheme::HTTPS,
        };
        let target = Uri::builder()
            .scheme(scheme.clone())
            .authority(url.authority.clone())
            .path_and_query("/")
            .build()
            .ok();
        let kept = match (protocol, target) {
            (UpstreamProtocol::Http2, _) | (_, None) => None,
            (_, Some(target)) => Some(Http1Connections::new(
                connect(Alpn::Http1),
                target,
                POOL_IDLE_TIMEOUT,
            )),
        };
        Self {
            authority: Some(url.authority.clone()),
            scheme,
            prefix: url.path.trim_end_matches('/').to_owned(),
            protocol,
            http1,
            http2,
            kept,
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
        Self {
            authority: None,
            kept: None,
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
                request.version() == Version::HTTP_2
                    && request
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
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
    pub async fn send(
        &self,
        mut request: Request<RequestBody>,
        mut added: Added,
        path: UpstreamPath,
        kept: &ConnLocal,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
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
        let direct = match path {
            UpstreamPath::Kept => self.kept.as_ref(),
            UpstreamPath::Pooled(_) => None,
        };
        if direct.is_none() {
            // hyper's clients write the map: the new fields go in.
            for (name, value) in added.drain(..) {
                request.headers_mut().append(name, value);
            }
        }
        *request.uri_mut() = match direct {
            // Origin form (RFC 9112 §3.2.1): the connection knows the host.
            Some(_) => Uri::from(self.path_and_query(request.uri())?),
            None => self.uri_for(request.uri())?,
        };
        // The forward proxy's upstream is the request's target.
        let target = match &self.authority {
            Some(_) => None,
            None => request.uri().authority().cloned(),
        };
        *request.version_mut() = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let request = request.map(|body| UploadBody::new(body, self.body_timeout));
        // Both wait at most the response timeout for the head: kept
        // connections on a timer of their own (see `affinity`).
        let sent = match direct {
            Some(connections) => connections
                .send(kept, request, &added, self.response_timeout)
                .await
                .map(|response| response.map(Either::Right)),
            None => {
                let client = if http2 { &self.http2 } else { &self.http1 };
                match tokio::time::timeout(self.response_timeout, client.request(request)).await {
                    Err(_) => Err(Failure::Timeout),
                    Ok(Ok(response)) if head_too_large(&response) => Err(Failure::Request(
                        format!("upstream response head exceeds {MAX_RESPONSE_HEAD} bytes").into(),
                    )),
                    Ok(Ok(response)) => Ok(response.map(Either::Left)),
                    Ok(Err(error)) if error.is_connect() => Err(Failure::Connect(error.into())),
                    Ok(Err(error)) => Err(Failure::Request(error.into())),
                }
            }
        };
        let upstream = || {
            self.authority
                .as_ref()
                .or(target.as_ref())
                .map_or_else(String::new, ToString::to_string)
        };
        match sent {
            Err(Failure::Timeout) => Err(ProxyError::Timeout {
                upstream: upstream(),
                timeout: self.response_timeout,
            }),
            Err(Failure::Connect(source)) => Err(ProxyError::Connect {
                upstream: upstream(),
                source: error::with_causes(source),
            }),
            Err(Failure::Request(source)) => match upload::fault(&*source) {
                Some(UploadFault::Stalled(timeout)) => Err(ProxyError::RequestBodyStalled {
                    timeout,
                    upstream: upstream(),
                }),
                Some(UploadFault::Malformed) => Err(ProxyError::RequestBodyMalformed {
                    source: error::with_causes(source),
                }),
                None => Err(ProxyError::Upstream {
                    upstream: upstream(),
                    source: error::with_causes(source),
                }),
            },
            Ok(response) => Ok(response),
        }
    }
}

/// Whether a response hyper's client read has a head over the limit the
/// kept connections enforce: hyper bounds its read buffer, not the head
/// (a head that arrives in one read can exceed it).
fn head_too_large<B>(response: &Response<B>) -> bool {
    let fields = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
    semantics::field_section_size(fields) > MAX_RESPONSE_HEAD
}
