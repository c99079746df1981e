//! The provider's spans (refresh, fetch, retry) carry their fields and never a secret. Its own
//! test binary: it installs a global subscriber.
#![cfg(feature = "provider")]

mod common;

use common::Recorder;
use ibkr_oauth::provider::{RetryPolicy, TokenProvider};
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient};
use mockito::Server;

const PATH: &str = "/oauth2/api/v1/token";
const ACCESS_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.QUNDRVNTLVRPS0VOLVNJRw";

#[tokio::test]
async fn spans_carry_attempt_status_expiry_and_skew_and_no_secret() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();

    let mut server = Server::new_async().await;
    let _unavailable = server
        .mock("POST", PATH)
        .with_status(503)
        .with_header("content-type", "application/problem+json")
        .with_header("retry-after", "0")
        .with_body(r#"{"type":"/simple","title":"Service Unavailable","status":503}"#)
        .expect(1)
        .create_async()
        .await;
    let _granted = server
        .mock("POST", PATH)
        .with_header("content-type", "application/json")
        .with_body(format!(
            r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"Bearer","expires_in":86399}}"#
        ))
        .create_async()
        .await;
    let client = TokenClient::builder()
        .base_url(server.url())
        .build()
        .unwrap();
    let signer = Signer::builder(
        "client-42",
        "main",
        PrivateKey::generate(Algorithm::ES256).unwrap(),
    )
    .build()
    .unwrap();
    let provider = TokenProvider::builder(client, signer)
        .scope("sso-sessions.write")
        .retry_policy(RetryPolicy::default())
        .build()
        .unwrap();
    let token = provider.access_token().await.unwrap();
    provider.invalidate(&token);
    provider.access_token().await.unwrap();

    let log = recorder.text();
    for expected in [
        "[ibkr_oauth.refresh] reason=\"cold\"",
        "[ibkr_oauth.refresh] reason=\"invalidated\"",
        "[ibkr_oauth.fetch] attempt=1",
        "[ibkr_oauth.fetch] attempt=2",
        "status=503",
        "[ibkr_oauth.retry] attempt=2 status=503 delay_ms=0 retry_after=true",
        "expires_in=86399",
        "skew=",
        "attempts=2",
    ] {
        assert!(log.contains(expected), "missing {expected:?} in:\n{log}");
    }
    // No access token and no assertion (every JWS starts with `eyJ`, base64 of `{"`).
    assert!(!log.contains("eyJ"), "a secret leaked into tracing:\n{log}");
    assert!(!log.contains("QUNDRVNTLVRPS0VOLVNJRw"), "{log}");
}
