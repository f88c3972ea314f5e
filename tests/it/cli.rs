//! The `tracehop` binary as a user runs it: exit codes and what it says on
//! stderr when something is wrong.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs the binary with `args`; it must exit within a few seconds.
fn tracehop(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracehop"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("TRACEHOP_SERVICE_NAME")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "tracehop {args:?} did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_address_in_use_is_said_once_with_the_address_and_no_colours_off_a_terminal() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = tracehop(&[
        "run",
        "--listen",
        &addr,
        "--upstream",
        "http://127.0.0.1:9",
        "--admin",
        "127.0.0.1:0",
    ]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("cannot listen on {addr} (inbound.listen)")),
        "{text}"
    );
    assert_eq!(text.matches("in use").count(), 1, "said once: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {text:?}"
    );
    // No service name: a warning before anything else.
    assert!(text.contains("service.name is not set"), "{text}");
}

#[test]
fn a_sidecar_pointing_at_itself_is_refused_naming_both_keys() {
    let output = tracehop(&[
        "run",
        "--listen",
        "127.0.0.1:18700",
        "--upstream",
        "http://127.0.0.1:18700",
    ]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(64), "{text}");
    assert!(
        text.contains("inbound.upstream:") && text.contains("`inbound.listen`"),
        "{text}"
    );
}

#[test]
fn a_bad_collector_forward_url_is_a_usage_error() {
    let output = tracehop(&[
        "collector",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        "not a url",
    ]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(64), "{text}");
    assert!(
        text.contains("invalid --forward: `not a url` is not a URL"),
        "{text}"
    );
}

#[test]
fn check_config_lists_every_problem_and_exits_64() {
    let dir = std::env::temp_dir().join(format!("tracehop-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "service:\n  nmae: x\ninbound:\n  upstream: http://127.0.0.1:3000\n  timeouts:\n    idle: 5\n",
    )
    .expect("write");
    let output = tracehop(&["check-config", file.to_str().expect("utf-8 path")]);
    let text = stderr(&output);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(output.status.code(), Some(64), "{text}");
    assert!(
        text.starts_with("invalid configuration (2 problems):"),
        "{text}"
    );
    assert!(
        text.contains("  service.nmae: unknown key; did you mean `name`?\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  inbound.timeouts.idle: expected a duration like 500ms or 10s, found the number 5\n"
        ),
        "{text}"
    );
}

/// A port nothing listens on (bound, then released), for a child process
/// to listen on.
fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr").port()
}

/// The first line received that contains `needle`, within 10 s each.
fn first_line_with(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line with {needle:?} within 10 s"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// A dev server on a thread: answers every request `200 hello`, closing.
fn dev_server() -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            );
        }
    });
    port
}

/// One HTTP/1.1 GET over a plain socket; the status line's code.
fn get(addr: &str, target: &str, proxy: bool) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request_target = if proxy {
        target.to_owned()
    } else {
        format!("/{}", target.rsplit('/').next().unwrap_or(""))
    };
    write!(
        stream,
        "GET {request_target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.split(' ').nth(1).unwrap_or_default().to_owned()
}

#[test]
fn dev_traces_a_dev_server_and_prints_a_line_per_request_until_interrupted() {
    use std::io::{BufRead, BufReader};
    let port = dev_server();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracehop"))
        .args([
            "dev",
            &port.to_string(),
            "--collector",
            "127.0.0.1:0",
            "--service-name",
            "shop",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = move || lines.next().expect("a line").expect("utf-8");
    let banner: Vec<String> = (0..5).map(|_| next()).collect();
    let url_after = |label: &str| {
        banner
            .iter()
            .find_map(|line| {
                line.split_once(label)
                    .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|| panic!("no {label} in {banner:#?}"))
    };
    let sidecar = url_after("send requests to");
    let viewer = url_after("traces");
    let proxy = url_after("HTTP_PROXY=");
    assert!(
        banner[0].contains(&format!("http://127.0.0.1:{port}")),
        "{banner:#?}"
    );
    let sidecar = sidecar.trim_start_matches("http://");
    assert_eq!(get(sidecar, "http://x/users", false), "200");
    let line = next();
    assert!(line.starts_with("GET /users 200 "), "{line}");
    let trace_url = line
        .split_whitespace()
        .find(|w| w.starts_with(&viewer))
        .expect("a trace URL")
        .to_owned();
    // The app's outbound call through the forward proxy: a CLIENT line.
    let target = format!("http://127.0.0.1:{port}/stock");
    assert_eq!(
        get(proxy.trim_start_matches("http://"), &target, true),
        "200"
    );
    let line = next();
    assert!(line.starts_with("-> 127.0.0.1 GET /stock 200 "), "{line}");
    // The trace is in the collector under the URL printed.
    let trace_id = trace_url.rsplit('/').next().expect("id");
    let api = viewer
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let start = Instant::now();
    loop {
        let body = {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(&api).expect("collector");
            write!(
                stream,
                "GET /api/v2/trace/{trace_id} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            .expect("write");
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            reply
        };
        if body.contains("\"serviceName\":\"shop\"") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "trace {trace_id} not in the collector: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    assert_eq!(next(), "tracehop dev stopped");
    assert_eq!(child.wait().expect("exit").code(), Some(0));
}

#[test]
fn access_log_lines_are_buffered_and_all_written_by_shutdown() {
    let app = dev_server();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_tracehop"))
        .args([
            "run",
            "--listen",
            &listen,
            "--upstream",
            &format!("http://127.0.0.1:{app}"),
            "--admin",
            "127.0.0.1:0",
            "--service-name",
            "shop",
            "--zipkin",
            "http://127.0.0.1:9/api/v2/spans",
        ])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let start = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the sidecar never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for path in ["a", "b", "c"] {
        assert_eq!(get(&listen, &format!("http://x/{path}"), false), "200");
    }
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let output = child.wait_with_output().expect("exit");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" INFO tracehop::access: "))
        .collect();
    assert_eq!(access.len(), 3, "{text}");
    for (line, path) in access.iter().zip(["/a", "/b", "/c"]) {
        assert!(
            line.contains(&format!(
                "direction=inbound method=GET path=\"{path}\" status=200 "
            )),
            "{line}"
        );
    }
}

#[test]
fn a_collector_outage_is_logged_at_once_with_its_url_and_the_reason() {
    use std::io::{BufRead, BufReader};
    let app = dev_server();
    let (_closed_socket, closed) = crate::support::closed_port();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let collector = format!("http://{closed}/api/v2/spans");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracehop"))
        .args([
            "run",
            "--listen",
            &listen,
            "--upstream",
            &format!("http://127.0.0.1:{app}"),
        ])
        .args([
            "--admin",
            "127.0.0.1:0",
            "--service-name",
            "shop",
            "--zipkin",
            &collector,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let startup = first_line_with(&rx, "tracehop listening");
    assert!(
        startup.contains(&format!("export=zipkin {collector}")),
        "{startup}"
    );
    assert!(
        startup.contains(&format!("upstream=http://127.0.0.1:{app}")),
        "{startup}"
    );
    assert_eq!(
        get(&listen, "http://x/a", false),
        "200",
        "requests work while the collector is down"
    );
    let failing = first_line_with(&rx, "span export failing");
    assert!(
        failing.contains(&format!("collector=\"zipkin {collector}\"")),
        "{failing}"
    );
    assert!(failing.contains("reason="), "{failing}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let _ = child.kill();
    let _ = child.wait();
}
