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
//! # Tracing
//! An `info` span `ibkr_oauth.refresh` per fetch (fields `reason`: `cold`, `expired`, `ahead`,
//! `invalidated` or `background`; `attempts`), inside it a `debug` span `ibkr_oauth.fetch` per
//! attempt (fields `attempt`; `status`, the HTTP status of a failed attempt; `expires_in`, the
//! granted lifetime in seconds; `skew`, the clock offset measured from the answer's `Date`, in
//! milliseconds) and a `debug` span `ibkr_oauth.retry` per wait (fields `attempt` (the next
//! one), `status`, `delay_ms`, `retry_after`). A failed fetch is a `warn` event, a retry an
//! `info` one, a clock offset past the threshold a `warn` one. No secret is ever recorded.

//!
//! # Layout
//! `mod.rs` the public API · `state` what the provider does with a token (hit path, refresh
//! ahead, settling a fetch, invalidation) · `flight` single flight with cool-down (knows
//! nothing of tokens) · `retry` the retry policy and the attempt loop · `skew` the server's
//! clock offset · `cache` the cached entry and its deadlines · `fetch` the [`Fetch`] trait and
//! the real fetch · `refresher` the background task · `builder` the settings.

mod builder;
mod cache;
mod fetch;
mod flight;
mod refresher;
mod retry;
mod skew;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hardening;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use self::builder::Settings;
use self::cache::Cached;
use self::flight::Flights;
use self::skew::SkewTracker;
use crate::assertion::AssertionSigner;
use crate::client::TokenClient;
use crate::clock::Clock;
use crate::error::Error;
use crate::token::Token;

pub use self::builder::{DEFAULT_MAX_CLOCK_OFFSET, TokenProviderBuilder};
pub use self::fetch::{ClientFetch, Fetch, FetchContext};
pub use self::refresher::Refresher;
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

/// What every waiter of one fetch gets: the token, or the same error (cheap to clone).
type Outcome = Result<Arc<Token>, Error>;

/// A cached, always-fresh access token for any number of tasks.
///
/// Cheap to clone (one `Arc`); every clone shares the cache. See the [module docs](self) for
/// the behaviour and an example.
///
/// Every caller waiting on the same fetch gets a clone of the same [`Error`] (its parts are
/// shared), which works with `?` in a function returning `Result<_, ibkr_oauth::Error>`.
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    /// The hit path reads this and nothing else shared.
    current: ArcSwapOption<Cached>,
    /// Everything that changes `current` or starts a fetch holds this (never across an await).
    flights: Mutex<Flights<Outcome>>,
    fetch: Box<dyn Fetch>,
    clock: Arc<dyn Clock>,
    skew: SkewTracker,
    settings: Settings,
    /// Set once "no runtime to refresh ahead" was logged: said once, not once per call.
    warned_no_runtime: AtomicBool,
}

impl TokenProvider {
    /// Starts a provider that fetches tokens from IBKR with `client`, signing a fresh
    /// assertion with `signer` (a [`Signer`](crate::Signer), or any [`AssertionSigner`]) for
    /// every attempt.
    pub fn builder(client: TokenClient, signer: impl AssertionSigner) -> TokenProviderBuilder {
        TokenProviderBuilder::new(client, signer)
    }

    /// Starts a provider in front of any source of tokens: its cache, single flight, refresh
    /// ahead and retries run around `fetch` (a shared cache, a test fake...). Scopes belong to
    /// the fetch: [`TokenProviderBuilder::scope`] is refused for such a provider.
    pub fn with_fetch(fetch: impl Fetch) -> TokenProviderBuilder {
        TokenProviderBuilder::with_fetch(Box::new(fetch))
    }

    /// A provider around any fetch (the real one, or a test fake).
    pub(crate) fn from_fetch(
        fetch: Box<dyn Fetch>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwapOption::empty(),
                flights: Mutex::new(Flights::default()),
                fetch,
                clock,
                skew: SkewTracker::new(settings.skew_threshold, settings.max_clock_offset),
                settings,
                warned_no_runtime: AtomicBool::new(false),
            }),
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
        match self.inner.cached_token() {
            Some(token) => Ok(token),
            None => self.inner.wait_for_token().await,
        }
    }

    /// The cached token while it is valid, without waiting (for the blocking provider).
    #[cfg(feature = "blocking")]
    pub(crate) fn cached(&self) -> Option<Arc<Token>> {
        self.inner.cached_token()
    }

    /// Reports that the API rejected `token` (a 401): the provider drops it and fetches a new
    /// one, once however many tasks report the same token. A report about any other token (an
    /// older one, already replaced) is ignored. Returns whether this report dropped the token.
    ///
    /// The new fetch starts at once when called inside a tokio runtime, else with the next
    /// [`access_token`](Self::access_token).
    pub fn invalidate(&self, token: &Token) -> bool {
        self.inner.invalidate(token)
    }

    /// The offset of the token server's clock from the local clock, as last measured from an
    /// answer's `Date` header (`None` before the first answer that had one).
    pub fn clock_offset(&self) -> Option<ClockOffset> {
        self.inner.skew.measured()
    }

    /// Starts a background task that keeps the token fresh with no caller: it fetches at once
    /// if no token is cached, and refreshes at the start of each refresh margin (waiting out the
    /// cool-downs after failures). The task stops when the returned [`Refresher`] is dropped,
    /// or when every clone of the provider is.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] when called outside a tokio runtime.
    pub fn spawn_refresher(&self) -> Result<Refresher, Error> {
        Refresher::spawn(&self.inner)
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.inner.current.load();
        let now = Instant::now();
        f.debug_struct("TokenProvider")
            .field(
                "token_valid_for",
                &cached
                    .as_deref()
                    .map(|c| c.expires_at.saturating_duration_since(now)),
            )
            .field("clock_offset", &self.clock_offset())
            .field("settings", &self.inner.settings)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}
