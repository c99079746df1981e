//! OAuth 2.0 token client for the Interactive Brokers (IBKR) Web API.
//!
//! IBKR's token endpoint (`POST https://api.ibkr.com/oauth2/api/v1/token`) grants access
//! tokens to a client that proves who it is with a signed JWT, the *client assertion*
//! (`private_key_jwt`, RFC 7521 / RFC 7523). This crate sends that request and turns the answer
//! into a [`Token`] or one [`Error`] that says what went wrong and whether to retry.
//!
//! - [`TokenClient`] holds the HTTP settings: base URL ([`IBKR_PRODUCTION`] by default,
//!   [`IBKR_SANDBOX`]), timeouts (always on), a cap on the response size (64 KiB), no
//!   redirects on the token POST, https only except to loopback hosts.
//! - [`TokenRequest`] holds the assertion (a secret) and the scopes, validated before any
//!   network I/O. A [`Signer`] (module [`assertion`]) makes the assertion from your key.
//! - [`Token`] holds the access token as a [`SecretString`], its scopes and when it expires.
//! - [`Error`] tells an RFC 9457 problem ([`Error::Problem`], IBKR's own error format) from an
//!   RFC 6749 error body, an unexpected response (an HTML 502 page, a redirect), a timeout, a
//!   connect failure...; [`Error::is_retryable`] and [`Error::retry_after`] drive retries.
//!
//! Secrets never print: `Debug` and `Display` of every type and error, and the tracing events
//! (a `debug` span `ibkr_oauth.request_token` per request, with the status), show
//! `[redacted]` in place of access tokens and assertions.
//!
//! # Example
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
//!   for any number of tasks (needs a tokio runtime).
//! - `blocking`: `blocking::TokenClient`, for programs without an async runtime.

#![deny(missing_docs)]

// Modules in the order one token request flows through them.
pub mod clock; // the injectable wall clock

pub mod assertion; // keys, algorithms, the signed client assertion

mod request; // the token request: assertion source, scopes, grant

mod client; // TokenClient: URL policy, timeouts, no redirects

mod transport; // the one call of the generated operation, and its middleware

mod problem; // status-first mapping of the response; RFC 9457 and RFC 6749 bodies

pub mod error; // the crate's one Error

mod token; // the granted token

#[cfg(feature = "provider")]
pub mod provider; // cache, single flight, refresh ahead, retries, clock skew

#[cfg(feature = "blocking")]
pub mod blocking; // the same client for programs without an async runtime

pub use client::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT,
    IBKR_PRODUCTION, IBKR_SANDBOX, TOKEN_PATH, TokenClient, TokenClientBuilder,
};
pub use problem::{OAuthError, Problem, ResponseInfo};
#[cfg(feature = "provider")]
pub use provider::{TokenProvider, TokenProviderBuilder};
pub use request::{
    CLIENT_ASSERTION_TYPE_JWT_BEARER, GRANT_TYPE_CLIENT_CREDENTIALS, SCOPE_MAX_CHARS,
    SCOPE_MIN_CHARS, TokenRequest, TokenRequestBuilder,
};
pub use token::Token;

/// The HTTP status type used in errors (re-exported from the `http` crate).
pub use http::StatusCode;
/// Secret types and the trait that reads them (re-exported from the `secrecy` crate).
pub use secrecy::{ExposeSecret, SecretString};

pub use assertion::ClientAssertion;
pub use assertion::{Algorithm, KeySource, KeyType, PrivateKey, Signer, SignerBuilder};
pub use clock::{Clock, SystemClock};
pub use error::Error;

/// The generated models of IBKR's token endpoint, re-exported so that users never name the
/// generated crate.
pub mod models {
    pub use ibkr_oauth_generated::models::*;
}
