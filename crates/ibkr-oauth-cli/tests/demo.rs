//! `ibkr-oauth demo` runs the whole flow and exits 0 without printing a secret; `--help`
//! documents the exit codes.

mod common;

use common::{assert_no_jwt_or_key, cli, run};

#[test]
fn the_demo_runs_the_whole_flow_and_exits_0() {
    let out = run(cli().arg("demo"));
    let stdout = out.assert_success();
    for step in 1..=10 {
        assert!(
            stdout.contains(&format!("\n{step}. ")),
            "step {step}: {stdout}"
        );
    }
    assert!(stdout.contains("RSA 2048-bit"), "{stdout}");
    assert!(stdout.contains("-> 200"), "{stdout}");
    assert!(stdout.contains("500 then 200"), "{stdout}");
    assert!(stdout.contains(r#"unknown kid "retired-key""#), "{stdout}");
    assert!(stdout.contains("[ok]   echo/signed-jwt"), "{stdout}");
    assert!(
        stdout.contains("no check failed: 8 passed, 0 skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("done: 11 requests, 4 tokens issued"),
        "{stdout}"
    );
    assert!(stdout.contains("[redacted]"), "{stdout}");
    // The session step: the SSO session, one /v1/api answer through it, the logout.
    assert!(stdout.contains("state read-only"), "{stdout}");
    assert!(
        stdout.contains("GET /v1/api/portfolio/accounts -> 200 (account DU"),
        "{stdout}"
    );
    assert_no_jwt_or_key(&out);
}

#[test]
fn the_demo_with_another_algorithm() {
    let out = run(cli().args(["demo", "--alg", "EdDSA"]));
    let stdout = out.assert_success();
    assert!(stdout.contains("Ed25519"), "{stdout}");
    assert_no_jwt_or_key(&out);
}

#[test]
fn help_lists_the_commands_and_the_exit_codes() {
    let out = run(cli().arg("--help"));
    let stdout = out.assert_success();
    for command in [
        "token",
        "doctor",
        "assertion",
        "jwk",
        "keygen",
        "sandbox",
        "demo",
        "session",
        "completions",
    ] {
        assert!(stdout.contains(command), "{stdout}");
    }
    for code in [
        "0  success",
        "2  usage or configuration",
        "3  the server refused",
        "4  transport",
        "5  invalid response",
    ] {
        assert!(stdout.contains(code), "{code}: {stdout}");
    }
}
