//! Raw YAML structs -> validated types, recording every problem with its path.

use std::sync::Arc;
use std::time::Duration;

use super::endpoints;
use super::limits::{self, DEFAULT_LIMITS, DEFAULT_TIMEOUTS};
use super::problems::Problems;
use super::raw::*;
use super::tls;
use super::types::*;

/// Headers that carry credentials: never recorded on spans.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Placeholder URL used after a problem was recorded, so validation can go on.
fn placeholder_url() -> UpstreamUrl {
    UpstreamUrl {
        scheme: Scheme::Http,
        authority: http::uri::Authority::from_static("invalid:80"),
        path: "/".into(),
    }
}

pub(super) fn config(raw: RawConfig, p: &mut Problems) -> Config {
    let config = Config {
        service: service(raw.service.unwrap_or_default(), p),
        inbound: inbound(raw.inbound.unwrap_or_default(), p),
        outbound: outbound(raw.outbound.unwrap_or_default(), p),
        propagation: propagation(raw.propagation.unwrap_or_default(), p),
        sampling: super::sampling::sampling(raw.sampling.unwrap_or_default(), p),
        export: export(raw.export.unwrap_or_default(), p),
        admin: AdminConfig {
            listen: p.socket_addr(
                "admin.listen",
                raw.admin.unwrap_or_default().listen.as_deref(),
                "127.0.0.1:15000",
            ),
        },
        log: log(raw.log.unwrap_or_default(), p),
        shutdown: shutdown(raw.shutdown.unwrap_or_default(), p),
        inference: inference(raw.inference.unwrap_or_default(), p),
        paths: Default::default(),
    };
    super::listeners::check(&config, p);
    config
}

fn service(raw: RawService, p: &mut Problems) -> ServiceConfig {
    let name = raw.name.unwrap_or_else(|| UNKNOWN_SERVICE.into());
    if name.trim().is_empty() {
        p.push("service.name", "must not be empty");
    }
    ServiceConfig {
        name: Arc::from(name.trim()),
        resource_tags: raw.tags.unwrap_or_default().into_iter().collect(),
    }
}

fn protocol(path: &str, raw: Option<&str>, p: &mut Problems) -> UpstreamProtocol {
    match raw {
        None | Some("auto") => UpstreamProtocol::Auto,
        Some("http1") => UpstreamProtocol::Http1,
        Some("http2") => UpstreamProtocol::Http2,
        Some(other) => {
            p.push(
                path,
                format!("`{other}` is not a protocol: use auto, http1 or http2"),
            );
            UpstreamProtocol::Auto
        }
    }
}

fn inbound(raw: RawInbound, p: &mut Problems) -> InboundConfig {
    let upstream = p.url("inbound.upstream", raw.upstream.as_deref());
    InboundConfig {
        listen: p.socket_addr("inbound.listen", raw.listen.as_deref(), "127.0.0.1:15006"),
        tls: raw.tls.and_then(|t| tls::server_tls("inbound.tls", t, p)),
        upstream_tls: tls::client_tls(
            "inbound.upstream_tls",
            raw.upstream_tls,
            upstream.as_ref(),
            p,
        ),
        upstream: upstream.unwrap_or_else(placeholder_url),
        protocol: protocol("inbound.protocol", raw.protocol.as_deref(), p),
        routes: route_templates("inbound.routes", raw.routes.unwrap_or_default(), p),
        timeouts: limits::timeouts("inbound.timeouts", raw.timeouts, &DEFAULT_TIMEOUTS, p),
        limits: limits::limits("inbound.limits", raw.limits, &DEFAULT_LIMITS, p),
        capture: capture(raw.capture.unwrap_or_default(), p),
    }
}

fn route_templates(path: &str, raw: Vec<String>, p: &mut Problems) -> Vec<RouteTemplate> {
    let mut routes = Vec::with_capacity(raw.len());
    for (i, template) in raw.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !template.starts_with('/') {
            p.push(at, format!("`{template}` must start with `/`"));
            continue;
        }
        let mut segments = Vec::new();
        let mut ok = true;
        for segment in template[1..].split('/') {
            if segment.starts_with('{') && segment.ends_with('}') && segment.len() > 2 {
                segments.push(None);
            } else if segment.contains(['{', '}']) {
                p.push(
                    &at,
                    format!("`{template}`: a `{{placeholder}}` must be a whole path segment"),
                );
                ok = false;
                break;
            } else {
                segments.push(Some(segment.to_owned()));
            }
        }
        if ok {
            routes.push(RouteTemplate {
                template: Arc::from(template.as_str()),
                segments,
            });
        }
    }
    routes
}

fn header_names(path: &str, raw: Vec<String>, p: &mut Problems) -> Vec<http::HeaderName> {
    let mut names = Vec::with_capacity(raw.len());
    for (i, name) in raw.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        let lower = name.to_ascii_lowercase();
        if SECRET_HEADERS.contains(&lower.as_str()) {
            p.push(
                at,
                format!("`{name}` carries credentials and is never recorded"),
            );
            continue;
        }
        match http::HeaderName::from_bytes(lower.as_bytes()) {
            Ok(header) => names.push(header),
            Err(_) => p.push(at, format!("`{name}` is not a valid header name")),
        }
    }
    names
}

fn capture(raw: RawCapture, p: &mut Problems) -> CaptureConfig {
    CaptureConfig {
        request_headers: header_names(
            "inbound.capture.request_headers",
            raw.request_headers.unwrap_or_default(),
            p,
        ),
        response_headers: header_names(
            "inbound.capture.response_headers",
            raw.response_headers.unwrap_or_default(),
            p,
        ),
        query: raw.query.unwrap_or(false),
    }
}

fn outbound(raw: RawOutbound, p: &mut Problems) -> OutboundConfig {
    let timeouts = limits::timeouts("outbound.timeouts", raw.timeouts, &DEFAULT_TIMEOUTS, p);
    let limits = limits::limits("outbound.limits", raw.limits, &DEFAULT_LIMITS, p);
    let mut routes = Vec::new();
    for (i, route) in raw.routes.unwrap_or_default().into_iter().enumerate() {
        let at = |key: &str| format!("outbound.routes[{i}].{key}");
        let name = route.name.unwrap_or_default();
        if name.trim().is_empty() {
            p.push(at("name"), "is required");
        } else if routes
            .iter()
            .any(|r: &OutboundRoute| &*r.name == name.trim())
        {
            p.push(at("name"), format!("`{name}` is used by another route"));
        }
        let Some(listen) = route.listen.as_deref() else {
            p.push(at("listen"), "is required");
            continue;
        };
        let listen = p.socket_addr(&at("listen"), Some(listen), "127.0.0.1:0");
        let upstream = p.url(&at("upstream"), route.upstream.as_deref());
        routes.push(OutboundRoute {
            name: Arc::from(name.trim()),
            listen,
            upstream_tls: tls::client_tls(
                &at("upstream_tls"),
                route.upstream_tls,
                upstream.as_ref(),
                p,
            ),
            upstream: upstream.unwrap_or_else(placeholder_url),
            protocol: protocol(&at("protocol"), route.protocol.as_deref(), p),
            timeouts: limits::timeouts(&at("timeouts"), route.timeouts, &timeouts, p),
            limits: limits::limits(&at("limits"), route.limits, &limits, p),
        });
    }
    OutboundConfig {
        routes,
        route_templates: route_templates(
            "outbound.route_templates",
            raw.route_templates.unwrap_or_default(),
            p,
        ),
        forward_proxy: raw
            .forward_proxy
            .map_or(ForwardProxy::Disabled, |raw| forward_proxy(raw, p)),
        timeouts,
        limits,
    }
}

fn forward_proxy(raw: RawForwardProxy, p: &mut Problems) -> ForwardProxy {
    let timeouts = limits::timeouts(
        "outbound.forward_proxy.timeouts",
        raw.timeouts,
        &DEFAULT_TIMEOUTS,
        p,
    );
    let limits = limits::limits(
        "outbound.forward_proxy.limits",
        raw.limits,
        &DEFAULT_LIMITS,
        p,
    );
    let Some(listen) = raw.listen.as_deref() else {
        p.push("outbound.forward_proxy.listen", "is required");
        return ForwardProxy::Disabled;
    };
    let listen = p.socket_addr("outbound.forward_proxy.listen", Some(listen), "127.0.0.1:0");
    let entries = raw.allow.unwrap_or_default();
    if entries.is_empty() {
        p.push(
            "outbound.forward_proxy.allow",
            "must list at least one host:port: the forward proxy is never open",
        );
    }
    let mut allow = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match allow_target(entry) {
            Ok(target) => allow.push(target),
            Err(message) => p.push(format!("outbound.forward_proxy.allow[{i}]"), message),
        }
    }
    ForwardProxy::Enabled(ForwardProxyConfig {
        listen,
        allow,
        connect: raw.connect.unwrap_or(false),
        timeouts,
        limits,
    })
}

/// Parses `host:port`, `*.suffix:port`, `host:*`, `[v6]:port`.
fn allow_target(entry: &str) -> Result<AllowTarget, String> {
    let help = || {
        format!("`{entry}` is not host:port (e.g. api.example.com:443, *.example.com:443, host:*)")
    };
    let (host, port) = entry.trim().rsplit_once(':').ok_or_else(help)?;
    let port = match port {
        "*" => None,
        digits => Some(digits.parse::<u16>().map_err(|_| help())?),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    let valid = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !valid || host == "*" {
        return Err(help());
    }
    Ok(AllowTarget { host, port })
}

fn formats(path: &str, raw: Vec<String>, p: &mut Problems) -> Vec<Format> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let format = match name.as_str() {
            "w3c" | "tracecontext" => Format::W3c,
            "b3" | "b3multi" => Format::B3,
            "b3single" => Format::B3Single,
            other => {
                p.push(
                    format!("{path}[{i}]"),
                    format!("`{other}` is not a format: use w3c, b3 or b3single"),
                );
                continue;
            }
        };
        if out.contains(&format) {
            p.push(format!("{path}[{i}]"), format!("`{name}` is listed twice"));
        } else {
            out.push(format);
        }
    }
    out
}

fn propagation(raw: RawPropagation, p: &mut Problems) -> PropagationConfig {
    let extract = match raw.extract {
        None => vec![Format::W3c, Format::B3],
        Some(list) => formats("propagation.extract", list, p),
    };
    PropagationConfig {
        extract,
        inject: formats("propagation.inject", raw.inject.unwrap_or_default(), p),
    }
}

/// Where spans go when no exporter is named: `tracehop collector`'s default address.
const DEFAULT_ZIPKIN: &str = "http://127.0.0.1:9411/api/v2/spans";
/// The OTLP/HTTP path for traces (OTLP specification, "OTLP/HTTP Request"),
/// used when `export.otlp` names no path.
const OTLP_TRACES_PATH: &str = "/v1/traces";

fn export(raw: RawExport, p: &mut Problems) -> ExportConfig {
    let retry = raw.retry.unwrap_or_default();
    let gzip = raw.gzip.unwrap_or(false);
    let resolve = endpoints::resolve(raw.resolve.as_deref(), raw.resolve_interval.as_deref(), p);
    // As written: a list whose entries are all invalid or repeated is
    // still a list.
    let listed = |urls: Option<&RawUrls>| urls.map_or(0, |urls| urls.0.len());
    endpoints::check_dns(
        resolve,
        &[
            ("export.zipkin", listed(raw.zipkin.as_ref())),
            (
                "export.otlp",
                listed(raw.otlp.as_ref().and_then(|o| o.url.as_ref())),
            ),
        ],
        p,
    );
    let otlp = raw.otlp.map(|otlp| otlp_destination(otlp, gzip, p));
    // Zipkin is the default destination, unless only OTLP is named.
    let zipkin = match (raw.zipkin, &otlp) {
        (None, Some(_)) => {
            for (key, set) in [
                ("export.tls", raw.tls.is_some()),
                ("export.headers", raw.headers.is_some()),
            ] {
                if set {
                    p.push(
                        key,
                        "applies to export.zipkin, which is not set (OTLP has its own under export.otlp)",
                    );
                }
            }
            None
        }
        (urls, _) => {
            let urls = urls.unwrap_or_else(|| RawUrls(vec![DEFAULT_ZIPKIN.to_owned()]));
            let urls = endpoints::urls("export.zipkin", urls, p);
            Some(Destination {
                tls: tls::client_tls("export.tls", raw.tls, urls.first(), p),
                headers: tls::headers("export.headers", raw.headers.unwrap_or_default(), p),
                urls: at_least_one(urls),
                gzip,
            })
        }
    };
    let settings = ExportSettings {
        zipkin,
        otlp,
        queue_capacity: p.at_least_one("export.queue_capacity", raw.queue_capacity, 8192),
        batch_size: p.at_least_one("export.batch_size", raw.batch_size, 512),
        batch_interval: p.positive_duration(
            "export.batch_interval",
            raw.batch_interval.as_deref(),
            Duration::from_secs(1),
        ),
        timeout: p.positive_duration(
            "export.timeout",
            raw.timeout.as_deref(),
            Duration::from_secs(5),
        ),
        retry: RetryConfig {
            initial_backoff: p.positive_duration(
                "export.retry.initial_backoff",
                retry.initial_backoff.as_deref(),
                Duration::from_millis(200),
            ),
            max_backoff: p.positive_duration(
                "export.retry.max_backoff",
                retry.max_backoff.as_deref(),
                Duration::from_secs(5),
            ),
            max_elapsed: p.duration(
                "export.retry.max_elapsed",
                retry.max_elapsed.as_deref(),
                Duration::from_secs(30),
            ),
        },
        shutdown_timeout: p.duration(
            "export.shutdown_timeout",
            raw.shutdown_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        resolve,
    };
    if settings.batch_size > settings.queue_capacity {
        p.push(
            "export.batch_size",
            format!(
                "{} is larger than export.queue_capacity ({})",
                settings.batch_size, settings.queue_capacity
            ),
        );
    }
    if raw.enabled == Some(false) {
        ExportConfig::Disabled
    } else {
        ExportConfig::Enabled(settings)
    }
}

/// `urls`, or the placeholder when none was valid (a problem is recorded
/// already, so the config is never used).
fn at_least_one(urls: Vec<UpstreamUrl>) -> Vec<UpstreamUrl> {
    if urls.is_empty() {
        vec![placeholder_url()]
    } else {
        urls
    }
}

/// `export.otlp`; its `gzip` defaults to `export.gzip`, its TLS and headers
/// are its own (the Zipkin collector's credentials never go to it). A URL
/// without a path gets OTLP's `/v1/traces`.
fn otlp_destination(raw: RawOtlp, gzip: bool, p: &mut Problems) -> Destination {
    let urls = match raw.url {
        Some(urls) if raw.bare_list => endpoints::urls("export.otlp", urls, p),
        Some(urls) => endpoints::urls("export.otlp.url", urls, p),
        None => {
            p.push("export.otlp.url", "is required");
            Vec::new()
        }
    };
    let urls: Vec<UpstreamUrl> = urls
        .into_iter()
        .map(|mut url| {
            if url.path == "/" {
                url.path = OTLP_TRACES_PATH.to_owned();
            }
            url
        })
        .collect();
    Destination {
        tls: tls::client_tls("export.otlp.tls", raw.tls, urls.first(), p),
        headers: tls::headers("export.otlp.headers", raw.headers.unwrap_or_default(), p),
        urls: at_least_one(urls),
        gzip: raw.gzip.unwrap_or(gzip),
    }
}

fn log(raw: RawLog, p: &mut Problems) -> LogConfig {
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.push(
                "log.format",
                format!("`{other}` is not a format: use text or json"),
            );
            LogFormat::Text
        }
    };
    let level = raw.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        p.push(
            "log.level",
            format!("`{level}` is not a level or filter (e.g. info, debug, tracehop=debug)"),
        );
    }
    LogConfig {
        format,
        level,
        access_log: raw.access_log.unwrap_or(true),
        summary_viewer: None,
    }
}

fn shutdown(raw: RawShutdown, p: &mut Problems) -> ShutdownConfig {
    ShutdownConfig {
        drain_delay: p.duration(
            "shutdown.drain_delay",
            raw.drain_delay.as_deref(),
            Duration::ZERO,
        ),
        grace_period: p.duration(
            "shutdown.grace_period",
            raw.grace_period.as_deref(),
            Duration::from_secs(20),
        ),
    }
}

fn inference(raw: RawInference, p: &mut Problems) -> InferenceConfig {
    let parents = match raw.parents.as_deref() {
        None | Some("unambiguous") => ParentInference::Unambiguous,
        Some("off") => ParentInference::Off,
        Some(other) => {
            p.push(
                "inference.parents",
                format!("`{other}` is not a choice: use unambiguous or off"),
            );
            ParentInference::Unambiguous
        }
    };
    InferenceConfig { parents }
}
