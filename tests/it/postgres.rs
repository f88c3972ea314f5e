//! The postgres route against a real PostgreSQL: the server named by
//! `TRACEHOP_TEST_POSTGRES` (a URL with a password user, as
//! `scripts/postgres.sh start` prints). Without it each test says why it
//! skips and returns; `.ci/run` sets it, so CI runs them all. When it is
//! set but the server cannot be reached, the tests fail.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::support::{FakeCollector, Sidecar, Yaml, closed_port, eventually, within};

/// The server's URL, or `None` after saying why the test skips.
fn server(test: &str) -> Option<tokio_postgres::Config> {
    match std::env::var("TRACEHOP_TEST_POSTGRES") {
        Ok(url) => Some(
            url.parse()
                .expect("TRACEHOP_TEST_POSTGRES is a postgres:// URL"),
        ),
        Err(_) => {
            eprintln!(
                "{test}: skipped: TRACEHOP_TEST_POSTGRES is not set \
                 (scripts/postgres.sh start prints a server URL)"
            );
            None
        }
    }
}

/// The database's `host:port`.
fn address(config: &tokio_postgres::Config) -> String {
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("TRACEHOP_TEST_POSTGRES must name a TCP host, not {other:?}"),
    };
    format!(
        "{host}:{}",
        config.get_ports().first().copied().unwrap_or(5432)
    )
}

/// The same credentials, pointed at `addr` (the route).
fn through(config: &tokio_postgres::Config, addr: SocketAddr) -> tokio_postgres::Config {
    let mut via = tokio_postgres::Config::new();
    via.host(addr.ip().to_string())
        .port(addr.port())
        .user(config.get_user().unwrap_or("postgres"))
        .dbname(config.get_dbname().unwrap_or("postgres"));
    if let Some(password) = config.get_password() {
        via.password(password);
    }
    via
}

async fn connect(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = within("connect to PostgreSQL", config.connect(NoTls))
        .await
        .expect("connects (SCRAM through the route when via the sidecar)");
    tokio::spawn(connection);
    client
}

/// A sidecar with one postgres route to `upstream`, every query sampled.
async fn sidecar(upstream: &str, collector: &FakeCollector) -> (Sidecar, SocketAddr) {
    let other = format!(
        "outbound:\n  routes:\n    - name: users-db\n      protocol: postgres\n      \
         listen: 127.0.0.1:0\n      upstream: tcp://{upstream}\n\
         sampling:\n  root:\n    type: always\n"
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let sidecar = Sidecar::start(yaml, unused, collector.addr).await;
    let route = sidecar.running.outbound_addrs[0].1;
    (sidecar, route)
}

/// The spans whose `db.query.text` contains `needle`, once `n` arrived.
async fn spans_with(collector: &FakeCollector, needle: &str, n: usize) -> Vec<Value> {
    let matching = || -> Vec<Value> {
        collector
            .spans()
            .into_iter()
            .filter(|s| {
                s["tags"]["db.query.text"]
                    .as_str()
                    .unwrap_or("")
                    .contains(needle)
            })
            .collect()
    };
    eventually(&format!("{n} spans of `{needle}`"), || {
        matching().len() >= n
    })
    .await;
    matching()
}

#[tokio::test]
async fn extended_protocol_prepared_statements_pipelining_and_an_error() {
    let Some(db) = server("extended_protocol") else {
        return;
    };
    let collector = FakeCollector::start().await;
    let (sidecar, route) = sidecar(&address(&db), &collector).await;
    let app = connect(&through(&db, route)).await;
    app.batch_execute(
        "DROP TABLE IF EXISTS it_ext_users; \
         CREATE TABLE it_ext_users (id int PRIMARY KEY, name text NOT NULL); \
         INSERT INTO it_ext_users VALUES (1, 'alice-secret'), (2, 'bob-secret'), (3, 'carol-secret')",
    )
    .await
    .expect("setup through the route");
    let by_id = app
        .prepare("SELECT name FROM it_ext_users WHERE id = $1")
        .await
        .expect("prepare");
    // Reused by name, then three pipelined on one connection.
    let alice = app.query_one(&by_id, &[&1i32]).await.expect("query");
    assert_eq!(alice.get::<_, String>(0), "alice-secret");
    let (a, b, c) = tokio::join!(
        app.query(&by_id, &[&1i32]),
        app.query(&by_id, &[&2i32]),
        app.query(&by_id, &[&42i32]),
    );
    assert_eq!(
        (a.unwrap().len(), b.unwrap().len(), c.unwrap().len()),
        (1, 1, 0)
    );
    let error = app
        .query("SELECT * FROM it_ext_nosuch", &[])
        .await
        .expect_err("unknown table");
    assert_eq!(error.code(), Some(&SqlState::UNDEFINED_TABLE));

    let selects = spans_with(&collector, "FROM it_ext_users WHERE id = $1", 4).await;
    assert_eq!(selects.len(), 4, "one span per execution: {selects:#?}");
    let mut rows: Vec<_> = selects
        .iter()
        .map(|s| {
            s["tags"]["db.response.returned_rows"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    rows.sort();
    assert_eq!(rows, ["0", "1", "1", "1"]);
    let span = &selects[0];
    assert_eq!(span["name"], "select it_ext_users");
    assert_eq!(span["kind"], "CLIENT");
    assert_eq!(span["remoteEndpoint"]["serviceName"], "users-db");
    assert_eq!(span["tags"]["db.system.name"], "postgresql");
    assert_eq!(
        span["tags"]["db.namespace"],
        db.get_dbname().unwrap_or("postgres")
    );
    assert_eq!(span["tags"]["db.operation.name"], "SELECT");
    assert_eq!(span["tags"]["db.collection.name"], "it_ext_users");
    let errors = spans_with(&collector, "it_ext_nosuch", 1).await;
    assert_eq!(errors[0]["tags"]["db.response.status_code"], "42P01");
    assert_eq!(errors[0]["tags"]["error"], "SQLSTATE 42P01");
    let inserts = spans_with(&collector, "INSERT INTO it_ext_users", 1).await;
    assert_eq!(
        inserts[0]["tags"]["db.query.text"],
        "INSERT INTO it_ext_users VALUES (?, ?), (?, ?), (?, ?)"
    );
    let everything = serde_json::to_string(&collector.spans()).expect("json");
    assert!(
        !everything.contains("secret"),
        "no value is exported: {everything}"
    );
    app.batch_execute("DROP TABLE it_ext_users")
        .await
        .expect("cleanup");
    // An idle pooled connection does not hold up shutdown.
    within("shutdown with an idle connection open", sidecar.stop()).await;
    assert!(
        app.simple_query("SELECT 1").await.is_err(),
        "closed at shutdown"
    );
}

/// Runs `psql` against `config` with `args`, feeding `stdin`; returns stdout.
async fn psql(config: &tokio_postgres::Config, args: &[&str], stdin: &str) -> String {
    let addr = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("a TCP host, not {other:?}"),
    };
    let mut child = tokio::process::Command::new("psql")
        .args(["-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-h", &addr])
        .args(["-p", &config.get_ports()[0].to_string()])
        .args(["-U", config.get_user().unwrap_or("postgres")])
        .args(["-d", config.get_dbname().unwrap_or("postgres")])
        .args(args)
        .env(
            "PGPASSWORD",
            String::from_utf8_lossy(config.get_password().unwrap_or_default()).as_ref(),
        )
        .env("PGSSLMODE", "prefer")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql runs (Debian: apt-get install postgresql-client)");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let output = within("psql", child.wait_with_output())
        .await
        .expect("psql output");
    assert!(
        output.status.success(),
        "psql {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn psql_simple_protocol_ssl_fallback_copy_in_and_out() {
    let Some(db) = server("psql_simple_protocol") else {
        return;
    };
    let collector = FakeCollector::start().await;
    let (sidecar, route) = sidecar(&address(&db), &collector).await;
    let via = through(&db, route);
    // PGSSLMODE=prefer: psql asks for TLS first, the route answers `N`.
    let setup = "DROP TABLE IF EXISTS it_copy; CREATE TABLE it_copy (id int, note text);";
    psql(&via, &["-c", setup], "").await;
    let rows = "1\tfirst-value\n2\tsecond-value\n3\tthird-value\n";
    psql(&via, &["-c", "\\copy it_copy FROM STDIN"], rows).await;
    let out = psql(
        &via,
        &["-c", "\\copy (SELECT * FROM it_copy ORDER BY id) TO STDOUT"],
        "",
    )
    .await;
    assert_eq!(out, rows, "COPY out returns what COPY in stored");
    let counted = psql(
        &via,
        &["-c", "SELECT count(*) FROM it_copy WHERE note <> 'x'"],
        "",
    )
    .await;
    assert_eq!(counted.trim(), "3");

    let copy_in = spans_with(&collector, "COPY it_copy FROM STDIN", 1).await;
    assert_eq!(copy_in[0]["tags"]["db.operation.name"], "COPY");
    assert_eq!(copy_in[0]["tags"]["db.collection.name"], "it_copy");
    let copy_out = spans_with(&collector, "it_copy ORDER BY id", 1).await;
    assert_eq!(copy_out[0]["tags"]["db.operation.name"], "COPY");
    let count = spans_with(
        &collector,
        "SELECT count(*) FROM it_copy WHERE note <> ?",
        1,
    )
    .await;
    assert_eq!(count[0]["tags"]["db.response.returned_rows"], "1");
    let everything = serde_json::to_string(&collector.spans()).expect("json");
    assert!(
        !everything.contains("-value"),
        "COPY data is never exported"
    );
    psql(&via, &["-c", "DROP TABLE it_copy"], "").await;
    sidecar.stop().await;
}

#[tokio::test]
async fn a_cancel_request_through_the_route_cancels_the_query() {
    let Some(db) = server("cancel_request") else {
        return;
    };
    let collector = FakeCollector::start().await;
    let (sidecar, route) = sidecar(&address(&db), &collector).await;
    let app = connect(&through(&db, route)).await;
    let watcher = connect(&db).await;
    let token = app.cancel_token();
    let sleeping = tokio::spawn(async move { app.simple_query("SELECT pg_sleep(30)").await });
    wait_until_running(&watcher, "SELECT pg_sleep(30)").await;
    // The cancel request goes to the route (the app's configured host).
    token
        .cancel_query(NoTls)
        .await
        .expect("cancel request sent");
    let result = within("the cancelled query ends", sleeping)
        .await
        .expect("task");
    let error = result.expect_err("cancelled");
    assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED));
    let spans = spans_with(&collector, "SELECT pg_sleep(?)", 1).await;
    assert_eq!(spans[0]["tags"]["db.response.status_code"], "57014");
    sidecar.stop().await;
}

/// Waits until the database runs `query` (seen from another connection).
async fn wait_until_running(watcher: &Client, query: &str) {
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = watcher
            .query_one(running, &[&query])
            .await
            .expect("pg_stat_activity");
        if row.get::<_, i64>(0) > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{query}` never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP forwarder the test can cut: the "database" dies mid-query.
async fn cuttable(upstream: String) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (cut, cutting) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let mut outbound = TcpStream::connect(upstream).await.expect("database");
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
            _ = cutting => {}
        }
        // Dropping both sockets here: the relay sees the database go away.
    });
    (addr, cut)
}

#[tokio::test]
async fn a_database_killed_mid_query_fails_the_app_and_the_sidecar_survives() {
    let Some(db) = server("killed_upstream") else {
        return;
    };
    let collector = FakeCollector::start().await;
    let (forwarder, cut) = cuttable(address(&db)).await;
    let (sidecar, route) = sidecar(&forwarder.to_string(), &collector).await;
    let app = connect(&through(&db, route)).await;
    let watcher = connect(&db).await;
    let sleeping = tokio::spawn(async move { app.simple_query("SELECT pg_sleep(29)").await });
    wait_until_running(&watcher, "SELECT pg_sleep(29)").await;
    let _ = cut.send(());
    let result = within("the app sees the failure", sleeping)
        .await
        .expect("task");
    assert!(result.is_err(), "the app gets an error, not a hang");
    let spans = spans_with(&collector, "SELECT pg_sleep(?)", 1).await;
    assert!(
        spans[0]["tags"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("closed"),
        "{spans:#?}"
    );
    // The sidecar is alive: its admin answers and the route accepts again
    // (the forwarder is gone, so the app now gets a clean FATAL 08001).
    let Err(again) = through(&db, route).connect(NoTls).await else {
        panic!("connected to a database that is gone");
    };
    assert_eq!(
        again.code(),
        Some(&SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
        "{again}"
    );
    crate::support::scrape_until(&sidecar.admin, "tracehop_db_queries_total").await;
    sidecar.stop().await;
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn a_100_mb_result_streams_through_with_flat_sidecar_memory() {
    let Some(db) = server("streaming_100mb") else {
        return;
    };
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("streaming_100mb: skipped: no /proc to read the sidecar's memory from");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tracehop-it-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("sidecar.yaml");
    let yaml = format!(
        "service: {{name: app}}\ninbound: {{listen: 127.0.0.1:0, upstream: http://127.0.0.1:9}}\n\
         admin: {{listen: 127.0.0.1:0}}\nexport: {{enabled: false}}\n\
         outbound:\n  routes:\n    - {{name: db, protocol: postgres, listen: 127.0.0.1:0, upstream: tcp://{}}}\n",
        address(&db)
    );
    std::fs::write(&config, yaml).expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tracehop"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("TRACEHOP_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let route: SocketAddr = within("the route's address in the log", async {
        while let Some(line) = lines.next_line().await.expect("stderr line") {
            if line.contains("outbound route listening")
                && let Some(at) = line.find("listen=")
            {
                let addr = line[at + 7..].split_whitespace().next().unwrap_or("");
                return addr.trim_matches('"').parse().expect("an address");
            }
        }
        panic!("the sidecar exited before listening");
    })
    .await;
    let app = connect(&through(&db, route)).await;
    app.simple_query("SELECT 1").await.expect("warm up");
    let (before, _) = memory_kib(pid);
    // 100 rows of 1 MiB each, streamed row by row on the app's side too.
    let sql = "SELECT repeat('x', 1048576) FROM generate_series(1, 100)";
    let rows = app.query_raw(sql, Vec::<i32>::new()).await.expect("query");
    let mut stream = std::pin::pin!(rows);
    let mut bytes = 0usize;
    while let Some(row) = within("next row", stream.next()).await {
        bytes += row.expect("row").get::<_, &str>(0).len();
    }
    assert_eq!(bytes, 100 * 1_048_576);
    let (after, peak) = memory_kib(pid);
    eprintln!("streaming_100mb: sidecar rss {before} KiB -> {after} KiB, peak {peak} KiB");
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    // The relay holds two 64 KiB buffers per connection; allow the
    // allocator slack, far below the 100 MiB that went through.
    assert!(
        peak.saturating_sub(before) < 16 * 1024 && after < before + 16 * 1024,
        "sidecar memory grew: rss {before} KiB -> {after} KiB, peak {peak} KiB"
    );
}

/// Without a database: the route answers TLS and GSS requests `N`, tells
/// the app with SQLSTATE 08001 that the database is out of reach, and
/// closes a connection that sends no startup message in time.
#[tokio::test]
async fn the_startup_phase_without_a_database() {
    use tokio::io::AsyncReadExt;
    let collector = FakeCollector::start().await;
    let (_gone, gone_addr) = closed_port();
    let other = format!(
        "outbound:\n  routes:\n    - name: db\n      protocol: postgres\n      \
         listen: 127.0.0.1:0\n      upstream: tcp://{gone_addr}\n      \
         timeouts: {{header_read: 300ms}}\n"
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let sidecar = Sidecar::start(yaml, unused, collector.addr).await;
    let route = sidecar.running.outbound_addrs[0].1;

    let mut app = TcpStream::connect(route).await.expect("connect");
    for code in [80_877_103u32, 80_877_104] {
        let mut request = 8u32.to_be_bytes().to_vec();
        request.extend_from_slice(&code.to_be_bytes());
        app.write_all(&request).await.expect("write");
        let mut answer = [0u8; 1];
        within("the answer", app.read_exact(&mut answer))
            .await
            .expect("read");
        assert_eq!(&answer, b"N", "request {code} answered N");
    }
    let body = b"\0\x03\0\0user\0app\0database\0shop\0\0";
    let mut startup = (body.len() as u32 + 4).to_be_bytes().to_vec();
    startup.extend_from_slice(body);
    app.write_all(&startup).await.expect("write");
    let mut reply = Vec::new();
    within("the error and the close", app.read_to_end(&mut reply))
        .await
        .expect("read");
    assert_eq!(reply.first(), Some(&b'E'), "an ErrorResponse: {reply:?}");
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.contains("C08001") && text.contains(&gone_addr.to_string()),
        "{text}"
    );

    let mut silent = TcpStream::connect(route).await.expect("connect");
    let mut rest = Vec::new();
    let closed = within("a silent client is closed", silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok_and(|n| n == 0), "closed without a byte");
    sidecar.stop().await;
}
