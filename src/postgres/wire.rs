//! PostgreSQL v3 wire framing (docs §55.2 "Message Flow", §55.7 "Message
//! Formats"), read alongside a byte stream the relay forwards unchanged.
//!
//! After the startup packet every message is a type byte, an `Int32`
//! length that counts itself, and a body. [`Framer`] finds those
//! boundaries in whatever chunks the socket returns and keeps, of the
//! messages the caller asks for, only the first `limit` bytes of the body:
//! memory stays bounded whatever the peers send (a 100 MB `DataRow` costs
//! nothing), and the bytes forwarded are never touched.
//! The startup phase (untyped packets: `StartupMessage`, `SSLRequest`,
//! `GSSENCRequest`, `CancelRequest`) is read whole by [`read_startup`],
//! bounded as the server bounds it.

use tokio::io::{AsyncRead, AsyncReadExt};

/// `SSLRequest` code (§55.7): answered `N`, the client goes on in plaintext.
pub const SSL_REQUEST: u32 = 80_877_103;
/// `GSSENCRequest` code (§55.7): answered `N` likewise.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// `CancelRequest` code (§55.2.8): forwarded on a connection of its own.
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// The server's own bound on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_BYTES: usize = 10_000;

/// Why the startup packet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("reading the startup packet: {0}")]
    Io(#[from] std::io::Error),
    #[error("startup packet length {0} is outside 8..={MAX_STARTUP_BYTES}")]
    Length(usize),
}

/// One untyped startup-phase packet, whole (length prefix included).
#[derive(Debug)]
pub struct StartupPacket {
    pub bytes: Vec<u8>,
}

impl StartupPacket {
    /// The request code or protocol version (the `Int32` after the length).
    pub fn code(&self) -> u32 {
        read_u32(&self.bytes[4..8])
    }

    /// The value of `name` among a `StartupMessage`'s parameters
    /// (`user`, `database`, …: NUL-terminated pairs after the version).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        let mut fields = self.bytes[8..].split(|&b| b == 0);
        while let Some(key) = fields.next() {
            let value = fields.next()?;
            if key.is_empty() {
                return None;
            }
            if key == name.as_bytes() {
                return std::str::from_utf8(value).ok();
            }
        }
        None
    }
}

/// Reads one startup-phase packet; `Ok(None)` when the client closed first.
pub async fn read_startup(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<Option<StartupPacket>, StartupError> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = read_u32(&length) as usize;
    if !(8..=MAX_STARTUP_BYTES).contains(&len) {
        return Err(StartupError::Length(len));
    }
    let mut bytes = vec![0; len];
    bytes[..4].copy_from_slice(&length);
    reader.read_exact(&mut bytes[4..]).await?;
    Ok(Some(StartupPacket { bytes }))
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Where the framer is in the stream.
#[derive(Debug)]
enum State {
    /// Reading the 5-byte header; `filled` bytes of it so far.
    Header { header: [u8; 5], filled: usize },
    /// Inside a body: `left` bytes to go.
    Body { kind: u8, left: usize },
    /// A length under 4 broke the framing: the relay goes on, the framer
    /// stops (its messages are no longer known).
    Lost,
}

/// Finds message boundaries in a typed-message stream and hands the
/// wanted messages, their bodies cut at a limit, to a callback.
#[derive(Debug)]
pub struct Framer {
    state: State,
    /// The body limit for a message type; 0 = not wanted.
    limit: fn(u8) -> usize,
    body: Vec<u8>,
}

impl Framer {
    /// A framer keeping `limit(kind)` body bytes of each message.
    pub fn new(limit: fn(u8) -> usize) -> Self {
        Self {
            state: State::Header {
                header: [0; 5],
                filled: 0,
            },
            limit,
            body: Vec::new(),
        }
    }

    /// Whether the framing was lost (a malformed length).
    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Reads `chunk`; for each wanted message that ends in it, calls
    /// `message(kind, body prefix)`.
    pub fn feed(&mut self, mut chunk: &[u8], mut message: impl FnMut(u8, &[u8])) {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Lost => return,
                State::Header { header, filled } => {
                    let n = (5 - *filled).min(chunk.len());
                    header[*filled..*filled + n].copy_from_slice(&chunk[..n]);
                    *filled += n;
                    chunk = &chunk[n..];
                    if *filled < 5 {
                        return;
                    }
                    let (kind, len) = (header[0], read_u32(&header[1..5]) as usize);
                    if len < 4 {
                        self.state = State::Lost;
                        return;
                    }
                    self.body.clear();
                    self.state = State::Body {
                        kind,
                        left: len - 4,
                    };
                }
                State::Body { kind, left } => {
                    let n = (*left).min(chunk.len());
                    let room = (self.limit)(*kind).saturating_sub(self.body.len());
                    self.body.extend_from_slice(&chunk[..n.min(room)]);
                    *left -= n;
                    chunk = &chunk[n..];
                    if *left > 0 {
                        return;
                    }
                }
            }
            // A whole body read (or an empty one): the message is complete.
            if let State::Body { kind, left: 0 } = self.state {
                self.state = State::Header {
                    header: [0; 5],
                    filled: 0,
                };
                if (self.limit)(kind) > 0 {
                    message(kind, &self.body);
                }
            }
        }
    }
}

/// The first NUL-terminated string of `body` and what follows it.
pub fn cstr(body: &[u8]) -> (&[u8], &[u8]) {
    match body.iter().position(|&b| b == 0) {
        Some(at) => (&body[..at], &body[at + 1..]),
        None => (body, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn frames(stream: &[u8], chunk: usize, limit: fn(u8) -> usize) -> Vec<(u8, Vec<u8>)> {
        let mut framer = Framer::new(limit);
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            framer.feed(piece, |kind, body| out.push((kind, body.to_vec())));
        }
        out
    }

    #[test]
    fn finds_messages_in_any_chunking_and_cuts_bodies_at_the_limit() {
        let mut stream = message(b'Q', b"SELECT 1\0");
        stream.extend(message(b'D', &[7; 1000]));
        stream.extend(message(b'S', b""));
        stream.extend(message(b'Q', b"SELECT 2\0"));
        let limit = |kind| match kind {
            b'Q' => 6,
            b'S' => 1,
            _ => 0,
        };
        let expected = vec![
            (b'Q', b"SELECT".to_vec()),
            (b'S', Vec::new()),
            (b'Q', b"SELECT".to_vec()),
        ];
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(frames(&stream, chunk, limit), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn a_length_under_four_loses_the_framing_without_panicking() {
        let mut stream = vec![b'Q', 0, 0, 0, 2];
        stream.extend(message(b'Q', b"x\0"));
        let mut framer = Framer::new(|_| 16);
        let mut seen = 0;
        framer.feed(&stream, |_, _| seen += 1);
        assert!(framer.is_lost());
        assert_eq!(seen, 0);
    }

    #[tokio::test]
    async fn startup_packets_are_bounded_and_expose_parameters() {
        let mut packet = Vec::new();
        let body = b"\0\x03\0\0user\0app\0database\0shop\0\0";
        packet.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        packet.extend_from_slice(body);
        let read = read_startup(&mut &packet[..]).await.unwrap().unwrap();
        assert_eq!(read.code(), 196_608);
        assert_eq!(read.parameter("database"), Some("shop"));
        assert_eq!(read.parameter("user"), Some("app"));
        assert_eq!(read.parameter("options"), None);
        let huge = (MAX_STARTUP_BYTES as u32 + 1).to_be_bytes();
        assert!(matches!(
            read_startup(&mut &huge[..]).await,
            Err(StartupError::Length(_))
        ));
        assert!(read_startup(&mut &[][..]).await.unwrap().is_none());
    }
}
