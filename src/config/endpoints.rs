//! The collector endpoints of an exporter: `export.zipkin` and
//! `export.otlp` as one URL or a list, and `export.resolve` (`static` or
//! `dns`). Each URL in a list is checked on its own, with its index in the
//! path (`export.zipkin[1]`), so every bad one is reported at once.

use std::time::Duration;

use super::problems::Problems;
use super::raw::RawUrls;
use super::types::{Resolve, UpstreamUrl};

/// How often `export.resolve: dns` looks the collector's host up again
/// when `export.resolve_interval` is not set.
const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// The URLs at `path`, each parsed; a single URL keeps the bare path, a
/// list gets `[i]`. An empty list and a URL listed twice are problems: two
/// equal endpoints would only split one collector's share in two names.
pub(super) fn urls(path: &str, raw: RawUrls, p: &mut Problems) -> Vec<UpstreamUrl> {
    let RawUrls(raw) = raw;
    if raw.is_empty() {
        p.push(path, "lists no URL");
        return Vec::new();
    }
    let single = raw.len() == 1;
    let mut out: Vec<UpstreamUrl> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let at = if single {
            path.to_owned()
        } else {
            format!("{path}[{i}]")
        };
        let Some(url) = p.url(&at, Some(text)) else {
            continue;
        };
        if out.iter().any(|seen| seen.to_string() == url.to_string()) {
            p.push(at, format!("`{url}` is listed twice"));
        } else {
            out.push(url);
        }
    }
    out
}

/// `export.resolve` and `export.resolve_interval`.
pub(super) fn resolve(mode: Option<&str>, interval: Option<&str>, p: &mut Problems) -> Resolve {
    match mode {
        None | Some("static") => {
            if interval.is_some() {
                p.push(
                    "export.resolve_interval",
                    "only applies to export.resolve: dns",
                );
            }
            Resolve::Static
        }
        Some("dns") => Resolve::Dns {
            interval: p.positive_duration(
                "export.resolve_interval",
                interval,
                DEFAULT_RESOLVE_INTERVAL,
            ),
        },
        Some(other) => {
            p.push(
                "export.resolve",
                format!("`{other}` is not a resolve mode: use static or dns"),
            );
            Resolve::Static
        }
    }
}

/// With `resolve: dns` each exporter names one URL, whose host is looked
/// up; a list there is ambiguous (which host?), so it is a problem at
/// `export.resolve` naming the key that lists several.
pub(super) fn check_dns(resolve: Resolve, lists: &[(&str, usize)], p: &mut Problems) {
    if resolve == Resolve::Static {
        return;
    }
    for (key, count) in lists {
        if *count > 1 {
            p.push(
                "export.resolve",
                format!("dns looks up the host of one URL per exporter, but {key} lists {count}"),
            );
        }
    }
}
