//! W3C Trace Context `tracestate` (Level 2, "Tracestate Header"):
//! validating the combined list and shortening it for the next hop.
//!
//! Owns [`TraceState`]. The sidecar adds no entry of its own, so the list is
//! only validated, normalised (no empty members, no optional whitespace, no
//! repeated keys) and shortened. Sections are cited by their titles in Trace
//! Context Level 2 (<https://www.w3.org/TR/trace-context-2/>), whose numbers
//! move between drafts.
//!
//! - Keys follow the Level 2 grammar, `key = ( lcalpha / DIGIT ) 0*255
//!   ( keychar )` with `@` among the key characters ("Key"): one identifier
//!   of at most 256 characters, `@` allowed anywhere after the first. The
//!   Level 1 `tenant@system` split and its 241/14 limits are gone.
//! - A key that appears again is dropped with its value, and the first
//!   entry stands. Only one entry per key is allowed ("Combined Header
//!   Value"), and deleting an entry is an allowed mutation ("Mutating the
//!   tracestate Field"). Forwarding the list as received would pass a list
//!   that breaks that rule, which a strict next hop throws away whole; and
//!   the first entry is the one to keep, because a vendor moves its updated
//!   entry to the left.
//! - Any other grammar error (key or value characters, lengths) or more than
//!   32 members received drops the whole list.
//!
//! Work is bounded on hostile input: one pass over the bytes, stopping at
//! the first grammar error or at the 33rd member, with member positions kept
//! in a fixed-size array; the only allocation is the kept value itself.

use super::trim_ows;
use super::w3c::TRACESTATE;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

/// Most members a list may have ("list": `list-member 0*31( … )`).
const MAX_MEMBERS: usize = 32;
/// Longest value written ("tracestate Limits": propagate at least 512
/// characters).
const MAX_LEN: usize = 512;
/// Entries longer than this are the first to go when shortening
/// ("tracestate Limits").
const LONG_ENTRY: usize = 128;
/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )` ("Key"), so `=` must
/// appear within this many bytes of a member's start.
const MAX_KEY_LEN: usize = 256;
/// `value = 0*255(chr) nblk-chr` ("Value").
const MAX_VALUE_LEN: usize = 256;

/// A validated (and if needed shortened) tracestate value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceState(HeaderValue);

impl TraceState {
    /// The list as it will be written: members joined by `,`, at most 512 characters.
    pub fn as_str(&self) -> &str {
        self.0
            .to_str()
            .expect("a validated tracestate holds printable ASCII only (Level 2, \"Value\")")
    }

    /// The ready-made header value (cloning shares the bytes).
    pub(super) fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// Why a `tracestate` list was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum TraceStateError {
    #[error("more than {MAX_MEMBERS} list members (Level 2, \"list\")")]
    TooManyMembers,
    #[error("list member {index} has no valid key before `=` (Level 2, \"Key\")")]
    Key { index: usize },
    #[error("list member {index} has an invalid value (Level 2, \"Value\")")]
    Value { index: usize },
}

/// One non-empty list member, borrowed from the request headers.
#[derive(Clone, Copy, Default)]
struct Member<'a> {
    /// `key=value`, optional whitespace removed.
    text: &'a [u8],
    key_len: usize,
}

impl<'a> Member<'a> {
    fn key(&self) -> &'a [u8] {
        &self.text[..self.key_len]
    }
}

/// Validates every `tracestate` field, combined in order ("Tracestate
/// Header"), and drops later entries of a repeated key: `Ok(None)` when
/// absent or holding only empty members.
pub(super) fn extract(headers: &HeaderMap) -> Result<Option<TraceState>, TraceStateError> {
    let mut kept = [Member::default(); MAX_MEMBERS];
    let mut kept_count = 0;
    let mut received = 0;
    let fields = headers.get_all(&TRACESTATE).iter();
    // Field boundaries separate members just as commas do (RFC 7230 §3.2.2).
    for raw in fields.flat_map(|field| field.as_bytes().split(|&b| b == b',')) {
        let text = trim_ows(raw);
        if text.is_empty() {
            // Empty and whitespace-only members are allowed ("Tracestate
            // Header"); they are not written.
            continue;
        }
        if received == MAX_MEMBERS {
            return Err(TraceStateError::TooManyMembers);
        }
        let member = parse_member(text, received)?;
        received += 1;
        if !kept[..kept_count].iter().any(|m| m.key() == member.key()) {
            kept[kept_count] = member;
            kept_count += 1;
        }
    }
    Ok(join(&kept[..kept_count]))
}

fn parse_member(text: &[u8], index: usize) -> Result<Member<'_>, TraceStateError> {
    let key_len = text
        .iter()
        .take(MAX_KEY_LEN + 1)
        .position(|&b| b == b'=')
        .ok_or(TraceStateError::Key { index })?;
    if !is_valid_key(&text[..key_len]) {
        return Err(TraceStateError::Key { index });
    }
    if !is_valid_value(&text[key_len + 1..]) {
        return Err(TraceStateError::Value { index });
    }
    Ok(Member { text, key_len })
}

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`, `keychar = lcalpha /
/// DIGIT / "_" / "-" / "*" / "/" / "@"` (Level 2, "Key").
fn is_valid_key(key: &[u8]) -> bool {
    let Some((&first, rest)) = key.split_first() else {
        return false;
    };
    let is_keychar = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/@".contains(b);
    key.len() <= MAX_KEY_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest.iter().all(is_keychar)
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII except `,` and `=`, not
/// ending in a space (Level 2, "Value").
fn is_valid_value(value: &[u8]) -> bool {
    let is_chr = |b: &u8| matches!(b, 0x20..=0x7e) && *b != b',' && *b != b'=';
    value.len() <= MAX_VALUE_LEN
        && value.last().is_some_and(|&b| b != b' ')
        && value.iter().all(is_chr)
}

/// Joins the members that survive shortening, or `None` when none does.
fn join(members: &[Member<'_>]) -> Option<TraceState> {
    let keep = shorten(members);
    let kept = || members.iter().zip(keep).filter_map(|(m, k)| k.then_some(m));
    let len = kept()
        .map(|m| m.text.len() + 1)
        .sum::<usize>()
        .checked_sub(1)?;
    let mut out = Vec::with_capacity(len);
    for member in kept() {
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(member.text);
    }
    // Validation above admits only bytes that a header value accepts, so
    // this conversion does not fail; if it did, dropping the list is right.
    HeaderValue::from_maybe_shared(Bytes::from(out))
        .ok()
        .map(TraceState)
}

/// Which members to keep so the joined list is at most 512 characters
/// ("tracestate Limits"): entries longer than 128 characters go first, then entries
/// from the end; an entry is never cut.
fn shorten(members: &[Member<'_>]) -> [bool; MAX_MEMBERS] {
    let mut keep = [false; MAX_MEMBERS];
    keep[..members.len()].fill(true);
    // Each kept member costs its length plus one separator; the joined list
    // has one separator fewer than members.
    let mut cost: usize = members.iter().map(|m| m.text.len() + 1).sum();
    let long_first = members
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, m)| m.text.len() > LONG_ENTRY);
    let from_end = members.iter().enumerate().rev();
    for (index, member) in long_first.chain(from_end) {
        if cost <= MAX_LEN + 1 {
            break;
        }
        if keep[index] {
            keep[index] = false;
            cost -= member.text.len() + 1;
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for field in fields {
            headers.append(&TRACESTATE, HeaderValue::from_str(field).unwrap());
        }
        headers
    }

    fn read(fields: &[&str]) -> Result<Option<String>, TraceStateError> {
        extract(&headers(fields)).map(|state| state.map(|s| s.as_str().to_owned()))
    }

    #[test]
    fn accepts_spec_examples_and_normalises_whitespace() {
        let cases: &[(&[&str], Option<&str>)] = &[
            // "Examples of tracestate HTTP Headers".
            (&["rojo=00f067aa0ba902b7"], Some("rojo=00f067aa0ba902b7")),
            (
                &["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
                Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ),
            // Multiple fields combine in order (RFC 7230 §3.2.2).
            (
                &["congo=ucfJifl5GOE", "rojo=00f067aa0ba902b7"],
                Some("congo=ucfJifl5GOE,rojo=00f067aa0ba902b7"),
            ),
            // Empty members and OWS are allowed; they are not written.
            (&[" , a=1 ,\t,b=2\t, "], Some("a=1,b=2")),
            (&["", "a=1", " "], Some("a=1")),
            (&["", " ,, "], None),
            (&[], None),
            // Values: leading spaces kept, any printable ASCII but `,` `=`.
            (&["k=  x !~\"<>"], Some("k=  x !~\"<>")),
        ];
        for &(fields, expected) in cases {
            assert_eq!(read(fields), Ok(expected.map(str::to_owned)), "{fields:?}");
        }
    }

    /// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`, `keychar = lcalpha /
    /// DIGIT / "_" / "-" / "*" / "/" / "@"`: every production, and the
    /// characters just outside each range.
    #[test]
    fn keys_follow_the_level_2_grammar() {
        let keychars = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@";
        let valid: Vec<String> = [
            "a",
            "z",
            "0",
            "9",
            "1abc",
            "foo@",
            "foo@bar",
            "foo@bar@baz",
            "foo@@bar",
            "t@1dt",
            "a@",
            "0@",
            "a_-*/@",
            "fw529a3039@dt",
            "congo",
            keychars,
            &format!("0{keychars}"),
        ]
        .map(str::to_owned)
        .into();
        for key in &valid {
            let member = format!("{key}=1");
            assert_eq!(read(&[&member]), Ok(Some(member.clone())), "{key:?}");
        }
        // Characters outside `( lcalpha / DIGIT )` first and `keychar` after.
        let invalid_first = ["@", "_", "-", "*", "/", "A", "Z", ".", "~"];
        let invalid_rest = ["A", "Z", ".", " ", "\t", "+", "!", "#", ":", "\"", "~", "`"];
        let first = invalid_first.map(|c| format!("{c}abc=1"));
        let rest = invalid_rest.map(|c| format!("a{c}b=1"));
        for member in first.iter().chain(&rest) {
            assert_eq!(
                read(&[member]),
                Err(TraceStateError::Key { index: 0 }),
                "{member:?}"
            );
        }
        // No key at all.
        for member in ["=1", "a", "a,b=1"] {
            assert!(
                matches!(read(&[member]), Err(TraceStateError::Key { .. })),
                "{member:?}"
            );
        }
    }

    #[test]
    fn keys_are_at_most_256_characters_with_at_anywhere_after_the_first() {
        // Keys of 256 characters with `@` at every position but the first,
        // and keys of 257 (one `keychar` too many) with `@` at the same spots.
        for at in 1..256 {
            let mut key = "k".repeat(256);
            key.replace_range(at..=at, "@");
            let member = format!("{key}=1");
            assert_eq!(read(&[&member]), Ok(Some(member.clone())), "@ at {at}");
            let longer = format!("{key}x=1");
            assert_eq!(
                read(&[&longer]),
                Err(TraceStateError::Key { index: 0 }),
                "@ at {at}"
            );
        }
        // Digit first, 256 and 257 characters.
        let member = format!("7{}=v", "@".repeat(255));
        assert_eq!(read(&[&member]), Ok(Some(member.clone())));
        let member = format!("7{}=v", "@".repeat(256));
        assert_eq!(read(&[&member]), Err(TraceStateError::Key { index: 0 }));
    }

    #[test]
    fn values_follow_the_grammar() {
        use TraceStateError::*;
        let long = |n| "a".repeat(n);
        let cases: Vec<(String, Result<Option<String>, TraceStateError>)> = vec![
            ("a=".into(), Err(Value { index: 0 })),
            ("a=1=2".into(), Err(Value { index: 0 })),
            ("a=x\ty".into(), Err(Value { index: 0 })),
            ("a=1,b=".into(), Err(Value { index: 1 })),
            (
                format!("a={}", long(256)),
                Ok(Some(format!("a={}", long(256)))),
            ),
            (format!("a={}", long(257)), Err(Value { index: 0 })),
            // A trailing space is optional whitespace, not part of the value.
            ("a=x ".into(), Ok(Some("a=x".into()))),
        ];
        for (field, expected) in cases {
            assert_eq!(read(&[&field]), expected, "{field:?}");
        }
        let obs_text = HeaderValue::from_bytes(b"a=caf\xc3\xa9").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(&TRACESTATE, obs_text);
        assert_eq!(extract(&headers), Err(Value { index: 0 }));
    }

    #[test]
    fn a_repeated_key_keeps_its_first_entry_and_the_rest_of_the_list() {
        let cases: &[(&[&str], &str)] = &[
            (&["foo=1,foo=1"], "foo=1"),
            (&["foo=1,foo=2"], "foo=1"),
            (&["foo=1", "foo=2"], "foo=1"),
            (&["a=1,b=2,a=3"], "a=1,b=2"),
            (&["a=1,b=2,a=3,c=4,b=5,a=6"], "a=1,b=2,c=4"),
            (&["x@y=1", "z=2,x@y=3"], "x@y=1,z=2"),
            // Keys differ when any byte differs; values do not matter.
            (&["foo=1,foo@=2,fo=3"], "foo=1,foo@=2,fo=3"),
        ];
        for &(fields, expected) in cases {
            assert_eq!(read(fields), Ok(Some(expected.to_owned())), "{fields:?}");
        }
        // A grammar error anywhere still drops the whole list.
        assert_eq!(
            read(&["a=1,a=2,B=3"]),
            Err(TraceStateError::Key { index: 2 })
        );
    }

    /// Vectors from the W3C trace-context test suite (`test/test.py`,
    /// `test_tracestate_*`): the list kept, or `None` when it is discarded.
    /// The suite was written for Level 1; where Level 2 changed the answer
    /// (keys with `@`, repeated keys), the Level 2 answer is given.
    #[test]
    fn w3c_test_suite_tracestate_vectors() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let value: String = (0x20u8..=0x7e)
            .filter(|b| !matches!(b, b',' | b'='))
            .map(char::from)
            .collect();
        let all_chars = format!("{key}={value}");
        let all_chars_tenant = format!("{key}@a-z0-9_-*/={value}");
        let long_key = format!("{}=1", "z".repeat(256));
        let long_tenant = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
        let too_long_key = format!("{}=1", "z".repeat(257));
        // Level 1 limited the parts around `@` to 241 and 14 characters;
        // Level 2 limits only the whole key.
        let long_tenant_part = format!("{}@v=1", "t".repeat(242));
        let long_system_part = format!("t@{}=1", "v".repeat(15));
        let cases: Vec<(Vec<&str>, Option<String>)> = vec![
            (vec![""], None),
            (vec!["foo=1", ""], Some("foo=1".into())),
            (vec!["", "foo=1"], Some("foo=1".into())),
            (
                vec!["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
                Some("foo=1,bar=2,rojo=1,congo=2,baz=3".into()),
            ),
            (vec!["foo=1,foo=1"], Some("foo=1".into())),
            (vec!["foo=1,foo=2"], Some("foo=1".into())),
            (vec!["foo=1", "foo=1"], Some("foo=1".into())),
            (vec!["foo=1", "foo=2"], Some("foo=1".into())),
            (vec![&all_chars], Some(all_chars.clone())),
            (vec![&all_chars_tenant], Some(all_chars_tenant.clone())),
            (
                vec!["foo=1 \t , \t bar=2, \t baz=3"],
                Some("foo=1,bar=2,baz=3".into()),
            ),
            (
                vec!["foo=1\t \t,\t \tbar=2,\t \tbaz=3"],
                Some("foo=1,bar=2,baz=3".into()),
            ),
            (vec![" foo=1"], Some("foo=1".into())),
            (vec!["\tfoo=1"], Some("foo=1".into())),
            (vec!["foo=1 "], Some("foo=1".into())),
            (vec!["foo=1\t"], Some("foo=1".into())),
            (vec!["\t foo=1 \t"], Some("foo=1".into())),
            (vec!["foo =1"], None),
            (vec!["FOO=1"], None),
            (vec!["foo.bar=1"], None),
            (vec!["foo@=1,bar=2"], Some("foo@=1,bar=2".into())),
            (vec!["@foo=1,bar=2"], None),
            (vec!["foo@@bar=1,bar=2"], Some("foo@@bar=1,bar=2".into())),
            (
                vec!["foo@bar@baz=1,bar=2"],
                Some("foo@bar@baz=1,bar=2".into()),
            ),
            (vec!["foo=1", &long_key], Some(format!("foo=1,{long_key}"))),
            (
                vec!["foo=1", &long_tenant],
                Some(format!("foo=1,{long_tenant}")),
            ),
            (vec!["foo=1", &too_long_key], None),
            (
                vec!["foo=1", &long_tenant_part],
                Some(format!("foo=1,{long_tenant_part}")),
            ),
            (
                vec!["foo=1", &long_system_part],
                Some(format!("foo=1,{long_system_part}")),
            ),
            (vec!["foo=bar=baz"], None),
            (vec!["foo=,bar=3"], None),
        ];
        for (fields, expected) in cases {
            assert_eq!(read(&fields).ok().flatten(), expected, "{fields:?}");
        }
    }

    #[test]
    fn accepts_maximum_lengths() {
        let key = "k".repeat(256);
        let at_key = format!("{}@{}", "t".repeat(200), "s".repeat(55));
        for key in [key, at_key] {
            assert_eq!(key.len(), 256);
            let member = format!("{key}={}", "v".repeat(256));
            // A single entry of 513 or more characters cannot be kept whole.
            assert_eq!(read(&[&member]), Ok(None), "{key}");
            let member = format!("{key}=v");
            assert_eq!(read(&[&member]), Ok(Some(member.clone())));
        }
    }

    #[test]
    fn allows_32_members_but_not_33() {
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        let thirty_two = members[..32].join(",");
        assert_eq!(read(&[&thirty_two]), Ok(Some(thirty_two.clone())));
        assert_eq!(
            read(&[&members.join(",")]),
            Err(TraceStateError::TooManyMembers)
        );
        // Counted across fields; empty members do not count.
        assert_eq!(
            read(&[&thirty_two, " , ", "k32=v"]),
            Err(TraceStateError::TooManyMembers)
        );
        assert_eq!(read(&[&thirty_two, " , ,"]), Ok(Some(thirty_two.clone())));
        // Members are counted as received: a repeated key counts, though
        // it is not written.
        let with_repeat = format!("{},k0=again", members[..31].join(","));
        assert_eq!(read(&[&with_repeat]), Ok(Some(members[..31].join(","))));
        assert_eq!(
            read(&[&thirty_two, "k0=again"]),
            Err(TraceStateError::TooManyMembers)
        );
    }

    #[test]
    fn shortens_to_512_removing_long_entries_first_then_from_the_end() {
        let entry = |key: &str, len: usize| format!("{key}={}", "v".repeat(len - key.len() - 1));
        let (a, b, long, c, d) = (
            entry("a", 100),
            entry("b", 100),
            entry("long", 129),
            entry("c", 100),
            entry("d", 100),
        );
        // 100*4 + 129 + 4 commas = 533: dropping the long entry is enough.
        let list = [a.as_str(), &b, &long, &c, &d].join(",");
        assert_eq!(read(&[&list]), Ok(Some([a.as_str(), &b, &c, &d].join(","))));
        // Two long entries, the list 50 characters too long: only the last
        // long entry goes, and the short entries after it stay.
        let (long1, long2) = (entry("l1", 200), entry("l2", 200));
        let list = [long1.as_str(), &long2, &a, &entry("e", 60)].join(",");
        assert_eq!(list.len(), 563);
        let kept = [long1.as_str(), &a, &entry("e", 60)].join(",");
        assert_eq!(read(&[&list]), Ok(Some(kept)));
        // Six 100-char entries (605 chars): whole entries go from the end.
        let six: Vec<String> = (0..6).map(|i| entry(&format!("k{i}"), 100)).collect();
        assert_eq!(read(&[&six.join(",")]), Ok(Some(six[..5].join(","))));
        // Exactly 512 stays as it is.
        let exact = [entry("a", 255), entry("b", 256)].join(",");
        assert_eq!(exact.len(), 512);
        assert_eq!(read(&[&exact]), Ok(Some(exact.clone())));
        // Repeated keys are dropped before the length is counted.
        let repeated = format!("{exact},a=again");
        assert_eq!(read(&[&repeated]), Ok(Some(exact)));
    }

    #[test]
    fn hostile_input_stops_early() {
        // 100 KB of members: rejected at the 33rd, never scanned further.
        let many: Vec<String> = (0..25_000).map(|i| format!("k{i}=1")).collect();
        assert_eq!(
            read(&[&many.join(",")]),
            Err(TraceStateError::TooManyMembers)
        );
        // 100 KB of one repeated member: rejected at the 33rd as well.
        assert_eq!(
            read(&[&["a=1"; 25_000].join(",")]),
            Err(TraceStateError::TooManyMembers)
        );
        // One 100 KB member: the key search is bounded.
        let huge = "a".repeat(100_000);
        assert_eq!(read(&[&huge]), Err(TraceStateError::Key { index: 0 }));
        let huge_value = format!("a={huge}");
        assert_eq!(
            read(&[&huge_value]),
            Err(TraceStateError::Value { index: 0 })
        );
        // 100 KB of separators is a valid, empty list.
        assert_eq!(read(&[&", ".repeat(50_000)]), Ok(None));
    }
}
