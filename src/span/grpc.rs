//! gRPC calls, as OpenTelemetry's RPC semantic conventions describe them
//! (`docs/rpc/grpc.md`): the one place that says whether a request is a
//! gRPC call, which service and method it names, what its status is, and
//! whether that status fails the span.
//!
//! Owns [`GrpcCall`]. The wire facts come from gRPC over HTTP/2
//! (grpc/grpc `doc/PROTOCOL-HTTP2.md`): the request's `content-type` starts
//! with `application/grpc` (`+proto`, `+json`, …; gRPC-Web's
//! `application/grpc-web` too); its `:path` is `/{service}/{method}` with
//! the service fully qualified (`helloworld.Greeter`); the status is
//! `grpc-status` in the trailers, or in the headers of a response without
//! a body ("Trailers-Only").

use http::{HeaderMap, HeaderName};

use super::Kind;

/// The status field, in trailers or in a Trailers-Only response's headers.
pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// `OK`: the only status that is never an error.
const OK: u32 = 0;
/// The codes OpenTelemetry counts as a SERVER span's error (`docs/rpc/grpc.md`,
/// the server span's status codes): `UNKNOWN`, `DEADLINE_EXCEEDED`,
/// `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`. The others
/// (`NOT_FOUND`, `INVALID_ARGUMENT`, …) are the caller's problem, so only
/// the CLIENT span fails for them.
const SERVER_ERRORS: [u32; 6] = [2, 4, 12, 13, 14, 15];

/// What is known of one gRPC call; a request that is not a gRPC call has
/// none (`HttpFacts::grpc` is `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrpcCall {
    /// `grpc-status`, once the response carried a valid one.
    pub status: Option<u32>,
}

impl GrpcCall {
    /// A call when `request_headers` say the request is gRPC (see
    /// [`is_grpc`]), with no status yet.
    pub fn of_request(request_headers: &HeaderMap) -> Option<GrpcCall> {
        is_grpc(request_headers).then_some(GrpcCall { status: None })
    }

    /// Records a `grpc-status` value (`1*DIGIT`); anything else is ignored.
    pub fn read_status(&mut self, value: &[u8]) {
        if let Some(code) = parse_status(value) {
            self.status = Some(code);
        }
    }

    /// The status, when it makes a span of `kind` an error: any status but
    /// `OK` on a CLIENT span; on a SERVER span only `UNKNOWN`,
    /// `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and
    /// `DATA_LOSS`, the server's own faults.
    pub fn error_status(&self, kind: Kind) -> Option<u32> {
        let code = self.status?;
        let fails = match kind {
            Kind::Client => code != OK,
            Kind::Server => SERVER_ERRORS.contains(&code),
        };
        fails.then_some(code)
    }
}

/// Whether a request is a gRPC call: its `content-type` starts with
/// `application/grpc` (media types ignore case, RFC 9110 §8.3.1).
pub fn is_grpc(request_headers: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    request_headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.as_bytes().get(..GRPC.len()))
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(GRPC))
}

/// `rpc.service` and `rpc.method` from a `:path` of the form
/// `/{service}/{method}`: `("helloworld.Greeter", "SayHello")`. `None`
/// for any other path, or one whose names are not protobuf identifiers
/// (letters, digits, `_`; dots between the service's package parts), so
/// a hostile path never becomes a span name.
pub fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let is_identifier = |part: &str| {
        part.bytes().next().is_some_and(|b| !b.is_ascii_digit())
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    (service.split('.').all(is_identifier) && is_identifier(method)).then_some((service, method))
}

/// `Status → "grpc-status" 1*DIGIT` (PROTOCOL-HTTP2.md), surrounding
/// whitespace allowed; `None` when it is not a number that fits.
fn parse_status(value: &[u8]) -> Option<u32> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |code, digit| {
        code.checked_mul(10)?.checked_add(u32::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(http::header::CONTENT_TYPE, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_grpc_call_is_known_by_its_content_type() {
        let cases = [
            (Some("application/grpc"), true),
            (Some("application/grpc+proto"), true),
            (Some("application/grpc+json"), true),
            (Some("application/grpc;charset=utf-8"), true),
            (Some("Application/GRPC"), true),
            (Some("application/grpc-web+proto"), true),
            (Some("application/json"), false),
            (Some("application/grp"), false),
            (Some("text/plain; application/grpc"), false),
            (Some(""), false),
            (None, false),
        ];
        for (content_type, grpc) in cases {
            let headers = request(content_type);
            assert_eq!(is_grpc(&headers), grpc, "{content_type:?}");
            let call = GrpcCall::of_request(&headers);
            assert_eq!(call, grpc.then_some(GrpcCall { status: None }));
        }
    }

    #[test]
    fn service_and_method_come_from_the_path() {
        let cases = [
            (
                "/helloworld.Greeter/SayHello",
                Some(("helloworld.Greeter", "SayHello")),
            ),
            (
                "/grpc.health.v1.Health/Check",
                Some(("grpc.health.v1.Health", "Check")),
            ),
            ("/Greeter/Say_Hello2", Some(("Greeter", "Say_Hello2"))),
            ("/_a._b/_c", Some(("_a._b", "_c"))),
            ("/helloworld.Greeter", None),
            ("/helloworld.Greeter/", None),
            ("//SayHello", None),
            ("/a/b/c", None),
            ("/api/v1/users", None),
            ("helloworld.Greeter/SayHello", None),
            ("/helloworld..Greeter/SayHello", None),
            ("/.Greeter/SayHello", None),
            ("/1pkg.Greeter/SayHello", None),
            ("/pkg.Greeter/1Say", None),
            ("/pkg.Greeter/Say-Hello", None),
            ("/pkg.Gr%20eter/SayHello", None),
            ("/", None),
            ("", None),
        ];
        for (path, expected) in cases {
            assert_eq!(service_and_method(path), expected, "{path:?}");
        }
    }

    #[test]
    fn status_is_a_decimal_number() {
        let cases: [(&[u8], Option<u32>); 9] = [
            (b"0", Some(0)),
            (b"14", Some(14)),
            (b" 5\t", Some(5)),
            (b"4294967295", Some(u32::MAX)),
            (b"4294967296", None),
            (b"+5", None),
            (b"-1", None),
            (b"", None),
            (b"OK", None),
        ];
        for (value, expected) in cases {
            let mut call = GrpcCall::default();
            call.read_status(value);
            assert_eq!(call.status, expected, "{value:?}");
        }
        // An unreadable value leaves what was read before.
        let mut call = GrpcCall { status: Some(3) };
        call.read_status(b"x");
        assert_eq!(call.status, Some(3));
    }

    /// Every code of the gRPC status table (grpc/grpc `doc/statuscodes.md`),
    /// and what OpenTelemetry makes of it on each side of the call.
    #[test]
    fn which_status_fails_which_span() {
        // (code, name, fails a SERVER span)
        let table = [
            (0, "OK", false),
            (1, "CANCELLED", false),
            (2, "UNKNOWN", true),
            (3, "INVALID_ARGUMENT", false),
            (4, "DEADLINE_EXCEEDED", true),
            (5, "NOT_FOUND", false),
            (6, "ALREADY_EXISTS", false),
            (7, "PERMISSION_DENIED", false),
            (8, "RESOURCE_EXHAUSTED", false),
            (9, "FAILED_PRECONDITION", false),
            (10, "ABORTED", false),
            (11, "OUT_OF_RANGE", false),
            (12, "UNIMPLEMENTED", true),
            (13, "INTERNAL", true),
            (14, "UNAVAILABLE", true),
            (15, "DATA_LOSS", true),
            (16, "UNAUTHENTICATED", false),
            (17, "(not a code)", false),
        ];
        for (code, name, server_fails) in table {
            let call = GrpcCall { status: Some(code) };
            let server = call.error_status(Kind::Server);
            assert_eq!(server, server_fails.then_some(code), "SERVER {name}");
            let client = call.error_status(Kind::Client);
            assert_eq!(client, (code != 0).then_some(code), "CLIENT {name}");
        }
        // No status yet: no error either way.
        let call = GrpcCall::default();
        assert_eq!(call.error_status(Kind::Server), None);
        assert_eq!(call.error_status(Kind::Client), None);
    }
}
