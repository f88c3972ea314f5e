//! Raw configuration as written in YAML: private to `config`.
//!
//! Every struct rejects unknown keys (a typo must not silently fall back to
//! a default) and every field is optional here; defaults and checks live in
//! `validate`, which turns these into the types of `types.rs`. Durations,
//! addresses and URLs stay strings so that a bad one is reported with its
//! YAML path alongside every other problem.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::sampling::RawSampling;
use super::tls::{RawClientTls, RawHeaderValue, RawServerTls};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub service: Option<RawService>,
    pub inbound: Option<RawInbound>,
    pub outbound: Option<RawOutbound>,
    pub propagation: Option<RawPropagation>,
    pub sampling: Option<RawSampling>,
    pub export: Option<RawExport>,
    pub admin: Option<RawAdmin>,
    pub log: Option<RawLog>,
    pub shutdown: Option<RawShutdown>,
    pub inference: Option<RawInference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub name: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInbound {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub protocol: Option<String>,
    pub routes: Option<Vec<String>>,
    pub timeouts: Option<RawTimeouts>,
    pub limits: Option<RawLimits>,
    pub capture: Option<RawCapture>,
    pub tls: Option<RawServerTls>,
    pub upstream_tls: Option<RawClientTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub header_read: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub idle: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub request_body: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub response_body: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub upstream_connect: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub upstream_response: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_header_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_concurrent_streams: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCapture {
    pub request_headers: Option<Vec<String>>,
    pub response_headers: Option<Vec<String>>,
    pub query: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    pub routes: Option<Vec<RawOutboundRoute>>,
    pub route_templates: Option<Vec<String>>,
    pub forward_proxy: Option<RawForwardProxy>,
    /// Defaults of every route's `timeouts`.
    pub timeouts: Option<RawTimeouts>,
    /// Defaults of every route's `limits`.
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForwardProxy {
    pub listen: Option<String>,
    pub allow: Option<Vec<String>>,
    pub connect: Option<bool>,
    pub timeouts: Option<RawTimeouts>,
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutboundRoute {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub protocol: Option<String>,
    pub upstream_tls: Option<RawClientTls>,
    /// Overrides `outbound.timeouts` field by field.
    pub timeouts: Option<RawTimeouts>,
    /// Overrides `outbound.limits` field by field.
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPropagation {
    pub extract: Option<Vec<String>>,
    pub inject: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExport {
    pub enabled: Option<bool>,
    pub zipkin: Option<RawUrls>,
    pub otlp: Option<RawOtlp>,
    pub resolve: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub resolve_interval: Option<String>,
    pub queue_capacity: Option<usize>,
    pub batch_size: Option<usize>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub batch_interval: Option<String>,
    pub gzip: Option<bool>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub timeout: Option<String>,
    pub retry: Option<RawRetry>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub shutdown_timeout: Option<String>,
    pub tls: Option<RawClientTls>,
    pub headers: Option<BTreeMap<String, RawHeaderValue>>,
}

/// One URL or a list of URLs (`export.zipkin`, `export.otlp.url`): the
/// collector endpoints an exporter spreads traces over.
#[derive(Debug, Default)]
pub(super) struct RawUrls(pub Vec<String>);

impl<'de> Deserialize<'de> for RawUrls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = RawUrls;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL or a list of URLs")
            }

            fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<RawUrls, E> {
                Ok(RawUrls(vec![url.to_owned()]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawUrls, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(RawUrls)
            }
        }
        deserializer.deserialize_any(Form)
    }
}

/// `export.otlp`: a URL, a list of URLs, or a block with the URL(s) and
/// the settings that belong to that destination alone.
#[derive(Debug, Default)]
pub(super) struct RawOtlp {
    pub url: Option<RawUrls>,
    /// Written as `otlp: [URL, …]`: problems are at `export.otlp[i]`.
    pub bare_list: bool,
    pub gzip: Option<bool>,
    pub tls: Option<RawClientTls>,
    pub headers: Option<BTreeMap<String, RawHeaderValue>>,
}

/// The block form of `export.otlp`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOtlpBlock {
    url: Option<RawUrls>,
    gzip: Option<bool>,
    tls: Option<RawClientTls>,
    headers: Option<BTreeMap<String, RawHeaderValue>>,
}

impl<'de> Deserialize<'de> for RawOtlp {
    /// `otlp: URL`, `otlp: [URL, …]` or `otlp: {url: …, gzip: …, tls: …, headers: …}`; the
    /// block keeps `deny_unknown_fields`, so a typo in it names the key.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = RawOtlp;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL, a list of URLs, or a map with url, gzip, tls and headers")
            }

            fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<RawOtlp, E> {
                Ok(RawOtlp {
                    url: Some(RawUrls(vec![url.to_owned()])),
                    ..RawOtlp::default()
                })
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawOtlp, A::Error> {
                Ok(RawOtlp {
                    url: Some(RawUrls::deserialize(
                        serde::de::value::SeqAccessDeserializer::new(seq),
                    )?),
                    bare_list: true,
                    ..RawOtlp::default()
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawOtlp, A::Error> {
                let block =
                    RawOtlpBlock::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawOtlp {
                    bare_list: false,
                    url: block.url,
                    gzip: block.gzip,
                    tls: block.tls,
                    headers: block.headers,
                })
            }
        }
        deserializer.deserialize_any(Form)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub initial_backoff: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub max_backoff: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub max_elapsed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShutdown {
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub drain_delay: Option<String>,
    #[serde(default, deserialize_with = "super::yaml::duration")]
    pub grace_period: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInference {
    pub parents: Option<String>,
}
