//! Accepted requests: the token response, the issued access token, scope policy, the request
//! log, the other paths, and stopping.

mod common;

use std::time::Duration;

use common::*;
use ibkr_oauth_sandbox::{ACCESS_TOKEN_ISSUER, Outcome};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

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
