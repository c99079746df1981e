//! [`TokenProvider`]: a cached access token that is always fresh, for any number of tasks.
//!
//! Ask for the token as often as you like, from as many tasks as you like: the provider hands
//! out the cached token without waiting on the network or taking a lock, refreshes it in the
//! background before it expires, fetches it once when many tasks need it at the same moment,
//! retries IBKR's transient failures, keeps serving the cached token while a refresh fails, and
//! stamps its assertions with the server's time when the local clock is off.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ibkr_oauth::Error> {
//! # let mut server = mockito::Server::new_async().await;
//! # let _mock = server
//! #     .mock("POST", "/oauth2/api/v1/token")
//! #     .with_header("content-type", "application/json")
//! #     .with_body(r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","token_type":"Bearer",
//! #                  "scope":"sso-sessions.write","expires_in":86399}"#)
//! #     .create_async()
//! #     .await;
//! use ibkr_oauth::provider::TokenProvider;
//! use ibkr_oauth::{PrivateKey, Signer, TokenClient};
//!
//! # let key = PrivateKey::generate(ibkr_oauth::Algorithm::EdDSA)?;
//! // let key = PrivateKey::from_pem_file("private.pem")?;
//! let signer = Signer::builder("my-client-id", "main", key).build()?;
//! let client = TokenClient::builder()
//! #   .base_url(server.url())
//!     .build()?; // https://api.ibkr.com by default
//! let provider = TokenProvider::builder(client, signer)
//!     .scope("sso-sessions.write")
//!     .build()?;
//!
//! // Optional: keep the token fresh even when nobody asks for it.
//! let _refresher = provider.spawn_refresher()?;
//!
//! // Anywhere, any number of times (the provider is a cheap clone):
//! let token = provider.access_token().await?;
//! let authorization = token.authorization_header(); // "Bearer ...", marked sensitive
//! # let _ = authorization;
//!
//! // When the API rejects the token (401), report it: the provider fetches a new one, once.
//! provider.invalidate(&token);
//! # Ok(())
//! # }
//! ```
//!
//! # How it behaves
//! - **Hit path**: an atomic load of the cached entry (no lock, no shared counter), one clock
//!   read and one reference-count bump of a per-core copy of the token.
//! - **Single flight**: when no valid token is cached, one fetch runs in a spawned task and every
//!   caller waits for its outcome: the token, or the same [`Error`] (cheap to clone). A caller
//!   that gives up (is dropped) cancels nothing.
//! - **Refresh ahead**: from [`refresh_margin`](TokenProviderBuilder::refresh_margin) before
//!   expiry (default 5 minutes, at most [`refresh_fraction`](TokenProviderBuilder::refresh_fraction)
//!   of the lifetime), the first caller starts a refresh in the background; every caller keeps
//!   getting the cached token at once.
//! - **Retries**: see [`RetryPolicy`]. **Stale on error**: a failed refresh while the token is
//!   still valid is logged (`warn`) and retried after a cool-down; callers keep the token. Once
//!   it has expired, a failed fetch is returned to its callers, and for a short cool-down
//!   ([`failure_cooldown`](TokenProviderBuilder::failure_cooldown), doubling with each
//!   consecutive failure up to 30 s) further calls get the same error without a request.
//! - **Clock skew**: each answer's `Date` header measures the server's clock against the local
//!   one ([`TokenProvider::clock_offset`]); past
//!   [`skew_threshold`](TokenProviderBuilder::skew_threshold) the next assertions are stamped
//!   with the server's time. A refusal right after the offset first crossed the threshold is
//!   attempted once more with the corrected time.
//!
//! # What the provider trusts, and why
//! - **The server's `Date`, within bounds.** A `Date` further than
//!   [`max_clock_offset`](TokenProviderBuilder::max_clock_offset) (default one hour) from the
//!   local clock is ignored with a warning: a broken or hostile `Date` (one 503 saying 1970)
//!   must never make signing impossible, and a local clock off by more than an hour is rarer
//!   than a proxy with a wrong clock.
//! - **A correction only while it works.** When an assertion stamped with the corrected time
//!   is refused, one more attempt goes out at once stamped with the plain local time (whatever
//!   the [`RetryPolicy`], `no_retries` included); if that works, the `Date` was a gateway's, not
//!   the clock that checks assertions, and that offset is not applied again.
//! - **Both clocks for expiry.** A cached token is handed out only while the monotonic
//!   deadline (tokio's clock, immune to wall-clock steps) and the wall-clock expiry both say
//!   it is valid: the monotonic clock stops while a machine sleeps or a VM is paused, so after
//!   a resume the wall clock leads to a refresh instead of an expired token.
//! - **No storms.** No two fetches start less than a second apart, whoever asks (a token
//!   without a lifetime cannot turn every call into a request), and settings that would make a
//!   fresh token due at once are refused at build time.
//!
//! # Tracing
//! An `info` span `ibkr_oauth.refresh` per fetch (fields `reason`: `cold`, `expired`, `ahead`,
//! `invalidated` or `background`; `attempts`), inside it a `debug` span `ibkr_oauth.fetch` per
//! attempt (fields `attempt`; `status`, the HTTP status of a failed attempt; `expires_in`, the
//! granted lifetime in seconds; `skew`, the clock offset measured from the answer's `Date`, in
//! milliseconds) and a `debug` span `ibkr_oauth.retry` per wait (fields `attempt` (the next
//! one), `status`, `delay_ms`, `retry_after`). A failed fetch is a `warn` event, a retry an
//! `info` one, a clock offset past the threshold a `warn` one. No secret is ever recorded.

//!
//! # Layout: one-way layers, each calling only the one below
//! ```text
//! TokenProvider (mod.rs, the public API)
//!   -> cache/     layer 3: the cached token (`entry`), the single in-flight fetch (`flight`),
//!                 the refresh-ahead driver (`refresher`); stale on error, cool-down
//!   -> retry      layer 2: `Retrying`, the RetryPolicy's attempts and waits
//!   -> skew       layer 1: `SkewCorrected`, assertions stamped with the server's time
//!   -> fetch      layer 0: a `TokenSource`'s `fetch`: `ClientFetch` (TokenClient -> transport
//!                 -> response mapping), or any other source (`TokenProvider::with_source`):
//!                 the Redis-shared source plugs in here
//! ```
//! `builder` holds the settings and assembles the stack.

mod builder;
mod cache;
mod fetch;
mod retry;
mod skew;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hardening;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::builder::Settings;
use self::cache::Cache;
use self::retry::Retrying;
use self::skew::SkewCorrected;
use crate::assertion::AssertionSigner;
use crate::client::TokenClient;
use crate::clock::Clock;
use crate::error::Error;
use crate::token::Token;

pub use self::builder::{DEFAULT_MAX_CLOCK_OFFSET, TokenProviderBuilder};
pub use self::cache::Refresher;
pub use self::fetch::ClientFetch;
pub use self::retry::RetryPolicy;
pub use self::skew::ClockOffset;

/// The default refresh margin: refresh starts this long before expiry.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// The default largest fraction of a token's lifetime used as refresh margin (for short-lived
/// tokens, whose lifetime is not much longer than [`DEFAULT_REFRESH_MARGIN`]).
pub const DEFAULT_REFRESH_FRACTION: f64 = 0.2;
/// The default clock offset above which assertions are stamped with the server's time.
pub const DEFAULT_SKEW_THRESHOLD: Duration = Duration::from_secs(5);
/// The default pause after a failed fetch (doubling per consecutive failure).
pub const DEFAULT_FAILURE_COOLDOWN: Duration = Duration::from_secs(1);

/// A cached, always-fresh access token for any number of tasks.
///
/// Cheap to clone (one `Arc`); every clone shares the cache. See the [module docs](self) for
/// the behaviour and an example.
///
/// Every caller waiting on the same fetch gets a clone of the same [`Error`] (its parts are
/// shared), which works with `?` in a function returning `Result<_, ibkr_oauth::Error>`.
#[derive(Clone)]
pub struct TokenProvider {
    cache: Arc<Cache>,
}

impl TokenProvider {
    /// Starts a provider that fetches tokens from IBKR with `client`, signing a fresh
    /// assertion with `signer` (a [`Signer`](crate::Signer), or any [`AssertionSigner`]) for
    /// every attempt.
    pub fn builder(client: TokenClient, signer: impl AssertionSigner) -> TokenProviderBuilder {
        TokenProviderBuilder::new(client, signer)
    }

    /// Starts a provider in front of any [`TokenSource`](crate::TokenSource): its cache,
    /// single flight, refresh ahead, retries and clock-skew correction run around the source's
    /// [`fetch`](crate::TokenSource::fetch) (a fleet-shared cache, a test fake...). Scopes
    /// belong to the source: [`TokenProviderBuilder::scope`] is refused for such a provider.
    pub fn with_source(source: impl crate::TokenSource + 'static) -> TokenProviderBuilder {
        TokenProviderBuilder::with_source(Box::new(source))
    }

    /// A provider around any fetch (the real one, or a test fake): the layers stacked.
    pub(crate) fn from_fetch(
        fetch: Box<dyn crate::TokenSource>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        let skewed = SkewCorrected::new(
            fetch,
            Arc::clone(&clock),
            settings.skew_threshold,
            settings.max_clock_offset,
        );
        let retrying = Retrying::new(skewed, settings.retry.clone());
        Self {
            cache: Arc::new(Cache::new(retrying, clock, settings)),
        }
    }

    /// The current access token: the cached one while it is valid (at once, without I/O or a
    /// lock), else the outcome of the one fetch that all waiting callers share.
    ///
    /// Inside the refresh margin the cached token is returned at once and the first such
    /// caller starts a refresh in the background. Dropping the returned future cancels nothing:
    /// the fetch runs in its own task and the other callers still get its outcome.
    ///
    /// # Errors
    /// The error of the failed fetch, shared by every caller that waited for it (after the
    /// retries of the [`RetryPolicy`]); during the cool-down that follows, the same error
    /// without a new request. [`Error::NoRuntime`] when called outside a tokio runtime and no
    /// valid token is cached; [`Error::FetchAborted`] if the fetch task died with its runtime.
    pub async fn access_token(&self) -> Result<Arc<Token>, Error> {
        match self.cache.cached_token() {
            Some(token) => Ok(token),
            None => self.cache.wait_for_token().await,
        }
    }

    /// The cached token while it is valid, without waiting (for the blocking provider).
    #[cfg(feature = "blocking")]
    pub(crate) fn cached(&self) -> Option<Arc<Token>> {
        self.cache.cached_token()
    }

    /// Reports that the API rejected `token` (a 401): the provider drops it and fetches a new
    /// one, once however many tasks report the same token. A report about any other token (an
    /// older one, already replaced) is ignored. Returns whether this report dropped the token.
    ///
    /// The new fetch starts at once when called inside a tokio runtime, else with the next
    /// [`access_token`](Self::access_token).
    pub fn invalidate(&self, token: &Token) -> bool {
        self.cache.invalidate(token)
    }

    /// The offset of the token server's clock from the local clock, as last measured from an
    /// answer's `Date` header (`None` before the first answer that had one).
    pub fn clock_offset(&self) -> Option<ClockOffset> {
        self.cache.below().below().measured()
    }

    /// Starts a background task that keeps the token fresh with no caller: it fetches at once
    /// if no token is cached, and refreshes at the start of each refresh margin (waiting out the
    /// cool-downs after failures). The task stops when the returned [`Refresher`] is dropped,
    /// or when every clone of the provider is.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] when called outside a tokio runtime.
    pub fn spawn_refresher(&self) -> Result<Refresher, Error> {
        Refresher::spawn(&self.cache)
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.cache, f)
    }
}

/// The provider is the usual [`TokenSource`](crate::TokenSource): what the middleware and the
/// session take.
#[async_trait::async_trait]
impl crate::source::TokenSource for TokenProvider {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        TokenProvider::access_token(self).await
    }

    async fn invalidate(&self, token: &Token) -> bool {
        TokenProvider::invalidate(self, token)
    }
}
