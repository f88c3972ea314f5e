//! IP addresses as text without the formatting machinery: the proxy writes
//! the peer into `X-Forwarded-For` and the exporter into every SERVER span,
//! so the common IPv4 case is done digit by digit.

use std::net::{IpAddr, Ipv4Addr};

/// Room for the longest IPv6 text form (45 bytes).
pub type IpBuf = [u8; 45];

/// Writes the text form of `ip` into `buf` and returns it. IPv4 (and an
/// IPv4-mapped IPv6 address, as a dual-stack socket reports an IPv4 peer)
/// is written as dotted decimal; other IPv6 addresses in RFC 5952 form.
pub fn ip_text(ip: IpAddr, buf: &mut IpBuf) -> &[u8] {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => ipv4_text(v4, buf),
        IpAddr::V6(v6) => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{v6}");
            let len = usize::try_from(cursor.position()).unwrap_or(0);
            &buf[..len]
        }
    }
}

/// The text form of `ip` ([`ip_text`]) as a header value, for
/// `X-Forwarded-For`.
pub fn ip_value(ip: IpAddr) -> http::HeaderValue {
    let mut buf = [0; 45];
    http::HeaderValue::from_bytes(ip_text(ip, &mut buf))
        .expect("digits, hex digits, dots and colons are a valid field value")
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn ipv4_text(ip: Ipv4Addr, buf: &mut IpBuf) -> &[u8] {
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            buf[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            buf[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        buf[len] = b'0' + octet % 10;
        len += 1;
    }
    &buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_text_form() {
        let mut buf = [0; 45];
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "100.9.10.199",
            "::1",
            "2001:db8::1",
            "fe80::1:2:3:4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(ip_text(ip, &mut buf), text.as_bytes(), "{text}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_written_as_ipv4() {
        let mut buf = [0; 45];
        let ip: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_text(ip, &mut buf), b"192.0.2.7");
        assert_eq!(canonical_ip(ip), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
