//! How Zipkin reads the spans of one trace: which copies are one span, the
//! fix-ups for B3 shared spans, and the parent of each span in the tree.
//!
//! B3 lets a server reuse its caller's span id (Zipkin v2 API, `Span.shared`;
//! zipkin-js with `supportsJoin`, Brave): a span-sharing app behind a sidecar
//! reports a SERVER span with the sidecar's span id and `shared: true`, and a
//! span-sharing server reports the id of the CLIENT span that called it. Those
//! are different spans with one id. Ports of openzipkin/zipkin:
//!
//! - [`is_same_span`]: `Trace.merge`'s rule for two copies of one span sent in
//!   pieces: same id, same `shared` flag, and local endpoints that do not
//!   contradict each other (its `EndpointTracker`: service name, IPs and port
//!   each either equal or absent on one side). tracehop also requires the
//!   kinds to agree (equal or absent on one side): `Trace.merge` would fold a
//!   service's CLIENT span into its own non-shared SERVER span of the same id
//!   (a service calling itself with shared ids) and lose one side.
//! - [`fix_shared`]: `Trace.merge`'s fix-ups: a SERVER span with the id of a
//!   CLIENT span is shared even when its tracer did not say so, and a shared
//!   span without a parent takes the parent of the span whose id it shares.
//! - [`parents`]: `SpanNode.Builder`'s tree: a shared span hangs under the
//!   non-shared span with its id (the client, or the sidecar's server span); a
//!   span whose parent id names a shared span on its own endpoint hangs under
//!   that shared span, else under the non-shared span with that id; the first
//!   root (by span id, as Zipkin sorts) is the root, and other roots and spans
//!   whose parent is missing hang under it.

use std::borrow::Cow;
use std::collections::HashMap;

use super::model::{Endpoint, Kind, Span};
use crate::span::SpanId;

/// Whether `incoming` is another piece of the stored span `stored` (same id
/// assumed) and should be merged into it rather than kept beside it.
pub fn is_same_span(stored: &Span, incoming: &Span) -> bool {
    let kinds_agree = match (stored.kind, incoming.kind) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    stored.id == incoming.id
        && stored.shared == incoming.shared
        && kinds_agree
        && endpoints_agree(
            stored.local_endpoint.as_ref(),
            incoming.local_endpoint.as_ref(),
        )
}

/// Zipkin `Trace.EndpointTracker.tryMerge`: no field set on both sides differs.
fn endpoints_agree(a: Option<&Endpoint>, b: Option<&Endpoint>) -> bool {
    fn agree<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
    match (a, b) {
        (Some(a), Some(b)) => {
            agree(&a.service_name, &b.service_name)
                && agree(&a.ipv4, &b.ipv4)
                && agree(&a.ipv6, &b.ipv6)
                && agree(&a.port, &b.port)
        }
        _ => true,
    }
}

/// The trace with Zipkin's shared-span fix-ups applied; borrowed unchanged
/// when no two spans share an id (the common case).
pub fn fix_shared(spans: &[Span]) -> Cow<'_, [Span]> {
    let by_id = index_by_id(spans);
    if by_id.values().all(|positions| positions.len() < 2) {
        return Cow::Borrowed(spans);
    }
    let mut fixed = spans.to_vec();
    for positions in by_id.values().filter(|positions| positions.len() > 1) {
        let has_kind = |kind| positions.iter().any(|&p| spans[p].kind == Some(kind));
        // Some instrumentation leaves `shared` off the server half of a
        // client/server pair; with the whole trace at hand it can be restored.
        if has_kind(Kind::Client) {
            for &p in positions {
                if fixed[p].kind == Some(Kind::Server) {
                    fixed[p].shared = true;
                }
            }
        }
        // A shared server that was not told its parent id: it is the same RPC
        // as the span whose id it shares, so it has that span's parent.
        let parent = positions
            .iter()
            .find(|&&p| !fixed[p].shared)
            .and_then(|&p| fixed[p].parent_id);
        for &p in positions {
            if fixed[p].shared && fixed[p].parent_id.is_none() {
                fixed[p].parent_id = parent;
            }
        }
    }
    Cow::Owned(fixed)
}

/// The position of each span's parent in the trace tree (Zipkin's
/// `SpanNode.Builder`), `None` for the root and for spans not attached to
/// anything (no root found, or a parent cycle). Expects [`fix_shared`] spans.
pub fn parents(spans: &[Span]) -> Vec<Option<usize>> {
    let by_id = index_by_id(spans);
    let find = |id: SpanId, want: &dyn Fn(&Span) -> bool| {
        by_id.get(&id)?.iter().copied().find(|&p| want(&spans[p]))
    };
    let root = spans
        .iter()
        .enumerate()
        .filter(|(_, span)| !span.shared && span.parent_id.is_none())
        .min_by_key(|(position, span)| (span.id, *position))
        .map(|(position, _)| position);
    spans
        .iter()
        .enumerate()
        .map(|(position, span)| {
            if Some(position) == root {
                return None;
            }
            let parent = if span.shared {
                find(span.id, &|s| !s.shared)
            } else {
                span.parent_id.and_then(|parent_id| {
                    find(parent_id, &|s| {
                        s.shared && s.local_endpoint == span.local_endpoint
                    })
                    .or_else(|| find(parent_id, &|s| !s.shared))
                })
            };
            parent.filter(|&p| p != position).or(root)
        })
        .collect()
}

fn index_by_id(spans: &[Span]) -> HashMap<SpanId, Vec<usize>> {
    let mut by_id: HashMap<SpanId, Vec<usize>> = HashMap::with_capacity(spans.len());
    for (position, span) in spans.iter().enumerate() {
        by_id.entry(span.id).or_default().push(position);
    }
    by_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::decode_span;
    use serde_json::{Value, json};

    fn span(id: u64, extra: Value) -> Span {
        let mut value = json!({"traceId": "00000000000000aa", "id": format!("{id:016x}")});
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) {
            map.extend(extra);
        }
        decode_span(value).unwrap()
    }

    #[test]
    fn merge_rule_needs_id_kind_shared_flag_and_local_service_to_match() {
        let base = json!({"kind": "SERVER", "localEndpoint": {"serviceName": "users"}});
        let stored = span(1, base.clone());
        let with = |changes: Value| {
            let mut value = base.clone();
            value
                .as_object_mut()
                .unwrap()
                .extend(changes.as_object().unwrap().clone());
            span(1, value)
        };
        let cases = [
            ("same id, kind, flag and service", with(json!({})), true),
            (
                "a later piece with only a duration",
                span(1, json!({"duration": 5})),
                true,
            ),
            ("no kind on one side", with(json!({"kind": null})), true),
            (
                "more endpoint detail",
                with(json!({"localEndpoint": {"serviceName": "users", "port": 80}})),
                true,
            ),
            ("another id", span(2, base.clone()), false),
            ("shared differs", with(json!({"shared": true})), false),
            (
                "service differs",
                with(json!({"localEndpoint": {"serviceName": "app"}})),
                false,
            ),
            ("kind differs", with(json!({"kind": "CLIENT"})), false),
        ];
        for (what, incoming, expected) in cases {
            assert_eq!(is_same_span(&stored, &incoming), expected, "{what}");
        }
        // The endpoint check is Zipkin's EndpointTracker: any field both set.
        let at = |endpoint: Value| span(1, json!({"localEndpoint": endpoint}));
        let ip = at(json!({"ipv4": "10.0.0.1", "port": 80}));
        assert!(is_same_span(&ip, &at(json!({"ipv4": "10.0.0.1"}))));
        assert!(!is_same_span(&ip, &at(json!({"ipv4": "10.0.0.2"}))));
        assert!(!is_same_span(&ip, &at(json!({"port": 81}))));
        assert!(!is_same_span(
            &at(json!({"ipv6": "::1"})),
            &at(json!({"ipv6": "::2"}))
        ));
    }

    #[test]
    fn fix_ups_restore_the_shared_flag_and_the_parent() {
        let spans = vec![
            span(
                1,
                json!({"kind": "SERVER", "localEndpoint": {"serviceName": "users"}}),
            ),
            span(
                1,
                json!({"kind": "CLIENT", "parentId": "0000000000000009",
                "localEndpoint": {"serviceName": "gateway"}}),
            ),
            span(
                2,
                json!({"kind": "SERVER", "localEndpoint": {"serviceName": "a"}}),
            ),
            span(
                2,
                json!({"kind": "SERVER", "shared": true, "localEndpoint": {"serviceName": "b"}}),
            ),
        ];
        let fixed = fix_shared(&spans);
        assert!(fixed[0].shared, "server half of a client/server pair");
        assert_eq!(fixed[0].parent_id, SpanId::new(9), "the client's parent");
        // Two SERVER spans, one already shared; the other has no client pair.
        assert!(!fixed[2].shared);
        assert_eq!(fixed[3].parent_id, None, "the span it shares has no parent");
        // Nothing to fix: the input is returned as is.
        let plain = vec![
            span(1, json!({})),
            span(2, json!({"parentId": "0000000000000001"})),
        ];
        assert!(matches!(fix_shared(&plain), Cow::Borrowed(_)));
    }

    #[test]
    fn tree_hangs_shared_spans_under_the_span_whose_id_they_share() {
        // frontend CLIENT 1 → sidecar SERVER 2 (users) + the app's shared
        // SERVER 2 (users-app), whose own CLIENT 3 calls the database.
        let spans = vec![
            span(
                3,
                json!({"kind": "CLIENT", "parentId": "0000000000000002",
                "localEndpoint": {"serviceName": "users-app"}}),
            ),
            span(
                2,
                json!({"kind": "SERVER", "shared": true, "parentId": "0000000000000001",
                "localEndpoint": {"serviceName": "users-app"}}),
            ),
            span(
                2,
                json!({"kind": "SERVER", "parentId": "0000000000000001",
                "localEndpoint": {"serviceName": "users"}}),
            ),
            span(
                1,
                json!({"kind": "CLIENT", "localEndpoint": {"serviceName": "frontend"}}),
            ),
            // Orphan: its parent was never reported; it hangs under the root.
            span(7, json!({"parentId": "0000000000000006"})),
            // A second root hangs under the first (by id), as in Zipkin.
            span(8, json!({})),
        ];
        assert_eq!(
            parents(&spans),
            [Some(1), Some(2), Some(3), None, Some(3), Some(3)]
        );
        // Without a root, unattached spans stay unattached.
        let headless = vec![span(4, json!({"parentId": "0000000000000001"}))];
        assert_eq!(parents(&headless), [None]);
        // A span naming itself as parent cannot be its own parent.
        let mut own = span(5, json!({"parentId": "0000000000000009"}));
        own.parent_id = SpanId::new(5);
        assert_eq!(parents(&[own]), [None]);
    }
}
