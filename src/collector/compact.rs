//! The compact form the collector holds spans in, and what it costs.
//!
//! A decoded [`Span`] costs about three times its JSON (a `String` and a
//! map node per tag, each a heap allocation). The store and the tail
//! sampler's buffer instead keep each span encoded once, as Zipkin's proto3
//! `Span` message (`proto/zipkin.proto`: binary ids, no field names), beside
//! the few values their indexes need (id, timestamp, root or not, the three
//! names the query API lists). Reads decode the message back; encoding a
//! normalised span and decoding it gives the same span (a test checks it).
//!
//! [`CompactSpan::memory_bytes`] is what the `--max-memory` bound counts: the
//! encoded bytes, the names, and a fixed overhead per span for the struct,
//! its slot in the trace's list and the allocator's headers.

use std::sync::Arc;

use prost::Message;

use super::decode::proto;
use super::model::Span;
use crate::span::SpanId;

/// Counted per span beyond its encoded bytes and names: the struct, its
/// slot in a growing list (up to twice the struct) and allocator headers.
const SPAN_OVERHEAD: usize = 2 * std::mem::size_of::<CompactSpan>() + 32;

/// One span, encoded once, with what the indexes need beside it.
#[derive(Clone, Debug)]
pub struct CompactSpan {
    /// The span's id (spans of a trace are matched by it before decoding).
    pub id: SpanId,
    /// `localEndpoint.serviceName`.
    pub service: Option<Arc<str>>,
    /// The span name.
    pub name: Option<Arc<str>>,
    /// `remoteEndpoint.serviceName`.
    pub remote_service: Option<Arc<str>>,
    /// Epoch microseconds of the start.
    pub timestamp: Option<u64>,
    /// No parent id.
    pub root: bool,
    /// The proto3 `Span` message.
    encoded: Box<[u8]>,
}

impl CompactSpan {
    /// Encodes `span`.
    pub fn encode(span: Span) -> Self {
        let arc = |name: Option<&str>| name.map(Arc::from);
        let service = arc(span.local_service_name());
        let remote_service = arc(span.remote_service_name());
        let name = arc(span.name.as_deref());
        let (id, timestamp, root) = (span.id, span.timestamp, span.parent_id.is_none());
        let encoded = proto::from_model(span).encode_to_vec().into_boxed_slice();
        Self {
            id,
            service,
            name,
            remote_service,
            timestamp,
            root,
            encoded,
        }
    }

    /// The span, decoded. `None` only if the bytes were not written by
    /// [`CompactSpan::encode`], which nothing else writes.
    pub fn decode(&self) -> Option<Span> {
        match proto::decode_one(&self.encoded) {
            Ok(span) => Some(span),
            Err(error) => {
                tracing::warn!(%error, "a stored span could not be decoded");
                None
            }
        }
    }

    /// The encoded message (proto3 `Span`).
    pub fn encoded_len(&self) -> usize {
        self.encoded.len()
    }

    /// What this span counts against the memory bound.
    pub fn memory_bytes(&self) -> usize {
        let name = |name: &Option<Arc<str>>| name.as_deref().map_or(0, str::len);
        self.encoded_len()
            + name(&self.service)
            + name(&self.name)
            + name(&self.remote_service)
            + SPAN_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::decode_span;
    use serde_json::json;

    /// A SERVER span as a tracehop sidecar reports it.
    pub fn sidecar_span() -> Span {
        decode_span(json!({
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "parentId": "00f067aa0ba902b7",
            "id": "b7ad6b7169203331", "kind": "SERVER", "name": "get /api/orders/{id}",
            "timestamp": 1_700_000_000_123_456u64, "duration": 1834,
            "localEndpoint": {"serviceName": "order-service", "ipv4": "10.1.2.3", "port": 8080},
            "remoteEndpoint": {"ipv4": "10.1.2.9", "port": 51234},
            "annotations": [{"timestamp": 1_700_000_000_123_500u64, "value": "wr"}],
            "tags": {
                "http.request.method": "GET", "url.path": "/api/orders/1042",
                "url.scheme": "http", "server.address": "order-service",
                "http.route": "/api/orders/{id}", "http.response.status_code": "200",
                "network.protocol.version": "1.1", "user_agent.original": "curl/8.5.0",
                "client.address": "10.1.2.9", "http.response.body.size": "512",
                "k8s.pod.name": "order-service-7d9c5b6f4-x2x9q",
                "k8s.namespace.name": "shop"
            }
        }))
        .unwrap()
    }

    #[test]
    fn encoding_then_decoding_gives_the_same_span() {
        let span = sidecar_span();
        let compact = CompactSpan::encode(span.clone());
        assert_eq!(compact.decode().as_ref(), Some(&span));
        assert_eq!(compact.id, span.id);
        assert_eq!(compact.service.as_deref(), Some("order-service"));
        assert_eq!(compact.name.as_deref(), Some("get /api/orders/{id}"));
        assert_eq!(compact.remote_service, None);
        assert!(!compact.root);
        // A root with a 64-bit trace id and nothing optional set.
        let bare = decode_span(json!({"traceId": "00000000000000a1", "id": "0000000000000001"}))
            .unwrap();
        let compact = CompactSpan::encode(bare.clone());
        assert_eq!(compact.decode(), Some(bare));
        assert!(compact.root);
    }

    #[test]
    fn a_typical_sidecar_span_counts_well_under_a_kibibyte() {
        let span = sidecar_span();
        let json = serde_json::to_vec(&span).unwrap().len();
        let compact = CompactSpan::encode(span);
        assert!(compact.encoded_len() < json, "{} vs {json}", compact.encoded_len());
        assert!(compact.memory_bytes() < 1024, "{}", compact.memory_bytes());
    }
}
