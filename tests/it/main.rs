//! Integration tests: the real sidecar in-process on 127.0.0.1:0 against
//! in-process fakes (upstream app, Zipkin collector) and the embedded collector.

mod admin;
mod cli;
mod collector;
mod collectors;
mod demo;
mod forward_proxy;
mod grpc;
mod hostile;
mod http1;
mod inference;
mod limits;
mod otlp;
mod proxy;
mod readme;
mod sampling;
mod shutdown;
mod streaming;
mod support;
mod tls;
mod tracing;
