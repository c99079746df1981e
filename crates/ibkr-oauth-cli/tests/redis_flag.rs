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
