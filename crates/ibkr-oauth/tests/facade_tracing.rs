//! The tracing output of real requests (success and failure) is captured and never carries
//! the assertion or the access token. Its own test binary: it installs a global subscriber.

use std::fmt::{Debug, Write as _};
use std::sync::{Arc, Mutex};

use ibkr_oauth::{ClientAssertion, TokenClient, TokenRequest};
use mockito::{Server, ServerGuard};
use serde_json::json;

const PATH: &str = "/oauth2/api/v1/token";
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

async fn answer(status: usize, content_type: &str, body: String) -> (ServerGuard, TokenClient) {
    let mut server = Server::new_async().await;
    server
        .mock("POST", PATH)
        .with_status(status)
        .with_header("content-type", content_type)
        .with_body(body)
        .create_async()
        .await;
    let client = TokenClient::builder()
        .base_url(server.url())
        .build()
        .unwrap();
    (server, client)
}

/// A tracing subscriber that writes every span and event field into one string.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<String>>);

struct Fields<'a>(&'a Mutex<String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        let mut out = self.0.lock().unwrap();
        let _ = write!(out, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.0.lock().unwrap().push_str(span.metadata().name());
        self.0.lock().unwrap().push(' ');
        span.record(&mut Fields(&self.0));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&self.0));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut Fields(&self.0));
        self.0.lock().unwrap().push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn tracing_events_never_carry_secrets() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();

    let ok = json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 60});
    let (_s1, client) = answer(200, "application/json", ok.to_string()).await;
    client.request_token(&request()).await.unwrap();

    let echo = json!({"title": "bad", "detail": format!("assertion {ASSERTION}")});
    let (_s2, client) = answer(400, "application/problem+json", echo.to_string()).await;
    client.request_token(&request()).await.unwrap_err();

    let log = recorder.0.lock().unwrap().clone();
    assert!(log.contains("ibkr_oauth.request_token"), "{log}");
    assert!(log.contains("status=200"), "{log}");
    assert!(log.contains("status=400"), "{log}");
    assert!(log.contains("token granted"), "{log}");
    assert!(log.contains("token request failed"), "{log}");
    assert_clean(&log);
}
