//! Validated configuration: what the rest of tracehop receives.
//!
//! These types are built only by [`super::load`] after every check passed,
//! so their users never re-validate. Each module receives its own section.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use super::tls::{
    CertKeyPaths, ClientAuth, ClientTlsConfig, ExtraHeader, SecretSource, ServerTlsConfig, Trust,
};

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub service: ServiceConfig,
    pub inbound: InboundConfig,
    pub outbound: OutboundConfig,
    pub propagation: PropagationConfig,
    pub sampling: SamplingConfig,
    pub export: ExportConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub inference: InferenceConfig,
    /// Not from YAML: forces every request of every proxying listener onto
    /// hyper's server and the pooled upstream client, so tests can prove
    /// both implementations behave alike.
    pub paths: crate::http1::path::Forced,
}

/// Who this sidecar reports as.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// `localEndpoint.serviceName` of every span.
    pub name: Arc<str>,
    /// Extra tags on every span (pod metadata from the downward API).
    pub resource_tags: Vec<(String, String)>,
}

/// The service name when none is set (OpenTelemetry's default for an
/// unset `service.name`).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

impl ServiceConfig {
    /// Whether no name was set, so spans say [`UNKNOWN_SERVICE`].
    pub fn name_defaulted(&self) -> bool {
        &*self.name == UNKNOWN_SERVICE
    }
}

/// An HTTP(S) URL split into what a client needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub scheme: Scheme,
    /// `host:port` as written (port filled in from the scheme).
    pub authority: http::uri::Authority,
    /// Path prefix, `/` when none. For the collector, the full path.
    pub path: String,
}

impl std::fmt::Display for UpstreamUrl {
    /// The URL as configured: scheme, authority and path (no trailing `/`
    /// when the path is only that).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let path = if self.path == "/" { "" } else { &self.path };
        write!(f, "{scheme}://{}{path}", self.authority)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Which protocol to speak to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// The same as the downstream used (HTTP/2 in, HTTP/2 out: gRPC works).
    Auto,
    Http1,
    /// HTTP/2 with prior knowledge (h2c) or via ALPN over TLS.
    Http2,
}

/// Timeouts of one listener that proxies (each kind has its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTimeouts {
    /// Time a client has to send the request head (slowloris guard).
    pub header_read: Duration,
    /// Keep-alive connections with no request for this long are closed.
    pub idle: Duration,
    /// Longest pause while reading a request body; the upload is then cut
    /// off (408 if no response was sent yet).
    pub request_body: Duration,
    /// Longest pause in the upstream's response body; the response is cut
    /// off after it (as nginx's `proxy_read_timeout`).
    pub response_body: Duration,
    pub upstream_connect: Duration,
    /// Time until the upstream's response head arrives; 504 after.
    pub upstream_response: Duration,
}

/// Limits of one listener that proxies: they protect the sidecar and
/// what is behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyLimits {
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
}

/// A configured route template, e.g. `/users/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTemplate {
    pub template: Arc<str>,
    /// Segments; `None` matches any one segment.
    pub segments: Vec<Option<String>>,
}

/// What gets recorded beyond the standard tags.
#[derive(Clone, Debug, Default)]
pub struct CaptureConfig {
    /// Request headers recorded as `http.request.header.<name>` (lowercase).
    pub request_headers: Vec<http::HeaderName>,
    pub response_headers: Vec<http::HeaderName>,
    /// Keep the query string in `url.query` (off by default: it may hold secrets).
    pub query: bool,
}

/// The inbound listener: downstream -> sidecar -> upstream app.
#[derive(Clone, Debug)]
pub struct InboundConfig {
    pub listen: SocketAddr,
    pub upstream: UpstreamUrl,
    pub protocol: UpstreamProtocol,
    pub routes: Vec<RouteTemplate>,
    /// Timeouts of the inbound listener.
    pub timeouts: ProxyTimeouts,
    /// Limits of the inbound listener.
    pub limits: ProxyLimits,
    pub capture: CaptureConfig,
    /// TLS termination; `None` serves cleartext.
    pub tls: Option<ServerTlsConfig>,
    /// How an `https://` upstream is checked; `None` = defaults (webpki roots).
    pub upstream_tls: Option<ClientTlsConfig>,
}

/// One outbound route: the app calls `listen`, the sidecar forwards to `upstream`.
#[derive(Clone, Debug)]
pub struct OutboundRoute {
    /// The remote service's name (`remoteEndpoint.serviceName`).
    pub name: Arc<str>,
    pub listen: SocketAddr,
    pub upstream: UpstreamUrl,
    pub protocol: UpstreamProtocol,
    /// How an `https://` upstream is checked; `None` = defaults (webpki roots).
    pub upstream_tls: Option<ClientTlsConfig>,
    /// `outbound.timeouts` with the route's own `timeouts` on top.
    pub timeouts: ProxyTimeouts,
    /// `outbound.limits` with the route's own `limits` on top.
    pub limits: ProxyLimits,
}

#[derive(Clone, Debug)]
pub struct OutboundConfig {
    pub routes: Vec<OutboundRoute>,
    pub route_templates: Vec<RouteTemplate>,
    /// The optional HTTP forward proxy (for apps that honour `HTTP_PROXY`).
    pub forward_proxy: ForwardProxy,
    /// Timeouts of every route that does not set its own.
    pub timeouts: ProxyTimeouts,
    /// Limits of every route that does not set its own.
    pub limits: ProxyLimits,
}

/// An optional component: the forward-proxy listener.
#[derive(Clone, Debug, Default)]
pub enum ForwardProxy {
    Enabled(ForwardProxyConfig),
    #[default]
    Disabled,
}

/// A forward proxy that only reaches allow-listed targets: never an open proxy.
#[derive(Clone, Debug)]
pub struct ForwardProxyConfig {
    pub listen: SocketAddr,
    /// Targets requests may go to; everything else gets 403.
    pub allow: Vec<AllowTarget>,
    /// Whether `CONNECT` tunnels (to allowed targets) are permitted.
    pub connect: bool,
    /// Timeouts of the forward-proxy listener (its own, not the routes').
    pub timeouts: ProxyTimeouts,
    /// Limits of the forward-proxy listener.
    pub limits: ProxyLimits,
}

/// One allow-list entry: `host:port`, `*.suffix:port`, or `host:*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowTarget {
    /// Lowercase host; a leading `*.` matches any subdomain (not the apex).
    pub host: String,
    /// `None` matches any port.
    pub port: Option<u16>,
}

/// A trace-context header format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// W3C Trace Context `traceparent` / `tracestate`.
    W3c,
    /// B3 multi-header `X-B3-*` (extract also reads the single `b3` header).
    B3,
    /// B3 single header `b3`.
    B3Single,
}

#[derive(Clone, Debug)]
pub struct PropagationConfig {
    /// Formats read, in order of precedence.
    pub extract: Vec<Format>,
    /// Formats written; empty means "the format that came in, W3C for new roots".
    pub inject: Vec<Format>,
}

/// A sampler (DESIGN §5 step 4): the root sampler, or the one a rule names.
#[derive(Clone, Debug, PartialEq)]
pub enum SamplerSpec {
    Always,
    Never,
    /// Consistent probability sampling on the trace id's random bits,
    /// optionally capped at a number of traces per second.
    Ratio {
        ratio: f64,
        cap: Option<RateLimit>,
    },
    /// A token bucket: at most `per_second` traces per second, after a burst.
    RateLimited(RateLimit),
    /// A ratio adjusted to hold a target number of sampled traces per second.
    Adaptive(AdaptiveSpec),
}

/// A token-bucket rate: `per_second` tokens per second, `burst` at most at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained rate; may be fractional (`0.5` = one every two seconds).
    pub per_second: f64,
    /// Bucket size: how many may pass at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// Settings of the adaptive sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveSpec {
    /// Sampled traces per second to aim for.
    pub target_per_second: f64,
    /// The ratio is recomputed once per window, from that window's counts.
    pub window: Duration,
    /// Bounds of the ratio, `0 <= min_ratio <= max_ratio <= 1`.
    pub min_ratio: f64,
    pub max_ratio: f64,
}

/// How a rule matches the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path, byte for byte.
    Exact(String),
    /// The path starts with this string.
    Prefix(String),
    /// `*` matches within one segment, a `**` segment any number of segments.
    Glob(String),
}

/// A request header a rule requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    pub name: http::HeaderName,
    /// `None`: present with any value; otherwise one value equals this.
    pub value: Option<http::HeaderValue>,
}

/// A sampling rule (DESIGN §5 step 3): every condition set must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingRule {
    /// Metric label `rule:<name>`.
    pub name: Arc<str>,
    pub method: Option<http::Method>,
    pub path: Option<PathMatch>,
    pub headers: Vec<HeaderMatch>,
    pub sampler: SamplerSpec,
}

/// Keep-on-outcome (DESIGN §5 step 5): export an unsampled span anyway.
#[derive(Clone, Debug, PartialEq)]
pub struct KeepConfig {
    /// Keep spans of failed requests: 5xx, no upstream response, a gRPC
    /// status that fails the span ([`crate::span::GrpcCall::error_status`]).
    pub errors: bool,
    /// Keep spans of requests that took longer; `None` = off.
    pub slower_than: Option<Duration>,
    /// At most this many kept spans per second (protects the collector
    /// when the upstream is down and every request fails).
    pub limit: RateLimit,
}

#[derive(Clone, Debug)]
pub struct SamplingConfig {
    /// Honour the downstream's sampled flag when present.
    pub parent_based: bool,
    /// User rules, first match wins; checked before the default rules.
    pub rules: Vec<SamplingRule>,
    /// Add the built-in rules that never sample probe paths.
    pub default_rules: bool,
    /// The sampler for requests no rule matched.
    pub root: SamplerSpec,
    pub keep: KeepConfig,
}

/// Where and how spans are exported.
// Built once at startup; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum ExportConfig {
    Enabled(ExportSettings),
    /// Spans are counted and discarded.
    Disabled,
}

/// One exporter: the wire protocol of one destination, and the value of
/// the `exporter` label on the export metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exporter {
    /// Zipkin v2 JSON to `POST /api/v2/spans`.
    Zipkin,
    /// OTLP/HTTP protobuf to `POST /v1/traces`.
    Otlp,
}

impl Exporter {
    /// The metric label and log name: `zipkin` or `otlp`.
    pub fn label(self) -> &'static str {
        match self {
            Exporter::Zipkin => "zipkin",
            Exporter::Otlp => "otlp",
        }
    }
}

/// The export section: at least one destination, and the queue, batching
/// and retry settings every destination gets a copy of (each exporter has
/// its own queue, batches and retries, so one cannot hold up the other).
#[derive(Clone, Debug)]
pub struct ExportSettings {
    /// `export.zipkin` (with `export.gzip`, `export.tls`, `export.headers`).
    pub zipkin: Option<Destination>,
    /// `export.otlp`.
    pub otlp: Option<Destination>,
    /// Capacity of each exporter's span queue, in spans.
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub batch_interval: Duration,
    /// Timeout of one export request.
    pub timeout: Duration,
    pub retry: RetryConfig,
    /// How long the final flush at shutdown may take.
    pub shutdown_timeout: Duration,
    /// `export.resolve`: where each exporter's endpoint set comes from.
    pub resolve: Resolve,
}

/// How an exporter finds its collector endpoints (`export.resolve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// `static` (the default): the listed URLs, one endpoint each.
    Static,
    /// `dns`: the host of the one URL is looked up every `interval`
    /// (`export.resolve_interval`), each address an endpoint (a
    /// Kubernetes headless Service lists one address per ready pod).
    Dns { interval: Duration },
}

impl ExportSettings {
    /// Every configured destination with its exporter, Zipkin first.
    pub fn destinations(&self) -> impl Iterator<Item = (Exporter, &Destination)> {
        [
            (Exporter::Zipkin, self.zipkin.as_ref()),
            (Exporter::Otlp, self.otlp.as_ref()),
        ]
        .into_iter()
        .filter_map(|(exporter, destination)| Some((exporter, destination?)))
    }
}

/// Where one exporter sends its batches.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The collector endpoints, full POST URLs (`/api/v2/spans` for Zipkin,
    /// `/v1/traces` for OTLP); at least one, no two alike. Every span of a
    /// trace goes to the same one (`export::rendezvous`).
    pub urls: Vec<UpstreamUrl>,
    /// Compress uploads (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// How an `https://` collector is checked; `None` = defaults (webpki roots).
    pub tls: Option<ClientTlsConfig>,
    /// Extra headers on every upload (e.g. `Authorization`).
    pub headers: Vec<ExtraHeader>,
}

#[derive(Clone, Debug)]
pub struct RetryConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A batch is dropped once this much time passed since its first attempt.
    pub max_elapsed: Duration,
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `tracehop=debug`.
    pub level: String,
    pub access_log: bool,
    /// Not from YAML: `tracehop dev` prints a one-line summary of every
    /// request to stdout, with its trace's URL under this viewer address.
    pub summary_viewer: Option<Arc<str>>,
}

#[derive(Clone, Debug)]
pub struct ShutdownConfig {
    /// After SIGTERM, keep accepting this long with readiness failing, so
    /// load balancers stop sending first.
    pub drain_delay: Duration,
    /// In-flight requests get this long to finish.
    pub grace_period: Duration,
}

/// `inference`: connecting outbound calls to the inbound request that
/// caused them when the app copies no trace headers ([`crate::inference`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InferenceConfig {
    /// `inference.parents`: `unambiguous` (default) infers a parent only
    /// when timing proves it; `off` never does (every call without
    /// context starts a trace).
    pub parents: ParentInference,
}

/// Whether outbound calls without context get an inferred parent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentInference {
    #[default]
    Unambiguous,
    Off,
}

impl ParentInference {
    /// The YAML (and `--infer-parents`) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ParentInference::Unambiguous => "unambiguous",
            ParentInference::Off => "off",
        }
    }
}
