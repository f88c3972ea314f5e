//! Shared by the propagation targets: the input is header lines
//! (`name: value`, one per line), and the properties every input must keep.

use http::{HeaderMap, HeaderName, HeaderValue};
use tracehop::config::{Format, PropagationConfig};
use tracehop::propagation::{extract, inject};
use tracehop::span::{Sampling, SpanContext, SpanId, TraceId};

/// Header lines -> a header map; lines that are not valid headers are skipped.
pub fn headers(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Extract never panics; what it extracted survives inject + extract, and
/// `baggage` passes through untouched.
pub fn check(data: &[u8], extract_formats: Vec<Format>, inject_formats: Vec<Format>) {
    let mut map = headers(data);
    let config = PropagationConfig {
        extract: extract_formats,
        inject: inject_formats,
    };
    let extracted = extract(&map, &config);
    let baggage: Vec<HeaderValue> = map.get_all("baggage").iter().cloned().collect();
    let context = extracted.parent.unwrap_or(SpanContext {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        sampling: Sampling::Deferred,
        random: true,
    });
    let child = SpanContext {
        span_id: SpanId::random(),
        ..context
    };
    inject(&mut map, &child, &extracted, &config);
    let after: Vec<HeaderValue> = map.get_all("baggage").iter().cloned().collect();
    assert_eq!(baggage, after, "baggage must pass through untouched");
    let again = extract(&map, &config);
    let parent = again.parent.expect("what inject writes is extractable");
    assert_eq!(parent.trace_id, child.trace_id);
    assert_eq!(parent.span_id, child.span_id);
}
