//! The tracing output of real requests (success and failure) is captured and never carries
//! the assertion or the access token. Its own test binary: it installs a global subscriber.

mod common;

use common::{Recorder, answering, client_for};
use ibkr_oauth::{ClientAssertion, TokenRequest};
use serde_json::json;

const ASSERTION: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJjbGllbnQtNDIifQ.QVNTRVJUSU9OLVNFQ1JFVC1TSUc";
const ACCESS_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.QUNDRVNTLVRPS0VOLVNJRw";

fn assert_clean(text: &str) {
    for secret in [
        ASSERTION,
        ACCESS_TOKEN,
        "QVNTRVJUSU9OLVNFQ1JFVC1TSUc",
        "QUNDRVNTLVRPS0VOLVNJRw",
    ] {
        assert!(
            !text.contains(secret),
            "tracing output leaks {secret}: {text}"
        );
    }
}

fn request() -> TokenRequest {
    TokenRequest::builder()
        .assertion(ClientAssertion::new(ASSERTION))
        .scope("echo.read")
        .build()
        .unwrap()
}

#[tokio::test]
async fn tracing_events_never_carry_secrets() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();

    let ok = json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 60});
    let s1 = answering(200, "application/json", ok.to_string()).await;
    let client = client_for(&s1);
    client.request_token(&request()).await.unwrap();

    let echo = json!({"title": "bad", "detail": format!("assertion {ASSERTION}")});
    let s2 = answering(400, "application/problem+json", echo.to_string()).await;
    let client = client_for(&s2);
    client.request_token(&request()).await.unwrap_err();

    let log = recorder.text();
    assert!(log.contains("ibkr_oauth.request_token"), "{log}");
    assert!(log.contains("status=200"), "{log}");
    assert!(log.contains("status=400"), "{log}");
    assert!(log.contains("token granted"), "{log}");
    assert!(log.contains("token request failed"), "{log}");
    assert_clean(&log);
}
