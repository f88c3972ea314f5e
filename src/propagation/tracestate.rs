//! W3C Trace Context `tracestate` (Level 1 §3.3): validating the combined
//! list and shortening it for the next hop.
//!
//! Owns [`TraceState`]. The sidecar adds no entry of its own, so the list is
//! only validated, normalised (no empty members, no optional whitespace) and
//! shortened. Work is bounded on hostile input: one pass over the bytes,
//! stopping at the first grammar error or at the 33rd member, with member
//! positions kept in a fixed-size array; the only allocation is the kept
//! value itself.

use super::trim_ows;
use super::w3c::TRACESTATE;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

/// Most members a list may have (§3.3.1.2).
const MAX_MEMBERS: usize = 32;
/// Longest value written (§3.3.1.5: propagate at least 512 characters).
const MAX_LEN: usize = 512;
/// Entries longer than this are the first to go when shortening (§3.3.1.5).
const LONG_ENTRY: usize = 128;
/// `simple-key` is at most 256 characters (§3.3.1.3.1), longer than either
/// part of a multi-tenant key, so `=` must appear within this many bytes.
const MAX_KEY_LEN: usize = 256;
/// `value = 0*255(chr) nblk-chr` (§3.3.1.3.2).
const MAX_VALUE_LEN: usize = 256;
/// `tenant-id = ( lcalpha / DIGIT ) 0*240( ... )` (§3.3.1.3.1).
const MAX_TENANT_LEN: usize = 241;
/// `system-id = lcalpha 0*13( ... )` (§3.3.1.3.1).
const MAX_SYSTEM_LEN: usize = 14;

/// A validated (and if needed shortened) tracestate value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceState(HeaderValue);

impl TraceState {
    /// The list as it will be written: members joined by `,`, at most 512 characters.
    pub fn as_str(&self) -> &str {
        self.0
            .to_str()
            .expect("a validated tracestate holds printable ASCII only (§3.3.1.3.2)")
    }

    /// The ready-made header value (cloning shares the bytes).
    pub(super) fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// Why a `tracestate` list was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum TraceStateError {
    #[error("more than {MAX_MEMBERS} list members (§3.3.1.2)")]
    TooManyMembers,
    #[error("list member {index} has no valid key before `=` (§3.3.1.3.1)")]
    Key { index: usize },
    #[error("list member {index} has an invalid value (§3.3.1.3.2)")]
    Value { index: usize },
    #[error("list member {index} repeats an earlier key (§3.3.1.4)")]
    DuplicateKey { index: usize },
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

/// Validates every `tracestate` field, combined in order (§3.3.1): `Ok(None)`
/// when absent or holding only empty members.
pub(super) fn extract(headers: &HeaderMap) -> Result<Option<TraceState>, TraceStateError> {
    let mut members = [Member::default(); MAX_MEMBERS];
    let mut count = 0;
    let fields = headers.get_all(&TRACESTATE).iter();
    // Field boundaries separate members just as commas do (RFC 7230 §3.2.2).
    for raw in fields.flat_map(|field| field.as_bytes().split(|&b| b == b',')) {
        let text = trim_ows(raw);
        if text.is_empty() {
            // Empty and whitespace-only members are allowed (§3.3.1).
            continue;
        }
        if count == MAX_MEMBERS {
            return Err(TraceStateError::TooManyMembers);
        }
        let member = parse_member(text, count)?;
        if members[..count].iter().any(|m| m.key() == member.key()) {
            return Err(TraceStateError::DuplicateKey { index: count });
        }
        members[count] = member;
        count += 1;
    }
    Ok(join(&members[..count]))
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

/// `key = simple-key / multi-tenant-key` (Level 1 §3.3.1.3.1).
fn is_valid_key(key: &[u8]) -> bool {
    match key.iter().position(|&b| b == b'@') {
        None => is_identifier(key, MAX_KEY_LEN, false),
        Some(at) => {
            is_identifier(&key[..at], MAX_TENANT_LEN, true)
                && is_identifier(&key[at + 1..], MAX_SYSTEM_LEN, false)
        }
    }
}

/// `lcalpha 0*n( lcalpha / DIGIT / "_" / "-" / "*" / "/" )`, where a tenant
/// id may also start with a digit.
fn is_identifier(id: &[u8], max_len: usize, digit_first: bool) -> bool {
    let Some((&first, rest)) = id.split_first() else {
        return false;
    };
    id.len() <= max_len
        && (first.is_ascii_lowercase() || (digit_first && first.is_ascii_digit()))
        && rest.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
        })
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII except `,` and `=`, not
/// ending in a space (§3.3.1.3.2).
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
/// (§3.3.1.5): entries longer than 128 characters go first, then entries
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
            // W3C Trace Context §3.3.2 examples.
            (&["rojo=00f067aa0ba902b7"], Some("rojo=00f067aa0ba902b7")),
            (
                &["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
                Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ),
            // Multiple fields combine in order (§3.3.1, RFC 7230 §3.2.2).
            (
                &["congo=ucfJifl5GOE", "rojo=00f067aa0ba902b7"],
                Some("congo=ucfJifl5GOE,rojo=00f067aa0ba902b7"),
            ),
            // Empty members and OWS are allowed; they are not written.
            (&[" , a=1 ,\t,b=2\t, "], Some("a=1,b=2")),
            (&["", "a=1", " "], Some("a=1")),
            (&["", " ,, "], None),
            (&[], None),
            // Multi-tenant keys; a tenant may start with a digit.
            (
                &["fw529a3039@dt=1,1tenant@sys-1_*/=v"],
                Some("fw529a3039@dt=1,1tenant@sys-1_*/=v"),
            ),
            // Values: leading spaces kept, any printable ASCII but `,` `=`.
            (&["k=  x !~\"<>"], Some("k=  x !~\"<>")),
        ];
        for &(fields, expected) in cases {
            assert_eq!(read(fields), Ok(expected.map(str::to_owned)), "{fields:?}");
        }
    }

    #[test]
    fn rejects_grammar_violations() {
        use TraceStateError::*;
        let long = |n| "a".repeat(n);
        let cases: Vec<(String, TraceStateError)> = vec![
            ("A=1".into(), Key { index: 0 }),
            ("1abc=1".into(), Key { index: 0 }),
            ("_a=1".into(), Key { index: 0 }),
            ("a=1,b".into(), Key { index: 1 }),
            ("=1".into(), Key { index: 0 }),
            ("a b=1".into(), Key { index: 0 }),
            ("@dt=1".into(), Key { index: 0 }),
            ("t@=1".into(), Key { index: 0 }),
            ("t@1dt=1".into(), Key { index: 0 }),
            ("t@d@t=1".into(), Key { index: 0 }),
            (format!("{}=1", long(257)), Key { index: 0 }),
            (format!("{}@dt=1", long(242)), Key { index: 0 }),
            (format!("t@{}=1", long(15)), Key { index: 0 }),
            ("a=".into(), Value { index: 0 }),
            ("a=1=2".into(), Value { index: 0 }),
            ("a=x\ty".into(), Value { index: 0 }),
            (format!("a={}", long(257)), Value { index: 0 }),
            ("a=1,b=2,a=3".into(), DuplicateKey { index: 2 }),
            ("t@dt=1,t@dt=2".into(), DuplicateKey { index: 1 }),
        ];
        for (field, error) in cases {
            assert_eq!(read(&[&field]), Err(error), "{field:?}");
        }
        let obs_text = HeaderValue::from_bytes(b"a=caf\xc3\xa9").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(&TRACESTATE, obs_text);
        assert_eq!(extract(&headers), Err(Value { index: 0 }));
    }

    /// Vectors from the W3C trace-context test suite (`test/test.py`,
    /// `test_tracestate_*`): the list kept, or `None` when it is discarded.
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
        let too_long_tenant = format!("{}@v=1", "t".repeat(242));
        let too_long_system = format!("t@{}=1", "v".repeat(15));
        let cases: Vec<(Vec<&str>, Option<String>)> = vec![
            (vec![""], None),
            (vec!["foo=1", ""], Some("foo=1".into())),
            (vec!["", "foo=1"], Some("foo=1".into())),
            (
                vec!["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
                Some("foo=1,bar=2,rojo=1,congo=2,baz=3".into()),
            ),
            (vec!["foo=1,foo=1"], None),
            (vec!["foo=1,foo=2"], None),
            (vec!["foo=1", "foo=1"], None),
            (vec!["foo=1", "foo=2"], None),
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
            (vec!["foo@=1,bar=2"], None),
            (vec!["@foo=1,bar=2"], None),
            (vec!["foo@@bar=1,bar=2"], None),
            (vec!["foo@bar@baz=1,bar=2"], None),
            (vec!["foo=1", &long_key], Some(format!("foo=1,{long_key}"))),
            (
                vec!["foo=1", &long_tenant],
                Some(format!("foo=1,{long_tenant}")),
            ),
            (vec!["foo=1", &too_long_key], None),
            (vec!["foo=1", &too_long_tenant], None),
            (vec!["foo=1", &too_long_system], None),
        ];
        for (fields, expected) in cases {
            assert_eq!(read(&fields).ok().flatten(), expected, "{fields:?}");
        }
    }

    #[test]
    fn accepts_maximum_lengths() {
        let key = "k".repeat(256);
        let tenant_key = format!("{}@{}", "t".repeat(241), "s".repeat(14));
        for key in [key, tenant_key] {
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
        assert_eq!(read(&[&thirty_two, " , ,"]), Ok(Some(thirty_two)));
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
        // Six 100-char entries (605 chars): whole entries go from the end.
        let six: Vec<String> = (0..6).map(|i| entry(&format!("k{i}"), 100)).collect();
        assert_eq!(read(&[&six.join(",")]), Ok(Some(six[..5].join(","))));
        // Exactly 512 stays as it is.
        let exact = [entry("a", 255), entry("b", 256)].join(",");
        assert_eq!(exact.len(), 512);
        assert_eq!(read(&[&exact]), Ok(Some(exact.clone())));
    }

    #[test]
    fn hostile_input_stops_early() {
        // 100 KB of members: rejected at the 33rd, never scanned further.
        let many: Vec<String> = (0..25_000).map(|i| format!("k{i}=1")).collect();
        assert_eq!(
            read(&[&many.join(",")]),
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
