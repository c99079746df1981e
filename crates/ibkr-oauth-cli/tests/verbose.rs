//! `-v`/`-vv`/`-vvv` and `RUST_LOG`: the SDK's events on stderr, and never a secret in them.

mod common;

use common::{TestSandbox, run};

#[test]
fn token_vvv_logs_on_stderr_without_any_secret() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().args(["token", "--raw", "-vvv"]));
    assert_eq!(out.code, 0, "{out:#?}");
    // The token is on stdout (--raw asked for it); stderr holds the log and nothing secret.
    let token = out.stdout.trim_end().to_owned();
    assert!(!out.stderr.is_empty(), "{out:#?}");
    assert!(out.stderr.contains("ibkr_oauth"), "{}", out.stderr);
    assert!(
        out.stderr.contains("TRACE") || out.stderr.contains("DEBUG"),
        "{}",
        out.stderr
    );
    let log = common::Run {
        code: 0,
        stdout: String::new(),
        stderr: out.stderr.clone(),
    };
    assert!(!log.stderr.contains(&token));
    sandbox.assert_no_secret(&log);
}

#[test]
fn rust_log_works_and_quiet_is_the_default() {
    let sandbox = TestSandbox::start();
    let quiet = run(sandbox.cli().arg("token"));
    quiet.assert_success();
    let logged = run(sandbox
        .cli()
        .env("RUST_LOG", "ibkr_oauth=debug")
        .arg("token"));
    assert_eq!(logged.code, 0, "{logged:#?}");
    assert!(logged.stderr.contains("DEBUG"), "{logged:#?}");
    sandbox.assert_no_secret(&logged);
}
