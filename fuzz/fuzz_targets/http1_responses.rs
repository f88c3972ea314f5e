//! Differential: response framing. The first byte picks the request's
//! method (`GET`, `HEAD`, or `POST` with a five-byte body); the rest is
//! what the upstream answers. The same answer goes to two clients:
//!
//! - **tracehop**: `http1::client::exchange` on a `Connection`, its body
//!   (`Http1Body`) read to the end with a `Home` that keeps the
//!   connection if the body gives it back;
//! - **hyper**: hyper's HTTP/1 client connection (`handshake`), its body
//!   read to the end, then asked whether it could send another request.
//!
//! The upstream reads the request, writes the answer, and keeps the
//! connection open until neither client can make progress (the paused
//! clock of `runtime` tells), then closes it: a body that runs to the end
//! of the connection gets its end, and a connection is judged reusable
//! before it closes. Both clients must agree on: a response or none, its
//! status, its body bytes, its trailers, whether the body ended cleanly,
//! and whether the connection can carry another request (so on how the
//! body was delimited, and on what `Connection` said).
//!
//! # Differences by design
//!
//! Each is written narrowly, from the final response head (after the
//! interim ones both skip) and the body behind it.
//!
//! Rewrites, for "tracehop reads X as Y": hyper's input is rewritten in
//! place, same length, and the two must then agree on everything:
//! - empty elements of the `Transfer-Encoding` list are ignored (RFC 9110
//!   §5.6.1), so `chunked,` is `chunked` and an empty line after another
//!   changes nothing; hyper reads the raw last element;
//! - obs-text in a `Connection` or `Transfer-Encoding` value is opaque:
//!   the other elements still count (RFC 9110 §5.5); hyper ignores the
//!   whole value.
//!
//! Outcomes tracehop reaches where hyper reaches another:
//! - no response to `101 Switching Protocols` when the request asked for
//!   no upgrade (RFC 9110 §15.2.2: a server MUST NOT switch to a protocol
//!   the client did not name); hyper returns it;
//! - no response when an HTTP/1.0 head has `Transfer-Encoding` (RFC 9112
//!   §6.1: faulty framing), even when the response has no body anyway
//!   (`HEAD`, 204, 304), which hyper decides first;
//! - no response to a `Content-Length` of more than 19 digits, a broken
//!   body at a chunk size of more than 16 hex digits (tracehop's bounds,
//!   which keep the value in a `u64` without overflow checks; hyper takes
//!   leading zeros);
//! - trailer field lines may end in LF alone (RFC 9112 §2.2: a recipient
//!   MAY accept that for field lines): a clean body where hyper fails,
//!   or, when an empty line of LF alone ends the section, the bytes after
//!   it make the connection unusable, where hyper reads them as part of
//!   the section (up to CRLF CRLF).
#![no_main]

#[path = "http1_responses_clients.rs"]
mod clients;
#[path = "differences.rs"]
mod differences;
#[path = "runtime.rs"]
mod runtime;

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use http::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;
use tracehop::http1::semantics::list_elements;

use clients::{exchange_with, hyper_reads, tracehop_reads};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, answer)) = data.split_first() else {
        return;
    };
    let method = [Method::GET, Method::HEAD, Method::POST][usize::from(choice % 3)].clone();
    let tracehop = runtime::run(exchange_with(&method, answer, tracehop_reads));
    check(&method, answer, &tracehop);
});

/// What a client made of the upstream's answer.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// No response: the head was refused, or the connection ended first.
    Failed,
    Response {
        status: u16,
        body: Shown,
        trailers: HeaderMap,
        /// The body ended as framed (not cut short, not malformed).
        clean: bool,
        /// The connection could carry another request.
        reusable: bool,
    },
}

/// Compares tracehop's reading of `answer` with hyper's, rewriting
/// hyper's input where tracehop reads something as something else.
fn check(method: &Method, answer: &[u8], tracehop: &Outcome) {
    let mut input = answer.to_vec();
    let mut rewrites = Vec::new();
    loop {
        let hyper = runtime::run(exchange_with(method, &input, hyper_reads));
        if *tracehop == hyper {
            return;
        }
        let head = ResponseHead::find(&input);
        if let Some(rule) = head.as_ref().and_then(|head| head.rewrite(&mut input)) {
            rewrites.push(rule);
            continue;
        }
        if let Some(head) = &head
            && allowed(head, &input, tracehop, &hyper).is_some()
        {
            return;
        }
        panic!(
            "response framing differs ({method} request):\n  tracehop: {tracehop:?}\n  \
             hyper:    {hyper:?}\nanswer: {}\nrewrites for hyper: {rewrites:?}",
            Shown(Bytes::copy_from_slice(answer)),
        );
    }
}

/// A difference tracehop makes on purpose (module docs), by rule.
fn allowed(
    head: &ResponseHead,
    input: &[u8],
    tracehop: &Outcome,
    hyper: &Outcome,
) -> Option<&'static str> {
    let long_length = head
        .values("content-length")
        .flat_map(|value| input[value].split(|&b| b == b','))
        .any(|element| {
            let digits = element.trim_ascii();
            digits.len() > 19 && digits.iter().all(u8::is_ascii_digit)
        });
    let chunks = Chunks::walk(&input[head.end..]);
    let long_size = chunks.sizes.iter().any(|size| size.len() > 16);
    let lf_trailers = chunks.trailers.is_some_and(|section| {
        let mut bytes = section.iter().enumerate();
        bytes.any(|(i, &b)| b == b'\n' && (i == 0 || section[i - 1] != b'\r'))
    });
    let same_start = match (tracehop, hyper) {
        (
            Outcome::Response { status, body, .. },
            Outcome::Response {
                status: theirs,
                body: read,
                ..
            },
        ) => status == theirs && body == read,
        _ => false,
    };
    let te = head.values("transfer-encoding").next().is_some();
    match (tracehop, hyper) {
        (Outcome::Failed, Outcome::Response { status: 101, .. }) if head.status == 101 => {
            Some("RFC 9110 §15.2.2: no switch to a protocol the request did not name")
        }
        (Outcome::Failed, _) if head.http10 && te => {
            Some("RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding is faulty framing")
        }
        (Outcome::Failed, _) if long_length => Some("a length of over 19 digits is refused"),
        (Outcome::Response { clean: false, .. }, _) if long_size => {
            Some("a chunk size of over 16 hex digits is refused")
        }
        (Outcome::Response { clean: true, .. }, Outcome::Response { clean: false, .. })
            if lf_trailers && same_start =>
        {
            Some("RFC 9112 §2.2: a recipient MAY end a field line with LF alone")
        }
        (
            Outcome::Response {
                clean: true,
                reusable: false,
                trailers,
                ..
            },
            Outcome::Response {
                clean: true,
                reusable: true,
                trailers: theirs,
                ..
            },
        ) if lf_trailers && same_start && trailers == theirs => {
            Some("RFC 9112 §2.2: an empty line of LF alone ends the trailers; bytes follow")
        }
        _ => None,
    }
}

/// The final response head in an answer (after any interim ones both
/// clients skip), located in the input.
struct ResponseHead {
    status: u16,
    http10: bool,
    end: usize,
    /// Each field's name (lower case), and where it and its value are.
    fields: Vec<(String, Range<usize>, Range<usize>)>,
}

impl ResponseHead {
    fn find(input: &[u8]) -> Option<Self> {
        let mut start = 0;
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 100];
            let mut response = httparse::Response::new(&mut slots);
            let Ok(httparse::Status::Complete(length)) = response.parse(&input[start..]) else {
                return None;
            };
            let status = response.code?;
            if (100..200).contains(&status) && status != 101 {
                start += length;
                continue;
            }
            let base = input.as_ptr() as usize;
            let place = |s: &[u8]| {
                let from = s.as_ptr() as usize - base;
                from..from + s.len()
            };
            let fields = response
                .headers
                .iter()
                .map(|f| {
                    let name = f.name.to_ascii_lowercase();
                    (name, place(f.name.as_bytes()), place(f.value))
                })
                .collect();
            let (http10, end) = (response.version == Some(0), start + length);
            return Some(Self {
                status,
                http10,
                end,
                fields,
            });
        }
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Range<usize>> + 'a {
        self.fields
            .iter()
            .filter(move |(field, _, _)| field == name)
            .map(|(_, _, value)| value.clone())
    }

    /// Rewrites `input` (in place, same length) the way tracehop reads this
    /// head; what it rewrote, when it did.
    fn rewrite(&self, input: &mut [u8]) -> Option<&'static str> {
        // obs-text first: hyper ignores a whole value that has it.
        let lists = self
            .values("connection")
            .chain(self.values("transfer-encoding"));
        if let Some(reason) = differences::mask_obs_text(input, lists) {
            return Some(reason);
        }
        let mut rewrote = false;
        let codings = self
            .fields
            .iter()
            .filter(|(field, _, _)| field == "transfer-encoding");
        for (i, (_, name, value)) in codings.enumerate() {
            let raw = &input[value.clone()];
            if !raw.split(|&b| b == b',').any(|e| e.trim_ascii().is_empty()) {
                continue;
            }
            let mut elements = list_elements(raw).collect::<Vec<_>>().join(&b","[..]);
            if !elements.is_empty() {
                elements.resize(value.len(), b' ');
                input[value.clone()].copy_from_slice(&elements);
                rewrote = true;
            } else if i > 0 {
                // An empty line after another: out of the way, renamed.
                input[name.start] = b'X';
                rewrote = true;
            }
        }
        rewrote.then_some("RFC 9110 §5.6.1: empty list elements are ignored")
    }
}

/// A chunked body read strictly (every line ends in CRLF), as far as it
/// goes: the hex digits of each chunk size, and the trailer section.
struct Chunks<'a> {
    sizes: Vec<&'a [u8]>,
    trailers: Option<&'a [u8]>,
}

impl<'a> Chunks<'a> {
    fn walk(mut rest: &'a [u8]) -> Self {
        let mut chunks = Self {
            sizes: Vec::new(),
            trailers: None,
        };
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let digits = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            let size = &rest[..digits.min(end)];
            chunks.sizes.push(size);
            rest = &rest[end + 2..];
            let significant = size.iter().skip_while(|&&b| b == b'0').count();
            if size.is_empty() || significant > 16 {
                break;
            }
            let Ok(length) = usize::from_str_radix(std::str::from_utf8(size).unwrap_or("0"), 16)
            else {
                break;
            };
            if length == 0 {
                chunks.trailers = Some(rest);
                break;
            }
            let Some(next) = rest.get(length.saturating_add(2)..) else {
                break;
            };
            rest = next;
        }
        chunks
    }
}

/// Bytes shown as an escaped string.
#[derive(PartialEq, Eq)]
struct Shown(Bytes);

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
