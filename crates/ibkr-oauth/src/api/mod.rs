//! [`ApiClient`]: IBKR Web API calls through the generated operations, authorised by
//! [`BearerAuth`]. Today: the two echo endpoints IBKR publishes
//! for checking a setup, `GET /gw/api/v1/echo/https` (scope `echo.read`) and `POST
//! /gw/api/v1/echo/signed-jwt` (scope `echo.write`, a body signed with the client's key).
//!
//! Each call goes through the generated operation and the same capture as the token request
//! (body cap, status and headers kept), then is mapped status first: a 2xx JSON body becomes
//! the generated model; anything else becomes [`Error::Api`] with the problem document, the
//! `WWW-Authenticate` challenge and the request id when the server sent them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Extensions, HeaderValue};
use ibkr_oauth_generated::apis::configuration::Configuration;
use ibkr_oauth_generated::apis::utilities_echo_api::{
    gw_api_v1_echo_https_get, gw_api_v1_echo_signed_jwt_post,
};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::assertion::Signer;
use crate::client::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT,
    IBKR_PRODUCTION, locked_http_client, validate_base_url,
};
use crate::clock::{Clock, SystemClock};
pub use crate::error::ApiError;
use crate::error::ClientSetting;
use crate::error::{ConfigError, Error};
use crate::middleware::BearerAuth;
use crate::models::{EchoResponse, SignedJwtEchoRequest};
use crate::problem::Problem;
use crate::response::{Media, RawResponse};
use crate::source::TokenSource;
use crate::transport::{Captured, capture, transport_error};

/// The path of IBKR's HTTPS echo endpoint.
pub const ECHO_HTTPS_PATH: &str = "/gw/api/v1/echo/https";
/// The path of IBKR's Signed JWT echo endpoint.
pub const ECHO_SIGNED_JWT_PATH: &str = "/gw/api/v1/echo/signed-jwt";

/// Calls IBKR Web API endpoints with tokens from a [`TokenSource`]; cheap to clone.
///
/// ```no_run
/// # async fn run(provider: ibkr_oauth::provider::TokenProvider, signer: ibkr_oauth::Signer) -> Result<(), ibkr_oauth::Error> {
/// use ibkr_oauth::api::ApiClient;
///
/// let api = ApiClient::builder(provider).build()?; // https://api.ibkr.com
/// let echo = api.echo_https().await?; // needs the echo.read scope
/// println!("{:?} over {:?}", echo.request_method, echo.security_policy);
/// let signed = api.echo_signed_jwt(&signer).await?; // needs echo.write
/// # let _ = signed;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: String,
    http: reqwest::Client,
    bearer: Arc<dyn Middleware>,
    user_agent: String,
    max_response_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl ApiClient {
    /// A builder for calls authorised by `source`.
    pub fn builder(source: impl TokenSource + 'static) -> ApiClientBuilder {
        ApiClientBuilder {
            source: Arc::new(source),
            base_url: IBKR_PRODUCTION.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `GET /gw/api/v1/echo/https`: IBKR echoes the request, proving that the token works.
    ///
    /// # Errors
    /// [`Error::Api`] for a refusal (401 with the token refused twice, 403 without the
    /// `echo.read` scope); the token source's errors; transport errors.
    pub async fn echo_https(&self) -> Result<EchoResponse, Error> {
        self.call(ECHO_HTTPS_PATH, None, |configuration, url| async move {
            gw_api_v1_echo_https_get(&configuration)
                .await
                .err()
                .map(|e| transport_error(e, url))
        })
        .await
    }

    /// `POST /gw/api/v1/echo/signed-jwt`: the body `{"iss": <client id>}` signed with
    /// `signer` ([`Signer::sign_body`]) and sent as `application/jwt`; IBKR checks the
    /// signature with the registered public key.
    ///
    /// # Errors
    /// As [`echo_https`](Self::echo_https) (scope `echo.write`); signing errors.
    pub async fn echo_signed_jwt(&self, signer: &Signer) -> Result<EchoResponse, Error> {
        let sign: Arc<dyn Middleware> = Arc::new(SignBody {
            signer: signer.clone(),
        });
        let body = SignedJwtEchoRequest {
            iss: Some(signer.client_id().to_owned()),
        };
        self.call(
            ECHO_SIGNED_JWT_PATH,
            Some(sign),
            |configuration, url| async move {
                gw_api_v1_echo_signed_jwt_post(&configuration, body)
                    .await
                    .err()
                    .map(|e| transport_error(e, url))
            },
        )
        .await
    }

    /// One call: the generated operation through bearer, capture (and body signing), mapped
    /// from what the capture recorded.
    async fn call<F, Fut>(
        &self,
        path: &'static str,
        extra: Option<Arc<dyn Middleware>>,
        operation: F,
    ) -> Result<EchoResponse, Error>
    where
        F: FnOnce(Configuration, Arc<str>) -> Fut,
        Fut: std::future::Future<Output = Option<Error>>,
    {
        let inner = &*self.inner;
        let (capture, recording) = capture(inner.max_response_bytes, Arc::clone(&inner.clock));
        let mut middleware = vec![Arc::clone(&inner.bearer), capture];
        middleware.extend(extra);
        let configuration = Configuration {
            base_path: inner.base_url.clone(),
            user_agent: Some(inner.user_agent.clone()),
            client: ClientWithMiddleware::new(inner.http.clone(), middleware),
            basic_auth: None,
            oauth_access_token: None,
            bearer_access_token: None,
            api_key: None,
        };
        let url: Arc<str> = Arc::from(format!("{}{path}", inner.base_url));
        let failure = operation(configuration, Arc::clone(&url)).await;
        match recording.take() {
            Some(Captured::Complete(raw)) => map(path, &raw),
            Some(Captured::TooLarge { limit, info }) => Err(Error::ResponseTooLarge {
                limit,
                response: Arc::new(info),
            }),
            // No response: the token source's error (through the bearer middleware), or the
            // transport's.
            None => Err(failure.unwrap_or_else(|| Error::Transport {
                url,
                source: Arc::new(NoAnswer),
            })),
        }
    }
}

/// The API call got no answer and no error said why.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the API")]
struct NoAnswer;

/// Maps an API response: status and content type first, then one parse.
fn map(path: &'static str, raw: &RawResponse) -> Result<EchoResponse, Error> {
    let info = raw.info();
    let media = crate::response::media(raw.content_type.as_deref());
    if raw.status.is_success() && media == Media::Json {
        return serde_json::from_slice::<EchoResponse>(&raw.body).map_err(|_| {
            Error::Api(Arc::new(ApiError {
                path,
                problem: None,
                challenge: None,
                reason: Some(Arc::from(
                    "the success body is not the echo response IBKR's spec gives",
                )),
                response: Arc::new(info),
            }))
        });
    }
    let problem = match media {
        Media::Problem | Media::Json if !raw.status.is_success() => {
            match serde_json::from_slice::<Value>(&raw.body) {
                Ok(Value::Object(map)) => Some(Arc::new(Problem::from_object(raw.status, map))),
                _ => None,
            }
        }
        _ => None,
    };
    let reason = if raw.status.is_success() {
        Some(Arc::from("a success without a JSON body"))
    } else {
        None
    };
    Err(Error::Api(Arc::new(ApiError {
        path,
        problem,
        challenge: raw
            .www_authenticate
            .as_deref()
            .map(|c| Arc::from(crate::sanitize(c, 200))),
        reason,
        response: Arc::new(info),
    })))
}

/// Turns the generated operation's JSON body into the signed `application/jwt` body IBKR's
/// "Signed JWT" security policy asks for (signed again on a bearer retry).
struct SignBody {
    signer: Signer,
}

#[async_trait::async_trait]
impl Middleware for SignBody {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let claims = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok());
        let Some(Value::Object(claims)) = claims else {
            return Err(reqwest_middleware::Error::middleware(Error::from(
                crate::assertion::SignError::Payload,
            )));
        };
        let jws = self
            .signer
            .sign_body(claims)
            .map_err(|e| reqwest_middleware::Error::middleware(Error::from(e)))?;
        let body = Bytes::from(jws.expose_secret().as_bytes().to_vec());
        request
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/jwt"));
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        *request.body_mut() = Some(reqwest::Body::from(body));
        next.run(request, extensions).await
    }
}

/// Configures an [`ApiClient`].
#[must_use = "a builder does nothing until build() is called"]
pub struct ApiClientBuilder {
    source: Arc<dyn TokenSource>,
    base_url: String,
    timeout: Duration,
}

impl ApiClientBuilder {
    /// The API server (default [`IBKR_PRODUCTION`]): https, or http to a loopback host; no user
    /// info, query or fragment (the token client's URL policy).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The time allowed for one call (default 30 s; connecting: 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the client (no redirects: the token stays with the API).
    ///
    /// # Errors
    /// [`ConfigError::Client`] for a base URL that is not https (or http to loopback), a zero
    /// timeout, or an HTTP client reqwest cannot build.
    pub fn build(self) -> Result<ApiClient, ConfigError> {
        // The token client's URL policy and HTTP policy, for the token's sake.
        let (base_url, https) = validate_base_url(&self.base_url)?;
        let bearer = BearerAuth::from_arc(self.source, &base_url)?;
        if self.timeout.is_zero() {
            return Err(ConfigError::Client(ClientSetting::ZeroTimeout));
        }
        let http = locked_http_client(
            reqwest::Client::builder(),
            https,
            DEFAULT_CONNECT_TIMEOUT,
            self.timeout,
        )?;
        Ok(ApiClient {
            inner: Arc::new(Inner {
                base_url,
                http,
                bearer: Arc::new(bearer),
                user_agent: DEFAULT_USER_AGENT.to_owned(),
                max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
                clock: Arc::new(SystemClock),
            }),
        })
    }
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ApiClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClientBuilder")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
