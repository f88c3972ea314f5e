//! HTTP routing for the collector: span upload, the Zipkin v2 read API and
//! the viewer's assets.
//!
//! Steps for one request: match the path to a [`Route`] → check the method
//! (405 with `Allow` otherwise) → for `POST /api/v2/spans` pick the format
//! from `Content-Type` (JSON, or proto3 for `application/x-protobuf`), read
//! the body (size-limited, gunzipped when `Content-Encoding: gzip`) and ingest
//! it; `POST /v1/traces` goes to OTLP's ingest ([`super::otlp_http`]); else
//! answer the query from the store as JSON. Paths and shapes follow
//! `zipkin2-api.yaml` (basePath `/api/v2`).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;

use super::Collector;
use super::decode::{Format, IngestError, parse_trace_id};
use super::dependencies::DependencyLinker;
use super::model::Span;
use super::query::{Params, QueryRequest, TimeWindow};
use super::trace::fix_shared;
use super::viewer;
use crate::server::{Body, BoxError, full, text_response};

/// Largest span upload accepted, compressed or not (413 beyond).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Everything the collector answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'a> {
    Viewer,
    Asset(&'a viewer::Asset),
    Spans,
    /// `/v1/traces`, OTLP/HTTP's default path for traces.
    OtlpTraces,
    Services,
    RemoteServices,
    Traces,
    Trace(&'a str),
    TraceMany,
    Dependencies,
    AutocompleteKeys,
    AutocompleteValues,
    /// `/metrics`: the collector's own metrics, for Prometheus.
    Metrics,
    NotFound,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Self {
        if path == "/v1/traces" {
            return Route::OtlpTraces;
        }
        if path == "/metrics" {
            return Route::Metrics;
        }
        if let Some(api) = path.strip_prefix("/api/v2/") {
            return match api {
                "spans" => Route::Spans,
                "services" => Route::Services,
                "remoteServices" => Route::RemoteServices,
                "traces" => Route::Traces,
                "traceMany" => Route::TraceMany,
                "dependencies" => Route::Dependencies,
                "autocompleteKeys" => Route::AutocompleteKeys,
                "autocompleteValues" => Route::AutocompleteValues,
                _ => match api.strip_prefix("trace/") {
                    Some(id) if !id.is_empty() && !id.contains('/') => Route::Trace(id),
                    _ => Route::NotFound,
                },
            };
        }
        if path == "/"
            || path
                .strip_prefix("/trace/")
                .is_some_and(|id| !id.contains('/'))
        {
            return Route::Viewer;
        }
        viewer::asset(path).map_or(Route::NotFound, Route::Asset)
    }

    /// Methods this route answers, for the 405 `Allow` header.
    fn allow(self) -> &'static str {
        match self {
            Route::Spans => "GET, HEAD, POST",
            Route::OtlpTraces => "POST",
            _ => "GET, HEAD",
        }
    }
}

/// Answers one request; see the module docs for the steps.
pub async fn handle<B>(collector: &Collector, request: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let route = Route::of(parts.uri.path());
    let is_read = parts.method == Method::GET || parts.method == Method::HEAD;
    match route {
        Route::NotFound => text_response(StatusCode::NOT_FOUND, "not found\n"),
        Route::Spans if parts.method == Method::POST => {
            match read_upload(&parts.headers, body).await {
                Ok((format, bytes)) => ingest(collector, format, &bytes),
                Err(error) => ingest_error(&error),
            }
        }
        Route::OtlpTraces if parts.method == Method::POST => {
            super::otlp_http::handle(collector, &parts.headers, body).await
        }
        _ if is_read => read(collector, route, &Params::parse(parts.uri.query())),
        _ => method_not_allowed(route),
    }
}

/// 405 with the methods `route` answers.
fn method_not_allowed(route: Route<'_>) -> Response<Body> {
    let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(route.allow()));
    response
}

fn ingest(collector: &Collector, format: Format, body: &[u8]) -> Response<Body> {
    match collector.ingest_body(format, body) {
        Ok(_) => {
            let mut response = Response::new(crate::server::empty());
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
        Err(error) => ingest_error(&error),
    }
}

fn ingest_error(error: &IngestError) -> Response<Body> {
    tracing::debug!(%error, "span upload rejected");
    text_response(error_status(error), format!("{error}\n"))
}

/// The status that answers an upload refused for `error`.
pub fn error_status(error: &IngestError) -> StatusCode {
    match error {
        IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::UnsupportedEncoding(_) | IngestError::UnsupportedMediaType(_) => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The request's `Content-Type`, if any (one that is not text as such).
pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|media| media.to_str().unwrap_or("(not text)"))
}

/// Reads an upload body and the Zipkin format its `Content-Type` names.
async fn read_upload<B>(headers: &HeaderMap, body: B) -> Result<(Format, Bytes), IngestError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let format = Format::of(content_type(headers))?;
    Ok((format, read_body(headers, body).await?))
}

/// Reads an upload body within [`MAX_BODY_BYTES`], gunzipping it when
/// `Content-Encoding: gzip` says so.
pub async fn read_body<B>(headers: &HeaderMap, body: B) -> Result<Bytes, IngestError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(HeaderValue::to_str)
    {
        None => false,
        Some(Ok(coding)) if coding.eq_ignore_ascii_case("gzip") => true,
        Some(Ok(coding)) if coding.eq_ignore_ascii_case("identity") => false,
        Some(coding) => {
            let coding = coding.unwrap_or("(not text)").to_owned();
            return Err(IngestError::UnsupportedEncoding(coding));
        }
    };
    let collected = Limited::new(body, MAX_BODY_BYTES).collect().await;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(IngestError::TooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        Err(error) => return Err(IngestError::Body(error.to_string())),
    };
    if gzip {
        Ok(Bytes::from(gunzip(&bytes)?))
    } else {
        Ok(bytes)
    }
}

/// Decompresses at most [`MAX_BODY_BYTES`]; a larger result is refused so a
/// small "gzip bomb" cannot take the collector's memory.
fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, IngestError> {
    use std::io::Read;
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX) + 1;
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(IngestError::Gzip)?;
    if out.len() > MAX_BODY_BYTES {
        return Err(IngestError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(out)
}

/// Answers a GET route.
fn read(collector: &Collector, route: Route<'_>, params: &Params) -> Response<Body> {
    let now_ms = crate::span::now_micros() / 1000;
    let result = match route {
        Route::Viewer => return viewer::page(),
        Route::Metrics => return metrics(collector),
        Route::Asset(asset) => return viewer::serve(asset),
        Route::Services => Ok(collector.with_store(|store| json(&store.service_names()))),
        Route::Spans => required(params, "serviceName")
            .map(|service| collector.with_store(|store| json(&store.span_names(&service)))),
        Route::RemoteServices => required(params, "serviceName").map(|service| {
            collector.with_store(|store| json(&store.remote_service_names(&service)))
        }),
        Route::Traces => QueryRequest::from_params(params, now_ms)
            .map_err(|error| error.to_string())
            .map(|request| collector.with_store(|store| traces(store.query(&request)))),
        Route::Trace(id) => return trace(collector, id),
        Route::TraceMany => trace_many(collector, params),
        Route::Dependencies => TimeWindow::from_params(params, now_ms, true)
            .map_err(|error| error.to_string())
            .map(|window| collector.with_store(|store| dependencies(store, window))),
        Route::AutocompleteKeys => Ok(json(&[] as &[&str])),
        // No keys are configured for autocompletion, so every key has no values.
        Route::AutocompleteValues => required(params, "key").map(|_| json(&[] as &[&str])),
        Route::OtlpTraces => return method_not_allowed(route),
        Route::NotFound => return text_response(StatusCode::NOT_FOUND, "not found\n"),
    };
    match result {
        Ok(response) => response,
        Err(message) => text_response(StatusCode::BAD_REQUEST, format!("{message}\n")),
    }
}

/// The Prometheus text exposition format (version 0.0.4).
fn metrics(collector: &Collector) -> Response<Body> {
    let mut response = Response::new(full(collector.render_metrics()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

fn dependencies(store: &super::store::Store, window: TimeWindow) -> Response<Body> {
    let mut linker = DependencyLinker::default();
    for trace in store.in_window(window, None) {
        linker.put_trace(&trace);
    }
    json(&linker.links())
}

/// A required name parameter, lowercased as Zipkin does.
fn required(params: &Params, name: &str) -> Result<String, String> {
    params
        .get(name)
        .map(str::to_lowercase)
        .ok_or_else(|| format!("{name} is required"))
}

fn trace(collector: &Collector, id: &str) -> Response<Body> {
    let Some(trace_id) = parse_trace_id(id) else {
        return text_response(
            StatusCode::BAD_REQUEST,
            "traceId must be 16 or 32 hex characters\n",
        );
    };
    collector.with_store(|store| match store.trace(trace_id) {
        Some(spans) => json(&fix_shared(&spans)),
        None => text_response(StatusCode::NOT_FOUND, format!("trace {id} not found\n")),
    })
}

/// `GET /api/v2/traceMany?traceIds=a,b`: at least two ids, found ones only.
fn trace_many(collector: &Collector, params: &Params) -> Result<Response<Body>, String> {
    let list = required(params, "traceIds")?;
    let mut ids = list
        .split(',')
        .map(|id| parse_trace_id(id).ok_or_else(|| format!("invalid traceId {id:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    if ids.len() < 2 {
        return Err("traceIds needs at least two unique trace ids".to_owned());
    }
    Ok(
        collector
            .with_store(|store| traces(ids.iter().filter_map(|id| store.trace(*id)).collect())),
    )
}

/// A JSON list of traces, each as Zipkin's `Trace.merge` leaves it (shared
/// spans fixed up, see [`fix_shared`]).
fn traces(found: Vec<Vec<Span>>) -> Response<Body> {
    let fixed: Vec<_> = found.iter().map(|spans| fix_shared(spans)).collect();
    json(&fixed)
}

/// A 200 JSON response. Read endpoints allow any origin, as Zipkin's
/// server does by default, so browser tools on other ports can query them.
fn json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(full(bytes));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            response
        }
        Err(error) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the response failed: {error}\n"),
        ),
    }
}
