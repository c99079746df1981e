//! `ibkr-oauth token --redis URL`: separate runs share one token through a real Redis (one
//! token request in the sandbox's log), and a missing key variable is a usage error naming it.

mod common;

use common::{Redis, TestSandbox, run};

use common::REDIS_KEY as KEY;

#[test]
fn separate_runs_share_one_token_through_redis() {
    let redis = Redis::start();
    let sandbox = TestSandbox::start();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let out = run(sandbox
            .cli()
            .env("IBKR_REDIS_KEY", KEY)
            .args(["token", "--raw", "--redis", &redis.url]));
        tokens.push(out.assert_success().trim().to_owned());
    }
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "the same token each time"
    );
    assert_eq!(
        sandbox.running.tokens_issued(),
        1,
        "one token request for the three runs"
    );
}

#[test]
fn the_key_comes_from_its_variable() {
    let redis = Redis::start();
    let sandbox = TestSandbox::start();
    let out = run(sandbox
        .cli()
        .env_remove("IBKR_REDIS_KEY")
        .args(["token", "--redis", &redis.url]));
    let stderr = out.assert_error(2);
    assert!(stderr.contains("IBKR_REDIS_KEY"), "{stderr}");
    assert_eq!(sandbox.running.tokens_issued(), 0);
}

/// Issue 20: the shared entry was named after the client id only, so a run asking for another
/// scope was handed the token granted for the first one, without a request of its own.
#[test]
fn a_run_asking_for_another_scope_gets_its_own_token() {
    let redis = Redis::start();
    let sandbox = TestSandbox::start_client(ibkr_oauth::Algorithm::ES256, |client| {
        client.allowed_scopes(["echo.read", "sso-sessions.write"])
    });
    let token = |scope: &str| {
        let out = run(sandbox.cli().env("IBKR_REDIS_KEY", KEY).args([
            "token", "--json", "--reveal", "--redis", &redis.url, "--scope", scope,
        ]));
        let json: serde_json::Value =
            serde_json::from_str(out.assert_success()).expect("the token as JSON");
        (
            json["access_token"].as_str().unwrap_or_default().to_owned(),
            json["scope"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (echo, echo_scope) = token("echo.read");
    let (sso, sso_scope) = token("sso-sessions.write");
    assert_eq!(echo_scope, "echo.read");
    assert_eq!(
        sso_scope, "sso-sessions.write",
        "the token of the scope asked for"
    );
    assert_ne!(echo, sso);
    assert_eq!(sandbox.running.tokens_issued(), 2, "one request per scope");
    // One scope set, in another order: one entry, shared.
    let (both, _) = token("echo.read sso-sessions.write");
    let (again, _) = token("sso-sessions.write echo.read");
    assert_ne!(both, sso);
    assert_eq!(again, both);
    assert_eq!(sandbox.running.tokens_issued(), 3);
}
