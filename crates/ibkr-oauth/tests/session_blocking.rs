//! The blocking session against mockito: open, a call, close; and a logout when the last
//! handle drops, from a thread with no runtime.
#![cfg(feature = "blocking")]

use ibkr_oauth::session::{Session, SessionConfig, SessionState};
use ibkr_oauth::{Algorithm, FixedToken, PrivateKey, SecretString, Signer, Token};

fn builder(url: String) -> ibkr_oauth::session::SessionBuilder {
    let key = PrivateKey::generate(Algorithm::EdDSA).unwrap();
    let signer = Signer::builder("client-1", "kid-1", key).build().unwrap();
    let tokens = FixedToken::new(
        Token::builder(SecretString::from("access"))
            .build()
            .unwrap(),
    );
    let config = SessionConfig::builder("user1234")
        .ip("203.0.113.7")
        .build()
        .unwrap();
    Session::builder(tokens, signer, config).base_url(url)
}

fn server() -> (mockito::ServerGuard, mockito::Mock) {
    let mut server = mockito::Server::new();
    server
        .mock("POST", "/gw/api/v1/sso-sessions")
        .with_header("content-type", "application/json")
        .with_body(r#"{"active":true,"access_token":"sso-blocking"}"#)
        .create();
    server
        .mock("GET", "/v1/api/tickle")
        .match_header("authorization", "Bearer sso-blocking")
        .with_header("content-type", "application/json")
        .with_body(r#"{"session":"s","ssoExpires":400000,"iserver":{"authStatus":{"authenticated":false,"competing":false,"connected":true}}}"#)
        .create();
    let logout = server
        .mock("POST", "/v1/api/logout")
        .match_header("authorization", "Bearer sso-blocking")
        .with_header("content-type", "application/json")
        .with_body(r#"{"status":true}"#)
        .expect(1)
        .create();
    (server, logout)
}

#[test]
fn opens_tickles_and_closes_without_a_runtime() {
    let (server, logout) = server();
    let session = ibkr_oauth::blocking::Session::build(builder(server.url())).unwrap();
    assert_eq!(session.open().unwrap().state, SessionState::ReadOnly);
    let tickle = session.tickle().unwrap();
    assert_eq!(tickle.sso_expires.map(|d| d.as_secs()), Some(400));
    session.close().unwrap();
    assert_eq!(session.status().state, SessionState::Closed);
    logout.assert();
}

#[test]
fn dropping_the_last_handle_logs_out() {
    let (server, logout) = server();
    let session = ibkr_oauth::blocking::Session::build(builder(server.url())).unwrap();
    session.open().unwrap();
    let clone = session.clone();
    drop(session);
    drop(clone);
    logout.assert();
}
