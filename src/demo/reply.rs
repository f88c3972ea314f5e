//! JSON responses of the demo services.
//!
//! Every answer, errors included, is a JSON document with
//! `content-type: application/json`; errors are `{"error": "…"}`.

use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::server::{Body, full};

/// A response with `value` serialised as its JSON body.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_json_type(status, bytes),
        // Only reachable with a non-string map key; the demo types have none.
        Err(error) => with_json_type(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(&format!("cannot serialise the response: {error}")),
        ),
    }
}

/// An error response: `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    with_json_type(status, error_body(message))
}

/// 405 for anything but `GET`.
pub fn method_not_allowed() -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported");
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
    response
}

/// A response built from bytes that already are JSON (passed through from a dependency).
pub fn raw(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: bytes::Bytes,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, content_type);
    }
    response
}

fn error_body(message: &str) -> Vec<u8> {
    serde_json::json!({ "error": message })
        .to_string()
        .into_bytes()
}

fn with_json_type(status: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    raw(
        status,
        Some(HeaderValue::from_static("application/json")),
        bytes.into(),
    )
}
