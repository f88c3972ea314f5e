//! The HTTP client that POSTs encoded batches to one collector.
//!
//! Owns the pooled connection to the collector and the translation of one
//! exchange into an [`Answer`] or a [`SendError`], by its exporter's rules:
//! which statuses are worth a retry ([`retryable`]), and what a success or
//! a refusal says (OTLP's partial success and `google.rpc.Status`). It does
//! not retry; the delivery loop decides what each outcome means. Every
//! upload carries `b3: 0` so that a traced collector (or a sidecar in front
//! of it) does not trace our own uploads (B3 README, "Sampling State": `0`
//! = deny).
//!
//! An `https://` collector is reached through the shared TLS connector
//! (`tls::HttpsConnector`) with the trust configured under `export.tls`;
//! the configured `export.headers` (e.g. `Authorization`) go on every
//! upload, their values marked sensitive and never logged.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use prost::Message;

use super::retry::parse_retry_after;
use crate::config::{Exporter, Scheme, UpstreamUrl};
use crate::otlp::{ExportTraceServiceResponse, RpcStatus};
use crate::tls::{Alpn, ClientTls, CollectorAccess, HttpsConnector};

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
    /// 2xx (Zipkin answers 202, OTLP 200): the spans are stored, but for
    /// `rejected` of them (OTLP's partial success), for the reason `message`.
    Accepted { rejected: u64, message: String },
    /// A status that will not improve (400 and other 4xx; 3xx, which is not
    /// followed; for OTLP also the 5xx it does not list as retryable):
    /// sending the same body again cannot succeed.
    Rejected { status: u16, message: String },
    /// A retryable status ([`retryable`]): try again later, not before
    /// `retry_after` if given.
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// A pooled HTTP client bound to one collector URL.
#[derive(Clone, Debug)]
pub struct CollectorClient {
    exporter: Exporter,
    client: Client<HttpsConnector, Full<Bytes>>,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl CollectorClient {
    /// The exporter and its URL, as logs name the collector
    /// (`zipkin http://collector:9411/api/v2/spans`).
    pub fn target(&self) -> String {
        format!("{} {}", self.exporter.label(), self.uri)
    }

    /// Builds the client of `exporter` for `url`; `timeout` bounds
    /// connecting.
    pub fn new(
        exporter: Exporter,
        url: &UpstreamUrl,
        timeout: Duration,
        access: CollectorAccess,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            exporter,
            client: build_client(url, timeout, access.tls)?,
            uri: collector_uri(url)?,
            headers: access.headers,
        })
    }

    /// The client of `exporter` for one address `addr` of `url`'s host
    /// (`export.resolve: dns`): it connects to `addr` but still says
    /// `url`'s host in `Host` (RFC 9110 §7.2) and checks it in TLS, as a
    /// client that resolved the name itself would.
    pub fn at_address(
        exporter: Exporter,
        url: &UpstreamUrl,
        addr: std::net::SocketAddr,
        timeout: Duration,
        mut access: CollectorAccess,
    ) -> Result<Self, ClientError> {
        let host = url.authority.host();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = match (url.scheme, access.tls.take()) {
            (Scheme::Https, None) => Some(load_default_tls(url)?),
            (_, tls) => tls,
        };
        let direct = UpstreamUrl {
            scheme: url.scheme,
            authority: addr
                .to_string()
                .parse()
                .map_err(|source: http::uri::InvalidUri| ClientError::InvalidUrl {
                    authority: url.authority.clone(),
                    path: url.path.clone(),
                    source: source.into(),
                })?,
            path: url.path.clone(),
        };
        let host_value = HeaderValue::from_str(url.authority.as_str())
            .expect("an authority is a valid header value");
        access.headers.retain(|(name, _)| name != HOST);
        access.headers.push((HOST, host_value));
        Ok(Self {
            exporter,
            client: build_client(&direct, timeout, tls.map(|tls| tls.naming(host)))?,
            uri: collector_uri(&direct)?,
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
            Ok(answer(self.exporter, parts.status, &parts.headers, &body))
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
        headers.insert(CONTENT_TYPE, content_type(self.exporter));
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
        (Scheme::Https, None) => Some(load_default_tls(url)?),
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

/// The TLS setting of an `https://` collector with no `tls` section.
fn load_default_tls(url: &UpstreamUrl) -> Result<ClientTls, ClientError> {
    ClientTls::load(None).map_err(|source| ClientError::Tls {
        authority: url.authority.clone(),
        source: Box::new(source),
    })
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

/// The media type of `exporter`'s uploads: Zipkin v2 JSON, or OTLP's
/// binary protobuf (OTLP specification, "Binary Protobuf Encoding").
fn content_type(exporter: Exporter) -> HeaderValue {
    HeaderValue::from_static(match exporter {
        Exporter::Zipkin => "application/json",
        Exporter::Otlp => "application/x-protobuf",
    })
}

/// Whether `status` is worth sending the same batch again. Zipkin: 429 and
/// any 5xx (a Zipkin collector says nothing finer). OTLP: exactly 429, 502,
/// 503 and 504; "all other 4xx or 5xx response status codes MUST NOT be
/// retried" (OTLP specification, "Retryable Response Codes").
pub fn retryable(exporter: Exporter, status: StatusCode) -> bool {
    match exporter {
        Exporter::Zipkin => status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
        Exporter::Otlp => matches!(status.as_u16(), 429 | 502..=504),
    }
}

/// Classifies a response (Zipkin API `POST /spans`: 202 accepted, 400 bad
/// spans; OTLP/HTTP: 200 with an `ExportTraceServiceResponse`, failures
/// with a `google.rpc.Status`).
fn answer(
    exporter: Exporter,
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Answer {
    if status.is_success() {
        return accepted(exporter, body);
    }
    if retryable(exporter, status) {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        return Answer::Unavailable {
            status: status.as_u16(),
            retry_after,
        };
    }
    let message = match exporter {
        Exporter::Otlp => RpcStatus::decode(body)
            .ok()
            .map(|status| status.message)
            .filter(|message| !message.is_empty()),
        Exporter::Zipkin => None,
    };
    let message = message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    Answer::Rejected {
        status: status.as_u16(),
        message: short(&message),
    }
}

/// A success: for OTLP, the partial success the body reports, if any (a
/// body that does not decode reports none).
fn accepted(exporter: Exporter, body: &[u8]) -> Answer {
    let partial = match exporter {
        Exporter::Otlp => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|response| response.partial_success),
        Exporter::Zipkin => None,
    };
    let (rejected, message) = partial.map_or((0, String::new()), |partial| {
        let rejected = u64::try_from(partial.rejected_spans).unwrap_or(0);
        (rejected, short(&partial.error_message))
    });
    Answer::Accepted { rejected, message }
}

/// A collector's message as kept for the log: trimmed and shortened.
fn short(message: &str) -> String {
    message.trim().chars().take(MAX_MESSAGE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted() -> Answer {
        Answer::Accepted {
            rejected: 0,
            message: String::new(),
        }
    }

    #[test]
    fn classifies_statuses_by_each_exporters_rules() {
        let mut headers = http::HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let later = |status| Answer::Unavailable {
            status,
            retry_after: Some(Duration::from_secs(7)),
        };
        let refused = |status: u16| Answer::Rejected {
            status,
            message: "bad span".into(),
        };
        // (status, Zipkin's answer, OTLP's answer)
        let cases = [
            (202, accepted(), accepted()),
            (200, accepted(), accepted()),
            (429, later(429), later(429)),
            (502, later(502), later(502)),
            (503, later(503), later(503)),
            (504, later(504), later(504)),
            (500, later(500), refused(500)),
            (501, later(501), refused(501)),
            (400, refused(400), refused(400)),
            (404, refused(404), refused(404)),
            (413, refused(413), refused(413)),
            (301, refused(301), refused(301)),
        ];
        for (status, zipkin, otlp) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            let body = b"  bad span\n";
            let zipkin_answer = answer(Exporter::Zipkin, status, &headers, body);
            assert_eq!(zipkin_answer, zipkin, "zipkin {status}");
            assert_eq!(
                answer(Exporter::Otlp, status, &headers, body),
                otlp,
                "otlp {status}"
            );
        }
    }

    #[test]
    fn otlp_reads_partial_success_and_rpc_status() {
        use crate::otlp::ExportTracePartialSuccess;
        let response = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: " 3 spans had no trace id ".into(),
            }),
        };
        let no_headers = http::HeaderMap::new();
        let ok = |body: &[u8]| answer(Exporter::Otlp, StatusCode::OK, &no_headers, body);
        assert_eq!(
            ok(&response.encode_to_vec()),
            Answer::Accepted {
                rejected: 3,
                message: "3 spans had no trace id".into()
            }
        );
        assert_eq!(ok(b""), accepted(), "an empty response is full success");
        assert_eq!(
            ok(b"\xff\xff"),
            accepted(),
            "an unreadable body reports nothing"
        );
        let status = RpcStatus {
            code: 3,
            message: "trace id must be 16 bytes".into(),
        };
        assert_eq!(
            answer(
                Exporter::Otlp,
                StatusCode::BAD_REQUEST,
                &no_headers,
                &status.encode_to_vec()
            ),
            Answer::Rejected {
                status: 400,
                message: "trace id must be 16 bytes".into()
            }
        );
        // Zipkin takes any 2xx body as full success.
        let zipkin = answer(
            Exporter::Zipkin,
            StatusCode::OK,
            &no_headers,
            &response.encode_to_vec(),
        );
        assert_eq!(zipkin, accepted());
    }

    #[test]
    fn long_messages_are_truncated() {
        let body = "é".repeat(1000);
        let Answer::Rejected { message, .. } = answer(
            Exporter::Zipkin,
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
