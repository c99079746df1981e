//! `ibkr-oauth token` end to end against the sandbox: the summary, `--json`, `--raw`,
//! `--reveal`, settings from flags and from the environment, and no secret in the output.

mod common;

use common::{CLIENT_ID, TestSandbox, run};
use serde_json::Value;

#[test]
fn the_summary_shows_the_token_redacted() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .args(["token", "--scope", "echo.read echo.write"]));
    let stdout = out.assert_success();
    assert!(stdout.contains("access token: [redacted]"), "{stdout}");
    assert!(stdout.contains("token type:   Bearer"), "{stdout}");
    assert!(
        stdout.contains("scopes:       echo.read echo.write"),
        "{stdout}"
    );
    assert!(stdout.contains("(in 23h 59m"), "{stdout}");
    assert!(stdout.contains(CLIENT_ID), "{stdout}");
    assert_eq!(sandbox.running.tokens_issued(), 1);
    sandbox.assert_no_secret(&out);
}

#[test]
fn raw_prints_exactly_the_token_on_one_line() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().args(["token", "--raw"]));
    let stdout = out.assert_success();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(stdout.ends_with('\n'));
    let token = stdout.trim_end_matches('\n');
    assert!(!token.contains(char::is_whitespace), "{stdout:?}");
    let claims = sandbox
        .running
        .verify_access_token(token)
        .expect("the sandbox issued this token");
    assert_eq!(claims.sub, CLIENT_ID);
}

#[test]
fn json_parses_and_redacts_the_token() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .args(["token", "--json"])
        .env("IBKR_SCOPE", "sso-sessions.write"));
    let json: Value = serde_json::from_str(out.assert_success()).expect("JSON");
    assert_eq!(json["access_token"], "[redacted]");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["scope"], "sso-sessions.write");
    assert_eq!(json["version"], 1);
    assert!(
        json["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{json}"
    );
    sandbox.assert_no_secret(&out);
}

#[test]
fn json_with_reveal_shows_the_real_token() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().args(["token", "--json", "--reveal"]));
    let json: Value = serde_json::from_str(out.assert_success()).expect("JSON");
    let token = json["access_token"].as_str().expect("a string");
    sandbox
        .running
        .verify_access_token(token)
        .expect("the revealed token is the real one");
}

#[test]
fn the_private_key_can_be_given_as_pem_text() {
    let sandbox = TestSandbox::start();
    // As a `.env` file writes it: one line, with literal `\n`.
    let one_line = sandbox.private_pem.trim_end().replace('\n', "\\n");
    let out = run(sandbox
        .cli()
        .args(["token", "--json"])
        .env("IBKR_PRIVATE_KEY", &one_line));
    out.assert_success();
    sandbox.assert_no_secret(&out);

    let out = run(sandbox.cli().env_remove("IBKR_PRIVATE_KEY").args([
        "token",
        "--private-key",
        &sandbox.private_pem,
    ]));
    out.assert_success();
    sandbox.assert_no_secret(&out);
}

#[test]
fn flags_win_over_the_environment() {
    let sandbox = TestSandbox::start();
    let base_url = sandbox.running.base_url();
    let out = run(common::cli().args([
        "token",
        "--base-url",
        &base_url,
        "--client-id",
        CLIENT_ID,
        "--kid",
        common::KEY_ID,
        "--private-key",
        sandbox.private_key.to_str().expect("UTF-8 path"),
    ]));
    out.assert_success();

    let out = run(sandbox.cli().args(["token", "--client-id", "someone-else"]));
    let stderr = out.assert_error(3);
    assert!(stderr.contains("\"someone-else\""), "{stderr}");
}

#[test]
fn help_never_shows_the_private_key_from_the_environment() {
    let sandbox = TestSandbox::start();
    for sub in ["token", "assertion"] {
        let out = run(sandbox
            .cli()
            .args([sub, "--help"])
            .env("IBKR_PRIVATE_KEY", &sandbox.private_pem));
        let stdout = out.assert_success();
        assert!(stdout.contains("IBKR_PRIVATE_KEY"), "{stdout}");
        assert!(stdout.contains("Exit codes:"), "{stdout}");
        sandbox.assert_no_secret(&out);
    }
}

#[test]
fn a_key_or_token_pasted_in_the_wrong_place_is_not_echoed() {
    let sandbox = TestSandbox::start();
    let raw = run(sandbox.cli().args(["token", "--raw"]));
    let token = raw.assert_success().trim_end().to_owned();
    for misplaced in [sandbox.private_pem.as_str(), token.as_str()] {
        let out = run(sandbox.cli().args(["token", misplaced]));
        assert_eq!(out.code, 2, "{out:#?}");
        assert!(out.stderr.contains("[redacted]"), "{out:#?}");
        assert!(!out.all().contains(&token), "{out:#?}");
        sandbox.assert_no_secret(&out);
    }
}

#[test]
fn a_refusal_says_what_to_do_and_the_request_id_to_quote() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().args(["token", "--kid", "retired"]));
    let stderr = out.assert_error(3);
    assert!(stderr.contains(r#"unknown kid "retired""#), "{stderr}");
    assert!(
        stderr.contains(r#"no key is registered under kid "retired" for this client"#),
        "what to do, as doctor says it: {stderr}"
    );
    assert!(
        stderr.contains("(quote to IBKR: x-request-id: "),
        "{stderr}"
    );
    assert_eq!(stderr.matches("x-request-id").count(), 1, "{stderr}");
}
