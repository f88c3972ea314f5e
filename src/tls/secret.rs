//! Secret header values for the collector (`export.headers`): literal, from
//! an environment variable or from a file, resolved once at startup.
//!
//! Values are marked sensitive (`HeaderValue::set_sensitive`), so hyper
//! never indexes them in HPACK tables and their `Debug` output is hidden;
//! nothing here logs a value.

use http::{HeaderName, HeaderValue};

use crate::config::{ConfigError, ExtraHeader, SecretSource};

/// Resolves every header of the headers key at YAML path `at`, reading
/// variables through `env`. Every problem is reported, each under
/// `<at>.<name>`.
pub fn resolve_headers(
    at: &str,
    headers: &[ExtraHeader],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Vec<ConfigError>> {
    let mut values = Vec::with_capacity(headers.len());
    let mut problems = Vec::new();
    for header in headers {
        let path = format!("{at}.{}", header.name);
        let text = match &header.source {
            SecretSource::Literal(value) => Ok(value.clone()),
            SecretSource::Env(var) => {
                env(var).ok_or_else(|| format!("environment variable {var} is not set"))
            }
            SecretSource::File(file) => std::fs::read_to_string(file)
                // Secret files usually end with a newline that is not part of the value.
                .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|error| format!("cannot read {}: {error}", file.display())),
        };
        let value = text.and_then(|text| {
            HeaderValue::from_str(&text).map_err(|_| "is not a valid header value".to_owned())
        });
        match value {
            Ok(mut value) => {
                value.set_sensitive(true);
                values.push((header.name.clone(), value));
            }
            Err(message) => problems.push(ConfigError { path, message }),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &'static str, source: SecretSource) -> ExtraHeader {
        ExtraHeader {
            name: HeaderName::from_static(name),
            source,
        }
    }

    #[test]
    fn values_come_from_literals_and_the_environment() {
        let env = |name: &str| (name == "TOKEN").then(|| "Bearer abc".to_owned());
        let resolved = resolve_headers(
            "export.headers",
            &[
                header("authorization", SecretSource::Env("TOKEN".into())),
                header("x-tenant", SecretSource::Literal("shop".into())),
            ],
            &env,
        )
        .unwrap();
        assert_eq!(resolved[0].1, "Bearer abc");
        assert!(resolved[0].1.is_sensitive());
        assert_eq!(resolved[1].1, "shop");
        assert!(
            !format!("{resolved:?}").contains("abc"),
            "values stay hidden"
        );
    }

    #[test]
    fn missing_sources_name_their_key() {
        let errors = resolve_headers(
            "export.otlp.headers",
            &[
                header("authorization", SecretSource::Env("UNSET".into())),
                header("x-token", SecretSource::File("/nonexistent/token".into())),
                header("x-bad", SecretSource::Literal("line\nbreak".into())),
            ],
            &|_| None,
        )
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "export.otlp.headers.authorization",
                "export.otlp.headers.x-token",
                "export.otlp.headers.x-bad"
            ]
        );
        assert!(errors[0].message.contains("UNSET"));
        assert!(errors[1].message.contains("/nonexistent/token"));
    }
}
