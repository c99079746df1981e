//! A clock pinned on the signer keeps stamping assertions when the provider signs them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{Algorithm, Clock, PrivateKey, Signer, TokenClient};

#[derive(Debug)]
struct Pinned(SystemTime);

impl Clock for Pinned {
    fn now(&self) -> SystemTime {
        self.0
    }
}

#[tokio::test]
async fn the_provider_signs_with_the_signers_clock() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&seen);
    let mut server = mockito::Server::new_async().await;
    let _mock = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_header("content-type", "application/json")
        .with_body_from_request(move |request| {
            let body = request.body().cloned().unwrap_or_default();
            for (name, value) in url::form_urlencoded::parse(&body) {
                if name == "client_assertion" {
                    record.lock().unwrap().push(value.into_owned());
                }
            }
            br#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#.to_vec()
        })
        .create_async()
        .await;

    let pinned = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let signer = Signer::builder(
        "client",
        "main",
        PrivateKey::generate(Algorithm::EdDSA).expect("key"),
    )
    .clock(Arc::new(Pinned(pinned)))
    .build()
    .expect("signer");
    let client = TokenClient::builder()
        .base_url(server.url())
        .build()
        .expect("client");
    let provider = TokenProvider::builder(client, signer)
        .build()
        .expect("provider");
    provider.access_token().await.expect("token");

    let assertion = seen.lock().unwrap().first().cloned().expect("one request");
    let payload = assertion.split('.').nth(1).expect("three parts");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json");
    // iat = the pinned time minus the default 10 s allowance (no server Date, so no offset).
    assert_eq!(claims["iat"], 1_700_000_000 - 10);
}
