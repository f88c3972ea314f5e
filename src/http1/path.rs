//! Which implementation serves a request, decided in one place each for
//! the downstream and the upstream side, with the reason.
//!
//! Downstream, every HTTP/1.1 connection starts on this module's server
//! connection ([`super::server`]), which serves plain requests in the
//! connection's own task. [`downstream`] names the first request that needs
//! more (a streamed or chunked upload, `Expect`, an upgrade, `CONNECT`,
//! HTTP/1.0, trailers) and why; that request and the rest of its
//! connection are then served by hyper. HTTP/2 is always hyper's.
//!
//! Upstream, every HTTP/1.1 request goes out through [`super::client`]:
//! over the connection kept with its downstream connection, or, in the
//! cases [`upstream`] names, over one from a shared idle list (`pooled`);
//! HTTP/2 requests through hyper's HTTP/2 client.
//!
//! Either way the request carries its path ([`ServedBy`]) to the proxy,
//! which logs it and counts it in `tracehop_requests_total{path,fallback}`.

use super::semantics::BodyLength;

/// Which server implementation read a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServedBy {
    /// This crate's HTTP/1.1 connection.
    Direct,
    /// hyper's server, and why.
    Hyper(Fallback),
}

/// Why hyper serves a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The connection speaks HTTP/2 (prior knowledge or ALPN `h2`).
    Http2,
    Http10,
    Connect,
    Upgrade,
    /// `Expect: 100-continue`: the client waits before sending the body.
    Expect,
    /// A chunked request body.
    Chunked,
    /// `TE: trailers`: the response may carry trailers.
    Trailers,
    /// The body did not arrive with the head (a streamed upload).
    StreamedBody,
    /// The head (with its body) does not fit the read buffer.
    LargeHead,
    /// A later request on a connection hyper already serves.
    Connection,
    /// Forced by [`Forced::hyper`] (tests, diagnostics).
    Forced,
}

impl ServedBy {
    /// The `path` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Hyper(_) => "hyper",
        }
    }

    /// The `fallback` label: why hyper served it, `none` on the direct path.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Direct => "none",
            Self::Hyper(fallback) => fallback.as_str(),
        }
    }
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http2 => "http2",
            Self::Http10 => "http10",
            Self::Connect => "connect",
            Self::Upgrade => "upgrade",
            Self::Expect => "expect",
            Self::Chunked => "chunked",
            Self::Trailers => "trailers",
            Self::StreamedBody => "streamed_body",
            Self::LargeHead => "large_head",
            Self::Connection => "connection",
            Self::Forced => "forced",
        }
    }

    /// Every reason, for documentation and metric tests.
    pub const ALL: [Fallback; 11] = [
        Self::Http2,
        Self::Http10,
        Self::Connect,
        Self::Upgrade,
        Self::Expect,
        Self::Chunked,
        Self::Trailers,
        Self::StreamedBody,
        Self::LargeHead,
        Self::Connection,
        Self::Forced,
    ];
}

/// What a parsed request head says, for choosing its path.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadFacts {
    pub http10: bool,
    pub connect: bool,
    pub upgrade: bool,
    pub expect_continue: bool,
    pub trailers: bool,
    pub body: Option<BodyLength>,
    /// Body bytes already read behind the head.
    pub buffered: usize,
}

/// The downstream path of a request whose head parsed: `Ok` when this
/// crate's connection serves it, else why hyper must.
pub fn downstream(facts: &HeadFacts) -> Result<(), Fallback> {
    let streamed = match facts.body {
        Some(BodyLength::Chunked | BodyLength::UntilClose) => Some(Fallback::Chunked),
        Some(BodyLength::Known(length))
            if usize::try_from(length).map_or(true, |n| n > facts.buffered) =>
        {
            // The client waits for `100 Continue` before sending it.
            Some(if facts.expect_continue {
                Fallback::Expect
            } else {
                Fallback::StreamedBody
            })
        }
        _ => None,
    };
    let fallback = if facts.http10 {
        Fallback::Http10
    } else if facts.connect {
        Fallback::Connect
    } else if facts.upgrade {
        Fallback::Upgrade
    } else if facts.trailers {
        Fallback::Trailers
    } else {
        match streamed {
            Some(fallback) => fallback,
            None => return Ok(()),
        }
    };
    Err(fallback)
}

/// Which upstream connection a request takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamPath {
    /// The HTTP/1.1 connection kept with the downstream connection.
    Kept,
    /// A connection from the shared idle list (HTTP/1.1) or hyper's HTTP/2
    /// client, and why.
    Pooled(PoolReason),
}

/// Why a request takes a pooled connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolReason {
    /// The request goes out over HTTP/2.
    Http2,
    /// An HTTP/2 downstream: concurrent requests on one connection.
    ConcurrentDownstream,
    /// An upgrade to tunnel.
    Upgrade,
    /// The forward proxy: each request names its own upstream.
    ForwardProxy,
    /// Forced by [`Forced::pooled`].
    Forced,
}

impl UpstreamPath {
    pub fn label(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Pooled(PoolReason::Http2) => "pooled_http2",
            Self::Pooled(PoolReason::ConcurrentDownstream) => "pooled_concurrent",
            Self::Pooled(PoolReason::Upgrade) => "pooled_upgrade",
            Self::Pooled(PoolReason::ForwardProxy) => "pooled_forward_proxy",
            Self::Pooled(PoolReason::Forced) => "pooled_forced",
        }
    }
}

/// What the upstream choice depends on.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamFacts {
    /// The upstream is reached by name per request (forward proxy).
    pub forward_proxy: bool,
    pub http2_upstream: bool,
    /// The downstream sends one request at a time (HTTP/1.x).
    pub sequential: bool,
    pub upgrade: bool,
    pub forced: Forced,
}

/// The upstream path of a request.
pub fn upstream(facts: &UpstreamFacts) -> UpstreamPath {
    let reason = if facts.forward_proxy {
        PoolReason::ForwardProxy
    } else if facts.http2_upstream {
        PoolReason::Http2
    } else if facts.upgrade {
        PoolReason::Upgrade
    } else if !facts.sequential {
        PoolReason::ConcurrentDownstream
    } else if facts.forced.pooled {
        PoolReason::Forced
    } else {
        return UpstreamPath::Kept;
    };
    UpstreamPath::Pooled(reason)
}

/// Paths forced for every request of a listener: the same requests served
/// by the other implementation, so tests can prove both behave alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forced {
    /// Every HTTP/1.1 connection is served by hyper from its first byte.
    pub hyper: bool,
    /// Every HTTP/1.1 request goes upstream on a connection from the
    /// shared idle list instead of the kept one.
    pub pooled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_requests_stay_direct_and_the_rest_say_why() {
        let plain = HeadFacts {
            body: Some(BodyLength::Known(3)),
            buffered: 3,
            ..HeadFacts::default()
        };
        assert_eq!(downstream(&plain), Ok(()));
        let table = [
            (
                HeadFacts {
                    http10: true,
                    ..plain
                },
                Fallback::Http10,
            ),
            (
                HeadFacts {
                    connect: true,
                    ..plain
                },
                Fallback::Connect,
            ),
            (
                HeadFacts {
                    upgrade: true,
                    ..plain
                },
                Fallback::Upgrade,
            ),
            (
                HeadFacts {
                    expect_continue: true,
                    buffered: 0,
                    ..plain
                },
                Fallback::Expect,
            ),
            (
                HeadFacts {
                    trailers: true,
                    ..plain
                },
                Fallback::Trailers,
            ),
            (
                HeadFacts {
                    body: Some(BodyLength::Chunked),
                    ..plain
                },
                Fallback::Chunked,
            ),
            (
                HeadFacts {
                    buffered: 2,
                    ..plain
                },
                Fallback::StreamedBody,
            ),
            (
                HeadFacts {
                    body: Some(BodyLength::Known(u64::MAX)),
                    ..plain
                },
                Fallback::StreamedBody,
            ),
        ];
        for (facts, expected) in table {
            assert_eq!(downstream(&facts), Err(expected), "{facts:?}");
        }
    }

    #[test]
    fn a_body_already_here_needs_no_continue() {
        let facts = HeadFacts {
            expect_continue: true,
            body: Some(BodyLength::Known(3)),
            buffered: 3,
            ..HeadFacts::default()
        };
        assert_eq!(downstream(&facts), Ok(()));
    }

    #[test]
    fn upstream_paths_are_kept_unless_a_reason_says_pooled() {
        let kept = UpstreamFacts {
            forward_proxy: false,
            http2_upstream: false,
            sequential: true,
            upgrade: false,
            forced: Forced::default(),
        };
        assert_eq!(upstream(&kept), UpstreamPath::Kept);
        let forced = Forced {
            hyper: false,
            pooled: true,
        };
        let table = [
            (
                UpstreamFacts {
                    forward_proxy: true,
                    ..kept
                },
                PoolReason::ForwardProxy,
            ),
            (
                UpstreamFacts {
                    http2_upstream: true,
                    ..kept
                },
                PoolReason::Http2,
            ),
            (
                UpstreamFacts {
                    upgrade: true,
                    ..kept
                },
                PoolReason::Upgrade,
            ),
            (
                UpstreamFacts {
                    sequential: false,
                    ..kept
                },
                PoolReason::ConcurrentDownstream,
            ),
            (UpstreamFacts { forced, ..kept }, PoolReason::Forced),
        ];
        for (facts, reason) in table {
            assert_eq!(upstream(&facts), UpstreamPath::Pooled(reason), "{facts:?}");
        }
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = Fallback::ALL.iter().map(|f| f.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Fallback::ALL.len());
    }
}
