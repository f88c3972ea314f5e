//! Route templates derived from request paths, for low-cardinality span names.
//!
//! When no configured route template matched, the span name uses the path
//! with identifier-like segments replaced by `{id}` (DESIGN §4): a name per
//! user or order would make every trace its own operation in Zipkin's UI.

/// The placeholder that replaces identifier segments.
const ID: &str = "{id}";

/// The template of `path` (a path without its query): the path with
/// segments that are all digits, UUIDs or long hex strings replaced by
/// `{id}`, written into `out` when that changes anything. An empty path is
/// `/`.
pub fn template_path<'a>(path: &'a str, out: &'a mut String) -> &'a str {
    if path.is_empty() {
        return "/";
    }
    if !may_hold_identifier(path.as_bytes()) {
        return path;
    }
    out.clear();
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_identifier(segment) { ID } else { segment });
    }
    out
}

/// False when no segment can be an identifier: every identifier segment
/// holds a digit or is at least 16 bytes long.
fn may_hold_identifier(path: &[u8]) -> bool {
    let mut segment = 0;
    for &byte in path {
        if byte == b'/' {
            segment = 0;
            continue;
        }
        segment += 1;
        if byte.is_ascii_digit() || segment >= 16 {
            return true;
        }
    }
    false
}

/// True for segments that name one record rather than a kind of resource.
fn is_identifier(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let all_digits = !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
    let long_hex = bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit);
    all_digits || long_hex || is_uuid(bytes)
}

/// RFC 9562 §4 textual UUID: 8-4-4-4-12 hex digits, either case.
fn is_uuid(bytes: &[u8]) -> bool {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, byte)| {
            if DASHES.contains(&i) {
                *byte == b'-'
            } else {
                byte.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_identifier_segments() {
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("*", "*"),
            ("/users", "/users"),
            ("/users/42", "/users/{id}"),
            ("/users/42/", "/users/{id}/"),
            ("/users/42/orders/7", "/users/{id}/orders/{id}"),
            ("/v1/users", "/v1/users"),
            ("/orders/0", "/orders/{id}"),
            (
                "/orders/123e4567-e89b-12d3-a456-426614174000",
                "/orders/{id}",
            ),
            (
                "/orders/123E4567-E89B-12D3-A456-426614174000/items",
                "/orders/{id}/items",
            ),
            // Not a UUID: the dashes are in the wrong places.
            (
                "/orders/123e4567e-89b-12d3-a456-42661417400",
                "/orders/123e4567e-89b-12d3-a456-42661417400",
            ),
            ("/blobs/4bf92f3577b34da6", "/blobs/{id}"),
            ("/blobs/4BF92F3577B34DA6A3CE929D0E0E4736", "/blobs/{id}"),
            // 15 hex digits: too short to be an id by that rule.
            ("/blobs/4bf92f3577b34da", "/blobs/4bf92f3577b34da"),
            ("/blobs/deadbeefdeadbeeg", "/blobs/deadbeefdeadbeeg"),
            ("/a//b", "/a//b"),
            ("/users/-1", "/users/-1"),
            // Sixteen hex letters, no digit.
            ("/blobs/deadbeefdeadbeef/x", "/blobs/{id}/x"),
            ("/abcdefabcdefabc", "/abcdefabcdefabc"),
        ];
        let mut out = String::new();
        for (path, expected) in cases {
            assert_eq!(template_path(path, &mut out), expected, "{path}");
        }
    }
}
