//! OAuth 2.0 token client for the Interactive Brokers (IBKR) Web API.
//!
//! IBKR's token endpoint (`POST https://api.ibkr.com/oauth2/api/v1/token`) grants access
//! tokens to a client that proves who it is with a signed JWT, the *client assertion*
//! (`private_key_jwt`, RFC 7521 / RFC 7523). Give this crate a client id, a key id and your
//! private key; it signs the assertion, asks for the token, and keeps one fresh for as long as
//! your program runs.
//!
//! # Quickstart
//!
//! ```toml
//! [dependencies]
//! ibkr-oauth = { version = "0.1", features = ["middleware"] } # `provider` is on by default
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! reqwest = "0.13"
//! reqwest-middleware = "0.5"
//! ```
//!
//! ```no_run
//! # #[cfg(feature = "middleware")]
//! use ibkr_oauth::{Config, middleware::BearerAuth};
//!
//! # #[cfg(not(feature = "middleware"))] fn main() {}
//! # #[cfg(feature = "middleware")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // IBKR_CLIENT_ID, IBKR_KEY_ID, IBKR_PRIVATE_KEY, IBKR_SCOPE (e.g. "echo.read"), and
//!     // IBKR_BASE_URL for a sandbox or QA server (https://api.ibkr.com when unset).
//!     let config = Config::from_env()?;
//!     let provider = config.provider()?;
//!     let base = config.get_base_url().to_owned();
//!
//!     // Every request to that origin gets the current token; a 401 is retried once. One base
//!     // URL for both sides: an API call to another origin fails with
//!     // ConfigError::OriginMismatch (naming both) instead of going out without the token.
//!     let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!         .with(BearerAuth::new(provider, &base)?)
//!         .build();
//!     let echo = api.get(format!("{base}/gw/api/v1/echo/https")).send().await?;
//!     println!("{}", echo.status());
//!     Ok(())
//! }
//! ```
//!
//! With only the token (no middleware), in a `main` that returns this crate's error:
//!
//! ```no_run
//! use ibkr_oauth::{PrivateKey, Signer, TokenClient, provider::TokenProvider};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ibkr_oauth::Error> {
//!     let key = PrivateKey::from_pem_file("private.pem")?; // PKCS#8 or PKCS#1 PEM
//!     let signer = Signer::builder("my-client-id", "main", key).build()?;
//!     let provider = TokenProvider::builder(TokenClient::new()?, signer)
//!         .scope("sso-sessions.write")
//!         .build()?;
//!     let token = provider.access_token().await?; // cached; refreshed ahead of expiry
//!     let _header = token.authorization_header(); // "Bearer ...", marked sensitive
//!     Ok(())
//! }
//! ```
//!
//! The settings can come from the environment instead ([`Config::from_env`]: `IBKR_CLIENT_ID`,
//! `IBKR_KEY_ID`, `IBKR_PRIVATE_KEY`, `IBKR_SCOPE`...), as the `ibkr-oauth` command reads them.
//!
//! # After the token
//!
//! - **Calling the Web API**: put the token in `Authorization: Bearer ...` on each call:
//!   [`middleware::BearerAuth`] does it for a reqwest-middleware client, for the API's origin
//!   only; [`Token::authorization_header`] gives the header for any other client;
//!   [`api::ApiClient`] calls IBKR's two echo endpoints (`echo.read`, `echo.write`), made for
//!   checking a setup.
//! - **401**: the API refused the token (revoked, or expired early). Report it
//!   ([`provider::TokenProvider::invalidate`], [`TokenSource::invalidate`]) and the next call
//!   gets a new one; the middleware does both, once per request. A second 401 is not the
//!   token's freshness: check the registration.
//! - **Scopes** come from IBKR's spec, where each endpoint names the ones it accepts
//!   (`x-ib-gateway-allowed-scopes`): `accounts`, `bank-instructions`, `instructions`,
//!   `reports`, `restrictions`, `statements`, `tax-vouchers`, `transfers`, `echo` (each
//!   `.read` and `.write`), `balances.read`, `enumerations.read`, `forms.read`,
//!   `validations.read`, `sso-sessions.write`, `sso-browser-sessions.write`. IBKR grants a
//!   client only the scopes it registered; ask for no more (a 403 `insufficient_scope` says
//!   which is missing).
//! - **QA before production**: IBKR's QA server is [`IBKR_QA`] (with QA credentials from
//!   IBKR); the default is [`IBKR_PRODUCTION`]. For tests with no IBKR account, the
//!   `ibkr-oauth-sandbox` crate (or `ibkr-oauth sandbox`) serves the token and echo endpoints
//!   on loopback.
//! - **The SSO and brokerage session**: every other `/v1/api` endpoint (portfolio, orders,
//!   market data) needs the SSO session this token opens, and `/iserver` the brokerage
//!   session on top: [`session::Session`] opens, keeps and heals both (next section).
//! - **Many processes**: IBKR allows about 50 requests per second per user and may block an
//!   IP for 10 minutes past that. One process: [`provider::TokenProvider`]. One host, any
//!   language: `ibkr-oauth serve`, a local agent. Many hosts: the `ibkr-oauth-redis` crate,
//!   one token for the fleet.
//!
//! # The session: from a key file to a `/v1/api` answer
//!
//! ```no_run
//! # #[cfg(feature = "middleware")]
//! use ibkr_oauth::middleware::SessionAuth;
//! use ibkr_oauth::session::{SSO_SESSIONS_SCOPE, Session, SessionConfig};
//! use ibkr_oauth::{IBKR_PRODUCTION, PrivateKey, Signer, TokenClient, provider::TokenProvider};
//!
//! # #[cfg(not(feature = "middleware"))] fn main() {}
//! # #[cfg(feature = "middleware")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // 1. The access token (scope sso-sessions.write), from the key IBKR registered.
//!     let key = PrivateKey::from_pem_file("private.pem")?;
//!     let signer = Signer::builder("my-client-id", "main", key).build()?;
//!     let tokens = TokenProvider::builder(TokenClient::new()?, signer.clone())
//!         .scope(SSO_SESSIONS_SCOPE)
//!         .build()?;
//!
//!     // 2. The SSO session for the IBKR username, from this public IP; the brokerage
//!     //    session too (needed by /iserver), kept open by a tickle about every minute.
//!     let config = SessionConfig::builder("my-ibkr-username")
//!         .ip("203.0.113.7")
//!         .brokerage(true)
//!         .build()?;
//!     let session = Session::builder(tokens, signer, config).build()?;
//!     println!("session: {}", session.open().await?); // "brokerage"
//!
//!     // 3. /v1/api calls carry the SSO token; a 401 re-opens the session and a
//!     //    `400 no bridge` the brokerage session, each retried once.
//!     let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!         .with(SessionAuth::new(session.clone(), IBKR_PRODUCTION)?)
//!         .build();
//!     let accounts = api
//!         .get("https://api.ibkr.com/v1/api/portfolio/accounts")
//!         .send()
//!         .await?
//!         .text()
//!         .await?;
//!     println!("{accounts}");
//!
//!     session.close().await?; // logs out (so does dropping the last handle)
//!     Ok(())
//! }
//! ```
//!
//! The session's states ([`session::SessionState`], read with `status()`, followed with
//! `watch()`): `opening` -> `read-only` (SSO only) or `brokerage`; `competing` (another
//! login holds the brokerage session: taken over only as [`session::Compete`] says), `no
//! bridge` (the brokerage session asked for is not open), `expired` (no SSO session could be
//! had yet; retried with backoff), `closed`. A failed keep-alive marks the status `stale`
//! while the session is used as it was. It heals by itself: re-init when not authenticated,
//! a new SSO session on a 401, a new access token when sso-sessions refuses it, quiet
//! retries in IBKR's nightly reset window ([`session::ResetWindow`]).
//!
//! # The pieces, in the order a token request flows through them
//!
//! | step | items | module |
//! |---|---|---|
//! | configuration | [`TokenClient`] (base URL: [`IBKR_PRODUCTION`] or [`IBKR_QA`]; timeouts always on; 64 KiB response cap; no redirects; https except loopback) | `client` |
//! | assertion | [`PrivateKey`] (PEM, encrypted PKCS#8), [`Signer`], or any [`AssertionSigner`] (a KMS) | `assertion/` |
//! | request | [`TokenRequest`]: the assertion source and the scopes, checked before any I/O | `request` |
//! | HTTP | the generated `generate_token` operation, the one HTTP path, wrapped by a middleware that caps the body and keeps `Date`/`Retry-After` | `transport` |
//! | response mapping | status and content type first, then one parse: a [`Token`], or an [`Error`] ([`Problem`], [`OAuthError`], an invalid response); server text through [`sanitize`] | `response`, `problem`, `sanitize` |
//! | errors | [`Error`] with [`Error::kind`] ([`ErrorKind`]), [`ConfigError`], [`KeyError`], [`SignError`] | `error/` |
//! | cache | [`provider::TokenProvider`]: lock-free reads, one fetch for many callers, refresh ahead, retries, clock skew | `provider/` |
//! | use | [`TokenSource`] (the provider, [`FixedToken`], [`FnSource`]) | `source` |
//! | session | [`session::Session`] (SSO and brokerage session, keeper, healing), [`session::SessionSource`] | `session/` |
//!
//! Secrets never print: `Debug` and `Display` of every type and error, and the tracing events
//! (a `debug` span `ibkr_oauth.request_token` per request, with the status), show
//! `[redacted]` in place of access tokens and assertions.
//!
//! # One request, by hand
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ibkr_oauth::Error> {
//! # let mut server = mockito::Server::new_async().await;
//! # let _token = server
//! #     .mock("POST", "/oauth2/api/v1/token")
//! #     .match_body(mockito::Matcher::Regex("scope=sso-sessions.write".into()))
//! #     .with_header("content-type", "application/json")
//! #     .with_body(r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","token_type":"Bearer",
//! #                  "scope":"sso-sessions.write","expires_in":86399}"#)
//! #     .create_async()
//! #     .await;
//! # let base_url = server.url();
//! use std::time::Duration;
//! use ibkr_oauth::{ClientAssertion, Error, ExposeSecret, TokenClient, TokenRequest};
//!
//! // In production: `.base_url(ibkr_oauth::IBKR_PRODUCTION)`, the default.
//! let client = TokenClient::builder()
//!     .base_url(&base_url)
//!     .timeout(Duration::from_secs(15))
//!     .build()?;
//!
//! // Usually `signer.sign()?`, a fresh assertion signed with your key.
//! let assertion = ClientAssertion::new("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJteS1jbGllbnQifQ.c2ln");
//! let request = TokenRequest::builder()
//!     .assertion(assertion)
//!     .scope("sso-sessions.write")
//!     .build()?;
//!
//! match client.request_token(&request).await {
//!     Ok(token) => {
//!         let authorization = format!("Bearer {}", token.access_token().expose_secret());
//!         println!("token for {:?}, expires in {:?}", token.scope(), token.expires_in());
//!         # let _ = authorization;
//!     }
//!     Err(Error::Problem { problem, .. }) if problem.http_status().is_client_error() => {
//!         // e.g. "invalid client assertion: signature does not verify [type /simple]"
//!         eprintln!("IBKR refused the request: {problem}");
//!     }
//!     Err(e) if e.is_retryable() => {
//!         eprintln!("{e}; retrying in {:?}", e.retry_after().unwrap_or(Duration::from_secs(1)));
//!     }
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `provider` (default): [`provider::TokenProvider`], a cached token that is always fresh,
//!   for any number of tasks, and [`session::Session`], the SSO and brokerage session kept
//!   open (both need a tokio runtime).
//! - `middleware`: [`middleware::BearerAuth`] (the token on API requests, 401 recovery),
//!   `middleware::SessionAuth` (the SSO token on `/v1/api` calls; 401 and `no bridge`
//!   recovery) and [`api::ApiClient`] (IBKR's echo endpoints through the generated
//!   operations).
//! - `pacing`: [`pacing::Governor`], IBKR's request pacing (per user, per endpoint) decided
//!   before a request leaves.
//! - `blocking`: `blocking::TokenClient`, `blocking::TokenProvider` and `blocking::Session`,
//!   for programs without an async runtime.
//! - `encrypted-keys`: reading encrypted PKCS#8 keys (`BEGIN ENCRYPTED PRIVATE KEY`); it brings
//!   the RustCrypto PBES2 stack, so it is off unless asked for.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

// Modules in the order one token request flows through them: configuration -> assertion ->
// request -> HTTP (the generated operation) -> response mapping -> token -> cache.
pub mod clock; // the injectable wall clock (Clock, SystemClock)

mod setting; // ConfigError: a setting refused, and what was wrong with it (a leaf)

mod algorithm; // the JWS algorithms and key types (a leaf)

mod assertion; // keys, the signer, the signed client assertion

mod request; // the token request: assertion source, scopes

mod client; // TokenClient: URL policy, timeouts, no redirects

mod transport; // the one call of the generated operation, and its middleware

mod response; // status and content type first, then one parse: a Token or an Error

mod problem; // the RFC 9457 and RFC 6749 refusal bodies

mod sanitize; // the one sanitiser of server-supplied text

mod error; // Error, ErrorKind; KeyError, SignError

mod token; // the granted token

mod source; // TokenSource: anything that hands out tokens

mod config; // Config: settings from the IBKR_* environment variables

#[cfg(feature = "provider")]
pub mod provider; // cache, single flight, refresh ahead, retries, clock skew

#[cfg(feature = "provider")]
pub mod session; // the SSO and brokerage session: open, keep alive, heal, log out

#[cfg(feature = "pacing")]
pub mod pacing; // IBKR's request pacing: GCRA per user and per endpoint, 429 pauses

#[cfg(feature = "middleware")]
pub mod middleware; // BearerAuth: the token on API requests, 401 recovery

#[cfg(feature = "middleware")]
pub mod api; // IBKR Web API calls (the echo endpoints) through the generated operations

#[cfg(feature = "blocking")]
pub mod blocking; // the client and the provider for programs without an async runtime

pub use assertion::{
    Algorithm, AssertionSigner, ClientAssertion, KeyError, PrivateKey, SignError, Signer,
};
pub use client::{IBKR_PRODUCTION, IBKR_QA, TokenClient};
pub use config::{Config, SettingOrigin, env_vars};
pub use error::{ConfigError, Error, ErrorKind, ResponseInfo};
pub use problem::{OAuthError, Problem};
pub use request::TokenRequest;
pub use sanitize::sanitize;
pub use source::{FetchContext, FixedToken, FnSource, TokenFuture, TokenSource};
pub use token::Token;

/// The builders of the root types, for code that names them (a function that takes a
/// half-configured builder); most code reaches them through `X::builder()`.
pub mod builders {
    pub use crate::assertion::SignerBuilder;
    pub use crate::client::TokenClientBuilder;
    pub use crate::request::TokenRequestBuilder;
    pub use crate::token::TokenBuilder;
}

/// The token client's defaults and the token endpoint's limits.
pub mod constants {
    pub use crate::client::{
        DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT,
        TOKEN_PATH,
    };
    pub use crate::request::{SCOPE_MAX_CHARS, SCOPE_MIN_CHARS};
}

/// What was wrong with a refused setting: the data inside [`ConfigError`]'s variants.
pub mod config_error {
    pub use crate::error::{
        ClientSetting, PacingSetting, ProviderSetting, RequestSetting, SessionSetting, SignerField,
        SignerSetting, VariableProblem,
    };
}

/// What a key is and where it came from, as key errors and the key generator name them.
pub mod key {
    pub use crate::assertion::{KeyOrigin, KeyType};
}

/// The HTTP status type used in errors (re-exported from the `http` crate).
pub use http::StatusCode;
/// Secret types and the trait that reads them (re-exported from the `secrecy` crate).
pub use secrecy::{ExposeSecret, SecretString};

/// The generated models of IBKR's endpoints, re-exported so that users never name the
/// generated crate.
pub mod models {
    pub use ibkr_oauth_generated::models::*;
}
