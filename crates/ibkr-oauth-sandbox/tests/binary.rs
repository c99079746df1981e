//! The `ibkr-oauth-sandbox` binary: it prints its base URL, serves the key it is given, stops on
//! SIGTERM, and refuses bad usage with exit code 2.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ibkr-oauth-sandbox");

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn serves_the_registered_key_until_terminated() {
    let mut child = Command::new(BIN)
        .args([
            "--client-id",
            "cli-client",
            "--kid",
            "main",
            "--alg",
            "PS256",
        ])
        .args(["--public-key", &fixture_path("rsa_public.pem")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let base_url = line.trim().to_owned();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url:?}");

    let signer = Signer {
        kid: "main",
        ..Signer::ps256()
    };
    let claims = with(claims_for("cli-client", now()), json!({}));
    let assertion = signer.sign(&claims);
    let response = http()
        .post(format!("{base_url}/oauth2/api/v1/token"))
        .form(&form(&assertion, Some("sso-sessions.write")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let token: serde_json::Value = response.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // SIGTERM to the child this test started, by its id: it shuts down and exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    // The binary traces requests on stderr: this one, and no secret.
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut printed).unwrap();
    let line = printed
        .lines()
        .find(|line| line.contains(&format!("request_id={request_id} ")))
        .unwrap_or_else(|| panic!("no trace line for the request in {printed:?}"));
    assert!(
        line.contains(
            "client=\"cli-client\" kid=\"main\" endpoint=token POST /oauth2/api/v1/token \
             status=200 outcome=ok"
        ),
        "{line}"
    );
    for secret in [&assertion, &token] {
        assert!(!printed.contains(secret.as_str()));
        assert!(!printed.contains(secret.rsplit('.').next().unwrap()));
    }
}

#[test]
fn help_exits_zero() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--public-key FILE"));
}

#[test]
fn usage_and_configuration_errors_exit_two() {
    let rsa = fixture_path("rsa_public.pem");
    let private = fixture_path("rsa_private.pem");
    let cases: [(Vec<&str>, &str); 6] = [
        (vec![], "--client-id is required"),
        (
            vec!["--client-id", "c", "--kid", "k"],
            "--public-key is required",
        ),
        (
            vec![
                "--client-id",
                "c",
                "--kid",
                "k",
                "--public-key",
                "/nonexistent.pem",
            ],
            "cannot read the public key",
        ),
        (
            vec!["--client-id", "c", "--kid", "k", "--public-key", &private],
            "this is a private key",
        ),
        (
            vec![
                "--client-id",
                "c",
                "--kid",
                "k",
                "--public-key",
                &rsa,
                "--alg",
                "HS256",
            ],
            "unknown algorithm \"HS256\"",
        ),
        (
            vec![
                "--client-id",
                "c",
                "--kid",
                "k",
                "--public-key",
                &rsa,
                "--port",
                "http",
            ],
            "--port \"http\" is not a port number",
        ),
    ];
    for (args, expected) in cases {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn tls_writes_the_ca_and_serves_https() {
    let ca_path = std::env::temp_dir().join(format!("sandbox-ca-{}.pem", std::process::id()));
    let mut child = Command::new(BIN)
        .args(["--client-id", "c", "--kid", "k"])
        .args(["--public-key", &fixture_path("rsa_public.pem")])
        .args([
            "--tls",
            ca_path.to_str().unwrap(),
            "--session-idle-timeout",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let base_url = line.trim().to_owned();
    assert!(base_url.starts_with("https://127.0.0.1:"), "{base_url:?}");
    let ca = std::fs::read(&ca_path).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let response = http
        .get(format!("{base_url}/v1/api/tickle"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let _ = std::fs::remove_file(&ca_path);
    // The child this test started, by its id.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
