//! One exporter's collector endpoints, as the request path sees them, and
//! the choice of one endpoint per trace.
//!
//! Each endpoint has its own queue, batcher, connection, retries and
//! outage log (see the module docs of `export`): a collector that is down
//! fills its own queue, and the spans of its traces wait there, are
//! retried, and are dropped and counted when the queue is full or the
//! retries run out. They are never sent to another endpoint instead: a
//! tail-sampling collector would then decide on a fragment of the trace
//! while another holds the rest. The set of endpoints changes only when
//! the configuration or DNS says so (`discovery`); then only the traces
//! of the endpoint that joined or left move ([`super::rendezvous`]).
//!
//! The set is read on every span without a lock: an [`ArcSwap`] holds it,
//! and a change swaps in a new list.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::rendezvous;
use super::sink::Queue;
use crate::metrics::DropCounter;
use crate::span::Span;

/// One collector endpoint: its name (the URL, or `ip:port` with DNS), the
/// hash seed of that name, and the request path's end of its queue.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    pub name: Arc<str>,
    seed: u64,
    queue: Queue,
}

impl Endpoint {
    pub fn new(name: Arc<str>, queue: Queue) -> Self {
        Self {
            seed: rendezvous::seed(&name),
            name,
            queue,
        }
    }
}

/// The endpoint set of one exporter, shared by every clone of the sink
/// and, with `export.resolve: dns`, by the task that updates it.
#[derive(Clone, Debug)]
pub(super) struct EndpointSet {
    current: Arc<ArcSwap<Vec<Endpoint>>>,
    /// Counts spans that arrive while the set is empty (DNS found nothing yet).
    no_endpoint: DropCounter,
}

impl EndpointSet {
    pub fn new(endpoints: Vec<Endpoint>, no_endpoint: DropCounter) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(endpoints)),
            no_endpoint,
        }
    }

    /// Queues `span` for the endpoint its trace goes to.
    pub fn offer(&self, span: Arc<Span>) {
        let endpoints = self.current.load();
        let chosen = match endpoints.as_slice() {
            [] => None,
            [only] => Some(only),
            many => rendezvous::pick(span.trace_id, many.iter().map(|e| e.seed))
                .and_then(|index| many.get(index)),
        };
        match chosen {
            Some(endpoint) => endpoint.queue.offer(span),
            None => self.no_endpoint.inc(),
        }
    }

    /// The names in the set now.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.current.load().iter().map(|e| e.name.clone()).collect()
    }

    /// Replaces the set: `keep` says which current endpoints stay, `added`
    /// joins them. A removed endpoint's queue closes once no sink holds
    /// the old list, and its batcher flushes what it holds and stops.
    pub fn replace(&self, keep: impl Fn(&str) -> bool, added: Vec<Endpoint>) {
        let mut next: Vec<Endpoint> = self
            .current
            .load()
            .iter()
            .filter(|e| keep(&e.name))
            .cloned()
            .collect();
        next.extend(added);
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::sample::server_span;
    use crate::export::sink::Doorbell;
    use crate::metrics::Metrics;
    use crate::span::TraceId;
    use tokio::sync::mpsc;

    fn endpoint(metrics: &Metrics, name: &str) -> (Endpoint, mpsc::Receiver<Arc<Span>>) {
        let (sender, receiver) = mpsc::channel(64);
        let em = metrics.export.endpoint("zipkin", name);
        let queue = Queue::new(sender, Arc::new(Doorbell::new(64)), &em, "zipkin");
        (Endpoint::new(name.into(), queue), receiver)
    }

    fn span_of(trace: u128) -> Arc<Span> {
        let mut span = server_span();
        span.trace_id = TraceId::new(trace).unwrap();
        Arc::new(span)
    }

    #[test]
    fn each_trace_goes_to_the_endpoint_rendezvous_picks_and_only_there() {
        let metrics = Metrics::new();
        let names = ["a:1", "b:1", "c:1"];
        let (endpoints, mut queues): (Vec<_>, Vec<_>) =
            names.iter().map(|n| endpoint(&metrics, n)).unzip();
        let set = EndpointSet::new(
            endpoints,
            metrics
                .export
                .exporter("zipkin")
                .dropped_counter("no_endpoint"),
        );
        let seeds: Vec<u64> = names.iter().map(|n| rendezvous::seed(n)).collect();
        for trace in 1..=300u128 {
            let trace = trace * 0x9e37_79b9_7f4a_7c15_u128;
            set.offer(span_of(trace));
            set.offer(span_of(trace));
            let expected =
                rendezvous::pick(TraceId::new(trace).unwrap(), seeds.iter().copied()).unwrap();
            for (i, queue) in queues.iter_mut().enumerate() {
                let got = std::iter::from_fn(|| queue.try_recv().ok()).count();
                assert_eq!(got, if i == expected { 2 } else { 0 }, "trace {trace:x}");
            }
        }
    }

    #[test]
    fn an_empty_set_counts_its_drops_and_a_removed_endpoint_closes() {
        let metrics = Metrics::new();
        let zipkin = metrics.export.exporter("zipkin");
        let set = EndpointSet::new(Vec::new(), zipkin.dropped_counter("no_endpoint"));
        set.offer(span_of(1));
        assert_eq!(zipkin.dropped_counter("no_endpoint").get(), 1);

        let (a, mut a_rx) = endpoint(&metrics, "a:1");
        set.replace(|_| true, vec![a]);
        set.offer(span_of(1));
        assert!(a_rx.try_recv().is_ok());
        assert_eq!(set.names(), vec![Arc::<str>::from("a:1")]);
        set.replace(|name| name != "a:1", Vec::new());
        assert!(set.names().is_empty());
        assert!(
            matches!(
                a_rx.try_recv(),
                Err(mpsc::error::TryRecvError::Disconnected)
            ),
            "the removed endpoint's queue is closed"
        );
    }
}
