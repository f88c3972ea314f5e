//! A fake upstream app that records what it received, and upstreams that
//! answer with a handler of a test's own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;

use super::{Stopper, bind, stopper};
use tracehop::http1::ResponseFields;
use tracehop::server::{self, Body, BoxError, RequestBody, ServerOptions, full};

/// Starts an upstream (HTTP/1.1 and HTTP/2 cleartext, on 127.0.0.1:0)
/// that answers every request with `handler`; it stops when the
/// [`Stopper`] is dropped.
pub async fn upstream_with<H, F, B>(handler: H) -> (SocketAddr, Stopper)
where
    H: Fn(Request<RequestBody>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + ResponseFields + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (listener, addr) = bind().await;
    let (stop, shutdown) = stopper();
    let handler = move |request, _conn| handler(request);
    tokio::spawn(server::serve(
        listener,
        ServerOptions::default(),
        handler,
        shutdown,
    ));
    (addr, stop)
}

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// The address the request came from (one per upstream connection).
    pub peer: SocketAddr,
}

/// Answers 200 `hello` to everything (or `/status/NNN` with that status)
/// and records each request.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: Stopper,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let (listener, addr) = bind().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = stopper();
        let record = seen.clone();
        let handler = move |request: http::Request<tracehop::server::RequestBody>,
                            conn: server::ConnInfo| {
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let status = parts
                    .uri
                    .path()
                    .strip_prefix("/status/")
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(200);
                record.lock().expect("lock").push(Seen {
                    method: parts.method,
                    uri: parts.uri,
                    version: parts.version,
                    headers: parts.headers,
                    body_len: body.len(),
                    peer: conn.peer,
                });
                let mut response: Response<Body> = Response::new(full("hello"));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
                response
            }
        };
        tokio::spawn(server::serve(
            listener,
            ServerOptions::default(),
            handler,
            shutdown,
        ));
        Self {
            addr,
            seen,
            _stop: stop,
        }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The last request received.
    pub fn last(&self) -> Seen {
        self.seen().pop().expect("upstream received a request")
    }
}
