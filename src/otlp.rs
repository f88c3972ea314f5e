//! The OpenTelemetry Protocol's trace messages (OTLP, `opentelemetry-proto`),
//! as prost messages: what the OTLP exporter encodes and the embedded
//! collector's `POST /v1/traces` decodes.
//!
//! Each message mirrors its `.proto` file in the `open-telemetry/opentelemetry-proto`
//! repository field by field (names, numbers, types):
//! `opentelemetry/proto/collector/trace/v1/trace_service.proto`
//! (`ExportTraceServiceRequest`, `ExportTraceServiceResponse`,
//! `ExportTracePartialSuccess`), `opentelemetry/proto/trace/v1/trace.proto`
//! (`ResourceSpans`, `ScopeSpans`, `Span`, `Span.Event`, `Span.Link`,
//! `Status`), `opentelemetry/proto/common/v1/common.proto` (`AnyValue`,
//! `ArrayValue`, `KeyValueList`, `KeyValue`, `InstrumentationScope`) and
//! `opentelemetry/proto/resource/v1/resource.proto` (`Resource`); plus
//! `google.rpc.Status` (`google/rpc/status.proto`), the body of an OTLP/HTTP
//! error response. They are written out rather than generated, as
//! `collector::decode::proto` does for Zipkin, so a build needs neither
//! `protoc` nor a build script; the tests decode bytes laid out by hand from
//! the `.proto` files' numbers and types, so a wrong number fails them.
//! Fields marked development-only upstream (`Resource.entity_refs`) are left
//! out: prost skips unknown fields when decoding.

use prost::Message;

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceResponse {
    /// Set only when some spans were rejected (or to carry a warning).
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `opentelemetry.proto.trace.v1.ResourceSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

/// `opentelemetry.proto.trace.v1.ScopeSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `opentelemetry.proto.common.v1.InstrumentationScope`.
#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `opentelemetry.proto.trace.v1.Span`.
#[derive(Clone, PartialEq, Message)]
pub struct Span {
    /// 16 bytes, big-endian; all zeros or another length is invalid.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes; all zeros or another length is invalid.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// W3C `tracestate`.
    #[prost(string, tag = "3")]
    pub trace_state: String,
    /// Empty for a root span, else 8 bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    /// The W3C trace flags in the low 8 bits.
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(enumeration = "SpanKind", tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<Link>,
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `opentelemetry.proto.trace.v1.Span.SpanKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SpanKind {
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

/// `opentelemetry.proto.trace.v1.Span.Event`.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

/// `opentelemetry.proto.trace.v1.Span.Link`.
#[derive(Clone, PartialEq, Message)]
pub struct Link {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub trace_state: String,
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "5")]
    pub dropped_attributes_count: u32,
    #[prost(fixed32, tag = "6")]
    pub flags: u32,
}

/// `opentelemetry.proto.trace.v1.Status` (field 1 is reserved).
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(enumeration = "StatusCode", tag = "3")]
    pub code: i32,
}

/// `opentelemetry.proto.trace.v1.Status.StatusCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StatusCode {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

/// `opentelemetry.proto.common.v1.KeyValue`.
#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `opentelemetry.proto.common.v1.AnyValue`: one of its `value` fields, or
/// none ("empty").
#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

/// The `oneof value` of `AnyValue`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    StringValue(String),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    IntValue(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    ArrayValue(ArrayValue),
    #[prost(message, tag = "6")]
    KvlistValue(KeyValueList),
    #[prost(bytes = "vec", tag = "7")]
    BytesValue(Vec<u8>),
}

/// `opentelemetry.proto.common.v1.ArrayValue`.
#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// `opentelemetry.proto.common.v1.KeyValueList`.
#[derive(Clone, PartialEq, Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `google.rpc.Status`: what an OTLP/HTTP server answers with a 4xx or 5xx
/// (OTLP specification, "Failures"). `details` (field 3, `google.protobuf.Any`)
/// is not read.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

impl KeyValue {
    /// A string attribute.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(key, Value::StringValue(value.into()))
    }

    /// An attribute of any type.
    pub fn new(key: impl Into<String>, value: Value) -> Self {
        Self {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(field << 3) | wire type`, the key of a protobuf field.
    fn key(field: u8, wire: u8) -> u8 {
        field << 3 | wire
    }

    /// A length-delimited field: key, length (a varint), bytes.
    fn delimited(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![key(field, 2)];
        let mut length = bytes.len();
        while length >= 0x80 {
            out.push(u8::try_from(length & 0x7f).unwrap() | 0x80);
            length >>= 7;
        }
        out.push(u8::try_from(length).unwrap());
        out.extend_from_slice(bytes);
        out
    }

    const VARINT: u8 = 0;
    const I64: u8 = 1;
    const I32: u8 = 5;

    /// Every field of `trace.proto`'s `Span` (and what it holds), written
    /// by hand from the numbers and types of the `.proto` files.
    #[test]
    fn decodes_bytes_laid_out_by_the_proto_files() {
        let string_attr = {
            let value = delimited(1, b"v"); // AnyValue.string_value = 1
            [delimited(1, b"k"), delimited(2, &value)].concat() // KeyValue key 1, value 2
        };
        let int_attr = {
            let value = [key(3, VARINT), 42]; // AnyValue.int_value = 3
            [delimited(1, b"n"), delimited(2, &value)].concat()
        };
        let mut event = vec![key(1, I64)]; // Event.time_unix_nano = 1, fixed64
        event.extend(7u64.to_le_bytes());
        event.extend(delimited(2, b"ev")); // name = 2
        event.extend(delimited(3, &string_attr)); // attributes = 3
        event.extend([key(4, VARINT), 1]); // dropped_attributes_count = 4
        let mut link = delimited(1, &[0x11; 16]); // Link.trace_id = 1
        link.extend(delimited(2, &[0x22; 8])); // span_id = 2
        link.extend(delimited(3, b"a=b")); // trace_state = 3
        link.extend(delimited(4, &int_attr)); // attributes = 4
        link.extend([key(5, VARINT), 2]); // dropped_attributes_count = 5
        link.push(key(6, I32)); // flags = 6, fixed32
        link.extend(1u32.to_le_bytes());
        let status = [delimited(2, b"boom"), vec![key(3, VARINT), 2]].concat(); // message 2, code 3

        let mut span = delimited(1, &[0xab; 16]); // trace_id = 1
        span.extend(delimited(2, &[0xcd; 8])); // span_id = 2
        span.extend(delimited(3, b"x=y")); // trace_state = 3
        span.extend(delimited(4, &[0xef; 8])); // parent_span_id = 4
        span.extend(delimited(5, b"GET /")); // name = 5
        span.extend([key(6, VARINT), 3]); // kind = 6: CLIENT
        span.push(key(7, I64)); // start_time_unix_nano = 7
        span.extend(1_000u64.to_le_bytes());
        span.push(key(8, I64)); // end_time_unix_nano = 8
        span.extend(2_000u64.to_le_bytes());
        span.extend(delimited(9, &string_attr)); // attributes = 9
        span.extend([key(10, VARINT), 3]); // dropped_attributes_count = 10
        span.extend(delimited(11, &event)); // events = 11
        span.extend([key(12, VARINT), 4]); // dropped_events_count = 12
        span.extend(delimited(13, &link)); // links = 13
        span.extend([key(14, VARINT), 5]); // dropped_links_count = 14
        span.extend(delimited(15, &status)); // status = 15
        // flags = 16, fixed32: the key (16 << 3 | 5 = 133) is a two-byte varint.
        span.extend([0x85, 0x01]);
        span.extend(1u32.to_le_bytes());

        let scope = [delimited(1, b"lib"), delimited(2, b"1.0")].concat(); // name 1, version 2
        let scope_spans = [
            delimited(1, &scope),
            delimited(2, &span),
            delimited(3, b"s"),
        ]
        .concat(); // scope 1, spans 2, schema_url 3
        let resource = [delimited(1, &string_attr), vec![key(2, VARINT), 6]].concat();
        let resource_spans = [
            delimited(1, &resource),
            delimited(2, &scope_spans),
            delimited(3, b"r"),
        ]
        .concat();
        let body = delimited(1, &resource_spans); // ExportTraceServiceRequest.resource_spans = 1

        let kv = |k: &str, v: Value| KeyValue::new(k, v);
        let expected = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("k", Value::StringValue("v".into()))],
                    dropped_attributes_count: 6,
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1.0".into(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    }),
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![0xcd; 8],
                        trace_state: "x=y".into(),
                        parent_span_id: vec![0xef; 8],
                        flags: 1,
                        name: "GET /".into(),
                        kind: SpanKind::Client as i32,
                        start_time_unix_nano: 1_000,
                        end_time_unix_nano: 2_000,
                        attributes: vec![kv("k", Value::StringValue("v".into()))],
                        dropped_attributes_count: 3,
                        events: vec![Event {
                            time_unix_nano: 7,
                            name: "ev".into(),
                            attributes: vec![kv("k", Value::StringValue("v".into()))],
                            dropped_attributes_count: 1,
                        }],
                        dropped_events_count: 4,
                        links: vec![Link {
                            trace_id: vec![0x11; 16],
                            span_id: vec![0x22; 8],
                            trace_state: "a=b".into(),
                            attributes: vec![kv("n", Value::IntValue(42))],
                            dropped_attributes_count: 2,
                            flags: 1,
                        }],
                        dropped_links_count: 5,
                        status: Some(Status {
                            message: "boom".into(),
                            code: StatusCode::Error as i32,
                        }),
                    }],
                    schema_url: "s".into(),
                }],
                schema_url: "r".into(),
            }],
        };
        assert_eq!(
            ExportTraceServiceRequest::decode(&body[..]).unwrap(),
            expected
        );
    }

    #[test]
    fn every_any_value_kind_has_its_field_number() {
        let cases: [(Vec<u8>, Value); 7] = [
            (delimited(1, b"s"), Value::StringValue("s".into())),
            (vec![key(2, VARINT), 1], Value::BoolValue(true)),
            (vec![key(3, VARINT), 5], Value::IntValue(5)),
            (
                [vec![key(4, I64)], 1.5f64.to_le_bytes().to_vec()].concat(),
                Value::DoubleValue(1.5),
            ),
            (
                delimited(5, &delimited(1, &delimited(1, b"a"))),
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("a".into())),
                    }],
                }),
            ),
            (
                delimited(6, &delimited(1, &delimited(1, b"k"))),
                Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: None,
                    }],
                }),
            ),
            (delimited(7, &[0, 255]), Value::BytesValue(vec![0, 255])),
        ];
        for (bytes, value) in cases {
            let decoded = AnyValue::decode(&bytes[..]).unwrap();
            assert_eq!(decoded.value, Some(value));
        }
    }

    #[test]
    fn responses_and_rpc_status_have_their_field_numbers() {
        let partial = [vec![key(1, VARINT), 3], delimited(2, b"bad ids")].concat();
        let response = ExportTraceServiceResponse::decode(&delimited(1, &partial)[..]).unwrap();
        assert_eq!(
            response.partial_success,
            Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "bad ids".into()
            })
        );
        let status = [vec![key(1, VARINT), 3], delimited(2, b"no")].concat();
        assert_eq!(
            RpcStatus::decode(&status[..]).unwrap(),
            RpcStatus {
                code: 3,
                message: "no".into()
            }
        );
        // An empty response (full success) is zero bytes.
        assert!(
            ExportTraceServiceResponse::default()
                .encode_to_vec()
                .is_empty()
        );
    }
}
