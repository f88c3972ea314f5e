//! Route templates derived from request paths, for low-cardinality span names.
//!
//! When no configured route template matched, the span name uses the path
//! with identifier-like segments replaced by `{id}` (DESIGN §4): a name per
//! user or order would make every trace its own operation in Zipkin's UI.

/// The placeholder that replaces identifier segments.
const ID: &str = "{id}";

/// Writes the template of `path` (a path without its query) into `out`,
/// replacing segments that are all digits, UUIDs or long hex strings with
/// `{id}`. An empty path is `/`.
pub fn template_path(path: &str, out: &mut String) {
    out.clear();
    if path.is_empty() {
        out.push('/');
        return;
    }
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_identifier(segment) { ID } else { segment });
    }
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
        ];
        let mut out = String::new();
        for (path, expected) in cases {
            template_path(path, &mut out);
            assert_eq!(out, expected, "{path}");
        }
    }
}
