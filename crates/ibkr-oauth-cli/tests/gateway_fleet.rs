//! Several `ibkr-oauth serve --gateway --redis` processes for one username on one real Redis
//! and one sandbox (with its pacing on): one session owner is elected, it alone opens the SSO
//! and brokerage session, the others forward with the token it publishes; when the owner is
//! killed (while the sandbox holds tickles) or paused, another takes over and adopts the session (no new one, no competing, no
//! 429) while the clients' calls keep working; when Redis is killed, the default policy fails
//! closed with its typed error, and `--session-fallback local` keeps each host serving.
//!
//! Waits are generous (a loaded machine), and nothing here asserts a speed.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{REDIS_KEY, Redis, TestSandbox, closed_port, kill, wait_for};
use ibkr_oauth_sandbox::{SandboxPacing, SessionFault};
use serde_json::Value;

const USER: &str = "alice";
/// The session lease of the test fleet (a takeover within 4 s; the default is 10 s).
const LEASE_MS: &str = "3000";
/// A bound only a hang reaches.
const PATIENCE: Duration = Duration::from_secs(90);

/// A running gateway; killed on drop.
struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn paced_sandbox() -> TestSandbox {
    TestSandbox::start_built(
        ibkr_oauth::Algorithm::ES256,
        |client| client,
        |builder| builder.pacing(SandboxPacing::ibkr().penalty(Duration::from_secs(600))),
    )
}

fn start_gateway(sandbox: &TestSandbox, redis: &Redis, extra: &[&str]) -> Gateway {
    let port = closed_port();
    let socket = sandbox.dir.path().join(format!("gw-{port}.sock"));
    let mut child = sandbox
        .cli()
        .env("IBKR_REDIS_KEY", REDIS_KEY)
        .args([
            "serve",
            "--gateway",
            "--username",
            USER,
            "--ip",
            "127.0.0.1",
        ])
        .args(["--redis", &redis.url, "--session-lease-ms", LEASE_MS])
        .arg("--socket")
        .arg(&socket)
        .args(["--cp-compatible", &port.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve --gateway starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut seen = String::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a line");
        seen.push_str(&line);
    }
    assert!(seen.contains("gateway on unix socket"), "{seen}");
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// A blocking GET: its status and JSON body (`Null` when not JSON or no answer).
fn get(url: &str) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client");
        match http.get(url).send().await {
            Ok(answer) => {
                let status = answer.status().as_u16();
                (status, answer.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    })
}

fn health(gateway: &Gateway) -> (u16, Value) {
    get(&format!("{}/healthz", gateway.base))
}

fn role(gateway: &Gateway) -> String {
    health(gateway).1["session"]["role"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn accounts(gateway: &Gateway) -> (u16, Value) {
    get(&format!("{}/v1/api/iserver/accounts", gateway.base))
}

/// How many requests of the sandbox went to `path`.
fn sent(sandbox: &TestSandbox, path: &str) -> usize {
    sandbox
        .running
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .count()
}

/// Waits (up to [`PATIENCE`]) for every gateway to answer /healthz 200, and returns the index
/// of the one owner (the others are followers).
fn settled(gateways: &[Gateway]) -> usize {
    let started = Instant::now();
    loop {
        let healths: Vec<(u16, Value)> = gateways.iter().map(health).collect();
        let owners: Vec<usize> = (0..gateways.len())
            .filter(|i| healths[*i].1["session"]["role"] == "owner")
            .collect();
        let followers = healths
            .iter()
            .filter(|h| h.1["session"]["role"] == "follower")
            .count();
        if healths.iter().all(|h| h.0 == 200)
            && owners.len() == 1
            && followers == gateways.len() - 1
        {
            return owners[0];
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the fleet did not settle: {healths:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_one_session_never_competing(sandbox: &TestSandbox) {
    assert_eq!(
        sent(sandbox, "/gw/api/v1/sso-sessions"),
        1,
        "one SSO session"
    );
    assert_eq!(
        sent(sandbox, "/v1/api/iserver/auth/ssodh/init"),
        1,
        "one brokerage session opened, never fought for"
    );
    assert_eq!(sandbox.running.open_sessions(), 1);
    assert!(sandbox.running.brokerage_session_open(USER));
    let refused: Vec<String> = sandbox
        .running
        .requests()
        .iter()
        .filter(|r| r.status() == Some(429))
        .map(|r| r.path.clone())
        .collect();
    assert!(
        refused.is_empty(),
        "the sandbox answered 429 to {refused:?}"
    );
}

#[test]
fn gateways_on_one_redis_open_one_session_for_the_username() {
    let redis = Redis::start();
    let sandbox = paced_sandbox();
    let gateways: Vec<Gateway> = (0..3)
        .map(|_| start_gateway(&sandbox, &redis, &[]))
        .collect();
    let owner = settled(&gateways);
    let fence = health(&gateways[owner]).1["session"]["fence"].clone();
    for gateway in &gateways {
        let (status, body) = accounts(gateway);
        assert_eq!(status, 200, "{body}");
        let (_, health) = health(gateway);
        assert_eq!(health["session"]["state"], "brokerage", "{health}");
        assert_eq!(health["session"]["competing"], false, "{health}");
        assert_eq!(
            health["session"]["fence"], fence,
            "one owner's session: {health}"
        );
    }
    assert_one_session_never_competing(&sandbox);
    assert_eq!(
        sandbox.running.tokens_issued(),
        1,
        "one access token for the fleet"
    );
}

#[test]
fn the_owner_killed_while_ibkr_stalls_another_takes_over_and_adopts_the_session() {
    let redis = Redis::start();
    let sandbox = paced_sandbox();
    let mut gateways: Vec<Gateway> = (0..3)
        .map(|_| start_gateway(&sandbox, &redis, &[]))
        .collect();
    let owner = settled(&gateways);
    let old_fence = health(&gateways[owner]).1["session"]["fence"]
        .as_u64()
        .expect("a fence");
    let tickles_before = sent(&sandbox, "/v1/api/tickle");
    // IBKR stalls: the next tickles (the new owner's check of the session it adopts) are held
    // for longer than half the lease; the lease is renewed meanwhile and nothing is re-opened.
    sandbox
        .running
        .inject_session_fault(SessionFault::SlowTickles {
            times: 3,
            delay: Duration::from_secs(2),
        });
    let mut dead = gateways.remove(owner);
    let killed = Instant::now();
    dead.child.kill().expect("SIGKILL");
    let _ = dead.child.wait();
    // The clients' calls keep working meanwhile (the followers hold the published token).
    let mut calls = 0;
    wait_for("another owner", || {
        for gateway in &gateways {
            let (status, body) = accounts(gateway);
            assert_eq!(status, 200, "a call during the takeover: {body}");
            calls += 1;
        }
        gateways.iter().any(|g| role(g) == "owner")
    });
    eprintln!(
        "a new owner after {:?} ({calls} calls answered meanwhile)",
        killed.elapsed()
    );
    let owner = settled(&gateways);
    let (_, health) = health(&gateways[owner]);
    assert!(
        health["session"]["fence"].as_u64() > Some(old_fence),
        "{health}"
    );
    assert_eq!(health["session"]["state"], "brokerage", "{health}");
    // Adopted: checked with a tickle, not re-opened, not fought for.
    assert!(sent(&sandbox, "/v1/api/tickle") > tickles_before);
    assert_one_session_never_competing(&sandbox);
    for gateway in &gateways {
        assert_eq!(accounts(gateway).0, 200);
    }
}

#[test]
fn a_paused_owner_that_wakes_follows_and_opens_nothing() {
    let redis = Redis::start();
    let sandbox = paced_sandbox();
    let gateways: Vec<Gateway> = (0..2)
        .map(|_| start_gateway(&sandbox, &redis, &[]))
        .collect();
    let owner = settled(&gateways);
    let other = 1 - owner;
    let pid = gateways[owner].child.id();
    kill("STOP", pid);
    wait_for("the other to take over", || {
        role(&gateways[other]) == "owner"
    });
    kill("CONT", pid);
    // Woken past its lease: its fence closed, it follows the new owner's session.
    wait_for("the old owner to follow", || {
        role(&gateways[owner]) == "follower"
            && health(&gateways[owner]).1["session"]["fence"]
                == health(&gateways[other]).1["session"]["fence"]
    });
    assert_eq!(accounts(&gateways[owner]).0, 200);
    assert_one_session_never_competing(&sandbox);
}

#[test]
fn redis_killed_fails_closed_by_default_with_the_typed_error() {
    let mut redis = Redis::start();
    let sandbox = paced_sandbox();
    let gateways: Vec<Gateway> = (0..2)
        .map(|_| start_gateway(&sandbox, &redis, &[]))
        .collect();
    settled(&gateways);
    redis.kill();
    for gateway in &gateways {
        wait_for("fail closed", || {
            health(gateway).1["session"]["code"] == "shared_session_redis_unavailable"
        });
        let (status, health) = health(gateway);
        assert_eq!(status, 503, "{health}");
        assert_eq!(health["session"]["role"], "unavailable", "{health}");
        let (status, problem) = accounts(gateway);
        assert_eq!(status, 503, "{problem}");
        assert_eq!(
            problem["code"], "shared_session_redis_unavailable",
            "{problem}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("--session-fallback local"),
            "says what to do: {detail}"
        );
    }
    assert_eq!(
        sent(&sandbox, "/gw/api/v1/sso-sessions"),
        1,
        "no session of its own"
    );
}

#[test]
fn redis_killed_with_the_local_fallback_each_host_keeps_serving() {
    let mut redis = Redis::start();
    let sandbox = paced_sandbox();
    let local = ["--session-fallback", "local"];
    let gateways: Vec<Gateway> = (0..2)
        .map(|_| start_gateway(&sandbox, &redis, &local))
        .collect();
    settled(&gateways);
    redis.kill();
    for gateway in &gateways {
        wait_for("alone", || role(gateway) == "alone");
        let (status, body) = accounts(gateway);
        assert_eq!(status, 200, "{body}");
        assert_eq!(health(gateway).0, 200);
    }
    // Each host adopted the session it knew: none had to open one of its own.
    assert_eq!(sent(&sandbox, "/gw/api/v1/sso-sessions"), 1);
}
