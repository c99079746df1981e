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
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut server = mockito::Server::new_async().await;
//! # let _mock = server
//! #     .mock("POST", "/oauth2/api/v1/token")
//! #     .with_header("content-type", "application/json")
//! #     .with_body(r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","token_type":"Bearer",
//! #                  "scope":"sso-sessions.write","expires_in":86399}"#)
//! #     .create_async()
//! #     .await;
//! use ibkr_oauth::provider::TokenProvider;
//! use ibkr_oauth::{ExposeSecret, PrivateKey, Signer, TokenClient};
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
//! let authorization = format!("Bearer {}", token.access_token().expose_secret());
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
//!   caller waits for its outcome: the token, or the same error as an [`Arc<Error>`]. A caller
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

mod cache;
mod fetch;
mod retry;
mod skew;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, field};

use self::cache::{Cached, Margin};
use self::fetch::{Attempt, ClientFetch, Fetch};
use self::skew::SkewTracker;
use crate::assertion::Signer;
use crate::client::TokenClient;
use crate::clock::Clock;
use crate::error::Error;
use crate::request::TokenRequest;
use crate::token::Token;

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
/// The longest pause the doubling reaches (unless the server's `Retry-After` asks for more).
const MAX_FAILURE_COOLDOWN: Duration = Duration::from_secs(30);
/// The background refresher never starts two fetches closer together than this, whatever the
/// server answers (a token without `expires_in` is already expired when it arrives).
const MIN_REFRESHER_INTERVAL: Duration = Duration::from_secs(1);

/// What every waiter of one fetch gets: the token, or the same shared error.
type Outcome = Result<Arc<Token>, Arc<Error>>;

/// A cached, always-fresh access token for any number of tasks.
///
/// Cheap to clone (one `Arc`); every clone shares the cache. See the [module docs](self) for
/// the behaviour and an example.
///
/// **Errors are shared**: every caller waiting on the same fetch gets the same error, so
/// [`access_token`](Self::access_token) returns `Arc<Error>`. Match on it with `&*err` (it
/// derefs to [`Error`]); it converts with `?` into `Box<dyn std::error::Error>` and anything
/// that takes a `std::error::Error`.
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    /// The hit path reads this and nothing else shared.
    current: ArcSwapOption<Cached>,
    /// Everything that changes `current` or starts a fetch holds this (never across an await).
    state: Mutex<State>,
    fetch: Box<dyn Fetch>,
    clock: Arc<dyn Clock>,
    skew: SkewTracker,
    settings: Settings,
}

/// The provider's settings, apart from the fetch.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) margin: Margin,
    pub(crate) retry: RetryPolicy,
    pub(crate) failure_cooldown: Duration,
    pub(crate) skew_threshold: Duration,
    pub(crate) shards: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            margin: Margin {
                max: DEFAULT_REFRESH_MARGIN,
                fraction: DEFAULT_REFRESH_FRACTION,
            },
            retry: RetryPolicy::default(),
            failure_cooldown: DEFAULT_FAILURE_COOLDOWN,
            skew_threshold: DEFAULT_SKEW_THRESHOLD,
            shards: cache::default_shards(),
        }
    }
}

#[derive(Default)]
struct State {
    flight: Option<Flight>,
    next_flight_id: u64,
    /// Consecutive failed fetches (reset by a success).
    failures: u32,
    /// After a failed fetch with no valid token: until when calls get this error at once.
    cooldown: Option<(Instant, Arc<Error>)>,
}

/// The fetch in progress: its waiters subscribe to `outcome`.
struct Flight {
    id: u64,
    outcome: watch::Receiver<Option<Outcome>>,
}

/// A flight registered under the lock, to be spawned after the lock is released (spawning on a
/// runtime that is shutting down drops the task at once, and its drop guard takes the lock).
struct PendingFlight {
    id: u64,
    reason: Reason,
    runtime: tokio::runtime::Handle,
    sender: watch::Sender<Option<Outcome>>,
}

/// Why a fetch runs (the `reason` field of the `ibkr_oauth.refresh` span).
#[derive(Debug, Clone, Copy)]
enum Reason {
    Cold,
    Expired,
    Ahead,
    Invalidated,
    Background,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Cold => "cold",
            Reason::Expired => "expired",
            Reason::Ahead => "ahead",
            Reason::Invalidated => "invalidated",
            Reason::Background => "background",
        }
    }
}

/// What a caller without a valid token does.
enum Join {
    /// Wait for this flight (already running, or just registered and to be spawned).
    Wait(watch::Receiver<Option<Outcome>>, Option<PendingFlight>),
    /// The cool-down after a failure is on: this is the answer.
    Done(Outcome),
}

impl TokenProvider {
    /// Starts a provider that fetches tokens with `client`, signing a fresh assertion with
    /// `signer` for every attempt.
    pub fn builder(client: TokenClient, signer: Signer) -> TokenProviderBuilder {
        TokenProviderBuilder {
            // The signer's clock, so that a clock pinned on the signer keeps stamping its
            // assertions when the provider signs them (shifted by the measured offset).
            clock: Arc::clone(signer.clock()),
            client,
            signer,
            scopes: Vec::new(),
            settings: Settings::default(),
        }
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
                state: Mutex::new(State::default()),
                fetch,
                clock,
                skew: SkewTracker::new(settings.skew_threshold),
                settings,
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
    pub async fn access_token(&self) -> Result<Arc<Token>, Arc<Error>> {
        match self.inner.cached_token() {
            Some(token) => Ok(token),
            None => self.inner.wait_for_token().await,
        }
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
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let provider = Arc::downgrade(&self.inner);
        let task = runtime.spawn(refresher(provider));
        Ok(Refresher { task })
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

/// Keeps the token fresh in the background while it lives; see
/// [`TokenProvider::spawn_refresher`]. Dropping it stops the task (a fetch already running
/// completes for the callers waiting on it).
#[must_use = "the background refresh stops as soon as the Refresher is dropped"]
#[derive(Debug)]
pub struct Refresher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; if some did, the state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hit path: the cached token while it is valid, starting the refresh ahead once.
    #[inline]
    fn cached_token(self: &Arc<Self>) -> Option<Arc<Token>> {
        let guard = self.current.load();
        let cached = guard.as_deref()?;
        let now = Instant::now();
        if now < cached.refresh_at {
            return Some(cached.token());
        }
        if now < cached.expires_at {
            if cached.claim_refresh() {
                self.refresh_ahead();
            }
            return Some(cached.token());
        }
        None
    }

    /// The cached token if it has not expired.
    fn valid_token(&self, now: Instant) -> Option<Arc<Token>> {
        let guard = self.current.load();
        guard
            .as_deref()
            .filter(|c| now < c.expires_at)
            .map(Cached::token)
    }

    /// The slow path: no valid token is cached. Join the running fetch or start one.
    async fn wait_for_token(self: &Arc<Self>) -> Outcome {
        let join = {
            let mut state = self.lock();
            let now = Instant::now();
            if let Some(token) = self.valid_token(now) {
                return Ok(token); // published since the hit path looked
            }
            let reason = match self.current.load().as_deref() {
                Some(_) => Reason::Expired,
                None => Reason::Cold,
            };
            self.join_or_register(&mut state, now, true, reason)
        };
        self.wait(join).await
    }

    /// Called by the caller that claimed the refresh ahead: start it unless a fetch runs.
    fn refresh_ahead(self: &Arc<Self>) {
        let join = {
            let mut state = self.lock();
            let now = Instant::now();
            let fresh = self
                .current
                .load()
                .as_deref()
                .is_some_and(|c| now < c.refresh_at);
            if fresh {
                return; // a refresh completed since the hit path looked
            }
            self.join_or_register(&mut state, now, false, Reason::Ahead)
        };
        if let Join::Wait(_, Some(pending)) = join {
            self.spawn(pending);
        }
    }

    /// Under the lock: the running flight, or a new one registered, or the cool-down's error.
    fn join_or_register(
        &self,
        state: &mut State,
        now: Instant,
        honour_cooldown: bool,
        reason: Reason,
    ) -> Join {
        if let Some(flight) = &state.flight {
            // A sender gone without an outcome means the task died with its runtime.
            if flight.outcome.has_changed().is_ok() {
                return Join::Wait(flight.outcome.clone(), None);
            }
            state.flight = None;
        }
        if honour_cooldown {
            if let Some((until, error)) = &state.cooldown {
                if now < *until {
                    return Join::Done(Err(Arc::clone(error)));
                }
            }
        }
        match self.register(state, reason) {
            Ok((receiver, pending)) => Join::Wait(receiver, Some(pending)),
            Err(error) => {
                tracing::warn!(reason = reason.as_str(), error = %error, "cannot fetch a token");
                self.release_claim();
                Join::Done(Err(Arc::new(error)))
            }
        }
    }

    /// Registers a new flight under the lock; the caller spawns it after releasing the lock.
    fn register(
        &self,
        state: &mut State,
        reason: Reason,
    ) -> Result<(watch::Receiver<Option<Outcome>>, PendingFlight), Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (sender, receiver) = watch::channel(None);
        state.next_flight_id = state.next_flight_id.wrapping_add(1);
        let id = state.next_flight_id;
        state.flight = Some(Flight {
            id,
            outcome: receiver.clone(),
        });
        Ok((
            receiver,
            PendingFlight {
                id,
                reason,
                runtime,
                sender,
            },
        ))
    }

    fn spawn(self: &Arc<Self>, pending: PendingFlight) {
        let PendingFlight {
            id,
            reason,
            runtime,
            sender,
        } = pending;
        let guard = FlightGuard {
            inner: Arc::clone(self),
            id,
            done: false,
        };
        runtime.spawn(run_flight(guard, reason, sender));
    }

    /// Spawns the flight if this caller registered it, then waits for the outcome.
    async fn wait(self: &Arc<Self>, join: Join) -> Outcome {
        let mut receiver = match join {
            Join::Done(outcome) => return outcome,
            Join::Wait(receiver, pending) => {
                if let Some(pending) = pending {
                    self.spawn(pending);
                }
                receiver
            }
        };
        let outcome = match receiver.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        };
        outcome.unwrap_or_else(|| Err(Arc::new(Error::FetchAborted)))
    }

    /// The fetch with its retries: a fresh assertion per attempt, stamped with the corrected
    /// time. Returns the token and the instant its request was sent.
    async fn fetch_with_retries(&self) -> (Result<(Token, Instant), Error>, u32) {
        let policy = &self.settings.retry;
        let started = Instant::now();
        let mut number = 0u32;
        let mut skew_retried = false;
        loop {
            number = number.saturating_add(1);
            let correction = self.skew.correction();
            let local = self.clock.now();
            let assertion_time = correction.map_or(local, |offset| offset.apply(local));
            let span = tracing::debug_span!(
                "ibkr_oauth.fetch",
                attempt = number,
                status = field::Empty,
                expires_in = field::Empty,
                skew = field::Empty,
            );
            let sent_at = Instant::now();
            let result = self
                .fetch
                .attempt(Attempt { assertion_time })
                .instrument(span.clone())
                .await;
            let server_date = match &result {
                Ok(token) => token.server_date(),
                Err(error) => error.server_date(),
            };
            if let Some(date) = server_date {
                let offset = span.in_scope(|| self.skew.record(date, self.clock.now()));
                span.record("skew", offset.as_millis());
            }
            let error = match result {
                Ok(token) => {
                    span.record("expires_in", token.expires_in().as_secs());
                    return (Ok((token, sent_at)), number);
                }
                Err(error) => error,
            };
            let status = error.status().map(|s| s.as_u16());
            if let Some(status) = status {
                span.record("status", status);
            }
            // A refusal right after the offset crossed the threshold may be the skew itself.
            let skew_suspect = !skew_retried
                && error.status().is_some_and(|s| s.is_client_error())
                && !error.is_retryable()
                && self.correction_changed(correction);
            let delay = if skew_suspect {
                skew_retried = true;
                Some(Duration::ZERO)
            } else if error.is_retryable() {
                Some(policy.delay(number, error.retry_after()))
            } else {
                None
            };
            let elapsed = started.elapsed();
            let delay = delay.filter(|delay| {
                number < policy.max_attempts && elapsed.saturating_add(*delay) <= policy.max_elapsed
            });
            let Some(delay) = delay else {
                return (Err(error), number);
            };
            let retry_span = tracing::debug_span!(
                "ibkr_oauth.retry",
                attempt = number.saturating_add(1),
                status,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                retry_after = error.retry_after().is_some(),
            );
            retry_span.in_scope(|| {
                tracing::info!(error = %error, skew_suspect, "token request failed; retrying");
            });
            tokio::time::sleep(delay).instrument(retry_span).await;
        }
    }

    /// Whether the correction measured now differs (by more than the threshold) from the one
    /// the last assertion was stamped with.
    fn correction_changed(&self, used: Option<ClockOffset>) -> bool {
        let now = self.skew.correction();
        match (used, now) {
            (None, None) => false,
            (Some(a), Some(b)) => {
                Duration::from_millis(a.as_millis().abs_diff(b.as_millis()))
                    > self.settings.skew_threshold
            }
            _ => true,
        }
    }

    /// Publishes a fetch's result: caches a token, or handles the failure (stale on error, or
    /// the cool-down). Returns what the waiters get.
    fn settle(&self, id: u64, result: Result<(Token, Instant), Error>) -> Outcome {
        let mut state = self.lock();
        if state.flight.as_ref().is_some_and(|f| f.id == id) {
            state.flight = None;
        }
        let error = match result {
            Ok((token, sent_at)) => {
                let cached =
                    Cached::new(token, sent_at, self.settings.margin, self.settings.shards);
                let token = cached.token();
                self.current.store(Some(Arc::new(cached)));
                state.failures = 0;
                state.cooldown = None;
                return Ok(token);
            }
            Err(error) => Arc::new(error),
        };
        state.failures = state.failures.saturating_add(1);
        let pause = self.cooldown(state.failures, &error);
        let now = Instant::now();
        let until = cache::later(now, pause);
        let current = self.current.load_full();
        match current {
            Some(cached) if now < cached.expires_at => {
                let valid_for = cached.expires_at.saturating_duration_since(now);
                tracing::warn!(
                    error = %error,
                    retry_in_ms = millis(pause),
                    valid_for_s = valid_for.as_secs(),
                    "refreshing the access token failed; the cached token is still valid and is \
                     handed out until the next attempt"
                );
                let token = cached.token();
                self.current.store(Some(Arc::new(cached.retry_at(until))));
                Ok(token)
            }
            _ => {
                tracing::warn!(
                    error = %error,
                    cooldown_ms = millis(pause),
                    "fetching an access token failed and no valid token is cached; calls get \
                     this error until the cool-down ends"
                );
                state.cooldown = Some((until, Arc::clone(&error)));
                Err(error)
            }
        }
    }

    /// The pause after the `failures`-th consecutive failure: the configured cool-down doubled
    /// per failure (capped), or the server's `Retry-After` (capped) if longer.
    fn cooldown(&self, failures: u32, error: &Error) -> Duration {
        let base = self.settings.failure_cooldown;
        let doubled = base
            .checked_mul(1u32 << failures.saturating_sub(1).min(16))
            .unwrap_or(Duration::MAX)
            .min(MAX_FAILURE_COOLDOWN.max(base));
        let asked = error.retry_after().map_or(Duration::ZERO, |d| {
            d.min(self.settings.retry.max_retry_after)
        });
        doubled.max(asked)
    }

    /// Lets the next caller claim the refresh ahead again (its start failed or its task died).
    fn release_claim(&self) {
        let current = self.current.load_full();
        if let Some(cached) = current {
            if Instant::now() < cached.expires_at {
                self.current
                    .store(Some(Arc::new(cached.retry_at(cached.refresh_at))));
            }
        }
    }

    fn invalidate(self: &Arc<Self>, token: &Token) -> bool {
        let pending = {
            let mut state = self.lock();
            if !self
                .current
                .load()
                .as_deref()
                .is_some_and(|c| c.holds(token))
            {
                return false;
            }
            self.current.store(None);
            tracing::info!("the access token was reported rejected; fetching a new one");
            if state.flight.is_some() {
                return true;
            }
            state.cooldown = None;
            match self.register(&mut state, Reason::Invalidated) {
                Ok((_, pending)) => pending,
                Err(_) => return true, // no runtime here: the next access_token fetches
            }
        };
        self.spawn(pending);
        true
    }

    /// When the refresher should next look: the start of the refresh margin, or the end of the
    /// cool-down, or now.
    fn next_refresh(&self) -> Instant {
        let now = Instant::now();
        if let Some(cached) = self.current.load().as_deref() {
            if now < cached.expires_at {
                return cached.refresh_at;
            }
        }
        match &self.lock().cooldown {
            Some((until, _)) => *until,
            None => now,
        }
    }

    /// The refresher's turn: refresh if due (joining a running fetch), and wait for it.
    async fn refresh_if_due(self: &Arc<Self>) {
        let join = {
            let mut state = self.lock();
            let now = Instant::now();
            let valid = match self.current.load().as_deref() {
                Some(cached) if now < cached.refresh_at => return,
                Some(cached) if now < cached.expires_at => {
                    // Keep callers from starting a second refresh.
                    let _ = cached.claim_refresh();
                    true
                }
                _ => false,
            };
            self.join_or_register(&mut state, now, !valid, Reason::Background)
        };
        let _ = self.wait(join).await;
    }
}

/// The spawned fetch: runs whatever happens to the callers, publishes, then tells the waiters.
async fn run_flight(
    mut guard: FlightGuard,
    reason: Reason,
    sender: watch::Sender<Option<Outcome>>,
) {
    let inner = Arc::clone(&guard.inner);
    let span = tracing::info_span!(
        "ibkr_oauth.refresh",
        reason = reason.as_str(),
        attempts = field::Empty,
    );
    let (result, attempts) = inner.fetch_with_retries().instrument(span.clone()).await;
    span.record("attempts", attempts);
    let outcome = span.in_scope(|| inner.settle(guard.id, result));
    guard.done = true;
    // No receiver left (every caller gave up) is fine: the outcome is published already.
    let _ = sender.send(Some(outcome));
}

/// Clears the flight if its task is dropped before it settled (its runtime shut down), so that
/// the next caller starts a new one instead of waiting for a dead one.
struct FlightGuard {
    inner: Arc<Inner>,
    id: u64,
    done: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.inner.lock();
        if state.flight.as_ref().is_some_and(|f| f.id == self.id) {
            state.flight = None;
        }
        self.inner.release_claim();
    }
}

/// The background refresher's loop; ends when the provider is gone.
async fn refresher(provider: Weak<Inner>) {
    let mut last_run: Option<Instant> = None;
    loop {
        let Some(inner) = provider.upgrade() else {
            return;
        };
        let mut wake = inner.next_refresh();
        if let Some(last) = last_run {
            wake = wake.max(last + MIN_REFRESHER_INTERVAL);
        }
        drop(inner);
        tokio::time::sleep_until(wake).await;
        let Some(inner) = provider.upgrade() else {
            return;
        };
        last_run = Some(Instant::now());
        inner.refresh_if_due().await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Configures a [`TokenProvider`]; [`build`](Self::build) validates the scopes.
///
/// ```
/// use std::time::Duration;
/// use ibkr_oauth::provider::{RetryPolicy, TokenProvider};
/// # use ibkr_oauth::{PrivateKey, Signer, TokenClient};
/// # let signer = Signer::builder("client", "main", PrivateKey::generate(ibkr_oauth::Algorithm::EdDSA)?).build()?;
/// # let client = TokenClient::new()?;
///
/// let provider = TokenProvider::builder(client, signer)
///     .scopes(["echo.read", "echo.write"])
///     .refresh_margin(Duration::from_secs(10 * 60))
///     .retry_policy(RetryPolicy::default().max_attempts(6))
///     .skew_threshold(Duration::from_secs(3))
///     .build()?;
/// # let _ = provider;
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct TokenProviderBuilder {
    client: TokenClient,
    signer: Signer,
    scopes: Vec<String>,
    settings: Settings,
    clock: Arc<dyn Clock>,
}

impl TokenProviderBuilder {
    /// Adds one scope (or several, space-delimited) to request.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Adds several scopes to request.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// How long before expiry the refresh ahead starts (default 5 minutes). For short-lived
    /// tokens the margin is at most [`refresh_fraction`](Self::refresh_fraction) of the
    /// lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.settings.margin.max = margin;
        self
    }

    /// The largest fraction of a token's lifetime used as refresh margin (default 0.2: a
    /// 60-second token is refreshed after 48 seconds). Clamped to `0.0..=1.0`; NaN counts as
    /// 0 (refresh only at expiry).
    pub fn refresh_fraction(mut self, fraction: f64) -> Self {
        self.settings.margin.fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// How each fetch retries (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.settings.retry = policy;
        self
    }

    /// The pause after a failed fetch (default 1 s), doubled for each further consecutive
    /// failure up to 30 s, or longer if the server's `Retry-After` asks for more: with a valid
    /// token, the next refresh waits this long; without one, calls get the failure's error at
    /// once for this long.
    pub fn failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.failure_cooldown = cooldown;
        self
    }

    /// The clock offset above which assertions are stamped with the server's time (default
    /// 5 s). `Duration::MAX` turns the correction off (the offset is still measured).
    pub fn skew_threshold(mut self, threshold: Duration) -> Self {
        self.settings.skew_threshold = threshold;
        self
    }

    /// The wall clock that stamps assertions and measures the offset (default: the signer's
    /// clock, which is the system clock unless [`SignerBuilder::clock`](crate::SignerBuilder::clock)
    /// set another). Deadlines use tokio's monotonic clock, so tokio's paused time drives them.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the scopes and builds the provider. No network I/O: the first token is
    /// fetched by the first [`access_token`](TokenProvider::access_token) (or the refresher).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a scope is empty or the joined scopes are outside the
    /// length the token endpoint accepts.
    pub fn build(self) -> Result<TokenProvider, Error> {
        // Built once: the request builder checks the scopes here, before any network I/O.
        let request = TokenRequest::builder()
            .signer(self.signer)
            .scopes(self.scopes)
            .build()?;
        let fetch = ClientFetch {
            client: self.client,
            request,
        };
        Ok(TokenProvider::from_fetch(
            Box::new(fetch),
            self.clock,
            self.settings,
        ))
    }
}

impl fmt::Debug for TokenProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProviderBuilder")
            .field("client", &self.client)
            .field("signer", &self.signer)
            .field("scopes", &self.scopes)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
