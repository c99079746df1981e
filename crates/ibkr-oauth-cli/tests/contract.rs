//! The credential contract (`schema/token-v1.schema.json`) as a contract: what `ibkr-oauth
//! token --json --reveal` prints and what the agent's `GET /token` answers, each from a real
//! process against the sandbox, validate against the schema, and carry a token the sandbox
//! issued. (JSON sink files are checked against it in `sinks.rs`.)

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use common::{TestSandbox, run};
use serde_json::Value;

/// The schema, with `format` checked (`expires_at` is a `date-time`).
pub fn validator() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(ibkr_oauth_cli::contract::SCHEMA).expect("the schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema is a valid JSON Schema")
}

fn assert_contract(sandbox: &TestSandbox, object: &Value) {
    let validator = validator();
    let errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{object}: {errors:?}");
    let token = object["access_token"].as_str().expect("a string");
    sandbox
        .running
        .verify_access_token(token)
        .expect("the sandbox issued it");
}

#[test]
fn the_schema_refuses_what_is_not_the_contract() {
    let validator = validator();
    let good = serde_json::json!({"version": 1, "access_token": "a.b.c", "token_type": "Bearer",
        "expires_at": "2026-12-04T12:00:00Z", "scope": ""});
    assert!(validator.is_valid(&good));
    for bad in [
        serde_json::json!({"version": 2, "access_token": "a.b.c", "token_type": "Bearer",
            "expires_at": "2026-12-04T12:00:00Z", "scope": ""}),
        serde_json::json!({"version": 1, "access_token": "a.b.c", "token_type": "Bearer",
            "expires_at": 1_764_849_600, "scope": ""}),
        serde_json::json!({"version": 1, "access_token": "a.b.c", "token_type": "Bearer",
            "expires_at": "2026-12-04T12:00:00Z"}),
        serde_json::json!({"version": 1, "access_token": "a.b.c", "token_type": "Bearer",
            "expires_at": "2026-12-04T12:00:00Z", "scope": "", "expires_in": 5}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
    }
}

#[test]
fn token_json_is_the_contract() {
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .args(["token", "--json", "--reveal"])
        .env("IBKR_SCOPE", "sso-sessions.write"));
    let object: Value = serde_json::from_str(out.assert_success()).expect("JSON");
    assert_contract(&sandbox, &object);
    assert_eq!(object["scope"], "sso-sessions.write");
}

#[test]
fn the_agents_token_route_is_the_contract() {
    let sandbox = TestSandbox::start();
    let socket = sandbox.dir.path().join("agent.sock");
    let mut child = sandbox
        .cli()
        .args(["serve", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("the ready line");

    let mut stream = UnixStream::connect(&socket).expect("connect");
    stream
        .write_all(b"GET /token HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let object: Value = serde_json::from_str(body).expect("JSON");
    assert_contract(&sandbox, &object);

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().expect("exits").code(), Some(0));
}
