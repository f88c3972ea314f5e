//! The proto3 wire form of `POST /api/v2/spans`: the `ListOfSpans` message of
//! `proto/zipkin.proto` (package `zipkin.proto3`), as Zipkin's collector takes
//! it with `Content-Type: application/x-protobuf` and OpenTelemetry's
//! `zipkin-proto-http` exporters send it.
//!
//! The message types below mirror `proto/zipkin.proto` field by field (names,
//! numbers and types); prost derives their decoding. They are written out
//! rather than generated so a build needs neither `protoc` nor a build script;
//! a test decodes bytes laid out by hand from the `.proto`'s field numbers and
//! types, so a mismatch fails it. Regenerating is not needed unless Zipkin
//! changes the file (it has been stable since 2019).
//! The mapping to the span model checks what protobuf's types leave open (id
//! lengths, the kind's range, the port's range); value rules are
//! [`super::normalize`]'s, as for JSON. Proto3 has no "absent" for scalars:
//! an empty or zero field is absent, which is also what Zipkin means by it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use prost::Message;

use super::{FieldError, IngestError, normalize};
use crate::collector::model;
use crate::span::{SpanId, TraceId};

/// `message ListOfSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
}

/// `message Span`.
#[derive(Clone, PartialEq, Message)]
pub struct Span {
    /// 8 or 16 bytes, big-endian.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// Empty for a root span, else 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    /// `Span.Kind`; 0 is unspecified.
    #[prost(enumeration = "Kind", tag = "4")]
    pub kind: i32,
    #[prost(string, tag = "5")]
    pub name: String,
    /// Epoch microseconds.
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    /// Microseconds.
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<Endpoint>,
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<Endpoint>,
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<Annotation>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub tags: BTreeMap<String, String>,
    #[prost(bool, tag = "12")]
    pub debug: bool,
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

/// `enum Span.Kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    SpanKindUnspecified = 0,
    Client = 1,
    Server = 2,
    Producer = 3,
    Consumer = 4,
}

/// `message Endpoint`.
#[derive(Clone, PartialEq, Message)]
pub struct Endpoint {
    #[prost(string, tag = "1")]
    pub service_name: String,
    /// 4 bytes, or empty.
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    /// 16 bytes, or empty.
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub port: i32,
}

/// `message Annotation`.
#[derive(Clone, PartialEq, Message)]
pub struct Annotation {
    /// Epoch microseconds.
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Decodes a `ListOfSpans` body; a span with unreadable ids fails the batch.
pub fn decode_spans(body: &[u8]) -> Result<Vec<model::Span>, IngestError> {
    let list = ListOfSpans::decode(body).map_err(IngestError::Proto)?;
    list.spans
        .into_iter()
        .enumerate()
        .map(|(index, span)| to_model(span).map_err(|error| error.at(index)))
        .collect()
}

/// Decodes one `Span` message, as [`decode_spans`] does each span of a list.
pub fn decode_one(bytes: &[u8]) -> Result<model::Span, IngestError> {
    let span = Span::decode(bytes).map_err(IngestError::Proto)?;
    to_model(span).map_err(|error| error.at(0))
}

/// The `Span` message of a span of the model: the inverse of decoding for
/// a normalised span (absent fields are proto3's empty or zero values), so
/// the collector can keep spans in this compact form and read them back.
pub fn from_model(span: model::Span) -> Span {
    let kind = match span.kind {
        None => Kind::SpanKindUnspecified,
        Some(model::Kind::Client) => Kind::Client,
        Some(model::Kind::Server) => Kind::Server,
        Some(model::Kind::Producer) => Kind::Producer,
        Some(model::Kind::Consumer) => Kind::Consumer,
    };
    let trace_id = if span.trace_id.is_64bit() {
        span.trace_id.to_bytes()[8..].to_vec()
    } else {
        span.trace_id.to_bytes().to_vec()
    };
    Span {
        trace_id,
        parent_id: span
            .parent_id
            .map_or_else(Vec::new, |id| id.to_bytes().to_vec()),
        id: span.id.to_bytes().to_vec(),
        kind: kind as i32,
        name: span.name.unwrap_or_default(),
        timestamp: span.timestamp.unwrap_or_default(),
        duration: span.duration.unwrap_or_default(),
        local_endpoint: span.local_endpoint.map(endpoint_from_model),
        remote_endpoint: span.remote_endpoint.map(endpoint_from_model),
        annotations: span
            .annotations
            .into_iter()
            .map(|annotation| Annotation {
                timestamp: annotation.timestamp,
                value: annotation.value,
            })
            .collect(),
        tags: span.tags,
        debug: span.debug,
        shared: span.shared,
    }
}

fn endpoint_from_model(endpoint: model::Endpoint) -> Endpoint {
    Endpoint {
        service_name: endpoint.service_name.unwrap_or_default(),
        ipv4: endpoint
            .ipv4
            .map_or_else(Vec::new, |ip| ip.octets().to_vec()),
        ipv6: endpoint
            .ipv6
            .map_or_else(Vec::new, |ip| ip.octets().to_vec()),
        port: endpoint.port.map_or(0, i32::from),
    }
}

fn to_model(span: Span) -> Result<model::Span, FieldError> {
    let kind = match Kind::try_from(span.kind) {
        Ok(Kind::SpanKindUnspecified) => None,
        Ok(Kind::Client) => Some(model::Kind::Client),
        Ok(Kind::Server) => Some(model::Kind::Server),
        Ok(Kind::Producer) => Some(model::Kind::Producer),
        Ok(Kind::Consumer) => Some(model::Kind::Consumer),
        Err(_) => {
            let reason = format!("expected 0 to 4, got {}", span.kind);
            return Err(FieldError::new("kind", reason));
        }
    };
    let parent_id = match span.parent_id.as_slice() {
        [] => None,
        // All zeros (no id) means root, as in JSON.
        bytes => span_id(bytes, "parent_id")?,
    };
    Ok(normalize(model::Span {
        trace_id: trace_id(&span.trace_id)?,
        parent_id,
        id: span_id(&span.id, "id")?
            .ok_or_else(|| FieldError::new("id", "must not be all zeros"))?,
        kind,
        name: Some(span.name),
        timestamp: Some(span.timestamp),
        duration: Some(span.duration),
        local_endpoint: endpoint(span.local_endpoint, "local_endpoint")?,
        remote_endpoint: endpoint(span.remote_endpoint, "remote_endpoint")?,
        annotations: span
            .annotations
            .into_iter()
            .map(|annotation| model::Annotation {
                timestamp: annotation.timestamp,
                value: annotation.value,
            })
            .collect(),
        tags: span.tags,
        debug: span.debug,
        shared: span.shared,
    }))
}

fn trace_id(bytes: &[u8]) -> Result<TraceId, FieldError> {
    let value = match bytes.len() {
        8 | 16 => bytes.iter().fold(0u128, |id, &b| id << 8 | u128::from(b)),
        n => {
            let reason = format!("expected 8 or 16 bytes, got {n}");
            return Err(FieldError::new("trace_id", reason));
        }
    };
    TraceId::new(value).ok_or_else(|| FieldError::new("trace_id", "must not be all zeros"))
}

/// An 8-byte id; `None` when all zeros.
fn span_id(bytes: &[u8], field: &str) -> Result<Option<SpanId>, FieldError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| FieldError::new(field, format!("expected 8 bytes, got {}", bytes.len())))?;
    Ok(SpanId::new(u64::from_be_bytes(bytes)))
}

/// An endpoint; an address of the wrong length is ignored, as Zipkin's
/// `Endpoint.Builder.parseIp` ignores one it cannot read.
fn endpoint(
    endpoint: Option<Endpoint>,
    field: &str,
) -> Result<Option<model::Endpoint>, FieldError> {
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let port = u16::try_from(endpoint.port).map_err(|_| {
        FieldError::new(
            "port",
            format!("expected 0 to 65535, got {}", endpoint.port),
        )
        .under(field)
    })?;
    let ipv4: Option<[u8; 4]> = endpoint.ipv4.as_slice().try_into().ok();
    let ipv6: Option<[u8; 16]> = endpoint.ipv6.as_slice().try_into().ok();
    Ok(Some(model::Endpoint {
        service_name: Some(endpoint.service_name),
        ipv4: ipv4.map(Ipv4Addr::from),
        ipv6: ipv6.map(Ipv6Addr::from),
        port: Some(port),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::{MAX_MICROS, decode_span};
    use proptest::prelude::*;
    use serde_json::json;

    fn id(value: u64) -> Vec<u8> {
        value.to_be_bytes().to_vec()
    }

    /// The spec's example span (zipkin2-api.yaml) in proto3 form.
    fn example() -> Span {
        Span {
            trace_id: id(0x5af7183fb1d4cf5f),
            parent_id: id(0x6b221d5bc9e6496c),
            id: id(0x352bff9a74ca9ad2),
            kind: Kind::Server as i32,
            name: "GET /api".into(),
            timestamp: 1556604172355737,
            duration: 1431,
            local_endpoint: Some(Endpoint {
                service_name: "Backend".into(),
                ipv4: vec![192, 168, 99, 1],
                ipv6: Vec::new(),
                port: 3306,
            }),
            remote_endpoint: Some(Endpoint {
                service_name: String::new(),
                ipv4: vec![172, 19, 0, 2],
                ipv6: Vec::new(),
                port: 58648,
            }),
            annotations: vec![Annotation {
                timestamp: 1556604172355800,
                value: "wr".into(),
            }],
            tags: [("http.method", "GET"), ("http.path", "/api")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            debug: false,
            shared: false,
        }
    }

    fn decode_one(span: Span) -> Result<model::Span, IngestError> {
        let body = ListOfSpans { spans: vec![span] }.encode_to_vec();
        decode_spans(&body).map(|mut spans| spans.remove(0))
    }

    #[test]
    fn proto_and_json_forms_of_a_span_decode_to_the_same_span() {
        let json = json!({
            "traceId": "5af7183fb1d4cf5f", "parentId": "6b221d5bc9e6496c",
            "id": "352bff9a74ca9ad2", "kind": "SERVER", "name": "GET /api",
            "timestamp": 1556604172355737u64, "duration": 1431,
            "localEndpoint": {"serviceName": "Backend", "ipv4": "192.168.99.1", "port": 3306},
            "remoteEndpoint": {"ipv4": "172.19.0.2", "port": 58648},
            "annotations": [{"timestamp": 1556604172355800u64, "value": "wr"}],
            "tags": {"http.method": "GET", "http.path": "/api"}
        });
        assert_eq!(decode_one(example()).unwrap(), decode_span(json).unwrap());
    }

    #[test]
    fn decodes_bytes_laid_out_by_zipkin_proto() {
        // Every field of proto/zipkin.proto, written by hand from its field
        // numbers and types: (tag << 3 | wire type), then the value.
        let mut span = vec![0x0a, 16]; // 1 trace_id: bytes
        span.extend([0x11; 16]);
        span.extend([0x12, 8, 0, 0, 0, 0, 0, 0, 0, 0x21]); // 2 parent_id
        span.extend([0x1a, 8, 0, 0, 0, 0, 0, 0, 0, 0x22]); // 3 id
        span.extend([0x20, 1]); // 4 kind: CLIENT
        span.extend([0x2a, 3, b'G', b'e', b't']); // 5 name: string
        span.push(0x31); // 6 timestamp: fixed64
        span.extend(1_700_000_000_000_000u64.to_le_bytes());
        span.extend([0x38, 0xe8, 0x07]); // 7 duration: uint64 varint 1000
        let mut local = vec![0x0a, 3, b'a', b'p', b'p', 0x1a, 16]; // 1 name, 3 ipv6
        local.extend(Ipv6Addr::LOCALHOST.octets());
        local.extend([0x20, 0x90, 0x3f]); // 4 port: int32 varint 8080
        span.extend([0x42, local.len() as u8]); // 8 local_endpoint
        span.extend(local);
        span.extend([0x4a, 6, 0x12, 4, 10, 0, 0, 7]); // 9 remote_endpoint{2 ipv4}
        let mut annotation = vec![0x09]; // 1 timestamp: fixed64
        annotation.extend(1_700_000_000_000_500u64.to_le_bytes());
        annotation.extend([0x12, 2, b'w', b's']); // 2 value
        span.extend([0x52, annotation.len() as u8]); // 10 annotations
        span.extend(annotation);
        span.extend([0x5a, 8, 0x0a, 1, b'k', 0x12, 3, b'v', b'a', b'l']); // 11 tags entry
        span.extend([0x60, 1]); // 12 debug
        span.extend([0x68, 1]); // 13 shared (dropped: CLIENT)
        let mut body = vec![0x0a, span.len() as u8]; // ListOfSpans 1 spans
        body.extend(span);
        let spans = decode_spans(&body).unwrap();
        assert_eq!(
            serde_json::to_value(&spans).unwrap(),
            json!([{"traceId": "11111111111111111111111111111111",
                "parentId": "0000000000000021", "id": "0000000000000022",
                "kind": "CLIENT", "name": "get", "timestamp": 1_700_000_000_000_000u64,
                "duration": 1000,
                "localEndpoint": {"serviceName": "app", "ipv6": "::1", "port": 8080},
                "remoteEndpoint": {"ipv4": "10.0.0.7"},
                "annotations": [{"timestamp": 1_700_000_000_000_500u64, "value": "ws"}],
                "tags": {"k": "val"}, "debug": true}])
        );
    }

    #[test]
    fn unusable_values_are_left_out_and_empty_fields_are_absent() {
        let mut span = example();
        span.timestamp = u64::MAX;
        span.duration = MAX_MICROS + 1;
        span.annotations.push(Annotation {
            timestamp: 0,
            value: "zero".into(),
        });
        span.parent_id = vec![0; 8];
        span.kind = 0;
        span.name = String::new();
        span.local_endpoint = Some(Endpoint::default());
        span.remote_endpoint.as_mut().unwrap().ipv4 = vec![1, 2, 3];
        let decoded = decode_one(span).unwrap();
        assert_eq!((decoded.timestamp, decoded.duration), (None, None));
        assert_eq!(decoded.annotations.len(), 1);
        assert_eq!(
            (decoded.parent_id, decoded.kind, &decoded.name),
            (None, None, &None)
        );
        assert_eq!(decoded.local_endpoint, None);
        let remote = decoded.remote_endpoint.unwrap();
        assert_eq!((remote.ipv4, remote.port), (None, Some(58648)));
    }

    #[test]
    fn unreadable_ids_fail_the_batch_naming_span_and_field() {
        type Breaks = fn(&mut Span);
        let cases: [(Breaks, &str); 7] = [
            (
                |s| s.trace_id = vec![1; 5],
                "trace_id: expected 8 or 16 bytes, got 5",
            ),
            (
                |s| s.trace_id = vec![0; 16],
                "trace_id: must not be all zeros",
            ),
            (|s| s.id = Vec::new(), "id: expected 8 bytes, got 0"),
            (|s| s.id = vec![0; 8], "id: must not be all zeros"),
            (
                |s| s.parent_id = vec![1; 9],
                "parent_id: expected 8 bytes, got 9",
            ),
            (|s| s.kind = 9, "kind: expected 0 to 4, got 9"),
            (
                |s| s.local_endpoint.as_mut().unwrap().port = 70_000,
                "local_endpoint.port: expected 0 to 65535, got 70000",
            ),
        ];
        for (breaks, message) in cases {
            let mut bad = example();
            breaks(&mut bad);
            let body = ListOfSpans {
                spans: vec![example(), bad],
            }
            .encode_to_vec();
            let error = decode_spans(&body).unwrap_err();
            assert_eq!(error.to_string(), format!("span 1: {message}"));
        }
        assert!(matches!(
            decode_spans(b"\x0a\x05\x0a"),
            Err(IngestError::Proto(_))
        ));
        assert_eq!(decode_spans(b"").unwrap(), Vec::new());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_spans(&body);
        }

        #[test]
        fn any_ids_and_numbers_decode_or_fail_without_panicking(
            trace in proptest::collection::vec(any::<u8>(), 0..20),
            id in proptest::collection::vec(any::<u8>(), 0..10),
            kind in any::<i32>(), port in any::<i32>(),
            timestamp in any::<u64>(), duration in any::<u64>(),
        ) {
            let mut span = example();
            span.trace_id = trace;
            span.id = id;
            span.kind = kind;
            span.local_endpoint.as_mut().unwrap().port = port;
            span.timestamp = timestamp;
            span.duration = duration;
            if let Ok(decoded) = decode_one(span) {
                prop_assert!(decoded.timestamp.is_none_or(|t| t <= MAX_MICROS));
            }
        }
    }
}
