//! Calls from one demo service to another.
//!
//! Owns [`Upstreams`]: the base URL of each dependency (in the real topology
//! that is the service's own sidecar outbound listener, e.g.
//! `http://127.0.0.1:15001`) and one pooled HTTP client shared by every call.
//! Each call copies the trace headers of the request being served
//! (see [`super::headers`]) unless propagation was switched off.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::DemoError;
use super::headers::copy_trace_headers;

/// How long a call may take in all; longer than the largest provokable delay.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest response body read from a dependency.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Why a call to a dependency produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// A call to a service the app did not declare (a programming error).
    #[error("{dependency} is not a dependency of this service")]
    NotADependency { dependency: &'static str },
    /// No connection, or it broke before a response head arrived.
    #[error("{dependency} unreachable: {message}")]
    Unreachable {
        dependency: &'static str,
        message: String,
    },
    /// No complete answer within [`CALL_TIMEOUT`].
    #[error("{dependency} did not answer within {CALL_TIMEOUT:?}")]
    Timeout { dependency: &'static str },
    /// The body broke off or exceeded [`MAX_BODY_BYTES`].
    #[error("{dependency} sent an unreadable body: {message}")]
    Body {
        dependency: &'static str,
        message: String,
    },
    /// The path does not make a valid URI.
    #[error("{dependency}: cannot build a request for {path}: {source}")]
    Request {
        dependency: &'static str,
        path: String,
        source: http::Error,
    },
}

impl CallError {
    /// The status a gateway answers with when this call failed.
    pub fn gateway_status(&self) -> StatusCode {
        match self {
            CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A dependency's complete answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// Where a dependency is reached.
#[derive(Debug)]
struct Base {
    name: &'static str,
    scheme: Scheme,
    authority: Authority,
}

/// The dependencies of one service and the client that calls them.
#[derive(Debug)]
pub struct Upstreams {
    client: Client<HttpConnector, Empty<Bytes>>,
    bases: Vec<Base>,
    propagate: bool,
}

impl Upstreams {
    /// Resolves each name in `dependencies` to its base URL in `configured`.
    pub fn new(
        app: &'static str,
        dependencies: &[&'static str],
        configured: &[(String, String)],
        propagate: bool,
    ) -> Result<Self, DemoError> {
        let bases = dependencies
            .iter()
            .map(|&name| {
                let (_, url) = configured
                    .iter()
                    .find(|(configured, _)| configured == name)
                    .ok_or(DemoError::MissingUpstream {
                        app,
                        dependency: name,
                    })?;
                parse_base(name, url)
            })
            .collect::<Result<_, _>>()?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            client,
            bases,
            propagate,
        })
    }

    /// `GET path_and_query` on `dependency`, carrying the trace headers of
    /// the request being served (`incoming`).
    pub async fn get(
        &self,
        dependency: &'static str,
        path_and_query: &str,
        incoming: &HeaderMap,
    ) -> Result<Reply, CallError> {
        let base = self
            .bases
            .iter()
            .find(|base| base.name == dependency)
            .ok_or(CallError::NotADependency { dependency })?;
        let uri = Uri::builder()
            .scheme(base.scheme.clone())
            .authority(base.authority.clone())
            .path_and_query(path_and_query)
            .build();
        let mut request = uri
            .and_then(|uri| Request::get(uri).body(Empty::new()))
            .map_err(|source| CallError::Request {
                dependency,
                path: path_and_query.to_owned(),
                source,
            })?;
        request.headers_mut().insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        if self.propagate {
            copy_trace_headers(incoming, request.headers_mut());
        }
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(dependency, request))
            .await
            .unwrap_or(Err(CallError::Timeout { dependency }))
    }

    async fn exchange(
        &self,
        dependency: &'static str,
        request: Request<Empty<Bytes>>,
    ) -> Result<Reply, CallError> {
        let response =
            self.client
                .request(request)
                .await
                .map_err(|error| CallError::Unreachable {
                    dependency,
                    // The client error's own text is only its kind; the cause
                    // (connection refused, reset, …) is in its source.
                    message: match error.source() {
                        Some(source) => format!("{error}: {source}"),
                        None => error.to_string(),
                    },
                })?;
        let status = response.status();
        let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|error| CallError::Body {
                dependency,
                message: error.to_string(),
            })?
            .to_bytes();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }
}

/// Checks a base URL: `http://host:port`, nothing after the authority.
fn parse_base(name: &'static str, url: &str) -> Result<Base, DemoError> {
    let bad = |reason: &str| DemoError::BadUpstreamUrl {
        dependency: name,
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|error: http::uri::InvalidUri| bad(&error.to_string()))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(bad("expected http://host:port"));
    };
    if scheme != &Scheme::HTTP {
        return Err(bad("only http is supported"));
    }
    let path = uri.path_and_query().map_or("", |path| path.as_str());
    if !path.is_empty() && path != "/" {
        return Err(bad("a base URL has no path or query"));
    }
    Ok(Base {
        name,
        scheme: scheme.clone(),
        authority: authority.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let table: &[(&str, Result<&str, &str>)] = &[
            ("http://127.0.0.1:15001", Ok("127.0.0.1:15001")),
            ("http://127.0.0.1:15001/", Ok("127.0.0.1:15001")),
            ("http://user-service:8080", Ok("user-service:8080")),
            ("https://127.0.0.1:15001", Err("only http is supported")),
            ("127.0.0.1:15001", Err("expected http://host:port")),
            ("/users", Err("expected http://host:port")),
            (
                "http://127.0.0.1:1/api",
                Err("a base URL has no path or query"),
            ),
            (
                "http://127.0.0.1:1?x=1",
                Err("a base URL has no path or query"),
            ),
            ("http://exa mple", Err("invalid uri character")),
        ];
        for (url, expected) in table {
            let got = parse_base("user-service", url);
            match (got, expected) {
                (Ok(base), Ok(authority)) => assert_eq!(base.authority.as_str(), *authority),
                (Err(DemoError::BadUpstreamUrl { reason, .. }), Err(expected)) => {
                    assert_eq!(reason, *expected, "{url}")
                }
                (got, _) => panic!("{url}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn every_dependency_needs_a_configured_url() {
        let configured = vec![("user-service".to_owned(), "http://127.0.0.1:1".to_owned())];
        let missing = Upstreams::new(
            "api-gateway",
            &["user-service", "order-service"],
            &configured,
            true,
        );
        assert!(matches!(
            missing,
            Err(DemoError::MissingUpstream {
                app: "api-gateway",
                dependency: "order-service"
            })
        ));
        let found = Upstreams::new("order-service", &["user-service"], &configured, true)
            .expect("user-service is configured");
        assert_eq!(found.bases.len(), 1);
    }

    #[tokio::test]
    async fn a_dependency_that_refuses_connections_is_unreachable() {
        let (_closed_socket, address) = crate::testing::closed_port();
        let configured = vec![("user-service".to_owned(), format!("http://{address}"))];
        let upstreams = Upstreams::new("order-service", &["user-service"], &configured, true)
            .expect("configured");
        let error = upstreams
            .get("user-service", "/users/1", &HeaderMap::new())
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, CallError::Unreachable { .. }), "{error:?}");
        assert_eq!(error.gateway_status(), StatusCode::BAD_GATEWAY);
        let error = upstreams
            .get("order-service", "/orders", &HeaderMap::new())
            .await
            .expect_err("not a dependency");
        assert!(matches!(error, CallError::NotADependency { .. }));
    }
}
