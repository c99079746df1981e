//! `ibkr-oauth serve` as a real process: it says where it listens, hands out the sandbox's
//! token on its socket, stops cleanly on SIGTERM (removing the socket), logs no token even at
//! -vvv, and refuses a non-loopback address and a missing secret.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use common::{REDIS_KEY, Redis, TestSandbox, run};

#[test]
fn serve_hands_out_the_token_and_stops_on_sigterm() {
    let sandbox = TestSandbox::start();
    let socket = sandbox.dir.path().join("agent.sock");
    let mut child = sandbox
        .cli()
        .args(["serve", "-vvv", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("the ready line");
    assert!(
        ready.contains("handing out tokens on unix socket"),
        "{ready}"
    );

    let mut stream = UnixStream::connect(&socket).expect("connect");
    stream
        .write_all(b"GET /token HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).expect("json");
    let token = json["access_token"].as_str().expect("token").to_owned();
    sandbox
        .running
        .verify_access_token(&token)
        .expect("the sandbox issued it");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0), "a clean stop");
    assert!(!socket.exists(), "the socket is removed");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("rest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.is_empty(), "-vvv logs");
    assert!(!stderr.contains(&token), "the token reached the log");
    assert!(!rest.contains(&token));
}

#[test]
fn serve_refuses_what_would_leave_the_machine_or_go_unguarded() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("IBKR_AGENT_SECRET", "0123456789abcdef0123"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    let out = run(sandbox
        .cli()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("IBKR_AGENT_SECRET"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("IBKR_AGENT_SECRET"), "{stderr}");
}

/// Issue 20: `--group 4294967295` was accepted and the socket silently kept the user's group.
#[test]
fn serve_refuses_an_unknown_group_at_start() {
    let sandbox = TestSandbox::start();
    let socket = sandbox.dir.path().join("agent.sock");
    for group in ["4294967295", "4294967294", "no-such-group-here"] {
        let out = run(sandbox
            .cli()
            .args(["serve", "--socket"])
            .arg(&socket)
            .args(["--group", group]));
        let stderr = out.assert_error(2);
        assert!(stderr.contains("no group"), "{group}: {stderr}");
        assert!(!socket.exists(), "no socket for {group}");
    }
    assert_eq!(sandbox.running.tokens_issued(), 0);
}

/// One HTTP/1.1 GET over a unix socket: the whole answer.
fn get(socket: &std::path::Path, target: &str) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream
        .write_all(
            format!("GET {target} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
}

#[test]
fn serve_with_redis_exposes_prometheus_metrics() {
    let redis = Redis::start();
    let sandbox = TestSandbox::start();
    let socket = sandbox.dir.path().join("fleet.sock");
    let mut child = sandbox
        .cli()
        .env("IBKR_REDIS_KEY", REDIS_KEY)
        .args(["serve", "--metrics", "--redis", &redis.url, "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("the ready line");
    assert!(get(&socket, "/token").starts_with("HTTP/1.1 200"));
    let metrics = get(&socket, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("ibkr_oauth_agent_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ibkr_oauth_redis"),
        "the fleet source's metrics: {metrics}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().expect("exits").code(), Some(0));
    assert_eq!(sandbox.running.tokens_issued(), 1);
}

#[test]
fn print_socket_finds_the_socket_where_xdg_runtime_dir_is_unset() {
    // No settings needed, and no $XDG_RUNTIME_DIR (containers, cron): the /tmp fallback.
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .expect("uid");
    let out = run(common::cli()
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("IBKR_AGENT_SOCKET")
        .args(["serve", "--print-socket"]));
    assert_eq!(
        out.assert_success(),
        format!("/tmp/ibkr-oauth-{uid}.sock\n")
    );
    let out = run(common::cli()
        .env("XDG_RUNTIME_DIR", "/run/user/1234")
        .env_remove("IBKR_AGENT_SOCKET")
        .args(["serve", "--print-socket"]));
    assert_eq!(out.assert_success(), "/run/user/1234/ibkr-oauth.sock\n");

    // IBKR_AGENT_SOCKET, read by both sides: serve listens there, and the README's curl line
    // finds it through --print-socket.
    let sandbox = TestSandbox::start();
    let socket = sandbox.dir.path().join("shared.sock");
    let mut child = sandbox
        .cli()
        .env_remove("XDG_RUNTIME_DIR")
        .env("IBKR_AGENT_SOCKET", &socket)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("the ready line");
    assert!(ready.contains(&socket.display().to_string()), "{ready}");
    let curl = std::process::Command::new("sh")
        .args([
            "-c",
            r#"curl -fsS --unix-socket "$("$BIN" serve --print-socket)" http://agent/token"#,
        ])
        .env("BIN", common::BIN)
        .env_remove("XDG_RUNTIME_DIR")
        .env("IBKR_AGENT_SOCKET", &socket)
        .output()
        .expect("sh runs");
    assert!(curl.status.success(), "{curl:?}");
    let json: serde_json::Value = serde_json::from_slice(&curl.stdout).expect("JSON");
    assert_eq!(json["version"], 1);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().expect("exits").code(), Some(0));
}
