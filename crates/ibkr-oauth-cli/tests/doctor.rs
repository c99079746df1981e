//! `ibkr-oauth doctor` against the sandbox: a passing setup, and the broken setups a user
//! meets (wrong kid, unregistered key, a clock ten minutes off, a scope not granted, a missing
//! setting), each named in the report with the exit code of its class.

mod common;

use common::{CLIENT_ID, TestSandbox, run};
use ibkr_oauth::Algorithm;
use serde_json::Value;

const ECHO_SCOPES: &str = "echo.read echo.write";

fn sandbox() -> TestSandbox {
    TestSandbox::start_client(Algorithm::ES256, |client| {
        client.allowed_scopes(["echo.read", "echo.write"])
    })
}

/// The report's line for the check `name`.
fn line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            l.get(7..)
                .is_some_and(|rest| rest.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{stdout}"))
}

/// The run failed with `code`, printed its report on stdout and one line on stderr.
fn assert_failed(out: &common::Run, code: i32, first: &str) {
    assert_eq!(out.code, code, "{out:#?}");
    assert_eq!(
        out.stderr.trim_end(),
        format!("ibkr-oauth: doctor: the {first} check failed; see the report above"),
        "{out:#?}"
    );
    assert!(
        out.stdout.ends_with(&format!(
            "the first failure ({first}) sets the exit code {code}\n"
        )),
        "{out:#?}"
    );
}

#[test]
fn a_working_setup_passes_every_check() {
    let sandbox = sandbox();
    let out = run(sandbox.cli().env("IBKR_SCOPE", ECHO_SCOPES).arg("doctor"));
    let stdout = out.assert_success();
    assert!(
        stdout.starts_with(&format!(
            "ibkr-oauth doctor: checking the setup against {}\n",
            sandbox.running.base_url()
        )),
        "{stdout}"
    );
    let settings = line(stdout, "settings");
    assert!(settings.starts_with("[ok]"), "{settings}");
    assert!(
        settings.contains("client id (variable IBKR_CLIENT_ID)")
            && settings.contains("audience (default)")
            && settings.contains("scope (variable IBKR_SCOPE)"),
        "{settings}"
    );
    assert!(line(stdout, "key").contains("EC P-256 from"), "{stdout}");
    let key = ibkr_oauth::PrivateKey::from_pem_file(&sandbox.private_key).unwrap();
    assert!(
        line(stdout, "public key").contains(&key.thumbprint().unwrap()),
        "{stdout}"
    );
    for name in ["clock", "token", "scopes", "echo/https", "echo/signed-jwt"] {
        assert!(line(stdout, name).starts_with("[ok]"), "{stdout}");
    }
    assert!(
        line(stdout, "echo/https").contains("securityPolicy Https"),
        "{stdout}"
    );
    assert!(
        line(stdout, "echo/signed-jwt").contains("securityPolicy SignedJwt"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("no check failed: 8 passed, 0 skipped\n"),
        "{stdout}"
    );
    // Two echo calls and one token request reached the sandbox.
    assert_eq!(sandbox.running.request_count(), 3);
    assert!(line(stdout, "scopes").contains("as asked"), "{stdout}");
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    sandbox.assert_no_secret(&out);
}

#[test]
fn a_flag_is_reported_as_a_flag() {
    let sandbox = sandbox();
    let out = run(sandbox
        .cli()
        .args(["doctor", "--kid", common::KEY_ID, "--scope", "echo.read"]));
    let stdout = out.assert_success();
    let settings = line(stdout, "settings");
    assert!(
        settings.contains("key id (flag)") && settings.contains("scope (flag)"),
        "{settings}"
    );
}

#[test]
fn echo_checks_are_skipped_without_their_scopes() {
    let sandbox = sandbox();
    let out = run(sandbox.cli().env("IBKR_SCOPE", "echo.read").arg("doctor"));
    let stdout = out.assert_success();
    assert!(line(stdout, "echo/https").starts_with("[ok]"), "{stdout}");
    let write = line(stdout, "echo/signed-jwt");
    assert!(
        write.starts_with("[skip]") && write.contains("echo.write not granted"),
        "{write}"
    );
    assert!(
        stdout.ends_with("no check failed: 7 passed, 1 skipped\n"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_kid_is_a_refusal_naming_the_kid() {
    let sandbox = sandbox();
    let out = run(sandbox.cli().env("IBKR_KEY_ID", "retired").arg("doctor"));
    assert_failed(&out, 3, "token");
    let token = line(&out.stdout, "token");
    assert!(token.starts_with("[FAIL]"), "{token}");
    assert!(
        token.contains("unknown kid \\\"retired\\\"") || token.contains("unknown kid \"retired\""),
        "{token}"
    );
    assert!(token.contains("set IBKR_KEY_ID"), "{token}");
    let id = &sandbox
        .running
        .last_request()
        .expect("a request")
        .request_id;
    assert!(
        token.ends_with(&format!("(quote to IBKR: x-request-id: {id})")),
        "{token}"
    );
    assert!(
        line(&out.stdout, "clock").starts_with("[ok]"),
        "{}",
        out.stdout
    );
    assert!(
        line(&out.stdout, "scopes").starts_with("[skip]"),
        "{}",
        out.stdout
    );
    sandbox.assert_no_secret(&out);
}

#[test]
fn an_unregistered_key_is_a_refusal_that_says_to_compare_thumbprints() {
    let sandbox = sandbox();
    let other = sandbox.dir.path().join("other.pem");
    let key = ibkr_oauth::PrivateKey::generate(Algorithm::ES256).unwrap();
    std::fs::write(&other, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let out = run(sandbox.cli().env("IBKR_PRIVATE_KEY", &other).arg("doctor"));
    assert_failed(&out, 3, "token");
    let token = line(&out.stdout, "token");
    assert!(token.contains("does not verify"), "{token}");
    assert!(token.contains("compare the thumbprint"), "{token}");
    assert!(
        line(&out.stdout, "public key").contains(&key.thumbprint().unwrap()),
        "{}",
        out.stdout
    );
}

#[test]
fn a_clock_ten_minutes_off_fails_the_clock_check_first() {
    let sandbox = sandbox();
    sandbox.running.set_clock_offset(600);
    let out = run(sandbox.cli().arg("doctor"));
    assert_failed(&out, 2, "clock");
    let clock = line(&out.stdout, "clock");
    assert!(clock.starts_with("[FAIL]"), "{clock}");
    assert!(clock.contains("behind the server's"), "{clock}");
    assert!(clock.contains("sync the clock"), "{clock}");
    let token = line(&out.stdout, "token");
    assert!(
        token.starts_with("[FAIL]") && token.contains("in the past"),
        "{token}"
    );
}

#[test]
fn a_scope_not_granted_is_named() {
    let sandbox = TestSandbox::start_client(Algorithm::ES256, |client| {
        client.allowed_scopes(["echo.read"])
    });
    let out = run(sandbox.cli().env("IBKR_SCOPE", ECHO_SCOPES).arg("doctor"));
    assert_failed(&out, 3, "token");
    let token = line(&out.stdout, "token");
    assert!(
        token.contains("\\\"echo.write\\\" is not allowed")
            || token.contains("\"echo.write\" is not allowed"),
        "{token}"
    );
    assert!(token.contains("IBKR_SCOPE"), "{token}");
}

#[test]
fn a_missing_setting_is_a_configuration_failure() {
    let sandbox = sandbox();
    let out = run(sandbox.cli().env_remove("IBKR_CLIENT_ID").arg("doctor"));
    assert_failed(&out, 2, "settings");
    let settings = line(&out.stdout, "settings");
    assert!(settings.contains("IBKR_CLIENT_ID"), "{settings}");
    // The key is still checked, so its thumbprint can be compared.
    assert!(
        line(&out.stdout, "public key").starts_with("[ok]"),
        "{}",
        out.stdout
    );
    assert!(
        line(&out.stdout, "token").starts_with("[skip]"),
        "{}",
        out.stdout
    );
    assert_eq!(sandbox.running.request_count(), 0);
}

#[test]
fn json_reports_each_check_and_the_exit_code() {
    let sandbox = sandbox();
    let out = run(sandbox
        .cli()
        .env("IBKR_KEY_ID", "retired")
        .args(["doctor", "--json"]));
    assert_eq!(out.code, 3, "{out:#?}");
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(report["exit_code"], 3);
    assert_eq!(report["ok"], false);
    assert_eq!(report["base_url"], sandbox.running.base_url());
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "settings",
            "key",
            "public key",
            "clock",
            "token",
            "scopes",
            "echo/https",
            "echo/signed-jwt"
        ]
    );
    let token = &checks[4];
    assert_eq!(token["status"], "failed");
    assert!(
        token["detail"].as_str().unwrap().contains("unknown kid"),
        "{token}"
    );
    sandbox.assert_no_secret(&out);
    let _ = CLIENT_ID;
}

#[test]
fn with_no_answer_the_clock_check_says_so_not_that_a_header_is_missing() {
    let sandbox = sandbox();
    let out = run(sandbox
        .cli()
        .env(
            "IBKR_BASE_URL",
            format!("http://127.0.0.1:{}", common::closed_port()),
        )
        .arg("doctor"));
    assert_failed(&out, 4, "token");
    let clock = line(&out.stdout, "clock");
    assert!(clock.starts_with("[skip]"), "{clock}");
    assert!(clock.contains("no answer from the server"), "{clock}");
    assert!(!clock.contains("Date header"), "{clock}");
    // The transport error says what to check; the report does not say it a second time.
    let token = line(&out.stdout, "token");
    assert_eq!(token.matches("check the base URL").count(), 1, "{token}");
}

/// The API's refusal of an echo call says what to do (its message, from the SDK); the report
/// adds the scope the check needed, not the same advice a second time.
#[test]
fn an_echo_refusal_says_what_to_do_once() {
    let sandbox = sandbox();
    let mut server = mockito::Server::new();
    let _token = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(
            r#"{"access_token":"a.b.c","token_type":"Bearer","expires_in":86400,"scope":"echo.read"}"#,
        )
        .create();
    let _echo = server
        .mock("GET", "/gw/api/v1/echo/https")
        .with_status(403)
        .with_header("content-type", "application/problem+json")
        .with_header("x-request-id", "req-403-7")
        .with_body(r#"{"title":"Forbidden","status":403,"detail":"insufficient scope"}"#)
        .create();
    let out = run(sandbox
        .cli()
        .env("IBKR_BASE_URL", server.url())
        .env("IBKR_SCOPE", "echo.read")
        .arg("doctor"));
    let echo = line(&out.stdout, "echo/https");
    assert!(
        echo.starts_with("[FAIL]") || echo.contains("403"),
        "{out:#?}"
    );
    assert_eq!(
        echo.matches("ask for it").count(),
        1,
        "the advice once: {echo}"
    );
    assert!(
        echo.contains("echo.read"),
        "the scope the check needed: {echo}"
    );
    assert_eq!(
        echo.matches("req-403-7").count(),
        1,
        "the request id once: {echo}"
    );
}
