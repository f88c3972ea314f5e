//! Field lines and chunk framing as written on the wire (RFC 9112 §5,
//! §7.1), and [`RawFields`], a response head passed on without a header
//! map.

use std::io::Write as _;
use std::ops::Range;

use bytes::Bytes;

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
/// [`RawFields::move_into`]. (They travel with the body rather than in the
/// response's extensions, whose map would cost three allocations.) Framing (`Content-Length`) and fields about the
/// connection are not among the lines: the writer frames the body itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawFields {
    /// `name: value\r\n` each, names as received.
    lines: Vec<u8>,
    /// Where the first fields start and how long their names are, so that
    /// reading the fields needs no scan of the lines (a field ends where
    /// the next starts).
    index: [(u16, u16); INDEXED],
    fields: usize,
    /// A field of the first [`INDEXED`] did not fit the index (lines past
    /// 64 KiB): the lines are read instead.
    unindexed: bool,
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
    /// NUL (as a parser such as httparse guarantees).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.date |= name.eq_ignore_ascii_case(b"date");
        if let Some(slot) = self.index.get_mut(self.fields) {
            match (u16::try_from(self.lines.len()), u16::try_from(name.len())) {
                (Ok(start), Ok(len)) => *slot = (start, len),
                _ => self.unindexed = true,
            }
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
        self.ranges()
            .map(|(name, value)| (&self.lines[name], &self.lines[value]))
    }

    /// The index of every field, when it holds them all.
    fn full_index(&self) -> Option<&[(u16, u16)]> {
        (self.fields <= INDEXED && !self.unindexed).then(|| &self.index[..self.fields])
    }

    fn ranges(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
        field_ranges(&self.lines, self.full_index())
    }

    /// The first value of the field `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        let name = name.as_str().as_bytes();
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Moves the fields (and the declared length) into `headers`, for a
    /// writer that needs a header map (hyper's HTTP/2 and HTTP/1.1).
    ///
    /// Why: behind an HTTP/2 downstream this runs for every response. The
    /// values share the lines' buffer rather than each being copied into
    /// an allocation of its own, and the fields are found through the
    /// index rather than by reading the lines again: 3,661 -> 2,770
    /// instructions per response of the benchmark's upstream, the rest
    /// being the header map's own inserts (callgrind, h2c; bench/README).
    pub fn move_into(self, headers: &mut HeaderMap) {
        let indexed = self.full_index().map(<[_]>::len);
        let RawFields {
            lines,
            index,
            content_length,
            ..
        } = self;
        let lines = Bytes::from(lines);
        for (name, value) in field_ranges(&lines, indexed.map(|n| &index[..n])) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&lines[name]),
                HeaderValue::from_maybe_shared(lines.slice(value)),
            ) {
                headers.append(name, value);
            }
        }
        if let Some(length) = content_length {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
}

/// Where each field's name and value are in `lines`, in order: from
/// `index` (every field's start and name length) when there is one, a
/// field ending where the next starts; else by reading the lines.
fn field_ranges<'a>(
    lines: &'a [u8],
    index: Option<&'a [(u16, u16)]>,
) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + 'a {
    let indexed = index.map(|starts| {
        starts.iter().enumerate().map(move |(i, &(start, len))| {
            let name = usize::from(start)..usize::from(start) + usize::from(len);
            // The next field's start, less this line's `\r\n`.
            let end = starts
                .get(i + 1)
                .map_or(lines.len(), |&(next, _)| usize::from(next))
                - 2;
            let value = trimmed(lines, name.end + 2..end);
            (name, value)
        })
    });
    let mut start = 0;
    let read = index.is_none().then_some(std::iter::from_fn(move || {
        while start < lines.len() {
            let line = start;
            let end = lines[line..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(lines.len(), |at| line + at);
            start = end + 1;
            let Some(text) = lines[line..end].strip_suffix(b"\r") else {
                continue;
            };
            let Some(colon) = text.iter().position(|&b| b == b':') else {
                continue;
            };
            let value = trimmed(lines, line + colon + 1..line + text.len());
            return Some((line..line + colon, value));
        }
        None
    }));
    indexed
        .into_iter()
        .flatten()
        .chain(read.into_iter().flatten())
}

/// `range` of `lines` without the whitespace at either end.
fn trimmed(lines: &[u8], range: Range<usize>) -> Range<usize> {
    let value = &lines[range.clone()];
    let start = value.len() - value.trim_ascii_start().len();
    let end = value.trim_ascii_end().len();
    if start >= end {
        return range.start..range.start;
    }
    range.start + start..range.start + end
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
        raw.clone().move_into(&mut map);
        assert_eq!(map.get_all(http::header::SET_COOKIE).iter().count(), 2);
        assert_eq!(map["content-length"], "12");
        assert_eq!(map["server"], "app");
        assert_eq!(map.len(), 6 + INDEXED + 1);
    }

    /// Every field's name and value, as `iter` reads them.
    fn pairs(raw: &RawFields) -> Vec<(String, String)> {
        raw.iter()
            .map(|(name, value)| {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (text(name), text(value))
            })
            .collect()
    }

    #[test]
    fn the_index_and_the_lines_read_the_same_fields() {
        let mut indexed = RawFields::default();
        let mut pushed = Vec::new();
        for (name, value) in [
            ("Server", "app"),
            ("x-empty", ""),
            ("x-padded", " spaced out\t"),
            ("Set-Cookie", "a=1; Path=/"),
            ("set-cookie", "b=2"),
        ] {
            indexed.push(name.as_bytes(), value.as_bytes());
            pushed.push((name.to_owned(), value.trim().to_owned()));
        }
        assert!(indexed.full_index().is_some());
        assert_eq!(pairs(&indexed), pushed);
        // The same lines read without the index.
        let lines = &indexed.lines;
        let read: Vec<_> = field_ranges(lines, None)
            .map(|(name, value)| (&lines[name], &lines[value]))
            .collect();
        assert_eq!(read, indexed.iter().collect::<Vec<_>>());

        // A first field of 70,000 bytes: the next one starts past what the
        // index holds, so the lines are read.
        let mut long = RawFields::default();
        long.push(b"x-big", &vec![b'v'; 70_000]);
        long.push(b"ETag", b"\"7\"");
        assert!(long.full_index().is_none());
        assert_eq!(long.get(&http::header::ETAG), Some(&b"\"7\""[..]));
        assert_eq!(pairs(&long)[0].1.len(), 70_000);
    }

    #[test]
    fn fields_moved_into_a_header_map_share_the_lines() {
        for count in [3, INDEXED + 4] {
            let mut raw = RawFields::default();
            for i in 0..count {
                raw.push(
                    format!("x-{i}").as_bytes(),
                    format!(" value {i} ").as_bytes(),
                );
            }
            raw.push(b"set-cookie", b"a=1");
            raw.push(b"Set-Cookie", b"b=2");
            raw.content_length = Some(5);
            let buffer = raw.lines.as_ptr_range();
            let mut map = HeaderMap::new();
            raw.move_into(&mut map);
            assert_eq!(map.len(), count + 3, "{count} fields");
            for i in 0..count {
                let value = &map[format!("x-{i}").as_str()];
                assert_eq!(value, format!("value {i}").as_str());
                assert!(buffer.contains(&value.as_bytes().as_ptr()), "not copied");
            }
            let cookies: Vec<_> = map.get_all(http::header::SET_COOKIE).iter().collect();
            assert_eq!(cookies, ["a=1", "b=2"]);
            assert_eq!(map[http::header::CONTENT_LENGTH], "5");
        }
    }

    #[test]
    fn chunk_sizes_are_lower_case_hex() {
        let mut out = Vec::new();
        encode_chunk_size(&mut out, 0x1fa0);
        assert_eq!(out, b"1fa0\r\n");
    }
}
