//! `ibkr-oauth exec --session` with real child processes against the sandbox: the child gets
//! the SSO token (environment and file) and the URL of its `/v1/api` calls, uses them, and the
//! session is logged out when it ends; when IBKR ends the SSO session, the keeper opens a new
//! one and `--on-refresh` hands the new SSO token to the child.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TestSandbox, run, wait_for};
use ibkr_oauth_sandbox::SessionFault;

const USER: &str = "execuser3";
const IP: &str = "203.0.113.21";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `exec --session [flags] -- sh -c SCRIPT` in the sandbox's directory; `$CLI` is the binary.
fn exec_session(sandbox: &TestSandbox, flags: &[&str], script: &str) -> Command {
    let mut command = sandbox.cli();
    command
        .current_dir(sandbox.dir.path())
        .env("CLI", env!("CARGO_BIN_EXE_ibkr-oauth"))
        .env("IBKR_USERNAME", USER)
        .env("IBKR_SESSION_IP", IP)
        .env_remove("IBKR_SSO_TOKEN")
        .args(["exec", "--session"])
        .args(flags)
        .args(["--", "sh", "-c", script]);
    command
}

#[test]
fn the_child_gets_a_working_sso_token_and_the_session_ends_with_it() {
    let sandbox = TestSandbox::start();
    let dir = sandbox.dir.path();
    let out = run(&mut exec_session(
        &sandbox,
        &[],
        r#"printf %s "$IBKR_SSO_TOKEN" > sso; cp "$IBKR_SSO_TOKEN_FILE" sso-file;
           printf %s "$IBKR_GATEWAY_URL" > url; [ -n "$IBKR_ACCESS_TOKEN" ] || exit 98;
           "$CLI" session status > status || exit 97; exit 3"#,
    ));
    assert_eq!(out.code, 3, "{out:#?}");
    let sso = read(&dir.join("sso"));
    assert!(sso.len() > 10, "{sso:?}");
    assert_eq!(read(&dir.join("sso-file")), sso);
    assert_eq!(
        read(&dir.join("url")),
        format!(
            "{}/v1/api",
            sandbox.running.base_url().trim_end_matches('/')
        )
    );
    // The child's own call with the SSO token: the session is valid for the user.
    let status = read(&dir.join("status"));
    assert!(status.contains(": valid"), "{status}");
    assert!(status.contains(&format!("user:       {USER}")), "{status}");
    // Logged out when the child ended.
    assert_eq!(sandbox.running.open_sessions(), 0);
    sandbox.assert_no_secret(&out);
    assert!(
        !out.all().contains(&sso),
        "the SSO token reached the output"
    );
}

#[test]
fn a_new_sso_session_reaches_the_child_on_refresh() {
    let sandbox = TestSandbox::start();
    let dir = sandbox.dir.path();
    let exec = exec_session(
        &sandbox,
        &["--tickle-interval", "1", "--on-refresh", "signal:HUP"],
        r#"trap 'cp "$IBKR_SSO_TOKEN_FILE" new.tmp; mv new.tmp new' HUP
           printf %s "$IBKR_SSO_TOKEN" > first.tmp; mv first.tmp first
           while [ ! -e new ]; do sleep 0.05; done
           "$CLI" session status > /dev/null 2>&1; echo $? > old-code
           IBKR_SSO_TOKEN=$(cat new) "$CLI" session status > status"#,
    )
    .spawn()
    .expect("exec starts");
    wait_for("the first SSO token", || dir.join("first").exists());
    let first = read(&dir.join("first"));
    // IBKR ends every SSO session (idle expiry): the keeper's next tickle gets a 401.
    sandbox
        .running
        .inject_session_fault(SessionFault::ExpireSessions);
    let output = exec.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0), "{output:#?}");
    // The old token is refused (exit 3: the SSO session has ended), the new one is valid.
    assert_eq!(read(&dir.join("old-code")).trim(), "3");
    let new = read(&dir.join("new"));
    assert!(!new.is_empty());
    assert_ne!(new, first, "a new SSO session");
    let status = read(&dir.join("status"));
    assert!(status.contains(": valid"), "{status}");
    assert_eq!(sandbox.running.open_sessions(), 0, "logged out at the end");
}

#[test]
fn session_flags_need_session() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().args(["exec", "--brokerage", "--", "true"]));
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stderr.contains("--session"), "{out:#?}");
}
