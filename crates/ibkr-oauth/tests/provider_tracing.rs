//! The provider's spans (refresh, fetch, retry) carry their fields and never a secret. Its own
//! test binary: it installs a global subscriber.
#![cfg(feature = "provider")]

use std::fmt::{Debug, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ibkr_oauth::provider::{RetryPolicy, TokenProvider};
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient};
use mockito::Server;

const PATH: &str = "/oauth2/api/v1/token";
const ACCESS_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.QUNDRVNTLVRPS0VOLVNJRw";

/// Writes every span (name and fields), field update and event into one string.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<String>>, Arc<AtomicU64>);

struct Fields<'a>(&'a Mutex<String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        let _ = write!(self.0.lock().unwrap(), "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let _ = write!(self.0.lock().unwrap(), "\n[{}] ", span.metadata().name());
        span.record(&mut Fields(&self.0));
        tracing::span::Id::from_u64(self.1.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&self.0));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        self.0.lock().unwrap().push_str("\n  event: ");
        event.record(&mut Fields(&self.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

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

    let log = recorder.0.lock().unwrap().clone();
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
