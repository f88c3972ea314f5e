//! The HTTP client that POSTs encoded batches to the collector.
//!
//! Owns the pooled connection to the collector and the translation of one
//! exchange into an [`Answer`] or a [`SendError`]. It does not retry; the
//! delivery loop decides what each outcome means. Every upload carries
//! `b3: 0` so that a traced collector (or a sidecar in front of it) does not
//! trace our own uploads (B3 README, "Sampling State": `0` = deny).
//!
//! An `https://` collector is reached through the shared TLS connector
//! (`tls::HttpsConnector`) with the trust configured under `export.tls`;
//! the configured `export.headers` (e.g. `Authorization`) go on every
//! upload, their values marked sensitive and never logged.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::retry::parse_retry_after;
use crate::config::{Scheme, UpstreamUrl, ZipkinExport};
use crate::tls::{Alpn, ClientTls, HttpsConnector};

/// Largest collector response body read; enough for an error message.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest collector message kept for the log.
const MAX_MESSAGE_CHARS: usize = 256;
const B3: HeaderName = HeaderName::from_static("b3");
const USER_AGENT_VALUE: &str = concat!("tracehop/", env!("CARGO_PKG_VERSION"));

/// Why the client for the collector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("collector {authority}: cannot set up TLS: {source}")]
    Tls {
        authority: http::uri::Authority,
        #[source]
        source: Box<crate::tls::client::ClientTlsError>,
    },
    #[error("collector URL http://{authority}{path} is invalid: {source}")]
    InvalidUrl {
        authority: http::uri::Authority,
        path: String,
        #[source]
        source: http::Error,
    },
}

/// Why an export request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to the collector: {0}")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("export request failed: {0}")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("no answer from the collector within {0:?}")]
    Timeout(Duration),
}

/// What the collector answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx (Zipkin answers 202): the spans are stored.
    Accepted,
    /// 400 and other 4xx (and 3xx, which is not followed): sending the same
    /// body again cannot succeed.
    Rejected { status: u16, message: String },
    /// 429 or 5xx: try again later, not before `retry_after` if given.
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// What reaching the collector takes beyond its config section: the
/// loaded TLS setting and the resolved extra headers (`tls::load_material`).
#[derive(Clone, Debug, Default)]
pub struct CollectorAccess {
    /// For an `https://` collector; `None` uses the built-in webpki roots.
    pub tls: Option<ClientTls>,
    /// Sent on every upload; values are sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A pooled HTTP client bound to one collector URL.
#[derive(Clone, Debug)]
pub struct CollectorClient {
    client: Client<HttpsConnector, Full<Bytes>>,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl CollectorClient {
    /// Builds the client for `config.url`.
    pub fn new(config: &ZipkinExport, access: CollectorAccess) -> Result<Self, ClientError> {
        Ok(Self {
            client: build_client(&config.url, config.timeout, access.tls)?,
            uri: collector_uri(&config.url)?,
            headers: access.headers,
        })
    }

    /// POSTs one encoded batch and reads the answer, all within `timeout`.
    pub async fn send(
        &self,
        body: Bytes,
        gzip: bool,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let request = self.request(body, gzip);
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                if error.is_connect() {
                    SendError::Connect(error)
                } else {
                    SendError::Request(error)
                }
            })?;
            let (parts, body) = response.into_parts();
            // Read the body even when it is ignored, so the connection goes
            // back to the pool; a broken body does not change the status.
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok(answer(parts.status, &parts.headers, &body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    fn request(&self, body: Bytes, gzip: bool) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(B3, HeaderValue::from_static("0"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in &self.headers {
            headers.insert(name, value.clone());
        }
        request
    }
}

/// The one place the connection to the collector is configured.
fn build_client(
    url: &UpstreamUrl,
    timeout: Duration,
    tls: Option<ClientTls>,
) -> Result<Client<HttpsConnector, Full<Bytes>>, ClientError> {
    let tls = match (url.scheme, tls) {
        (Scheme::Https, None) => {
            Some(ClientTls::load(None).map_err(|source| ClientError::Tls {
                authority: url.authority.clone(),
                source: Box::new(source),
            })?)
        }
        (_, tls) => tls,
    };
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(timeout));
    http.set_nodelay(true);
    let connector = HttpsConnector::new(http, tls.as_ref(), Alpn::Http1);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        // One batch is in flight at a time: one idle connection is enough.
        .pool_max_idle_per_host(1)
        .build(connector))
}

fn collector_uri(url: &UpstreamUrl) -> Result<Uri, ClientError> {
    Uri::builder()
        .scheme(match url.scheme {
            Scheme::Http => http::uri::Scheme::HTTP,
            Scheme::Https => http::uri::Scheme::HTTPS,
        })
        .authority(url.authority.clone())
        .path_and_query(url.path.as_str())
        .build()
        .map_err(|source| ClientError::InvalidUrl {
            authority: url.authority.clone(),
            path: url.path.clone(),
            source,
        })
}

/// Classifies a response (Zipkin API `POST /spans`: 202 accepted, 400 bad
/// spans). 429 and 5xx mean "later"; other statuses will not improve.
fn answer(status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Answer {
    if status.is_success() {
        return Answer::Accepted;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        return Answer::Unavailable {
            status: status.as_u16(),
            retry_after,
        };
    }
    let message = String::from_utf8_lossy(body);
    Answer::Rejected {
        status: status.as_u16(),
        message: message.trim().chars().take(MAX_MESSAGE_CHARS).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let mut headers = http::HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let seven = Some(Duration::from_secs(7));
        let cases = [
            (202, Answer::Accepted),
            (200, Answer::Accepted),
            (
                429,
                Answer::Unavailable {
                    status: 429,
                    retry_after: seven,
                },
            ),
            (
                503,
                Answer::Unavailable {
                    status: 503,
                    retry_after: seven,
                },
            ),
            (
                500,
                Answer::Unavailable {
                    status: 500,
                    retry_after: seven,
                },
            ),
        ];
        for (status, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(answer(status, &headers, b""), expected, "{status}");
        }
        for status in [400, 404, 413, 301] {
            let status = StatusCode::from_u16(status).unwrap();
            let rejected = answer(status, &headers, b"  bad span\n");
            assert_eq!(
                rejected,
                Answer::Rejected {
                    status: status.as_u16(),
                    message: "bad span".into()
                }
            );
        }
    }

    #[test]
    fn long_messages_are_truncated() {
        let body = "é".repeat(1000);
        let Answer::Rejected { message, .. } = answer(
            StatusCode::BAD_REQUEST,
            &http::HeaderMap::new(),
            body.as_bytes(),
        ) else {
            panic!("400 is a rejection");
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn collector_uris_keep_the_scheme() {
        let url = UpstreamUrl {
            scheme: Scheme::Https,
            authority: http::uri::Authority::from_static("zipkin:9411"),
            path: "/api/v2/spans".into(),
        };
        assert!(build_client(&url, Duration::from_secs(1), None).is_ok());
        assert_eq!(
            collector_uri(&url).unwrap(),
            "https://zipkin:9411/api/v2/spans"
        );
        let http = UpstreamUrl {
            scheme: Scheme::Http,
            ..url
        };
        assert_eq!(
            collector_uri(&http).unwrap(),
            "http://zipkin:9411/api/v2/spans"
        );
    }
}
