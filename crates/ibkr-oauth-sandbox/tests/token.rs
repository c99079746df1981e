//! Accepted requests: the token response, the issued access token, scope policy, the request
//! log, the other paths, and stopping.

mod common;

use std::time::Duration;

use common::*;
use ibkr_oauth_sandbox::{ACCESS_TOKEN_ISSUER, FORM_CONTENT_TYPE, Outcome};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn token(
    http: &reqwest::Client,
    sandbox: &ibkr_oauth_sandbox::RunningSandbox,
    body: &Body,
) -> (reqwest::header::HeaderMap, Value) {
    let response = send(http, sandbox, body).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (
        headers,
        response.json().await.expect("a JSON token response"),
    )
}

#[tokio::test]
async fn every_algorithm_gets_a_token() {
    let sandbox = sandbox().await;
    let http = http();
    for signer in [
        Signer::rs256(),
        Signer::ps256(),
        Signer::es256(),
        Signer::eddsa(),
    ] {
        let assertion = signer.sign(&claims(now()));
        let (headers, body) = token(
            &http,
            &sandbox,
            &Body::Form(form(&assertion, Some("sso-sessions.write"))),
        )
        .await;
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/json"),
            "{}",
            signer.kid
        );
        assert_eq!(header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(header("pragma").as_deref(), Some("no-cache"));
        assert!(header("date").is_some());
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "sso-sessions.write");
        assert_eq!(body["expires_in"], 86_399);
        let access_token = body["access_token"].as_str().unwrap();
        let claims = sandbox.verify_access_token(access_token).unwrap();
        assert_eq!(claims.iss, ACCESS_TOKEN_ISSUER);
        assert_eq!(claims.sub, CLIENT);
        assert_eq!(claims.client_id, CLIENT);
        assert_eq!(claims.scope.as_deref(), Some("sso-sessions.write"));
        assert_eq!(claims.exp - claims.iat, 86_399);
        assert_eq!(claims.jti.len(), 32);
    }
    assert_eq!(sandbox.tokens_issued(), 4);
}

#[tokio::test]
async fn scope_policy() {
    let sandbox = sandbox().await;
    let http = http();
    // Any scope for an unrestricted client, duplicates folded; no scope field when none asked.
    let assertion = Signer::rs256().sign(&claims(now()));
    let (_, body) = token(
        &http,
        &sandbox,
        &Body::Form(form(&assertion, Some("echo.read echo.write echo.read"))),
    )
    .await;
    assert_eq!(body["scope"], "echo.read echo.write");
    let assertion = Signer::rs256().sign(&claims(now()));
    let (_, body) = token(&http, &sandbox, &Body::form(&assertion)).await;
    assert!(body.get("scope").is_none(), "{body}");
    assert!(
        sandbox
            .verify_access_token(body["access_token"].as_str().unwrap())
            .unwrap()
            .scope
            .is_none()
    );
    // The limited client gets its default when it names none, and what it may ask for.
    let limited = || Signer::limited().sign(&claims_for(LIMITED_CLIENT, now()));
    let (_, body) = token(&http, &sandbox, &Body::form(&limited())).await;
    assert_eq!(body["scope"], "echo.read");
    let (_, body) = token(
        &http,
        &sandbox,
        &Body::Form(form(&limited(), Some("echo.write"))),
    )
    .await;
    assert_eq!(body["scope"], "echo.write");
}

#[tokio::test]
async fn expires_in_is_configurable() {
    let sandbox = builder()
        .expires_in(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let assertion = Signer::eddsa().sign(&claims(now()));
    let (_, body) = token(&http(), &sandbox, &Body::form(&assertion)).await;
    assert_eq!(body["expires_in"], 3600);
}

#[tokio::test]
async fn fractional_numeric_dates_and_an_audience_array_are_accepted() {
    let sandbox = sandbox().await;
    let now = now();
    let claims = with(
        claims(now),
        json!({"iat": now as f64 - 0.5, "exp": now as f64 + 19.5, "aud": ["/token"]}),
    );
    let (_, _) = token(
        &http(),
        &sandbox,
        &Body::form(&Signer::rs256().sign(&claims)),
    )
    .await;
}

#[tokio::test]
async fn the_log_records_what_was_sent() {
    let sandbox = sandbox().await;
    let http = http();
    let claims = claims(now());
    let assertion = Signer::rs256().sign(&claims);
    let _ = token(
        &http,
        &sandbox,
        &Body::Form(form(&assertion, Some("echo.read"))),
    )
    .await;
    let refused = send(&http, &sandbox, &Body::form("not-a-jwt")).await;
    assert_eq!(refused.status(), 400);

    assert_eq!(sandbox.request_count(), 2);
    let log = sandbox.requests();
    assert_eq!(log.len(), 2);
    let first = &log[0];
    assert_eq!(first.seq, 1);
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/oauth2/api/v1/token")
    );
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        first.accept.as_deref(),
        Some("application/json, application/problem+json")
    );
    assert_eq!(first.user_agent.as_deref(), Some("sandbox-tests/1.0"));
    assert_eq!(first.form.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(
        first.form.client_assertion_type.as_deref(),
        Some(JWT_BEARER)
    );
    assert_eq!(first.form.scope.as_deref(), Some("echo.read"));
    assert_eq!(
        first
            .form
            .client_assertion
            .as_ref()
            .map(|a| a.expose_secret().to_owned()),
        Some(assertion.clone())
    );
    assert!(
        first
            .form
            .fields
            .contains(&("client_assertion".to_owned(), "[redacted]".to_owned()))
    );
    assert_eq!(first.assertion_header.as_ref().unwrap()["kid"], "rsa");
    assert_eq!(first.assertion_header.as_ref().unwrap()["alg"], "RS256");
    assert_eq!(first.assertion_claims.as_ref(), Some(&claims));
    assert_eq!(first.fault, None);
    assert_eq!(
        first.outcome,
        Outcome::Answered {
            status: 200,
            detail: None
        }
    );
    assert_eq!(first.status(), Some(200));
    assert!(
        !format!("{first:?}").contains(&assertion),
        "the assertion must not print"
    );

    let second = &log[1];
    assert_eq!(second.seq, 2);
    assert_eq!(second.assertion_header, None);
    assert_eq!(
        second.detail(),
        Some(
            "client_assertion: not a compact JWS (expected three base64url parts separated by dots)"
        )
    );

    sandbox.clear_requests();
    assert!(sandbox.requests().is_empty());
    assert_eq!(sandbox.request_count(), 2);
}

/// A decodable assertion of exactly `len` characters (its signature part pads it).
fn assertion_of_len(len: usize) -> String {
    let head = raw_jws(&json!({"alg": "RS256", "kid": "rsa"}), &claims(now()), "");
    assert!(head.len() < len);
    format!("{head}{}", "A".repeat(len - head.len()))
}

/// A hostile request cannot make its log entry large: an assertion over 8 KiB is not decoded,
/// and every other string taken from the request is cut to 1 KiB.
#[tokio::test]
async fn the_log_bounds_what_it_keeps() {
    let sandbox = sandbox().await;
    let http = http();

    // Up to 8 KiB, the assertion is decoded; one byte more, it is not (a real one is ~1 KiB).
    for (len, decoded) in [(8192, true), (8193, false)] {
        let assertion = assertion_of_len(len);
        assert_eq!(
            send(&http, &sandbox, &Body::form(&assertion))
                .await
                .status(),
            400
        );
        let entry = sandbox.last_request().unwrap();
        assert_eq!(entry.assertion_header.is_some(), decoded, "{len}");
        assert_eq!(entry.assertion_claims.is_some(), decoded, "{len}");
        let kept = entry.form.client_assertion.unwrap();
        assert_eq!(
            kept.expose_secret(),
            assertion,
            "the assertion itself is kept whole"
        );
    }

    // A 10 KB header part whose decoded JSON would be many times that: kept undecoded. (The
    // form parser refuses any value over 16 KiB, and any field name over 64 bytes.)
    let zeros = vec![0; 3_500];
    let huge = raw_jws(&json!({"a": zeros}), &claims(now()), "c2ln");
    assert!(
        huge.len() > 8 * 1024 && huge.len() < 16 * 1024,
        "{}",
        huge.len()
    );
    // Two-byte characters, so that the cut falls inside one: it moves back to a boundary.
    let wide = "é".repeat(600);
    let wide_cut = format!("{}…", "é".repeat(510));
    let ascii = "a".repeat(3000);
    let ascii_cut = format!("{}…", "a".repeat(1021));
    let mut fields = form(&huge, Some(&wide));
    fields.push(("extra".to_owned(), ascii.clone()));
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let response = http
        .post(sandbox.token_url())
        .header("content-type", format!("{FORM_CONTENT_TYPE}; p={ascii}"))
        .header("accept", &ascii)
        .header("user-agent", &wide)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let entry = sandbox.last_request().unwrap();
    assert!(entry.body_len.is_some(), "the body was read as a form");
    assert_eq!(entry.assertion_header, None);
    assert_eq!(entry.assertion_claims, None);
    let content_type = format!("{FORM_CONTENT_TYPE}; p={ascii}");
    let content_type_cut = format!("{}…", &content_type[..1021]);
    assert_eq!(
        entry.content_type.as_deref(),
        Some(content_type_cut.as_str())
    );
    assert_eq!(entry.accept.as_deref(), Some(ascii_cut.as_str()));
    assert_eq!(entry.user_agent.as_deref(), Some(wide_cut.as_str()));
    assert_eq!(entry.form.scope.as_deref(), Some(wide_cut.as_str()));
    assert_eq!(
        entry.form.fields,
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_assertion_type".to_owned(), JWT_BEARER.to_owned()),
            ("client_assertion".to_owned(), "[redacted]".to_owned()),
            ("scope".to_owned(), wide_cut.clone()),
            ("extra".to_owned(), ascii_cut.clone()),
        ]
    );
    assert_eq!(wide_cut.len(), 1023);
    assert_eq!(ascii_cut.len(), 1024);

    // The path and method, on requests the endpoint does not serve.
    let response = http
        .post(format!("{}/{ascii}", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let expected_path = format!("/{}…", "a".repeat(1020));
    assert_eq!(sandbox.last_request().unwrap().path, expected_path);
    let method = reqwest::Method::from_bytes("M".repeat(3000).as_bytes()).unwrap();
    let response = http
        .request(method, sandbox.token_url())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let expected_method = format!("{}…", "M".repeat(1021));
    assert_eq!(sandbox.last_request().unwrap().method, expected_method);
}

#[tokio::test]
async fn the_log_keeps_the_newest_entries() {
    let sandbox = builder().request_log_capacity(2).start().await.unwrap();
    let http = http();
    for _ in 0..3 {
        send(&http, &sandbox, &Body::form("x")).await;
    }
    let seqs: Vec<u64> = sandbox.requests().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [2, 3]);
    assert_eq!(sandbox.request_count(), 3);
}

#[tokio::test]
async fn other_paths_and_methods_get_problems() {
    let sandbox = sandbox().await;
    let http = http();
    let response = http.get(sandbox.token_url()).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let allow: Vec<_> = response.headers().get_all("allow").iter().collect();
    assert_eq!(allow, ["POST"]);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["title"], "Method Not Allowed");
    assert_eq!(
        problem["detail"],
        "method \"GET\" is not allowed; the token endpoint is POST /oauth2/api/v1/token"
    );

    let response = http
        .post(format!("{}/token", sandbox.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "no endpoint at \"/token\"; the token endpoint is POST /oauth2/api/v1/token"
    );
    assert_eq!(sandbox.request_count(), 2);
    assert_eq!(sandbox.last_request().unwrap().status(), Some(404));
}

#[tokio::test]
async fn urls_point_at_the_loopback_port() {
    let sandbox = sandbox().await;
    let addr = sandbox.local_addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(
        sandbox.base_url(),
        format!("http://127.0.0.1:{}", addr.port())
    );
    assert_eq!(
        sandbox.token_url(),
        format!("http://127.0.0.1:{}/oauth2/api/v1/token", addr.port())
    );
    assert_eq!(sandbox.audience(), "/token");
    assert!(format!("{sandbox:?}").contains(&sandbox.base_url()));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sandbox = sandbox().await;
    let http = http();
    // A kept-alive connection is open when shutdown starts.
    assert_eq!(send(&http, &sandbox, &Body::form("x")).await.status(), 400);
    let url = sandbox.token_url();
    sandbox.shutdown().await;
    assert!(http.post(&url).send().await.is_err());
}

/// A client that sent part of a request head cannot hold shutdown forever: its connection is
/// dropped after the grace period. Paused time, so the grace costs nothing; the guard is far
/// past it and only keeps a regression from hanging the test.
#[tokio::test(start_paused = true)]
async fn shutdown_drops_a_connection_stuck_in_its_request_head() {
    let sandbox = sandbox().await;
    let mut stream = tokio::net::TcpStream::connect(sandbox.local_addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /oauth2/api/v1/token HTTP/1.1\r\nHost: sandbox\r\nContent-Ty")
        .await
        .unwrap();
    // The sandbox accepts and reads the partial head meanwhile.
    tokio::time::sleep(Duration::from_millis(10)).await;
    tokio::time::timeout(Duration::from_secs(600), sandbox.shutdown())
        .await
        .expect("shutdown returns despite the partial head");
    assert_eq!(answer(&mut stream).await, "", "closed without an answer");
}

/// A client that stops mid-body does not hold shutdown even for the grace period: the body read
/// gives way to shutdown (paused time: the 1 s grace would be waited in virtual time).
#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_a_partial_body() {
    let sandbox = sandbox().await;
    let mut stream = tokio::net::TcpStream::connect(sandbox.local_addr())
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /oauth2/api/v1/token HTTP/1.1\r\nHost: sandbox\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n\
              grant_type=client_credentials",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    tokio::time::timeout(Duration::from_millis(500), sandbox.shutdown())
        .await
        .expect("shutdown returns before the grace period is over");
    assert_eq!(answer(&mut stream).await, "", "closed without an answer");
}

/// Whatever the sandbox sends until it closes the connection (bounded by a guard).
async fn answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    // A reset instead of a close is as good: no answer either way.
    let _ = tokio::time::timeout(Duration::from_secs(600), stream.read_to_end(&mut answer))
        .await
        .expect("the connection is closed");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn tokens_of_another_sandbox_are_refused() {
    let (one, two) = (sandbox().await, sandbox().await);
    let (_, body) = token(
        &http(),
        &one,
        &Body::form(&Signer::rs256().sign(&claims(now()))),
    )
    .await;
    let access_token = body["access_token"].as_str().unwrap();
    assert!(one.verify_access_token(access_token).is_ok());
    assert!(matches!(
        two.verify_access_token(access_token),
        Err(ibkr_oauth_sandbox::Error::InvalidAccessToken(_))
    ));
}
