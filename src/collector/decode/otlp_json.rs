//! OTLP's JSON encoding of an `ExportTraceServiceRequest` (OTLP
//! specification, "JSON Protobuf Encoding"), read into the same prost
//! messages the binary form decodes to, so both share one conversion.
//!
//! Proto3's JSON mapping with OTLP's deviations: keys are the fields'
//! lowerCamelCase names (the proto names are accepted too, as proto3
//! parsers do); `traceId`, `spanId` and `parentSpanId` are hex, in either
//! case, not base64; enums are integers (their names are accepted too);
//! 64-bit integers are decimal strings or numbers; `bytesValue` is base64;
//! `null` is the field's default; unknown fields are ignored. A value of
//! the wrong JSON type fails the request with its path, as a protobuf body
//! that does not decode does.

use base64::Engine as _;
use serde_json::{Map, Value as Json};

use super::IngestError;
use crate::otlp::{
    AnyValue, ArrayValue, Event, ExportTraceServiceRequest, InstrumentationScope, KeyValue,
    KeyValueList, Link, Resource, ResourceSpans, ScopeSpans, Span, SpanKind, Status, StatusCode,
    Value,
};

/// Where a value sits in the request, for error messages.
type Path<'a> = &'a dyn Fn() -> String;

/// Reads a JSON body.
pub fn decode(body: &[u8]) -> Result<ExportTraceServiceRequest, IngestError> {
    let json: Json = serde_json::from_slice(body).map_err(IngestError::Json)?;
    let top = object(&json, &|| "(request)".to_owned())?;
    Ok(ExportTraceServiceRequest {
        resource_spans: list(top, "resourceSpans", &|| String::new(), resource_spans)?,
    })
}

fn resource_spans(json: &Json, at: Path<'_>) -> Result<ResourceSpans, IngestError> {
    let map = object(json, at)?;
    Ok(ResourceSpans {
        resource: optional(map, "resource", at, |json, at| {
            let map = object(json, at)?;
            Ok(Resource {
                attributes: list(map, "attributes", at, key_value)?,
                dropped_attributes_count: number(map, "droppedAttributesCount", at)?,
            })
        })?,
        scope_spans: list(map, "scopeSpans", at, scope_spans)?,
        schema_url: string(map, "schemaUrl", at)?,
    })
}

fn scope_spans(json: &Json, at: Path<'_>) -> Result<ScopeSpans, IngestError> {
    let map = object(json, at)?;
    Ok(ScopeSpans {
        scope: optional(map, "scope", at, |json, at| {
            let map = object(json, at)?;
            Ok(InstrumentationScope {
                name: string(map, "name", at)?,
                version: string(map, "version", at)?,
                attributes: list(map, "attributes", at, key_value)?,
                dropped_attributes_count: number(map, "droppedAttributesCount", at)?,
            })
        })?,
        spans: list(map, "spans", at, span)?,
        schema_url: string(map, "schemaUrl", at)?,
    })
}

fn span(json: &Json, at: Path<'_>) -> Result<Span, IngestError> {
    let map = object(json, at)?;
    Ok(Span {
        trace_id: hex(map, "traceId", at)?,
        span_id: hex(map, "spanId", at)?,
        trace_state: string(map, "traceState", at)?,
        parent_span_id: hex(map, "parentSpanId", at)?,
        flags: number(map, "flags", at)?,
        name: string(map, "name", at)?,
        kind: enumeration(map, "kind", at, |name| {
            let kind = match name {
                "SPAN_KIND_UNSPECIFIED" => SpanKind::Unspecified,
                "SPAN_KIND_INTERNAL" => SpanKind::Internal,
                "SPAN_KIND_SERVER" => SpanKind::Server,
                "SPAN_KIND_CLIENT" => SpanKind::Client,
                "SPAN_KIND_PRODUCER" => SpanKind::Producer,
                "SPAN_KIND_CONSUMER" => SpanKind::Consumer,
                _ => return None,
            };
            Some(kind as i32)
        })?,
        start_time_unix_nano: number(map, "startTimeUnixNano", at)?,
        end_time_unix_nano: number(map, "endTimeUnixNano", at)?,
        attributes: list(map, "attributes", at, key_value)?,
        dropped_attributes_count: number(map, "droppedAttributesCount", at)?,
        events: list(map, "events", at, event)?,
        dropped_events_count: number(map, "droppedEventsCount", at)?,
        links: list(map, "links", at, link)?,
        dropped_links_count: number(map, "droppedLinksCount", at)?,
        status: optional(map, "status", at, status)?,
    })
}

fn event(json: &Json, at: Path<'_>) -> Result<Event, IngestError> {
    let map = object(json, at)?;
    Ok(Event {
        time_unix_nano: number(map, "timeUnixNano", at)?,
        name: string(map, "name", at)?,
        attributes: list(map, "attributes", at, key_value)?,
        dropped_attributes_count: number(map, "droppedAttributesCount", at)?,
    })
}

fn link(json: &Json, at: Path<'_>) -> Result<Link, IngestError> {
    let map = object(json, at)?;
    Ok(Link {
        trace_id: hex(map, "traceId", at)?,
        span_id: hex(map, "spanId", at)?,
        trace_state: string(map, "traceState", at)?,
        attributes: list(map, "attributes", at, key_value)?,
        dropped_attributes_count: number(map, "droppedAttributesCount", at)?,
        flags: number(map, "flags", at)?,
    })
}

fn status(json: &Json, at: Path<'_>) -> Result<Status, IngestError> {
    let map = object(json, at)?;
    Ok(Status {
        message: string(map, "message", at)?,
        code: enumeration(map, "code", at, |name| {
            let code = match name {
                "STATUS_CODE_UNSET" => StatusCode::Unset,
                "STATUS_CODE_OK" => StatusCode::Ok,
                "STATUS_CODE_ERROR" => StatusCode::Error,
                _ => return None,
            };
            Some(code as i32)
        })?,
    })
}

fn key_value(json: &Json, at: Path<'_>) -> Result<KeyValue, IngestError> {
    let map = object(json, at)?;
    Ok(KeyValue {
        key: string(map, "key", at)?,
        value: optional(map, "value", at, any_value)?,
    })
}

/// `AnyValue`: at most one of its fields; none is the empty value.
fn any_value(json: &Json, at: Path<'_>) -> Result<AnyValue, IngestError> {
    let map = object(json, at)?;
    let here = |field: &str| format!("{}.{field}", at());
    let value = if let Some(text) = field(map, "stringValue") {
        Some(Value::StringValue(
            as_str(text, &|| here("stringValue"))?.to_owned(),
        ))
    } else if let Some(flag) = field(map, "boolValue") {
        let flag = flag
            .as_bool()
            .ok_or_else(|| shape(&here("boolValue"), "true or false"))?;
        Some(Value::BoolValue(flag))
    } else if field(map, "intValue").is_some() {
        Some(Value::IntValue(number(map, "intValue", at)?))
    } else if let Some(number) = field(map, "doubleValue") {
        Some(Value::DoubleValue(double(number, &|| here("doubleValue"))?))
    } else if field(map, "arrayValue").is_some() {
        let values = optional(map, "arrayValue", at, |json, at| {
            list(object(json, at)?, "values", at, any_value)
        })?;
        Some(Value::ArrayValue(ArrayValue {
            values: values.unwrap_or_default(),
        }))
    } else if field(map, "kvlistValue").is_some() {
        let values = optional(map, "kvlistValue", at, |json, at| {
            list(object(json, at)?, "values", at, key_value)
        })?;
        Some(Value::KvlistValue(KeyValueList {
            values: values.unwrap_or_default(),
        }))
    } else if let Some(text) = field(map, "bytesValue") {
        let text = as_str(text, &|| here("bytesValue"))?;
        Some(Value::BytesValue(
            base64_bytes(text).ok_or_else(|| shape(&here("bytesValue"), "base64"))?,
        ))
    } else {
        None
    };
    Ok(AnyValue { value })
}

/// A field by its lowerCamelCase name, or its proto name; `null` is absent.
fn field<'a>(map: &'a Map<String, Json>, camel: &str) -> Option<&'a Json> {
    map.get(camel)
        .or_else(|| map.get(&snake_case(camel)))
        .filter(|value| !value.is_null())
}

/// `startTimeUnixNano` -> `start_time_unix_nano`.
fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn shape(at: &str, expected: &str) -> IngestError {
    IngestError::OtlpJson {
        field: at.trim_start_matches('.').to_owned(),
        expected: expected.to_owned(),
    }
}

fn object<'a>(json: &'a Json, at: Path<'_>) -> Result<&'a Map<String, Json>, IngestError> {
    json.as_object().ok_or_else(|| shape(&at(), "an object"))
}

fn as_str<'a>(json: &'a Json, at: Path<'_>) -> Result<&'a str, IngestError> {
    json.as_str().ok_or_else(|| shape(&at(), "a string"))
}

/// A list field, each item read by `item`; absent is empty.
fn list<T>(
    map: &Map<String, Json>,
    name: &str,
    at: Path<'_>,
    item: impl Fn(&Json, Path<'_>) -> Result<T, IngestError>,
) -> Result<Vec<T>, IngestError> {
    let Some(value) = field(map, name) else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| shape(&format!("{}.{name}", at()), "a list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, json)| item(json, &|| format!("{}.{name}[{i}]", at())))
        .collect()
}

/// A message field read by `read`; absent is `None`.
fn optional<T>(
    map: &Map<String, Json>,
    name: &str,
    at: Path<'_>,
    read: impl Fn(&Json, Path<'_>) -> Result<T, IngestError>,
) -> Result<Option<T>, IngestError> {
    field(map, name)
        .map(|json| read(json, &|| format!("{}.{name}", at())))
        .transpose()
}

fn string(map: &Map<String, Json>, name: &str, at: Path<'_>) -> Result<String, IngestError> {
    field(map, name).map_or(Ok(String::new()), |json| {
        as_str(json, &|| format!("{}.{name}", at())).map(str::to_owned)
    })
}

/// An integer field of any width: a JSON number or a decimal string
/// (proto3 writes 64-bit integers as strings); absent is 0.
fn number<T: TryFrom<i128>>(
    map: &Map<String, Json>,
    name: &str,
    at: Path<'_>,
) -> Result<T, IngestError> {
    let Some(json) = field(map, name) else {
        return T::try_from(0).map_err(|_| shape(name, "an integer"));
    };
    let wide = match json {
        Json::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Json::String(text) => text.trim().parse::<i128>().ok(),
        _ => None,
    };
    wide.and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| shape(&format!("{}.{name}", at()), "an integer in range"))
}

/// An enum: its number, or its name as `by_name` knows it.
fn enumeration(
    map: &Map<String, Json>,
    name: &str,
    at: Path<'_>,
    by_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32, IngestError> {
    match field(map, name) {
        Some(Json::String(text)) if text.parse::<i32>().is_err() => {
            by_name(text).ok_or_else(|| shape(&format!("{}.{name}", at()), "an enum number"))
        }
        _ => number(map, name, at),
    }
}

/// A double: a number, a numeric string, or `NaN`/`Infinity`/`-Infinity`.
fn double(json: &Json, at: Path<'_>) -> Result<f64, IngestError> {
    let number = match json {
        Json::Number(n) => n.as_f64(),
        Json::String(text) => match text.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    };
    number.ok_or_else(|| shape(&at(), "a number"))
}

/// An id field: hex (either case) of whole bytes; absent or "" is empty.
fn hex(map: &Map<String, Json>, name: &str, at: Path<'_>) -> Result<Vec<u8>, IngestError> {
    let text = string(map, name, at)?;
    let digit = |byte: u8| char::from(byte).to_digit(16);
    let bytes = text.as_bytes();
    let decoded: Option<Vec<u8>> = (bytes.len() % 2 == 0)
        .then(|| {
            bytes
                .chunks(2)
                .map(|pair| u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok())
                .collect()
        })
        .flatten();
    decoded.ok_or_else(|| shape(&format!("{}.{name}", at()), "hex digits"))
}

/// Base64 as proto3's JSON mapping accepts it: standard or URL-safe, with
/// or without padding.
fn base64_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_value(value: Json) -> Result<ExportTraceServiceRequest, IngestError> {
        decode(value.to_string().as_bytes())
    }

    #[test]
    fn reads_the_specification_s_example_form() {
        let request = decode_value(json!({"resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "my.service"}}]},
            "scopeSpans": [{
                "scope": {"name": "my.library", "version": "1.0.0",
                          "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
                "spans": [{
                    "traceId": "5B8EFFF798038103D269B633813FC60C",
                    "spanId": "EEE19B7EC3C1B174",
                    "parentSpanId": "EEE19B7EC3C1B173",
                    "name": "I'm a server span",
                    "startTimeUnixNano": "1544712660000000000",
                    "endTimeUnixNano": 1544712661000000000u64,
                    "kind": 2,
                    "attributes": [
                        {"key": "my.span.attr", "value": {"stringValue": "some value"}},
                        {"key": "n", "value": {"intValue": "-7"}},
                        {"key": "d", "value": {"doubleValue": "Infinity"}},
                        {"key": "b", "value": {"boolValue": true}},
                        {"key": "raw", "value": {"bytesValue": "AP8="}},
                        {"key": "list", "value": {"arrayValue": {"values": [{"intValue": 1}]}}},
                        {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {}}]}}},
                        {"key": "empty"}
                    ],
                    "events": [{"timeUnixNano": "1544712660500000000", "name": "ev"}],
                    "links": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b172"}],
                    "status": {"code": 2, "message": "boom"},
                    "unknownField": {"is": "ignored"}
                }]
            }]
        }]}))
        .unwrap();
        let scope = &request.resource_spans[0].scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "my.library");
        let span = &scope.spans[0];
        assert_eq!(span.trace_id[..2], [0x5b, 0x8e]);
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.parent_span_id[7], 0x73);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, SpanKind::Server as i32);
        let values: Vec<Option<Value>> = span
            .attributes
            .iter()
            .map(|kv| kv.value.clone().and_then(|v| v.value))
            .collect();
        assert_eq!(values[1], Some(Value::IntValue(-7)));
        assert_eq!(values[2], Some(Value::DoubleValue(f64::INFINITY)));
        assert_eq!(values[3], Some(Value::BoolValue(true)));
        assert_eq!(values[4], Some(Value::BytesValue(vec![0, 255])));
        assert!(matches!(&values[5], Some(Value::ArrayValue(a)) if a.values.len() == 1));
        assert!(matches!(&values[6], Some(Value::KvlistValue(l)) if l.values[0].key == "k"));
        assert_eq!(values[7], None);
        assert_eq!(span.events[0].time_unix_nano, 1_544_712_660_500_000_000);
        assert_eq!(span.links[0].span_id[7], 0x72);
        assert_eq!(
            span.status,
            Some(Status {
                message: "boom".into(),
                code: 2
            })
        );
    }

    #[test]
    fn proto_names_enum_names_and_nulls_are_read_as_proto3_parsers_do() {
        let request = decode_value(json!({"resource_spans": [{"scope_spans": [{"spans": [{
            "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174",
            "kind": "SPAN_KIND_CLIENT", "parentSpanId": null, "status": {"code": "STATUS_CODE_OK"},
            "start_time_unix_nano": 5
        }]}]}]}))
        .unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Ok as i32);
        assert_eq!(span.start_time_unix_nano, 5);
        assert_eq!(decode(b"{}").unwrap(), ExportTraceServiceRequest::default());
    }

    #[test]
    fn wrong_types_fail_the_request_naming_the_field() {
        let span = |field: &str, value: Json| {
            let mut span = json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"});
            span[field] = value;
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
        };
        let at = "resourceSpans[0].scopeSpans[0].spans[0]";
        let cases = [
            (span("traceId", json!("xyz")), format!("{at}.traceId")),
            (span("traceId", json!("abc")), format!("{at}.traceId")),
            (
                span("startTimeUnixNano", json!("soon")),
                format!("{at}.startTimeUnixNano"),
            ),
            (
                span("startTimeUnixNano", json!(-1)),
                format!("{at}.startTimeUnixNano"),
            ),
            (span("kind", json!("SPAN_KIND_NOPE")), format!("{at}.kind")),
            (span("name", json!(3)), format!("{at}.name")),
            (span("attributes", json!({})), format!("{at}.attributes")),
            (
                span(
                    "attributes",
                    json!([{"key": "k", "value": {"boolValue": "yes"}}]),
                ),
                format!("{at}.attributes[0].value.boolValue"),
            ),
            (
                span(
                    "attributes",
                    json!([{"key": "k", "value": {"bytesValue": "%%"}}]),
                ),
                format!("{at}.attributes[0].value.bytesValue"),
            ),
            (json!({"resourceSpans": {}}), "resourceSpans".to_owned()),
            (json!([]), "(request)".to_owned()),
        ];
        for (body, path) in cases {
            match decode_value(body.clone()) {
                Err(IngestError::OtlpJson { field, .. }) => assert_eq!(field, path, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(decode(b"{"), Err(IngestError::Json(_))));
    }
}
