//! The request builder's signer: every attempt goes out with a freshly signed assertion.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ibkr_oauth::{PrivateKey, Signer, TokenClient, TokenRequest};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn claims(assertion: &str) -> serde_json::Value {
    let payload = assertion.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

/// Sends the same request twice from a PKCS#1 key file and returns the assertions the server saw.
async fn two_requests_with(key_file: &str) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_header("content-type", "application/json")
        .with_body_from_request(move |request| {
            let body = request.body().cloned().unwrap_or_default();
            for (name, value) in url::form_urlencoded::parse(&body) {
                if name == "client_assertion" {
                    record.lock().unwrap().push(value.into_owned());
                }
            }
            br#"{"access_token":"t","token_type":"Bearer","expires_in":60}"#.to_vec()
        })
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
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn each_attempt_is_signed_afresh_from_a_pkcs1_key_file() {
    let assertions = two_requests_with("rsa_pkcs1.pem").await;
    assert_eq!(assertions.len(), 2);
    assert_ne!(assertions[0], assertions[1]);
    let (first, second) = (claims(&assertions[0]), claims(&assertions[1]));
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
    assert_ne!(claims(&assertions[0])["jti"], claims(&assertions[1])["jti"]);
}

#[test]
fn a_request_without_signer_or_assertion_is_refused() {
    let error = TokenRequest::builder()
        .build()
        .expect_err("no assertion source");
    assert!(
        matches!(error, ibkr_oauth::Error::InvalidRequest(_)),
        "{error:?}"
    );
}
