//! `load_material`: every file problem named by its YAML key and file.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, KeyPair};

use super::*;
use crate::config::{self, Overrides};

/// A temporary directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "tracehop-unit-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A self-signed pair; `expired` dates it in the past.
    fn pair(&self, stem: &str, expired: bool) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (
            self.write(&format!("{stem}.crt"), &cert.pem()),
            self.write(&format!("{stem}.key"), &key.serialize_pem()),
        )
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(inbound_tls: &str, rest: &str) -> Config {
    let yaml = format!("inbound:\n  upstream: http://127.0.0.1:1\n{inbound_tls}{rest}");
    config::load(&yaml, Overrides::default()).unwrap()
}

fn tls(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "  tls:\n    cert: {}\n    key: {}\n{extra}",
        cert.display(),
        key.display()
    )
}

fn only_error(config: &Config) -> ConfigError {
    let errors = load_material_with(config, &|_| None)
        .err()
        .expect("rejected");
    assert_eq!(errors.0.len(), 1, "{errors}");
    errors.0.into_iter().next().unwrap()
}

#[test]
fn a_good_pair_loads_without_warnings() {
    let dir = Dir::new("good");
    let (cert, key) = dir.pair("server", false);
    let material = load_material_with(&config(&tls(&cert, &key, ""), ""), &|_| None).unwrap();
    assert!(material.inbound.is_some());
    assert!(material.warnings.is_empty(), "{:?}", material.warnings);
}

#[test]
fn file_problems_name_the_key_and_the_file() {
    let dir = Dir::new("problems");
    let (cert, key) = dir.pair("server", false);
    let (_, other_key) = dir.pair("other", false);
    let garbage = dir.write("garbage.pem", "not pem at all\n");
    let missing = dir.0.join("missing.pem");
    let cases = [
        (tls(&missing, &key, ""), "inbound.tls.cert", "missing.pem"),
        (tls(&cert, &missing, ""), "inbound.tls.key", "missing.pem"),
        (
            tls(&garbage, &key, ""),
            "inbound.tls.cert",
            "no PEM certificate",
        ),
        (
            tls(&cert, &garbage, ""),
            "inbound.tls.key",
            "no private key",
        ),
        (
            tls(&cert, &other_key, ""),
            "inbound.tls.key",
            "does not belong",
        ),
        (
            tls(
                &cert,
                &key,
                &format!("    client_ca: {}\n", missing.display()),
            ),
            "inbound.tls.client_ca",
            "missing.pem",
        ),
    ];
    for (section, path, message) in cases {
        let error = only_error(&config(&section, ""));
        assert_eq!(error.path, path, "{section}");
        assert!(error.message.contains(message), "{}", error.message);
    }
}

#[test]
fn an_expired_certificate_is_a_warning() {
    let dir = Dir::new("expired");
    let (cert, key) = dir.pair("old", true);
    let material = load_material_with(&config(&tls(&cert, &key, ""), ""), &|_| None).unwrap();
    assert_eq!(material.warnings.len(), 1);
    assert!(material.warnings[0].starts_with("inbound.tls.cert: certificate"));
    assert!(material.warnings[0].contains("old.crt expired"));
}

#[test]
fn client_settings_and_headers_are_checked() {
    let dir = Dir::new("client");
    let (cert, key) = dir.pair("client", false);
    let missing = dir.0.join("nope.pem");
    let upstream = format!(
        "outbound:\n  routes:\n    - name: users\n      listen: 127.0.0.1:0\n      \
         upstream: https://users:443\n      upstream_tls: {{ca_file: {}}}\n",
        missing.display()
    );
    let error = only_error(&config("", &upstream));
    assert_eq!(error.path, "outbound.routes[0].upstream_tls.ca_file");
    let export = format!(
        "export:\n  zipkin: https://z:9411/api/v2/spans\n  \
         tls: {{client_cert: {}, client_key: {}}}\n  \
         headers: {{Authorization: {{value_from_env: ZIPKIN_TOKEN}}}}\n",
        cert.display(),
        key.display()
    );
    let error = only_error(&config("", &export));
    assert_eq!(error.path, "export.headers.authorization");
    assert!(error.message.contains("ZIPKIN_TOKEN"));
    let env = |name: &str| (name == "ZIPKIN_TOKEN").then(|| "Bearer t".to_owned());
    let material = load_material_with(&config("", &export), &env).unwrap();
    assert!(material.export.zipkin.tls.is_some());
    assert_eq!(material.export.zipkin.headers[0].1, "Bearer t");
    assert!(material.export.otlp.headers.is_empty());
    // OTLP's headers are its own, under its own key.
    let both = format!(
        "{export}  otlp:\n    url: http://otel:4318/v1/traces\n    \
         headers: {{x-api-key: {{value_from_env: OTLP_KEY}}}}\n"
    );
    let zipkin_only = |name: &str| (name == "ZIPKIN_TOKEN").then(|| "Bearer t".to_owned());
    let errors = load_material_with(&config("", &both), &zipkin_only)
        .err()
        .expect("OTLP_KEY is unset");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "export.otlp.headers.x-api-key");
    let env = |name: &str| match name {
        "ZIPKIN_TOKEN" => Some("Bearer t".to_owned()),
        "OTLP_KEY" => Some("k1".to_owned()),
        _ => None,
    };
    let material = load_material_with(&config("", &both), &env).unwrap();
    assert_eq!(material.export.zipkin.headers.len(), 1);
    assert_eq!(material.export.otlp.headers[0].0, "x-api-key");
    assert_eq!(material.export.otlp.headers[0].1, "k1");
    assert!(material.export.otlp.tls.is_none(), "http:// needs no TLS");
}
