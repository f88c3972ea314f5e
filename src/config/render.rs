//! The effective configuration as YAML, for `tracehop check-config`.
//!
//! Shows every value after defaults and overrides were applied, in the
//! same shape as the file, so the output can be saved and loaded back.
//! Secrets are never printed.

use serde_json::{Value, json};

use super::types::*;

fn duration(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn url(u: &UpstreamUrl) -> String {
    u.to_string()
}

/// One URL as a string (the form most configs use), several as a list.
fn urls(urls: &[UpstreamUrl]) -> Value {
    match urls {
        [one] => json!(url(one)),
        many => json!(many.iter().map(url).collect::<Vec<_>>()),
    }
}

fn protocol(p: UpstreamProtocol) -> &'static str {
    match p {
        UpstreamProtocol::Auto => "auto",
        UpstreamProtocol::Http1 => "http1",
        UpstreamProtocol::Http2 => "http2",
    }
}

fn formats(list: &[Format]) -> Vec<&'static str> {
    list.iter()
        .map(|f| match f {
            Format::W3c => "w3c",
            Format::B3 => "b3",
            Format::B3Single => "b3single",
        })
        .collect()
}

fn templates(list: &[RouteTemplate]) -> Vec<&str> {
    list.iter().map(|r| &*r.template).collect()
}

/// What `check-config` prints instead of a literal secret.
const REDACTED: &str = "<redacted>";

fn server_tls(t: &ServerTlsConfig) -> Value {
    let mut out = json!({
        "cert": t.cert.display().to_string(),
        "key": t.key.display().to_string(),
        "reload_interval": duration(t.reload_interval),
    });
    let (mode, ca) = match &t.client_auth {
        ClientAuth::Off => ("off", None),
        ClientAuth::Optional { ca } => ("optional", Some(ca)),
        ClientAuth::Required { ca } => ("required", Some(ca)),
    };
    out["client_auth"] = json!(mode);
    if let Some(ca) = ca {
        out["client_ca"] = json!(ca.display().to_string());
    }
    out
}

fn client_tls(t: &ClientTlsConfig) -> Value {
    let mut out = match &t.trust {
        Trust::Webpki => json!({"trust": "webpki"}),
        Trust::System => json!({"trust": "system"}),
        Trust::CaFile(path) => json!({"trust": "ca_file", "ca_file": path.display().to_string()}),
    };
    if let Some(name) = &t.server_name {
        out["server_name"] = json!(name);
    }
    if let Some(pair) = &t.client_cert {
        out["client_cert"] = json!(pair.cert.display().to_string());
        out["client_key"] = json!(pair.key.display().to_string());
    }
    out
}

/// Header sources; literal values are replaced by `<redacted>`.
fn headers(list: &[ExtraHeader]) -> Value {
    let map: serde_json::Map<String, Value> = list
        .iter()
        .map(|h| {
            let source = match &h.source {
                SecretSource::Literal(_) => json!({"value": REDACTED}),
                SecretSource::Env(name) => json!({"value_from_env": name}),
                SecretSource::File(path) => json!({"value_from_file": path.display().to_string()}),
            };
            (h.name.to_string(), source)
        })
        .collect();
    Value::Object(map)
}

/// Adds `key: value` to a JSON object when there is a value.
fn set_some(object: &mut Value, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        object[key] = value;
    }
}

fn timeouts(t: &ProxyTimeouts) -> Value {
    json!({
        "header_read": duration(t.header_read),
        "idle": duration(t.idle),
        "request_body": duration(t.request_body),
        "response_body": duration(t.response_body),
        "upstream_connect": duration(t.upstream_connect),
        "upstream_response": duration(t.upstream_response),
    })
}

fn limits(l: &ProxyLimits) -> Value {
    json!({
        "max_header_bytes": l.max_header_bytes,
        "max_connections": l.max_connections,
        "max_concurrent_streams": l.max_concurrent_streams,
    })
}

fn inbound(c: &InboundConfig) -> Value {
    let mut out = json!({
        "listen": c.listen.to_string(),
        "upstream": url(&c.upstream),
        "protocol": protocol(c.protocol),
        "routes": templates(&c.routes),
        "timeouts": timeouts(&c.timeouts),
        "limits": limits(&c.limits),
        "capture": {
            "request_headers": c.capture.request_headers.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
            "response_headers": c.capture.response_headers.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
            "query": c.capture.query,
        },
    });
    set_some(&mut out, "tls", c.tls.as_ref().map(server_tls));
    set_some(
        &mut out,
        "upstream_tls",
        c.upstream_tls.as_ref().map(client_tls),
    );
    out
}

/// An outbound route with its effective timeouts and limits.
fn route(r: &OutboundRoute) -> Value {
    let mut route = json!({
        "name": &*r.name,
        "listen": r.listen.to_string(),
        "upstream": url(&r.upstream),
        "protocol": protocol(r.protocol),
        "timeouts": timeouts(&r.timeouts),
        "limits": limits(&r.limits),
    });
    set_some(
        &mut route,
        "upstream_tls",
        r.upstream_tls.as_ref().map(client_tls),
    );
    route
}

fn outbound(c: &OutboundConfig) -> Value {
    let mut value = json!({
        "routes": c.routes.iter().map(route).collect::<Vec<_>>(),
        "route_templates": templates(&c.route_templates),
        "timeouts": timeouts(&c.timeouts),
        "limits": limits(&c.limits),
    });
    if let ForwardProxy::Enabled(f) = &c.forward_proxy {
        let allow: Vec<String> = f
            .allow
            .iter()
            .map(|a| match a.port {
                Some(port) if a.host.contains(':') => format!("[{}]:{port}", a.host),
                Some(port) => format!("{}:{port}", a.host),
                None => format!("{}:*", a.host),
            })
            .collect();
        value["forward_proxy"] = json!({
            "listen": f.listen.to_string(),
            "allow": allow,
            "connect": f.connect,
            "timeouts": timeouts(&f.timeouts),
            "limits": limits(&f.limits),
        });
    }
    value
}

fn sampler(s: &SamplerSpec) -> Value {
    match s {
        SamplerSpec::Always => json!({"type": "always"}),
        SamplerSpec::Never => json!({"type": "never"}),
        SamplerSpec::Ratio { ratio, cap: None } => json!({"type": "ratio", "ratio": ratio}),
        SamplerSpec::Ratio {
            ratio,
            cap: Some(cap),
        } => json!({
            "type": "ratio",
            "ratio": ratio,
            "max_per_second": cap.per_second,
            "burst": cap.burst,
        }),
        SamplerSpec::RateLimited(limit) => json!({
            "type": "rate_limited",
            "per_second": limit.per_second,
            "burst": limit.burst,
        }),
        SamplerSpec::Adaptive(a) => json!({
            "type": "adaptive",
            "target_per_second": a.target_per_second,
            "window": duration(a.window),
            "min_ratio": a.min_ratio,
            "max_ratio": a.max_ratio,
        }),
    }
}

fn rule(r: &SamplingRule) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("name".into(), json!(&*r.name));
    if let Some(method) = &r.method {
        out.insert("method".into(), json!(method.as_str()));
    }
    match &r.path {
        Some(PathMatch::Exact(path) | PathMatch::Glob(path)) => {
            out.insert("path".into(), json!(path));
        }
        Some(PathMatch::Prefix(prefix)) => {
            out.insert("path_prefix".into(), json!(prefix));
        }
        None => {}
    }
    if !r.headers.is_empty() {
        let headers: Vec<Value> = r
            .headers
            .iter()
            .map(|h| match &h.value {
                // Values were read from UTF-8 text, so this is lossless.
                Some(v) => {
                    json!({"name": h.name.as_str(), "value": String::from_utf8_lossy(v.as_bytes())})
                }
                None => json!({"name": h.name.as_str()}),
            })
            .collect();
        out.insert("headers".into(), Value::Array(headers));
    }
    out.insert("sampler".into(), sampler(&r.sampler));
    Value::Object(out)
}

fn sampling(c: &SamplingConfig) -> Value {
    json!({
        "parent_based": c.parent_based,
        "rules": c.rules.iter().map(rule).collect::<Vec<_>>(),
        "default_rules": c.default_rules,
        "root": sampler(&c.root),
        "keep": {
            "errors": c.keep.errors,
            "slower_than": c.keep.slower_than.map_or_else(|| "0s".to_owned(), duration),
            "max_per_second": c.keep.limit.per_second,
        },
    })
}

fn export(c: &ExportConfig) -> Value {
    let ExportConfig::Enabled(e) = c else {
        return json!({"enabled": false});
    };
    let mut out = json!({
        "enabled": true,
        "queue_capacity": e.queue_capacity,
        "batch_size": e.batch_size,
        "batch_interval": duration(e.batch_interval),
        "timeout": duration(e.timeout),
        "retry": {
            "initial_backoff": duration(e.retry.initial_backoff),
            "max_backoff": duration(e.retry.max_backoff),
            "max_elapsed": duration(e.retry.max_elapsed),
        },
        "shutdown_timeout": duration(e.shutdown_timeout),
    });
    if let Resolve::Dns { interval } = e.resolve {
        out["resolve"] = json!("dns");
        out["resolve_interval"] = json!(duration(interval));
    }
    if let Some(zipkin) = &e.zipkin {
        out["zipkin"] = urls(&zipkin.urls);
        out["gzip"] = json!(zipkin.gzip);
        destination_access(&mut out, zipkin);
    }
    if let Some(otlp) = &e.otlp {
        let mut block = json!({"url": urls(&otlp.urls), "gzip": otlp.gzip});
        destination_access(&mut block, otlp);
        out["otlp"] = block;
    }
    out
}

/// The `tls` and `headers` keys of one destination, when set.
fn destination_access(out: &mut Value, d: &Destination) {
    set_some(out, "tls", d.tls.as_ref().map(client_tls));
    set_some(
        out,
        "headers",
        (!d.headers.is_empty()).then(|| headers(&d.headers)),
    );
}

impl Config {
    /// The effective configuration as a YAML document.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.to_value())
            .unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The keys (dotted YAML paths) whose value differs in `new` and that
    /// only a restart applies: everything but `sampling`, which reloads.
    pub fn restart_needed(&self, new: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        differences("", &self.to_value(), &new.to_value(), &mut changed);
        changed.retain(|key| key != "sampling" && !key.starts_with("sampling."));
        changed
    }

    /// The effective configuration as a JSON value, one key per YAML key.
    fn to_value(&self) -> Value {
        let tags: serde_json::Map<String, Value> = self
            .service
            .resource_tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "service": {"name": &*self.service.name, "tags": tags},
            "inbound": inbound(&self.inbound),
            "outbound": outbound(&self.outbound),
            "propagation": {
                "extract": formats(&self.propagation.extract),
                "inject": formats(&self.propagation.inject),
            },
            "sampling": sampling(&self.sampling),
            "export": export(&self.export),
            "admin": {"listen": self.admin.listen.to_string()},
            "log": {
                "format": if self.log.format == LogFormat::Json { "json" } else { "text" },
                "level": &self.log.level,
                "access_log": self.log.access_log,
            },
            "shutdown": {
                "drain_delay": duration(self.shutdown.drain_delay),
                "grace_period": duration(self.shutdown.grace_period),
            },
            "inference": {"parents": self.inference.parents.as_str()},
        })
    }
}

/// The dotted paths under `path` where `old` and `new` differ: the keys of
/// mappings, the list itself for lists.
fn differences(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let missing = Value::Null;
                differences(
                    &at,
                    a.get(key).unwrap_or(&missing),
                    b.get(key).unwrap_or(&missing),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(path.to_owned()),
        _ => {}
    }
}
