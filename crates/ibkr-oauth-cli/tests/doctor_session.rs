//! `ibkr-oauth doctor` with a username: the session checks (sso-sessions, sso/validate with
//! the username and IP echoed back, the brokerage session, a competing session), passing and
//! failing, each failure with what to do.

mod common;

use common::{TestSandbox, run};
use ibkr_oauth::Algorithm;
use ibkr_oauth_sandbox::SessionFault;

const USER: &str = "doctoruser";
const IP: &str = "203.0.113.44";

fn sandbox() -> TestSandbox {
    TestSandbox::start_with(Algorithm::ES256)
}

fn line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            l.get(7..)
                .is_some_and(|rest| rest.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{stdout}"))
}

fn doctor(sandbox: &TestSandbox) -> std::process::Command {
    let mut command = sandbox.cli();
    command
        .env("IBKR_SCOPE", "sso-sessions.write echo.read echo.write")
        .env("IBKR_USERNAME", USER)
        .env("IBKR_SESSION_IP", IP)
        .arg("doctor");
    command
}

#[test]
fn the_session_checks_pass_and_log_out() {
    let sandbox = sandbox();
    let out = run(&mut doctor(&sandbox));
    let stdout = out.assert_success();
    assert!(line(stdout, "sso-sessions").starts_with("[ok]"), "{stdout}");
    let validate = line(stdout, "sso/validate");
    assert!(
        validate.contains(&format!("user \"{USER}\" and IP \"{IP}\"")),
        "{validate}"
    );
    assert!(line(stdout, "brokerage").starts_with("[ok]"), "{stdout}");
    assert!(line(stdout, "competing").starts_with("[ok]"), "{stdout}");
    assert!(
        stdout.ends_with("no check failed: 12 passed, 0 skipped\n"),
        "{stdout}"
    );
    assert_eq!(sandbox.running.open_sessions(), 0, "logged out");
    sandbox.assert_no_secret(&out);
}

#[test]
fn a_competing_session_fails_with_what_to_do() {
    let sandbox = sandbox();
    // Another platform holds the brokerage session of the user: open one, then kick it.
    let holder = run(sandbox
        .cli()
        .env("IBKR_USERNAME", USER)
        .env("IBKR_SESSION_IP", IP)
        .args(["session", "open", "--brokerage"]));
    holder.assert_success();
    sandbox
        .running
        .inject_session_fault(SessionFault::CompetingLogin);
    let out = run(&mut doctor(&sandbox));
    assert_eq!(out.code, 3, "{out:#?}");
    let competing = line(&out.stdout, "competing");
    assert!(competing.starts_with("[FAIL]"), "{}", out.stdout);
    assert!(out.stdout.contains("log out there"), "{}", out.stdout);
}

#[test]
fn an_ip_ibkr_does_not_see_is_refused_with_what_to_do() {
    let sandbox = sandbox();
    sandbox
        .running
        .inject_session_fault(SessionFault::IpChange {
            new_ip: "198.51.100.77".parse().unwrap(),
        });
    let out = run(&mut doctor(&sandbox));
    assert_eq!(out.code, 3, "{out:#?}");
    let check = line(&out.stdout, "sso-sessions");
    assert!(check.starts_with("[FAIL]"), "{}", out.stdout);
    assert!(out.stdout.contains("IBKR_SESSION_IP"), "{}", out.stdout);
    assert!(
        line(&out.stdout, "brokerage").starts_with("[skip]"),
        "{}",
        out.stdout
    );
}

#[test]
fn without_the_scope_the_session_check_says_to_ask_for_it() {
    let sandbox = sandbox();
    let out = run(doctor(&sandbox).env("IBKR_SCOPE", "echo.read echo.write"));
    assert_eq!(out.code, 3, "{out:#?}");
    let check = line(&out.stdout, "sso-sessions");
    assert!(check.contains("not granted sso-sessions.write"), "{check}");
}
