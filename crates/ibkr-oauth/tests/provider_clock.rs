//! A clock pinned on the signer keeps stamping assertions when the provider signs them.
#![cfg(feature = "provider")]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Bodies;
use ibkr_oauth::clock::Clock;
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient};

#[derive(Debug)]
struct Pinned(SystemTime);

impl Clock for Pinned {
    fn now(&self) -> SystemTime {
        self.0
    }
}

#[tokio::test]
async fn the_provider_signs_with_the_signers_clock() {
    let bodies = Bodies::default();
    let mut server = mockito::Server::new_async().await;
    let _mock = server
        .mock("POST", "/oauth2/api/v1/token")
        .with_header("content-type", "application/json")
        .with_body_from_request(
            bodies.answer(r#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#),
        )
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

    let claims = bodies.claims();
    assert_eq!(claims.len(), 1);
    // iat = the pinned time minus the default 10 s allowance (no server Date, so no offset).
    assert_eq!(claims[0]["iat"], 1_700_000_000 - 10);
}
