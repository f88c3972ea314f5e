//! Reading a request head on the server side: parsed with httparse,
//! checked with [`super::semantics`] (Host, framing, versions, the HTTP/2
//! preface), and either built into a request for the handler, or refused
//! with a status, or handed to hyper with the reason
//! [`super::path::downstream`] gives. [`check_hyper_request`] applies the
//! rules hyper does not enforce to the requests hyper reads.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

use super::RequestBody;
use super::path::{self, Fallback, HeadFacts};
use super::semantics::{self, BodyLength, Framing, MAX_FIELDS};
use super::server::MAX_BUFFERED_REQUEST;

/// What the read buffer holds.
#[allow(clippy::large_enum_variant)] // moved once, right away: a box would cost more
pub(super) enum Parsed {
    /// A plain request, and whether the connection closes after it.
    Request(Request<RequestBody>, bool),
    /// Not a whole head yet.
    Partial,
    /// A whole head whose body, which is read whole before the handler
    /// runs, is still arriving (the head is off the buffer; the body will
    /// be its next bytes); the client waits for `100 Continue` before
    /// sending it.
    AwaitingBody {
        expect_continue: bool,
        pending: Box<Pending>,
    },
    /// A request for hyper: its head, when already taken off the buffer,
    /// and why.
    Handover(Bytes, Fallback),
    /// A request answered with this error status, then the connection closes.
    Refused(StatusCode),
}

/// Where one field's name and value lie in the head.
pub(super) struct Field {
    name: Range<usize>,
    value: Range<usize>,
}

/// Takes a plain request off the front of `read`. `fields` is scratch
/// space; `first` says whether this is the connection's first request.
pub(super) fn parse(read: &mut BytesMut, fields: &mut Vec<Field>, first: bool) -> Parsed {
    if read.is_empty() {
        return Parsed::Partial;
    }
    if semantics::is_http2_preface(read) {
        // RFC 9113 §3.4: the preface opens a connection, nothing else. Its
        // first bytes may yet be a request (`P` of `POST`): wait for all.
        return match (first, read.len() >= semantics::HTTP2_PREFACE.len()) {
            (_, false) => Parsed::Partial,
            (false, true) => Parsed::Refused(StatusCode::BAD_REQUEST),
            (true, true) => Parsed::Handover(Bytes::new(), Fallback::Http2),
        };
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let config = httparse::ParserConfig::default();
    let head_len = match config.parse_request_with_uninit_headers(&mut parsed, read, &mut slots) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::Version) if normalize_minor_version(read) => {
            return parse(read, fields, first);
        }
        Err(error) => return Parsed::Refused(refusal(error, read)),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Parsed::Refused(StatusCode::BAD_REQUEST);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Refused(StatusCode::BAD_REQUEST);
    };
    let base = read.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let target = range(target.as_bytes());
    let http10 = version == 0;
    let mut framing = Framing::default();
    let mut expect_continue = false;
    // The first two Host lines: enough for the rules to judge.
    let mut hosts: [&[u8]; 2] = [b""; 2];
    let mut host_lines = 0;
    fields.clear();
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        framing.note(name, field.value);
        if name.eq_ignore_ascii_case(b"host") {
            hosts[host_lines.min(1)] = field.value;
            host_lines += 1;
        }
        // RFC 9110 §10.1.1: an HTTP/1.0 request's expectation is ignored.
        expect_continue |= !http10
            && name.eq_ignore_ascii_case(b"expect")
            && semantics::expects_continue(field.value);
        fields.push(Field {
            name: range(name),
            value: range(field.value),
        });
    }
    // A head the rules refuse is answered at once, before any body.
    let hosts = hosts[..host_lines.min(2)].iter().copied();
    if let Err(error) = semantics::check_host(http10, hosts) {
        tracing::debug!(%error, "refused a request");
        return Parsed::Refused(StatusCode::BAD_REQUEST);
    }
    // A body read whole (up to `MAX_BUFFERED_REQUEST`) that has not all
    // arrived is waited for (after `100 Continue`, when the client waits
    // for it) rather than handed to hyper; the head is built now, and not
    // parsed again when the body is in.
    let awaited = match framing.request(http10) {
        Ok((BodyLength::Known(length), _)) => usize::try_from(length)
            .ok()
            .and_then(|length| length.checked_add(head_len))
            .filter(|&total| read.len() < total && total <= MAX_BUFFERED_REQUEST),
        _ => None,
    };
    if let Some(total) = awaited {
        // Room for the whole request and a little more: read in few
        // calls, and the last read ends short of the room, which tells
        // tokio the socket is drained (else the connection's next read
        // costs a system call that finds nothing).
        read.reserve((total + 1024).saturating_sub(read.len()));
    }
    let head = read.split_to(head_len).freeze();
    let line = RequestLine {
        method,
        target,
        http10,
    };
    // A body being waited for counts as here: the request is served here
    // once it is (else hyper takes it now, and answers `Expect` itself).
    let buffered = awaited.map_or(read.len(), |total| total - head_len);
    match build(&head, line, framing, fields, buffered) {
        Built::Request(request, closing, length) if awaited.is_some() => Parsed::AwaitingBody {
            expect_continue,
            pending: Box::new(Pending {
                request,
                closing,
                length,
                head,
            }),
        },
        Built::Request(mut request, closing, length) => {
            *request.body_mut() = RequestBody::read(read.split_to(length).freeze());
            Parsed::Request(request, closing)
        }
        Built::Handover(fallback) => Parsed::Handover(head, fallback),
        Built::Refused(status) => Parsed::Refused(status),
    }
}

/// A request whose body is on its way ([`Parsed::AwaitingBody`]).
pub(super) struct Pending {
    /// The request, its body still empty.
    pub request: Request<RequestBody>,
    /// The connection closes after it.
    pub closing: bool,
    /// The body's length: the next bytes read.
    pub length: usize,
    /// The head as it came (hyper reads it again if the body is late).
    pub head: Bytes,
}

/// Reads `HTTP/1.x` with a minor version above 1 as `HTTP/1.1`, in place
/// (RFC 9112 §2.3); whether the request line changed.
fn normalize_minor_version(read: &mut BytesMut) -> bool {
    // The version may arrive before the end of its line.
    let end = read.iter().position(|&b| b == b'\n').unwrap_or(read.len());
    let line = read[..end].strip_suffix(b"\r").unwrap_or(&read[..end]);
    let Some(start) = line.len().checked_sub(8) else {
        return false;
    };
    match semantics::minor_version(&line[start..]) {
        Some(minor) if minor > 1 => {
            read[start + 7] = b'1';
            true
        }
        _ => false,
    }
}

/// The status for a head httparse refused: 431 for too many fields, 505
/// for another major version, else 400.
fn refusal(error: httparse::Error, read: &[u8]) -> StatusCode {
    match error {
        httparse::Error::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        httparse::Error::Version if has_http_version(read) => {
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Whether the request line ends in a well-formed `HTTP/d.d` version.
fn has_http_version(read: &[u8]) -> bool {
    let line = read.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    matches!(
        line.rsplit(|&b| b == b' ').next(),
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit()
    )
}

/// Checks a request hyper read against the rules hyper does not enforce
/// (Host, RFC 9112 §3.2) and applies §3.2.2 (an absolute-form target's
/// authority replaces Host); the status to refuse it with otherwise.
/// HTTP/2 requests carry `:authority` instead and pass untouched.
pub fn check_hyper_request<B>(request: &mut Request<B>) -> Result<(), StatusCode> {
    let http10 = match request.version() {
        Version::HTTP_10 | Version::HTTP_09 => true,
        Version::HTTP_11 => false,
        _ => return Ok(()),
    };
    let hosts = request.headers().get_all(header::HOST).iter();
    if let Err(error) = semantics::check_host(http10, hosts.map(HeaderValue::as_bytes)) {
        tracing::debug!(%error, "refused a request");
        return Err(StatusCode::BAD_REQUEST);
    }
    if let Some(host) = request
        .uri()
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    Ok(())
}

/// The request line, parsed.
struct RequestLine {
    method: Method,
    target: Range<usize>,
    http10: bool,
}

/// What [`build`] made of a head.
#[allow(clippy::large_enum_variant)] // moved once, right away
enum Built {
    /// The request (its body empty), whether the connection closes after
    /// it, and its body's length (0 unless sized).
    Request(Request<RequestBody>, bool, usize),
    Handover(Fallback),
    Refused(StatusCode),
}

/// The request in `head`, checked against the rules, or why it goes to
/// hyper or is refused; `buffered`: the bytes of the body at hand (or
/// awaited).
fn build(
    head: &Bytes,
    line: RequestLine,
    framing: Framing,
    fields: &[Field],
    buffered: usize,
) -> Built {
    let Ok(uri) = Uri::from_maybe_shared(head.slice(line.target)) else {
        return Built::Refused(StatusCode::BAD_REQUEST);
    };
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut facts = HeadFacts {
        http10: line.http10,
        connect: line.method == Method::CONNECT,
        buffered,
        ..HeadFacts::default()
    };
    let mut has_upgrade = false;
    for field in fields {
        let raw_name = &head[field.name.clone()];
        let raw_value = &head[field.value.clone()];
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(raw_name),
            HeaderValue::from_maybe_shared(head.slice(field.value.clone())),
        ) else {
            return Built::Refused(StatusCode::BAD_REQUEST);
        };
        if name == header::EXPECT {
            facts.expect_continue |= semantics::expects_continue(raw_value);
        } else if name == header::UPGRADE {
            has_upgrade = true;
        } else if name == header::TE {
            facts.trailers |= semantics::has_token(raw_value, "trailers");
        }
        headers.append(name, value);
    }
    let (body, persists) = match framing.request(line.http10) {
        Ok(decided) => decided,
        Err(error) => {
            tracing::debug!(%error, "refused a request");
            return Built::Refused(StatusCode::BAD_REQUEST);
        }
    };
    facts.upgrade = semantics::wants_upgrade(line.http10, framing.connection, has_upgrade);
    facts.body = Some(body);
    if let Err(fallback) = path::downstream(&facts) {
        return Built::Handover(fallback);
    }
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
    if let Some(authority) = uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    let length = match body {
        BodyLength::Known(length) => usize::try_from(length).unwrap_or(usize::MAX),
        BodyLength::Chunked | BodyLength::UntilClose => 0,
    };
    let mut request = Request::new(RequestBody::read(Bytes::new()));
    *request.method_mut() = line.method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Built::Request(request, !persists, length.min(buffered))
}
