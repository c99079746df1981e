//! `ibkr-oauth serve --gateway` as a real process against the sandbox (with its pacing on):
//! a Python Client Portal Gateway client runs unchanged against the CP-compatible listener;
//! the session's endpoints are answered from the held session; no open proxy; 8 hammering
//! client processes at three times IBKR's limit, and the sandbox sees no more than the limit.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{REDIS_KEY, Redis, TestSandbox, closed_port};
use ibkr_oauth_sandbox::SandboxPacing;

const USER: &str = "alice";

/// A running gateway; killed on drop.
struct Gateway {
    child: Child,
    base: String,
    /// What it printed at start.
    started: String,
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

fn start_gateway(sandbox: &TestSandbox, extra: &[&str]) -> Gateway {
    start_gateway_with(sandbox, extra, &[])
}

fn start_gateway_with(sandbox: &TestSandbox, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
    let port = closed_port();
    let socket = sandbox.dir.path().join(format!("gw-{port}.sock"));
    let mut child = sandbox
        .cli()
        .args([
            "serve",
            "--gateway",
            "--username",
            USER,
            "--ip",
            "127.0.0.1",
        ])
        .arg("--socket")
        .arg(&socket)
        .args(["--cp-compatible", &port.to_string()])
        .args(extra)
        .envs(env.iter().copied())
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
    let tls = extra.contains(&"--cp-tls");
    let scheme = if tls { "https" } else { "http" };
    assert!(
        seen.contains(&format!("CP-Gateway-compatible on {scheme}://127.0.0.1")),
        "{seen}"
    );
    assert!(seen.contains("gateway on unix socket"), "{seen}");
    Gateway {
        child,
        base: format!("{scheme}://localhost:{port}"),
        started: seen,
    }
}

fn python(args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cp_client.py");
    let output = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (scripts/ensure-python-requests installs requests)");
    assert!(
        output.status.success(),
        "the Python client failed (scripts/ensure-python-requests installs requests): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[test]
fn a_python_cp_gateway_client_runs_unchanged() {
    let sandbox = paced_sandbox();
    let gateway = start_gateway(&sandbox, &[]);
    let out = python(&["smoke", &gateway.base]);
    assert_eq!(out["tickle_authenticated"], true, "{out}");
    assert_eq!(out["status"]["authenticated"], true, "{out}");
    assert_eq!(out["status"]["competing"], false, "{out}");
    assert_eq!(out["validate_user"], USER, "{out}");
    assert!(out["portfolio_accounts"].is_array(), "{out}");
    assert!(out["iserver_accounts"].is_object(), "{out}");
    assert_eq!(out["after_logout"], 200);
    // tickle, auth status, validate and logout were answered by the gateway: IBKR (the
    // sandbox) saw only the session's own calls and the three forwarded reads.
    let paths: Vec<String> = sandbox
        .running
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect();
    let forwarded = |p: &str| paths.iter().filter(|x| x.as_str() == p).count();
    assert_eq!(forwarded("/v1/api/logout"), 0, "{paths:?}");
    assert_eq!(forwarded("/v1/api/portfolio/accounts"), 1, "{paths:?}");
    assert_eq!(forwarded("/v1/api/iserver/accounts"), 2, "{paths:?}");
    let counts = sandbox.running.pacing_counts(USER).expect("paced calls");
    assert_eq!(counts.refused, 0);
}

/// `--cp-tls`: https with a certificate made at start; the client trusts the CA written to
/// `--cp-tls-cert-out` (`requests` with `verify=PATH`), and refuses it without.
#[test]
fn a_python_client_over_https_trusts_the_generated_ca() {
    let sandbox = paced_sandbox();
    let ca = sandbox.dir.path().join("cp-ca.pem");
    let ca_arg = ca.to_str().unwrap();
    let gateway = start_gateway(&sandbox, &["--cp-tls", "--cp-tls-cert-out", ca_arg]);
    let pem = std::fs::read_to_string(&ca).expect("the CA certificate is written");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(!pem.contains("PRIVATE KEY"), "{pem}");
    let out = python(&["smoke", &gateway.base, ca_arg]);
    assert_eq!(out["unverified_refused"], true, "{out}");
    assert_eq!(out["tickle_authenticated"], true, "{out}");
    assert!(out["portfolio_accounts"].is_array(), "{out}");
    assert_eq!(out["after_logout"], 200);
}

/// Without `--cp-tls-cert-out` the CA certificate goes beside the agent's socket, and the
/// start line says where.
#[test]
fn the_generated_ca_goes_beside_the_socket_by_default() {
    let sandbox = paced_sandbox();
    let gateway = start_gateway(&sandbox, &["--cp-tls"]);
    let port = gateway.base.rsplit(':').next().unwrap();
    let ca = sandbox
        .dir
        .path()
        .join(format!("ibkr-oauth-gateway-{port}-ca.pem"));
    assert!(
        gateway
            .started
            .contains(&format!("clients trust the CA in {}", ca.display())),
        "{}",
        gateway.started
    );
    let ca = ca.to_str().unwrap();
    let out = python(&["smoke", &gateway.base, ca]);
    assert_eq!(out["tickle_authenticated"], true, "{out}");
}

/// `--max-in-flight` must leave the governor a budget under `--max-per-second`.
#[test]
fn in_flight_calls_must_leave_a_budget() {
    let sandbox = paced_sandbox();
    let out = common::run(sandbox.cli().args([
        "serve",
        "--gateway",
        "--username",
        USER,
        "--ip",
        "127.0.0.1",
        "--socket",
        sandbox.dir.path().join("budget.sock").to_str().unwrap(),
        "--max-per-second",
        "10",
        "--max-in-flight",
        "9",
    ]));
    let stderr = out.assert_error(2);
    assert!(
        stderr.contains("--max-in-flight 9 leaves no budget"),
        "{stderr}"
    );
}

/// `--cp-tls-cert`/`--cp-tls-key`: the user's own certificate is served.
#[test]
fn a_users_own_certificate_is_served() {
    let sandbox = paced_sandbox();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (
        sandbox.dir.path().join("own-cert.pem"),
        sandbox.dir.path().join("own-key.pem"),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let gateway = start_gateway(
        &sandbox,
        &[
            "--cp-tls",
            "--cp-tls-cert",
            cert_path.to_str().unwrap(),
            "--cp-tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let out = python(&["smoke", &gateway.base, cert_path.to_str().unwrap()]);
    assert_eq!(out["unverified_refused"], true, "{out}");
    assert_eq!(out["status"]["authenticated"], true, "{out}");
}

#[test]
fn metrics_count_requests_pacing_and_the_session_state() {
    let sandbox = paced_sandbox();
    let gateway = start_gateway(&sandbox, &["--metrics", "--max-wait-ms", "0"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = runtime.block_on(async {
        let http = reqwest::Client::new();
        let url = |p: &str| format!("{}{p}", gateway.base);
        assert_eq!(
            http.post(url("/v1/api/tickle"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(url("/v1/api/portfolio/accounts"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // 1 per 5 s: the second is refused by the governor, never sent.
        let refused = http
            .get(url("/v1/api/portfolio/accounts"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 429);
        assert!(refused.headers().contains_key("retry-after"));
        http.get(url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for line in [
        "ibkr_oauth_gateway_requests_total{endpoint=\"/v1/api/portfolio\",status=\"200\"} 1",
        "ibkr_oauth_gateway_requests_total{endpoint=\"/v1/api/portfolio\",status=\"429\"} 1",
        "ibkr_oauth_gateway_answered_total{endpoint=\"tickle\"} 1",
        "ibkr_oauth_pacing_refused_total 1",
        "ibkr_oauth_session_state{state=\"brokerage\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
    let sent = sandbox
        .running
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/api/portfolio/accounts")
        .count();
    assert_eq!(sent, 1, "the refused call was not sent");
}

#[test]
fn not_an_open_proxy() {
    let sandbox = paced_sandbox();
    let gateway = start_gateway(&sandbox, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        for path in ["/other", "/oauth2/api/v1/token", "/v2/api/x"] {
            let answer = http
                .get(format!("{}{path}", gateway.base))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 404, "{path}");
        }
        let health: serde_json::Value = http
            .get(format!("{}/healthz", gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["session"]["state"], "brokerage", "{health}");
        assert_eq!(health["session"]["username"], USER, "{health}");
        // Dot segments as the upstream URL's parser would read them (%2e, backslashes) are
        // refused, not resolved into a path outside /gw/api (sent raw: a client library would
        // resolve them itself).
        let authority = gateway.base.trim_start_matches("http://").to_owned();
        for path in [
            "/gw/api/%2e%2e/%2e%2e/escaped",
            "/gw/api/.%2E/%2e./escaped",
            "/v1/api/..\\..\\escaped",
        ] {
            let authority = authority.clone();
            let head = tokio::task::spawn_blocking(move || {
                use std::io::{Read as _, Write as _};
                let mut stream = std::net::TcpStream::connect(&authority).unwrap();
                write!(
                    stream,
                    "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                answer.lines().next().unwrap_or_default().to_owned()
            })
            .await
            .unwrap();
            assert_eq!(head, "HTTP/1.1 400 Bad Request", "{path}");
        }
        let big = vec![b'x'; 2 * 1024 * 1024];
        let answer = http
            .post(format!("{}/v1/api/iserver/account/orders", gateway.base))
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 413);
    });
    let paths: Vec<String> = sandbox
        .running
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert!(
        !paths.iter().any(|p| p == "/other"
            || p == "/v2/api/x"
            || p.contains("orders")
            || p.contains("escaped")),
        "{paths:?}"
    );
}

/// The gateway paces with the fleet's governor in a real Redis (`--redis`), and bounds its
/// calls in flight: IBKR (the sandbox, which counts each username's calls and answers 429
/// past 50 in any second) sees at most the limit however the host delays the calls on their
/// way (this held on a 2-core host with six busy loops beside it, before which the
/// sandbox counted 50 and then refused).
#[test]
fn eight_clients_at_three_times_the_limit_the_sandbox_sees_at_most_the_limit() {
    let sandbox = paced_sandbox();
    let redis = Redis::start();
    let gateway = start_gateway_with(
        &sandbox,
        &["--redis", &redis.url],
        &[("IBKR_REDIS_KEY", REDIS_KEY)],
    );
    // 8 processes x 19 calls/s = 152/s, three times IBKR's 50/s, for 3 s.
    let clients: Vec<Child> = (0..8)
        .map(|_| {
            Command::new("python3")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cp_client.py"))
                .args(["hammer", &gateway.base, "19", "3"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3")
        })
        .collect();
    let mut by_status = std::collections::BTreeMap::<String, u64>::new();
    for client in clients {
        let output = client.wait_with_output().expect("a client ends");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let counts: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        for (status, n) in counts.as_object().unwrap() {
            *by_status.entry(status.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    let counts = sandbox.running.pacing_counts(USER).expect("paced calls");
    eprintln!("clients saw {by_status:?}; the sandbox counted {counts:?}");
    assert_eq!(counts.refused, 0, "the sandbox had to refuse: {counts:?}");
    assert!(counts.most_in_one_second <= 50, "{counts:?}");
    // The gateway refused the excess itself (429 from its governor), and let through about
    // the limit.
    assert!(
        by_status.get("429").copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    // ...and forwarded a fair share: 40/s leave, for 3 s and the waits after.
    assert!(
        by_status.get("200").copied().unwrap_or(0) >= 90,
        "{by_status:?}"
    );
    // The turns were taken in Redis (the pacer's Lua script), one or more per admitted call.
    let info = redis_info_commandstats(&redis.url);
    let scripts: u64 = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let forwarded = by_status.get("200").copied().unwrap_or(0);
    assert!(scripts >= forwarded, "{scripts} scripts run:\n{info}");
    drop(gateway);
}

/// Redis's `INFO commandstats`, asked over a plain connection (no redis-cli needed).
fn redis_info_commandstats(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("redis://");
    let mut stream = std::net::TcpStream::connect(addr).expect("Redis answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"INFO commandstats\r\n").unwrap();
    // A bulk reply: `$<len>\r\n<text>\r\n`.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).expect("the reply");
        assert!(n > 0, "Redis closed the connection");
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n") {
            let len: usize = head.trim_start_matches('$').parse().expect("a bulk reply");
            if body.len() >= len {
                return body[..len].to_owned();
            }
        }
    }
}
