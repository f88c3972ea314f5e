//! Prometheus metrics: one non-global [`Registry`] built by `app` and passed down.
//!
//! Owns every metric family and hands each module only its own part
//! ([`ProxyMetrics`], [`ExportMetrics`] for each exporter, [`SamplingMetrics`]). The families
//! the request path touches are resolved to label combinations once, up
//! front, so recording a request is a few atomic adds with no map lookup.
//! Names follow Prometheus conventions: `tracehop_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters.

use std::sync::{Arc, OnceLock};

use crate::http1::path::ServedBy;
use crate::inference::Outcome;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The `Content-Type` of a scrape: Prometheus' text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request latency buckets, in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Method label values: the standard methods and `_OTHER`, as OpenTelemetry
/// does, so a client cannot blow up label cardinality with made-up methods.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The `kind` values of `tracehop_upstream_errors_total`: every one is
/// created at zero, so a rate over it exists before the first failure.
pub const UPSTREAM_ERROR_KINDS: [&str; 9] = [
    "connect",
    "timeout",
    "protocol",
    "body",
    "request_body_timeout",
    "request_body_malformed",
    "bad_request",
    "denied",
    "loop",
];

/// The `reason` values of `tracehop_tls_handshake_failures_total`.
pub const TLS_HANDSHAKE_FAILURES: [&str; 9] = [
    "timeout",
    "plain_http",
    "no_client_certificate",
    "bad_client_certificate",
    "alert_received",
    "incompatible",
    "protocol_error",
    "closed",
    "other",
];

/// The `reason` values of `tracehop_spans_dropped_total` for an exporter.
/// `no_endpoint`: `export.resolve: dns` has found no collector address yet.
pub const DROP_REASONS: [&str; 5] = [
    "queue_full",
    "rejected",
    "retries_exhausted",
    "shutdown",
    "no_endpoint",
];

/// The `outcome` values of `tracehop_export_endpoint_spans_total`.
const ENDPOINT_OUTCOMES: [&str; 2] = ["exported", "dropped"];

/// The `change` values of `tracehop_export_endpoint_changes_total`.
const ENDPOINT_CHANGES: [&str; 2] = ["added", "removed"];

/// The `result` values of `tracehop_export_requests_total`.
pub const EXPORT_RESULTS: [&str; 7] = [
    "success",
    "rejected",
    "throttled",
    "server_error",
    "connect_error",
    "timeout",
    "error",
];

/// The `result` values of `tracehop_tls_certificate_reloads_total`.
const TLS_RELOAD_RESULTS: [&str; 2] = ["loaded", "rejected"];

/// The `operation` values of the database query metrics; any other
/// operation counts as `_OTHER`, so a client cannot blow up the label's
/// cardinality with made-up statements.
pub const DB_OPERATIONS: [&str; 18] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "BEGIN", "COMMIT", "ROLLBACK",
    "START", "SET", "SHOW", "CREATE", "DROP", "ALTER", "TRUNCATE", "WITH", "_OTHER",
];

/// The `outcome` values of `tracehop_db_queries_total`.
pub const DB_OUTCOMES: [&str; 2] = ["ok", "error"];

/// Every metric tracehop exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    pub inbound: ProxyMetrics,
    pub outbound: ProxyMetrics,
    pub export: ExportFamilies,
    pub sampling: SamplingMetrics,
    pub tls: TlsMetrics,
    pub db: DbMetrics,
    process: ProcessMetrics,
}

/// Families shared by the inbound and outbound listeners; each direction
/// gets its own [`ProxyMetrics`] with the `direction` label fixed.
struct ProxyFamilies {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    connections_open: IntGaugeVec,
    connections_parked: IntGaugeVec,
    upstream_errors: IntCounterVec,
    context_formats: IntCounterVec,
    untraced: IntCounterVec,
    inferred_parents: IntCounterVec,
}

/// Request metrics for one direction (`inbound` or `outbound`).
#[derive(Clone)]
pub struct ProxyMetrics {
    direction: &'static str,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Per (method, status class): resolved on first use, then a plain
    /// atomic load, so unused combinations never appear in scrapes.
    resolved: Arc<[(OnceLock<IntCounter>, OnceLock<Histogram>)]>,
    pub in_flight: IntGauge,
    /// This direction's listeners' connections.
    pub connections: crate::server::ConnectionGauges,
    upstream_errors: IntCounterVec,
    context_formats: IntCounterVec,
    untraced: IntCounterVec,
    inferred_parents: IntCounterVec,
}

/// `tracehop_inferred_parents_total` of one outbound route, one counter per
/// [`Outcome`], created at zero (a `contradicted` series exists before
/// anything is contradicted, so an alert on it works from the start).
#[derive(Clone)]
pub struct ParentOutcomes([IntCounter; Outcome::ALL.len()]);

impl ParentOutcomes {
    pub fn count(&self, outcome: Outcome) {
        let i = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("every outcome is in ALL");
        self.0[i].inc();
    }
}

/// The export families, every one labelled by `exporter` (`zipkin`,
/// `otlp`); each exporter records into its own [`ExportMetrics`].
#[derive(Clone)]
pub struct ExportFamilies {
    queue_depth: IntGaugeVec,
    spans_exported: IntCounterVec,
    spans_dropped: IntCounterVec,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    batch_spans: HistogramVec,
    /// The same events per collector endpoint (`exporter`, `endpoint`).
    endpoint_requests: IntCounterVec,
    endpoint_spans: IntCounterVec,
    endpoint_queue: IntGaugeVec,
    endpoints: IntGaugeVec,
    endpoint_changes: IntCounterVec,
}

/// What one exporter records: the export families with its `exporter`
/// label fixed.
#[derive(Clone)]
pub struct ExportMetrics {
    exporter: &'static str,
    /// Spans currently waiting in the exporter's queues.
    pub queue_depth: QueueDepth,
    spans_exported: IntCounter,
    spans_dropped: IntCounterVec,
    requests: IntCounterVec,
    pub request_duration: Histogram,
    pub batch_spans: Histogram,
    /// The series of the one endpoint these metrics are for, if any.
    endpoint: Option<EndpointSeries>,
}

/// The per-endpoint series of one endpoint of one exporter.
#[derive(Clone)]
struct EndpointSeries {
    name: Arc<str>,
    requests: IntCounterVec,
    exported: IntCounter,
    dropped: IntCounter,
}

/// A queue's depth: the exporter's gauge and, for an endpoint's queue,
/// the endpoint's too.
#[derive(Clone, Debug)]
pub struct QueueDepth {
    exporter: IntGauge,
    endpoint: Option<IntGauge>,
}

impl QueueDepth {
    /// Adds `spans` (negative to lower it).
    pub fn add(&self, spans: i64) {
        self.exporter.add(spans);
        if let Some(endpoint) = &self.endpoint {
            endpoint.add(spans);
        }
    }

    /// The exporter's depth.
    pub fn get(&self) -> i64 {
        self.exporter.get()
    }
}

/// The endpoint set of one exporter, as the metrics see it.
#[derive(Clone)]
pub struct EndpointSetMetrics {
    /// `tracehop_export_endpoints{exporter}`: endpoints in use.
    pub count: IntGauge,
    added: IntCounter,
    removed: IntCounter,
}

impl EndpointSetMetrics {
    /// `endpoints` joined the set; `removed` left it.
    pub fn changed(&self, added: usize, removed: usize, now: usize) {
        self.added.inc_by(added as u64);
        self.removed.inc_by(removed as u64);
        self.count.set(i64::try_from(now).unwrap_or(i64::MAX));
    }
}

/// Database queries seen by the postgres routes, like the HTTP request
/// metrics: a counter by route, operation and outcome, and a duration
/// histogram by route and operation.
#[derive(Clone)]
pub struct DbMetrics {
    queries: IntCounterVec,
    duration: HistogramVec,
}

impl DbMetrics {
    fn register(registry: &Registry) -> Self {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tracehop_db_query_duration_seconds",
                "Time from a query sent to the database to its completion or error.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "operation"],
        )
        .expect("valid metric definition");
        register(registry, duration.clone());
        Self {
            queries: counter_vec(
                registry,
                "tracehop_db_queries_total",
                "Database queries through a postgres route, by route, operation and outcome \
                 (ok or error).",
                &["route", "operation", "outcome"],
            ),
            duration,
        }
    }

    /// The metrics of one route, its label combinations resolved on first
    /// use (then a plain atomic add per query, no map lookup).
    pub fn route(&self, route: &str) -> DbRouteMetrics {
        DbRouteMetrics {
            route: route.into(),
            families: self.clone(),
            resolved: (0..DB_OPERATIONS.len())
                .map(|_| Default::default())
                .collect(),
        }
    }
}

/// One postgres route's query metrics (see [`DbMetrics::route`]).
#[derive(Clone)]
pub struct DbRouteMetrics {
    route: Arc<str>,
    families: DbMetrics,
    /// Per operation: the counter per outcome, and the histogram.
    #[allow(clippy::type_complexity)]
    resolved: Arc<[([OnceLock<IntCounter>; 2], OnceLock<Histogram>)]>,
}

impl DbRouteMetrics {
    /// Counts one finished query of `operation` (any other than
    /// [`DB_OPERATIONS`] counts as `_OTHER`).
    pub fn record_query(&self, operation: Option<&str>, failed: bool, seconds: f64) {
        let last = DB_OPERATIONS.len() - 1;
        let i = operation
            .and_then(|op| DB_OPERATIONS.iter().position(|known| *known == op))
            .unwrap_or(last);
        let (counters, duration) = &self.resolved[i];
        let labels = [&*self.route, DB_OPERATIONS[i]];
        counters[usize::from(failed)]
            .get_or_init(|| {
                let outcome = DB_OUTCOMES[usize::from(failed)];
                self.families
                    .queries
                    .with_label_values(&[labels[0], labels[1], outcome])
            })
            .inc();
        duration
            .get_or_init(|| self.families.duration.with_label_values(&labels))
            .observe(seconds);
    }
}

/// Sampling decisions by reason.
#[derive(Clone)]
pub struct SamplingMetrics {
    decisions: IntCounterVec,
    /// Each adaptive sampler's current ratio, by sampler (`root`, `rule:<name>`).
    adaptive_ratios: GaugeVec,
}

/// TLS termination: handshake failures and certificate reloads.
#[derive(Clone)]
pub struct TlsMetrics {
    handshake_failures: IntCounterVec,
    reloads: IntCounterVec,
    /// `notAfter` of the served certificate, in Unix seconds.
    pub certificate_expiry: IntGauge,
}

/// The `outcome` values of the collector's tail-sampling counters.
pub const TAIL_OUTCOMES: [&str; 2] = ["kept", "dropped"];

/// What `tracehop collector` exports at its `/metrics`: its store, its tail
/// sampler, the relay's export families (`--forward`) and the process, in
/// a registry of its own (a collector has no proxy families to show).
#[derive(Clone)]
pub struct CollectorMetrics {
    registry: Registry,
    /// The relay's families (`exporter="zipkin"`).
    pub export: ExportFamilies,
    /// Decisions of each tail-sampling policy, by policy and outcome.
    tail_policy_decisions: IntCounterVec,
    /// Traces decided, by outcome.
    tail_traces: IntCounterVec,
    /// Traces waiting for their decision.
    pub tail_traces_held: IntGauge,
    /// Decisions made before `decision_wait` because the buffer was full.
    pub tail_early_decisions: IntCounter,
    /// Spans that arrived after their trace's decision, by the decision.
    tail_late_spans: IntCounterVec,
    /// Bytes the store and the tail buffer count against `--max-memory`.
    pub memory_bytes: IntGauge,
    /// `--max-memory`.
    pub memory_limit_bytes: IntGauge,
    /// Spans in the store.
    pub stored_spans: IntGauge,
    /// Whole traces evicted from the store to stay within its bounds.
    pub evicted_traces: IntCounter,
    process: Arc<ProcessMetrics>,
}

impl CollectorMetrics {
    /// Builds and registers every family of the collector.
    pub fn new() -> Self {
        let registry = Registry::new();
        let outcome =
            |name: &str, help: &str, labels: &[&str]| counter_vec(&registry, name, help, labels);
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric definition");
            register(&registry, c.clone());
            c
        };
        Self {
            export: ExportFamilies::register(&registry),
            tail_policy_decisions: outcome(
                "tracehop_collector_tail_policy_decisions_total",
                "Tail-sampling decisions of each policy (kept or dropped); a trace is kept \
                 when any policy keeps it.",
                &["policy", "outcome"],
            ),
            tail_traces: zeroed(
                outcome(
                    "tracehop_collector_tail_traces_total",
                    "Traces decided by tail sampling, by outcome (kept, dropped).",
                    &["outcome"],
                ),
                &[&TAIL_OUTCOMES],
            ),
            tail_traces_held: int_gauge(
                &registry,
                "tracehop_collector_tail_traces_held",
                "Traces held by tail sampling, waiting for their decision.",
            ),
            tail_early_decisions: counter(
                "tracehop_collector_tail_early_decisions_total",
                "Traces decided before decision_wait because max_traces or the memory \
                 bound was reached (oldest first).",
            ),
            tail_late_spans: zeroed(
                outcome(
                    "tracehop_collector_tail_late_spans_total",
                    "Spans that arrived after their trace was decided, by that decision \
                     (kept: stored and forwarded; dropped: discarded).",
                    &["outcome"],
                ),
                &[&TAIL_OUTCOMES],
            ),
            memory_bytes: int_gauge(
                &registry,
                "tracehop_collector_memory_bytes",
                "Bytes the stored spans and the tail-sampling buffer count against --max-memory.",
            ),
            memory_limit_bytes: int_gauge(
                &registry,
                "tracehop_collector_memory_limit_bytes",
                "The --max-memory bound.",
            ),
            stored_spans: int_gauge(
                &registry,
                "tracehop_collector_stored_spans",
                "Spans in the collector's store.",
            ),
            evicted_traces: counter(
                "tracehop_collector_evicted_traces_total",
                "Whole traces evicted from the store, oldest first, to stay within its bounds.",
            ),
            process: Arc::new(ProcessMetrics::register(&registry)),
            registry,
        }
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        self.process.refresh();
        let mut out = Vec::with_capacity(8 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    /// The decision counter of one policy and outcome, resolved once.
    pub fn tail_policy_decision(&self, policy: &str, kept: bool) -> IntCounter {
        self.tail_policy_decisions
            .with_label_values(&[policy, tail_outcome(kept)])
    }

    /// The counter of traces decided with one outcome.
    pub fn tail_traces(&self, kept: bool) -> IntCounter {
        self.tail_traces.with_label_values(&[tail_outcome(kept)])
    }

    /// The counter of late spans whose trace had one outcome.
    pub fn tail_late_spans(&self, kept: bool) -> IntCounter {
        self.tail_late_spans
            .with_label_values(&[tail_outcome(kept)])
    }
}

impl std::fmt::Debug for CollectorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorMetrics").finish_non_exhaustive()
    }
}

impl Default for CollectorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn tail_outcome(kept: bool) -> &'static str {
    TAIL_OUTCOMES[usize::from(!kept)]
}

/// Process facts read from `/proc` at scrape time (Linux only; absent elsewhere).
struct ProcessMetrics {
    resident_memory: IntGauge,
    cpu_seconds: prometheus::Counter,
    open_fds: IntGauge,
}

impl Metrics {
    /// Builds and registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        let families = ProxyFamilies::register(&registry);
        let metrics = Self {
            inbound: ProxyMetrics::new(&families, "inbound"),
            outbound: ProxyMetrics::new(&families, "outbound"),
            export: ExportFamilies::register(&registry),
            sampling: SamplingMetrics::register(&registry),
            tls: TlsMetrics::new(),
            db: DbMetrics::register(&registry),
            process: ProcessMetrics::register(&registry),
            registry,
        };
        let build = IntGaugeVec::new(
            Opts::new("tracehop_build_info", "Build information; the value is 1."),
            &["version"],
        )
        .expect("valid metric definition");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        register(&metrics.registry, build);
        metrics
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        self.process.refresh();
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for valid families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    /// Adds the TLS families to the registry (inbound TLS is configured).
    pub fn enable_tls(&self) {
        register(&self.registry, self.tls.handshake_failures.clone());
        register(&self.registry, self.tls.reloads.clone());
        register(&self.registry, self.tls.certificate_expiry.clone());
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<C: prometheus::core::Collector + 'static>(registry: &Registry, collector: C) {
    registry
        .register(Box::new(collector))
        .expect("metric names are unique");
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    register(registry, vec.clone());
    vec
}

/// `vec` with every combination of `values` (one list per label) created
/// at zero, as Prometheus' client guidelines ask of known label values.
fn zeroed(vec: IntCounterVec, values: &[&[&str]]) -> IntCounterVec {
    let mut combinations: Vec<Vec<&str>> = vec![Vec::new()];
    for label in values {
        combinations = combinations
            .iter()
            .flat_map(|prefix| {
                label.iter().map(move |value| {
                    let mut next = prefix.clone();
                    next.push(*value);
                    next
                })
            })
            .collect();
    }
    for combination in &combinations {
        vec.with_label_values(combination);
    }
    vec
}

/// A histogram family labelled by `exporter`.
fn exporter_histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets),
        &["exporter"],
    )
    .expect("valid metric definition");
    register(registry, h.clone());
    h
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    register(registry, vec.clone());
    vec
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    register(registry, g.clone());
    g
}

impl ProxyFamilies {
    fn register(registry: &Registry) -> Self {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tracehop_request_duration_seconds",
                "Time from request received to response body finished.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["direction", "method", "status_class"],
        )
        .expect("valid metric definition");
        register(registry, duration.clone());
        let in_flight = IntGaugeVec::new(
            Opts::new("tracehop_requests_in_flight", "Requests being proxied now."),
            &["direction"],
        )
        .expect("valid metric definition");
        register(registry, in_flight.clone());
        Self {
            requests: counter_vec(
                registry,
                "tracehop_requests_total",
                "Requests proxied, by direction, method, response status class, the \
                 server implementation that read them (path: direct or hyper) and why \
                 hyper did (fallback).",
                &["direction", "method", "status_class", "path", "fallback"],
            ),
            duration,
            in_flight,
            connections_open: gauge_vec(
                registry,
                "tracehop_connections_open",
                "Client connections open on the proxy's listeners, parked ones included, by \
                 direction (inbound, outbound).",
                &["direction"],
            ),
            connections_parked: gauge_vec(
                registry,
                "tracehop_connections_parked",
                "Idle client connections held without a task until their next request, by \
                 direction (inbound, outbound).",
                &["direction"],
            ),
            upstream_errors: zeroed(
                counter_vec(
                    registry,
                    "tracehop_upstream_errors_total",
                    &format!(
                        "Requests that got no (whole) response from the upstream, by direction \
                         (inbound, outbound) and kind of failure ({}).",
                        UPSTREAM_ERROR_KINDS.join(", ")
                    ),
                    &["direction", "kind"],
                ),
                &[&["inbound", "outbound"], &UPSTREAM_ERROR_KINDS],
            ),
            context_formats: counter_vec(
                registry,
                "tracehop_trace_context_total",
                "Trace context seen on received requests, by format (w3c, b3, none, invalid).",
                &["direction", "format"],
            ),
            untraced: counter_vec(
                registry,
                "tracehop_outbound_untraced_requests_total",
                "Outbound requests the app sent without trace context (a new trace was \
                 started unless a parent was inferred).",
                &["route"],
            ),
            inferred_parents: counter_vec(
                registry,
                "tracehop_inferred_parents_total",
                "Outbound calls by what parent inference did (inferred, ambiguous, no_candidate: \
                 calls without trace context) or how it compared with the context the app sent \
                 (confirmed, contradicted, would_be_ambiguous, would_be_no_candidate). \
                 contradicted must stay 0.",
                &["route", "outcome"],
            ),
        }
    }
}

fn method_index(method: &http::Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

impl ProxyMetrics {
    fn new(families: &ProxyFamilies, direction: &'static str) -> Self {
        Self {
            direction,
            requests: families.requests.clone(),
            duration: families.duration.clone(),
            resolved: (0..METHODS.len() * STATUS_CLASSES.len())
                .map(|_| (OnceLock::new(), OnceLock::new()))
                .collect(),
            in_flight: families.in_flight.with_label_values(&[direction]),
            connections: crate::server::ConnectionGauges {
                open: families.connections_open.with_label_values(&[direction]),
                parked: families.connections_parked.with_label_values(&[direction]),
            },
            upstream_errors: families.upstream_errors.clone(),
            context_formats: families.context_formats.clone(),
            untraced: families.untraced.clone(),
            inferred_parents: families.inferred_parents.clone(),
        }
    }

    /// Counts one finished request, read by `served`, and its duration.
    pub fn record_request(
        &self,
        method: &http::Method,
        status: u16,
        seconds: f64,
        served: ServedBy,
    ) {
        let (m, c) = (method_index(method), class_index(status));
        let labels = [self.direction, METHODS[m], STATUS_CLASSES[c]];
        let (requests, duration) = &self.resolved[m * STATUS_CLASSES.len() + c];
        duration
            .get_or_init(|| self.duration.with_label_values(&labels))
            .observe(seconds);
        let [direction, method, class] = labels;
        let counted = [direction, method, class, served.label(), served.reason()];
        if served == ServedBy::Direct {
            requests
                .get_or_init(|| self.requests.with_label_values(&counted))
                .inc();
        } else {
            // hyper's path costs a labelled lookup; it is the slow path.
            self.requests.with_label_values(&counted).inc();
        }
    }

    /// Counts a request the upstream did not answer; `kind` is one of [`UPSTREAM_ERROR_KINDS`].
    pub fn upstream_error(&self, kind: &str) {
        self.upstream_errors
            .with_label_values(&[self.direction, kind])
            .inc();
    }

    /// Counts the trace-context format of a received request.
    pub fn context_format(&self, format: &str) {
        self.context_formats
            .with_label_values(&[self.direction, format])
            .inc();
    }

    /// Counts an outbound request without trace context on `route`.
    pub fn untraced_outbound(&self, route: &str) {
        self.untraced.with_label_values(&[route]).inc();
    }

    /// The parent-inference counters of outbound `route`, resolved once.
    pub fn parent_outcomes(&self, route: &str) -> ParentOutcomes {
        ParentOutcomes(
            Outcome::ALL.map(|o| self.inferred_parents.with_label_values(&[route, o.label()])),
        )
    }

    /// `tracehop_inferred_parents_total` summed over routes, in
    /// [`Outcome::ALL`] order (for summaries such as the demo's).
    pub fn parent_outcome_totals(&self) -> [u64; Outcome::ALL.len()] {
        use prometheus::core::Collector;
        let mut totals = [0; Outcome::ALL.len()];
        for family in self.inferred_parents.collect() {
            for metric in family.get_metric() {
                let outcome = metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "outcome")
                    .map(|l| l.value());
                if let Some(i) = Outcome::ALL.iter().position(|o| Some(o.label()) == outcome) {
                    totals[i] += metric.get_counter().get_value() as u64;
                }
            }
        }
        totals
    }

    /// Pre-resolves the trace-context counter for each format, for the hot path.
    pub fn context_format_counter(&self, format: &str) -> IntCounter {
        self.context_formats
            .with_label_values(&[self.direction, format])
    }
}

impl ExportFamilies {
    fn register(registry: &Registry) -> Self {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "tracehop_export_queue_spans",
                "Spans waiting in an exporter's queue.",
            ),
            &["exporter"],
        )
        .expect("valid metric definition");
        register(registry, gauge.clone());
        Self {
            queue_depth: gauge,
            spans_exported: counter_vec(
                registry,
                "tracehop_spans_exported_total",
                "Spans the exporter's collector accepted.",
                &["exporter"],
            ),
            spans_dropped: counter_vec(
                registry,
                "tracehop_spans_dropped_total",
                &format!(
                    "Spans never delivered, by exporter (zipkin, otlp) and reason ({}; \
                     disabled with exporter none).",
                    DROP_REASONS.join(", ")
                ),
                &["exporter", "reason"],
            ),
            requests: counter_vec(
                registry,
                "tracehop_export_requests_total",
                &format!(
                    "Export requests to the collector, by exporter (zipkin, otlp) and result ({}).",
                    EXPORT_RESULTS.join(", ")
                ),
                &["exporter", "result"],
            ),
            request_duration: exporter_histogram(
                registry,
                "tracehop_export_request_duration_seconds",
                "Duration of one export request to the collector.",
                LATENCY_BUCKETS.to_vec(),
            ),
            batch_spans: exporter_histogram(
                registry,
                "tracehop_export_batch_spans",
                "Spans per export batch.",
                vec![1.0, 8.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0],
            ),
            endpoint_requests: counter_vec(
                registry,
                "tracehop_export_endpoint_requests_total",
                "Export requests by exporter, collector endpoint and result (as tracehop_export_requests_total).",
                &["exporter", "endpoint", "result"],
            ),
            endpoint_spans: counter_vec(
                registry,
                "tracehop_export_endpoint_spans_total",
                &format!(
                    "Spans by exporter, collector endpoint and outcome ({}).",
                    ENDPOINT_OUTCOMES.join(", ")
                ),
                &["exporter", "endpoint", "outcome"],
            ),
            endpoint_queue: gauge_vec(
                registry,
                "tracehop_export_endpoint_queue_spans",
                "Spans waiting in the queue of one collector endpoint.",
                &["exporter", "endpoint"],
            ),
            endpoints: gauge_vec(
                registry,
                "tracehop_export_endpoints",
                "Collector endpoints an exporter spreads traces over.",
                &["exporter"],
            ),
            endpoint_changes: counter_vec(
                registry,
                "tracehop_export_endpoint_changes_total",
                &format!(
                    "Collector endpoints that joined or left an exporter's set, by change ({}).",
                    ENDPOINT_CHANGES.join(", ")
                ),
                &["exporter", "change"],
            ),
        }
    }

    /// The metrics of `exporter`'s endpoint `endpoint`: the exporter's
    /// series plus the endpoint's own. [`ExportFamilies::forget`] removes
    /// the endpoint's series when it leaves the set.
    pub fn endpoint(&self, exporter: &'static str, endpoint: &str) -> ExportMetrics {
        let mut metrics = self.exporter(exporter);
        let labels = [exporter, endpoint];
        zeroed(
            self.endpoint_requests.clone(),
            &[&[exporter], &[endpoint], &EXPORT_RESULTS],
        );
        metrics.queue_depth.endpoint = Some(self.endpoint_queue.with_label_values(&labels));
        let outcome = |o: &str| {
            self.endpoint_spans
                .with_label_values(&[exporter, endpoint, o])
        };
        metrics.endpoint = Some(EndpointSeries {
            name: endpoint.into(),
            requests: self.endpoint_requests.clone(),
            exported: outcome("exported"),
            dropped: outcome("dropped"),
        });
        metrics
    }

    /// Removes the series of `exporter`'s endpoint `endpoint`, which left
    /// the set, so that addresses coming and going do not pile up series.
    pub fn forget(&self, exporter: &'static str, endpoint: &str) {
        for result in EXPORT_RESULTS {
            let _ = self
                .endpoint_requests
                .remove_label_values(&[exporter, endpoint, result]);
        }
        for outcome in ENDPOINT_OUTCOMES {
            let _ = self
                .endpoint_spans
                .remove_label_values(&[exporter, endpoint, outcome]);
        }
        let _ = self
            .endpoint_queue
            .remove_label_values(&[exporter, endpoint]);
    }

    /// The endpoint-set series of `exporter`.
    pub fn endpoint_set(&self, exporter: &'static str) -> EndpointSetMetrics {
        let change = |c: &str| self.endpoint_changes.with_label_values(&[exporter, c]);
        EndpointSetMetrics {
            count: self.endpoints.with_label_values(&[exporter]),
            added: change("added"),
            removed: change("removed"),
        }
    }

    /// The metrics of one exporter (`zipkin`, `otlp`); its series appear
    /// in scrapes from now on.
    pub fn exporter(&self, exporter: &'static str) -> ExportMetrics {
        let labels = [exporter];
        // Its error counters start at zero, like every other series.
        zeroed(self.spans_dropped.clone(), &[&labels, &DROP_REASONS]);
        zeroed(self.requests.clone(), &[&labels, &EXPORT_RESULTS]);
        ExportMetrics {
            exporter,
            queue_depth: QueueDepth {
                exporter: self.queue_depth.with_label_values(&labels),
                endpoint: None,
            },
            endpoint: None,
            spans_exported: self.spans_exported.with_label_values(&labels),
            spans_dropped: self.spans_dropped.clone(),
            requests: self.requests.clone(),
            request_duration: self.request_duration.with_label_values(&labels),
            batch_spans: self.batch_spans.with_label_values(&labels),
        }
    }

    /// The drop counter when export is off: `{exporter="none",reason="disabled"}`.
    pub fn disabled_counter(&self) -> IntCounter {
        self.spans_dropped.with_label_values(&["none", "disabled"])
    }
}

impl ExportMetrics {
    pub fn dropped(&self, reason: &str, spans: u64) {
        self.dropped_counter(reason).inc_by(spans);
    }

    /// Counts one drop of `reason`, resolved once (for the request path).
    pub fn dropped_counter(&self, reason: &str) -> DropCounter {
        DropCounter {
            exporter: self
                .spans_dropped
                .with_label_values(&[self.exporter, reason]),
            endpoint: self.endpoint.as_ref().map(|e| e.dropped.clone()),
        }
    }

    pub fn request(&self, result: &str) {
        self.requests
            .with_label_values(&[self.exporter, result])
            .inc();
        if let Some(endpoint) = &self.endpoint {
            endpoint
                .requests
                .with_label_values(&[self.exporter, &endpoint.name, result])
                .inc();
        }
    }

    /// The collector accepted `spans`.
    pub fn exported(&self, spans: u64) {
        self.spans_exported.inc_by(spans);
        if let Some(endpoint) = &self.endpoint {
            endpoint.exported.inc_by(spans);
        }
    }
}

/// The drop counter of one reason: the exporter's series and, for an
/// endpoint, the endpoint's `dropped` outcome too.
#[derive(Clone, Debug)]
pub struct DropCounter {
    exporter: IntCounter,
    endpoint: Option<IntCounter>,
}

impl DropCounter {
    pub fn inc_by(&self, spans: u64) {
        self.exporter.inc_by(spans);
        if let Some(endpoint) = &self.endpoint {
            endpoint.inc_by(spans);
        }
    }

    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// The exporter's count for this reason.
    pub fn get(&self) -> u64 {
        self.exporter.get()
    }
}

impl SamplingMetrics {
    fn register(registry: &Registry) -> Self {
        let adaptive_ratios = GaugeVec::new(
            Opts::new(
                "tracehop_sampling_adaptive_ratio",
                "Current sampling ratio of each adaptive sampler (root, rule:<name>).",
            ),
            &["sampler"],
        )
        .expect("valid metric definition");
        register(registry, adaptive_ratios.clone());
        Self {
            decisions: counter_vec(
                registry,
                "tracehop_sampling_decisions_total",
                "Sampling decisions, by reason and outcome.",
                &["reason", "sampled"],
            ),
            adaptive_ratios,
        }
    }

    /// The ratio gauge of one adaptive sampler (`root` or `rule:<name>`).
    pub fn adaptive_ratio(&self, sampler: &str) -> Gauge {
        self.adaptive_ratios.with_label_values(&[sampler])
    }

    /// A counter for one (reason, sampled) pair, resolved once.
    pub fn decision_counter(&self, reason: &str, sampled: bool) -> IntCounter {
        self.decisions
            .with_label_values(&[reason, if sampled { "true" } else { "false" }])
    }
}

impl TlsMetrics {
    /// The TLS families, not yet in the registry: [`Metrics::enable_tls`]
    /// adds them when inbound TLS is configured, so a plain sidecar never
    /// shows a certificate expiry of 0 (which an expiry alert would fire on).
    fn new() -> Self {
        let opts = |name: &str, help: String| Opts::new(name, help);
        let handshake_failures = IntCounterVec::new(
            opts(
                "tracehop_tls_handshake_failures_total",
                format!(
                    "Inbound TLS handshakes that failed, by reason ({}).",
                    TLS_HANDSHAKE_FAILURES.join(", ")
                ),
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        let reloads = IntCounterVec::new(
            opts(
                "tracehop_tls_certificate_reloads_total",
                format!(
                    "Changed certificate files seen, by result ({}).",
                    TLS_RELOAD_RESULTS.join(", ")
                ),
            ),
            &["result"],
        )
        .expect("valid metric definition");
        let certificate_expiry = IntGauge::new(
            "tracehop_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the inbound certificate being served, in Unix seconds.",
        )
        .expect("valid metric definition");
        Self {
            handshake_failures: zeroed(handshake_failures, &[&TLS_HANDSHAKE_FAILURES]),
            reloads: zeroed(reloads, &[&TLS_RELOAD_RESULTS]),
            certificate_expiry,
        }
    }

    /// Counts a failed handshake; `reason` is one of a fixed set.
    pub fn handshake_failure(&self, reason: &str) {
        self.handshake_failures.with_label_values(&[reason]).inc();
    }

    /// Counts a certificate reload attempt (`loaded` or `rejected`).
    pub fn reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
    }
}

impl ProcessMetrics {
    fn register(registry: &Registry) -> Self {
        let cpu_seconds = prometheus::Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .expect("valid metric definition");
        register(registry, cpu_seconds.clone());
        Self {
            resident_memory: int_gauge(
                registry,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            cpu_seconds,
            open_fds: int_gauge(
                registry,
                "process_open_fds",
                "Number of open file descriptors.",
            ),
        }
    }

    /// Reads `/proc/self`; leaves the values alone where it is unavailable.
    fn refresh(&self) {
        const PAGE: i64 = 4096;
        const TICKS_PER_SECOND: f64 = 100.0;
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm")
            && let Some(pages) = statm.split(' ').nth(1).and_then(|s| s.parse::<i64>().ok())
        {
            self.resident_memory.set(pages * PAGE);
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime
            // are fields 14 and 15 of proc(5), 12 and 13 after the name.
            let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|s| s.parse::<f64>().ok());
            if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
                // A counter: add what was used since the last scrape.
                let total = (user + system) / TICKS_PER_SECOND;
                let delta = total - self.cpu_seconds.get();
                if delta > 0.0 {
                    self.cpu_seconds.inc_by(delta);
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds
                .set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_metrics_land_on_the_right_labels() {
        let metrics = Metrics::new();
        metrics
            .inbound
            .record_request(&http::Method::GET, 204, 0.002, ServedBy::Direct);
        metrics.outbound.record_request(
            &http::Method::from_bytes(b"BREW").unwrap(),
            503,
            0.1,
            ServedBy::Hyper(crate::http1::path::Fallback::Expect),
        );
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains(
            r#"tracehop_requests_total{direction="inbound",fallback="none",method="GET",path="direct",status_class="2xx"} 1"#
        ));
        assert!(text.contains(
            r#"tracehop_requests_total{direction="outbound",fallback="expect",method="_OTHER",path="hyper",status_class="5xx"} 1"#
        ));
        assert!(text.contains(
            r#"tracehop_request_duration_seconds_count{direction="outbound",method="_OTHER",status_class="5xx"} 1"#
        ));
        assert!(text.contains(r#"tracehop_build_info{version=""#));
        // No empty series for a path that served nothing.
        assert!(!text.contains(r#"method="_OTHER",path="direct""#), "{text}");
    }

    #[test]
    fn error_counters_start_at_zero_and_tls_families_only_with_tls() {
        let metrics = Metrics::new();
        let text = String::from_utf8(metrics.render()).unwrap();
        for direction in ["inbound", "outbound"] {
            for kind in UPSTREAM_ERROR_KINDS {
                let series = format!(
                    r#"tracehop_upstream_errors_total{{direction="{direction}",kind="{kind}"}} 0"#
                );
                assert!(text.contains(&series), "{series} missing:\n{text}");
            }
        }
        // Help texts name every label value.
        assert!(
            text.contains("request_body_malformed, bad_request, denied, loop)"),
            "{text}"
        );
        assert!(
            !text.contains("tracehop_tls_"),
            "no TLS families without TLS:\n{text}"
        );
        let _zipkin = metrics.export.exporter("zipkin");
        let text = String::from_utf8(metrics.render()).unwrap();
        for reason in DROP_REASONS {
            let series =
                format!(r#"tracehop_spans_dropped_total{{exporter="zipkin",reason="{reason}"}} 0"#);
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        for result in EXPORT_RESULTS {
            let series = format!(
                r#"tracehop_export_requests_total{{exporter="zipkin",result="{result}"}} 0"#
            );
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        metrics.enable_tls();
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("tracehop_tls_certificate_expiry_timestamp_seconds 0"));
        assert!(text.contains(r#"tracehop_tls_handshake_failures_total{reason="plain_http"} 0"#));
        assert!(text.contains(r#"tracehop_tls_certificate_reloads_total{result="rejected"} 0"#));
    }

    #[test]
    fn status_classes_are_clamped() {
        assert_eq!(class_index(99), 0);
        assert_eq!(class_index(200), 1);
        assert_eq!(class_index(599), 4);
        assert_eq!(class_index(999), 4);
    }
}
