//! The trace viewer: one page plus its scripts (ES modules, imported by
//! `viewer.js`) and stylesheet, compiled into the binary so the collector
//! needs no files, CDN or build step.
//!
//! The page is served at `/` and at `/trace/{traceId}` (deep links); its
//! views (trace list with search by tag, one trace as a waterfall, the
//! dependency graph drawn as SVG) read only the collector's own Zipkin v2
//! API. A Content Security Policy that allows nothing but this origin backs
//! the "no external resources" rule and keeps span data from ever running as
//! script.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::server::{Body, full};

/// One embedded file.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// URL path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const PAGE: Asset = Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    body: include_str!("index.html"),
};

const ASSETS: &[Asset] = &[
    script("/static/viewer.js", include_str!("viewer.js")),
    script("/static/common.js", include_str!("common.js")),
    script("/static/spans.js", include_str!("spans.js")),
    script("/static/list.js", include_str!("list.js")),
    script("/static/trace.js", include_str!("trace.js")),
    script("/static/dependencies.js", include_str!("dependencies.js")),
    Asset {
        path: "/static/viewer.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("viewer.css"),
    },
];

const fn script(path: &'static str, body: &'static str) -> Asset {
    Asset {
        path,
        content_type: "text/javascript; charset=utf-8",
        body,
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The embedded asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The viewer page.
pub fn page() -> Response<Body> {
    let mut response = serve(&PAGE);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// Serves an embedded asset. `no-cache` makes browsers revalidate, so a new
/// binary's viewer is picked up at once.
pub fn serve(asset: &Asset) -> Response<Body> {
    let mut response = Response::new(full(asset.body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripts() -> impl Iterator<Item = &'static Asset> {
        ASSETS
            .iter()
            .filter(|asset| asset.content_type.starts_with("text/javascript"))
    }

    #[test]
    fn page_references_only_embedded_assets() {
        // The page links the entry script and the stylesheet; the other
        // scripts are imported as `./name.js`.
        for asset in ASSETS {
            let file = asset.path.trim_start_matches("/static/");
            let imported = scripts().any(|script| script.body.contains(&format!("'./{file}'")));
            assert!(
                PAGE.body.contains(asset.path) || imported,
                "{} not linked",
                asset.path
            );
        }
        for text in std::iter::once(PAGE.body).chain(ASSETS.iter().map(|asset| asset.body)) {
            assert!(!text.contains("http://"), "external reference");
            assert!(!text.contains("https://"), "external reference");
        }
    }

    #[test]
    fn scripts_never_assign_inner_html() {
        // Span data is untrusted: the scripts build DOM nodes with textContent.
        for script in scripts() {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!script.body.contains(sink), "{} uses {sink}", script.path);
            }
        }
    }
}
