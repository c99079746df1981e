//! The token client: where requests go (URL policy), how long they may take, and the HTTP
//! settings no caller can switch off by accident (no redirects, https except loopback).
//! (Just over 400 lines: the URL policy's tests stay beside the policy they pin.)

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::ClientSetting;
use crate::error::{ConfigError, Error};
use crate::request::TokenRequest;
use crate::token::Token;
use crate::transport::Endpoint;

/// IBKR's production server, the default base URL.
pub const IBKR_PRODUCTION: &str = "https://api.ibkr.com";
/// IBKR's QA server (named "Sandbox" in IBKR's OpenAPI document): IBKR's test environment,
/// which needs QA credentials from IBKR. Not this project's local sandbox
/// (`ibkr-oauth-sandbox`, or `ibkr-oauth sandbox`), which runs on loopback.
pub const IBKR_QA: &str = "https://qa.interactivebrokers.com";
pub use crate::transport::TOKEN_PATH;
/// The default time allowed to establish the connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time allowed for the whole exchange, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on the response body: 64 KiB (IBKR's token responses are about 1 KiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The default `User-Agent`: this crate's name and version.
pub const DEFAULT_USER_AGENT: &str =
    concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// Asks IBKR's token endpoint for access tokens.
///
/// Cheap to clone (the clones share one connection pool), `Send + Sync`. Built with
/// [`TokenClient::builder`]; [`TokenClient::new`] takes every default.
///
/// Its HTTP policy holds whatever the builder is given: the token POST never follows a
/// redirect (a 307 would resend the assertion to another host; it surfaces as
/// [`Error::UnexpectedResponse`]), plain `http` is refused except to loopback hosts, and both
/// timeouts are always on.
///
/// ```no_run
/// use ibkr_oauth::{ClientAssertion, TokenClient, TokenRequest};
/// use secrecy::ExposeSecret;
///
/// # async fn run() -> Result<(), ibkr_oauth::Error> {
/// let client = TokenClient::new()?; // https://api.ibkr.com
/// let request = TokenRequest::builder()
///     .assertion(ClientAssertion::new("eyJ...signed JWS..."))
///     .scope("sso-sessions.write")
///     .build()?;
/// let token = client.request_token(&request).await?;
/// let header = format!("Bearer {}", token.access_token().expose_secret());
/// # let _ = header;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenClient {
    /// The exchange itself: the client is the validated settings' shell around it.
    endpoint: Arc<Endpoint>,
}

impl TokenClient {
    /// A builder with the defaults (production server, 10 s connect and 30 s total timeouts,
    /// 64 KiB response cap, the system clock).
    pub fn builder() -> TokenClientBuilder {
        TokenClientBuilder::default()
    }

    /// A client with every default, talking to [`IBKR_PRODUCTION`].
    ///
    /// # Errors
    /// [`ConfigError::Client`] if the HTTP client cannot be built (TLS setup).
    pub fn new() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// The base URL requests go to (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.endpoint.base_url
    }

    /// The full URL of the token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.endpoint.base_url)
    }

    /// Sends one token request and returns the token, or the error that says what went wrong.
    ///
    /// One attempt, no retry: callers that retry ask [`Error::is_retryable`] and
    /// [`Error::retry_after`].
    ///
    /// # Errors
    /// [`Error::Problem`], [`Error::OAuth`], [`Error::UnexpectedResponse`],
    /// [`Error::InvalidResponse`], [`Error::ResponseTooLarge`] for responses;
    /// [`Error::Timeout`], [`Error::Connect`], [`Error::Transport`] when no response arrived.
    pub async fn request_token(&self, request: &TokenRequest) -> Result<Token, Error> {
        self.endpoint.request_token(request, None).await
    }

    /// One attempt with the assertion stamped at `assertion_time` (the provider's clock,
    /// corrected by the server's offset) instead of the signer's own clock.
    #[cfg(feature = "provider")]
    pub(crate) async fn request_token_at(
        &self,
        request: &TokenRequest,
        assertion_time: std::time::SystemTime,
    ) -> Result<Token, Error> {
        self.endpoint
            .request_token(request, Some(assertion_time))
            .await
    }
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("base_url", &self.endpoint.base_url)
            .field("connect_timeout", &self.endpoint.connect_timeout)
            .field("timeout", &self.endpoint.timeout)
            .field("max_response_bytes", &self.endpoint.max_response_bytes)
            .field("user_agent", &self.endpoint.user_agent)
            .field("clock", &self.endpoint.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenClient`]; [`build`](Self::build) validates everything before any network
/// I/O.
///
/// ```
/// use std::time::Duration;
/// use ibkr_oauth::{TokenClient, IBKR_QA};
///
/// let client = TokenClient::builder()
///     .base_url(IBKR_QA)
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(client.token_url(), "https://qa.interactivebrokers.com/oauth2/api/v1/token");
///
/// // Plain http is refused, except to loopback hosts.
/// let refused = TokenClient::builder().base_url("http://api.ibkr.com").build();
/// assert!(matches!(refused, Err(ibkr_oauth::ConfigError::Client(_))));
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct TokenClientBuilder {
    base_url: String,
    connect_timeout: Duration,
    timeout: Duration,
    max_response_bytes: usize,
    user_agent: String,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::ClientBuilder>,
}

impl Default for TokenClientBuilder {
    fn default() -> Self {
        Self {
            base_url: IBKR_PRODUCTION.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            clock: Arc::new(SystemClock),
            http: None,
        }
    }
}

impl TokenClientBuilder {
    /// The server to ask (default [`IBKR_PRODUCTION`]); the token path is appended. Must be
    /// `https`, or `http` to a loopback host (`127.0.0.0/8`, `::1`, `localhost`) for local
    /// test servers; no user info, query or fragment.
    pub fn base_url(mut self, base_url: impl AsRef<str>) -> Self {
        self.base_url = base_url.as_ref().to_owned();
        self
    }

    /// The time allowed to establish the connection (default 10 s; zero is refused).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The time allowed for the whole exchange, reading the body included (default 30 s;
    /// zero is refused).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response body accepted, in bytes (default 64 KiB; zero is refused). A
    /// larger body is refused as [`Error::ResponseTooLarge`] without being read whole.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The `User-Agent` header (default [`DEFAULT_USER_AGENT`]).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The clock that stamps when responses arrive (and so when tokens expire). Default:
    /// [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Your own reqwest settings (proxy, root certificates, local address, HTTP/2...).
    ///
    /// A `reqwest::ClientBuilder`, not a built `reqwest::Client`, on purpose: reqwest has no
    /// per-request redirect switch, so a ready client that follows redirects would resend the
    /// assertion wherever a 307 points. [`build`](Self::build) sets on this builder, over
    /// whatever it holds: no redirects, this builder's connect and total timeouts, and
    /// https-only when the base URL is https.
    pub fn http_client_builder(mut self, builder: reqwest::ClientBuilder) -> Self {
        self.http = Some(builder);
        self
    }

    /// Validates the settings and builds the client.
    ///
    /// # Errors
    /// [`ConfigError::Client`] for an invalid base URL (not a URL, a scheme other than
    /// https, plain http to a non-loopback host, user info, query or fragment), a zero
    /// timeout or cap, a user agent that is not a valid header value, or an HTTP client
    /// reqwest cannot build.
    pub fn build(self) -> Result<TokenClient, ConfigError> {
        let (base_url, https) = validate_base_url(&self.base_url)?;
        if self.connect_timeout.is_zero() || self.timeout.is_zero() {
            return Err(ConfigError::Client(ClientSetting::ZeroTimeout));
        }
        if self.max_response_bytes == 0 {
            return Err(ConfigError::Client(ClientSetting::ZeroResponseCap));
        }
        if http::HeaderValue::from_str(&self.user_agent).is_err() {
            return Err(ConfigError::Client(ClientSetting::UserAgent));
        }
        let http = locked_http_client(
            self.http.unwrap_or_default(),
            https,
            self.connect_timeout,
            self.timeout,
        )?;
        Ok(TokenClient {
            endpoint: Arc::new(Endpoint {
                base_url,
                http,
                user_agent: self.user_agent,
                max_response_bytes: self.max_response_bytes,
                clock: self.clock,
                connect_timeout: self.connect_timeout,
                timeout: self.timeout,
            }),
        })
    }
}

impl fmt::Debug for TokenClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClientBuilder")
            .field("base_url", &self.base_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("user_agent", &self.user_agent)
            .field("clock", &self.clock)
            // The caller's reqwest settings may hold proxy credentials: not printed.
            .field("http_client_builder", &self.http.as_ref().map(|_| "[set]"))
            .finish()
    }
}

/// Checks the base URL policy; returns it without a trailing slash, and whether it is https.
/// `builder` with the policy no caller can switch off: no redirects (a 307 would resend a
/// credential elsewhere), both timeouts, https only for an https base URL, and no proxy for
/// plain http (allowed only to loopback: a proxy from the environment would carry the
/// credential, unencrypted, elsewhere). The token client and the API client both use it.
pub(crate) fn locked_http_client(
    builder: reqwest::ClientBuilder,
    https: bool,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<reqwest::Client, ConfigError> {
    let mut http = builder
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .https_only(https);
    if !https {
        http = http.no_proxy();
    }
    http.build().map_err(|e| {
        ConfigError::Client(ClientSetting::HttpClient {
            reason: e.to_string(),
        })
    })
}

/// Checks a base URL against the policy (https, or http to loopback; no user info, query or
/// fragment) and returns it without a trailing slash, and whether it is https.
pub(crate) fn validate_base_url(raw: &str) -> Result<(String, bool), ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| ConfigError::Client(ClientSetting::BaseUrlNotUrl { reason: e }))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::Client(ClientSetting::BaseUrlUserInfo));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Client(ClientSetting::BaseUrlQueryOrFragment));
    }
    let Some(host) = url.host() else {
        return Err(ConfigError::Client(ClientSetting::BaseUrlNoHost));
    };
    // The whole token URL given as the base: caught here, not by a 404 from the server.
    if let Some(server) = url.path().trim_end_matches('/').strip_suffix(TOKEN_PATH) {
        let mut base = url.clone();
        base.set_path(server);
        return Err(ConfigError::Client(ClientSetting::BaseUrlIsTokenUrl {
            path: TOKEN_PATH,
            server: base.as_str().trim_end_matches('/').to_owned(),
        }));
    }
    let https = match url.scheme() {
        "https" => true,
        "http" if is_loopback(&host) => false,
        "http" => {
            return Err(ConfigError::Client(ClientSetting::PlainHttp {
                host: host.to_string(),
            }));
        }
        other => {
            return Err(ConfigError::Client(ClientSetting::UnsupportedScheme {
                scheme: other.to_owned(),
            }));
        }
    };
    Ok((url.as_str().trim_end_matches('/').to_owned(), https))
}

pub(crate) fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

#[cfg(test)]
mod tests;
