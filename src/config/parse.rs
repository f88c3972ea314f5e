//! Parsers for the string-typed config values: durations, addresses, URLs.
//!
//! Each returns a message that names what was expected; the caller adds the
//! YAML path.

use std::net::SocketAddr;
use std::time::Duration;

use super::types::{Scheme, UpstreamUrl};

/// Parses `"500ms"`, `"10s"`, `"2m"`, `"1h"`, `"250us"`, or `"0"`.
/// Fractions are allowed (`"1.5s"`).
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. \"500ms\" or \"10s\""))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write e.g. \"500ms\" or \"10s\""))?;
    let seconds_per_unit = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}`: use us, ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("`{text}` is out of range"))
}

/// Parses a size in bytes: `"256MiB"`, `"1GiB"`, `"512KiB"`, `"300MB"`,
/// or a plain number of bytes. Binary (IEC) and decimal (SI) units, as
/// Kubernetes quantities write them (`Mi`, `M` are accepted too).
pub fn byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write e.g. \"256MiB\" or \"1GiB\""))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "Ki" => 1 << 10,
        "MiB" | "Mi" => 1 << 20,
        "GiB" | "Gi" => 1 << 30,
        "kB" | "KB" | "k" => 1_000,
        "MB" | "M" => 1_000_000,
        "GB" | "G" => 1_000_000_000,
        unit => {
            return Err(format!(
                "`{text}` has unknown unit `{unit}`: use B, KiB, MiB, GiB, kB, MB or GB"
            ));
        }
    };
    value
        .checked_mul(multiplier)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| format!("`{text}` is out of range"))
}

/// Parses `ip:port` (`[v6]:port` for IPv6). Host names are not accepted for
/// listeners: binding must not depend on DNS.
pub fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an address: write ip:port, e.g. \"127.0.0.1:15006\""))
}

/// Parses an `http://` or `https://` URL with a host.
pub fn url(text: &str) -> Result<UpstreamUrl, String> {
    let uri: http::Uri = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a URL: write e.g. \"http://127.0.0.1:8080\""))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => return Err(format!("`{text}`: scheme `{other}` is not http or https")),
        None => return Err(format!("`{text}` needs a scheme: http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{text}`: credentials in URLs are not supported"));
    }
    let authority = match authority.port_u16() {
        Some(_) => authority.clone(),
        None => {
            let port = if scheme == Scheme::Https { 443 } else { 80 };
            format!("{}:{port}", authority.host())
                .parse()
                .map_err(|_| format!("`{text}` has an invalid host"))?
        }
    };
    let path = match uri.path() {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    Ok(UpstreamUrl {
        scheme,
        authority,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        let cases = [
            ("256MiB", Some(256 << 20)),
            ("1GiB", Some(1 << 30)),
            ("512Ki", Some(512 << 10)),
            ("300MB", Some(300_000_000)),
            ("4096", Some(4096)),
            (" 2 MiB ", Some(2 << 20)),
            ("MiB", None),
            ("1.5GiB", None),
            ("-1", None),
            ("10 parsecs", None),
            ("99999999999999999999GiB", None),
        ];
        for (text, expected) in cases {
            assert_eq!(byte_size(text).ok(), expected, "{text}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500))),
            ("10s", Some(Duration::from_secs(10))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("250us", Some(Duration::from_micros(250))),
            ("0", Some(Duration::ZERO)),
            (" 3s ", Some(Duration::from_secs(3))),
            ("10", None),
            ("ms", None),
            ("5 days", None),
            ("-1s", None),
            ("1e400s", None),
        ];
        for (text, want) in cases {
            assert_eq!(duration(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn urls() {
        let u = url("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.authority.as_str(), "127.0.0.1:8080");
        assert_eq!(u.path, "/");
        let u = url("https://zipkin.example/api/v2/spans").unwrap();
        assert_eq!(u.authority.as_str(), "zipkin.example:443");
        assert_eq!(u.path, "/api/v2/spans");
        assert_eq!(url("http://x").unwrap().authority.as_str(), "x:80");
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http://u:p@x",
            "not a url",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert!(socket_addr("127.0.0.1:0").is_ok());
        assert!(socket_addr("[::1]:80").is_ok());
        assert!(socket_addr("localhost:80").is_err());
        assert!(socket_addr("127.0.0.1").is_err());
    }
}
