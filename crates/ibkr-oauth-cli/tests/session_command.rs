//! `ibkr-oauth session open|status|keep|logout` as a real process against the sandbox.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{TestSandbox, run};
use ibkr_oauth_sandbox::{Endpoint, SessionFault};

const USER: &str = "cliuser7";
const IP: &str = "203.0.113.9";

fn session_cli(sandbox: &TestSandbox) -> Command {
    let mut command = sandbox.cli();
    command
        .env("IBKR_USERNAME", USER)
        .env("IBKR_SESSION_IP", IP)
        .env_remove("IBKR_SSO_TOKEN");
    command
}

#[test]
fn open_opens_the_session_and_leaves_it_open() {
    let sandbox = TestSandbox::start();
    let out = run(session_cli(&sandbox).args(["session", "open", "--brokerage"]));
    let stdout = out.assert_success();
    assert!(
        stdout.contains("SSO session open at http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("(brokerage)"), "{stdout}");
    assert!(stdout.contains(&format!("user:       {USER}")), "{stdout}");
    assert!(stdout.contains(&format!("IP:         {IP}")), "{stdout}");
    sandbox.assert_no_secret(&out);
    assert_eq!(sandbox.running.open_sessions(), 1);
    assert!(sandbox.running.brokerage_session_open(USER));
    let logouts = sandbox
        .running
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::Logout)
        .count();
    assert_eq!(logouts, 0, "left open");
}

#[test]
fn raw_token_then_status_then_logout() {
    let sandbox = TestSandbox::start();
    let out = run(session_cli(&sandbox).args(["session", "open", "--raw"]));
    let token = out.assert_success().trim().to_owned();
    assert!(!token.is_empty() && !token.contains(' '), "{token:?}");

    let out = run(session_cli(&sandbox)
        .env("IBKR_SSO_TOKEN", &token)
        .args(["session", "status"]));
    let stdout = out.assert_success();
    assert!(stdout.contains(": valid"), "{stdout}");
    assert!(stdout.contains(&format!("user:       {USER}")), "{stdout}");
    assert!(stdout.contains("brokerage:  not open"), "{stdout}");
    assert!(!stdout.contains(&token));

    let out = run(session_cli(&sandbox)
        .env("IBKR_SSO_TOKEN", &token)
        .args(["session", "logout"]));
    assert!(out.assert_success().contains("logged out"), "{out:#?}");
    assert_eq!(sandbox.running.open_sessions(), 0);

    let out = run(session_cli(&sandbox)
        .env("IBKR_SSO_TOKEN", &token)
        .args(["session", "status"]));
    let message = out.assert_error(3);
    assert!(
        message.contains("401, the SSO session has ended"),
        "{message}"
    );
    assert!(!out.all().contains(&token));
}

#[test]
fn settings_missing_name_their_variable() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .env("IBKR_SESSION_IP", IP)
        .env_remove("IBKR_USERNAME")
        .args(["session", "open"]));
    let message = out.assert_error(2);
    assert!(message.contains("IBKR_USERNAME"), "{message}");
    let out = run(session_cli(&sandbox).args(["session", "status"]));
    let message = out.assert_error(2);
    assert!(message.contains("IBKR_SSO_TOKEN"), "{message}");
}

#[test]
fn keep_prints_one_line_per_state_change_and_logs_out_on_sigterm() {
    let sandbox = TestSandbox::start();
    let mut child = session_cli(&sandbox)
        .args(["session", "keep", "--brokerage", "--tickle-interval", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let (lines, received) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Waits for the next line: the session's events, not a fixed time.
    let next = || {
        received
            .recv_timeout(Duration::from_secs(60))
            .expect("a line from `session keep`")
    };
    let first = next();
    assert!(first.ends_with(" brokerage"), "{first}");
    sandbox
        .running
        .inject_session_fault(SessionFault::CompetingLogin);
    let competing = next();
    assert!(competing.contains(" competing"), "{competing}");

    // SIGTERM to the child this test started, by its id.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(next(), "logged out");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(sandbox.running.open_sessions(), 0);
}
