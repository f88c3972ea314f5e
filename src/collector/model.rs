//! The Zipkin v2 span model as the collector stores and serves it.
//!
//! Any tracer's spans land here, not only tracehop's, so this is the generic
//! wire model of the Zipkin v2 API (`definitions/Span`), not [`crate::span::Span`].
//! Values are already normalised the way Zipkin's own `Span.Builder` does it:
//! lowercase hex ids, 64-bit trace ids in their 16-digit form, lowercase
//! service and span names, zero timestamps and durations absent, annotations
//! sorted and unique. Decoding and validation live in `decode`; serialisation
//! (field order and omission of absent fields, as Zipkin's JSON writer) is here.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};

use crate::span::{SpanId, TraceId};

/// Zipkin span kind (Zipkin v2 API, `Span.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    /// The caller's side of an RPC.
    Client,
    /// The callee's side of an RPC.
    Server,
    /// A message sent to a broker.
    Producer,
    /// A message received from a broker.
    Consumer,
}

impl Kind {
    /// Parses the wire form (`CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "CLIENT" => Some(Kind::Client),
            "SERVER" => Some(Kind::Server),
            "PRODUCER" => Some(Kind::Producer),
            "CONSUMER" => Some(Kind::Consumer),
            _ => None,
        }
    }
}

/// The network context of a node in the service graph (`definitions/Endpoint`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Lowercase service name; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// IPv4 address; IPv4-mapped IPv6 addresses are stored here too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Never zero: Zipkin treats port 0 as absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Endpoint {
    /// True when no field is set; Zipkin drops such endpoints entirely.
    pub fn is_empty(&self) -> bool {
        self.service_name.is_none()
            && self.ipv4.is_none()
            && self.ipv6.is_none()
            && self.port.is_none()
    }

    /// Fills fields this endpoint lacks from `other` (Zipkin `Endpoint.Builder.merge`).
    fn fill_from(&mut self, other: &Endpoint) {
        fill(&mut self.service_name, &other.service_name);
        fill(&mut self.ipv4, &other.ipv4);
        fill(&mut self.ipv6, &other.ipv6);
        fill(&mut self.port, &other.port);
    }
}

/// An event with a timestamp (`definitions/Annotation`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Annotation {
    /// Epoch microseconds.
    pub timestamp: u64,
    /// The event, usually a short code such as `retried`.
    pub value: String,
}

/// One validated, normalised span (`definitions/Span`).
///
/// Serialised in the field order of Zipkin's own JSON writer, with absent
/// fields, empty lists and false flags left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// Written as 16 hex digits when the high half is zero, else 32.
    #[serde(serialize_with = "trace_id_hex")]
    pub trace_id: TraceId,
    /// Absent for a root span.
    #[serde(
        serialize_with = "opt_span_id_hex",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_id: Option<SpanId>,
    /// The span's own id, unique within the trace (except B3 shared spans).
    #[serde(serialize_with = "span_id_hex")]
    pub id: SpanId,
    /// Absent for local (in-process) spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Lowercase operation name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Epoch microseconds of the start; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Microseconds, at least 1; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// The host that recorded the span; its service name is what traces are found by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_endpoint: Option<Endpoint>,
    /// The other side of an RPC or messaging span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    /// Sorted by timestamp, then value; unique.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Sorted by key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// B3 debug: store even if sampling would drop it.
    #[serde(skip_serializing_if = "is_false")]
    pub debug: bool,
    /// A server span that reuses its client's span id (never set on CLIENT).
    #[serde(skip_serializing_if = "is_false")]
    pub shared: bool,
}

impl Span {
    /// `localEndpoint.serviceName`, the name traces are looked up by.
    pub fn local_service_name(&self) -> Option<&str> {
        self.local_endpoint.as_ref()?.service_name.as_deref()
    }

    /// `remoteEndpoint.serviceName`.
    pub fn remote_service_name(&self) -> Option<&str> {
        self.remote_endpoint.as_ref()?.service_name.as_deref()
    }

    /// True when the span carries the `error` tag, which is how Zipkin marks
    /// failed calls (used by the dependency links' `errorCount`).
    pub fn has_error_tag(&self) -> bool {
        self.tags.contains_key("error")
    }

    /// Merges a later copy of the same span into this one, as Zipkin's
    /// `Span.Builder.merge` does: fields this copy lacks are filled from
    /// `later`, endpoints are merged field by field, annotations are united,
    /// tags from `later` win, and the `debug`/`shared` flags are or-ed.
    pub fn merge(&mut self, later: &Span) {
        fill(&mut self.parent_id, &later.parent_id);
        fill(&mut self.kind, &later.kind);
        fill(&mut self.name, &later.name);
        fill(&mut self.timestamp, &later.timestamp);
        fill(&mut self.duration, &later.duration);
        merge_endpoint(&mut self.local_endpoint, &later.local_endpoint);
        merge_endpoint(&mut self.remote_endpoint, &later.remote_endpoint);
        if !later.annotations.is_empty() {
            self.annotations.extend(later.annotations.iter().cloned());
            self.annotations.sort();
            self.annotations.dedup();
        }
        for (key, value) in &later.tags {
            self.tags.insert(key.clone(), value.clone());
        }
        self.debug |= later.debug;
        // Zipkin never keeps `shared` on a CLIENT span (Span.Builder.build).
        self.shared = (self.shared || later.shared) && self.kind != Some(Kind::Client);
    }
}

fn fill<T: Clone>(slot: &mut Option<T>, later: &Option<T>) {
    if slot.is_none() {
        slot.clone_from(later);
    }
}

fn merge_endpoint(slot: &mut Option<Endpoint>, later: &Option<Endpoint>) {
    match (slot.as_mut(), later) {
        (Some(current), Some(later)) => current.fill_from(later),
        (None, Some(_)) => slot.clone_from(later),
        (_, None) => {}
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Writes a trace id in its shortest Zipkin form: 16 hex digits when the high
/// half is zero, else 32 (Zipkin `Span.normalizeTraceId`).
pub fn trace_id_string(id: TraceId) -> String {
    let mut out = Vec::with_capacity(32);
    id.write_short_hex(&mut out);
    // Hex digits are ASCII; the fallback is unreachable but costs nothing.
    String::from_utf8(out).unwrap_or_default()
}

fn trace_id_hex<S: Serializer>(id: &TraceId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&trace_id_string(*id))
}

fn span_id_hex<S: Serializer>(id: &SpanId, serializer: S) -> Result<S::Ok, S::Error> {
    let hex = id.to_hex();
    serializer.serialize_str(std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?)
}

fn opt_span_id_hex<S: Serializer>(id: &Option<SpanId>, serializer: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => span_id_hex(id, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u64) -> Span {
        Span {
            trace_id: TraceId::new(0xabc).unwrap(),
            parent_id: None,
            id: SpanId::new(id).unwrap(),
            kind: None,
            name: None,
            timestamp: None,
            duration: None,
            local_endpoint: None,
            remote_endpoint: None,
            annotations: Vec::new(),
            tags: BTreeMap::new(),
            debug: false,
            shared: false,
        }
    }

    #[test]
    fn serialises_in_zipkin_field_order_omitting_absent_fields() {
        let mut s = span(0x352bff9a74ca9ad2);
        s.parent_id = SpanId::new(0x6b221d5bc9e6496c);
        s.kind = Some(Kind::Server);
        s.name = Some("get /api".into());
        s.timestamp = Some(1556604172355737);
        s.duration = Some(1431);
        s.local_endpoint = Some(Endpoint {
            service_name: Some("backend".into()),
            ipv4: Some(Ipv4Addr::new(192, 168, 99, 1)),
            ipv6: None,
            port: Some(3306),
        });
        s.tags.insert("http.path".into(), "/api".into());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"traceId":"0000000000000abc","parentId":"6b221d5bc9e6496c","id":"352bff9a74ca9ad2","kind":"SERVER","name":"get /api","timestamp":1556604172355737,"duration":1431,"localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},"tags":{"http.path":"/api"}}"#
        );
    }

    #[test]
    fn merge_fills_missing_fields_and_later_tags_win() {
        let mut first = span(1);
        first.name = Some("get".into());
        first.tags.insert("a".into(), "1".into());
        first.annotations.push(Annotation {
            timestamp: 5,
            value: "ws".into(),
        });
        let mut later = span(1);
        later.name = Some("other".into());
        later.timestamp = Some(10);
        later.duration = Some(7);
        later.remote_endpoint = Some(Endpoint {
            port: Some(80),
            ..Endpoint::default()
        });
        later.tags.insert("a".into(), "2".into());
        later.tags.insert("b".into(), "3".into());
        later.annotations.push(Annotation {
            timestamp: 5,
            value: "ws".into(),
        });
        later.annotations.push(Annotation {
            timestamp: 1,
            value: "wr".into(),
        });
        later.debug = true;
        first.merge(&later);
        assert_eq!(first.name.as_deref(), Some("get"));
        assert_eq!(first.timestamp, Some(10));
        assert_eq!(first.duration, Some(7));
        assert_eq!(first.remote_endpoint.unwrap().port, Some(80));
        assert_eq!(first.tags["a"], "2");
        assert_eq!(first.tags["b"], "3");
        let values: Vec<_> = first.annotations.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(values, ["wr", "ws"]);
        assert!(first.debug);
    }

    #[test]
    fn kind_parses_only_the_four_wire_names() {
        assert_eq!(Kind::parse("CLIENT"), Some(Kind::Client));
        assert_eq!(Kind::parse("CONSUMER"), Some(Kind::Consumer));
        assert_eq!(Kind::parse("client"), None);
        assert_eq!(Kind::parse(""), None);
    }
}
