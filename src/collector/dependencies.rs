//! Service dependency links (`GET /api/v2/dependencies`) derived from traces.
//!
//! A port of Zipkin's `DependencyLinker`: each trace gets Zipkin's shared-span
//! fix-ups and is arranged as Zipkin's tree ([`trace::parents`]: a B3 shared
//! server span hangs under the span whose id it shares, so a shared client/
//! server pair is one RPC), then every remote span yields at most one link:
//! a SERVER (or CONSUMER) span links from its caller (its remote endpoint, or
//! the service of its nearest remote ancestor span) to itself; a CLIENT (or
//! PRODUCER) span links from itself to its remote endpoint, but only when
//! nothing was recorded below it (an instrumented server under it is counted
//! instead, so one call is never counted twice). A span without a kind but
//! with both service names counts as a CLIENT. A link is an error when the
//! span, or the client half of a split RPC (the server's parent, or the
//! client whose id a shared server span carries), has the `error` tag.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Kind, Span};
use super::trace;

/// One edge of the service graph (`definitions/DependencyLink`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyLink {
    /// The caller: client, producer or broker.
    pub parent: String,
    /// The callee: server, consumer or broker.
    pub child: String,
    /// Traced calls from parent to child.
    pub call_count: u64,
    /// Left out when zero, as Zipkin's JSON writer does.
    #[serde(skip_serializing_if = "is_zero")]
    pub error_count: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// Accumulates links over many traces.
#[derive(Debug, Default)]
pub struct DependencyLinker {
    /// (parent, child) → (calls, errors); sorted for a stable response.
    links: BTreeMap<(String, String), (u64, u64)>,
}

impl DependencyLinker {
    /// Adds the links of one trace.
    pub fn put_trace(&mut self, spans: &[Span]) {
        let spans = &*trace::fix_shared(spans);
        let parents = trace::parents(spans);
        let mut has_children = vec![false; spans.len()];
        for parent in parents.iter().flatten() {
            has_children[*parent] = true;
        }
        for (position, span) in spans.iter().enumerate() {
            // Prefer the server's view of a call when the server was traced.
            if span.kind == Some(Kind::Client) && has_children[position] {
                continue;
            }
            if let Some((parent, child, error)) = self.link_of(spans, &parents, position) {
                self.add(parent, child, error);
            }
        }
    }

    /// The link one span contributes, if any (Zipkin `DependencyLinker.putTrace`).
    fn link_of<'a>(
        &mut self,
        spans: &'a [Span],
        parents: &[Option<usize>],
        position: usize,
    ) -> Option<(&'a str, &'a str, bool)> {
        let span = &spans[position];
        let service = span.local_service_name();
        let remote = span.remote_service_name();
        let kind = match span.kind {
            Some(kind) => kind,
            // A span of unknown kind with both sides named is taken as a client.
            None if service.is_some() && remote.is_some() => Kind::Client,
            None => return None,
        };
        let (mut parent, child) = match kind {
            Kind::Server | Kind::Consumer => (remote, service),
            Kind::Client | Kind::Producer => (service, remote),
        };
        let mut error = span.has_error_tag();
        if matches!(kind, Kind::Producer | Kind::Consumer) {
            // Messaging links need both the service and the broker named.
            return Some((parent?, child?, error));
        }
        let ancestor = first_remote_ancestor(spans, parents, position);
        if let Some(ancestor) = ancestor
            && let Some(ancestor_name) = ancestor.local_service_name()
        {
            // A client span whose service differs from its remote ancestor's
            // means an uninstrumented hop in between: link to it as well.
            if let (Kind::Client, Some(service)) = (kind, service)
                && ancestor_name != service
            {
                self.add(ancestor_name, service, false);
            }
            if kind == Kind::Server || parent.is_none() {
                parent = Some(ancestor_name);
            }
            // The server half of a split RPC inherits the client half's
            // error. Zipkin checks only `parentId == client id`; a shared
            // server has the client's own id, and is the same RPC too.
            let halves = span.parent_id == Some(ancestor.id) || span.id == ancestor.id;
            if !error && ancestor.kind == Some(Kind::Client) && halves {
                error = ancestor.has_error_tag();
            }
        }
        Some((parent?, child?, error))
    }

    fn add(&mut self, parent: &str, child: &str, error: bool) {
        let counts = self
            .links
            .entry((parent.to_owned(), child.to_owned()))
            .or_default();
        counts.0 += 1;
        counts.1 += u64::from(error);
    }

    /// The accumulated links, sorted by parent then child.
    pub fn links(self) -> Vec<DependencyLink> {
        self.links
            .into_iter()
            .map(
                |((parent, child), (call_count, error_count))| DependencyLink {
                    parent,
                    child,
                    call_count,
                    error_count,
                },
            )
            .collect()
    }
}

/// The nearest ancestor with a kind (Zipkin `DependencyLinker.firstRemoteAncestor`).
/// The walk is bounded by the span count, so a parent cycle in bad data ends.
fn first_remote_ancestor<'a>(
    spans: &'a [Span],
    parents: &[Option<usize>],
    position: usize,
) -> Option<&'a Span> {
    let mut current = parents[position];
    for _ in 0..spans.len() {
        let ancestor = current?;
        if spans[ancestor].kind.is_some() {
            return Some(&spans[ancestor]);
        }
        current = parents[ancestor];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::decode_span;
    use serde_json::{Value, json};

    /// (id, parent, kind, local service, remote service, error)
    type Row = (u64, u64, &'static str, &'static str, &'static str, bool);

    fn trace(rows: &[Row]) -> Vec<Span> {
        rows.iter()
            .map(|&(id, parent, kind, local, remote, error)| {
                let mut span = json!({"traceId": "00000000000000aa", "id": format!("{id:016x}"),
                    "localEndpoint": {"serviceName": local},
                    "remoteEndpoint": {"serviceName": remote}});
                if parent != 0 {
                    span["parentId"] = json!(format!("{parent:016x}"));
                }
                if !kind.is_empty() {
                    span["kind"] = json!(kind);
                }
                if error {
                    span["tags"] = json!({"error": "boom"});
                }
                decode_span(span).unwrap()
            })
            .collect()
    }

    fn links(traces: &[Vec<Span>]) -> Value {
        let mut linker = DependencyLinker::default();
        for spans in traces {
            linker.put_trace(spans);
        }
        serde_json::to_value(linker.links()).unwrap()
    }

    /// gateway → users, gateway → orders → users, as tracehop sidecars record
    /// it: the CLIENT span's child is the callee's SERVER span.
    fn demo(error_on_orders_client: bool) -> Vec<Span> {
        trace(&[
            (1, 0, "SERVER", "gateway", "", false),
            (2, 1, "CLIENT", "gateway", "users", false),
            (3, 2, "SERVER", "users", "", false),
            (4, 1, "CLIENT", "gateway", "orders", error_on_orders_client),
            (5, 4, "SERVER", "orders", "", false),
            (6, 5, "CLIENT", "orders", "users", false),
            (7, 6, "SERVER", "users", "", true),
        ])
    }

    #[test]
    fn counts_calls_and_errors_between_services() {
        assert_eq!(
            links(&[demo(false), demo(true)]),
            json!([
                {"parent": "gateway", "child": "orders", "callCount": 2, "errorCount": 1},
                {"parent": "gateway", "child": "users", "callCount": 2},
                {"parent": "orders", "child": "users", "callCount": 2, "errorCount": 2},
            ])
        );
    }

    #[test]
    fn client_without_a_traced_server_links_to_its_remote_service() {
        let spans = trace(&[
            (1, 0, "SERVER", "orders", "", false),
            (2, 1, "", "orders", "", false),
            (3, 2, "CLIENT", "orders", "postgres", true),
        ]);
        assert_eq!(
            links(&[spans]),
            json!([{"parent": "orders", "child": "postgres", "callCount": 1, "errorCount": 1}])
        );
    }

    #[test]
    fn root_server_links_from_a_named_remote_and_local_spans_are_skipped() {
        let spans = trace(&[
            (1, 0, "SERVER", "gateway", "browser", false),
            (2, 1, "", "gateway", "", false),
        ]);
        assert_eq!(
            links(&[spans]),
            json!([{"parent": "browser", "child": "gateway", "callCount": 1}])
        );
        // Without a caller name the root server has no link.
        assert_eq!(
            links(&[trace(&[(1, 0, "SERVER", "gateway", "", false)])]),
            json!([])
        );
    }

    #[test]
    fn shared_span_ids_count_once() {
        // B3 shared span: the server reuses the client's id.
        let mut spans = trace(&[
            (1, 0, "SERVER", "gateway", "", false),
            (2, 1, "CLIENT", "gateway", "users", false),
            (2, 1, "SERVER", "users", "", false),
        ]);
        spans[2].shared = true;
        assert_eq!(
            links(&[spans]),
            json!([{"parent": "gateway", "child": "users", "callCount": 1}])
        );
    }

    #[test]
    fn a_shared_pair_without_the_flag_or_parent_is_still_one_call() {
        // Instrumentation that reuses the client's id but sets neither
        // `shared` nor the parent id (Zipkin's Trace.merge fix-ups apply).
        let spans = trace(&[
            (1, 0, "SERVER", "gateway", "", false),
            (2, 1, "CLIENT", "gateway", "users", true),
            (2, 0, "SERVER", "users", "", false),
            (3, 2, "CLIENT", "users", "postgres", false),
        ]);
        // The client half's error is the RPC's error.
        assert_eq!(
            links(&[spans]),
            json!([
                {"parent": "gateway", "child": "users", "callCount": 1, "errorCount": 1},
                {"parent": "users", "child": "postgres", "callCount": 1},
            ])
        );
    }

    #[test]
    fn a_span_sharing_app_behind_a_sidecar() {
        // frontend calls the sidecar ("users"); the app behind it joins the
        // sidecar's span id ("users-app", shared) and calls the database.
        let mut spans = trace(&[
            (1, 0, "CLIENT", "frontend", "users", false),
            (2, 1, "SERVER", "users", "", false),
            (2, 1, "SERVER", "users-app", "", false),
            (3, 2, "CLIENT", "users-app", "postgres", false),
        ]);
        spans[2].shared = true;
        // As Zipkin's DependencyLinker: the shared server's caller is the
        // span whose id it shares, so each hop is counted once.
        assert_eq!(
            links(&[spans]),
            json!([
                {"parent": "frontend", "child": "users", "callCount": 1},
                {"parent": "users", "child": "users-app", "callCount": 1},
                {"parent": "users-app", "child": "postgres", "callCount": 1},
            ])
        );
    }

    #[test]
    fn an_orphan_hangs_under_the_root_as_in_zipkin() {
        // The client span between gateway and users was never reported.
        let spans = trace(&[
            (1, 0, "SERVER", "gateway", "", false),
            (3, 2, "SERVER", "users", "", false),
        ]);
        assert_eq!(
            links(&[spans]),
            json!([{"parent": "gateway", "child": "users", "callCount": 1}])
        );
    }

    #[test]
    fn messaging_links_need_both_names() {
        let spans = trace(&[
            (1, 0, "PRODUCER", "orders", "kafka", false),
            (2, 1, "CONSUMER", "billing", "kafka", false),
            (3, 1, "CONSUMER", "audit", "", false),
        ]);
        assert_eq!(
            links(&[spans]),
            json!([
                {"parent": "kafka", "child": "billing", "callCount": 1},
                {"parent": "orders", "child": "kafka", "callCount": 1},
            ])
        );
    }

    #[test]
    fn parent_cycles_in_bad_data_terminate() {
        let spans = trace(&[
            (1, 2, "", "a", "", false),
            (2, 1, "", "a", "", false),
            (3, 1, "SERVER", "b", "", false),
        ]);
        assert_eq!(links(&[spans]), json!([]));
    }
}
