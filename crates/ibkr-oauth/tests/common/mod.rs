//! Shared by the facade and provider test binaries: one-answer mock endpoints, a recorder of
//! what the endpoint received, a loopback URL nobody listens on, and a tracing recorder.
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::fmt::{Debug, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ibkr_oauth::TokenClient;
use ibkr_oauth::constants::TOKEN_PATH;
use mockito::{Server, ServerGuard};
use serde_json::Value;

/// A mock token endpoint that answers every request with `status`, `content_type` and `body`.
pub async fn answering(status: usize, content_type: &str, body: impl AsRef<[u8]>) -> ServerGuard {
    let mut server = Server::new_async().await;
    server
        .mock("POST", TOKEN_PATH)
        .with_status(status)
        .with_header("content-type", content_type)
        .with_body(body)
        .create_async()
        .await;
    server
}

/// A token client with the defaults, pointed at `server`.
pub fn client_for(server: &ServerGuard) -> TokenClient {
    TokenClient::builder()
        .base_url(server.url())
        .build()
        .expect("a loopback http URL is allowed")
}

/// A loopback base URL whose port was free a moment ago: connecting to it is refused.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    format!("http://127.0.0.1:{port}")
}

/// The claims of a compact JWS (its payload, base64url-decoded).
pub fn claims_of(assertion: &str) -> Value {
    let payload = assertion.split('.').nth(1).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// The `client_assertion` parameter of one captured form body.
pub fn assertion_in(form: &[u8]) -> String {
    url::form_urlencoded::parse(form)
        .find(|(k, _)| k == "client_assertion")
        .map(|(_, v)| v.into_owned())
        .expect("a client_assertion parameter")
}

/// Captures every request body the mock answers.
#[derive(Clone, Default)]
pub struct Bodies(Arc<Mutex<Vec<Vec<u8>>>>);

impl Bodies {
    /// A `with_body_from_request` answer that records the request and replies `body`.
    pub fn answer(&self, body: &'static str) -> impl Fn(&mockito::Request) -> Vec<u8> + use<> {
        let seen = self.clone();
        move |request| {
            seen.0
                .lock()
                .unwrap()
                .push(request.body().cloned().unwrap_or_default());
            body.as_bytes().to_vec()
        }
    }

    /// The assertions received, in order.
    pub fn assertions(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|b| assertion_in(b))
            .collect()
    }

    /// The claims of the assertions received, in order.
    pub fn claims(&self) -> Vec<Value> {
        self.assertions().iter().map(|a| claims_of(a)).collect()
    }
}

/// A tracing subscriber that writes every span (name and fields), field update and event into
/// one string, for tests that check what tracing carries.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<String>>, Arc<AtomicU64>);

impl Recorder {
    /// Everything recorded so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

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
