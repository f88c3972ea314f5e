//! Sending a request to the upstream through a pooled keep-alive client.
//!
//! Owns one HTTP/1.1 and one HTTP/2 client for one upstream; `protocol:
//! auto` sends gRPC over HTTP/2 (it needs trailers) and the rest over
//! HTTP/1.1. For an `https://` upstream both connect through TLS, the
//! HTTP/1.1 client offering ALPN `http/1.1` and the HTTP/2 client `h2`
//! (cleartext HTTP/2 uses prior knowledge). The connect timeout gives 502,
//! the response-head timeout 504, a stalled request body 408 (see [`upload`]).

use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::ProxyError;
use super::upload::{self, UploadBody};
use crate::config::{self, ProxyTimeouts, UpstreamProtocol, UpstreamUrl};
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
    response_timeout: Duration,
    /// Longest pause in the downstream's request body.
    body_timeout: Duration,
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
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        let connect = |alpn| HttpsConnector::new(connector(timeouts.upstream_connect), tls, alpn);
        let http1 = builder.build(connect(Alpn::Http1));
        let http2 = builder
            .http2_only(true)
            .timer(TokioTimer::new())
            .build(connect(Alpn::Http2));
        Self {
            authority: Some(url.authority.clone()),
            scheme: match url.scheme {
                config::Scheme::Http => Scheme::HTTP,
                config::Scheme::Https => Scheme::HTTPS,
            },
            prefix: url.path.trim_end_matches('/').to_owned(),
            protocol,
            http1,
            http2,
            response_timeout: timeouts.upstream_response,
            body_timeout: timeouts.request_body,
        }
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
            ..Self::new(&placeholder, UpstreamProtocol::Http1, timeouts, None)
        }
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
        let target = uri.path_and_query();
        let path_and_query = match (self.prefix.is_empty(), target) {
            (true, Some(target)) => target.clone(),
            (true, None) => PathAndQuery::from_static("/"),
            (false, target) => {
                let rest = target.map_or("/", |t| t.as_str());
                PathAndQuery::try_from(format!("{}{rest}", self.prefix))
                    .map_err(|_| ProxyError::BadTarget)?
            }
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ProxyError::BadTarget)
    }

    /// Whether `request` goes out over HTTP/2. `auto` sends gRPC (HTTP/2
    /// with `content-type: application/grpc*`) as HTTP/2, since gRPC needs
    /// HTTP/2 end to end, and everything else as HTTP/1.1, which every app
    /// server speaks.
    fn use_http2(&self, request: &Request<Incoming>) -> bool {
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

    /// Sends `request` (headers already rewritten) and waits for the
    /// response head, at most the response timeout.
    pub async fn send(
        &self,
        mut request: Request<Incoming>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, ProxyError> {
        let http2 = !upgrade && self.use_http2(&request);
        // An HTTP/2 request has no Host header (RFC 9113 §8.3.1: :authority);
        // an HTTP/1.1 upstream needs one, carrying the original authority.
        if !http2
            && !request.headers().contains_key(http::header::HOST)
            && let Some(host) = request.uri().authority()
            && let Ok(value) = HeaderValue::from_str(host.as_str())
        {
            request.headers_mut().insert(http::header::HOST, value);
        }
        *request.uri_mut() = self.uri_for(request.uri())?;
        let upstream = || {
            request
                .uri()
                .authority()
                .map_or_else(String::new, |a| a.to_string())
        };
        let upstream = upstream();
        *request.version_mut() = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let client = if http2 { &self.http2 } else { &self.http1 };
        let request = request.map(|body| UploadBody::new(body, self.body_timeout));
        match tokio::time::timeout(self.response_timeout, client.request(request)).await {
            Err(_) => Err(ProxyError::Timeout {
                upstream,
                timeout: self.response_timeout,
            }),
            Ok(Err(source)) if source.is_connect() => Err(ProxyError::Connect {
                upstream,
                source: source.into(),
            }),
            Ok(Err(source)) => match upload::stalled(&source) {
                Some(stall) => Err(ProxyError::RequestBodyStalled {
                    timeout: stall.0,
                    upstream,
                }),
                None => Err(ProxyError::Upstream { upstream, source }),
            },
            Ok(Ok(response)) => Ok(response),
        }
    }
}
