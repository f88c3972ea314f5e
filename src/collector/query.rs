//! Query parameters of the Zipkin v2 read API and the trace filter they define.
//!
//! Parses URL query strings (percent-decoding, `+` as space) into
//! [`QueryRequest`] for `GET /api/v2/traces` and [`TimeWindow`] for
//! `GET /api/v2/dependencies`, with the defaults and checks of Zipkin's
//! `QueryRequest.Builder` (limit 10, `endTs` now, `lookback` one day,
//! `maxDuration` only with `minDuration`, names lowercased). Matching a trace
//! follows Zipkin's `QueryRequest.test`: when `serviceName` is given, every
//! other condition is tested against that service's spans only, and each
//! condition may be met by a different span of the trace.

use std::collections::BTreeMap;

use super::model::Span;

/// `lookback` when none is given: Zipkin's default `QUERY_LOOKBACK` (one day).
pub const DEFAULT_LOOKBACK_MS: u64 = 86_400_000;
/// `limit` when none is given (Zipkin v2 API, `/traces` `limit` default).
pub const DEFAULT_LIMIT: usize = 10;

/// A bad query parameter; answered with 400 and this message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A numeric parameter that does not parse.
    #[error("{name} must be an integer, got {value:?}")]
    NotAnInteger { name: &'static str, value: String },
    /// Zero or negative where Zipkin requires a positive value.
    #[error("{name} must be greater than 0")]
    NotPositive { name: &'static str },
    /// A required parameter is absent.
    #[error("{name} is required")]
    Missing { name: &'static str },
    /// `maxDuration` without `minDuration` (Zipkin v2 API, `/traces`).
    #[error("maxDuration is only valid with minDuration")]
    MaxWithoutMin,
    /// `maxDuration` below `minDuration`.
    #[error("maxDuration must be >= minDuration")]
    MaxBelowMin,
}

/// Decoded `name=value` pairs of a URL query string, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Splits and percent-decodes a raw query string (`a=1&b=x%20y`).
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(name), percent_decode(value))
            })
            .collect();
        Self(pairs)
    }

    /// The last value of `name`, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// A lowercased name parameter (Zipkin lowercases service and span names).
    fn label(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_lowercase)
    }

    /// A strictly positive integer parameter.
    fn positive(&self, name: &'static str) -> Result<Option<u64>, QueryError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let value: i128 = text.parse().map_err(|_| QueryError::NotAnInteger {
            name,
            value: text.chars().take(40).collect(),
        })?;
        if value <= 0 {
            return Err(QueryError::NotPositive { name });
        }
        Ok(Some(u64::try_from(value).unwrap_or(u64::MAX)))
    }
}

/// Decodes `%XX` escapes and `+` (form encoding); bad escapes stay literal.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
            {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// The `endTs`/`lookback` window, in epoch milliseconds as the API takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// Latest trace timestamp included (`endTs`).
    pub end_ts_ms: u64,
    /// How far before `end_ts_ms` the window starts (`lookback`).
    pub lookback_ms: u64,
}

impl TimeWindow {
    /// Reads `endTs` (default `now_ms`, or required) and `lookback` (default one day).
    pub fn from_params(
        params: &Params,
        now_ms: u64,
        end_required: bool,
    ) -> Result<Self, QueryError> {
        let end_ts_ms = match params.positive("endTs")? {
            Some(end) => end,
            None if end_required => return Err(QueryError::Missing { name: "endTs" }),
            None => now_ms,
        };
        let lookback_ms = params.positive("lookback")?.unwrap_or(DEFAULT_LOOKBACK_MS);
        Ok(Self {
            end_ts_ms,
            lookback_ms,
        })
    }

    /// Whether a trace timestamp (epoch microseconds) falls in the window,
    /// both ends included (Zipkin `QueryRequest.test`).
    pub fn contains(self, timestamp_us: u64) -> bool {
        let start_us = self
            .end_ts_ms
            .saturating_sub(self.lookback_ms)
            .saturating_mul(1000);
        let end_us = self.end_ts_ms.saturating_mul(1000);
        (start_us..=end_us).contains(&timestamp_us)
    }
}

/// The filters of `GET /api/v2/traces`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryRequest {
    /// Local service the trace must have a span of; scopes the other filters.
    pub service_name: Option<String>,
    /// Remote service one of those spans must name.
    pub remote_service_name: Option<String>,
    /// Span name one of those spans must have.
    pub span_name: Option<String>,
    /// `annotationQuery` terms: key → required tag value, or `""` for "tag
    /// key or annotation value present".
    pub annotation_query: BTreeMap<String, String>,
    /// Microseconds; some span must last at least this long.
    pub min_duration: Option<u64>,
    /// Microseconds; that span must last at most this long.
    pub max_duration: Option<u64>,
    /// Window the trace's timestamp must lie in.
    pub window: TimeWindow,
    /// Most traces returned.
    pub limit: usize,
}

impl QueryRequest {
    /// Reads and checks the parameters; `now_ms` is the default `endTs`.
    pub fn from_params(params: &Params, now_ms: u64) -> Result<Self, QueryError> {
        let min_duration = params.positive("minDuration")?;
        let max_duration = params.positive("maxDuration")?;
        match (min_duration, max_duration) {
            (None, Some(_)) => return Err(QueryError::MaxWithoutMin),
            (Some(min), Some(max)) if max < min => return Err(QueryError::MaxBelowMin),
            _ => {}
        }
        let limit = params
            .positive("limit")?
            .map_or(DEFAULT_LIMIT, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok(Self {
            service_name: params.label("serviceName"),
            remote_service_name: params.label("remoteServiceName"),
            // Zipkin's UI sends "all" for "any span name".
            span_name: params.label("spanName").filter(|name| name != "all"),
            annotation_query: parse_annotation_query(params.get("annotationQuery")),
            min_duration,
            max_duration,
            window: TimeWindow::from_params(params, now_ms, false)?,
            limit,
        })
    }

    /// Whether a trace (already known to be in the window) matches every filter.
    pub fn matches(&self, spans: &[Span]) -> bool {
        let mut service_seen = self.service_name.is_none();
        let mut remote_seen = self.remote_service_name.is_none();
        let mut name_seen = self.span_name.is_none();
        let mut duration_seen = self.min_duration.is_none();
        let mut terms_seen = vec![false; self.annotation_query.len()];
        for span in spans {
            if let Some(service) = &self.service_name
                && span.local_service_name() != Some(service.as_str())
            {
                continue;
            }
            service_seen = true;
            remote_seen |= self.remote_service_name.as_deref() == span.remote_service_name();
            name_seen |= self.span_name.is_some() && self.span_name == span.name;
            duration_seen |= self.duration_matches(span);
            for (seen, (key, value)) in terms_seen.iter_mut().zip(&self.annotation_query) {
                *seen |= term_matches(span, key, value);
            }
        }
        service_seen && remote_seen && name_seen && duration_seen && terms_seen.iter().all(|&s| s)
    }

    fn duration_matches(&self, span: &Span) -> bool {
        let Some(min) = self.min_duration else {
            return true;
        };
        let duration = span.duration.unwrap_or(0);
        duration >= min && self.max_duration.is_none_or(|max| duration <= max)
    }
}

/// One `annotationQuery` term against one span: `key=value` needs that tag
/// value; a bare word needs an annotation with that value or a tag with that
/// key (Zipkin v2 API, `/traces` `annotationQuery`).
fn term_matches(span: &Span, key: &str, value: &str) -> bool {
    if value.is_empty() {
        span.tags.contains_key(key) || span.annotations.iter().any(|a| a.value == key)
    } else {
        span.tags.get(key).is_some_and(|tag| tag == value)
    }
}

/// Most terms Zipkin splits a query into; the last one keeps the rest.
const MAX_ANNOTATION_TERMS: usize = 100;

/// Splits `http.path=/foo and retried` into terms, as Zipkin's
/// `QueryRequest.Builder.parseAnnotationQuery` does: split on ` and ` (at
/// most 100 terms), the first `=` separates key and value, both trimmed. A
/// `key=value` term replaces an earlier one with that key; a bare word never
/// replaces a `key=value` term ("prevents overriding more specific tags").
/// Unlike Zipkin, an empty term (`error and `) is left out rather than kept
/// as an empty key that no span can match.
pub fn parse_annotation_query(query: Option<&str>) -> BTreeMap<String, String> {
    let mut terms = BTreeMap::new();
    for term in query.unwrap_or("").splitn(MAX_ANNOTATION_TERMS, " and ") {
        match term.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                terms.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            None if !term.trim().is_empty() => {
                terms.entry(term.trim().to_owned()).or_default();
            }
            _ => {}
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::decode::decode_span;
    use serde_json::json;

    fn request(query: &str) -> Result<QueryRequest, QueryError> {
        QueryRequest::from_params(&Params::parse(Some(query)), 5_000)
    }

    fn trace() -> Vec<Span> {
        [
            json!({"traceId": "000000000000000a", "id": "0000000000000001", "name": "get /api",
                   "duration": 300, "localEndpoint": {"serviceName": "gateway"},
                   "remoteEndpoint": {"serviceName": "browser"},
                   "tags": {"http.path": "/foo", "http.method": "GET",
                            "http.route": "/api/orders/{id}"}}),
            json!({"traceId": "000000000000000a", "id": "0000000000000002", "name": "select",
                   "duration": 40, "localEndpoint": {"serviceName": "db"},
                   "annotations": [{"timestamp": 1, "value": "retried"}],
                   "tags": {"error": "timeout"}}),
        ]
        .into_iter()
        .map(|value| decode_span(value).unwrap())
        .collect()
    }

    #[test]
    fn params_are_percent_decoded() {
        let params = Params::parse(Some("a=x%20y+z&b=%2Ffoo%3D1&c=%zz&d=&e&a=last"));
        assert_eq!(params.get("a"), Some("last"));
        assert_eq!(params.get("b"), Some("/foo=1"));
        assert_eq!(params.get("c"), Some("%zz"));
        assert_eq!(params.get("d"), None);
        assert_eq!(params.get("e"), None);
        assert_eq!(Params::parse(Some("x=%C3%A9")).get("x"), Some("é"));
        assert_eq!(Params::parse(None).get("x"), None);
    }

    #[test]
    fn defaults_follow_zipkin() {
        let request = request("").unwrap();
        assert_eq!(request.limit, DEFAULT_LIMIT);
        assert_eq!(
            request.window,
            TimeWindow {
                end_ts_ms: 5_000,
                lookback_ms: DEFAULT_LOOKBACK_MS
            }
        );
        assert_eq!(request.service_name, None);
        let request = self::request("serviceName=GateWay&spanName=all&limit=3").unwrap();
        assert_eq!(request.service_name.as_deref(), Some("gateway"));
        assert_eq!(request.span_name, None);
        assert_eq!(request.limit, 3);
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let cases = [
            ("limit=0", QueryError::NotPositive { name: "limit" }),
            ("limit=-2", QueryError::NotPositive { name: "limit" }),
            (
                "endTs=abc",
                QueryError::NotAnInteger {
                    name: "endTs",
                    value: "abc".into(),
                },
            ),
            ("lookback=0", QueryError::NotPositive { name: "lookback" }),
            (
                "minDuration=0",
                QueryError::NotPositive {
                    name: "minDuration",
                },
            ),
            ("maxDuration=5", QueryError::MaxWithoutMin),
            ("minDuration=10&maxDuration=5", QueryError::MaxBelowMin),
        ];
        for (query, expected) in cases {
            assert_eq!(request(query).unwrap_err(), expected, "{query}");
        }
        let window = TimeWindow::from_params(&Params::parse(Some("lookback=5")), 1, true);
        assert_eq!(window, Err(QueryError::Missing { name: "endTs" }));
    }

    #[test]
    fn annotation_query_syntax() {
        let terms = |query| {
            parse_annotation_query(Some(query))
                .into_iter()
                .collect::<Vec<_>>()
        };
        let owned = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "http.path=/foo and retried and a=b=c",
                &[("a", "b=c"), ("http.path", "/foo"), ("retried", "")],
            ),
            (
                " http.route = /api/orders/{id} ",
                &[("http.route", "/api/orders/{id}")],
            ),
            // `key=` is a bare key.
            ("error=", &[("error", "")]),
            // A bare word never replaces a tag term; a tag term replaces anything.
            ("error=timeout and error", &[("error", "timeout")]),
            ("error and error=timeout", &[("error", "timeout")]),
            ("a=1 and a=2", &[("a", "2")]),
            // Empty terms and keys are left out.
            ("error and ", &[("error", "")]),
            ("=x and  and retried", &[("retried", "")]),
            ("", &[]),
        ];
        for (query, expected) in cases {
            assert_eq!(terms(query), owned(expected), "{query:?}");
        }
        assert!(parse_annotation_query(None).is_empty());
        // The 100th term keeps the rest of the query, as Zipkin's split does.
        let long = (0..=100)
            .map(|n| format!("t{n}"))
            .collect::<Vec<_>>()
            .join(" and ");
        let parsed = parse_annotation_query(Some(&long));
        assert_eq!(parsed.len(), 100);
        assert!(parsed.contains_key("t98"));
        assert!(parsed.contains_key("t99 and t100"));
    }

    #[test]
    fn matching_follows_zipkin_query_request_test() {
        let spans = trace();
        let cases = [
            ("", true),
            ("serviceName=gateway", true),
            ("serviceName=nope", false),
            ("remoteServiceName=browser", true),
            ("remoteServiceName=nope", false),
            ("spanName=select", true),
            ("spanName=GET+%2Fapi", true),
            // Conditions only look at the named service's spans.
            ("serviceName=gateway&spanName=select", false),
            ("serviceName=db&spanName=select", true),
            ("annotationQuery=error", true),
            ("annotationQuery=retried", true),
            ("annotationQuery=http.path%3D%2Ffoo", true),
            ("annotationQuery=http.path%3D%2Fbar", false),
            ("annotationQuery=http.path%3D%2Ffoo+and+retried", true),
            (
                "annotationQuery=http.path%3D%2Ffoo+and+retried&serviceName=gateway",
                false,
            ),
            ("annotationQuery=missing", false),
            // A bare word matches a tag key or an annotation, never a tag value.
            ("annotationQuery=timeout", false),
            (
                "annotationQuery=http.route%3D%2Fapi%2Forders%2F%7Bid%7D",
                true,
            ),
            ("annotationQuery=http.route=/api/orders/{id}", true),
            ("annotationQuery=http.route%3D%2Fapi%2Forders%2F7", false),
            ("annotationQuery=http.route%3D", true),
            // "error=nope" stays when "error" follows: the tag value must match.
            ("annotationQuery=error%3Dnope+and+error", false),
            (
                "annotationQuery=error%3Dtimeout+and+retried+and+http.method%3DGET",
                true,
            ),
            ("minDuration=300", true),
            ("minDuration=301", false),
            ("minDuration=30&maxDuration=50", true),
            ("minDuration=41&maxDuration=299", false),
            ("serviceName=db&minDuration=100", false),
        ];
        for (query, expected) in cases {
            assert_eq!(request(query).unwrap().matches(&spans), expected, "{query}");
        }
    }

    #[test]
    fn window_bounds_are_inclusive_milliseconds() {
        let window = TimeWindow {
            end_ts_ms: 10,
            lookback_ms: 5,
        };
        assert!(window.contains(5_000));
        assert!(window.contains(10_000));
        assert!(!window.contains(4_999));
        assert!(!window.contains(10_001));
        let from_epoch = TimeWindow {
            end_ts_ms: 10,
            lookback_ms: 50,
        };
        assert!(from_epoch.contains(0));
    }
}
