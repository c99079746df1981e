//! No secret leaks: every public type and every error built around a known access token or
//! assertion is formatted (`{:?}` and `{}`); the secrets never appear. (Tracing output:
//! `facade_tracing.rs`.)

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::{answering, closed_port_url};
use ibkr_oauth::{ClientAssertion, ConfigError, Error, TokenClient, TokenRequest};
use mockito::ServerGuard;
use serde_json::json;

/// A client assertion (compact JWS) that must never print.
const ASSERTION: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJjbGllbnQtNDIifQ.QVNTRVJUSU9OLVNFQ1JFVC1TSUc";
/// An access token (a JWT, as IBKR's are) that must never print.
const ACCESS_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.QUNDRVNTLVRPS0VOLVNJRw";
/// An opaque (non-JWT) secret sent in a success body of the wrong content type.
const OPAQUE_TOKEN: &str = "opaque-access-token-7f3a9c";

const SECRETS: [&str; 3] = [ASSERTION, ACCESS_TOKEN, OPAQUE_TOKEN];

/// The distinctive pieces of each secret: the signature segment alone must not leak either.
fn fragments() -> Vec<&'static str> {
    let mut out = Vec::new();
    for s in SECRETS {
        out.push(s);
        if let Some(sig) = s.rsplit('.').next() {
            out.push(sig);
        }
    }
    out
}

fn assert_clean(what: &str, text: &str) {
    for fragment in fragments() {
        assert!(
            !text.contains(fragment),
            "{what} leaks a secret ({fragment}): {text}"
        );
    }
}

fn check_debug(what: &str, value: &impl Debug) {
    assert_clean(what, &format!("{value:?}"));
    assert_clean(what, &format!("{value:#?}"));
}

fn check_error(what: &str, e: &Error) {
    check_debug(what, e);
    assert_clean(what, &e.to_string());
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        assert_clean(what, &s.to_string());
        source = s.source();
    }
    if let Some(problem) = e.problem() {
        assert_clean(what, &problem.to_string());
        check_debug(what, problem);
    }
    if let Error::OAuth { error, .. } = e {
        assert_clean(what, &error.to_string());
        check_debug(what, error);
    }
    if let Some(response) = e.response() {
        check_debug(what, response);
    }
}

fn request() -> TokenRequest {
    TokenRequest::builder()
        .assertion(ClientAssertion::new(ASSERTION))
        .scope("echo.read")
        .build()
        .unwrap()
}

async fn answer(
    status: usize,
    content_type: &str,
    body: impl AsRef<[u8]>,
) -> (ServerGuard, TokenClient) {
    let server = answering(status, content_type, body).await;
    let client = TokenClient::builder()
        .base_url(server.url())
        .max_response_bytes(4096)
        .build()
        .unwrap();
    (server, client)
}

async fn error_for(status: usize, content_type: &str, body: impl AsRef<[u8]>) -> Error {
    let (_server, client) = answer(status, content_type, body).await;
    client.request_token(&request()).await.unwrap_err()
}

#[test]
fn request_side_types_redact_the_assertion() {
    let assertion = ClientAssertion::new(ASSERTION);
    check_debug("ClientAssertion", &assertion);
    assert_clean("ClientAssertion Display", &assertion.to_string());
    let builder = TokenRequest::builder()
        .assertion(assertion)
        .scope("echo.read");
    check_debug("TokenRequestBuilder", &builder);
    check_debug("TokenRequest", &builder.build().unwrap());
    let client_builder = TokenClient::builder()
        .http_client_builder(reqwest::Client::builder())
        .user_agent("ua");
    check_debug("TokenClientBuilder", &client_builder);
    check_debug("TokenClient", &client_builder.build().unwrap());
}

#[test]
fn refusals_do_not_quote_the_assertion() {
    // The assertion passed where a scope belongs by mistake: too long, the error does not echo.
    let e = TokenRequest::builder()
        .assertion(ClientAssertion::new(ASSERTION))
        .scope(format!("{ASSERTION}\n{}", "x".repeat(1024)))
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::Request(_)), "{e:?}");
    check_error("InvalidRequest", &e.into());
}

#[tokio::test]
async fn the_token_redacts_its_access_token() {
    let body = json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 60});
    let (_server, client) = answer(200, "application/json", body.to_string()).await;
    let token = client.request_token(&request()).await.unwrap();
    check_debug("Token", &token);
    check_debug("SecretString", token.access_token());
}

#[tokio::test]
async fn errors_built_around_secrets_do_not_print_them() {
    // A problem whose server echoes the assertion and the token in every member.
    let echo = format!("got assertion {ASSERTION} and token {ACCESS_TOKEN}");
    let problem = json!({
        "type": format!("/simple/{ASSERTION}"),
        "title": echo,
        "detail": echo,
        "instance": format!("/requests/{ACCESS_TOKEN}"),
        "echo": {"assertion": ASSERTION, "token": [ACCESS_TOKEN]}
    });
    let e = error_for(400, "application/problem+json", problem.to_string()).await;
    assert!(matches!(e, Error::Problem { .. }), "{e:?}");
    check_error("Problem", &e);

    let oauth = json!({"error": "invalid_client", "error_description": echo, "error_uri": echo});
    let e = error_for(401, "application/json", oauth.to_string()).await;
    assert!(matches!(e, Error::OAuth { .. }), "{e:?}");
    check_error("OAuth", &e);

    let html = format!(
        "<html><body><pre>client_assertion={ASSERTION}\naccess_token={ACCESS_TOKEN}</pre></body></html>"
    );
    let e = error_for(502, "text/html", html).await;
    assert!(matches!(e, Error::UnexpectedResponse { .. }), "{e:?}");
    check_error("UnexpectedResponse (HTML)", &e);

    let e = error_for(200, "text/plain", OPAQUE_TOKEN).await;
    assert!(matches!(e, Error::UnexpectedResponse { .. }), "{e:?}");
    check_error("UnexpectedResponse (2xx)", &e);

    for bad in [
        json!({"access_token": ACCESS_TOKEN, "expires_in": -5}),
        json!({"access_token": ACCESS_TOKEN, "expires_in": ACCESS_TOKEN}),
        json!({"access_token": OPAQUE_TOKEN, "scope": [OPAQUE_TOKEN]}),
        json!({"access_token": [OPAQUE_TOKEN]}),
    ] {
        let e = error_for(200, "application/json", bad.to_string()).await;
        assert!(matches!(e, Error::InvalidResponse { .. }), "{e:?}");
        check_error("InvalidResponse", &e);
    }
    let e = error_for(
        200,
        "application/json",
        format!("{{\"access_token\":\"{OPAQUE_TOKEN}"),
    )
    .await;
    assert!(matches!(e, Error::InvalidResponse { .. }), "{e:?}");
    check_error("InvalidResponse (truncated JSON)", &e);

    let big = json!({"access_token": ACCESS_TOKEN, "pad": "x".repeat(8192)});
    let e = error_for(200, "application/json", big.to_string()).await;
    assert!(matches!(e, Error::ResponseTooLarge { .. }), "{e:?}");
    check_error("ResponseTooLarge", &e);

    let redirect = error_for(307, "text/plain", ASSERTION).await;
    assert!(
        matches!(redirect, Error::UnexpectedResponse { .. }),
        "{redirect:?}"
    );
    check_error("UnexpectedResponse (3xx)", &redirect);
}

#[tokio::test]
async fn transport_errors_do_not_print_the_assertion() {
    let client = TokenClient::builder()
        .base_url(closed_port_url())
        .build()
        .unwrap();
    let e = client.request_token(&request()).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    check_error("Connect", &e);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stall = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = TokenClient::builder()
        .base_url(format!("http://{addr}"))
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let e = client.request_token(&request()).await.unwrap_err();
    stall.abort();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    check_error("Timeout", &e);
}

#[test]
fn config_errors_do_not_print_secrets() {
    let e = TokenClient::builder()
        .base_url(format!("https://client:{ASSERTION}@api.ibkr.com"))
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::Client(_)), "{e:?}");
    check_error("InvalidConfig", &e.into());
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_client_redacts() {
    let client = ibkr_oauth::blocking::TokenClient::new().unwrap();
    check_debug("blocking::TokenClient", &client);
}
