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
