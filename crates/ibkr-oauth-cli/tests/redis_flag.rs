//! `ibkr-oauth token --redis URL`: separate runs share one token through a real Redis (one
//! token request in the sandbox's log), and a missing key variable is a usage error naming it.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestSandbox, run};

/// A redis-server on a free loopback port, stopped on drop.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/ensure-redis installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64

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
