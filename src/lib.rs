//! tracehop: a sidecar HTTP proxy that adds distributed tracing to services
//! that have none.
//!
//! # Layout
//!
//! Modules depend downwards only; nothing flows back up.
//!
//! | module | owns |
//! |---|---|
//! | [`app`] | wiring from config, every long-lived task, the shutdown order, signals and live reload, each command's entry point, the demo topology |
//! | [`proxy`] | one request top to bottom: listeners' handler, forwarding, error responses |
//! | [`postgres`] | the `protocol: postgres` outbound route: the wire relay, the literal sanitiser, one span per query |
//! | [`admin`] | `/metrics`, `/healthz`, `/readyz` |
//! | [`collector`] | the embedded Zipkin-compatible collector and trace viewer; its tail sampling and memory-bounded store |
//! | [`demo`] | the three demo services (plain handlers, no tracing code) |
//! | [`export`] | the span queues, batching, Zipkin JSON and OTLP encoding, upload with retry |
//! | [`sampling`] | sampling decisions |
//! | [`propagation`] | W3C Trace Context and B3 headers |
//! | [`config`] | YAML -> validated types |
//! | [`metrics`] | the Prometheus registry (a value, never a global) |
//! | [`server`] | the HTTP server loop every listener uses, and hyper's side of it |
//! | [`http1`] | every HTTP/1.1 rule once, which path serves a request, the server connection and the upstream client |
//! | [`otlp`] | OpenTelemetry's OTLP trace messages (prost), shared by the exporter and the collector |
//! | [`inference`] | the in-flight register and the rules that infer an outbound call's parent when the app copies no headers |
//! | [`span`] | ids, trace context, the finished span record, clocks, the gRPC call rules |
//!
//! # Request flow
//!
//! For each request an inbound or outbound listener accepts
//! ([`proxy::handle`]): extract the trace context -> sample -> start the span
//! -> inject the span's context and rewrite headers -> forward to the
//! upstream -> finish when the response body ends -> hand the span off with
//! a non-blocking `try_send`. With parent inference on, each inbound
//! request is in the sidecar's in-flight register until its response has
//! ended, and an outbound call without trace context gets a parent when
//! timing proves it ([`inference`]). Each exporter (Zipkin, OTLP) picks the
//! collector of the span's trace (one of several, by rendezvous hashing of
//! the trace id), and each collector's task batches spans and posts them;
//! the request path never waits for them. A postgres
//! route relays the database protocol instead and ends a span per query
//! the same way ([`postgres`]).
//!
//! # Glossary
//!
//! - **downstream**: the caller of the service (the client of the sidecar).
//! - **upstream**: what the sidecar forwards to: the app (inbound) or the
//!   remote service (outbound).
//! - **collector**: an endpoint spans are exported to (Zipkin v2 or OTLP/HTTP);
//!   an exporter may have several, each trace going whole to one of them.
//! - **inbound** listener: in front of the app; records SERVER spans.
//! - **outbound** listener: the app's calls go out through it; records
//!   CLIENT spans.
//!
//! # Error strategy
//!
//! Each module has a small `thiserror` enum named for what failed, with the
//! context needed to act on it (address, YAML path, header). Configuration
//! problems are all gathered before failing ([`config::ConfigErrors`]); the
//! binary maps them to exit code 64. Upstream failures become 502/504 in
//! exactly one place ([`proxy::ProxyError::status_and_body`]) and an error
//! span. Telemetry failures (full queue, collector down) are counted in
//! metrics and logged at a limited rate, never surfaced to requests. Input
//! from the network never panics: header, body and config parsing return
//! errors.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod app;
pub mod collector;
pub mod config;
pub mod demo;
pub mod export;
pub mod http1;
pub mod inference;
pub mod metrics;
pub mod otlp;
pub mod postgres;
pub mod propagation;
pub mod proxy;
pub mod sampling;
pub mod server;
pub mod span;
pub mod tls;

#[cfg(test)]
mod testing;
