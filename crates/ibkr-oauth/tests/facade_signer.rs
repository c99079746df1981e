//! The request builder's signer: every attempt goes out with a freshly signed assertion.

mod common;

use common::{Bodies, claims_of};
use ibkr_oauth::{PrivateKey, Signer, TokenClient, TokenRequest};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Sends the same request twice, signed with the key in `key_file`, and returns the
/// assertions the server saw.
async fn two_requests_with(key_file: &str) -> Vec<String> {
    let bodies = Bodies::default();
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_header("content-type", "application/json")
        .with_body_from_request(
            bodies.answer(r#"{"access_token":"t","token_type":"Bearer","expires_in":60}"#),
        )
        .expect(2)
        .create_async()
        .await;

    let key = PrivateKey::from_pem_file(fixture(key_file)).expect("key file");
    let signer = Signer::builder("client-1", "main", key)
        .build()
        .expect("signer");
    let client = TokenClient::builder()
        .base_url(server.url())
        .build()
        .expect("client");
    let request = TokenRequest::builder()
        .signer(signer)
        .build()
        .expect("request");
    client.request_token(&request).await.expect("first");
    client.request_token(&request).await.expect("second");
    mock.assert_async().await;
    bodies.assertions()
}

#[tokio::test]
async fn each_attempt_is_signed_afresh_from_a_pkcs1_key_file() {
    let assertions = two_requests_with("rsa_pkcs1.pem").await;
    assert_eq!(assertions.len(), 2);
    assert_ne!(assertions[0], assertions[1]);
    let (first, second) = (claims_of(&assertions[0]), claims_of(&assertions[1]));
    assert_eq!(first["iss"], "client-1");
    assert_eq!(first["sub"], "client-1");
    assert_eq!(first["aud"], "/token");
    assert_ne!(
        first["jti"], second["jti"],
        "a replayed jti would be refused"
    );
}

#[tokio::test]
async fn a_pkcs8_key_file_works_the_same() {
    let assertions = two_requests_with("rsa_pkcs8.pem").await;
    assert_eq!(assertions.len(), 2);
    assert_ne!(
        claims_of(&assertions[0])["jti"],
        claims_of(&assertions[1])["jti"]
    );
}

#[test]
fn a_request_without_signer_or_assertion_is_refused() {
    let error = TokenRequest::builder()
        .build()
        .expect_err("no assertion source");
    assert!(
        matches!(error, ibkr_oauth::ConfigError::Request(_)),
        "{error:?}"
    );
}
