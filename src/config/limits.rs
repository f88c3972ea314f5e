//! Timeouts and limits of the proxying listeners.
//!
//! Each listener kind has its own `timeouts:` and `limits:` sections, as a
//! proxy such as Envoy sets them per listener and cluster: `inbound`,
//! `outbound` (the defaults of every outbound route, which a route's own
//! sections override field by field) and `outbound.forward_proxy`. None
//! inherits the values configured for another; every one starts from the
//! built-in defaults below.

use std::time::Duration;

use super::problems::Problems;
use super::raw::{RawLimits, RawTimeouts};
use super::types::{ProxyLimits, ProxyTimeouts};

/// The built-in timeouts of every listener kind.
pub(super) const DEFAULT_TIMEOUTS: ProxyTimeouts = ProxyTimeouts {
    header_read: Duration::from_secs(10),
    idle: Duration::from_secs(60),
    request_body: Duration::from_secs(10),
    response_body: Duration::from_secs(300),
    // Above the kernel's first SYN retransmission (1 s, RFC 6298 §2):
    // a connect that loses one SYN is slow, not failed.
    upstream_connect: Duration::from_secs(5),
    upstream_response: Duration::from_secs(15),
};

/// The built-in limits of every listener kind.
pub(super) const DEFAULT_LIMITS: ProxyLimits = ProxyLimits {
    max_header_bytes: 64 * 1024,
    max_connections: 10_000,
    max_concurrent_streams: 256,
};

/// The `timeouts:` section at `path`; a field not given is `base`'s.
pub(super) fn timeouts(
    path: &str,
    raw: Option<RawTimeouts>,
    base: &ProxyTimeouts,
    p: &mut Problems,
) -> ProxyTimeouts {
    let raw = raw.unwrap_or_default();
    let mut field = |key: &str, value: Option<String>, base: Duration| {
        p.positive_duration(&format!("{path}.{key}"), value.as_deref(), base)
    };
    ProxyTimeouts {
        header_read: field("header_read", raw.header_read, base.header_read),
        idle: field("idle", raw.idle, base.idle),
        request_body: field("request_body", raw.request_body, base.request_body),
        response_body: field("response_body", raw.response_body, base.response_body),
        upstream_connect: field(
            "upstream_connect",
            raw.upstream_connect,
            base.upstream_connect,
        ),
        upstream_response: field(
            "upstream_response",
            raw.upstream_response,
            base.upstream_response,
        ),
    }
}

/// The `limits:` section at `path`; a field not given is `base`'s.
pub(super) fn limits(
    path: &str,
    raw: Option<RawLimits>,
    base: &ProxyLimits,
    p: &mut Problems,
) -> ProxyLimits {
    let raw = raw.unwrap_or_default();
    let mut field = |key: &str, value: Option<usize>, base: usize| {
        p.at_least_one(&format!("{path}.{key}"), value, base)
    };
    let max_header_bytes = field(
        "max_header_bytes",
        raw.max_header_bytes,
        base.max_header_bytes,
    );
    let max_connections = field("max_connections", raw.max_connections, base.max_connections);
    let streams = field(
        "max_concurrent_streams",
        raw.max_concurrent_streams.map(|n| n as usize),
        base.max_concurrent_streams as usize,
    );
    ProxyLimits {
        max_header_bytes,
        max_connections,
        // Read from a u32 or the u32 base, so it fits.
        max_concurrent_streams: u32::try_from(streams).unwrap_or(u32::MAX),
    }
}
