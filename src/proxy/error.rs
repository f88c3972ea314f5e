//! Proxy failures and the one function that turns them into responses.
//!
//! Every failure to get a response from the upstream becomes a short
//! plain-text answer with a status a client can act on, and an error span.

use std::time::Duration;

use http::StatusCode;

use super::upload::UploadError;
use crate::server::BoxError;

/// Why no response came back from the upstream: the one error every
/// upstream path returns (kept and shared HTTP/1.1 connections, hyper's
/// HTTP/2 client). `E` is the request body's error (the proxy's
/// [`super::upload::UploadError`]).
#[derive(Debug)]
pub enum UpstreamError<E = super::upload::UploadError> {
    /// No connection could be made (TCP or TLS).
    Connect(BoxError),
    /// No response head within the response timeout.
    Timeout,
    /// The connection or the upstream's response failed.
    Response(BoxError),
    /// The downstream's request body failed.
    Upload(E),
}

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream {upstream} unreachable: {source}")]
    Connect {
        upstream: String,
        #[source]
        source: BoxError,
    },
    #[error("upstream {upstream} sent no response within {timeout:?}")]
    Timeout { upstream: String, timeout: Duration },
    #[error("upstream {upstream} failed: {source}")]
    Upstream {
        upstream: String,
        #[source]
        source: BoxError,
    },
    #[error("request body stalled for {timeout:?}; upload to {upstream} aborted")]
    RequestBodyStalled { upstream: String, timeout: Duration },
    #[error("{source}; upload aborted")]
    RequestBodyMalformed {
        #[source]
        source: BoxError,
    },
    #[error(
        "request target is not a valid URI (the forward proxy needs http://host/path, or CONNECT host:port)"
    )]
    BadTarget,
    #[error("{target} is not in the forward proxy's allow-list")]
    Denied { target: String },
    #[error("forwarding loop: the request's Via already names {pseudonym}")]
    Loop { pseudonym: String },
}

impl ProxyError {
    /// What the downstream learns of an upstream failure; `upstream` names
    /// the upstream, `timeout` is the response timeout.
    pub fn from_upstream(error: UpstreamError, upstream: String, timeout: Duration) -> Self {
        match error {
            UpstreamError::Connect(source) => Self::Connect {
                upstream,
                source: with_causes(source),
            },
            UpstreamError::Timeout => Self::Timeout { upstream, timeout },
            UpstreamError::Response(source) => Self::Upstream {
                upstream,
                source: with_causes(source),
            },
            UpstreamError::Upload(UploadError::Stalled(timeout)) => {
                Self::RequestBodyStalled { upstream, timeout }
            }
            UpstreamError::Upload(malformed @ UploadError::Malformed(_)) => {
                Self::RequestBodyMalformed {
                    source: Box::new(malformed),
                }
            }
        }
    }

    /// The `kind` label of `tracehop_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Connect { .. } => "connect",
            ProxyError::Timeout { .. } => "timeout",
            ProxyError::Upstream { .. } => "protocol",
            ProxyError::RequestBodyStalled { .. } => "request_body_timeout",
            ProxyError::RequestBodyMalformed { .. } => "request_body_malformed",
            ProxyError::BadTarget => "bad_request",
            ProxyError::Denied { .. } => "denied",
            ProxyError::Loop { .. } => "loop",
        }
    }

    /// The only mapping from proxy errors to what the downstream sees.
    pub fn status_and_body(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::Connect { .. } => (StatusCode::BAD_GATEWAY, "upstream unreachable\n"),
            ProxyError::Upstream { .. } => (StatusCode::BAD_GATEWAY, "upstream failed\n"),
            ProxyError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
            ProxyError::RequestBodyStalled { .. } => {
                (StatusCode::REQUEST_TIMEOUT, "request body timed out\n")
            }
            ProxyError::RequestBodyMalformed { .. } => {
                (StatusCode::BAD_REQUEST, "malformed request body\n")
            }
            ProxyError::BadTarget => (StatusCode::BAD_REQUEST, "bad request target\n"),
            ProxyError::Denied { .. } => (
                StatusCode::FORBIDDEN,
                "forbidden: target not in the forward proxy allow-list\n",
            ),
            ProxyError::Loop { .. } => (
                StatusCode::LOOP_DETECTED,
                "loop detected: this request already passed this proxy\n",
            ),
        }
    }
}

/// `error` with its causes in its message (`outer: inner: ...`): hyper's
/// client errors say only "client error (SendRequest)" themselves, and
/// the span's `error` tag should say what actually went wrong.
pub fn with_causes(error: BoxError) -> BoxError {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    message.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_a_label_value_created_at_start() {
        let errors = [
            ProxyError::Timeout {
                upstream: String::new(),
                timeout: Duration::ZERO,
            },
            ProxyError::Connect {
                upstream: String::new(),
                source: "x".into(),
            },
            ProxyError::Upstream {
                upstream: String::new(),
                source: "x".into(),
            },
            ProxyError::RequestBodyStalled {
                upstream: String::new(),
                timeout: Duration::ZERO,
            },
            ProxyError::RequestBodyMalformed { source: "x".into() },
            ProxyError::BadTarget,
            ProxyError::Denied {
                target: String::new(),
            },
            ProxyError::Loop {
                pseudonym: String::new(),
            },
        ];
        for error in errors {
            assert!(
                crate::metrics::UPSTREAM_ERROR_KINDS.contains(&error.kind()),
                "{}",
                error.kind()
            );
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("client error (SendRequest)")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_join_the_message_once_each() {
        let inner = std::io::Error::other("invalid content-length parsed");
        let described = with_causes(Box::new(Outer(inner)));
        assert_eq!(
            described.to_string(),
            "client error (SendRequest): invalid content-length parsed"
        );
        let plain: BoxError = "refused".into();
        assert_eq!(with_causes(plain).to_string(), "refused");
    }
}
