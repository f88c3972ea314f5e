//! Matching request paths against configured route templates.
//!
//! The first template whose segments match wins and becomes the span's
//! `http.route` (OpenTelemetry semantic conventions). Unmatched paths are
//! templated by the exporter, off the request path.

use std::sync::Arc;

use crate::config::RouteTemplate;

/// The first template matching `path` (query already excluded).
pub fn match_route(templates: &[RouteTemplate], path: &str) -> Option<Arc<str>> {
    if templates.is_empty() {
        return None;
    }
    let path = path.strip_prefix('/').unwrap_or(path);
    templates
        .iter()
        .find(|t| segments_match(&t.segments, path))
        .map(|t| t.template.clone())
}

fn segments_match(template: &[Option<String>], path: &str) -> bool {
    let mut parts = path.split('/');
    for want in template {
        match (want, parts.next()) {
            (_, None) => return false,
            (None, Some("")) => return false,
            (None, Some(_)) => {}
            (Some(literal), Some(part)) if literal != part => return false,
            (Some(_), Some(_)) => {}
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(t: &str) -> RouteTemplate {
        RouteTemplate {
            template: Arc::from(t),
            segments: t[1..]
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                .collect(),
        }
    }

    #[test]
    fn first_matching_template_wins() {
        let templates = [
            template("/users/me"),
            template("/users/{id}"),
            template("/users/{id}/orders/{order}"),
            template("/"),
        ];
        let cases = [
            ("/users/me", Some("/users/me")),
            ("/users/42", Some("/users/{id}")),
            ("/users/42/orders/7", Some("/users/{id}/orders/{order}")),
            ("/users/42/orders", None),
            ("/users/", None),
            ("/users", None),
            ("/", Some("/")),
            ("/other", None),
        ];
        for (path, want) in cases {
            assert_eq!(match_route(&templates, path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn no_templates_never_match() {
        assert_eq!(match_route(&[], "/users/1"), None);
    }
}
