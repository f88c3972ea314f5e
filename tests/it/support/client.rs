//! A small HTTP client for tests: HTTP/1.1 or HTTP/2 prior knowledge.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled client speaking one protocol.
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

/// A response read to the end.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Client {
    pub fn http1() -> Self {
        Self {
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn http2() -> Self {
        Self {
            inner: HyperClient::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    /// Sends a request and returns the raw response (body not read).
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Response<hyper::body::Incoming> {
        self.inner.request(request).await.expect("request succeeds")
    }

    /// GET with extra headers; reads the whole body.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut builder = Request::get(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self
            .send(builder.body(Full::default()).expect("request"))
            .await;
        read(response).await
    }
}

/// Reads a response to the end.
pub async fn read(response: Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}
