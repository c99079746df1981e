//! From a key to an IBKR API call, against a local sandbox (no IBKR account needed):
//! a `TokenProvider` keeps the token, `ApiClient` calls IBKR's echo endpoints through the
//! bearer middleware, and a revoked token is recovered from with one retry.
//!
//! `cargo run -p ibkr-oauth --example echo --features middleware`
//!
//! Against IBKR, drop the sandbox: `ApiClient::builder(provider).build()?` talks to
//! `https://api.ibkr.com` with your registered key.

use ibkr_oauth::api::ApiClient;
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient};
use ibkr_oauth_sandbox::{RegisteredClient, Sandbox};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh key, its public half registered with a local stand-in of IBKR.
    let key = PrivateKey::generate(Algorithm::RS256)?;
    let sandbox = Sandbox::builder()
        .client(RegisteredClient::new("example-client").key("main", key.public_key_pem()))
        .start()
        .await?;

    let signer = Signer::builder("example-client", "main", key).build()?;
    let client = TokenClient::builder()
        .base_url(sandbox.base_url())
        .build()?;
    let provider = TokenProvider::builder(client, signer.clone())
        .scopes(["echo.read", "echo.write"])
        .build()?;
    let api = ApiClient::builder(provider.clone())
        .base_url(sandbox.base_url())
        .build()?;

    let echo = api.echo_https().await?;
    println!(
        "echo/https: {:?} over {:?}",
        echo.request_method, echo.security_policy
    );
    let signed = api.echo_signed_jwt(&signer).await?;
    println!(
        "echo/signed-jwt: {:?} over {:?}",
        signed.request_method, signed.security_policy
    );

    // The server forgets the token: the middleware reports it and retries once.
    sandbox.revoke_all_tokens();
    api.echo_https().await?;
    let api_calls = sandbox
        .requests()
        .iter()
        .filter(|r| r.endpoint.is_api_call())
        .count();
    let token_requests = sandbox.requests().len() - api_calls;
    println!("after a revocation: {token_requests} token requests, {api_calls} API calls in all");
    Ok(())
}
