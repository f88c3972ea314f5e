//! tracehop: a sidecar HTTP proxy that adds distributed tracing to services
//! that have none.
//!
//! (Crate documentation: Layout, Request flow, Glossary, Error strategy — filled in below.)

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod collector;
pub mod config;
pub mod demo;
pub mod export;
pub mod metrics;
pub mod propagation;
pub mod proxy;
pub mod sampling;
pub mod server;
pub mod span;
pub mod tls;
