//! Every exit code through the real binary, each error as one line on stderr: 2 usage or
//! configuration, 3 the sandbox's refusal with its problem detail, 4 transport, 5 an invalid
//! response.

mod common;

use common::{TestSandbox, closed_port, run};
use ibkr_oauth_sandbox::Fault;

// --- 2: usage or configuration ---

#[test]
fn a_missing_client_id_is_2() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().env_remove("IBKR_CLIENT_ID").arg("token"));
    let stderr = out.assert_error(2);
    assert!(
        stderr.contains("--client-id") && stderr.contains("IBKR_CLIENT_ID"),
        "{stderr}"
    );
    assert_eq!(sandbox.running.request_count(), 0);
}

#[test]
fn a_missing_private_key_is_2() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .env_remove("IBKR_PRIVATE_KEY")
        .arg("assertion"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("IBKR_PRIVATE_KEY"), "{stderr}");
}

#[test]
fn a_key_file_that_does_not_exist_is_2() {
    let sandbox = TestSandbox::start();
    let missing = sandbox.dir.path().join("no-such-key.pem");
    let out = run(sandbox.cli().env("IBKR_PRIVATE_KEY", &missing).arg("token"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("no-such-key.pem"), "{stderr}");
    assert!(stderr.contains("IBKR_PRIVATE_KEY"), "{stderr}");
    assert_eq!(sandbox.running.request_count(), 0);
}

#[test]
fn a_key_file_that_is_not_a_key_is_2() {
    let sandbox = TestSandbox::start();
    let garbage = sandbox.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a key\n").expect("written");
    let out = run(sandbox
        .cli()
        .arg("token")
        .arg("--private-key")
        .arg(&garbage));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("not PEM text"), "{stderr}");

    let public = sandbox.dir.path().join("public.pem");
    let key = ibkr_oauth::PrivateKey::generate(ibkr_oauth::Algorithm::EdDSA).expect("a key");
    std::fs::write(&public, key.public_key_pem()).expect("written");
    let out = run(sandbox.cli().arg("token").arg("--private-key").arg(&public));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("public key"), "{stderr}");
}

#[test]
fn a_key_that_cannot_sign_the_algorithm_is_2() {
    let sandbox = TestSandbox::start(); // an EC key
    let out = run(sandbox.cli().args(["token", "--alg", "RS256"]));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("cannot sign RS256"), "{stderr}");
}

#[test]
fn plain_http_to_a_remote_host_is_2() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .env("IBKR_BASE_URL", "http://api.ibkr.com")
        .arg("token"));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("plain http"), "{stderr}");
}

#[test]
fn the_token_url_given_as_the_base_url_is_2_before_any_request() {
    let sandbox = TestSandbox::start();
    let token_url = format!("{}/oauth2/api/v1/token", sandbox.running.base_url());
    let out = run(sandbox.cli().env("IBKR_BASE_URL", &token_url).arg("token"));
    let stderr = out.assert_error(2);
    assert!(
        stderr.contains(&format!(
            "give the server alone: {}",
            sandbox.running.base_url().trim_end_matches('/')
        )),
        "{stderr}"
    );
    assert_eq!(sandbox.running.requests().len(), 0, "caught locally");
}

#[test]
fn a_scope_the_endpoint_would_refuse_is_2() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox.cli().args(["token", "--scope", "ab"]));
    out.assert_error(2);
    assert_eq!(sandbox.running.request_count(), 0);
}

#[test]
fn usage_errors_are_2() {
    for args in [
        &["token", "--alg", "HS256"][..],
        &["token", "--no-such-flag"],
        &["token", "--raw", "--json"],
        &["no-such-command"],
        &[],
    ] {
        let out = run(common::cli().args(args));
        assert_eq!(out.code, 2, "{args:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:#?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:#?}");
    }
}

// --- 3: the server refused ---

#[test]
fn a_wrong_client_id_is_3_with_the_problem_detail() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .env("IBKR_CLIENT_ID", "wrong-client")
        .arg("token"));
    let stderr = out.assert_error(3);
    assert!(stderr.contains("400 Bad Request"), "{stderr}");
    assert!(
        stderr.contains(r#"client_assertion: iss "wrong-client" is not the registered client id"#),
        "{stderr}"
    );
    sandbox.assert_no_secret(&out);
}

#[test]
fn an_unknown_kid_is_3_with_the_problem_detail() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .env("IBKR_KEY_ID", "other")
        .args(["token", "--json"]));
    let stderr = out.assert_error(3);
    assert!(
        stderr.contains(r#"Bad Request: client_assertion: unknown kid "other""#),
        "{stderr}"
    );
    sandbox.assert_no_secret(&out);
}

#[test]
fn a_wrong_audience_is_3() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .args(["token", "--audience", "https://elsewhere/token"]));
    let stderr = out.assert_error(3);
    assert!(stderr.contains("aud"), "{stderr}");
}

#[test]
fn a_server_error_problem_is_3() {
    let sandbox = TestSandbox::start();
    sandbox.running.inject_fault(Fault::ServerError, 1);
    let out = run(sandbox.cli().args(["token", "--raw"]));
    let stderr = out.assert_error(3);
    assert!(stderr.contains("500 Internal Server Error"), "{stderr}");
}

// --- 4: transport ---

#[test]
fn nothing_listening_is_4() {
    let sandbox = TestSandbox::start();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let out = run(sandbox
        .cli()
        .env("IBKR_BASE_URL", &url)
        .args(["token", "--raw"]));
    let stderr = out.assert_error(4);
    assert!(stderr.contains("could not connect"), "{stderr}");
}

#[test]
fn a_connection_closed_without_an_answer_is_4() {
    let sandbox = TestSandbox::start();
    sandbox.running.inject_fault(Fault::CloseConnection, 1);
    let out = run(sandbox.cli().arg("token"));
    out.assert_error(4);
}

// --- 5: an invalid response ---

#[test]
fn an_html_page_is_5() {
    let sandbox = TestSandbox::start();
    let mut server = mockito::Server::new();
    let _page = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_status(200)
        .with_header("content-type", "text/html")
        .with_body("<html><body>Welcome to nginx!</body></html>")
        .create();
    let out = run(sandbox
        .cli()
        .env("IBKR_BASE_URL", server.url())
        .arg("token"));
    let stderr = out.assert_error(5);
    assert!(stderr.contains("base URL"), "{stderr}");
}

#[test]
fn a_success_without_a_token_is_5() {
    let sandbox = TestSandbox::start();
    let mut server = mockito::Server::new();
    let _empty = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(r#"{"token_type":"Bearer"}"#)
        .create();
    let out = run(sandbox
        .cli()
        .env("IBKR_BASE_URL", server.url())
        .args(["token", "--json"]));
    let stderr = out.assert_error(5);
    assert!(stderr.contains("access_token"), "{stderr}");
}

/// A 200 whose members hold terminal escape sequences (window title, clear screen).
fn hostile_success(access_token: &str) -> mockito::ServerGuard {
    let mut server = mockito::Server::new();
    let body = serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer\u{1b}]0;pwned\u{7}",
        "scope": "echo.read\u{1b}[2J\u{1b}[H",
        "expires_in": 3600,
    });
    server
        .mock("POST", "/oauth2/api/v1/token")
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body(body.to_string())
        .create();
    server
}

#[test]
fn escape_sequences_from_the_server_never_reach_the_terminal() {
    let sandbox = TestSandbox::start();
    let server = hostile_success("abc.def.ghi");
    for args in [&["token"][..], &["token", "--json"][..]] {
        let out = run(sandbox.cli().env("IBKR_BASE_URL", server.url()).args(args));
        let stdout = out.assert_success();
        assert!(!stdout.contains('\u{1b}'), "{args:?}: {stdout:?}");
        assert!(!stdout.contains('\u{7}'), "{args:?}: {stdout:?}");
    }
}

#[test]
fn raw_refuses_a_token_with_control_characters_or_white_space_as_5() {
    let sandbox = TestSandbox::start();
    for token in ["abc\u{1b}[2Jdef", "abc def", "abc\ndef"] {
        let server = hostile_success(token);
        let out = run(sandbox
            .cli()
            .env("IBKR_BASE_URL", server.url())
            .args(["token", "--raw"]));
        let stderr = out.assert_error(5);
        assert!(out.stdout.is_empty(), "{token:?}: nothing printed");
        assert!(stderr.contains("access_token"), "{stderr}");
        assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    }
}
