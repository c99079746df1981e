//! `ibkr-oauth assertion`: redacted by default, `--decode` shows header and claims, `--raw`
//! prints an assertion that the sandbox accepts.

mod common;

use common::{CLIENT_ID, KEY_ID, TestSandbox, run};
use ibkr_oauth::{ClientAssertion, TokenClient, TokenRequest};
use serde_json::Value;

#[test]
fn the_summary_redacts_the_assertion() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().arg("assertion"));
    let stdout = out.assert_success();
    assert!(stdout.contains("assertion: [redacted]"), "{stdout}");
    assert!(stdout.contains(r#""iss":"cli-test-client""#), "{stdout}");
    assert!(stdout.contains(r#""kid":"main""#), "{stdout}");
    sandbox.assert_no_secret(&out);
    assert_eq!(sandbox.running.request_count(), 0, "no request is sent");
}

#[test]
fn decode_prints_the_header_and_claims_as_json() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .args(["assertion", "--decode", "--audience", "/custom"]));
    let json: Value = serde_json::from_str(out.assert_success()).expect("JSON");
    assert_eq!(json["header"]["alg"], "ES256");
    assert_eq!(json["header"]["kid"], KEY_ID);
    assert_eq!(json["header"]["typ"], "JWT");
    assert_eq!(json["claims"]["iss"], CLIENT_ID);
    assert_eq!(json["claims"]["sub"], CLIENT_ID);
    assert_eq!(json["claims"]["aud"], "/custom");
    let iat = json["claims"]["iat"].as_u64().expect("iat");
    let exp = json["claims"]["exp"].as_u64().expect("exp");
    assert!(exp > iat);
    assert!(json["claims"]["jti"].is_string());
    assert!(json.get("assertion").is_none());
    sandbox.assert_no_secret(&out);

    let out = run(sandbox.cli().args(["assertion", "--decode", "--reveal"]));
    let json: Value = serde_json::from_str(out.assert_success()).expect("JSON");
    assert_eq!(
        json["assertion"].as_str().map(|a| a.split('.').count()),
        Some(3)
    );
}

#[test]
fn raw_prints_an_assertion_the_sandbox_accepts() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().args(["assertion", "--raw"]));
    let stdout = out.assert_success();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let compact = stdout.trim_end().to_owned();
    assert_eq!(compact.split('.').count(), 3);

    let token = sandbox.runtime.block_on(async {
        let client = TokenClient::builder()
            .base_url(sandbox.running.base_url())
            .build()?;
        let request = TokenRequest::builder()
            .assertion(ClientAssertion::new(compact))
            .build()?;
        client.request_token(&request).await
    });
    assert!(token.is_ok(), "{token:?}");
}
