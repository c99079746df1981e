//! `TokenProvider` over real HTTP (mockito): one request for a stampede, a freshly signed
//! assertion per retry, `Retry-After`, refusals, and clock-skew compensation from the `Date`
//! header. Real time: nothing here asserts on how long anything took (the delays are checked
//! exactly under tokio's paused clock in the provider's unit tests).
#![cfg(feature = "provider")]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Bodies;

use ibkr_oauth::provider::{RetryPolicy, TokenProvider};
use ibkr_oauth::{Algorithm, Error, ExposeSecret, PrivateKey, Signer, StatusCode, TokenClient};
use mockito::{Matcher, Server, ServerGuard};

const PATH: &str = "/oauth2/api/v1/token";
const TOKEN_BODY: &str = r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.dG9rZW4","token_type":"Bearer","expires_in":86399}"#;

fn signer() -> Signer {
    let key = PrivateKey::generate(Algorithm::ES256).unwrap();
    Signer::builder("client-42", "main", key).build().unwrap()
}

fn provider(server: &ServerGuard, policy: RetryPolicy) -> TokenProvider {
    let client = TokenClient::builder()
        .base_url(server.url())
        .build()
        .unwrap();
    TokenProvider::builder(client, signer())
        .scope("sso-sessions.write")
        .retry_policy(policy)
        .build()
        .unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_on_a_cold_provider_make_one_request() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("POST", PATH)
        .with_header("content-type", "application/json")
        .with_body(TOKEN_BODY)
        .expect(1)
        .create_async()
        .await;
    let provider = provider(&server, RetryPolicy::default());
    let start = Arc::new(tokio::sync::Barrier::new(10_000));
    let callers: Vec<_> = (0..10_000)
        .map(|_| {
            let provider = provider.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                provider.access_token().await
            })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(token.expires_in(), Duration::from_secs(86399));
    }
    mock.assert_async().await;
}

#[tokio::test]
async fn every_retry_signs_a_fresh_assertion_and_honours_retry_after() {
    let mut server = Server::new_async().await;
    let bodies = Bodies::default();
    let unavailable = server
        .mock("POST", PATH)
        .with_status(503)
        .with_header("content-type", "application/problem+json")
        .with_header("retry-after", "1")
        .with_body_from_request(
            bodies.answer(r#"{"type":"/simple","title":"Service Unavailable","status":503}"#),
        )
        .expect(2)
        .create_async()
        .await;
    let granted = server
        .mock("POST", PATH)
        .with_header("content-type", "application/json")
        .with_body_from_request(bodies.answer(TOKEN_BODY))
        .expect(1)
        .create_async()
        .await;
    let provider = provider(&server, RetryPolicy::default().max_attempts(3));

    let token = provider.access_token().await.unwrap();
    assert_eq!(
        token.access_token().expose_secret(),
        "eyJhbGciOiJSUzI1NiJ9.e30.dG9rZW4"
    );
    unavailable.assert_async().await;
    granted.assert_async().await;

    let claims = bodies.claims();
    assert_eq!(claims.len(), 3);
    let jtis: std::collections::HashSet<_> = claims.iter().map(|c| c["jti"].clone()).collect();
    assert_eq!(jtis.len(), 3, "a new jti per attempt: {claims:?}");
    // `Retry-After: 1` was waited for: each assertion is stamped at least a second later
    // (a lower bound, whatever the machine's speed).
    for pair in claims.windows(2) {
        let (a, b) = (
            pair[0]["iat"].as_i64().unwrap(),
            pair[1]["iat"].as_i64().unwrap(),
        );
        assert!(b > a, "{claims:?}");
    }
}

#[tokio::test]
async fn a_refused_request_is_not_retried_and_its_error_is_shared_during_the_cool_down() {
    let mut server = Server::new_async().await;
    let mock = server
        .mock("POST", PATH)
        .with_status(400)
        .with_header("content-type", "application/problem+json")
        .with_body(r#"{"type":"/simple","title":"Bad Request","status":400}"#)
        .expect(1)
        .create_async()
        .await;
    let provider = provider(&server, RetryPolicy::default());

    let first = provider.access_token().await.unwrap_err();
    let Error::Problem {
        problem: first_problem,
        ..
    } = &first
    else {
        panic!("{first:?}");
    };
    assert_eq!(first.status(), Some(StatusCode::BAD_REQUEST));
    let again = provider.access_token().await.unwrap_err();
    let Error::Problem {
        problem: again_problem,
        ..
    } = &again
    else {
        panic!("{again:?}");
    };
    assert!(
        Arc::ptr_eq(first_problem, again_problem),
        "the same error, no new request"
    );
    mock.assert_async().await;
}

#[tokio::test]
async fn a_date_header_minutes_ahead_moves_the_next_assertion_iat() {
    let mut server = Server::new_async().await;
    let bodies = Bodies::default();
    let server_ahead = Duration::from_secs(5 * 60);
    let date = httpdate::fmt_http_date(SystemTime::now() + server_ahead);
    let mock = server
        .mock("POST", PATH)
        .match_body(Matcher::Regex("client_assertion=".into()))
        .with_header("content-type", "application/json")
        .with_header("date", &date)
        .with_body_from_request(bodies.answer(TOKEN_BODY))
        .expect(2)
        .create_async()
        .await;
    let provider = provider(&server, RetryPolicy::default());

    let before = unix_now();
    let token = provider.access_token().await.unwrap();
    let offset = provider
        .clock_offset()
        .expect("measured from the Date header");
    assert!(offset.server_ahead());
    let secs = offset.magnitude().as_secs();
    assert!((290..=305).contains(&secs), "offset {offset}");

    // The API rejected the token: the next request is stamped with the server's time.
    assert!(provider.invalidate(&token));
    provider.access_token().await.unwrap();
    let after = unix_now();
    mock.assert_async().await;

    let claims = bodies.claims();
    let iat = |i: usize| claims[i]["iat"].as_i64().unwrap();
    // The signer back-dates iat by 10 s.
    assert!((before - 11..=after - 9).contains(&iat(0)), "{claims:?}");
    let shifted = iat(1) - iat(0);
    assert!(
        (285..=310).contains(&shifted),
        "iat moved by {shifted} s: {claims:?}"
    );
}
