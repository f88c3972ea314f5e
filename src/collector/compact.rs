//! The compact form the collector holds spans in, and what it costs.
//!
//! A decoded [`Span`] costs about three times its JSON (a `String` and a
//! map node per tag, each a heap allocation). The store and the tail
//! sampler's buffer instead keep each span encoded once, beside the few
//! values their indexes need (id, timestamp, root or not, the three names
//! the query API lists), and decode it only when a query reads it. Encoding
//! a normalised span and decoding it gives the same span (a test checks it).
//!
//! The encoding: the span as Zipkin's proto3 `Span` message
//! (`proto/zipkin.proto`: binary ids, no field names) without its tags,
//! prefixed by its length; then each tag as a key and a value. Tag keys
//! repeat on every span (a sidecar span's dozen keys are a third of its
//! JSON), so a key is written as its number in the collector's [`TagKeys`]
//! (one or two bytes) once it is there; the table takes the first
//! [`MAX_TAG_KEYS`] keys seen and is never emptied, so its memory is bounded
//! and every number stays valid. Other keys are written inline.
//!
//! [`CompactSpan::memory_bytes`] is what the `--max-memory` bound counts: the
//! encoded bytes, the names, and a fixed overhead per span for the struct,
//! its slot in the trace's list and the allocator's headers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Buf;
use prost::Message;
use prost::encoding::{decode_varint, encode_varint};

use super::decode::proto;
use super::model::Span;
use crate::span::SpanId;

/// Counted per span beyond its encoded bytes and names: the struct, its
/// slot in a growing list (up to twice the struct), the allocator's header
/// and rounding of the encoded bytes. Measured, not guessed: the collector
/// benchmark (bench/collector.py) compares it with the process's RSS.
const SPAN_OVERHEAD: usize = std::mem::size_of::<CompactSpan>() * 2 + 32;

/// Counted per name beyond its bytes: the shared string's counts and the
/// allocator's header and rounding.
const NAME_OVERHEAD: usize = 40;

/// Tag keys numbered at most; later new keys are written inline.
pub const MAX_TAG_KEYS: usize = 1024;

/// The collector's tag keys by number, shared by every span it holds.
#[derive(Debug, Default)]
pub struct TagKeys(RwLock<KeyTable>);

#[derive(Debug, Default)]
struct KeyTable {
    names: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u64>,
}

impl TagKeys {
    /// The number of `key`, adding it while the table has room.
    fn number(&self, key: &str) -> Option<u64> {
        let table = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(&number) = table.numbers.get(key) {
            return Some(number);
        }
        if table.names.len() >= MAX_TAG_KEYS {
            return None;
        }
        drop(table);
        let mut table = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let next = table.names.len() as u64;
        let name: Arc<str> = Arc::from(key);
        let number = *table.numbers.entry(name.clone()).or_insert(next);
        if number == next {
            table.names.push(name);
        }
        Some(number)
    }

    fn name(&self, number: u64) -> Option<Arc<str>> {
        let table = self.0.read().unwrap_or_else(PoisonError::into_inner);
        table.names.get(usize::try_from(number).ok()?).cloned()
    }
}

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
    /// The table its tag keys are numbered in.
    keys: Arc<TagKeys>,
    /// See the module docs.
    encoded: Box<[u8]>,
}

impl CompactSpan {
    /// Encodes `span`, numbering its tag keys in `keys`.
    pub fn encode(mut span: Span, keys: &Arc<TagKeys>) -> Self {
        let arc = |name: Option<&str>| name.map(Arc::from);
        let service = arc(span.local_service_name());
        let remote_service = arc(span.remote_service_name());
        let name = arc(span.name.as_deref());
        let (id, timestamp, root) = (span.id, span.timestamp, span.parent_id.is_none());
        let tags = std::mem::take(&mut span.tags);
        let message = proto::from_model(span);
        let length = message.encoded_len();
        let mut out = Vec::with_capacity(length + 10 + tags.len() * 24);
        encode_varint(length as u64, &mut out);
        message.encode_raw(&mut out);
        for (key, value) in &tags {
            // A numbered key: 2n + 1; an inline key: 2 × its length.
            match keys.number(key) {
                Some(number) => encode_varint(number * 2 + 1, &mut out),
                None => {
                    encode_varint(key.len() as u64 * 2, &mut out);
                    out.extend_from_slice(key.as_bytes());
                }
            }
            encode_varint(value.len() as u64, &mut out);
            out.extend_from_slice(value.as_bytes());
        }
        Self {
            id,
            service,
            name,
            remote_service,
            timestamp,
            root,
            keys: keys.clone(),
            encoded: out.into_boxed_slice(),
        }
    }

    /// The span, decoded. `None` only if the bytes were not written by
    /// [`CompactSpan::encode`], which nothing else writes.
    pub fn decode(&self) -> Option<Span> {
        let decoded = self.read();
        if decoded.is_none() {
            tracing::warn!("a stored span could not be decoded");
        }
        decoded
    }

    fn read(&self) -> Option<Span> {
        let mut rest: &[u8] = &self.encoded;
        let length = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
        let message = rest.get(..length)?;
        let mut span = proto::decode_one(message).ok()?;
        rest.advance(length);
        let mut tags = BTreeMap::new();
        while rest.has_remaining() {
            let code = decode_varint(&mut rest).ok()?;
            let key: String = if code % 2 == 1 {
                self.keys.name(code / 2)?.as_ref().to_owned()
            } else {
                take_text(&mut rest, code / 2)?
            };
            let length = decode_varint(&mut rest).ok()?;
            tags.insert(key, take_text(&mut rest, length)?);
        }
        span.tags = tags;
        Some(span)
    }

    /// The encoded bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded.len()
    }

    /// The span without its names (see [`CompactSpan::named`]): how the
    /// tail sampler holds spans waiting, most of which it drops.
    pub fn unnamed(mut self) -> Self {
        self.service = None;
        self.name = None;
        self.remote_service = None;
        self
    }

    /// The span with its names read back from its bytes, for the store's
    /// indexes; as is when it has them.
    pub fn named(self) -> Self {
        if self.service.is_some() || self.name.is_some() || self.remote_service.is_some() {
            return self;
        }
        match self.decode() {
            Some(span) => Self {
                service: span.local_service_name().map(Arc::from),
                name: span.name.as_deref().map(Arc::from),
                remote_service: span.remote_service_name().map(Arc::from),
                ..self
            },
            None => self,
        }
    }

    /// What this span counts against the memory bound. A name shared with
    /// the store's index is counted as if it were not (a little over).
    pub fn memory_bytes(&self) -> usize {
        let name =
            |name: &Option<Arc<str>>| name.as_deref().map_or(0, |name| name.len() + NAME_OVERHEAD);
        self.encoded_len()
            + name(&self.service)
            + name(&self.name)
            + name(&self.remote_service)
            + SPAN_OVERHEAD
    }
}

/// The next `length` bytes of `rest` as text.
fn take_text(rest: &mut &[u8], length: u64) -> Option<String> {
    let length = usize::try_from(length).ok()?;
    let text = std::str::from_utf8(rest.get(..length)?).ok()?.to_owned();
    rest.advance(length);
    Some(text)
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
        let keys = Arc::new(TagKeys::default());
        let span = sidecar_span();
        let compact = CompactSpan::encode(span.clone(), &keys);
        assert_eq!(compact.decode().as_ref(), Some(&span));
        // Its keys were numbered on the way, in the order first seen.
        assert_eq!(keys.number("client.address"), Some(0));
        assert_eq!(keys.name(0).as_deref(), Some("client.address"));
        assert_eq!(compact.id, span.id);
        assert_eq!(compact.service.as_deref(), Some("order-service"));
        assert_eq!(compact.name.as_deref(), Some("get /api/orders/{id}"));
        assert_eq!(compact.remote_service, None);
        assert!(!compact.root);
        // A root with a 64-bit trace id and nothing optional set.
        let bare =
            decode_span(json!({"traceId": "00000000000000a1", "id": "0000000000000001"})).unwrap();
        let compact = CompactSpan::encode(bare.clone(), &keys);
        assert_eq!(compact.decode(), Some(bare));
        assert!(compact.root);
    }

    #[test]
    fn a_typical_sidecar_span_counts_well_under_a_kibibyte() {
        let keys = Arc::new(TagKeys::default());
        let span = sidecar_span();
        let json = serde_json::to_vec(&span).unwrap().len();
        CompactSpan::encode(span.clone(), &keys);
        let compact = CompactSpan::encode(span, &keys);
        assert!(
            compact.encoded_len() * 2 < json,
            "{} vs {json}",
            compact.encoded_len()
        );
        assert!(compact.memory_bytes() < 1024, "{}", compact.memory_bytes());
    }

    #[test]
    fn names_are_dropped_and_read_back() {
        let keys = Arc::new(TagKeys::default());
        let span = sidecar_span();
        let full = CompactSpan::encode(span.clone(), &keys);
        let unnamed = full.clone().unnamed();
        assert!(unnamed.memory_bytes() < full.memory_bytes());
        assert_eq!(
            (unnamed.service.as_deref(), unnamed.name.as_deref()),
            (None, None)
        );
        let named = unnamed.named();
        assert_eq!(named.service.as_deref(), Some("order-service"));
        assert_eq!(named.name.as_deref(), Some("get /api/orders/{id}"));
        assert_eq!(named.memory_bytes(), full.memory_bytes());
        assert_eq!(named.decode(), Some(span));
    }

    #[test]
    fn keys_beyond_the_table_are_written_inline() {
        let keys = Arc::new(TagKeys::default());
        for n in 0..MAX_TAG_KEYS {
            keys.number(&format!("k{n}"));
        }
        let mut span = sidecar_span();
        span.tags.insert("k7".into(), "numbered".into());
        span.tags.insert("a.new.key".into(), "inline".into());
        let compact = CompactSpan::encode(span.clone(), &keys);
        assert_eq!(compact.decode(), Some(span));
        assert_eq!(keys.number("a.new.key"), None);
    }
}
