//! The HTTP/1.1 rules, each written once as a pure function of field names
//! and values (RFC 9110 semantics, RFC 9112 message syntax).
//!
//! Every HTTP/1.1 code path decides with these: the server's connection
//! ([`super::server`]), the checks around hyper's server for requests it
//! serves ([`super::path`]), the upstream connection ([`super::client`]) and
//! the proxy's header rewriting. Nothing else re-derives them. The tests at
//! the bottom are tables taken from the RFC text.
//!
//! | rule | function |
//! |---|---|
//! | hop-by-hop fields (RFC 9110 §7.6.1) | [`hop_by_hop_index`], [`is_hop_by_hop`] |
//! | `Connection` options (§7.6.1) | [`ConnectionOptions`], [`named_fields`], [`removable_by_connection`], [`list_elements`] |
//! | what is forwarded as it came | [`forwarded_as_is`] |
//! | persistence (RFC 9112 §9.3) | [`persists`] |
//! | `Content-Length` values (RFC 9110 §8.6) | [`Framing::note`] |
//! | transfer codings, empty list elements (RFC 9112 §6.1, RFC 9110 §5.6.1) | [`final_coding_is_chunked`] |
//! | request framing (RFC 9112 §6.1–6.3) | [`Framing::request`] |
//! | chunk-size lines (RFC 9112 §7.1) | [`chunk_size`] |
//! | response framing (RFC 9112 §6.3) | [`Framing::response`], [`response_has_body`] |
//! | Host (RFC 9112 §3.2, §3.2.2) | [`check_host`], [`valid_host`], [`split_host_port`] |
//! | `Expect` (RFC 9110 §10.1.1) | [`expects_continue`] |
//! | upgrades (RFC 9110 §7.8) | [`wants_upgrade`] |
//! | fields a trailer section must not carry (RFC 9110 §6.5.1) | [`allowed_in_trailers`] |
//! | protocol versions (RFC 9112 §2.3) | [`minor_version`] |
//! | the HTTP/2 preface (RFC 9113 §3.4) | [`is_http2_preface`] |
//! | limits | [`MAX_FIELDS`], [`MAX_RESPONSE_HEAD`] |

use http::{Method, StatusCode};

/// Header fields in one head, at most (hyper's limit too); more is 431
/// on a request and an invalid response from an upstream.
pub const MAX_FIELDS: usize = 100;

/// Largest response head read from an upstream, counted over the whole
/// head however it arrives; also bounds a trailer section and a
/// chunk-size line.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Fields that are hop-by-hop whatever `Connection` says: RFC 9110 §7.6.1
/// (`Connection`, `Proxy-Connection`, `Keep-Alive`, `TE`,
/// `Transfer-Encoding`, `Upgrade`), plus the proxy authentication fields
/// (§11.7). `Trailer` is end to end (§6.6.2): it declares the trailer
/// fields the next hop may send on.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// One bit per length among [`HOP_BY_HOP`]'s names: most names are none
/// of them, and their length alone says so.
const HOP_LENGTHS: u32 = {
    let mut mask = 0;
    let mut i = 0;
    while i < HOP_BY_HOP.len() {
        mask |= 1 << HOP_BY_HOP[i].len();
        i += 1;
    }
    mask
};

/// The position of `name` (any case) in [`HOP_BY_HOP`].
// Inlined: every field of every message asks, and the length test alone
// answers for most (measured with bench/instructions.sh: see bench/README.md).
#[inline]
pub fn hop_by_hop_index(name: &[u8]) -> Option<usize> {
    if name.len() >= 32 || HOP_LENGTHS & (1 << name.len()) == 0 {
        return None;
    }
    HOP_BY_HOP
        .iter()
        .position(|hop| hop.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether `name` is always hop-by-hop.
#[inline]
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    hop_by_hop_index(name).is_some()
}

/// The non-empty elements of a comma-separated list, without the
/// whitespace around them (RFC 9110 §5.6.1: a recipient ignores empty
/// elements).
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|element| !element.is_empty())
}

/// Whether a list value holds `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    list_elements(value).any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

/// What the `Connection` field lines of one message say (RFC 9110 §7.6.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// An option names a field that is not hop-by-hop anyway: that field
    /// must be removed before forwarding.
    pub names_fields: bool,
}

impl ConnectionOptions {
    /// Notes one `Connection` field line.
    pub fn note(&mut self, value: &[u8]) {
        // Nearly every message says just this: one comparison, no list walk.
        if value.eq_ignore_ascii_case(b"keep-alive") {
            self.keep_alive = true;
            return;
        }
        for option in list_elements(value) {
            if option.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if option.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if removable_by_connection(option) {
                self.names_fields = true;
            }
        }
    }

    /// The options of every line in `values`.
    pub fn of<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut options = Self::default();
        for value in values {
            options.note(value);
        }
        options
    }
}

/// Whether a field a `Connection` option names is removed with it. Fields
/// that are hop-by-hop anyway go regardless; `Host` and `Content-Length`
/// are never connection options (they route and frame the message end
/// to end, RFC 9110 §7.6.1: "a sender MUST NOT send a connection option
/// corresponding to a field that is intended for all recipients"), so
/// `Connection: host` cannot make a proxy drop the client's Host.
pub fn removable_by_connection(name: &[u8]) -> bool {
    !(is_hop_by_hop(name)
        || name.eq_ignore_ascii_case(b"host")
        || name.eq_ignore_ascii_case(b"content-length"))
}

/// The fields a `Connection` value names, which go with it (RFC 9110
/// §7.6.1), leaving out those [`removable_by_connection`] protects.
pub fn named_fields(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    list_elements(value).filter(|name| removable_by_connection(name))
}

/// Whether a field read off one connection is written to the next as it
/// came: not hop-by-hop, and not `Content-Length`, which whoever frames
/// the body on the next connection writes again.
#[inline]
pub fn forwarded_as_is(name: &[u8]) -> bool {
    !is_hop_by_hop(name) && !name.eq_ignore_ascii_case(b"content-length")
}

/// Whether the connection stays open after this message (RFC 9112 §9.3):
/// HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive` (and without
/// `close`).
pub fn persists(http10: bool, options: ConnectionOptions) -> bool {
    !options.close && (!http10 || options.keep_alive)
}

/// Whether the final transfer coding of a `Transfer-Encoding` value is
/// `chunked`, ignoring empty list elements (`chunked,` is `chunked`).
pub fn final_coding_is_chunked(value: &[u8]) -> Option<bool> {
    list_elements(value)
        .last()
        .map(|coding| coding.eq_ignore_ascii_case(b"chunked"))
}

/// A `Content-Length` value: ASCII digits only, at most 19 of them.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The size on a chunk-size line, `chunk-size [ chunk-ext ] CRLF` (RFC
/// 9112 §7.1): hex, at most 16 digits; the line ends in CRLF, holds no
/// other CR, and the whitespace before an extension is spaces and tabs
/// only (BWS, RFC 9110 §5.6.3).
pub fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let extension = rest.trim_ascii_start();
    let bws = &rest[..rest.len() - extension.len()];
    let valid = digits > 0
        && digits <= 16
        && bws.iter().all(|&b| b == b' ' || b == b'\t')
        && (extension.is_empty() || extension[0] == b';')
        && !extension.contains(&b'\r');
    if !valid {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |n, &d| {
        let digit = (d as char).to_digit(16)?;
        Some((n << 4) | u64::from(digit))
    })
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// Exactly this many bytes (0: no body).
    Known(u64),
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// Why a message's framing cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("invalid Content-Length")]
    InvalidLength,
    #[error("Content-Length values disagree")]
    ConflictingLength,
    #[error("Transfer-Encoding whose final coding is not chunked")]
    NotChunked,
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
}

/// What a head's fields say about its framing and its connection,
/// gathered one field at a time ([`Framing::note`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framing {
    /// The one `Content-Length`, when valid and agreed.
    length: Option<u64>,
    length_error: Option<FramingError>,
    /// `Transfer-Encoding` seen: whether its final coding is chunked.
    chunked: Option<bool>,
    pub connection: ConnectionOptions,
}

/// The framing decision for a response from an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFraming {
    pub body: BodyLength,
    /// The connection can carry another request after this response.
    pub reusable: bool,
}

impl Framing {
    /// Notes one field line (only the framing and connection fields count).
    // Inlined: most fields are none of these, and their length says so
    // without a call (measured with bench/instructions.sh).
    #[inline]
    pub fn note(&mut self, name: &[u8], value: &[u8]) {
        if matches!(name.len(), 10 | 14 | 17) {
            self.note_field(name, value);
        }
    }

    fn note_field(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-length") {
            // A list of identical values is one value (RFC 9110 §8.6).
            for part in value.split(|&b| b == b',') {
                match parse_decimal(part.trim_ascii()) {
                    None => self.length_error = Some(FramingError::InvalidLength),
                    Some(length) if self.length.is_some_and(|seen| seen != length) => {
                        self.length_error = Some(FramingError::ConflictingLength);
                    }
                    Some(length) => self.length = Some(length),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // With several lines, the last coding of the last line is final.
            if let Some(chunked) = final_coding_is_chunked(value) {
                self.chunked = Some(chunked);
            } else if self.chunked.is_none() {
                self.chunked = Some(false);
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.connection.note(value);
        }
    }

    /// The request's body length (RFC 9112 §6.3), and whether the
    /// connection may carry another request after it. `Transfer-Encoding`
    /// overrides `Content-Length` (which the proxy then drops), and the
    /// connection closes after such a request (§6.1: it may be an attempt
    /// at request smuggling); a final coding other than chunked, an
    /// invalid or conflicting length, and `Transfer-Encoding` in HTTP/1.0
    /// are errors (400).
    pub fn request(&self, http10: bool) -> Result<(BodyLength, bool), FramingError> {
        if let Some(error) = self.length_error {
            return Err(error);
        }
        let persists = persists(http10, self.connection);
        match self.chunked {
            Some(_) if http10 => Err(FramingError::TransferEncodingInHttp10),
            Some(true) => Ok((BodyLength::Chunked, persists && self.length.is_none())),
            Some(false) => Err(FramingError::NotChunked),
            None => Ok((BodyLength::Known(self.length.unwrap_or(0)), persists)),
        }
    }

    /// The response's body length and whether its connection is reusable
    /// after it (RFC 9112 §6.3). A response to `HEAD`, and every 1xx, 204
    /// and 304, has no body whatever its fields say; a final chunked
    /// coding frames it; another coding runs to the end of the
    /// connection; an HTTP/1.0 response with `Transfer-Encoding` has
    /// faulty framing (§6.1) and so has an invalid `Content-Length`
    /// without `Transfer-Encoding` (§6.3 item 5): errors (502).
    pub fn response(
        &self,
        method: &Method,
        status: StatusCode,
        http10: bool,
    ) -> Result<ResponseFraming, FramingError> {
        if http10 && self.chunked.is_some() {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        let persists = persists(http10, self.connection);
        if !response_has_body(method, status) {
            return Ok(ResponseFraming {
                body: BodyLength::Known(0),
                reusable: persists,
            });
        }
        let body = match self.chunked {
            Some(true) => BodyLength::Chunked,
            Some(false) => BodyLength::UntilClose,
            None => match self.length_error {
                Some(error) => return Err(error),
                None => self
                    .length
                    .map_or(BodyLength::UntilClose, BodyLength::Known),
            },
        };
        Ok(ResponseFraming {
            body,
            reusable: persists && body != BodyLength::UntilClose,
        })
    }

    /// The declared `Content-Length` a response passes on: none when
    /// `Transfer-Encoding` overrides it (RFC 9112 §6.3 item 3: removed
    /// before forwarding).
    pub fn forwarded_length(&self) -> Option<u64> {
        self.length.filter(|_| self.chunked.is_none())
    }
}

/// Whether a response to `method` with `status` has a body at all (RFC
/// 9112 §6.3 items 1 and 2: not for `HEAD`, 1xx, 204, 304, nor a 2xx to
/// `CONNECT`, which starts a tunnel).
pub fn response_has_body(method: &Method, status: StatusCode) -> bool {
    !(*method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || *method == Method::CONNECT && status.is_success())
}

/// Why a request's Host is refused (400, RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("HTTP/1.1 request without Host")]
    Missing,
    #[error("more than one Host field")]
    Repeated,
    #[error("Host is not a valid uri-host[:port]")]
    Invalid,
}

/// Checks a request's Host fields (RFC 9112 §3.2): an HTTP/1.1 request
/// has exactly one, and it is a valid `uri-host [":" port]`. `hosts` are
/// the values of every Host line.
pub fn check_host<'a>(
    http10: bool,
    hosts: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), HostError> {
    let mut hosts = hosts.into_iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if http10 => Ok(()),
        (None, _) => Err(HostError::Missing),
        (Some(_), Some(_)) => Err(HostError::Repeated),
        (Some(host), None) if valid_host(host) => Ok(()),
        (Some(_), None) => Err(HostError::Invalid),
    }
}

/// `uri-host [ ":" port ]` split at its port (RFC 3986 §3.2.2, §3.2.3):
/// the host, without the brackets of an IP literal, and the port's digits
/// (empty when there is none); `None` when an IP literal's bracket is not
/// closed or something other than `:port` follows it.
pub fn split_host_port(value: &[u8]) -> Option<(&[u8], &[u8])> {
    match value.strip_prefix(b"[") {
        Some(rest) => {
            let close = rest.iter().position(|&b| b == b']')?;
            match &rest[close + 1..] {
                [] => Some((&rest[..close], &b""[..])),
                [b':', port @ ..] => Some((&rest[..close], port)),
                _ => None,
            }
        }
        None => Some(match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &b""[..]),
        }),
    }
}

/// Whether `value` is `uri-host [ ":" port ]` (RFC 3986 §3.2.2, §3.2.3),
/// empty allowed (RFC 9112 §3.2: an empty Host for a URI without
/// authority): no userinfo, path, list or whitespace.
pub fn valid_host(value: &[u8]) -> bool {
    let Some((host, port)) = split_host_port(value) else {
        return false;
    };
    let host_valid = if value.starts_with(b"[") {
        // IP-literal: brackets around an IPv6 address or IPvFuture.
        let ipv6 = !host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        let future =
            host.first() == Some(&b'v') && host.iter().all(|&b| is_reg_name_byte(b) || b == b':');
        ipv6 || future
    } else {
        host.iter().all(|&b| is_reg_name_byte(b))
    };
    host_valid && port.iter().all(u8::is_ascii_digit)
}

/// `unreserved / pct-encoded / sub-delims` (RFC 3986 §3.2.2 reg-name),
/// without the comma, which would make the Host a list.
fn is_reg_name_byte(b: u8) -> bool {
    // A table: every request's Host goes through here.
    const ALLOWED: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b';'
                        | b'='
                );
            b += 1;
        }
        table
    };
    ALLOWED[usize::from(b)]
}

/// Whether an `Expect` value asks for `100 Continue` (RFC 9110 §10.1.1;
/// the token is case-insensitive). Other expectations are ignored.
pub fn expects_continue(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"100-continue")
}

/// Whether a request asks to switch protocols (RFC 9110 §7.8): HTTP/1.1,
/// an `Upgrade` field, and `upgrade` among its `Connection` options.
/// HTTP/1.0 upgrades are ignored (a 1.0 intermediary may have forwarded
/// the field without understanding it).
pub fn wants_upgrade(http10: bool, connection: ConnectionOptions, has_upgrade_field: bool) -> bool {
    !http10 && connection.upgrade && has_upgrade_field
}

/// Whether a field may travel in a trailer section (RFC 9110 §6.5.1):
/// not those that frame or route the message, modify the request, carry
/// authentication or control the response, nor content metadata a
/// recipient needs before the content.
pub fn allowed_in_trailers(name: &[u8]) -> bool {
    const DISALLOWED: [&str; 22] = [
        "content-length",
        "transfer-encoding",
        "host",
        "trailer",
        "te",
        "connection",
        "keep-alive",
        "upgrade",
        "expect",
        "max-forwards",
        "cache-control",
        "pragma",
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "authorization",
        "proxy-authorization",
        "set-cookie",
        "content-type",
    ];
    const CONTENT_PREFIX: &[u8] = b"content-";
    let is_content_field = name.len() > CONTENT_PREFIX.len()
        && name[..CONTENT_PREFIX.len()].eq_ignore_ascii_case(CONTENT_PREFIX);
    !is_content_field
        && !DISALLOWED
            .iter()
            .any(|field| field.as_bytes().eq_ignore_ascii_case(name))
}

/// The minor version of an `HTTP/1.x` version string, when it is one.
/// Every 1.x is served as HTTP/1.1 (RFC 9112 §2.3: a recipient of a
/// higher minor version treats the message as the highest minor version
/// it conforms to).
pub fn minor_version(version: &[u8]) -> Option<u8> {
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            Some(minor - b'0')
        }
        _ => None,
    }
}

/// The connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `bytes` start (or could still start) with the HTTP/2 preface.
/// It only counts as the first bytes of a connection.
pub fn is_http2_preface(bytes: &[u8]) -> bool {
    let n = bytes.len().min(HTTP2_PREFACE.len());
    n > 0 && bytes[..n] == HTTP2_PREFACE[..n]
}

#[cfg(test)]
#[path = "semantics_tests.rs"]
mod tests;
