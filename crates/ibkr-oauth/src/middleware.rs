//! [`BearerAuth`]: a reqwest-middleware middleware that puts `Authorization: Bearer ...` on
//! requests to the IBKR API from any [`TokenSource`], and recovers once from a 401.
//!
//! ```no_run
//! # async fn run(provider: ibkr_oauth::provider::TokenProvider) -> Result<(), Box<dyn std::error::Error>> {
//! use ibkr_oauth::middleware::BearerAuth;
//!
//! let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(BearerAuth::new(provider, ibkr_oauth::IBKR_PRODUCTION)?)
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
use std::future::Future;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use url::Url;

use crate::client::is_loopback;
use crate::error::ClientSetting;
use crate::error::ConfigError;
use crate::source::TokenSource;
use crate::token::Token;

#[cfg(feature = "provider")]
mod session; // SessionAuth: the SSO token on /v1/api calls
#[cfg(feature = "provider")]
pub use session::{SESSION_API_PREFIX, SessionAuth};

/// Attaches the current token to every request for the configured API origin.
///
/// - **Only to the API's origin** (scheme, host and port of the base URL given to
///   [`new`](Self::new)): a request to any other host, an absolute URL elsewhere, or plain
///   http (unless the API is on a loopback host) goes out without the token. A request for an
///   IBKR API path (`/v1/api/`, `/gw/api/`, `/oauth2/`) at another origin is not sent at all:
///   it fails with [`ConfigError::OriginMismatch`] naming both origins (a sandbox or QA base
///   URL given on one side only), where it would otherwise come back `401`. Build the client
///   without redirects, or keep reqwest's default policy, which drops `Authorization` when a
///   redirect leaves the origin.
/// - **401 recovery**: on a 401 from the API's origin the token is reported to the source
///   ([`TokenSource::invalidate`]) and the request is sent once more with a fresh token, if its
///   body can be cloned. A streamed body cannot be: the caller gets the 401 (the next request
///   carries the new token). Never more than once: a second 401 goes to the caller. A 401 from
///   another origin, reached through a redirect, leaves the token alone.
#[derive(Clone)]
pub struct BearerAuth {
    source: Arc<dyn TokenSource>,
    origin: url::Origin,
}

impl BearerAuth {
    /// A middleware that takes tokens from `source` for the API at `api_base_url` (e.g.
    /// [`IBKR_PRODUCTION`](crate::IBKR_PRODUCTION)).
    ///
    /// # Errors
    /// [`ConfigError::Client`] when `api_base_url` is not a URL, or is plain http to a host
    /// that is not loopback (the token would cross the network in clear).
    pub fn new(
        source: impl TokenSource + 'static,
        api_base_url: &str,
    ) -> Result<Self, ConfigError> {
        Self::from_arc(Arc::new(source), api_base_url)
    }

    /// As [`new`](Self::new), for a source already shared.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_arc(source: Arc<dyn TokenSource>, api_base_url: &str) -> Result<Self, ConfigError> {
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

    /// Whether the response came from another origin (a redirect was followed). A response
    /// rebuilt by another middleware without its URL carries reqwest's placeholder: then the
    /// request's own origin stands.
    fn answered_elsewhere(&self, response: &Response) -> bool {
        answered_elsewhere(response, &self.origin)
    }

    /// Whether a request to `url` gets the token.
    fn applies_to(&self, url: &Url) -> bool {
        url.origin() == self.origin && is_safe(url)
    }

    /// The error for a request to an IBKR API path at another origin: it would go out without
    /// the token and come back `401 authorization: missing`, a misconfiguration (a sandbox or QA
    /// base URL on one side only). A request to any other path elsewhere is the caller's own
    /// business and goes out untouched.
    fn mismatch(&self, url: &Url) -> Option<ConfigError> {
        let path = url.path();
        let api_path = API_PATHS.iter().any(|prefix| path.starts_with(prefix));
        (api_path && url.origin() != self.origin).then(|| ConfigError::OriginMismatch {
            request_origin: url.origin().ascii_serialization(),
            api_origin: self.origin.ascii_serialization(),
        })
    }
}

/// The host reqwest gives a response built from an `http::Response` without a URL.
const NO_URL_HOST: &str = "no.url.provided.local";

/// The path prefixes of IBKR's Web API and token endpoint.
const API_PATHS: [&str; 3] = ["/v1/api/", "/gw/api/", "/oauth2/"];

/// https, or http to a loopback host.
fn is_safe(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host().is_some_and(|host| is_loopback(&host)),
        _ => false,
    }
}

fn authorize(request: &mut Request, token: &Token) {
    request
        .headers_mut()
        .insert(AUTHORIZATION, token.authorization_header());
}

#[async_trait::async_trait]
impl Middleware for BearerAuth {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.applies_to(request.url()) {
            if let Some(mismatch) = self.mismatch(request.url()) {
                return Err(reqwest_middleware::Error::middleware(crate::Error::from(
                    mismatch,
                )));
            }
            // Not the API: whatever the caller set stays, but never our token.
            tracing::debug!(
                origin = %request.url().origin().ascii_serialization(),
                "a request to another origin: sent without the token"
            );
            return next.run(request, extensions).await;
        }
        let token = self
            .source
            .access_token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let again = request.try_clone();
        authorize(&mut request, &token);
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        if self.answered_elsewhere(&response) {
            // A redirect took the request elsewhere (without the token): that origin's 401
            // says nothing of the API token. The caller gets it as it is.
            tracing::debug!("a 401 from another origin after a redirect; the token is kept");
            return Ok(response);
        }
        self.source.invalidate(&token).await;
        let once = Once {
            refused: "the API refused the token (401)",
            cannot_resend: "the body cannot be resent",
            no_fresh: "no new one could be had",
            resending: "sending the request once more with a new one",
        };
        once.resend(
            response,
            again,
            self.source.access_token(),
            |request, fresh| authorize(request, fresh),
            next,
            extensions,
        )
        .await
    }
}

/// One refusal answered by sending the request once more with a fresh credential: the one
/// "retry once" of both modes (BearerAuth's 401, SessionAuth's 401 and `no bridge`). What it
/// logs says which refusal it was.
pub(crate) struct Once {
    /// The refusal (`the API refused the token (401)`).
    pub(crate) refused: &'static str,
    /// Why it cannot be resent when the request could not be cloned (a streamed body).
    pub(crate) cannot_resend: &'static str,
    /// What failed when no fresh credential could be had.
    pub(crate) no_fresh: &'static str,
    /// What happens when it is resent.
    pub(crate) resending: &'static str,
}

impl Once {
    /// Resends `again` (the request's clone, taken before it went out) with the credential
    /// `fresh` yields; the caller gets `response` as it is when the request cannot be resent
    /// or no fresh credential can be had. `fresh` is not awaited (nothing is done) when the
    /// request cannot be resent.
    pub(crate) async fn resend<C>(
        self,
        response: Response,
        again: Option<Request>,
        fresh: impl Future<Output = Result<C, crate::Error>>,
        authorize: impl FnOnce(&mut Request, &C),
        next: Next<'_>,
        extensions: &mut Extensions,
    ) -> reqwest_middleware::Result<Response> {
        let Self {
            refused,
            cannot_resend,
            no_fresh,
            resending,
        } = self;
        let Some(mut again) = again else {
            tracing::debug!("{refused}; {cannot_resend}");
            return Ok(response);
        };
        let fresh = match fresh.await {
            Ok(fresh) => fresh,
            // No fresh credential: the caller gets the refusal it already has.
            Err(error) => {
                tracing::warn!(error = %error, "{refused} and {no_fresh}");
                return Ok(response);
            }
        };
        tracing::info!("{refused}; {resending}");
        drop(response);
        authorize(&mut again, &fresh);
        next.run(again, extensions).await
    }
}

/// Whether `response` came from another origin than `origin` (a redirect was followed): its
/// 401 or 400 says nothing of the token or session given to `origin`. A response without a URL
/// (rebuilt by an inner middleware) counts as the request's own origin. Shared by both modes.
fn answered_elsewhere(response: &Response, origin: &url::Origin) -> bool {
    let url = response.url();
    url.host_str() != Some(NO_URL_HOST) && url.origin() != *origin
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("source", &self.source)
            .field("origin", &self.origin.ascii_serialization())
            .finish()
    }
}
