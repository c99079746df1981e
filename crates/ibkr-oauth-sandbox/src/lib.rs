//! A local stand-in of the Interactive Brokers (IBKR) Web API OAuth 2.0 token endpoint, of
//! its echo endpoints and of the SSO and brokerage session, for tests and development without
//! an IBKR account.
//!
//! It depends on no part of the SDK: what it knows of the protocol is written down from
//! `openapi.yaml` ([`TOKEN_PATH`], [`fields`], [`Algorithm`], ...), so that it checks the SDK
//! rather than agreeing with it by construction.
//!
//! It serves `POST /oauth2/api/v1/token` as the project's `openapi.yaml` describes it and checks
//! what IBKR checks: the form (`grant_type`, `client_assertion_type`, `client_assertion`, the
//! `scope` bounds), the assertion's signature against the registered public key chosen by
//! `kid`, the algorithm bound to that key, `iss` = `sub` = the registered client id, `aud`,
//! `exp` (in the future, not too far), `iat` (not in the future beyond a tolerance) and `jti`
//! (never twice). A good request gets a `TokenResponse` whose `access_token` is a JWT signed by
//! the sandbox; every refusal is a `400 application/problem+json` in IBKR's shape whose
//! `detail` names the check that failed.
//!
//! It also serves IBKR's echo endpoints as a protected resource: `GET` [`ECHO_HTTPS_PATH`]
//! (scope `echo.read`) and `POST` [`ECHO_SIGNED_JWT_PATH`] (scope `echo.write`, body a compact
//! JWS signed with a key registered for the client, `application/jwt`). They take the access
//! tokens the sandbox issued: a missing, foreign, expired or
//! [revoked](RunningSandbox::revoke_token) token gets `401` with
//! `WWW-Authenticate: Bearer ... error="invalid_token"`, a token without the scope `403` with
//! `error="insufficient_scope"` (RFC 6750).
//!
//! And the session on top of the token, as IBKR's published spec shapes it: `POST`
//! [`SSO_SESSIONS_PATH`] (scope [`SSO_SESSIONS_SCOPE`], body a compact JWS signed with a key of
//! the client, `application/jwt`, with the claims working clients send, `ip`, `credential`,
//! `iss`, `iat`, `exp`, or the spec's names, `credential`, `iss`, `jti`, `service`, `userIp`)
//! answers `{"active":true,"access_token":...}` with an SSO bearer; with it,
//! [`SSO_VALIDATE_PATH`] (`USER_NAME`, `IP`, `EXPIRES`, ...), [`SSODH_INIT_PATH`] (the brokerage
//! session), [`TICKLE_PATH`] (`GET` or `POST`: `session`, `ssoExpires`, `collission`,
//! `iserver.authStatus`), [`AUTH_STATUS_PATH`], [`LOGOUT_PATH`], and two read endpoints:
//! [`PORTFOLIO_ACCOUNTS_PATH`] (the SSO session is enough) and [`ISERVER_ACCOUNTS_PATH`]
//! (needs the brokerage session, else `400 {"error":"Bad Request: no bridge","statusCode":400}`).
//! A [`SessionFault`] makes what IBKR's users meet happen on demand: idle expiry (with a short
//! [idle timeout](SandboxBuilder::session_idle_timeout) in tokio time), a competing login,
//! `no bridge`, `failed to generate sso dh token`, staged decay, the nightly reset, an IP
//! change, slow tickles. With [`tls`](SandboxBuilder::tls) on it serves `https` under a CA made at start.
//!
//! For tests it adds what IBKR cannot do on demand: [faults](Fault) on the next token
//! requests, an adjustable clock (also sent as `Date`), a [log](RecordedRequest) of every
//! request (token requests and API calls), token revocation, and
//! [one line per request](SandboxBuilder::trace_requests) on stderr.
//!
//! Refusals a setup checker can quote apart: a `kid` that is not registered (`unknown kid
//! "..."`), a key that is not the one registered under the kid (`signature does not verify
//! with the public key of kid "..."`), a clock off (`exp ... is in the past`, `iat ... is in
//! the future`, against the sandbox's clock), a scope not allowed (`scope: "..." is not allowed
//! for client "..."`). For a signed body, a refusal of either kind also names the kid of the
//! client's key the signature does verify with, when there is one.
//!
//! # Example
//! ```
//! use ibkr_oauth_sandbox::{RegisteredClient, Sandbox};
//! use jsonwebtoken::{Algorithm, EncodingKey, Header};
//! # fn pem_body(pem: &str) -> Vec<u8> {
//! #     use base64::Engine as _;
//! #     let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
//! #     base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
//! # }
//! # const PUBLIC_KEY: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ed25519_public.pem"));
//! # const PRIVATE_KEY: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ed25519_private.pem"));
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // PUBLIC_KEY and PRIVATE_KEY: an Ed25519 test key pair, PEM (tests/fixtures).
//! // Register a client and its public key (PEM SubjectPublicKeyInfo), start on a free port.
//! let sandbox = Sandbox::builder()
//!     .client(RegisteredClient::new("my-client").key("main", PUBLIC_KEY))
//!     .start()
//!     .await?;
//!
//! // Sign an assertion as an IBKR client does (here Ed25519, with a test key).
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let mut header = Header::new(Algorithm::EdDSA);
//! header.kid = Some("main".into());
//! let claims = serde_json::json!({
//!     "iss": "my-client", "sub": "my-client", "aud": "/token",
//!     "iat": now - 10, "exp": now + 20, "jti": "7f3c0a52",
//! });
//! let assertion = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&pem_body(PRIVATE_KEY)))?;
//!
//! let form = [
//!     ("grant_type", "client_credentials"),
//!     ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
//!     ("client_assertion", assertion.as_str()),
//!     ("scope", "sso-sessions.write"),
//! ];
//! let http = reqwest::Client::new();
//! let token: serde_json::Value = http.post(sandbox.token_url()).form(&form).send().await?.json().await?;
//! assert_eq!(token["token_type"], "Bearer");
//! assert_eq!(token["expires_in"], 86399);
//!
//! // The same assertion again is a replay: a 400 problem that says so.
//! let refused = http.post(sandbox.token_url()).form(&form).send().await?;
//! assert_eq!(refused.status(), 400);
//! let problem: serde_json::Value = refused.json().await?;
//! assert_eq!(problem["detail"], "client_assertion: jti \"7f3c0a52\" was already used (replay)");
//!
//! assert_eq!(sandbox.request_count(), 2);
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Responses
//! | when | status | content type | body |
//! |---|---|---|---|
//! | accepted | 200 | `application/json` | `TokenResponse`: `access_token`, `token_type` `Bearer`, `scope` (when any is granted), `expires_in` |
//! | refused | 400 | `application/problem+json` | `{"type":"/simple","title":"Bad Request","status":400,"detail":...}` |
//! | [`Fault::ServerError`], or a fault of the sandbox | 500 | `application/problem+json` | title `Internal Server Error` |
//! | [`Fault::TooManyRequests`] | 429 + `Retry-After` | `application/problem+json` | title `Too Many Requests` (not in `openapi.yaml`) |
//! | echo: no bearer token / a bad one | 401 + `WWW-Authenticate: Bearer realm=..., error="invalid_token"` (no `error` when none was sent) | `application/problem+json` | title `Unauthorized` |
//! | echo: `Authorization` given twice | 400 + `error="invalid_request"` | `application/problem+json` | |
//! | echo: scope missing | 403 + `error="insufficient_scope", scope="echo.read"` | `application/problem+json` | title `Forbidden` |
//! | echo/signed-jwt: not `application/jwt` | 415 | `application/problem+json` | not in IBKR's document |
//! | echo/signed-jwt: bad signed body | 400 | `application/problem+json` | `detail` starts `signed body:`; not in IBKR's document |
//! | echo accepted | 200 | `application/json` | `EchoResponse`: `requestMethod`, `securityPolicy`, `queryParameters` |
//! | sso-sessions accepted | 200 | `application/json` | `{"active":true,"access_token":...,"token_type":"Bearer"}` |
//! | a `/v1/api` call without a live SSO session | 401 + `WWW-Authenticate` | `application/problem+json` | `detail` says why (expired, logged out, IP changed, decayed) |
//! | `/iserver` without the brokerage session | 400 | `application/json` | `{"error":"Bad Request: no bridge","statusCode":400}` |
//! | [pacing](SandboxBuilder::pacing) on: a username past a limit, or in its penalty window | 429 + `Retry-After` | `application/json` | `{"error":"Too Many Requests","statusCode":429}` |
//! | another path / method | 404 / 405 (+ `Allow`) | `application/problem+json` | outside the operations |
//! | a request hyper refuses before the sandbox sees it: headers over its size limit, a malformed request line, header or `Content-Length` | 431 / 400 | none | empty |
//!
//! Every response the sandbox makes carries `Date` from the sandbox's clock,
//! `Cache-Control: no-store` and [`x-request-id`](REQUEST_ID_HEADER), the id of the request in
//! the log and on its trace line. The refusals hyper makes itself (the last row) carry neither
//! (their `Date` is hyper's, from the system clock), close the connection, and are not counted
//! or logged.

#![deny(missing_docs)]

mod algorithm;
mod clock;
mod config;
mod crypto;
mod error;
mod fault;
mod key;
mod log;
mod pacing;
mod protocol;
mod response;
mod server;
mod session;
mod tls;
mod token;
mod trace;
mod verify;

pub use algorithm::Algorithm;
pub use config::{
    DEFAULT_AUDIENCE, DEFAULT_EXPIRES_IN, DEFAULT_IAT_TOLERANCE, DEFAULT_MAX_ASSERTION_LIFETIME,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_LOG_CAPACITY, RegisteredClient, Sandbox,
    SandboxBuilder,
};
pub use error::Error;
pub use fault::Fault;
pub use log::{Endpoint, Outcome, RecordedForm, RecordedRequest};
pub use pacing::{DEFAULT_PENALTY, PacingCounts, SandboxPacing};
pub use protocol::{
    CLIENT_ASSERTION_TYPE, ECHO_HTTPS_PATH, ECHO_READ_SCOPE, ECHO_SIGNED_JWT_PATH,
    ECHO_WRITE_SCOPE, FORM_CONTENT_TYPE, GRANT_TYPE, JWT_CONTENT_TYPE, REQUEST_ID_HEADER,
    SCOPE_LENGTH, TOKEN_PATH, fields,
};
pub use response::PROBLEM_CONTENT_TYPE;
pub use server::RunningSandbox;
pub use session::{
    AUTH_STATUS_PATH, DEFAULT_SESSION_IDLE_TIMEOUT, DEFAULT_SESSION_LIFETIME,
    ISERVER_ACCOUNTS_PATH, LOGOUT_PATH, PORTFOLIO_ACCOUNTS_PATH, SSO_SESSIONS_PATH,
    SSO_SESSIONS_SCOPE, SSO_VALIDATE_PATH, SSODH_INIT_PATH, SessionFault, TICKLE_PATH,
};
pub use token::{ACCESS_TOKEN_ISSUER, AccessTokenClaims};
