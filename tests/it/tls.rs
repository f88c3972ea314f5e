//! TLS end to end: HTTPS inbound (HTTP/1.1 and HTTP/2 via ALPN), mTLS,
//! HTTPS upstream and collector with a private CA, certificate rotation,
//! and handshake failures. Certificates are generated per test with rcgen
//! into a temporary directory that is removed afterwards.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    FakeCollector, FakeUpstream, Sidecar, Stopper, Yaml, bind, eventually, scrape_until, stopper,
};
use tracehop::config::{CertKeyPaths, ClientTlsConfig, Trust};
use tracehop::server::{self, Body, ServerOptions, full};
use tracehop::tls::{Alpn, ClientTls, HttpsConnector, pem, server as tls_server};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A private CA and the files it issued, in a directory removed on drop.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    fn new(name: &str) -> Self {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "tracehop-tls-{name}-{}-{unique}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA cert");
        let pki = Self { dir, ca };
        pki.write("ca.pem", &pki.ca.pem());
        pki
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.path(file);
        // Written then renamed, as Kubernetes swaps secret files atomically.
        let partial = self.path(&format!(".{file}.partial"));
        std::fs::write(&partial, text).expect("write");
        std::fs::rename(&partial, &path).expect("rename");
        path
    }

    /// Issues a certificate named `stem` for `names` (DNS names, IPs, or
    /// `spiffe://` URIs) with common name `cn`; returns (cert, key) paths.
    fn issue(&self, stem: &str, cn: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        for name in names {
            let san = if name.starts_with("spiffe://") {
                SanType::URI((*name).try_into().expect("ia5"))
            } else if let Ok(ip) = name.parse() {
                SanType::IpAddress(ip)
            } else {
                SanType::DnsName((*name).try_into().expect("ia5"))
            };
            params.subject_alt_names.push(san);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf cert");
        (
            self.write(&format!("{stem}.crt"), &cert.pem()),
            self.write(&format!("{stem}.key"), &key.serialize_pem()),
        )
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    fn server(&self) -> (PathBuf, PathBuf) {
        self.issue("server", "tracehop", &["localhost", "127.0.0.1"])
    }

    /// A test client trusting this CA, optionally presenting a certificate.
    fn client(&self, alpn: Alpn, identity: Option<(PathBuf, PathBuf)>) -> HttpsClient {
        let tls = ClientTls::load(Some(&ClientTlsConfig {
            trust: Trust::CaFile(self.path("ca.pem")),
            server_name: None,
            client_cert: identity.map(|(cert, key)| CertKeyPaths { cert, key }),
        }))
        .expect("client TLS");
        let connector = HttpsConnector::new(HttpConnector::new(), Some(&tls), alpn);
        let mut builder = HyperClient::builder(TokioExecutor::new());
        builder.http2_only(alpn == Alpn::Http2);
        HttpsClient(builder.build(connector))
    }
}

struct HttpsClient(HyperClient<HttpsConnector, Full<Bytes>>);

impl HttpsClient {
    async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, String), String> {
        let mut request = Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::default()).expect("request");
        let response = self
            .0
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A sidecar in front of `upstream`, exporting to `collector`, with extra
/// YAML lines for `inbound` (indented two spaces).
async fn sidecar(inbound: &str, upstream: SocketAddr, collector: SocketAddr) -> Sidecar {
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    Sidecar::start(yaml, upstream, collector).await
}

fn tls_yaml(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "  tls:\n    cert: {}\n    key: {}\n{extra}",
        cert.display(),
        key.display()
    )
}

fn https_base(sidecar: &Sidecar) -> String {
    format!("https://localhost:{}", sidecar.running.inbound_addr.port())
}

#[tokio::test]
async fn https_inbound_serves_http1_and_http2_and_tags_the_span() {
    let pki = Pki::new("inbound");
    let (cert, key) = pki.server();
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = sidecar(&tls_yaml(&cert, &key, ""), upstream.addr, collector.addr).await;
    let base = https_base(&sidecar);

    let (status, body) = pki
        .client(Alpn::Http1, None)
        .get(&format!("{base}/users/1"), &[("traceparent", PARENT)])
        .await
        .expect("HTTPS over HTTP/1.1");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    let seen = upstream.last();
    let traceparent = seen.headers["traceparent"].to_str().unwrap();
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    let spans = collector.wait_for(1).await;
    let tags = &spans[0]["tags"];
    assert_eq!(tags["url.scheme"], "https");
    assert_eq!(tags["tls.protocol.version"], "1.3");
    assert!(
        tags["tls.cipher"].as_str().unwrap().starts_with("TLS_"),
        "{tags}"
    );
    assert_eq!(tags["tls.next_protocol"], "http/1.1");
    assert_eq!(tags["network.protocol.version"], "1.1");
    assert!(tags.get("tls.client.subject").is_none());

    let (status, _) = pki
        .client(Alpn::Http2, None)
        .get(&format!("{base}/users/2"), &[])
        .await
        .expect("HTTPS over HTTP/2");
    assert_eq!(status, StatusCode::OK);
    let spans = collector.wait_for(2).await;
    let tags = &spans[1]["tags"];
    assert_eq!(tags["network.protocol.version"], "2");
    assert_eq!(tags["tls.next_protocol"], "h2");
    assert_eq!(tags["url.scheme"], "https");
    sidecar.stop().await;
}

#[tokio::test]
async fn mtls_records_the_client_identity_and_refuses_clients_without_a_certificate() {
    let pki = Pki::new("mtls");
    let (cert, key) = pki.server();
    let spiffe = "spiffe://cluster.local/ns/shop/sa/web";
    let identity = pki.issue("web", "web", &[spiffe, "web.shop.svc"]);
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let ca = format!("    client_ca: {}\n", pki.path("ca.pem").display());
    let sidecar = sidecar(&tls_yaml(&cert, &key, &ca), upstream.addr, collector.addr).await;
    let base = https_base(&sidecar);

    let (status, _) = pki
        .client(Alpn::Http1, Some(identity))
        .get(&base, &[])
        .await
        .expect("a client with a certificate is served");
    assert_eq!(status, StatusCode::OK);
    let spans = collector.wait_for(1).await;
    let tags = &spans[0]["tags"];
    assert_eq!(tags["tls.client.subject"], "CN=web");
    assert_eq!(tags["tls.client.san"], format!("{spiffe},web.shop.svc"));

    let refused = pki.client(Alpn::Http1, None).get(&base, &[]).await;
    assert!(refused.is_err(), "no certificate, no service: {refused:?}");
    scrape_until(
        &sidecar.admin,
        r#"tracehop_tls_handshake_failures_total{reason="no_client_certificate"} 1"#,
    )
    .await;
    assert_eq!(
        upstream.seen().len(),
        1,
        "the refused request never reached the app"
    );
    sidecar.stop().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_400_and_the_listener_keeps_serving() {
    let pki = Pki::new("plain");
    let (cert, key) = pki.server();
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = sidecar(&tls_yaml(&cert, &key, ""), upstream.addr, collector.addr).await;

    let mut raw = tokio::net::TcpStream::connect(sidecar.running.inbound_addr)
        .await
        .expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("expects TLS"), "{answer}");

    let (status, _) = pki
        .client(Alpn::Http1, None)
        .get(&https_base(&sidecar), &[])
        .await
        .expect("TLS clients are still served");
    assert_eq!(status, StatusCode::OK);
    scrape_until(
        &sidecar.admin,
        r#"tracehop_tls_handshake_failures_total{reason="plain_http"} 1"#,
    )
    .await;
    sidecar.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_reaches_new_connections_while_old_ones_keep_working() {
    let old_ca = Pki::new("rotate-old");
    let new_ca = Pki::new("rotate-new");
    let (cert, key) = old_ca.server();
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let inbound = tls_yaml(&cert, &key, "    reload_interval: 20ms\n");
    let sidecar = sidecar(&inbound, upstream.addr, collector.addr).await;
    let base = https_base(&sidecar);

    let old_client = old_ca.client(Alpn::Http1, None);
    old_client
        .get(&base, &[])
        .await
        .expect("served by the old certificate");
    assert!(
        new_ca
            .client(Alpn::Http1, None)
            .get(&base, &[])
            .await
            .is_err()
    );

    // A broken pair (the new certificate with the old key) is refused.
    let (new_cert, new_key) = new_ca.server();
    old_ca.write(
        "server.crt",
        &std::fs::read_to_string(&new_cert).expect("new cert"),
    );
    scrape_until(
        &sidecar.admin,
        r#"tracehop_tls_certificate_reloads_total{result="rejected"} 1"#,
    )
    .await;
    old_client
        .get(&base, &[])
        .await
        .expect("the old certificate stays");

    old_ca.write(
        "server.key",
        &std::fs::read_to_string(&new_key).expect("new key"),
    );
    scrape_until(
        &sidecar.admin,
        r#"tracehop_tls_certificate_reloads_total{result="loaded"} 1"#,
    )
    .await;
    let (status, _) = new_ca
        .client(Alpn::Http1, None)
        .get(&base, &[])
        .await
        .expect("new connections get the new certificate");
    assert_eq!(status, StatusCode::OK);
    // The pooled connection from before the rotation still works: a new
    // one would fail, since this client trusts only the old CA.
    let (status, _) = old_client
        .get(&base, &[])
        .await
        .expect("open connection kept");
    assert_eq!(status, StatusCode::OK);
    sidecar.stop().await;
}

/// An HTTPS server answering `answer` and recording request headers and
/// the peer each request came from.
struct HttpsFake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    _stop: Stopper,
}

impl HttpsFake {
    async fn start(cert: &Path, key: &Path, status: u16) -> Self {
        let store = tls_server::CertStore::new(pem::load_pair(cert, key).expect("pair"));
        let config =
            tls_server::server_config(Arc::new(store), tls_server::ClientVerification::Off)
                .expect("server config");
        let metrics = tracehop::metrics::Metrics::new();
        let options = ServerOptions {
            tls: Some(Arc::new(tls_server::TlsServer::new(
                config,
                metrics.tls.clone(),
            ))),
            ..ServerOptions::default()
        };
        let (listener, addr) = bind().await;
        let (stop, shutdown) = stopper();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let record_peer = peers.clone();
        let handler = move |request: Request<tracehop::server::RequestBody>,
                            conn: server::ConnInfo| {
            let record = record.clone();
            record_peer.lock().expect("lock").push(conn.peer);
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                record.lock().expect("lock").push((parts.headers, body));
                let mut response: Response<Body> = Response::new(full("secure hello"));
                *response.status_mut() = StatusCode::from_u16(status).expect("status");
                response
            }
        };
        tokio::spawn(server::serve(listener, options, handler, shutdown));
        Self {
            addr,
            seen,
            peers,
            _stop: stop,
        }
    }

    fn seen(&self) -> Vec<(HeaderMap, Bytes)> {
        self.seen.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn https_upstream_with_a_private_ca_and_a_server_name_override() {
    let pki = Pki::new("upstream");
    let (cert, key) = pki.issue("app", "app", &["app.internal"]);
    let app = HttpsFake::start(&cert, &key, 200).await;
    let collector = FakeCollector::start().await;
    let yaml = format!(
        "log:\n  access_log: false\ninbound:\n  listen: 127.0.0.1:0\n  upstream: https://{}\n  \
         upstream_tls:\n    ca_file: {}\n    server_name: app.internal\n\
         admin:\n  listen: 127.0.0.1:0\nexport:\n  zipkin: http://{}/api/v2/spans\n  batch_interval: 20ms\n",
        app.addr,
        pki.path("ca.pem").display(),
        collector.addr
    );
    let config = tracehop::config::load(&yaml, Default::default()).expect("config");
    let sidecar = Sidecar::from_config(config).await;
    let reply = crate::support::Client::http1()
        .get(
            &format!("{}/orders", sidecar.base),
            &[("traceparent", PARENT)],
        )
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "secure hello")
    );
    let (headers, _) = app.seen().pop().expect("the app was reached over TLS");
    assert!(
        headers["traceparent"]
            .to_str()
            .unwrap()
            .contains("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    // The TLS connection to the app is kept and reused.
    let client = crate::support::Client::http1();
    for _ in 0..3 {
        let reply = client.get(&format!("{}/again", sidecar.base), &[]).await;
        assert_eq!(reply.body, "secure hello");
    }
    let peers = app.peers.lock().expect("lock").clone();
    assert_eq!(peers.len(), 4);
    assert_eq!(
        peers[1..]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1,
        "one upstream connection for one client connection: {peers:?}"
    );
    sidecar.stop().await;
}

#[tokio::test]
async fn https_collector_receives_spans_with_the_configured_auth_header() {
    let pki = Pki::new("collector");
    let (cert, key) = pki.server();
    let collector = HttpsFake::start(&cert, &key, 202).await;
    let upstream = FakeUpstream::start().await;
    let token = pki.write("token", "Bearer s3cret\n");
    let yaml = format!(
        "log:\n  access_log: false\ninbound:\n  listen: 127.0.0.1:0\n  upstream: http://{}\n\
         admin:\n  listen: 127.0.0.1:0\n\
         export:\n  zipkin: https://localhost:{}/api/v2/spans\n  batch_interval: 20ms\n  \
         tls:\n    ca_file: {}\n  headers:\n    Authorization: {{value_from_file: {}}}\n    \
         X-Api-Key: {{value: literal-key}}\n",
        upstream.addr,
        collector.addr.port(),
        pki.path("ca.pem").display(),
        token.display(),
    );
    let config = tracehop::config::load(&yaml, Default::default()).expect("config");
    let rendered = config.to_yaml();
    assert!(rendered.contains("<redacted>"), "{rendered}");
    assert!(!rendered.contains("literal-key"), "{rendered}");
    let sidecar = Sidecar::from_config(config).await;
    crate::support::Client::http1()
        .get(&sidecar.base, &[])
        .await;
    eventually("an upload over HTTPS", || !collector.seen().is_empty()).await;
    let (headers, body) = collector.seen().remove(0);
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["x-api-key"], "literal-key");
    assert_eq!(headers["b3"], "0");
    let spans: Vec<Value> = serde_json::from_slice(&body).expect("JSON spans");
    assert_eq!(spans[0]["kind"], "SERVER");
    sidecar.stop().await;
}
