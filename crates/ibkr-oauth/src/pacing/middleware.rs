//! [`Paced`]: a reqwest-middleware middleware that takes a turn from a [`Pacer`] before each
//! request to the API's origin leaves, and reports the 429s that still come back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use url::Url;

use super::Pacer;
use crate::error::ClientSetting;
use crate::error::ConfigError;

/// Paces the requests to one API origin. Other requests pass untouched.
///
/// Put it after (inside) [`SessionAuth`](crate::middleware::SessionAuth) so that its retries
/// are paced too:
///
/// ```no_run
/// # async fn run(session: ibkr_oauth::session::Session) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use ibkr_oauth::middleware::SessionAuth;
/// use ibkr_oauth::pacing::{Governor, Paced, PacingTable};
///
/// let governor = Arc::new(Governor::new(PacingTable::ibkr())?);
/// let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(SessionAuth::new(session, ibkr_oauth::IBKR_PRODUCTION)?)
///     .with(Paced::new(governor, ibkr_oauth::IBKR_PRODUCTION)?)
///     .build();
/// // Over IBKR's pacing the call fails with a `PacingError` inside
/// // `reqwest_middleware::Error::Middleware`, and nothing is sent.
/// let accounts = api.get("https://api.ibkr.com/v1/api/portfolio/accounts").send().await?;
/// # let _ = accounts;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Paced {
    pacer: Arc<dyn Pacer>,
    origin: url::Origin,
}

impl Paced {
    /// Paces requests to the origin of `api_base_url` with `pacer`; other requests pass.
    ///
    /// # Errors
    /// [`ConfigError::Client`] when `api_base_url` is not a URL.
    pub fn new(pacer: Arc<dyn Pacer>, api_base_url: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(api_base_url)
            .map_err(|e| ConfigError::Client(ClientSetting::ApiBaseUrlNotUrl { reason: e }))?;
        Ok(Self {
            pacer,
            origin: url.origin(),
        })
    }
}

/// `Retry-After` in seconds (IBKR's form); an HTTP date or garbage counts as absent.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[async_trait::async_trait]
impl Middleware for Paced {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if request.url().origin() != self.origin {
            return next.run(request, extensions).await;
        }
        let path = request.url().path().to_owned();
        self.pacer
            .acquire(&path)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let response = next.run(request, extensions).await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            self.pacer
                .too_many_requests(&path, retry_after(&response))
                .await;
        }
        Ok(response)
    }
}

impl fmt::Debug for Paced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paced")
            .field("pacer", &self.pacer)
            .field("origin", &self.origin.ascii_serialization())
            .finish()
    }
}

#[cfg(test)]
mod tests;
