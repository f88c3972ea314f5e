//! Differential: request framing. One connection's worth of request bytes
//! goes to two servers:
//!
//! - **tracehop**: `http1::server::serve` (the direct path), continued
//!   with hyper after an `Ended::Handover` as `server::Conn::drive` does it
//!   (the same builder settings, `check_hyper_request` before the
//!   handler): what tracehop does;
//! - **hyper**: hyper's HTTP/1 server alone, set up as tracehop sets it up
//!   (`half_close(true)`), with `check_hyper_request` before the handler.
//!
//! Each runs twice: with the bytes arriving whole, and one byte per read
//! (a one-byte pipe, so heads and bodies arrive in pieces). The client
//! writes everything, half-closes and reads every answer. The handler
//! yields once (as one waiting on its upstream would), records the
//! request (method, target, version, `Host` values, the body bytes or that
//! the body failed) and answers 200 with no body. For each request in
//! turn the two servers must agree on what the handler saw, and on the
//! answers on the wire (interim ones, then served, refused with any
//! 4xx/5xx, or none when the connection closed); so also on whether the
//! connection stayed open for the next request.
//!
//! # Differences by design
//!
//! Each is written for the first request the two disagree on, when the
//! direct path read its head (every request before it was served there,
//! so where the head starts in the input is known), and nowhere else.
//!
//! Rewrites, for "tracehop reads X as Y": hyper's input is rewritten in
//! place, same length, and the two must then agree on everything:
//! - `HTTP/1.x` with x > 1 is `HTTP/1.1` (RFC 9112 §2.3), in every head
//!   the direct path read;
//! - a `Content-Length` list of identical values is that value (RFC 9110
//!   §8.6); hyper's server refuses a list;
//! - obs-text in a `Connection` value is opaque: the other elements
//!   (`close`) still count (RFC 9110 §5.5); hyper ignores the whole value.
//!
//! Ends tracehop gives a request where hyper gives another:
//! - refused: `Transfer-Encoding` with an invalid `Content-Length` (RFC
//!   9112 §6.1: a server MAY reject a request with both; hyper ignores the
//!   length);
//! - refused: a `Content-Length` of more than 19 digits (tracehop's bound,
//!   `semantics::parse_decimal`; hyper takes leading zeros);
//! - refused where hyper closes without an answer: an HTTP/2 preface that
//!   is not the connection's first bytes (RFC 9113 §3.4), also after empty
//!   lines; and a refused head followed by the preface (hyper looks for
//!   one after any head it cannot read);
//! - closed where hyper refuses: the connection ended inside what may
//!   still be a late HTTP/2 preface (tracehop waits to refuse it whole);
//! - refused where hyper closes without an answer, bytes arriving one at a
//!   time: bytes that cannot start a request and never reach the end of a
//!   head (hyper parses a head arriving in pieces only once it looks
//!   complete);
//! - closed unanswered where hyper hands the handler a body that fails:
//!   the connection ended inside the body (RFC 9112 §8: a server MAY close
//!   on an incomplete request);
//! - no `100 Continue` where hyper sends one, when the body had already
//!   arrived (RFC 9110 §10.1.1: a server MAY omit it then); and one where
//!   hyper sends none, when an `Expect` line other than the last asks for
//!   it (`Expect` is a list, each line counts; hyper reads its last).
//!
//! An input that opens with the HTTP/2 preface (or ends inside it) is
//! skipped: tracehop serves HTTP/2 with prior knowledge on the same port
//! (RFC 9113 §3.3), hyper's HTTP/1 server does not.
#![no_main]

#[path = "differences.rs"]
mod differences;
#[path = "http1_requests_heads.rs"]
mod heads;
#[path = "runtime.rs"]
mod runtime;
#[path = "http1_requests_servers.rs"]
mod servers;

use std::fmt;

use bytes::Bytes;
use http::Version;
use libfuzzer_sys::fuzz_target;
use tracehop::http1::semantics::{self, HTTP2_PREFACE};

use heads::{RequestHead, minor_above_one, rewrite, without_empty_lines};
use servers::{hyper_serves, tracehop_serves};

fuzz_target!(|data: &[u8]| {
    if semantics::is_http2_preface(data) {
        return; // HTTP/2 with prior knowledge: not HTTP/1 (module docs)
    }
    for delivery in [Delivery::Whole, Delivery::Bytewise] {
        let tracehop = runtime::run(tracehop_serves(data, delivery));
        check(data, delivery, &tracehop);
    }
});

/// How the client's bytes reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// All at once, as far as the server reads.
    Whole,
    /// One byte per read: every head and body arrives in pieces.
    Bytewise,
}

impl Delivery {
    /// The pipe's capacity.
    fn pipe(self) -> usize {
        match self {
            Self::Whole => 64 * 1024,
            Self::Bytewise => 1,
        }
    }
}

/// What a server did with one connection's bytes.
#[derive(Debug, Default)]
struct Outcome {
    /// Each request the handler saw, in order.
    seen: Vec<Seen>,
    /// Whether tracehop's direct path read each of them.
    direct: Vec<bool>,
    answers: Vec<Answer>,
}

/// A request as the handler saw it.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    version: Version,
    hosts: Vec<Bytes>,
    /// `None`: the body failed (cut short).
    body: Option<Bytes>,
}

/// One response on the wire, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Interim,
    Served,
    /// Refused (4xx, 5xx: which one is not compared); the connection
    /// closes after it.
    Refused,
    /// Bytes that are not a response head.
    Garbled,
}

/// What became of one request: the interim answers it got, and how it
/// ended.
#[derive(Debug, PartialEq, Eq)]
struct Fate<'a> {
    interim: usize,
    end: End<'a>,
}

#[derive(Debug, PartialEq, Eq)]
enum End<'a> {
    /// The handler saw it; whether its answer was written.
    Served(&'a Seen, bool),
    Refused,
    /// The connection closed with no answer.
    Closed,
    Garbled,
}

impl Outcome {
    /// The fate of request `k`.
    fn fate(&self, k: usize) -> Fate<'_> {
        // Each request's answers: interim ones, then a final one.
        let mut answers = self.answers.split_inclusive(|a| *a != Answer::Interim);
        let answers = answers.nth(k).unwrap_or_default();
        let interim = answers.iter().filter(|a| **a == Answer::Interim).count();
        let last = answers.last().copied().filter(|a| *a != Answer::Interim);
        let end = match (self.seen.get(k), last) {
            (_, Some(Answer::Garbled)) => End::Garbled,
            (Some(seen), last) => End::Served(seen, last == Some(Answer::Served)),
            (None, Some(Answer::Refused)) => End::Refused,
            (None, Some(_)) => End::Garbled, // an answer to no request
            (None, None) => End::Closed,
        };
        Fate { interim, end }
    }

    /// The first request from `from` on the two disagree on, if any.
    fn first_difference(&self, other: &Self, from: usize) -> Option<usize> {
        let requests = self.seen.len().max(other.seen.len()) + 1;
        (from..requests).find(|&k| self.fate(k) != other.fate(k))
    }
}

/// Compares tracehop's run with hyper's on the same bytes, delivered
/// alike, rewriting hyper's input where tracehop reads something as
/// something else.
fn check(data: &[u8], delivery: Delivery, tracehop: &Outcome) {
    let mut input = data.to_vec();
    let mut rewrites = Vec::new();
    // The version of every head the direct path read, read as it reads
    // them (it rewrites each head before parsing or handing it over).
    for k in 0..=tracehop.seen.len() {
        let Some(start) = RequestHead::start(&input, tracehop, k) else {
            break;
        };
        if let Some(at) = minor_above_one(&input, start) {
            input[at] = b'1';
            rewrites.push((k, "RFC 9112 §2.3: HTTP/1.x with x > 1 is read as HTTP/1.1"));
        }
    }
    let mut from = 0;
    loop {
        let hyper = runtime::run(hyper_serves(&input, delivery));
        let Some(k) = tracehop.first_difference(&hyper, from) else {
            return;
        };
        // A head decides its own request and whether the connection stays
        // open for the next: the rewrite may be due in the one before.
        let rewrote = (k.saturating_sub(1)..=k).find_map(|j| {
            let start = RequestHead::start(&input, tracehop, j)?;
            Some((j, rewrite(&mut input, start)?))
        });
        if let Some(rewrite) = rewrote {
            rewrites.push(rewrite);
            continue;
        }
        let start = RequestHead::start(&input, tracehop, k);
        let head = start.and_then(|start| RequestHead::parse(&input, start));
        let (ours, theirs) = (tracehop.fate(k), hyper.fate(k));
        // Per `Expect` line: whether it asks for 100 Continue.
        let expects: Vec<bool> = head.as_ref().map_or_else(Vec::new, |head| {
            let expects = head.values("expect");
            expects
                .map(|value| semantics::expects_continue(&input[value]))
                .collect()
        });
        if ours.end == theirs.end && allowed_interim(&expects, &ours, &theirs).is_some() {
            from = k + 1;
            continue;
        }
        let allowed = start.and_then(|start| {
            let (ours, theirs) = (&ours.end, &theirs.end);
            allowed_end(&input, start, head.as_ref(), delivery, ours, theirs)
        });
        if allowed.is_some() {
            return;
        }
        panic!(
            "request framing differs at request {k} ({delivery:?}):\n  tracehop: {ours:?}\n  \
             hyper:    {theirs:?}\ninput: {}\nrewrites for hyper: {rewrites:?}\n\
             tracehop: {tracehop:#?}\nhyper: {hyper:#?}",
            Escaped(data),
        );
    }
}

/// An interim answer tracehop gives or leaves out on purpose (module
/// docs), to a request whose `Expect` lines ask for 100 Continue or not
/// (`expects`).
fn allowed_interim(expects: &[bool], ours: &Fate<'_>, theirs: &Fate<'_>) -> Option<&'static str> {
    let any = expects.contains(&true);
    match (ours.interim, theirs.interim) {
        (0, 1) if any => {
            Some("RFC 9110 §10.1.1: a server MAY omit 100 Continue once content arrived")
        }
        (1, 0) if any && expects.last() == Some(&false) => {
            Some("RFC 9110 §10.1.1: Expect is a list, every line counts; hyper reads its last")
        }
        _ => None,
    }
}

/// An end tracehop gives a request on purpose where hyper gives another
/// (module docs): the request starts at `start` in the input, `head` is
/// its head if it parses.
fn allowed_end(
    input: &[u8],
    start: usize,
    head: Option<&RequestHead>,
    delivery: Delivery,
    ours: &End<'_>,
    theirs: &End<'_>,
) -> Option<&'static str> {
    let long_length = head.is_some_and(|h| {
        let elements = h
            .values("content-length")
            .flat_map(|v| input[v].split(|&b| b == b','));
        elements
            .map(<[u8]>::trim_ascii)
            .any(|digits| digits.len() > 19 && digits.iter().all(u8::is_ascii_digit))
    });
    let both_framings = head.is_some_and(|h| h.has("transfer-encoding") && h.has("content-length"));
    // Servers skip the empty lines before a request line (RFC 9112 §2.2);
    // hyper then looks for the end of a head only in what follows.
    let rest = &input[start..];
    let request_line = without_empty_lines(rest);
    let ends_a_head = request_line.windows(2).any(|w| w == b"\n\n")
        || request_line.windows(3).any(|w| w == b"\n\r\n");
    let unfinished_preface = semantics::is_http2_preface(rest) && rest.len() < HTTP2_PREFACE.len();
    // After a head it refuses, hyper looks for the HTTP/2 preface in what
    // follows (empty lines skipped), and closes without an answer when it
    // is there.
    let preface_after =
        head.is_some_and(|h| without_empty_lines(&input[h.end..]).starts_with(HTTP2_PREFACE));
    match (ours, theirs) {
        (End::Refused, End::Closed) if request_line.starts_with(HTTP2_PREFACE) => {
            Some("RFC 9113 §3.4: the HTTP/2 preface only opens a connection")
        }
        (End::Closed, End::Refused) if unfinished_preface => {
            Some("tracehop waits for the whole HTTP/2 preface to refuse it; it never came")
        }
        (End::Refused, End::Closed) if preface_after => {
            Some("hyper takes the bytes after a head it refuses for an HTTP/2 preface")
        }
        (End::Refused, _) if long_length => Some("a length of over 19 digits is refused"),
        (End::Refused, _) if both_framings => {
            Some("RFC 9112 §6.1: a server MAY reject Transfer-Encoding with Content-Length")
        }
        (End::Refused, End::Closed) if delivery == Delivery::Bytewise && !ends_a_head => {
            Some("hyper parses a head arriving in pieces only once it ends; it never did")
        }
        (End::Closed, End::Served(Seen { body: None, .. }, _)) => {
            Some("RFC 9112 §8: an incomplete request MAY end with the connection, unanswered")
        }
        _ => None,
    }
}

impl fmt::Debug for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seen")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("version", &self.version)
            .field("hosts", &self.hosts)
            .field("body", &self.body.as_deref().map(Escaped))
            .finish()
    }
}

/// Bytes shown as an escaped string.
struct Escaped<'a>(&'a [u8]);

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
