//! Precedence, inject and cross-format property tests for [`super`].
//! Format-specific spec vectors live next to each format.

use super::*;
use crate::span::{SpanId, TraceId};
use proptest::prelude::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const B3_SINGLE: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";

fn config(extract: &[Format], inject: &[Format]) -> PropagationConfig {
    PropagationConfig {
        extract: extract.to_vec(),
        inject: inject.to_vec(),
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn ctx(trace: u128, span: u64, sampling: Sampling, random: bool) -> SpanContext {
    SpanContext {
        trace_id: TraceId::new(trace).unwrap(),
        span_id: SpanId::new(span).unwrap(),
        sampling,
        random,
    }
}

fn w3c_parent() -> SpanContext {
    ctx(
        0x4bf92f3577b34da6a3ce929d0e0e4736,
        0x00f067aa0ba902b7,
        Sampling::Sampled,
        false,
    )
}

fn b3_parent() -> SpanContext {
    ctx(
        0x80f198ee56343ba864fe8b2a57d3eff7,
        0xe457b5a2e4d86bd1,
        Sampling::Sampled,
        false,
    )
}

#[test]
fn precedence_follows_extract_order() {
    use Format::{B3, B3Single, W3c};
    let multi = [
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
    ];
    let bad_tp = (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    );
    let tp = ("traceparent", TRACEPARENT);
    let both = [tp, ("b3", B3_SINGLE)];
    let multi_and_tp = [&multi[..], &[tp]].concat();
    let multi_and_bad_single = [&multi[..], &[("b3", "nonsense")]].concat();
    let (w3c, b3) = (Some(w3c_parent()), Some(b3_parent()));
    type Case<'a> = (
        &'a [Format],
        &'a [(&'a str, &'a str)],
        Option<SpanContext>,
        Seen,
    );
    let cases: &[Case] = &[
        (&[W3c, B3], &[tp], w3c, Seen::W3c),
        (&[W3c, B3], &both, w3c, Seen::W3c),
        (&[B3, W3c], &both, b3, Seen::B3Single),
        (&[B3, W3c], &multi_and_tp, b3, Seen::B3Multi),
        (&[B3Single, W3c], &multi_and_tp, w3c, Seen::W3c),
        (&[W3c, B3], &[bad_tp, ("b3", B3_SINGLE)], b3, Seen::B3Single),
        (&[W3c, B3], &[bad_tp], None, Seen::Invalid),
        (&[W3c, B3], &[("b3", "nonsense")], None, Seen::Invalid),
        (
            &[W3c, B3],
            &[bad_tp, ("x-b3-sampled", "maybe")],
            None,
            Seen::Invalid,
        ),
        // An invalid single header falls back to valid multi headers.
        (&[B3], &multi_and_bad_single, b3, Seen::B3Multi),
        // Formats not configured are ignored entirely.
        (&[W3c], &[("b3", B3_SINGLE)], None, Seen::None),
        (&[W3c], &multi, None, Seen::None),
        (&[B3Single], &multi, None, Seen::None),
        (&[B3], &[bad_tp], None, Seen::None),
        (&[], &both, None, Seen::None),
        (
            &[W3c, B3],
            &[("tracestate", "a=1"), ("baggage", "k=v")],
            None,
            Seen::None,
        ),
        (&[W3c, B3], &[], None, Seen::None),
    ];
    for &(extract_order, pairs, parent, seen) in cases {
        let got = extract(&headers(pairs), &config(extract_order, &[]));
        assert_eq!(
            (got.parent, got.seen),
            (parent, seen),
            "{extract_order:?} {pairs:?}"
        );
        assert_eq!(got.sampling_only, Sampling::Deferred);
        assert_eq!(got.trace_state, None);
    }
}

#[test]
fn sampling_state_without_ids() {
    type Case<'a> = (&'a [(&'a str, &'a str)], Sampling, Seen);
    let cases: &[Case] = &[
        (&[("b3", "0")], Sampling::NotSampled, Seen::B3Single),
        (&[("b3", "d")], Sampling::Debug, Seen::B3Single),
        (&[("x-b3-sampled", "1")], Sampling::Sampled, Seen::B3Multi),
        (&[("x-b3-flags", "1")], Sampling::Debug, Seen::B3Multi),
        // Single takes precedence over multi (B3 README).
        (
            &[("b3", "0"), ("x-b3-sampled", "1")],
            Sampling::NotSampled,
            Seen::B3Single,
        ),
    ];
    let default = config(&[Format::W3c, Format::B3], &[]);
    for &(pairs, sampling, seen) in cases {
        let got = extract(&headers(pairs), &default);
        assert_eq!(got.parent, None, "{pairs:?}");
        assert_eq!((got.sampling_only, got.seen), (sampling, seen), "{pairs:?}");
    }
}

#[test]
fn tracestate_is_kept_only_with_a_winning_traceparent() {
    let default = config(&[Format::W3c, Format::B3], &[]);
    let state = ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    let got = extract(&headers(&[("traceparent", TRACEPARENT), state]), &default);
    assert_eq!(got.parent, Some(w3c_parent()));
    let kept = got.trace_state.as_ref().map(TraceState::as_str);
    assert_eq!(kept, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));

    // An invalid list is dropped; the traceparent stands.
    let bad_state = ("tracestate", "rojo=1,Rojo=2");
    let got = extract(
        &headers(&[("traceparent", TRACEPARENT), bad_state]),
        &default,
    );
    assert_eq!((got.parent, got.trace_state), (Some(w3c_parent()), None));

    // A repeated key is not a reason to drop the list: the later entry goes.
    let repeated = [("tracestate", "rojo=1,congo=2"), ("tracestate", "rojo=3")];
    let got = extract(
        &headers(&[&[("traceparent", TRACEPARENT)], &repeated[..]].concat()),
        &default,
    );
    let kept = got.trace_state.as_ref().map(TraceState::as_str);
    assert_eq!(kept, Some("rojo=1,congo=2"));

    // An invalid traceparent means tracestate is never read.
    let bad_tp = (
        "traceparent",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let got = extract(&headers(&[bad_tp, state]), &default);
    assert_eq!((got.seen, got.trace_state), (Seen::Invalid, None));

    // B3 won: its context has no tracestate.
    let b3_first = config(&[Format::B3, Format::W3c], &[]);
    let pairs = [("traceparent", TRACEPARENT), state, ("b3", B3_SINGLE)];
    let got = extract(&headers(&pairs), &b3_first);
    assert_eq!((got.seen, got.trace_state), (Seen::B3Single, None));
}

#[test]
fn labels() {
    let labels = [
        (Seen::W3c, "w3c"),
        (Seen::B3Single, "b3"),
        (Seen::B3Multi, "b3"),
        (Seen::None, "none"),
        (Seen::Invalid, "invalid"),
    ];
    for (seen, label) in labels {
        assert_eq!(seen.label(), label);
    }
}

#[test]
fn the_presence_scan_knows_every_context_header() {
    assert_eq!(present(&headers(&[("x-app", "1"), ("baggage", "k=v")])), 0);
    for (i, name) in CONTEXT_HEADERS.iter().enumerate() {
        let map = headers(&[("x-app", "1"), (name.as_str(), "x")]);
        assert_eq!(present(&map), 1 << i, "{name}");
    }
    // Every one of them is removed before writing, whatever else is there.
    let all: Vec<(&str, &str)> = CONTEXT_HEADERS.iter().map(|n| (n.as_str(), "x")).collect();
    let mut map = headers(&all);
    inject(
        &mut map,
        &w3c_parent(),
        &came_in(Seen::W3c),
        &config(&[], &[]),
    );
    assert_eq!(names(&map), vec!["traceparent"]);
}

/// What came in: a format and nothing else (no parent, no tracestate).
fn came_in(seen: Seen) -> Extracted {
    Extracted {
        parent: None,
        sampling_only: Sampling::Deferred,
        trace_state: None,
        seen,
    }
}

fn names(headers: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    names
}

#[test]
fn inject_writes_configured_formats_or_the_one_that_came_in() {
    use Format::{B3, B3Single, W3c};
    let all_b3 = ["b3", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"];
    let cases: &[(&[Format], Seen, &[&str])] = &[
        (&[], Seen::W3c, &["traceparent", "tracestate"]),
        (&[], Seen::None, &["traceparent", "tracestate"]),
        (&[], Seen::Invalid, &["traceparent", "tracestate"]),
        (&[], Seen::B3Single, &["b3"]),
        (
            &[],
            Seen::B3Multi,
            &["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"],
        ),
        (&[B3Single, B3], Seen::W3c, &all_b3),
        (
            &[W3c, B3Single],
            Seen::B3Multi,
            &["b3", "traceparent", "tracestate"],
        ),
    ];
    let state = extract(
        &headers(&[("traceparent", TRACEPARENT), ("tracestate", "a=1")]),
        &config(&[W3c], &[]),
    )
    .trace_state;
    let own = ctx(
        0x4bf92f3577b34da6a3ce929d0e0e4736,
        0xb7ad6b7169203331,
        Sampling::Sampled,
        true,
    );
    for &(inject_formats, seen, expected) in cases {
        let mut map = headers(&[
            ("traceparent", TRACEPARENT),
            ("tracestate", "old=1"),
            ("b3", B3_SINGLE),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]);
        let incoming = Extracted {
            trace_state: state.clone(),
            ..came_in(seen)
        };
        inject(&mut map, &own, &incoming, &config(&[], inject_formats));
        assert_eq!(names(&map), expected, "{inject_formats:?} {seen:?}");
        // Every written format carries the same ids.
        let read_back = extract(&map, &config(&[W3c, B3], &[]));
        assert_eq!(
            read_back.parent.map(|p| (p.trace_id, p.span_id)),
            Some((own.trace_id, own.span_id))
        );
        if let Some(value) = map.get("tracestate") {
            assert_eq!(value, "a=1");
        }
    }
}

#[test]
fn multi_b3_names_the_downstream_span_as_parent() {
    use Format::{B3, B3Single, W3c};
    let multi = [
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
    ];
    let downstream = extract(&headers(&multi), &config(&[B3], &[]));
    assert_eq!(downstream.parent, Some(b3_parent()));
    let own = SpanContext {
        span_id: SpanId::new(0xb7ad6b7169203331).unwrap(),
        ..b3_parent()
    };
    // The format that came in goes out: the sidecar's span, and the
    // downstream's span as its parent (not the downstream's own parent).
    let mut map = headers(&multi);
    inject(&mut map, &own, &downstream, &config(&[], &[]));
    assert_eq!(map["x-b3-spanid"], "b7ad6b7169203331");
    assert_eq!(map["x-b3-parentspanid"], "e457b5a2e4d86bd1");
    assert_eq!(map.get_all("x-b3-parentspanid").iter().count(), 1);
    // W3C and single B3 have no parent field to fill.
    inject(&mut map, &own, &downstream, &config(&[], &[W3c, B3Single]));
    assert_eq!(names(&map), ["b3", "traceparent"]);
    assert_eq!(
        map["b3"],
        "80f198ee56343ba864fe8b2a57d3eff7-b7ad6b7169203331-1"
    );
    // A root span has no parent: none is sent, and a stale one is removed.
    let mut map = headers(&multi);
    inject(&mut map, &own, &came_in(Seen::None), &config(&[], &[B3]));
    assert_eq!(map.get("x-b3-parentspanid"), None);
    assert_eq!(map["x-b3-spanid"], "b7ad6b7169203331");
}

#[test]
fn inject_leaves_other_headers_alone() {
    let mut map = headers(&[
        ("baggage", "userId=alice"),
        ("x-b3-flags", "1"),
        ("tracestate", "a=1"),
        ("x-request-id", "42"),
    ]);
    let own = ctx(1, 2, Sampling::NotSampled, false);
    let default = config(&[Format::W3c, Format::B3], &[]);
    inject(&mut map, &own, &came_in(Seen::None), &default);
    assert_eq!(names(&map), ["baggage", "traceparent", "x-request-id"]);
    assert_eq!(map["baggage"], "userId=alice");
    assert_eq!(
        map["traceparent"],
        "00-00000000000000000000000000000001-0000000000000002-00"
    );
}

fn any_context() -> impl Strategy<Value = SpanContext> {
    let trace = prop_oneof![
        (1..=u128::from(u64::MAX)),
        (1u128 << 64..=u128::MAX),
        any::<u128>().prop_filter("nonzero", |t| *t != 0),
    ];
    let sampling = prop_oneof![
        Just(Sampling::Deferred),
        Just(Sampling::Sampled),
        Just(Sampling::NotSampled),
        Just(Sampling::Debug),
    ];
    (trace, 1..=u64::MAX, sampling, any::<bool>())
        .prop_map(|(trace, span, sampling, random)| ctx(trace, span, sampling, random))
}

fn any_format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::W3c), Just(Format::B3), Just(Format::B3Single)]
}

/// What a format can carry of `context` across one hop.
fn carried(context: SpanContext, format: Format) -> SpanContext {
    match format {
        // W3C has only the sampled bit, and keeps the random flag.
        Format::W3c => SpanContext {
            sampling: if context.sampling.is_sampled() {
                Sampling::Sampled
            } else {
                Sampling::NotSampled
            },
            ..context
        },
        // B3 has every sampling state, but no random flag.
        Format::B3 | Format::B3Single => SpanContext {
            random: false,
            ..context
        },
    }
}

/// Header values: arbitrary bytes, or a valid value with one byte changed,
/// so the deep branches of every parser are reached.
fn any_value() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(TRACEPARENT.as_bytes().to_vec()),
        Just(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x".to_vec()),
        Just(B3_SINGLE.as_bytes().to_vec()),
        Just(b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90".to_vec()),
        Just(b"e457b5a2e4d86bd1".to_vec()),
        Just(b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,t@dt= x".to_vec()),
        Just(b"1".to_vec()),
        Just(b"d".to_vec()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        (valid, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut v, at, byte)| {
            let at = at.index(v.len());
            v[at] = byte;
            v
        }),
    ]
}

fn any_headers() -> impl Strategy<Value = HeaderMap> {
    const NAMES: [&str; 9] = [
        "traceparent",
        "tracestate",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
        "baggage",
    ];
    proptest::collection::vec((prop::sample::select(&NAMES[..]), any_value()), 0..12).prop_map(
        |pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                // Bytes a header value cannot hold never reach the sidecar.
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.append(name, value);
                }
            }
            map
        },
    )
}

proptest! {
    #[test]
    fn extract_never_panics_and_keeps_its_invariants(
        headers in any_headers(),
        order in proptest::collection::vec(any_format(), 0..4),
    ) {
        let got = extract(&headers, &config(&order, &[]));
        if got.trace_state.is_some() {
            prop_assert_eq!(got.seen, Seen::W3c);
            prop_assert!(got.trace_state.as_ref().unwrap().as_str().len() <= 512);
        }
        if got.parent.is_some() {
            prop_assert_eq!(got.sampling_only, Sampling::Deferred);
            prop_assert!(!matches!(got.seen, Seen::None | Seen::Invalid));
        }
        if matches!(got.seen, Seen::None | Seen::Invalid) {
            prop_assert_eq!(got.parent, None);
            prop_assert_eq!(got.sampling_only, Sampling::Deferred);
        }
    }

    #[test]
    fn inject_then_extract_round_trips(context in any_context(), format in any_format()) {
        let mut map = HeaderMap::new();
        inject(&mut map, &context, &came_in(Seen::None), &config(&[], &[format]));
        let got = extract(&map, &config(&[format], &[]));
        prop_assert_eq!(got.parent, Some(carried(context, format)));
        let expected_seen = match format {
            Format::W3c => Seen::W3c,
            Format::B3 => Seen::B3Multi,
            Format::B3Single => Seen::B3Single,
        };
        prop_assert_eq!(got.seen, expected_seen);
    }

    #[test]
    fn the_format_that_came_in_goes_out(context in any_context(), format in any_format()) {
        let mut map = HeaderMap::new();
        inject(&mut map, &context, &came_in(Seen::None), &config(&[], &[format]));
        let both = config(&[Format::W3c, Format::B3], &[]);
        let incoming = extract(&map, &both);
        let mut forwarded = HeaderMap::new();
        inject(&mut forwarded, &context, &incoming, &both);
        prop_assert_eq!(extract(&forwarded, &both), incoming);
    }

    #[test]
    fn valid_tracestate_survives_a_hop_whole(
        members in proptest::collection::vec((
            // Few distinct short keys, so repeated keys are common.
            prop_oneof![r"[a-c][0-1@]{0,1}", r"[a-z0-9][a-z0-9_*/@-]{0,20}"],
            r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,40}[\x21-\x2b\x2d-\x3c\x3e-\x7e]",
        ), 0..40),
    ) {
        let list: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // The first entry of each key, in order (Level 2, "Combined Header Value").
        let mut first: Vec<&String> = Vec::new();
        for member in &list {
            let key = |m: &str| m.split('=').next().map(str::to_owned);
            if !first.iter().any(|f| key(f) == key(member)) {
                first.push(member);
            }
        }
        let valid = list.len() <= 32;
        let joined = list.join(" ,");
        let map = headers(&[("traceparent", TRACEPARENT), ("tracestate", &joined)]);
        let w3c = config(&[Format::W3c], &[]);
        let state = extract(&map, &w3c).trace_state;
        prop_assert_eq!(state.is_some(), valid && !list.is_empty());
        if let Some(state) = &state {
            // Whole first entries, in order, at most 512 characters.
            let out: Vec<&str> = state.as_str().split(',').collect();
            prop_assert!(state.as_str().len() <= 512);
            let mut rest = first.iter();
            for member in &out {
                prop_assert!(rest.any(|m| m.as_str() == *member), "{} not in order", member);
            }
            if first.iter().map(|m| m.len() + 1).sum::<usize>() <= 513 {
                prop_assert_eq!(out.len(), first.len());
            }
            let mut forwarded = HeaderMap::new();
            let incoming = Extracted {
                trace_state: Some(state.clone()),
                ..came_in(Seen::W3c)
            };
            inject(&mut forwarded, &w3c_parent(), &incoming, &w3c);
            prop_assert_eq!(extract(&forwarded, &w3c).trace_state, Some(state.clone()));
        }
    }
}
