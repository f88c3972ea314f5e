//! Configuration: YAML text -> validated [`Config`].
//!
//! Owns the raw serde structs (private, `deny_unknown_fields`), the
//! validation that gathers *every* problem with its YAML path, and the
//! validated types each module receives its section of. Loading works on a
//! `&str` plus explicit [`Overrides`], so tests never touch files or the
//! process environment; `main` reads those.
//!
//! Precedence, highest first: command-line flags, environment
//! (`TRACEHOP_SERVICE_NAME`, pod metadata), the file, built-in defaults.

mod collector;
mod endpoints;
mod limits;
mod listeners;
mod parse;
mod postgres;
mod problems;
mod raw;
mod render;
mod sampling;
mod tls;
mod types;
mod validate;
mod yaml;

pub use collector::{
    CollectorFile, TailPolicy, TailRule, TailSampling, load_collector, load_tail_sampling,
};
pub use parse::byte_size as parse_byte_size;
pub use parse::duration as parse_duration;
pub use problems::{ConfigError, ConfigErrors};
pub use types::*;

use raw::RawConfig;

/// Values that override the file: command-line flags and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--service-name` or `TRACEHOP_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// `--listen`: the inbound listener.
    pub listen: Option<String>,
    /// `--upstream`: the app behind the inbound listener.
    pub upstream: Option<String>,
    /// `--zipkin`: the Zipkin collector URLs (`export.zipkin`); empty = the file's.
    pub zipkin: Vec<String>,
    /// `--otlp`: the OTLP/HTTP traces URLs (`export.otlp.url`); empty = the file's.
    pub otlp: Vec<String>,
    /// `--admin`: the admin listener.
    pub admin: Option<String>,
    /// `--sample-ratio`: root sampler ratio.
    pub sample_ratio: Option<f64>,
    /// `--tls-cert`: serve TLS on the inbound listener with this certificate.
    pub tls_cert: Option<String>,
    /// `--tls-key`: the key of `--tls-cert`.
    pub tls_key: Option<String>,
    /// `--infer-parents`: `inference.parents` (`unambiguous` or `off`).
    pub infer_parents: Option<String>,
    /// Pod metadata (Kubernetes downward API), recorded as span tags:
    /// pairs of (tag name, value), e.g. `("k8s.pod.name", "api-7d9")`.
    pub resource_tags: Vec<(String, String)>,
}

impl Overrides {
    /// Environment variables tracehop reads, and the span tag each becomes.
    pub const POD_ENV: &[(&str, &str)] = &[
        ("TRACEHOP_POD_NAME", "k8s.pod.name"),
        ("TRACEHOP_POD_NAMESPACE", "k8s.namespace.name"),
        ("TRACEHOP_NODE_NAME", "k8s.node.name"),
        ("TRACEHOP_POD_IP", "k8s.pod.ip"),
    ];

    /// Reads `TRACEHOP_SERVICE_NAME` and the pod metadata variables through
    /// `lookup` (the process environment in `main`, a map in tests).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Self {
            service_name: non_empty("TRACEHOP_SERVICE_NAME"),
            resource_tags: Self::POD_ENV
                .iter()
                .filter_map(|(var, tag)| non_empty(var).map(|v| ((*tag).to_owned(), v)))
                .collect(),
            ..Self::default()
        }
    }

    fn apply(self, raw: &mut RawConfig) {
        if let Some(name) = self.service_name {
            raw.service.get_or_insert_default().name = Some(name);
        }
        let tags = raw
            .service
            .get_or_insert_default()
            .tags
            .get_or_insert_default();
        tags.extend(self.resource_tags);
        let inbound = raw.inbound.get_or_insert_default();
        if let Some(listen) = self.listen {
            inbound.listen = Some(listen);
        }
        if let Some(upstream) = self.upstream {
            inbound.upstream = Some(upstream);
        }
        if self.tls_cert.is_some() || self.tls_key.is_some() {
            let tls = inbound.tls.get_or_insert_default();
            if let Some(cert) = self.tls_cert {
                tls.cert = Some(cert);
            }
            if let Some(key) = self.tls_key {
                tls.key = Some(key);
            }
        }
        if !self.zipkin.is_empty() {
            raw.export.get_or_insert_default().zipkin = Some(raw::RawUrls(self.zipkin));
        }
        if !self.otlp.is_empty() {
            let export = raw.export.get_or_insert_default();
            export.otlp.get_or_insert_default().url = Some(raw::RawUrls(self.otlp));
        }
        if let Some(admin) = self.admin {
            raw.admin.get_or_insert_default().listen = Some(admin);
        }
        if let Some(parents) = self.infer_parents {
            raw.inference.get_or_insert_default().parents = Some(parents);
        }
        if let Some(ratio) = self.sample_ratio {
            // Replaces the whole root sampler: settings of another type
            // left in the file would not apply to `ratio`.
            raw.sampling.get_or_insert_default().root = Some(sampling::RawSampler {
                kind: Some("ratio".into()),
                ratio: Some(ratio),
                ..Default::default()
            });
        }
    }
}

/// Parses and validates a configuration. An empty text is a valid (all
/// defaults) document. Every validation problem is reported at once.
pub fn load(yaml: &str, overrides: Overrides) -> Result<Config, ConfigErrors> {
    let (mut raw, read_problems): (RawConfig, _) = yaml::read(yaml);
    overrides.apply(&mut raw);
    let mut problems = problems::Problems::default();
    let config = validate::config(raw, &mut problems);
    problems.after_reading(read_problems).into_result(config)
}

/// Export settings for the Zipkin collector at `url` with every other
/// export key at its default (for the collector's `--forward URL`).
pub fn export_defaults_for(url: &str) -> Result<ExportSettings, ConfigErrors> {
    let overrides = Overrides {
        // inbound.upstream is required in a sidecar config; unused here.
        upstream: Some("http://127.0.0.1:1".into()),
        zipkin: vec![url.into()],
        ..Overrides::default()
    };
    match load("", overrides)?.export {
        ExportConfig::Enabled(export) => Ok(export),
        ExportConfig::Disabled => unreachable!("export is enabled by default"),
    }
}

#[cfg(test)]
mod tests;
