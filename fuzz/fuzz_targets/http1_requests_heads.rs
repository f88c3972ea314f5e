//! For the `http1_requests` target: where a request's head lies in the
//! input, read as the direct path reads it, and the rewrites that make
//! hyper read it the same way (the target's module docs list them).

use std::ops::Range;

use tracehop::http1::semantics::parse_decimal;

use super::Outcome;

/// `bytes` without the empty lines (CR and LF) in front.
pub fn without_empty_lines(bytes: &[u8]) -> &[u8] {
    let line = bytes.iter().position(|&b| b != b'\r' && b != b'\n');
    &bytes[line.unwrap_or(bytes.len())..]
}

/// The head of a request the direct path read, located in the input.
pub struct RequestHead {
    pub end: usize,
    /// Each field's name (lower case) and where its value is in the input.
    fields: Vec<(String, Range<usize>)>,
}

impl RequestHead {
    /// Where request `k` starts in the input, when tracehop's direct path
    /// served every request before it (each took its head and its body's
    /// length).
    pub fn start(input: &[u8], tracehop: &Outcome, k: usize) -> Option<usize> {
        let mut start = 0;
        for j in 0..k {
            if !*tracehop.direct.get(j)? {
                return None;
            }
            start = Self::parse(input, start)?.end + tracehop.seen[j].body.as_ref()?.len();
        }
        Some(start)
    }

    /// Parses the head at `start` as the direct path does (a minor version
    /// above 1 read as 1).
    pub fn parse(input: &[u8], start: usize) -> Option<Self> {
        let mut copy = input[start..].to_vec();
        if let Some(at) = minor_above_one(input, start) {
            copy[at - start] = b'1';
        }
        let mut slots = [httparse::EMPTY_HEADER; 100];
        let mut request = httparse::Request::new(&mut slots);
        let Ok(httparse::Status::Complete(length)) = request.parse(&copy) else {
            return None;
        };
        let base = copy.as_ptr() as usize;
        let fields = request
            .headers
            .iter()
            .map(|field| {
                let from = field.value.as_ptr() as usize - base + start;
                let name = field.name.to_ascii_lowercase();
                (name, from..from + field.value.len())
            })
            .collect();
        Some(Self {
            end: start + length,
            fields,
        })
    }

    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Range<usize>> + 'a {
        self.fields
            .iter()
            .filter(move |(field, _)| field == name)
            .map(|(_, value)| value.clone())
    }

    pub fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }
}

/// Rewrites `input` (in place, same length) the way tracehop's direct
/// path reads the head at `start` when it serves it; what it rewrote,
/// when it did.
pub fn rewrite(input: &mut [u8], start: usize) -> Option<&'static str> {
    let head = RequestHead::parse(input, start)?;
    // obs-text first: hyper ignores a whole `Connection` value that has it.
    if let Some(reason) = crate::differences::mask_obs_text(input, head.values("connection")) {
        return Some(reason);
    }
    let mut rewrote = false;
    for value in head.values("content-length") {
        if let Some(length) = identical_list(&input[value.clone()]) {
            let mut text = length.to_string().into_bytes();
            text.resize(value.len(), b' ');
            input[value].copy_from_slice(&text);
            rewrote = true;
        }
    }
    rewrote.then_some("RFC 9110 §8.6: a list of identical lengths is that length")
}

/// Where the minor version digit of the request line at `start` is, when
/// the line (as far as it goes: the direct path reads the version as soon
/// as it arrives) ends in `HTTP/1.x` with x > 1.
pub fn minor_above_one(input: &[u8], start: usize) -> Option<usize> {
    let rest = &input[start..];
    let line = rest.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.len().checked_sub(8)?;
    matches!(
        &line[version..],
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9']
    )
    .then_some(start + version + 7)
}

/// The value of a `Content-Length` list whose elements are all the same
/// valid length (and which is a list: it has a comma).
fn identical_list(value: &[u8]) -> Option<u64> {
    if !value.contains(&b',') {
        return None;
    }
    let mut lengths = value
        .split(|&b| b == b',')
        .map(|v| parse_decimal(v.trim_ascii()));
    let first = lengths.next()??;
    lengths.all(|l| l == Some(first)).then_some(first)
}
