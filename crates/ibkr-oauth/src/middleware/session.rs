//! [`SessionAuth`]: the bearer middleware's session mode. `/v1/api` calls to the API's origin
//! carry the SSO token of a [`SessionSource`] (a [`Session`](crate::session::Session)), and
//! recover once: a `401` opens a new SSO session and the request goes again; a `400 no
//! bridge` opens the brokerage session and the request goes again.
//!
//! ```no_run
//! # async fn run(session: ibkr_oauth::session::Session) -> Result<(), Box<dyn std::error::Error>> {
//! use ibkr_oauth::middleware::SessionAuth;
//!
//! let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(SessionAuth::new(session, ibkr_oauth::IBKR_PRODUCTION)?)
//!     .build();
//! let accounts = api
//!     .get("https://api.ibkr.com/v1/api/portfolio/accounts")
//!     .send()
//!     .await?;
//! # let _ = accounts;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::AUTHORIZATION;
use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use url::Url;

use super::{Once, answered_elsewhere, is_safe};
use crate::error::ClientSetting;
use crate::error::ConfigError;
use crate::session::{SessionSource, SsoToken};

/// The path prefix of IBKR's session-authorised endpoints.
pub const SESSION_API_PREFIX: &str = "/v1/api";
/// The largest `400` body read to look for `no bridge`; a larger one is passed on unread.
const MAX_BAD_REQUEST_BODY: usize = 16 * 1024;

/// The bearer middleware's session mode: attaches the SSO token of a [`SessionSource`] (a
/// [`Session`](crate::session::Session)) to `/v1/api` requests for the configured API origin.
///
/// ```no_run
/// # async fn run(session: ibkr_oauth::session::Session) -> Result<(), Box<dyn std::error::Error>> {
/// use ibkr_oauth::middleware::SessionAuth;
///
/// let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(SessionAuth::new(session, ibkr_oauth::IBKR_PRODUCTION)?)
///     .build();
/// let accounts = api.get("https://api.ibkr.com/v1/api/portfolio/accounts").send().await?;
/// # let _ = accounts;
/// # Ok(())
/// # }
/// ```
///
/// - **Only `/v1/api` on the API's origin** (scheme, host, port of the base URL; https, or
///   http to loopback): any other request goes out untouched, with whatever it carried.
/// - **401**: the token is reported ([`SessionSource::invalidate`]: a new SSO session, single
///   flight) and the request sent once more with the new token, if its body can be cloned.
/// - **400 `no bridge`**: the brokerage session is opened
///   ([`SessionSource::open_brokerage`]) and the request sent once more. Never more than one
///   retry; a second failure goes to the caller as it came.
#[derive(Clone)]
pub struct SessionAuth {
    source: Arc<dyn SessionSource>,
    origin: url::Origin,
}

impl SessionAuth {
    /// A middleware that takes SSO tokens from `source` for the API at `api_base_url`.
    ///
    /// # Errors
    /// [`ConfigError::Client`] when `api_base_url` is not a URL, or is plain http to a host
    /// that is not loopback.
    pub fn new(
        source: impl SessionSource + 'static,
        api_base_url: &str,
    ) -> Result<Self, ConfigError> {
        Self::from_arc(Arc::new(source), api_base_url)
    }

    /// As [`new`](Self::new), for a source already shared.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_arc(
        source: Arc<dyn SessionSource>,
        api_base_url: &str,
    ) -> Result<Self, ConfigError> {
        let url = Url::parse(api_base_url)
            .map_err(|e| ConfigError::Client(ClientSetting::ApiBaseUrlNotUrl { reason: e }))?;
        if !is_safe(&url) {
            return Err(ConfigError::Client(ClientSetting::ApiBaseUrlNotHttps));
        }
        Ok(Self {
            source,
            origin: url.origin(),
        })
    }

    /// Whether a request to `url` gets the SSO token.
    fn applies_to(&self, url: &Url) -> bool {
        let path = url.path();
        url.origin() == self.origin
            && is_safe(url)
            && (path == SESSION_API_PREFIX
                || path
                    .strip_prefix(SESSION_API_PREFIX)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

fn authorize(request: &mut Request, token: &SsoToken) {
    request
        .headers_mut()
        .insert(AUTHORIZATION, token.authorization_header());
}

/// Whether a 400 body says `no bridge` (IBKR's answer when the brokerage session is not
/// open), whatever its content type: IBKR sends it as JSON `{"error": ...}` or as text.
pub(crate) fn says_no_bridge(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("no bridge")
}

/// Reads a 400's body (at most [`MAX_BAD_REQUEST_BODY`]); `Err` gives the response back when
/// it announces more, unread.
async fn read_small(mut response: Response) -> Result<(Response, Bytes), Response> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BAD_REQUEST_BODY as u64)
    {
        return Err(response);
    }
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BAD_REQUEST_BODY => {
                body.extend_from_slice(&chunk);
            }
            // Over the cap or broken: what was read is what the caller gets.
            Ok(Some(_)) | Err(_) => break,
            Ok(None) => break,
        }
    }
    let body = body.freeze();
    let mut rebuilt = http::Response::new(body.clone());
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok((Response::from(rebuilt), body))
}

#[async_trait::async_trait]
impl Middleware for SessionAuth {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.applies_to(request.url()) {
            return next.run(request, extensions).await;
        }
        let token = self
            .source
            .sso_token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let again = request.try_clone();
        authorize(&mut request, &token);
        let response = next.clone().run(request, extensions).await?;
        if answered_elsewhere(&response, &self.origin) {
            // A redirect took the request elsewhere (without the SSO token): that origin's 401
            // or 400 says nothing of this session. The caller gets it as it is.
            return Ok(response);
        }
        match response.status() {
            StatusCode::UNAUTHORIZED => {
                self.source.invalidate(&token).await;
                let once = Once {
                    refused: "IBKR refused the SSO token (401)",
                    cannot_resend: "the body cannot be resent",
                    no_fresh: "no new session could be opened",
                    resending: "sending the request once more in a new SSO session",
                };
                let fresh = self.source.sso_token();
                once.resend(
                    response,
                    again,
                    fresh,
                    |r, t| authorize(r, t),
                    next,
                    extensions,
                )
                .await
            }
            StatusCode::BAD_REQUEST => {
                let (response, body) = match read_small(response).await {
                    Ok(read) => read,
                    Err(unread) => return Ok(unread),
                };
                if !says_no_bridge(&body) {
                    return Ok(response);
                }
                let once = Once {
                    refused: "no bridge (400)",
                    cannot_resend: "the body cannot be resent",
                    no_fresh: "the brokerage session could not be opened",
                    resending: "brokerage session opened, sending the request once more",
                };
                // Opened only if the request can be resent (the future is lazy).
                let fresh = async {
                    self.source.open_brokerage().await?;
                    self.source.sso_token().await
                };
                once.resend(
                    response,
                    again,
                    fresh,
                    |r, t| authorize(r, t),
                    next,
                    extensions,
                )
                .await
            }
            _ => Ok(response),
        }
    }
}

impl fmt::Debug for SessionAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionAuth")
            .field("source", &self.source)
            .field("origin", &self.origin.ascii_serialization())
            .finish()
    }
}

#[cfg(test)]
mod tests;
