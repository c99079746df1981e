//! `serve --sink` and `--sink-json` as real processes against the sandbox, with tokens that live
//! 10 seconds (see `exec.rs` for why not shorter): the files appear with their modes, hold the token (the JSON one valid against
//! the contract's schema), are rewritten on refresh, are read by the README's shell and Python
//! examples, and are removed on SIGTERM; a symlink or an open mode is refused at start.

mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestSandbox, kill, run, wait_for};
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/delivery")
        .join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("the file")
        .permissions()
        .mode()
        & 0o777
}

/// `serve` on a socket in the sandbox's directory with `flags`; returns once it is ready.
fn serve(sandbox: &TestSandbox, flags: &[&str]) -> Child {
    let mut child = sandbox
        .cli()
        .env("IBKR_SCOPE", "echo.read")
        .arg("serve")
        .arg("--socket")
        .arg(sandbox.dir.path().join("agent.sock"))
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut ready = String::new();
    BufReader::new(child.stdout.as_mut().expect("piped"))
        .read_line(&mut ready)
        .expect("the ready line");
    assert!(ready.contains("handing out tokens"), "{ready}");
    child
}

#[test]
fn sinks_are_written_with_their_modes_rewritten_on_refresh_and_removed_on_stop() {
    let sandbox = TestSandbox::start_short_lived(Duration::from_secs(10));
    let dir = sandbox.dir.path();
    let (bare, json) = (dir.join("token"), dir.join("token.json"));
    let mut agent = serve(
        &sandbox,
        &[
            "--sink",
            &bare.to_string_lossy(),
            "--sink-json",
            &format!("{}:0640", json.display()),
        ],
    );
    wait_for("the sinks", || bare.exists() && json.exists());
    let first = read(&bare);
    sandbox.running.verify_access_token(&first).expect("issued");
    assert_eq!((mode(&bare), mode(&json)), (0o600, 0o640));
    let object: Value = serde_json::from_str(&read(&json)).expect("JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&serde_json::from_str(ibkr_oauth_cli::contract::SCHEMA).expect("schema"))
        .expect("a schema");
    let errors: Vec<String> = validator
        .iter_errors(&object)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "the JSON sink is the contract: {errors:?}"
    );

    wait_for("a rewrite after the refresh", || {
        let now = read(&bare);
        !now.is_empty() && now != first
    });
    let second = read(&bare);
    sandbox
        .running
        .verify_access_token(&second)
        .expect("issued");
    wait_for("the JSON sink's rewrite", || read(&json).contains(&second));

    // The README's examples read them.
    let script = Command::new(example("call-with-sink.sh"))
        .arg(&bare)
        .env("IBKR_BASE_URL", sandbox.running.base_url())
        .output()
        .expect("sh runs");
    assert!(script.status.success(), "{script:?}");
    let python = Command::new("python3")
        .arg(example("sink-reader.py"))
        .arg(&json)
        .env("IBKR_BASE_URL", sandbox.running.base_url())
        .output()
        .expect("python3 runs");
    assert!(python.status.success(), "{python:?}");
    assert!(
        String::from_utf8_lossy(&python.stdout).starts_with("echo: 200"),
        "{python:?}"
    );

    kill("TERM", agent.id());
    let status = agent.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(!bare.exists() && !json.exists(), "removed on a clean stop");
    let names: Vec<_> = std::fs::read_dir(dir).expect("ls").collect();
    assert!(
        names
            .iter()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp")),
        "no temporary file left: {names:?}"
    );
}

#[test]
fn a_symlink_another_users_file_or_an_open_mode_is_refused_at_start() {
    let sandbox = TestSandbox::start();
    let dir = sandbox.dir.path();
    let target = dir.join("precious");
    std::fs::write(&target, "keep me").expect("target");
    let link = dir.join("token");
    std::os::unix::fs::symlink(&target, &link).expect("link");
    let out = run(sandbox.cli().args(["serve", "--sink"]).arg(&link));
    let message = out.assert_error(2);
    assert!(message.contains("is a symlink"), "{message}");
    assert_eq!(read(&target), "keep me");

    let out = run(sandbox
        .cli()
        .args(["serve", "--sink"])
        .arg(format!("{}:0644", dir.join("t").display())));
    let message = out.assert_error(2);
    assert!(message.contains("lets other users read"), "{message}");

    // A file of another user: one handed to nobody (65534), where the tests may chown (as
    // root: CI, this sandbox); the sink unit tests cover the symlink and directory cases.
    let foreign = dir.join("foreign");
    std::fs::write(&foreign, "").expect("file");
    if std::os::unix::fs::chown(&foreign, Some(65534), None).is_ok() {
        let out = run(sandbox.cli().args(["serve", "--sink"]).arg(&foreign));
        let message = out.assert_error(2);
        assert!(message.contains("belongs to user 65534"), "{message}");
    }
}

#[test]
fn serve_says_at_once_when_the_token_endpoint_is_unreachable_and_keeps_going() {
    let sandbox = TestSandbox::start();
    let base = format!("http://127.0.0.1:{}", common::closed_port());
    let mut agent = sandbox
        .cli()
        .env("IBKR_BASE_URL", &base)
        .arg("serve")
        .arg("--socket")
        .arg(sandbox.dir.path().join("agent.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    // Read on a thread: an agent that said nothing would block the read forever.
    let stderr = agent.stderr.take().expect("piped");
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("serve said nothing on stderr about the unreachable server"));
    assert!(
        line.starts_with("ibkr-oauth serve: no token from "),
        "{line}"
    );
    assert!(line.contains(&base), "{line}");
    assert!(line.contains("still retrying"), "{line}");
    assert!(agent.try_wait().expect("status").is_none(), "still running");
    kill("TERM", agent.id());
    assert_eq!(agent.wait().expect("exits").code(), Some(0));
}
