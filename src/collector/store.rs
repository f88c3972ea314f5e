//! The bounded in-memory span store behind the collector's query API.
//!
//! Owns every stored span. Traces are kept in the order their first span
//! arrived; when the number of stored spans goes over the bound, whole traces
//! are evicted oldest first (a half-evicted trace would show a misleading
//! waterfall) and each eviction is counted. A span that arrives again in
//! another piece (Zipkin's rule, [`trace::is_same_span`]: same id, kind,
//! `shared` flag and local endpoint) is merged into the stored copy the way
//! Zipkin's `Span.Builder.merge` does, so late tags or a late duration land on
//! the span instead of duplicating it. Spans that only share an id (a B3
//! shared server span beside its client's or its sidecar's) are kept apart.
//!
//! Indices by local service name (span names, remote service names, traces)
//! are reference-counted so they stay exact under merging and eviction; the
//! query endpoints never scan spans of services they were not asked about.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::model::Span;
use super::query::{QueryRequest, TimeWindow};
use super::trace;
use crate::span::{SpanId, TraceId};

/// Spans of one trace plus what queries need to find it quickly.
#[derive(Debug, Default)]
struct StoredTrace {
    spans: Vec<Span>,
    /// Positions in `spans` of the spans with each id (usually one).
    positions: HashMap<SpanId, Vec<usize>>,
    /// The trace's timestamp as Zipkin's `QueryRequest.test` computes it.
    timestamp: Option<u64>,
    /// Arrival sequence number of its first span; breaks timestamp ties.
    sequence: u64,
}

impl StoredTrace {
    /// The root span's timestamp, else the earliest timestamp of any span
    /// (Zipkin `QueryRequest.test`, which windows traces by this value).
    fn compute_timestamp(&self) -> Option<u64> {
        let with_timestamp = || self.spans.iter().filter(|s| s.timestamp.is_some());
        with_timestamp()
            .find(|s| s.parent_id.is_none())
            .or_else(|| with_timestamp().min_by_key(|s| s.timestamp))
            .and_then(|s| s.timestamp)
    }
}

/// Reference counts for one local service name.
#[derive(Debug, Default)]
struct ServiceIndex {
    span_names: BTreeMap<String, usize>,
    remote_services: BTreeMap<String, usize>,
    /// Spans of this service per trace.
    traces: HashMap<TraceId, usize>,
}

/// The store. Not synchronised: the collector wraps it in a mutex.
#[derive(Debug)]
pub struct Store {
    max_spans: usize,
    traces: HashMap<TraceId, StoredTrace>,
    /// Trace ids in the order their first span arrived; the eviction order.
    arrival: VecDeque<TraceId>,
    span_count: usize,
    evicted_traces: u64,
    services: BTreeMap<String, ServiceIndex>,
    /// Sequence number for the next new trace.
    next_sequence: u64,
}

impl Store {
    /// An empty store holding at most `max_spans` spans.
    pub fn new(max_spans: usize) -> Self {
        Self {
            max_spans,
            traces: HashMap::new(),
            arrival: VecDeque::new(),
            span_count: 0,
            evicted_traces: 0,
            services: BTreeMap::new(),
            next_sequence: 0,
        }
    }

    /// Spans stored now (after merging duplicates).
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    /// Traces stored now.
    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// Whole traces evicted so far to stay within the bound.
    pub fn evicted_traces(&self) -> u64 {
        self.evicted_traces
    }

    /// Adds a validated batch, then evicts the oldest traces while over the bound.
    pub fn insert(&mut self, spans: Vec<Span>) {
        let mut touched = Vec::new();
        for span in spans {
            let trace_id = span.trace_id;
            if !self.traces.contains_key(&trace_id) {
                self.arrival.push_back(trace_id);
                let sequence = self.next_sequence;
                self.next_sequence += 1;
                self.traces.insert(
                    trace_id,
                    StoredTrace {
                        sequence,
                        ..StoredTrace::default()
                    },
                );
            }
            if touched.last() != Some(&trace_id) {
                touched.push(trace_id);
            }
            self.insert_span(span);
        }
        touched.sort_unstable();
        touched.dedup();
        for trace_id in touched {
            if let Some(trace) = self.traces.get_mut(&trace_id) {
                trace.timestamp = trace.compute_timestamp();
            }
        }
        self.evict_over_bound();
    }

    fn insert_span(&mut self, span: Span) {
        let trace = self.traces.entry(span.trace_id).or_default();
        let same_id = trace.positions.entry(span.id).or_default();
        let stored = same_id
            .iter()
            .copied()
            .find(|&position| trace::is_same_span(&trace.spans[position], &span));
        match stored {
            Some(position) => {
                let stored = &mut trace.spans[position];
                unindex(&mut self.services, stored);
                stored.merge(&span);
                index(&mut self.services, stored);
            }
            None => {
                index(&mut self.services, &span);
                same_id.push(trace.spans.len());
                trace.spans.push(span);
                self.span_count += 1;
            }
        }
    }

    fn evict_over_bound(&mut self) {
        while self.span_count > self.max_spans {
            let Some(oldest) = self.arrival.pop_front() else {
                break;
            };
            if let Some(trace) = self.traces.remove(&oldest) {
                for span in &trace.spans {
                    unindex(&mut self.services, span);
                }
                self.span_count -= trace.spans.len();
                self.evicted_traces += 1;
            }
        }
    }

    /// Local service names, sorted (`GET /api/v2/services`).
    pub fn service_names(&self) -> Vec<&str> {
        self.services.keys().map(String::as_str).collect()
    }

    /// Span names recorded by `service`, sorted (`GET /api/v2/spans`).
    pub fn span_names(&self, service: &str) -> Vec<&str> {
        self.services.get(service).map_or_else(Vec::new, |index| {
            index.span_names.keys().map(String::as_str).collect()
        })
    }

    /// Remote service names `service` talked to, sorted (`GET /api/v2/remoteServices`).
    pub fn remote_service_names(&self, service: &str) -> Vec<&str> {
        self.services.get(service).map_or_else(Vec::new, |index| {
            index.remote_services.keys().map(String::as_str).collect()
        })
    }

    /// One trace's spans, in arrival order (`GET /api/v2/trace/{traceId}`).
    pub fn trace(&self, trace_id: TraceId) -> Option<&[Span]> {
        self.traces
            .get(&trace_id)
            .map(|trace| trace.spans.as_slice())
    }

    /// Traces matching `request`, newest first, at most `request.limit`
    /// (`GET /api/v2/traces`, as Zipkin's in-memory storage orders them).
    pub fn query(&self, request: &QueryRequest) -> Vec<&[Span]> {
        let candidates = self.in_window(request.window, request.service_name.as_deref());
        candidates
            .into_iter()
            .filter(|spans| request.matches(spans))
            .take(request.limit)
            .collect()
    }

    /// Traces whose timestamp lies in `window`, newest first (the later
    /// arrival first on equal timestamps); only traces
    /// with a span of `service` when one is given.
    pub fn in_window(&self, window: TimeWindow, service: Option<&str>) -> Vec<&[Span]> {
        let mut found: Vec<((u64, u64), &StoredTrace)> = match service {
            Some(service) => self.services.get(service).map_or_else(Vec::new, |index| {
                index
                    .traces
                    .keys()
                    .filter_map(|id| self.traces.get(id))
                    .filter_map(|trace| window_timestamp(trace, window))
                    .collect()
            }),
            None => self
                .traces
                .values()
                .filter_map(|trace| window_timestamp(trace, window))
                .collect(),
        };
        found.sort_unstable_by_key(|&(order, _)| std::cmp::Reverse(order));
        found.into_iter().map(|(_, t)| t.spans.as_slice()).collect()
    }
}

/// The sort key of a trace inside `window`: (timestamp, arrival).
fn window_timestamp(trace: &StoredTrace, window: TimeWindow) -> Option<((u64, u64), &StoredTrace)> {
    let timestamp = trace.timestamp?;
    window
        .contains(timestamp)
        .then_some(((timestamp, trace.sequence), trace))
}

fn index(services: &mut BTreeMap<String, ServiceIndex>, span: &Span) {
    let Some(service) = span.local_service_name() else {
        return;
    };
    let entry = match services.get_mut(service) {
        Some(entry) => entry,
        None => services.entry(service.to_owned()).or_default(),
    };
    *entry.traces.entry(span.trace_id).or_default() += 1;
    if let Some(name) = &span.name {
        increment(&mut entry.span_names, name);
    }
    if let Some(remote) = span.remote_service_name() {
        increment(&mut entry.remote_services, remote);
    }
}

fn unindex(services: &mut BTreeMap<String, ServiceIndex>, span: &Span) {
    let Some(service) = span.local_service_name() else {
        return;
    };
    let Some(entry) = services.get_mut(service) else {
        return;
    };
    if let Some(count) = entry.traces.get_mut(&span.trace_id) {
        *count -= 1;
        if *count == 0 {
            entry.traces.remove(&span.trace_id);
        }
    }
    if let Some(name) = &span.name {
        decrement(&mut entry.span_names, name);
    }
    if let Some(remote) = span.remote_service_name() {
        decrement(&mut entry.remote_services, remote);
    }
    if entry.traces.is_empty() {
        services.remove(service);
    }
}

fn increment(counts: &mut BTreeMap<String, usize>, key: &str) {
    match counts.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

fn decrement(counts: &mut BTreeMap<String, usize>, key: &str) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::decode_span;
    use crate::collector::query::Params;
    use serde_json::{Value, json};

    const T0: u64 = 1_700_000_000_000_000;

    fn span(trace: &str, id: u64, extra: Value) -> Span {
        let mut value = json!({"traceId": format!("{trace:0>16}"), "id": format!("{id:016x}")});
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) {
            map.extend(extra);
        }
        decode_span(value).unwrap()
    }

    fn local(trace: &str, id: u64, service: &str, name: &str) -> Span {
        span(
            trace,
            id,
            json!({"name": name, "timestamp": T0 + id, "localEndpoint": {"serviceName": service}}),
        )
    }

    fn everything() -> TimeWindow {
        TimeWindow {
            end_ts_ms: u64::MAX / 1000,
            lookback_ms: u64::MAX / 1000,
        }
    }

    fn trace_ids(found: &[&[Span]]) -> Vec<String> {
        found
            .iter()
            .map(|spans| crate::collector::model::trace_id_string(spans[0].trace_id))
            .collect()
    }

    #[test]
    fn merges_copies_with_the_same_id_and_kind() {
        let mut store = Store::new(100);
        store.insert(vec![span(
            "a1",
            1,
            json!({"kind": "SERVER", "name": "get"}),
        )]);
        store.insert(vec![span(
            "a1",
            1,
            json!({"kind": "SERVER", "duration": 9, "tags": {"k": "v"}}),
        )]);
        assert_eq!(store.span_count(), 1);
        store.insert(vec![span("a1", 1, json!({"kind": "CLIENT"}))]);
        assert_eq!(store.span_count(), 2);
        let trace = store.trace(TraceId::new(0xa1).unwrap()).unwrap();
        assert_eq!(trace[0].name.as_deref(), Some("get"));
        assert_eq!(trace[0].duration, Some(9));
        assert_eq!(trace[0].tags["k"], "v");
    }

    #[test]
    fn keeps_a_shared_server_span_beside_the_sidecars_span_with_its_id() {
        let mut store = Store::new(100);
        let sidecar = json!({"kind": "SERVER", "name": "get /users/{id}",
            "localEndpoint": {"serviceName": "users"}, "tags": {"proxy": "tracehop"}});
        let app = json!({"kind": "SERVER", "shared": true, "name": "get /users/:id",
            "localEndpoint": {"serviceName": "users-app"}, "tags": {"proxy": "none"}});
        store.insert(vec![span("a1", 1, sidecar.clone())]);
        store.insert(vec![span("a1", 1, app.clone())]);
        // The same service, but shared: still another span.
        let mut same_service = app;
        same_service["localEndpoint"] = sidecar["localEndpoint"].clone();
        store.insert(vec![span("a1", 1, same_service)]);
        assert_eq!(store.span_count(), 3);
        let trace = store.trace(TraceId::new(0xa1).unwrap()).unwrap();
        assert_eq!(trace[0].tags["proxy"], "tracehop");
        assert_eq!(trace[1].tags["proxy"], "none");
        assert_eq!(store.service_names(), ["users", "users-app"]);
        // A later piece of the sidecar's span merges into it, not the others.
        store.insert(vec![span(
            "a1",
            1,
            json!({"kind": "SERVER", "duration": 7, "localEndpoint": {"serviceName": "users"}}),
        )]);
        let trace = store.trace(TraceId::new(0xa1).unwrap()).unwrap();
        assert_eq!(store.span_count(), 3);
        assert_eq!((trace[0].duration, trace[1].duration), (Some(7), None));
    }

    #[test]
    fn evicts_whole_oldest_traces_and_counts_them() {
        let mut store = Store::new(5);
        store.insert((1..=3).map(|id| local("a", id, "svc-a", "x")).collect());
        store.insert((1..=2).map(|id| local("b", id, "svc-b", "x")).collect());
        assert_eq!((store.span_count(), store.evicted_traces()), (5, 0));
        store.insert(vec![local("c", 1, "svc-c", "x")]);
        // All of "a" goes, not just one span of it.
        assert_eq!((store.span_count(), store.evicted_traces()), (3, 1));
        assert!(store.trace(TraceId::new(0xa).unwrap()).is_none());
        assert_eq!(store.service_names(), ["svc-b", "svc-c"]);
        // A late span for "b" does not make it younger: arrival order rules.
        store.insert(vec![local("b", 3, "svc-b", "y")]);
        store.insert((1..=2).map(|id| local("d", id, "svc-d", "x")).collect());
        assert_eq!((store.span_count(), store.evicted_traces()), (3, 2));
        assert!(store.trace(TraceId::new(0xb).unwrap()).is_none());
        assert_eq!(store.trace_count(), 2);
    }

    #[test]
    fn a_trace_larger_than_the_bound_is_not_kept() {
        let mut store = Store::new(2);
        store.insert((1..=3).map(|id| local("a", id, "svc", "x")).collect());
        assert_eq!((store.span_count(), store.trace_count()), (0, 0));
        assert_eq!(store.evicted_traces(), 1);
        assert!(store.service_names().is_empty());
    }

    #[test]
    fn indices_follow_merges_and_evictions() {
        let mut store = Store::new(3);
        let remote = json!({"localEndpoint": {"serviceName": "gw"},
                            "remoteEndpoint": {"serviceName": "users"}, "name": "get"});
        store.insert(vec![span("a", 1, remote), local("a", 2, "gw", "post")]);
        assert_eq!(store.span_names("gw"), ["get", "post"]);
        assert_eq!(store.remote_service_names("gw"), ["users"]);
        // A merge that only adds a name re-indexes the span.
        store.insert(vec![span(
            "b",
            1,
            json!({"localEndpoint": {"serviceName": "db"}}),
        )]);
        store.insert(vec![span("b", 1, json!({"name": "select"}))]);
        assert_eq!(store.span_names("db"), ["select"]);
        store.insert(vec![local("c", 1, "db", "insert")]);
        assert_eq!(store.service_names(), ["db"]);
        assert!(store.remote_service_names("gw").is_empty());
        assert_eq!(store.span_names("db"), ["insert", "select"]);
        assert!(store.span_names("nope").is_empty());
    }

    #[test]
    fn traces_come_newest_first_by_root_timestamp() {
        let mut store = Store::new(100);
        // "b" has an early child but a late root: the root's timestamp counts.
        store.insert(vec![
            span("a", 1, json!({"timestamp": T0 + 50})),
            span(
                "b",
                2,
                json!({"parentId": "0000000000000001", "timestamp": T0}),
            ),
            span("b", 1, json!({"timestamp": T0 + 100})),
            span(
                "c",
                1,
                json!({"parentId": "0000000000000009", "timestamp": T0 + 10}),
            ),
            span("d", 1, json!({"name": "no timestamp"})),
        ]);
        assert_eq!(
            trace_ids(&store.in_window(everything(), None)),
            ["000000000000000b", "000000000000000a", "000000000000000c"]
        );
        let params = Params::parse(Some("limit=2&endTs=1&lookback=1"));
        let mut request = QueryRequest::from_params(&params, 0).unwrap();
        request.window = everything();
        assert_eq!(store.query(&request).len(), 2);
    }

    #[test]
    fn service_filtered_windows_use_the_service_index() {
        let mut store = Store::new(100);
        store.insert(vec![local("a", 1, "gw", "x"), local("b", 1, "users", "x")]);
        let found = store.in_window(everything(), Some("users"));
        assert_eq!(trace_ids(&found), ["000000000000000b"]);
        assert!(store.in_window(everything(), Some("nope")).is_empty());
        let narrow = TimeWindow {
            end_ts_ms: T0 / 1000 - 1,
            lookback_ms: 1000,
        };
        assert!(store.in_window(narrow, None).is_empty());
    }
}
