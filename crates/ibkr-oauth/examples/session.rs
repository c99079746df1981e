//! From a key file to an IBKR `/v1/api` answer, against a local sandbox (no IBKR account
//! needed): the access token opens an SSO session, the session middleware puts its bearer on
//! `/v1/api` calls, opens the brokerage session when IBKR says `no bridge`, and the keeper
//! keeps it all open until `close()` logs out.
//!
//! `cargo run -p ibkr-oauth --example session --features middleware`
//!
//! Against IBKR, drop the sandbox and the two `base_url` lines: the defaults are
//! `https://api.ibkr.com`; the key is the one you registered, the username yours, and the IP
//! the public one IBKR sees.

use ibkr_oauth::middleware::SessionAuth;
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::session::{Session, SessionConfig};
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient};
use ibkr_oauth_sandbox::{RegisteredClient, Sandbox};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Stand-ins for what you have: a private key file and its public half registered with IBKR.
    let generated = PrivateKey::generate(Algorithm::ES256)?;
    let key_file = std::env::temp_dir().join(format!("ibkr-example-{}.pem", std::process::id()));
    std::fs::write(&key_file, generated.to_pkcs8_pem()?.as_bytes())?;
    let sandbox = Sandbox::builder()
        .client(RegisteredClient::new("example-client").key("main", generated.public_key_pem()))
        .start()
        .await?;

    // The snippet: key file -> signer -> access tokens -> session -> a /v1/api call.
    let key = PrivateKey::from_pem_file(&key_file)?;
    let signer = Signer::builder("example-client", "main", key).build()?;
    let tokens = TokenProvider::builder(
        TokenClient::builder()
            .base_url(sandbox.base_url())
            .build()?,
        signer.clone(),
    )
    .scope("sso-sessions.write")
    .build()?;
    let config = SessionConfig::builder("exampleuser")
        .ip("203.0.113.7")
        .build()?;
    let session = Session::builder(tokens, signer, config)
        .base_url(sandbox.base_url())
        .build()?;
    let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SessionAuth::new(session.clone(), &sandbox.base_url())?)
        .build();

    let accounts: serde_json::Value = api
        .get(format!("{}/v1/api/portfolio/accounts", sandbox.base_url()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("portfolio/accounts: {}", accounts[0]["accountId"]);
    println!("session: {}", session.status().state);

    // /iserver needs the brokerage session: the middleware opens it on `no bridge`.
    let tradable: serde_json::Value = api
        .get(format!("{}/v1/api/iserver/accounts", sandbox.base_url()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("iserver/accounts: {}", tradable["accounts"]);
    println!("session: {}", session.status().state);

    session.close().await?;
    std::fs::remove_file(&key_file)?;
    Ok(())
}
