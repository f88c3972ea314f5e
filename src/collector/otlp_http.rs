//! `POST /v1/traces`: OTLP/HTTP ingest, so an OpenTelemetry SDK or
//! Collector can export straight to the embedded collector.
//!
//! Steps (OTLP specification, "OTLP/HTTP"): the encoding from
//! `Content-Type` (`application/x-protobuf` or `application/json`; 415
//! otherwise) → the body, size-limited and gunzipped as for Zipkin uploads
//! → decode and store ([`Collector::ingest_otlp`]) → answer 200 with an
//! `ExportTraceServiceResponse` in the request's encoding, its
//! `partial_success` set when spans were left out; a body that does not
//! decode is a 400 with a `google.rpc.Status` (413 when too large), also in
//! the request's encoding.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use prost::Message;
use serde_json::json;

use super::Collector;
use super::api::{content_type, error_status, read_body};
use super::decode::IngestError;
use super::decode::otlp::Encoding;
use crate::otlp::{ExportTracePartialSuccess, ExportTraceServiceResponse, RpcStatus};
use crate::server::{Body, BoxError, full, text_response};

/// `google.rpc.Code`s of the error answers (not read by OTLP clients, which
/// go by the HTTP status, but kept meaningful).
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;

/// Answers one `POST /v1/traces`.
pub async fn handle<B>(collector: &Collector, headers: &HeaderMap, body: B) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let encoding = match Encoding::of(content_type(headers)) {
        Ok(encoding) => encoding,
        Err(error) => {
            tracing::debug!(%error, "OTLP upload rejected");
            return text_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "use application/x-protobuf or application/json (OTLP/HTTP)\n",
            );
        }
    };
    let stored = match read_body(headers, body).await {
        Ok(bytes) => collector.ingest_otlp(encoding, &bytes),
        Err(error) => Err(error),
    };
    match stored {
        Ok(stored) => {
            let partial = (stored.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(stored.rejected).unwrap_or(i64::MAX),
                error_message: stored.first_problem.unwrap_or_default(),
            });
            success(
                encoding,
                &ExportTraceServiceResponse {
                    partial_success: partial,
                },
            )
        }
        Err(error) => failure(encoding, &error),
    }
}

/// 200 with `response` in `encoding` (proto3 JSON: lowerCamelCase, int64
/// as a string, default values left out).
fn success(encoding: Encoding, response: &ExportTraceServiceResponse) -> Response<Body> {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => match &response.partial_success {
            Some(partial) => json!({"partialSuccess": {
                "rejectedSpans": partial.rejected_spans.to_string(),
                "errorMessage": partial.error_message,
            }}),
            None => json!({}),
        }
        .to_string()
        .into_bytes(),
    };
    encoded(StatusCode::OK, encoding, body)
}

/// The error answer for `error`: its status, with a `google.rpc.Status`.
fn failure(encoding: Encoding, error: &IngestError) -> Response<Body> {
    tracing::debug!(%error, "OTLP upload rejected");
    let status = error_status(error);
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        RESOURCE_EXHAUSTED
    } else {
        INVALID_ARGUMENT
    };
    let message = error.to_string();
    let body = match encoding {
        Encoding::Protobuf => RpcStatus { code, message }.encode_to_vec(),
        Encoding::Json => json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    };
    encoded(status, encoding, body)
}

fn encoded(status: StatusCode, encoding: Encoding, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.media_type()),
    );
    response
}

#[cfg(test)]
#[path = "otlp_http_tests.rs"]
mod tests;
