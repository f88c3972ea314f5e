//! The bounded in-memory span store behind the collector's query API.
//!
//! Owns every stored span, each held once in its compact encoded form
//! ([`CompactSpan`]) and decoded only when a query reads it. Traces are kept
//! in the order their first span arrived; when the stored spans go over the
//! span bound or the memory bound (in bytes, as [`CompactSpan::memory_bytes`]
//! and [`TRACE_OVERHEAD`] count them), whole traces are evicted oldest first
//! (a half-evicted trace would show a misleading waterfall) and each eviction
//! is counted. A span that arrives again in another piece (Zipkin's rule,
//! [`trace::is_same_span`]: same id, kind, `shared` flag and local endpoint)
//! is merged into the stored copy the way Zipkin's `Span.Builder.merge` does,
//! so late tags or a late duration land on the span instead of duplicating
//! it. Spans that only share an id (a B3 shared server span beside its
//! client's or its sidecar's) are kept apart.
//!
//! Indices by local service name (span names, remote service names, traces)
//! are reference-counted so they stay exact under merging and eviction; the
//! query endpoints never scan spans of services they were not asked about.
//! Their keys are shared with the spans that carry the names, so a name is
//! held once however many spans carry it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::compact::{CompactSpan, TagKeys};
use super::model::Span;
use super::query::{QueryRequest, TimeWindow};
use super::trace;
use crate::span::{SpanId, TraceId};

/// Counted per trace beyond its spans: its map entry (a hash table at up to
/// twice its entries), its place in the arrival order, its list's slack and
/// its entries in the service index.
pub const TRACE_OVERHEAD: usize = 2 * std::mem::size_of::<(TraceId, StoredTrace)>() + 160;

/// Traces with more spans than this also index their spans by id, so a
/// span arriving for a huge trace is matched without a scan.
const INDEX_SPANS_FROM: usize = 32;

/// Spans of one trace plus what queries need to find it quickly.
#[derive(Debug, Default)]
struct StoredTrace {
    spans: Vec<CompactSpan>,
    /// Positions in `spans` by span id, once the trace is large.
    by_id: Option<HashMap<SpanId, Vec<usize>>>,
    /// The trace's timestamp as Zipkin's `QueryRequest.test` computes it.
    timestamp: Option<u64>,
    /// Arrival sequence number of its first span; breaks timestamp ties.
    sequence: u64,
    /// What the trace counts against the memory bound.
    memory_bytes: usize,
}

impl StoredTrace {
    /// The root span's timestamp, else the earliest timestamp of any span
    /// (Zipkin `QueryRequest.test`, which windows traces by this value).
    fn compute_timestamp(&self) -> Option<u64> {
        let with_timestamp = || self.spans.iter().filter(|s| s.timestamp.is_some());
        with_timestamp()
            .find(|s| s.root)
            .or_else(|| with_timestamp().min_by_key(|s| s.timestamp))
            .and_then(|s| s.timestamp)
    }

    fn decode(&self) -> Vec<Span> {
        self.spans.iter().filter_map(CompactSpan::decode).collect()
    }

    /// Positions of the spans with `id`.
    fn with_id(&self, id: SpanId) -> Vec<usize> {
        match &self.by_id {
            Some(by_id) => by_id.get(&id).cloned().unwrap_or_default(),
            None => (0..self.spans.len())
                .filter(|&i| self.spans[i].id == id)
                .collect(),
        }
    }

    fn push(&mut self, span: CompactSpan) {
        let position = self.spans.len();
        if let Some(by_id) = &mut self.by_id {
            by_id.entry(span.id).or_default().push(position);
        }
        self.spans.push(span);
        if self.by_id.is_none() && self.spans.len() > INDEX_SPANS_FROM {
            let mut by_id: HashMap<SpanId, Vec<usize>> = HashMap::new();
            for (i, span) in self.spans.iter().enumerate() {
                by_id.entry(span.id).or_default().push(i);
            }
            self.by_id = Some(by_id);
        }
    }
}

/// Reference counts for one local service name.
#[derive(Debug, Default)]
struct ServiceIndex {
    span_names: BTreeMap<Arc<str>, usize>,
    remote_services: BTreeMap<Arc<str>, usize>,
    /// Spans of this service per trace.
    traces: HashMap<TraceId, usize>,
}

/// The store. Not synchronised: the collector wraps it in a mutex.
#[derive(Debug)]
pub struct Store {
    max_spans: usize,
    /// The memory bound in bytes; the collector lowers it by what the
    /// tail sampler holds ([`Store::set_memory_limit`]).
    memory_limit: usize,
    traces: HashMap<TraceId, StoredTrace>,
    /// Trace ids in the order their first span arrived; the eviction order.
    arrival: VecDeque<TraceId>,
    span_count: usize,
    memory_bytes: usize,
    evicted_traces: u64,
    services: BTreeMap<Arc<str>, ServiceIndex>,
    /// Sequence number for the next new trace.
    next_sequence: u64,
    /// The tag keys of every span held (the tail sampler's too).
    keys: Arc<TagKeys>,
}

impl Store {
    /// An empty store holding at most `max_spans` spans and `memory_limit`
    /// bytes of them.
    pub fn new(max_spans: usize, memory_limit: usize) -> Self {
        Self {
            max_spans,
            memory_limit,
            traces: HashMap::new(),
            arrival: VecDeque::new(),
            span_count: 0,
            memory_bytes: 0,
            evicted_traces: 0,
            services: BTreeMap::new(),
            next_sequence: 0,
            keys: Arc::default(),
        }
    }

    /// The tag-key table spans are encoded with, for the tail sampler.
    pub fn keys(&self) -> &Arc<TagKeys> {
        &self.keys
    }

    /// Spans stored now (after merging duplicates).
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    /// Traces stored now.
    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// Bytes the stored traces count against the memory bound.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Whole traces evicted so far to stay within the bounds.
    pub fn evicted_traces(&self) -> u64 {
        self.evicted_traces
    }

    /// Sets the memory bound and evicts the oldest traces while over it.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.memory_limit = bytes;
        self.evict_over_bound();
    }

    /// Adds a validated batch, then evicts the oldest traces while over the bound.
    pub fn insert(&mut self, spans: Vec<Span>) {
        // By trace, in the order of each trace's first span in the batch.
        let mut order: Vec<TraceId> = Vec::new();
        let mut by_trace: HashMap<TraceId, Vec<CompactSpan>> = HashMap::new();
        for span in spans {
            let trace_id = span.trace_id;
            by_trace
                .entry(trace_id)
                .or_insert_with(|| {
                    order.push(trace_id);
                    Vec::new()
                })
                .push(CompactSpan::encode(span, &self.keys));
        }
        for trace_id in order {
            if let Some(spans) = by_trace.remove(&trace_id) {
                self.insert_trace(trace_id, spans);
            }
        }
    }

    /// Adds spans of one trace, then evicts the oldest traces while over
    /// the bound.
    pub fn insert_trace(&mut self, trace_id: TraceId, spans: Vec<CompactSpan>) {
        if !self.traces.contains_key(&trace_id) {
            self.arrival.push_back(trace_id);
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let trace = StoredTrace {
                sequence,
                memory_bytes: TRACE_OVERHEAD,
                ..StoredTrace::default()
            };
            self.memory_bytes += TRACE_OVERHEAD;
            self.traces.insert(trace_id, trace);
        }
        for span in spans {
            self.insert_span(trace_id, span);
        }
        if let Some(trace) = self.traces.get_mut(&trace_id) {
            trace.timestamp = trace.compute_timestamp();
        }
        self.evict_over_bound();
    }

    fn insert_span(&mut self, trace_id: TraceId, mut span: CompactSpan) {
        let Some(trace) = self.traces.get_mut(&trace_id) else {
            return;
        };
        if let Some((position, merged)) = merge_target(trace, &span, &self.keys) {
            let stored = &mut trace.spans[position];
            unindex(&mut self.services, trace_id, stored);
            let before = stored.memory_bytes();
            *stored = merged;
            index(&mut self.services, trace_id, stored);
            let after = stored.memory_bytes();
            trace.memory_bytes = trace.memory_bytes + after - before;
            self.memory_bytes = self.memory_bytes + after - before;
            return;
        }
        index(&mut self.services, trace_id, &mut span);
        let bytes = span.memory_bytes();
        trace.memory_bytes += bytes;
        self.memory_bytes += bytes;
        trace.push(span);
        self.span_count += 1;
    }

    fn evict_over_bound(&mut self) {
        while self.span_count > self.max_spans || self.memory_bytes > self.memory_limit {
            let Some(oldest) = self.arrival.pop_front() else {
                break;
            };
            if let Some(trace) = self.traces.remove(&oldest) {
                for span in &trace.spans {
                    unindex(&mut self.services, oldest, span);
                }
                self.span_count -= trace.spans.len();
                self.memory_bytes -= trace.memory_bytes;
                self.evicted_traces += 1;
            }
        }
    }

    /// Local service names, sorted (`GET /api/v2/services`).
    pub fn service_names(&self) -> Vec<&str> {
        self.services.keys().map(AsRef::as_ref).collect()
    }

    /// Span names recorded by `service`, sorted (`GET /api/v2/spans`).
    pub fn span_names(&self, service: &str) -> Vec<&str> {
        self.services.get(service).map_or_else(Vec::new, |index| {
            index.span_names.keys().map(AsRef::as_ref).collect()
        })
    }

    /// Remote service names `service` talked to, sorted (`GET /api/v2/remoteServices`).
    pub fn remote_service_names(&self, service: &str) -> Vec<&str> {
        self.services.get(service).map_or_else(Vec::new, |index| {
            index.remote_services.keys().map(AsRef::as_ref).collect()
        })
    }

    /// One trace's spans, in arrival order (`GET /api/v2/trace/{traceId}`).
    pub fn trace(&self, trace_id: TraceId) -> Option<Vec<Span>> {
        self.traces.get(&trace_id).map(StoredTrace::decode)
    }

    /// Traces matching `request`, newest first, at most `request.limit`
    /// (`GET /api/v2/traces`, as Zipkin's in-memory storage orders them).
    /// Only the traces looked at until the limit is reached are decoded.
    pub fn query(&self, request: &QueryRequest) -> Vec<Vec<Span>> {
        self.in_window(request.window, request.service_name.as_deref())
            .filter(|spans| request.matches(spans))
            .take(request.limit)
            .collect()
    }

    /// Traces whose timestamp lies in `window`, newest first (the later
    /// arrival first on equal timestamps); only traces
    /// with a span of `service` when one is given. Each is decoded as the
    /// iterator reaches it.
    pub fn in_window(
        &self,
        window: TimeWindow,
        service: Option<&str>,
    ) -> impl Iterator<Item = Vec<Span>> + '_ {
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
        found.into_iter().map(|(_, trace)| trace.decode())
    }
}

/// The stored span `incoming` is another piece of, and the two merged
/// (Zipkin `Span.Builder.merge`); only spans with its id are decoded.
fn merge_target(
    trace: &StoredTrace,
    incoming: &CompactSpan,
    keys: &Arc<TagKeys>,
) -> Option<(usize, CompactSpan)> {
    let same_id = trace.with_id(incoming.id);
    if same_id.is_empty() {
        return None;
    }
    let later = incoming.decode()?;
    same_id.into_iter().find_map(|position| {
        let mut merged = trace.spans.get(position)?.decode()?;
        trace::is_same_span(&merged, &later).then(|| {
            merged.merge(&later);
            (position, CompactSpan::encode(merged, keys))
        })
    })
}

/// The sort key of a trace inside `window`: (timestamp, arrival).
fn window_timestamp(trace: &StoredTrace, window: TimeWindow) -> Option<((u64, u64), &StoredTrace)> {
    let timestamp = trace.timestamp?;
    window
        .contains(timestamp)
        .then_some(((timestamp, trace.sequence), trace))
}

/// Counts `span` in the index of its service and points its names at the
/// index's keys, so each name is held once.
fn index(
    services: &mut BTreeMap<Arc<str>, ServiceIndex>,
    trace_id: TraceId,
    span: &mut CompactSpan,
) {
    let Some(service) = &span.service else {
        return;
    };
    let service = match services.get_key_value(service) {
        Some((key, _)) => key.clone(),
        None => {
            services.insert(service.clone(), ServiceIndex::default());
            service.clone()
        }
    };
    let Some(entry) = services.get_mut(&service) else {
        return;
    };
    *entry.traces.entry(trace_id).or_default() += 1;
    increment(&mut entry.span_names, &mut span.name);
    increment(&mut entry.remote_services, &mut span.remote_service);
    span.service = Some(service);
}

fn unindex(services: &mut BTreeMap<Arc<str>, ServiceIndex>, trace_id: TraceId, span: &CompactSpan) {
    let Some(service) = span.service.as_deref() else {
        return;
    };
    let Some(entry) = services.get_mut(service) else {
        return;
    };
    if let Some(count) = entry.traces.get_mut(&trace_id) {
        *count -= 1;
        if *count == 0 {
            entry.traces.remove(&trace_id);
        }
    }
    decrement(&mut entry.span_names, span.name.as_deref());
    decrement(&mut entry.remote_services, span.remote_service.as_deref());
    if entry.traces.is_empty() {
        services.remove(service);
    }
}

/// Counts `name` (when set) and replaces it with the key it is counted under.
fn increment(counts: &mut BTreeMap<Arc<str>, usize>, name: &mut Option<Arc<str>>) {
    let Some(key) = name.as_ref() else {
        return;
    };
    let shared = match counts.get_key_value(key) {
        Some((shared, _)) => shared.clone(),
        None => key.clone(),
    };
    *counts.entry(shared.clone()).or_default() += 1;
    *name = Some(shared);
}

fn decrement(counts: &mut BTreeMap<Arc<str>, usize>, name: Option<&str>) {
    let Some(name) = name else {
        return;
    };
    if let Some(count) = counts.get_mut(name) {
        *count -= 1;
        if *count == 0 {
            counts.remove(name);
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

    fn trace_ids(found: impl Iterator<Item = Vec<Span>>) -> Vec<String> {
        found
            .map(|spans| crate::collector::model::trace_id_string(spans[0].trace_id))
            .collect()
    }

    #[test]
    fn merges_copies_with_the_same_id_and_kind() {
        let mut store = Store::new(100, usize::MAX);
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
        let mut store = Store::new(100, usize::MAX);
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
        let mut store = Store::new(5, usize::MAX);
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
    fn the_memory_bound_evicts_whole_oldest_traces() {
        let mut store = Store::new(usize::MAX, usize::MAX);
        store.insert((1..=3).map(|id| local("a", id, "svc-a", "x")).collect());
        let one_trace = store.memory_bytes();
        assert!(one_trace > TRACE_OVERHEAD);
        store.insert((1..=3).map(|id| local("b", id, "svc-b", "x")).collect());
        assert_eq!(store.memory_bytes(), 2 * one_trace, "same shape, same cost");
        // Room for one and a half traces: the oldest goes, whole.
        store.set_memory_limit(one_trace * 3 / 2);
        assert_eq!((store.trace_count(), store.evicted_traces()), (1, 1));
        assert_eq!(store.memory_bytes(), one_trace);
        assert!(store.trace(TraceId::new(0xa).unwrap()).is_none());
        // A merge that adds a tag grows the count; eviction frees it all.
        store.insert(vec![span("b", 1, json!({"tags": {"k": "a longer value"}}))]);
        assert!(store.memory_bytes() > one_trace);
        store.set_memory_limit(0);
        assert_eq!((store.memory_bytes(), store.span_count()), (0, 0));
        assert!(store.service_names().is_empty());
    }

    #[test]
    fn a_large_trace_merges_pieces_through_its_id_index() {
        let mut store = Store::new(usize::MAX, usize::MAX);
        store.insert((1..=40).map(|id| local("a", id, "svc", "x")).collect());
        store.insert(vec![span(
            "a",
            37,
            json!({"duration": 5, "localEndpoint": {"serviceName": "svc"}}),
        )]);
        store.insert(vec![local("a", 41, "svc", "y")]);
        assert_eq!(store.span_count(), 41);
        let trace = store.trace(TraceId::new(0xa).unwrap()).unwrap();
        assert_eq!((trace[36].id.get(), trace[36].duration), (37, Some(5)));
        assert_eq!(store.span_names("svc"), ["x", "y"]);
    }

    #[test]
    fn a_trace_larger_than_the_bound_is_not_kept() {
        let mut store = Store::new(2, usize::MAX);
        store.insert((1..=3).map(|id| local("a", id, "svc", "x")).collect());
        assert_eq!((store.span_count(), store.trace_count()), (0, 0));
        assert_eq!(store.evicted_traces(), 1);
        assert!(store.service_names().is_empty());
    }

    #[test]
    fn indices_follow_merges_and_evictions() {
        let mut store = Store::new(3, usize::MAX);
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
        let mut store = Store::new(100, usize::MAX);
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
            trace_ids(store.in_window(everything(), None)),
            ["000000000000000b", "000000000000000a", "000000000000000c"]
        );
        let params = Params::parse(Some("limit=2&endTs=1&lookback=1"));
        let mut request = QueryRequest::from_params(&params, 0).unwrap();
        request.window = everything();
        assert_eq!(store.query(&request).len(), 2);
    }

    #[test]
    fn service_filtered_windows_use_the_service_index() {
        let mut store = Store::new(100, usize::MAX);
        store.insert(vec![local("a", 1, "gw", "x"), local("b", 1, "users", "x")]);
        let found = store.in_window(everything(), Some("users"));
        assert_eq!(trace_ids(found), ["000000000000000b"]);
        assert_eq!(store.in_window(everything(), Some("nope")).count(), 0);
        let narrow = TimeWindow {
            end_ts_ms: T0 / 1000 - 1,
            lookback_ms: 1000,
        };
        assert_eq!(store.in_window(narrow, None).count(), 0);
    }
}
