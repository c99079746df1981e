//! The blocking client (feature `blocking`): same exchange, same errors, no runtime needed,
//! and no panic when used (or dropped) inside someone else's runtime.
#![cfg(feature = "blocking")]

use ibkr_oauth::{ClientAssertion, Error, ExposeSecret, StatusCode, TokenRequest};
use mockito::Server;

const PATH: &str = "/oauth2/api/v1/token";

fn request() -> TokenRequest {
    TokenRequest::builder()
        .assertion(ClientAssertion::new("a.b.c"))
        .scope("echo.read")
        .build()
        .unwrap()
}

fn client(url: &str) -> ibkr_oauth::blocking::TokenClient {
    ibkr_oauth::blocking::TokenClient::build(ibkr_oauth::TokenClient::builder().base_url(url))
        .unwrap()
}

#[test]
fn blocking_request_returns_the_token() {
    let mut server = Server::new();
    let mock = server
        .mock("POST", PATH)
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"tok","token_type":"Bearer","expires_in":60}"#)
        .expect(2)
        .create();
    let client = client(&server.url());
    let token = client.request_token(&request()).unwrap();
    assert_eq!(token.access_token().expose_secret(), "tok");
    // A clone shares the runtime thread.
    let clone = client.clone();
    drop(client);
    clone.request_token(&request()).unwrap();
    mock.assert();
}

#[test]
fn blocking_request_maps_errors_like_the_async_client() {
    let mut server = Server::new();
    server
        .mock("POST", PATH)
        .with_status(500)
        .with_header("content-type", "application/problem+json")
        .with_body(r#"{"type":"/simple","title":"Internal Server Error","status":500}"#)
        .create();
    match client(&server.url()).request_token(&request()) {
        Err(Error::Problem { problem, .. }) => {
            assert_eq!(problem.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        other => panic!("expected Error::Problem, got {other:?}"),
    }
}

#[test]
fn blocking_client_refuses_plain_http_at_build() {
    let e = ibkr_oauth::blocking::TokenClient::build(
        ibkr_oauth::TokenClient::builder().base_url("http://api.ibkr.com"),
    )
    .unwrap_err();
    assert!(
        matches!(
            &e,
            ibkr_oauth::ConfigError::Client(ibkr_oauth::config_error::ClientSetting::PlainHttp { host })
                if host == "api.ibkr.com"
        ),
        "{e:?}"
    );
}

#[test]
fn blocking_client_inside_an_async_runtime_does_not_panic() {
    let mut server = Server::new();
    server
        .mock("POST", PATH)
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"tok","expires_in":60}"#)
        .create();
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        // Built, used and dropped on a runtime thread: blocks it, but never panics.
        let client = client(&url);
        let token = client.request_token(&request()).unwrap();
        assert_eq!(token.access_token().expose_secret(), "tok");
        drop(client);
    });
}

#[test]
fn concurrent_callers_share_one_client() {
    let mut server = Server::new();
    let mock = server
        .mock("POST", PATH)
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"tok","expires_in":60}"#)
        .expect(4)
        .create();
    let client = client(&server.url());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let client = &client;
            scope.spawn(move || client.request_token(&request()).unwrap());
        }
    });
    mock.assert();
}
