//! `ibkr-oauth exec` with real child processes against the sandbox: the token in the child's
//! environment and in a file, never in an argument or `ps`; signals passed on; the child's exit
//! code (128 + the signal when killed); and the three `--on-refresh` choices, with tokens that
//! live 10 seconds so that a refresh comes without a long wait. (Not shorter: the sandbox
//! states expiry in whole seconds, so a token may end up to a second before its client
//! computes, and the provider refreshes a fifth of the lifetime ahead.) Each token is checked
//! with the sandbox when first seen, while it is still valid.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestSandbox, kill, run, wait_for};

/// The README's delivery examples.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/delivery")
        .join(name)
}

fn short_lived() -> TestSandbox {
    TestSandbox::start_short_lived(Duration::from_secs(10))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `exec [flags] -- sh -c SCRIPT` in `dir`.
fn exec_sh(sandbox: &TestSandbox, flags: &[&str], script: &str) -> Command {
    let mut command = sandbox.cli();
    command
        .current_dir(sandbox.dir.path())
        .arg("exec")
        .args(flags)
        .args(["--", "sh", "-c", script]);
    command
}

#[test]
fn the_child_gets_the_token_in_its_environment_and_a_file_and_exit_code_is_its_own() {
    let sandbox = TestSandbox::start();
    let out = run(&mut exec_sh(
        &sandbox,
        &[],
        r#"printf %s "$IBKR_ACCESS_TOKEN" > env; cp "$IBKR_ACCESS_TOKEN_FILE" file;
           cp "$IBKR_TOKEN_JSON_FILE" json; [ -z "${IBKR_PRIVATE_KEY:-}" ] || exit 99; exit 7"#,
    ));
    assert_eq!(out.code, 7, "{out:#?}");
    sandbox.assert_no_secret(&out);
    let dir = sandbox.dir.path();
    let token = read(&dir.join("env"));
    sandbox
        .running
        .verify_access_token(&token)
        .expect("the sandbox issued it");
    assert_eq!(read(&dir.join("file")), token);
    let json: serde_json::Value = serde_json::from_str(&read(&dir.join("json"))).expect("JSON");
    assert_eq!(json["access_token"], token.as_str());
    assert_eq!(json["version"], 1);

    // Another name for the variable.
    let out = run(&mut exec_sh(
        &sandbox,
        &["--env", "MY_TOKEN"],
        r#"[ -n "$MY_TOKEN" ] && [ -z "${IBKR_ACCESS_TOKEN:-}" ]"#,
    ));
    assert_eq!(out.code, 0, "{out:#?}");
}

#[test]
fn the_token_is_in_no_argument_no_ps_line_and_no_log() {
    let sandbox = TestSandbox::start();
    let exec = exec_sh(
        &sandbox,
        &["-vvv"],
        r#"echo $$ > pid; while [ ! -e stop ]; do sleep 0.05; done"#,
    )
    .stderr(Stdio::piped())
    .spawn()
    .expect("exec starts");
    let dir = sandbox.dir.path();
    wait_for("the child's pid", || read(&dir.join("pid")).ends_with('\n'));
    let child: u32 = read(&dir.join("pid")).trim().parse().expect("a pid");
    // The token, from the child's own environment.
    let environ = std::fs::read(format!("/proc/{child}/environ")).expect("environ");
    let token = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"IBKR_ACCESS_TOKEN="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("the token is in the environment");
    assert!(token.len() > 20);
    for pid in [exec.id(), child] {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&token),
            "argv of {pid}"
        );
    }
    let ps = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .expect("ps runs");
    assert!(!String::from_utf8_lossy(&ps.stdout).contains(&token), "ps");
    std::fs::write(dir.join("stop"), "").expect("stop");
    let output = exec.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!log.is_empty(), "-vvv logs");
    assert!(!log.contains(&token), "the token reached the log");
}

#[test]
fn signals_are_passed_on_and_a_killed_child_gives_128_plus_the_signal() {
    let sandbox = TestSandbox::start();
    let dir = sandbox.dir.path();
    for (signal, code) in [("TERM", 42), ("HUP", 43), ("INT", 44)] {
        let _ = std::fs::remove_file(dir.join("ready"));
        let script = format!(
            "trap 'echo {signal} > got; exit {code}' {signal}; echo > ready; \
             while :; do sleep 0.05; done"
        );
        let mut exec = exec_sh(&sandbox, &[], &script)
            .spawn()
            .expect("exec starts");
        wait_for("the child's trap", || dir.join("ready").exists());
        kill(signal, exec.id());
        let status = exec.wait().expect("exits");
        assert_eq!(status.code(), Some(code), "{signal}");
        assert_eq!(read(&dir.join("got")).trim(), signal);
    }
    let out = run(&mut exec_sh(&sandbox, &[], "kill -KILL $$"));
    assert_eq!(out.code, 137, "{out:#?}");
    let out = run(&mut exec_sh(&sandbox, &[], "kill -TERM $$"));
    assert_eq!(out.code, 143, "{out:#?}");
}

#[test]
fn on_refresh_none_leaves_the_child_alone_and_keeps_the_file_current() {
    let sandbox = short_lived();
    let dir = sandbox.dir.path();
    let exec = exec_sh(
        &sandbox,
        &[],
        r#"printf '%s\n' "$IBKR_ACCESS_TOKEN" >> starts; trap 'echo HUP >> starts' HUP
           cp "$IBKR_ACCESS_TOKEN_FILE" first.tmp; mv first.tmp first
           while cmp -s "$IBKR_ACCESS_TOKEN_FILE" first; do sleep 0.05; done
           cp "$IBKR_ACCESS_TOKEN_FILE" changed"#,
    )
    .spawn()
    .expect("exec starts");
    wait_for("the first token", || dir.join("first").exists());
    let first = read(&dir.join("first"));
    sandbox.running.verify_access_token(&first).expect("issued");
    let output = exec.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0), "{output:#?}");
    let changed = read(&dir.join("changed"));
    assert_ne!(first, changed);
    sandbox
        .running
        .verify_access_token(&changed)
        .expect("issued");
    assert_eq!(
        read(&dir.join("starts")).lines().count(),
        1,
        "one start, no signal"
    );
}

#[test]
fn on_refresh_restart_starts_the_child_again_with_the_new_token() {
    let sandbox = short_lived();
    let dir = sandbox.dir.path();
    let mut exec = exec_sh(
        &sandbox,
        &["--on-refresh", "restart"],
        r#"printf '%s\n' "$IBKR_ACCESS_TOKEN" >> starts; trap 'exit 0' TERM
           while [ ! -e stop ]; do sleep 0.05; done; exit 5"#,
    )
    .spawn()
    .expect("exec starts");
    let line = |n: usize| read(&dir.join("starts")).lines().nth(n).map(str::to_owned);
    wait_for("the first start", || line(0).is_some());
    let first = line(0).expect("a token");
    sandbox.running.verify_access_token(&first).expect("issued");
    wait_for("a second start", || line(1).is_some());
    let second = line(1).expect("a token");
    sandbox
        .running
        .verify_access_token(&second)
        .expect("issued");
    assert_ne!(first, second, "a new token at each start");
    std::fs::write(dir.join("stop"), "").expect("stop");
    assert_eq!(exec.wait().expect("exits").code(), Some(5));
}

#[test]
fn on_refresh_signal_hup_runs_the_readme_example_with_the_new_token() {
    let sandbox = short_lived();
    let mut exec = sandbox
        .cli()
        .env("IBKR_SCOPE", "echo.read")
        .args(["exec", "--on-refresh", "signal:HUP", "--"])
        .arg(example("refresh-on-hup.sh"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("exec starts");
    let mut lines = BufReader::new(exec.stdout.take().expect("piped")).lines();
    let mut next = || lines.next().expect("a line").expect("UTF-8");
    assert_eq!(next(), "echo ok", "the first call, with the first token");
    let mut line = next();
    while line == "echo ok" {
        line = next();
    }
    assert!(line.starts_with("new token ("), "{line}");
    assert_eq!(next(), "echo ok", "a call with the new token");
    kill("TERM", exec.id());
    let mut rest = next();
    while rest == "echo ok" {
        rest = next();
    }
    assert_eq!(rest, "stopping");
    assert_eq!(exec.wait().expect("exits").code(), Some(0));
    assert!(sandbox.running.tokens_issued() >= 2);
}
