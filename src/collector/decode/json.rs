//! The JSON wire form of `POST /api/v2/spans` (Zipkin v2 API,
//! `definitions/ListOfSpans`): a JSON list of span objects.
//!
//! Maps JSON to the span model and checks shapes: ids are hex of the spec's
//! lengths (`traceId` 16 or 32, `id`/`parentId` 16; uppercase accepted; an
//! all-zero `parentId` means root), `kind` is one of the four names, numbers
//! are numbers, ports are 0 to 65535, tags and annotations have the right
//! shape. A microsecond value that is a number but not a whole non-negative
//! one (`-1`, `1.5`) is left out here; every other value rule is
//! [`super::normalize`]'s. Unknown fields are ignored, as Zipkin's reader does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{FieldError, IngestError, normalize};
use crate::collector::model::{Annotation, Endpoint, Kind, Span};
use crate::span::{SpanId, TraceId};

/// Longest excerpt of a bad value echoed back in an error message.
const ECHO_LIMIT: usize = 40;

/// Decodes and validates a whole upload; any invalid span fails the batch.
///
/// The list is read one span at a time, each span's JSON tree dropped as
/// soon as it is converted, rather than the whole upload's tree first: the
/// collector's ingest rate is bound by this, and holding every tree of a
/// large upload at once costs more in the allocator than the parsing. The
/// answer is the same: invalid JSON anywhere wins over an invalid span (the
/// rest of the list is still read), then the first invalid span.
pub fn decode_spans(body: &[u8]) -> Result<Vec<Span>, IngestError> {
    let is_list = body
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|&byte| byte == b'[');
    if !is_list {
        // Not a list, or not JSON at all: say which.
        let _: Value = serde_json::from_slice(body).map_err(IngestError::Json)?;
        return Err(IngestError::NotAList);
    }
    let mut list = SpanList::default();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde::de::DeserializeSeed::deserialize(&mut list, &mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(IngestError::Json)?;
    match list.first_problem {
        Some(problem) => Err(problem),
        None => Ok(list.spans),
    }
}

/// The spans of an upload read so far, and its first invalid span.
#[derive(Default)]
struct SpanList {
    spans: Vec<Span>,
    first_problem: Option<IngestError>,
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut SpanList {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut SpanList {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of spans")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            if self.first_problem.is_none() {
                match decode_span(item) {
                    Ok(span) => self.spans.push(span),
                    Err(error) => self.first_problem = Some(error.at(index)),
                }
            }
            index += 1;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Span {
    /// Reads one span with the same validation and normalisation as uploads.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        decode_span(value).map_err(serde::de::Error::custom)
    }
}

/// Validates and normalises one span object.
pub fn decode_span(value: Value) -> Result<Span, FieldError> {
    decode_raw(value).map(normalize)
}

fn decode_raw(value: Value) -> Result<Span, FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new("(span)", "expected a JSON object"));
    };
    let trace_id = trace_id(required(&map, "traceId")?)?;
    let id = span_id(required(&map, "id")?, "id")?;
    // Zipkin: an all-zero parent id means root.
    let parent_id = match present(&map, "parentId") {
        Some(value) if is_all_zero_hex(value) => None,
        Some(value) => Some(span_id(value, "parentId")?),
        None => None,
    };
    let kind = match present(&map, "kind") {
        Some(value) => Some(kind(value)?),
        None => None,
    };
    Ok(Span {
        trace_id,
        parent_id,
        id,
        kind,
        name: label(&map, "name")?,
        timestamp: micros(&map, "timestamp")?,
        duration: micros(&map, "duration")?,
        local_endpoint: endpoint(&map, "localEndpoint")?,
        remote_endpoint: endpoint(&map, "remoteEndpoint")?,
        annotations: annotations(&map)?,
        tags: tags(&map)?,
        debug: flag(&map, "debug")?,
        shared: flag(&map, "shared")?,
    })
}

/// A field's value, treating JSON `null` as absent.
fn present<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    map.get(field).filter(|value| !value.is_null())
}

fn required<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a Value, FieldError> {
    present(map, field).ok_or_else(|| FieldError::new(field, "is required"))
}

fn echo(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn is_all_zero_hex(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| !text.is_empty() && text.bytes().all(|b| b == b'0'))
}

/// Lowercases ASCII hex into a fixed buffer; `None` for non-hex or too long.
fn lower_hex<const N: usize>(text: &str) -> Option<([u8; N], usize)> {
    let bytes = text.as_bytes();
    if bytes.len() > N || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = byte.to_ascii_lowercase();
    }
    Some((out, bytes.len()))
}

/// Parses a trace id as the spec allows it: 16 or 32 hex digits, not all zero.
pub fn parse_trace_id(text: &str) -> Option<TraceId> {
    let (hex, len) = lower_hex::<32>(text)?;
    match len {
        16 | 32 => TraceId::parse_hex(&hex[..len], true),
        _ => None,
    }
}

fn trace_id(value: &Value) -> Result<TraceId, FieldError> {
    value.as_str().and_then(parse_trace_id).ok_or_else(|| {
        let reason = if is_all_zero_hex(value) {
            "must not be all zeros".to_owned()
        } else {
            format!("expected 16 or 32 hex characters, got {}", echo(value))
        };
        FieldError::new("traceId", reason)
    })
}

fn span_id(value: &Value, field: &str) -> Result<SpanId, FieldError> {
    let parsed = value
        .as_str()
        .and_then(lower_hex::<16>)
        .filter(|(_, len)| *len == 16)
        .and_then(|(hex, _)| SpanId::parse_hex(&hex));
    parsed.ok_or_else(|| {
        let reason = if is_all_zero_hex(value) {
            "must not be all zeros".to_owned()
        } else {
            format!("expected 16 hex characters, got {}", echo(value))
        };
        FieldError::new(field, reason)
    })
}

fn kind(value: &Value) -> Result<Kind, FieldError> {
    value.as_str().and_then(Kind::parse).ok_or_else(|| {
        FieldError::new(
            "kind",
            format!(
                "expected CLIENT, SERVER, PRODUCER or CONSUMER, got {}",
                echo(value)
            ),
        )
    })
}

fn string<'a>(value: &'a Value, field: &str) -> Result<&'a str, FieldError> {
    value
        .as_str()
        .ok_or_else(|| FieldError::new(field, format!("expected a string, got {}", echo(value))))
}

/// A name as sent (lowercased by [`normalize`]).
fn label(map: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    let Some(value) = present(map, field) else {
        return Ok(None);
    };
    Ok(Some(string(value, field)?.to_owned()))
}

fn integer(value: &Value, field: &str) -> Result<u64, FieldError> {
    value.as_u64().ok_or_else(|| {
        FieldError::new(
            field,
            format!("expected a non-negative integer, got {}", echo(value)),
        )
    })
}

/// Epoch or duration microseconds, `None` when absent or not a whole
/// non-negative number. Only a value that is not a JSON number is an error.
fn micros(map: &Map<String, Value>, field: &str) -> Result<Option<u64>, FieldError> {
    match present(map, field) {
        Some(value) => micros_value(value, field),
        None => Ok(None),
    }
}

/// Reads one microsecond value: a number that is not a whole non-negative
/// one is left out; anything else (a string, an object) fails the span.
fn micros_value(value: &Value, field: &str) -> Result<Option<u64>, FieldError> {
    match value {
        Value::Number(number) => Ok(number.as_u64()),
        _ => Err(FieldError::new(
            field,
            format!("expected a number of microseconds, got {}", echo(value)),
        )),
    }
}

fn flag(map: &Map<String, Value>, field: &str) -> Result<bool, FieldError> {
    match present(map, field) {
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(value) => Err(FieldError::new(
            field,
            format!("expected true or false, got {}", echo(value)),
        )),
        None => Ok(false),
    }
}

fn endpoint(map: &Map<String, Value>, field: &str) -> Result<Option<Endpoint>, FieldError> {
    let Some(value) = present(map, field) else {
        return Ok(None);
    };
    let Value::Object(fields) = value else {
        return Err(FieldError::new(field, "expected a JSON object"));
    };
    let mut endpoint = Endpoint {
        service_name: label(fields, "serviceName").map_err(|e| e.under(field))?,
        ..Endpoint::default()
    };
    // Zipkin's Endpoint.Builder.parseIp ignores addresses it cannot parse.
    for key in ["ipv4", "ipv6"] {
        if let Some(value) = present(fields, key) {
            let text = string(value, key).map_err(|e| e.under(field))?;
            match text.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => endpoint.ipv4 = Some(ip),
                Ok(IpAddr::V6(ip)) => endpoint.ipv6 = Some(ip),
                Err(_) => {}
            }
        }
    }
    if let Some(value) = present(fields, "port") {
        let port = integer(value, "port")
            .ok()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| {
                FieldError::new("port", format!("expected 0 to 65535, got {}", echo(value)))
                    .under(field)
            })?;
        endpoint.port = Some(port);
    }
    Ok(Some(endpoint))
}

fn annotations(map: &Map<String, Value>) -> Result<Vec<Annotation>, FieldError> {
    let Some(value) = present(map, "annotations") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(FieldError::new("annotations", "expected a JSON list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let decode = || -> Result<Option<Annotation>, FieldError> {
            let Value::Object(fields) = item else {
                return Err(FieldError::new("(annotation)", "expected a JSON object"));
            };
            let timestamp = micros_value(required(fields, "timestamp")?, "timestamp")?;
            let value = string(required(fields, "value")?, "value")?;
            Ok(timestamp.map(|timestamp| Annotation {
                timestamp,
                value: value.to_owned(),
            }))
        };
        // An annotation is a point in time: without one it is left out.
        if let Some(annotation) = decode().map_err(|e| e.under(&format!("annotations[{i}]")))? {
            out.push(annotation);
        }
    }
    Ok(out)
}

fn tags(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, FieldError> {
    let Some(value) = present(map, "tags") else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(fields) = value else {
        return Err(FieldError::new("tags", "expected a JSON object"));
    };
    let mut out = BTreeMap::new();
    for (key, value) in fields {
        // Tags are strings (`definitions/Tags`); numbers and booleans are
        // taken as their JSON text since some clients send them unquoted.
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => {
                return Err(FieldError::new(
                    format!("tags.{key}"),
                    format!("expected a string, got {}", echo(value)),
                ));
            }
        };
        out.insert(key.clone(), text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::MAX_MICROS;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "traceId": "5af7183fb1d4cf5f",
            "parentId": "6b221d5bc9e6496c",
            "id": "352bff9a74ca9ad2",
            "name": "get /api",
            "timestamp": 1556604172355737u64,
            "duration": 1431,
            "kind": "SERVER",
            "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.1", "port": 3306},
            "remoteEndpoint": {"ipv4": "172.19.0.2", "port": 58648},
            "tags": {"http.method": "GET", "http.path": "/api"}
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut span = valid();
        span[field] = value;
        span
    }

    #[test]
    fn decodes_the_spec_example() {
        let span = decode_span(valid()).unwrap();
        // Serialising gives back the example exactly (field order aside).
        assert_eq!(serde_json::to_value(&span).unwrap(), valid());
    }

    #[test]
    fn normalises_like_zipkin() {
        let cases: &[(&str, Value, &str, Value)] = &[
            (
                "traceId",
                json!("5AF7183FB1D4CF5F"),
                "traceId",
                json!("5af7183fb1d4cf5f"),
            ),
            (
                "traceId",
                json!("00000000000000005af7183fb1d4cf5f"),
                "traceId",
                json!("5af7183fb1d4cf5f"),
            ),
            (
                "traceId",
                json!("4E441824EC2B6A44FFDC9BB9A6453DF3"),
                "traceId",
                json!("4e441824ec2b6a44ffdc9bb9a6453df3"),
            ),
            (
                "id",
                json!("352BFF9A74CA9AD2"),
                "id",
                json!("352bff9a74ca9ad2"),
            ),
            (
                "parentId",
                json!("0000000000000000"),
                "parentId",
                Value::Null,
            ),
            (
                "parentId",
                json!("352bff9a74ca9ad2"),
                "parentId",
                Value::Null,
            ),
            ("parentId", Value::Null, "parentId", Value::Null),
            ("name", json!("GET /API"), "name", json!("get /api")),
            ("name", json!(""), "name", Value::Null),
            ("timestamp", json!(0), "timestamp", Value::Null),
            ("duration", json!(0), "duration", Value::Null),
            ("shared", json!(false), "shared", Value::Null),
            ("debug", json!(true), "debug", json!(true)),
            (
                "localEndpoint",
                json!({"serviceName": "BackEnd", "ipv6": "::ffff:10.0.0.1", "port": 0}),
                "localEndpoint",
                json!({"serviceName": "backend", "ipv4": "10.0.0.1"}),
            ),
            (
                "remoteEndpoint",
                json!({"ipv4": "not-an-ip", "ipv6": "2001:db8::c001"}),
                "remoteEndpoint",
                json!({"ipv6": "2001:db8::c001"}),
            ),
            (
                "remoteEndpoint",
                json!({"serviceName": ""}),
                "remoteEndpoint",
                Value::Null,
            ),
            (
                "tags",
                json!({"count": 3, "ok": true}),
                "tags",
                json!({"count": "3", "ok": "true"}),
            ),
            (
                "annotations",
                json!([{"timestamp": 2, "value": "b"}, {"timestamp": 1, "value": "a"},
                       {"timestamp": 2, "value": "b"}]),
                "annotations",
                json!([{"timestamp": 1, "value": "a"}, {"timestamp": 2, "value": "b"}]),
            ),
        ];
        for (field, input, out_field, expected) in cases {
            let span = decode_span(with(field, input.clone())).unwrap();
            let out = serde_json::to_value(&span).unwrap();
            let got = out.get(*out_field).cloned().unwrap_or(Value::Null);
            assert_eq!(&got, expected, "{field} = {input}");
        }
    }

    #[test]
    fn unusable_microsecond_values_are_left_out() {
        let largest = MAX_MICROS;
        let cases: &[(&str, Value, Value)] = &[
            ("timestamp", json!(-1), Value::Null),
            ("timestamp", json!(i64::MIN), Value::Null),
            ("timestamp", json!(1.5), Value::Null),
            ("timestamp", json!(1e20), Value::Null),
            ("timestamp", json!(u64::MAX), Value::Null),
            ("timestamp", json!(largest + 1), Value::Null),
            ("timestamp", json!(largest), json!(largest)),
            ("timestamp", json!(1), json!(1)),
            ("duration", json!(-1431), Value::Null),
            ("duration", json!(0.5), Value::Null),
            ("duration", json!(largest + 1), Value::Null),
            ("duration", json!(1), json!(1)),
        ];
        for (field, input, expected) in cases {
            let span = decode_span(with(field, input.clone())).unwrap();
            let out = serde_json::to_value(&span).unwrap();
            assert_eq!(
                out.get(*field).unwrap_or(&Value::Null),
                expected,
                "{field} = {input}"
            );
            // Everything else of the span is kept.
            assert_eq!(span.local_service_name(), Some("backend"));
        }
        let annotations = json!([
            {"timestamp": -5, "value": "negative"}, {"timestamp": 0, "value": "zero"},
            {"timestamp": 2.5, "value": "fraction"}, {"timestamp": largest + 1, "value": "far"},
            {"timestamp": 7, "value": "kept"}
        ]);
        let span = decode_span(with("annotations", annotations)).unwrap();
        assert_eq!(
            span.annotations,
            [Annotation {
                timestamp: 7,
                value: "kept".into()
            }]
        );
    }

    #[test]
    fn shared_is_dropped_on_client_spans() {
        let mut span = with("kind", json!("CLIENT"));
        span["shared"] = json!(true);
        assert!(!decode_span(span).unwrap().shared);
        assert!(decode_span(with("shared", json!(true))).unwrap().shared);
    }

    #[test]
    fn rejects_spec_violations_naming_the_field() {
        let cases: &[(&str, Value, &str)] = &[
            ("traceId", Value::Null, "traceId"),
            ("traceId", json!("5af7183fb1d4cf5"), "traceId"),
            ("traceId", json!("5af7183fb1d4cf5f0"), "traceId"),
            ("traceId", json!("zzf7183fb1d4cf5f"), "traceId"),
            (
                "traceId",
                json!("00000000000000000000000000000000"),
                "traceId",
            ),
            ("traceId", json!(12), "traceId"),
            ("id", Value::Null, "id"),
            ("id", json!("352bff9a74ca9ad"), "id"),
            ("id", json!("0000000000000000"), "id"),
            ("parentId", json!("xyz"), "parentId"),
            ("kind", json!("server"), "kind"),
            ("kind", json!("LOCAL"), "kind"),
            ("timestamp", json!("1"), "timestamp"),
            ("duration", json!(true), "duration"),
            ("name", json!(3), "name"),
            ("debug", json!("yes"), "debug"),
            ("localEndpoint", json!("backend"), "localEndpoint"),
            (
                "localEndpoint",
                json!({"port": 70000}),
                "localEndpoint.port",
            ),
            (
                "remoteEndpoint",
                json!({"serviceName": 1}),
                "remoteEndpoint.serviceName",
            ),
            ("annotations", json!({}), "annotations"),
            (
                "annotations",
                json!([{"value": "ws"}]),
                "annotations[0].timestamp",
            ),
            (
                "annotations",
                json!([{"timestamp": 1}]),
                "annotations[0].value",
            ),
            (
                "annotations",
                json!([{"timestamp": "1", "value": "ws"}]),
                "annotations[0].timestamp",
            ),
            ("annotations", json!([1]), "annotations[0].(annotation)"),
            ("tags", json!([]), "tags"),
            ("tags", json!({"a": null}), "tags.a"),
            ("tags", json!({"a": {}}), "tags.a"),
        ];
        for (field, input, expected_field) in cases {
            let error = decode_span(with(field, input.clone())).unwrap_err();
            assert_eq!(error.field, *expected_field, "{field} = {input}: {error}");
        }
    }

    #[test]
    fn batch_errors_name_the_span_index() {
        let body = json!([valid(), with("id", json!("nope"))]).to_string();
        let error = decode_spans(body.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"span 1: id: expected 16 hex characters, got "nope""#
        );
        assert!(matches!(
            decode_spans(b"{\"traceId\":1}"),
            Err(IngestError::NotAList)
        ));
        assert!(matches!(decode_spans(b"[{"), Err(IngestError::Json(_))));
        assert!(matches!(
            decode_spans(b"[1]"),
            Err(IngestError::InvalidSpan { index: 0, .. })
        ));
        assert_eq!(decode_spans(b"[]").unwrap(), Vec::new());
    }

    #[test]
    fn long_bad_values_are_shortened_in_messages() {
        let long = "x".repeat(500);
        let error = decode_span(with("id", json!(long))).unwrap_err();
        assert!(error.reason.len() < 100, "{}", error.reason);
    }

    #[test]
    fn span_implements_deserialize_with_the_same_rules() {
        let span: Span = serde_json::from_value(valid()).unwrap();
        assert_eq!(span.local_service_name(), Some("backend"));
        assert!(serde_json::from_value::<Span>(with("id", json!("x"))).is_err());
    }
}
