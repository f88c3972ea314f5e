//! The demo services' only concession to tracing: copying trace headers.
//!
//! A sidecar sees each request come in and each call go out, but it cannot
//! tell which outgoing call belongs to which incoming request: only the app
//! knows that. So every mesh that traces through sidecars asks the same of
//! apps: copy the trace headers of the incoming request onto every call made
//! while serving it. This module is that copy, and nothing more: the demo
//! services never parse, create or record trace context themselves.

use http::HeaderMap;
use http::header::HeaderName;

/// The headers an app must pass along, as listed by Istio's distributed
/// tracing FAQ ("Istio Distributed Tracing requires applications to forward
/// these headers"): W3C Trace Context (`traceparent`, `tracestate`), B3 in
/// its single and multi-header forms (B3 README), the Envoy request id, and
/// W3C Baggage.
pub const TRACE_HEADERS: [&str; 10] = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-request-id",
    "baggage",
];

/// Copies the trace headers of an incoming request (`from`) onto an
/// outgoing call (`to`).
///
/// This is exactly what Istio and Linkerd require of the apps in their mesh:
/// the sidecar starts a SERVER span for the incoming request and a CLIENT
/// span for each outgoing call, and these headers are the only thing that
/// ties the two together. Without this copy every call the app makes starts
/// a new trace, and each trace breaks in two at this service.
///
/// Every value of each header is copied in order (`tracestate` and
/// `baggage` may arrive split over several header lines, W3C Trace Context
/// §3.3.1.1). A header present in `from` replaces any value `to` already had;
/// headers not in [`TRACE_HEADERS`] (cookies, `authorization`, …) are never
/// copied.
pub fn copy_trace_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in TRACE_HEADERS {
        let name = HeaderName::from_static(name);
        let mut values = from.get_all(&name).iter();
        let Some(first) = values.next() else {
            continue;
        };
        to.insert(name.clone(), first.clone());
        for value in values {
            to.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn values<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        map.get_all(name)
            .iter()
            .map(|value| value.to_str().expect("test values are ASCII"))
            .collect()
    }

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn copies_each_trace_header_and_nothing_else() {
        // (header, value, copied?)
        let table: &[(&'static str, &'static str, bool)] = &[
            ("traceparent", TRACEPARENT, true),
            ("tracestate", "congo=t61rcWkgMzE", true),
            (
                "b3",
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
                true,
            ),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7", true),
            ("x-b3-spanid", "e457b5a2e4d86bd1", true),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90", true),
            ("x-b3-sampled", "1", true),
            ("x-b3-flags", "1", true),
            ("x-request-id", "5a1c3e0b-7d2f-4b8e-9c41-0e6f2d7a9b13", true),
            ("baggage", "userId=alice", true),
            ("authorization", "Bearer secret", false),
            ("cookie", "session=abc", false),
            ("host", "api-gateway", false),
            ("content-type", "application/json", false),
            ("x-forwarded-for", "10.0.0.1", false),
            ("uber-trace-id", "abc:def:0:1", false),
        ];
        let from = headers(
            &table
                .iter()
                .map(|(name, value, _)| (*name, *value))
                .collect::<Vec<_>>(),
        );
        let mut to = HeaderMap::new();
        copy_trace_headers(&from, &mut to);
        for (name, value, copied) in table {
            let expected: Vec<&str> = if *copied { vec![value] } else { vec![] };
            assert_eq!(values(&to, name), expected, "{name}");
        }
    }

    #[test]
    fn keeps_every_value_of_a_multi_valued_header_in_order() {
        let from = headers(&[
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "userId=alice"),
            ("baggage", "isProduction=false"),
        ]);
        let mut to = HeaderMap::new();
        copy_trace_headers(&from, &mut to);
        assert_eq!(
            values(&to, "tracestate"),
            ["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"]
        );
        assert_eq!(
            values(&to, "baggage"),
            ["userId=alice", "isProduction=false"]
        );
    }

    #[test]
    fn replaces_values_already_present_and_keeps_unrelated_headers() {
        let from = headers(&[("traceparent", TRACEPARENT)]);
        let mut to = headers(&[
            (
                "traceparent",
                "00-11111111111111111111111111111111-2222222222222222-00",
            ),
            ("accept", "application/json"),
            ("b3", "0"),
        ]);
        copy_trace_headers(&from, &mut to);
        assert_eq!(values(&to, "traceparent"), [TRACEPARENT]);
        assert_eq!(values(&to, "accept"), ["application/json"]);
        // Absent from the incoming request: what the caller set stays.
        assert_eq!(values(&to, "b3"), ["0"]);
    }

    #[test]
    fn header_names_are_valid_lowercase_names() {
        for name in TRACE_HEADERS {
            assert_eq!(HeaderName::from_static(name).as_str(), name);
        }
    }
}
