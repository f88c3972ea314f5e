//! Field lines and chunk framing as written on the wire (RFC 9112 §5,
//! §7.1), and [`RawFields`], a response head passed on without a header
//! map.

use std::io::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};

/// A response's end-to-end header fields as field lines, carried by the
/// response body ([`ResponseFields`]) instead of in its header map.
///
/// A proxy that read the response head off an HTTP/1.1 connection has the
/// fields as lines already; building a header map (a hashed insert and a
/// validated name and value per field) only for the server to write the
/// same lines again costs more than the rest of the response. The server
/// writes these lines as they are after the map's own fields (none, as a
/// rule), the HTTP/1.1 fast path directly, hyper's path through
/// [`RawFields::append_to`]. (They travel with the body rather than in the
/// response's extensions, whose map would cost three allocations.) Framing (`Content-Length`) and fields about the
/// connection are not among the lines: the writer frames the body itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawFields {
    /// `name: value\r\n` each, names as received.
    lines: Vec<u8>,
    /// Where the first fields start and how long their names are, so a
    /// lookup compares lengths instead of scanning the lines.
    index: [(u16, u16); INDEXED],
    fields: usize,
    /// The `Content-Length` the head declared (framing for `HEAD`).
    pub content_length: Option<u64>,
    /// Whether a `Date` field is among the lines.
    pub date: bool,
}

/// Fields indexed for lookups; a lookup past them scans the lines.
const INDEXED: usize = 16;

impl RawFields {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            lines: Vec::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// Adds a field. `name` must be a token and `value` free of CR, LF and
    /// NUL (as a parser such as httparse guarantees), the whole under 64 KiB.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.date |= name.eq_ignore_ascii_case(b"date");
        if let (Some(slot), Ok(start), Ok(len)) = (
            self.index.get_mut(self.fields),
            u16::try_from(self.lines.len()),
            u16::try_from(name.len()),
        ) {
            *slot = (start, len);
        }
        self.fields += 1;
        self.lines.extend_from_slice(name);
        self.lines.extend_from_slice(b": ");
        self.lines.extend_from_slice(value);
        self.lines.extend_from_slice(b"\r\n");
    }

    /// The field lines, ready to write.
    pub fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// Each field's name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines
            .split(|&b| b == b'\n')
            .filter_map(|line| line.strip_suffix(b"\r"))
            .filter_map(|line| {
                let colon = line.iter().position(|&b| b == b':')?;
                Some((&line[..colon], line[colon + 1..].trim_ascii()))
            })
    }

    /// The first value of the field `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        let name = name.as_str().as_bytes();
        if self.fields > INDEXED {
            return self
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, value)| value);
        }
        self.index[..self.fields].iter().find_map(|&(start, len)| {
            let (start, len) = (usize::from(start), usize::from(len));
            if len != name.len() || !self.lines[start..start + len].eq_ignore_ascii_case(name) {
                return None;
            }
            let value = &self.lines[start + len + 2..];
            let end = value.iter().position(|&b| b == b'\r')?;
            Some(&value[..end])
        })
    }

    /// Appends the fields (and the declared length) to `headers`, for a
    /// writer that needs a header map.
    pub fn append_to(&self, headers: &mut HeaderMap) {
        for (name, value) in self.iter() {
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                headers.append(name, value);
            }
        }
        if let Some(length) = self.content_length {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
}

/// A response body that may carry its response's fields as lines.
pub trait ResponseFields {
    /// The fields the body carries, if any.
    fn fields(&self) -> Option<&RawFields> {
        None
    }

    /// Takes the fields out, for the server to write.
    fn take_fields(&mut self) -> Option<RawFields> {
        None
    }
}

impl<D, E> ResponseFields for http_body_util::combinators::BoxBody<D, E> {}
impl<D, E> ResponseFields for http_body_util::combinators::UnsyncBoxBody<D, E> {}
impl<D> ResponseFields for http_body_util::Full<D> {}
impl<D> ResponseFields for http_body_util::Empty<D> {}
impl ResponseFields for hyper::body::Incoming {}

impl<L: ResponseFields, R: ResponseFields> ResponseFields for http_body_util::Either<L, R> {
    fn fields(&self) -> Option<&RawFields> {
        match self {
            Self::Left(body) => body.fields(),
            Self::Right(body) => body.fields(),
        }
    }

    fn take_fields(&mut self) -> Option<RawFields> {
        match self {
            Self::Left(body) => body.take_fields(),
            Self::Right(body) => body.take_fields(),
        }
    }
}

/// Looking up a response field, wherever the response keeps its fields.
pub trait FieldLookup {
    fn field(&self, name: &HeaderName) -> Option<&[u8]>;
}

impl FieldLookup for HeaderMap {
    fn field(&self, name: &HeaderName) -> Option<&[u8]> {
        self.get(name).map(HeaderValue::as_bytes)
    }
}

impl<B: ResponseFields> FieldLookup for http::Response<B> {
    fn field(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers()
            .field(name)
            .or_else(|| self.body().fields().and_then(|raw| raw.get(name)))
    }
}

/// Writes one field line.
pub fn encode_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes a `Content-Length` field line.
pub fn encode_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes the size line that opens a chunk of `len` bytes (§7.1).
pub fn encode_chunk_size(out: &mut Vec<u8>, len: usize) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_fields_keep_their_lines_and_answer_lookups() {
        let mut raw = RawFields::with_capacity(64);
        raw.push(b"Server", b"app");
        raw.push(b"Date", b"Tue, 01 Dec 2026 10:00:00 GMT");
        raw.push(b"grpc-status", b"0");
        raw.push(b"Set-Cookie", b"a=1");
        raw.push(b"set-cookie", b"b=2");
        raw.content_length = Some(12);
        assert!(raw.date);
        assert_eq!(
            raw.lines(),
            b"Server: app\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\ngrpc-status: 0\r\n\
              Set-Cookie: a=1\r\nset-cookie: b=2\r\n"
        );
        assert_eq!(
            raw.get(&HeaderName::from_static("grpc-status")),
            Some(&b"0"[..])
        );
        assert_eq!(raw.get(&http::header::SET_COOKIE), Some(&b"a=1"[..]));
        assert_eq!(raw.get(&http::header::ETAG), None);
        // Past the indexed fields, lookups scan.
        for i in 0..INDEXED {
            raw.push(format!("x-{i}").as_bytes(), b"v");
        }
        raw.push(b"X-Late", b"late");
        assert_eq!(
            raw.get(&HeaderName::from_static("x-late")),
            Some(&b"late"[..])
        );
        assert_eq!(
            raw.get(&HeaderName::from_static("grpc-status")),
            Some(&b"0"[..])
        );
        let mut map = HeaderMap::new();
        raw.append_to(&mut map);
        assert_eq!(map.get_all(http::header::SET_COOKIE).iter().count(), 2);
        assert_eq!(map["content-length"], "12");
        assert_eq!(map["server"], "app");
        assert_eq!(map.len(), 6 + INDEXED + 1);
    }

    #[test]
    fn chunk_sizes_are_lower_case_hex() {
        let mut out = Vec::new();
        encode_chunk_size(&mut out, 0x1fa0);
        assert_eq!(out, b"1fa0\r\n");
    }
}
