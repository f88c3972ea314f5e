//! Test fixtures: demo apps on loopback, a fake upstream that records what
//! it receives, and small clients for both.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Context, DemoApp, DemoOptions, reply, serve_app};
use crate::server::{self, ServerOptions};

/// Every exchange in a test finishes well within this.
const DEADLINE: Duration = Duration::from_secs(10);

/// A context for calling an app's handler directly, with no latency.
pub fn context(app: DemoApp, upstreams: Vec<(String, String)>, propagate: bool) -> Context {
    let options = DemoOptions {
        upstreams,
        propagate,
        latency: false,
        database: None,
    };
    Context::new(app, &options).expect("test options are valid")
}

/// Runs one request through `context`'s handler, no socket involved.
pub async fn call(
    context: &Context,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (parts, ()) = request
        .body(())
        .expect("test requests are valid")
        .into_parts();
    let response = tokio::time::timeout(DEADLINE, context.handle(&parts))
        .await
        .expect("handler answers in time");
    json_of(response).await
}

/// `GET base + path` over loopback.
pub async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = Request::get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::new()).expect("test requests are valid");
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .expect("answer in time")
        .expect("the server answers");
    json_of(response).await
}

async fn json_of<B>(response: Response<B>) -> (StatusCode, Value)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let status = response.status();
    let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    assert_eq!(
        content_type.as_ref().map(|value| value.as_bytes()),
        Some(&b"application/json"[..]),
        "every answer is JSON"
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a complete body")
        .to_bytes();
    let json = serde_json::from_slice(&body).expect("a JSON body");
    (status, json)
}

/// A server running on loopback until stopped or dropped.
pub struct Running {
    pub address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn spawn<F>(serve: impl FnOnce(TcpListener, oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, stopped));
        Self {
            address,
            stop,
            task,
        }
    }

    /// `http://address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Shuts the server down and waits until its port is closed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("server stops in time")
            .expect("server task ends cleanly");
    }
}

/// Starts a demo app on loopback, with no latency.
pub async fn start(app: DemoApp, upstreams: Vec<(String, String)>, propagate: bool) -> Running {
    let options = DemoOptions {
        upstreams,
        propagate,
        latency: false,
        database: None,
    };
    Running::spawn(|listener, stopped| async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        serve_app(app, options, listener, shutdown)
            .await
            .expect("test options are valid");
    })
    .await
}

/// One request a [`Recorder`] received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
}

impl Recorded {
    /// Every value of header `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().expect("test header values are ASCII"))
            .collect()
    }
}

/// A fake upstream: records each request and answers with a fixed status and JSON body.
pub struct Recorder {
    pub address: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    running: Running,
}

impl Recorder {
    /// A recorder answering 200 with `body`.
    pub async fn start(body: Value) -> Self {
        Self::answering(StatusCode::OK, body).await
    }

    /// A recorder answering `status` with `body`.
    pub async fn answering(status: StatusCode, body: Value) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let running = Running::spawn(|listener, stopped| async move {
            let handler = move |request: Request<crate::server::RequestBody>,
                                _: server::ConnInfo| {
                let recorded = Recorded {
                    path: request.uri().to_string(),
                    headers: request.headers().clone(),
                };
                log.lock().expect("not poisoned").push(recorded);
                let response = reply::json(status, &body);
                async move { response }
            };
            let shutdown = async {
                let _ = stopped.await;
            };
            server::serve(listener, ServerOptions::default(), handler, shutdown).await;
        })
        .await;
        Self {
            address: running.address,
            requests,
            running,
        }
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("not poisoned").clone()
    }

    /// The path and query of everything received so far.
    pub fn paths(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .map(|request| request.path)
            .collect()
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}
