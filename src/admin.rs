//! The admin listener: `/metrics`, `/healthz`, `/readyz`.
//!
//! Owns nothing but a view of the metrics registry and the readiness flag,
//! both handed in by `app`. Admin requests are never traced: probes and
//! scrapes would otherwise drown real traffic.
//!
//! - `/metrics`: Prometheus text exposition format 0.0.4.
//! - `/healthz`: liveness; 200 while the process serves.
//! - `/readyz`: readiness; 503 from the moment shutdown begins, so
//!   Kubernetes removes the pod from its Service endpoints while in-flight
//!   requests drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, Request, Response, StatusCode};

use crate::metrics::Metrics;
use crate::server::{Body, full, text_response};

/// Whether the sidecar wants traffic. Cheap to clone; shared with `app`.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// State the admin handler reads.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
}

impl Admin {
    /// Answers one admin request.
    pub fn handle<B>(&self, request: &Request<B>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
            response.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("GET, HEAD"),
            );
            return response;
        }
        match request.uri().path() {
            "/metrics" => {
                let mut response = Response::new(full(self.metrics.render()));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                );
                response
            }
            "/healthz" | "/livez" => text_response(StatusCode::OK, "ok\n"),
            "/readyz" if self.readiness.is_ready() => text_response(StatusCode::OK, "ready\n"),
            "/readyz" => text_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
            "/" => text_response(
                StatusCode::OK,
                "tracehop admin: /metrics /healthz /readyz\n",
            ),
            _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn get(admin: &Admin, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(()).unwrap();
        let response = admin.handle(&request);
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn endpoints() {
        let admin = Admin {
            metrics: Arc::new(Metrics::new()),
            readiness: Readiness::default(),
        };
        assert_eq!(get(&admin, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&admin, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        admin.readiness.set(true);
        assert_eq!(get(&admin, "/readyz").await.0, StatusCode::OK);
        let (status, text) = get(&admin, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("tracehop_build_info"));
        assert_eq!(get(&admin, "/nope").await.0, StatusCode::NOT_FOUND);
        let post = Request::post("/metrics").body(()).unwrap();
        assert_eq!(admin.handle(&post).status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
