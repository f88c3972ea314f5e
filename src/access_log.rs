//! The access log, written off the request path.
//!
//! A request's line is formatted into a shared buffer (one short lock, no
//! syscall); the buffer goes to a writer thread when it holds
//! [`FLUSH_BYTES`], and the writer also takes whatever is buffered every
//! [`FLUSH_INTERVAL`], like nginx's `access_log ... buffer=64k flush=1s`.
//! Writing one line per request straight to stderr cost about a fifth of
//! the throughput (a `write` per request, and the formatting of a tracing
//! event). A writer that cannot keep up loses whole buffers, counted, never
//! a request's time: at most [`MAX_PENDING`] buffers wait for it.
//!
//! Lines go to stderr with the other logs, in the same format
//! (`log.format`): `text` as tracing's, without colours, or one JSON object
//! per line. `TRACEHOP_LOG` / `log.level` can turn them off like any other
//! log target (`tracehop::access`).

use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;
use crate::span::{SpanId, TraceId};

/// A buffer goes to the writer once it holds this much.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// The writer takes a partly filled buffer after this long.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Full buffers waiting for the writer, at most (4 MiB of lines).
pub const MAX_PENDING: usize = 64;

/// One request, as the access log says it.
pub struct Line<'a> {
    pub direction: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_us: u64,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
    pub error: Option<&'a str>,
}

/// The request path's handle: formats lines into the shared buffer.
pub struct AccessLog {
    format: LogFormat,
    buffer: Mutex<Vec<u8>>,
    to_writer: SyncSender<Vec<u8>>,
    /// Lines lost because the writer fell behind.
    dropped: AtomicU64,
}

/// The thread that writes the buffers; [`Writer::stop`] flushes and joins it.
pub struct Writer {
    thread: Option<JoinHandle<()>>,
    log: std::sync::Arc<AccessLog>,
}

/// An access log writing to `out` (stderr in the sidecar) in `format`.
pub fn start(
    format: LogFormat,
    out: impl Write + Send + 'static,
) -> (std::sync::Arc<AccessLog>, Writer) {
    let (to_writer, from_log) = std::sync::mpsc::sync_channel(MAX_PENDING);
    let log = std::sync::Arc::new(AccessLog {
        format,
        buffer: Mutex::new(Vec::with_capacity(FLUSH_BYTES + 1024)),
        to_writer,
        dropped: AtomicU64::new(0),
    });
    let writing = log.clone();
    let thread = std::thread::Builder::new()
        .name("tracehop-access-log".into())
        .spawn(move || write_until_stopped(&writing, from_log, out))
        .expect("the access log thread starts");
    let writer = Writer {
        thread: Some(thread),
        log: log.clone(),
    };
    (log, writer)
}

impl AccessLog {
    /// Adds one line; hands the buffer to the writer when it is full.
    pub fn record(&self, line: &Line<'_>) {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        match self.format {
            LogFormat::Text => text(&mut buffer, line),
            LogFormat::Json => json(&mut buffer, line),
        }
        if buffer.len() >= FLUSH_BYTES {
            let full = std::mem::replace(&mut *buffer, Vec::with_capacity(FLUSH_BYTES + 1024));
            drop(buffer);
            self.hand_over(full);
        }
    }

    /// Lines lost so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn hand_over(&self, full: Vec<u8>) {
        if let Err(TrySendError::Full(lost) | TrySendError::Disconnected(lost)) =
            self.to_writer.try_send(full)
        {
            let lines = lost.iter().filter(|&&b| b == b'\n').count() as u64;
            self.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Writer {
    /// Writes what is buffered and stops the thread (at shutdown).
    pub fn stop(mut self) {
        let rest = self.log.take();
        // An empty buffer tells the thread to stop after what is queued.
        let _ = self.log.to_writer.send(rest);
        let _ = self.log.to_writer.send(Vec::new());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_until_stopped(log: &AccessLog, from_log: Receiver<Vec<u8>>, mut out: impl Write) {
    let mut reported = 0;
    loop {
        let buffer = match from_log.recv_timeout(FLUSH_INTERVAL) {
            Ok(buffer) if buffer.is_empty() => break,
            Ok(buffer) => buffer,
            Err(RecvTimeoutError::Timeout) => log.take(),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if !buffer.is_empty() {
            let _ = out.write_all(&buffer);
            let _ = out.flush();
        }
        let dropped = log.dropped();
        if dropped > reported {
            tracing::warn!(
                lines = dropped - reported,
                "access log lines dropped: the log output is slower than the requests"
            );
            reported = dropped;
        }
    }
    let _ = out.flush();
}

/// `2026-12-06T05:51:49.123456Z  INFO tracehop::access: direction=inbound ...`,
/// tracing's text format without colours.
///
/// Both formats write bytes directly (no `core::fmt`): formatting a line
/// through `write!` cost about 3,500 instructions per request, a tenth of
/// the proxy's own work (callgrind, `bench/instructions.sh` with the
/// access-log config).
fn text(out: &mut Vec<u8>, line: &Line<'_>) {
    timestamp(out, SystemTime::now());
    out.extend_from_slice(b"  INFO tracehop::access:");
    fields(out, line, |out, key, value| {
        out.extend_from_slice(key.text.as_bytes());
        match value {
            // Tokens, ids and numbers as they are; free text quoted.
            Value::Token(token) => out.extend_from_slice(token.as_bytes()),
            Value::Text(text) => quoted(out, text),
            Value::Id(bytes) | Value::Number(bytes) => out.extend_from_slice(bytes),
        }
    });
    out.push(b'\n');
}

/// One JSON object per line, the fields of tracing's JSON format.
fn json(out: &mut Vec<u8>, line: &Line<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, SystemTime::now());
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"tracehop::access\"");
    fields(out, line, |out, key, value| {
        out.extend_from_slice(key.json.as_bytes());
        match value {
            Value::Token(text) | Value::Text(text) => quoted(out, text),
            Value::Id(hex) => {
                out.push(b'"');
                out.extend_from_slice(hex);
                out.push(b'"');
            }
            Value::Number(bytes) => out.extend_from_slice(bytes),
        }
    });
    out.extend_from_slice(b"}\n");
}

/// One field's value, by how each format writes it.
enum Value<'a> {
    /// A word without spaces or quotes (a string in JSON).
    Token(&'a str),
    /// Free text: quoted and escaped in both formats.
    Text(&'a str),
    /// Hex digits: a string in JSON, needing no escape.
    Id(&'a [u8]),
    /// A number or boolean, written out: as it is in both formats.
    Number(&'a [u8]),
}

/// A field's name as each format writes it before the value: `␣name=`
/// and `,"name":`, spelled out at compile time (one copy per field
/// instead of three writes, a fifth of a line's cost).
#[derive(Clone, Copy)]
struct Key {
    text: &'static str,
    json: &'static str,
}

macro_rules! key {
    ($name:literal) => {
        Key {
            text: concat!(" ", $name, "="),
            json: concat!(",\"", $name, "\":"),
        }
    };
}

/// The access line's fields in order, each handed to `write`.
fn fields(out: &mut Vec<u8>, line: &Line<'_>, mut write: impl FnMut(&mut Vec<u8>, Key, Value<'_>)) {
    let mut number = itoa::Buffer::new();
    write(out, key!("direction"), Value::Token(line.direction));
    write(out, key!("method"), Value::Token(line.method));
    write(out, key!("path"), Value::Text(line.path));
    let status = number.format(line.status).as_bytes();
    write(out, key!("status"), Value::Number(status));
    let mut millis = [0u8; 24];
    let millis = milliseconds(&mut millis, line.duration_us);
    write(out, key!("duration_ms"), Value::Number(millis));
    write(out, key!("trace_id"), Value::Id(&line.trace_id.to_hex()));
    write(out, key!("span_id"), Value::Id(&line.span_id.to_hex()));
    let sampled: &[u8] = if line.sampled { b"true" } else { b"false" };
    write(out, key!("sampled"), Value::Number(sampled));
    if let Some(error) = line.error {
        write(out, key!("error"), Value::Text(error));
    }
}

/// `text` as a JSON string (also the text format's quoting: escapes for
/// quotes, backslashes and control characters, so a line stays one line).
fn quoted(out: &mut Vec<u8>, text: &str) {
    crate::export::json::write_str(out, text);
}

/// Microseconds as milliseconds, the shortest decimal that says them
/// exactly (`1.234`, `0.5`, `12`), as a float prints.
fn milliseconds(buf: &mut [u8; 24], duration_us: u64) -> &[u8] {
    let mut whole = itoa::Buffer::new();
    let whole = whole.format(duration_us / 1000).as_bytes();
    buf[..whole.len()].copy_from_slice(whole);
    let mut len = whole.len();
    let mut fraction = duration_us % 1000;
    if fraction != 0 {
        buf[len] = b'.';
        len += 1;
        let mut divisor = 100;
        while fraction != 0 {
            buf[len] = b'0' + (fraction / divisor) as u8;
            len += 1;
            fraction %= divisor;
            divisor /= 10;
        }
    }
    &buf[..len]
}

/// RFC 3339 in UTC with microseconds: `2026-12-06T05:51:49.123456Z`. The
/// part up to the second is made once per second (per thread) and copied.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (at, mut text) = SECOND.get();
    if at != seconds {
        text = date_and_time(seconds);
        SECOND.set((seconds, text));
    }
    out.extend_from_slice(&text);
    let mut micros = [0; 6];
    digits(&mut micros, u64::from(since.subsec_micros()));
    out.extend_from_slice(&micros);
    out.push(b'Z');
}

/// `2026-12-06T05:51:49.` for a second since the epoch.
fn date_and_time(seconds: u64) -> [u8; 20] {
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    let mut text = *b"0000-00-00T00:00:00.";
    digits(&mut text[0..4], year.clamp(0, 9999) as u64);
    digits(&mut text[5..7], u64::from(month));
    digits(&mut text[8..10], u64::from(day));
    digits(&mut text[11..13], of_day / 3600);
    digits(&mut text[14..16], of_day / 60 % 60);
    digits(&mut text[17..19], of_day % 60);
    text
}

/// `value` in decimal, zero-padded to fill `out` (`value` fits).
fn digits(out: &mut [u8], mut value: u64) {
    for at in out.iter_mut().rev() {
        *at = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(error: Option<&str>) -> Line<'_> {
        Line {
            direction: "inbound",
            method: "GET",
            path: "/users/\"7\"",
            status: 200,
            duration_us: 1234,
            trace_id: TraceId::parse_hex(b"4bf92f3577b34da6a3ce929d0e0e4736", false).unwrap(),
            span_id: SpanId::parse_hex(b"00f067aa0ba902b7").unwrap(),
            sampled: true,
            error,
        }
    }

    #[test]
    fn milliseconds_print_as_the_float_they_are() {
        let mut buf = [0u8; 24];
        for us in (0..20_000).chain([999_999, 1_000_001, 123_456_789, 86_400_000_000]) {
            let written = milliseconds(&mut buf, us);
            assert_eq!(
                std::str::from_utf8(written).unwrap(),
                format!("{}", us as f64 / 1000.0),
                "{us} µs"
            );
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut out = Vec::new();
        timestamp(
            &mut out,
            UNIX_EPOCH + Duration::from_micros(1_796_534_249_245_702),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-06T05:17:29.245702Z"
        );
        let mut out = Vec::new();
        timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(951_782_400)); // a leap day
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn lines_wait_in_the_buffer_until_it_fills_or_the_log_stops() {
        let out = Shared::default();
        let (log, writer) = start(LogFormat::Json, out.clone());
        log.record(&line(Some("upstream \"x\" failed")));
        assert!(out.0.lock().unwrap().is_empty(), "not written per request");
        let per_line = {
            let mut one = Vec::new();
            json(&mut one, &line(None));
            one.len()
        };
        for _ in 0..FLUSH_BYTES / per_line + 1 {
            log.record(&line(None));
        }
        writer.stop();
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines.len(), FLUSH_BYTES / per_line + 2);
        assert_eq!(lines[0]["error"], "upstream \"x\" failed");
        assert_eq!(lines[0]["path"], "/users/\"7\"");
        assert_eq!(lines[0]["status"], 200);
        assert_eq!(lines[0]["duration_ms"], 1.234);
        assert_eq!(lines[0]["target"], "tracehop::access");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn the_text_format_is_one_line_like_the_other_logs() {
        let mut out = Vec::new();
        text(&mut out, &line(Some("bad\nthing")));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.contains(
            "  INFO tracehop::access: direction=inbound method=GET path=\"/users/\\\"7\\\"\" status=200 duration_ms=1.234 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 sampled=true error=\"bad\\nthing\"\n"
        ), "{text}");
    }
}
