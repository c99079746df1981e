//! Layer 3, the top of the provider: [`Cache`], the one owner of the cached token. It holds
//! the lock-free hit path, the refresh ahead, the single in-flight fetch (joining or starting
//! it, settling its result: cache it, or stale on error, or the cool-down), invalidation and
//! what the background refresher asks. It calls the retrying fetch below and nothing else.
//!
//! Private parts: `entry` the cached token and its deadlines, `flight` single flight with
//! cool-down (knows nothing of tokens), `refresher` the background driver.
//!
//! (Just over 400 lines on purpose: every method of [`Cache`] lives here, so that following
//! one token read never leaves this file.)

mod entry;
mod flight;
mod refresher;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::time::Instant;
use tracing::{Instrument, field};

use self::entry::Cached;
use self::flight::{Flights, Join, Pending};
use super::builder::Settings;
use super::retry::{Fetched, Retrying};
use crate::clock::Clock;
use crate::error::Error;
use crate::token::Token;

pub(crate) use self::entry::{Margin, default_shards};
pub use self::refresher::Refresher;

/// What every waiter of one fetch gets: the token, or the same error (cheap to clone).
type Shared = Result<Arc<Token>, Error>;

/// The cached token and the one fetch that renews it; see the module docs.
pub(super) struct Cache {
    /// The hit path reads this and nothing else shared.
    current: ArcSwapOption<Cached>,
    /// Everything that changes `current` or starts a fetch holds this (never across an await).
    flights: Mutex<Flights<Shared>>,
    below: Retrying,
    clock: Arc<dyn Clock>,
    settings: Settings,
    /// Set once "no runtime to refresh ahead" was logged: said once, not once per call.
    warned_no_runtime: AtomicBool,
}

/// The longest pause the cool-down doubling reaches (unless `Retry-After` asks for more).
const MAX_FAILURE_COOLDOWN: Duration = Duration::from_secs(30);
/// No two fetches start closer together than this, whoever asks: a token without a lifetime
/// (or a server that keeps refusing at once) cannot turn every call into a request.
const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(1);

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

impl Cache {
    pub(super) fn new(below: Retrying, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            flights: Mutex::new(Flights::default()),
            below,
            clock,
            settings,
            warned_no_runtime: AtomicBool::new(false),
        }
    }

    /// The retrying fetch below.
    pub(super) fn below(&self) -> &Retrying {
        &self.below
    }

    fn lock(&self) -> MutexGuard<'_, Flights<Shared>> {
        // No code panics while holding the lock; if some did, the state is still consistent.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hit path: the cached token while both clocks say it is valid, starting the refresh
    /// ahead once. The monotonic clock stops while the machine sleeps; the wall clock does not,
    /// so a resume from sleep leads to a refresh, not to an expired token.
    #[inline]
    pub(super) fn cached_token(self: &Arc<Self>) -> Option<Arc<Token>> {
        let guard = self.current.load();
        let cached = guard.as_deref()?;
        let now = Instant::now();
        let wall = self.clock.now();
        if cached.fresh(now, wall) {
            return Some(cached.token());
        }
        if cached.valid(now, wall) {
            if cached.claim_refresh() {
                self.refresh_ahead();
            }
            return Some(cached.token());
        }
        None
    }

    /// The cached token if both clocks say it has not expired.
    fn valid_token(&self, now: Instant, wall: SystemTime) -> Option<Arc<Token>> {
        let guard = self.current.load();
        guard
            .as_deref()
            .filter(|c| c.valid(now, wall))
            .map(Cached::token)
    }

    /// The slow path: no valid token is cached. Join the running fetch or start one.
    pub(super) async fn wait_for_token(self: &Arc<Self>) -> Shared {
        let (join, reason) = {
            let mut flights = self.lock();
            let now = Instant::now();
            if let Some(token) = self.valid_token(now, self.clock.now()) {
                return Ok(token); // published since the hit path looked
            }
            let reason = match self.current.load().as_deref() {
                Some(_) => Reason::Expired,
                None => Reason::Cold,
            };
            (
                self.join_or_register(&mut flights, now, true, reason),
                reason,
            )
        };
        self.wait(join, reason).await
    }

    /// Called by the caller that claimed the refresh ahead: start it unless a fetch runs.
    fn refresh_ahead(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            // Keep the claim: the hit path stays lock-free and quiet, and the first call after
            // expiry fetches (and says why it cannot, if it still has no runtime).
            if !self.warned_no_runtime.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "the access token is due for refresh, but no tokio runtime runs here to \
                     refresh it in the background; it is fetched again when it expires"
                );
            }
            return;
        }
        let join = {
            let mut flights = self.lock();
            let now = Instant::now();
            let fresh = self
                .current
                .load()
                .as_deref()
                .is_some_and(|c| c.fresh(now, self.clock.now()));
            if fresh {
                return; // a refresh completed since the hit path looked
            }
            self.join_or_register(&mut flights, now, false, Reason::Ahead)
        };
        if let Join::Wait(_, Some(pending)) = join {
            self.spawn(pending, Reason::Ahead);
        }
    }

    /// Under the lock: the running flight, or a new one registered, or the cool-down's error.
    fn join_or_register(
        &self,
        flights: &mut Flights<Shared>,
        now: Instant,
        honour_cooldown: bool,
        reason: Reason,
    ) -> Join<Shared> {
        if let Some(join) = flights.join(now, honour_cooldown) {
            return join;
        }
        match flights.register(now, MIN_FETCH_INTERVAL) {
            Ok((receiver, pending)) => Join::Wait(receiver, Some(pending)),
            Err(flight::NoRuntime) => {
                tracing::warn!(
                    reason = reason.as_str(),
                    "cannot fetch a token: no tokio runtime"
                );
                self.release_claim();
                Join::Done(Err(Error::NoRuntime))
            }
        }
    }

    fn spawn(self: &Arc<Self>, pending: Pending<Shared>, reason: Reason) {
        let Pending {
            id,
            not_before,
            runtime,
            sender,
        } = pending;
        let guard = FlightGuard {
            cache: Arc::clone(self),
            id,
            done: false,
        };
        runtime.spawn(run_flight(guard, reason, not_before, sender));
    }

    /// Spawns the flight if this caller registered it, then waits for the outcome.
    async fn wait(self: &Arc<Self>, join: Join<Shared>, reason: Reason) -> Shared {
        let receiver = match join {
            Join::Done(outcome) => return outcome,
            Join::Wait(receiver, pending) => {
                if let Some(pending) = pending {
                    self.spawn(pending, reason);
                }
                receiver
            }
        };
        flight::outcome(receiver)
            .await
            .unwrap_or_else(|| Err(Error::FetchAborted))
    }

    /// Publishes a fetch's result: caches a token, or handles the failure (stale on error, or
    /// the cool-down). Returns what the waiters get.
    fn settle(&self, id: u64, result: Result<Fetched, Error>) -> Shared {
        let mut flights = self.lock();
        flights.finish(id);
        let error = match result {
            Ok(fetched) => {
                let cached = Cached::new(
                    fetched.token,
                    fetched.sent_at,
                    fetched.sent_wall,
                    self.settings.margin,
                    self.settings.shards,
                );
                let token = cached.token();
                self.current.store(Some(Arc::new(cached)));
                flights.succeeded();
                return Ok(token);
            }
            Err(error) => error,
        };
        let failures = flights.failed();
        let pause = self.cooldown(failures, &error);
        let now = Instant::now();
        let until = entry::later(now, pause);
        let current = self.current.load_full();
        match current {
            Some(cached) if cached.valid(now, self.clock.now()) => {
                let valid_for = cached.expires_at.saturating_duration_since(now);
                tracing::warn!(
                    error = %error,
                    retry_in_ms = millis(pause),
                    valid_for_s = valid_for.as_secs(),
                    "refreshing the access token failed; the cached token is still valid and is \
                     handed out until the next attempt"
                );
                let token = cached.token();
                let wall_until = entry::later_wall(self.clock.now(), pause);
                self.current
                    .store(Some(Arc::new(cached.retry_at(until, wall_until))));
                Ok(token)
            }
            _ => {
                tracing::warn!(
                    error = %error,
                    cooldown_ms = millis(pause),
                    "fetching an access token failed and no valid token is cached; calls get \
                     this error until the cool-down ends"
                );
                flights.cool_down(until, Err(error.clone()));
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
        let cap = self.below.policy().max_retry_after;
        let asked = error.retry_after().map_or(Duration::ZERO, |d| d.min(cap));
        doubled.max(asked)
    }

    /// Lets the next caller claim the refresh ahead again (its start failed or its task died).
    fn release_claim(&self) {
        let current = self.current.load_full();
        if let Some(cached) = current {
            if Instant::now() < cached.expires_at {
                self.current.store(Some(Arc::new(
                    cached.retry_at(cached.refresh_at, cached.wall_refresh_at),
                )));
            }
        }
    }

    /// When the refresher should next look: the start of the refresh margin, or the end of the
    /// cool-down, or now.
    fn next_refresh(&self) -> Instant {
        let now = Instant::now();
        if let Some(cached) = self.current.load().as_deref() {
            if cached.valid(now, self.clock.now()) {
                return cached.refresh_at;
            }
        }
        self.lock().cooldown_until().unwrap_or(now)
    }

    /// The refresher's turn: refresh if due (joining a running fetch), and wait for it.
    async fn refresh_if_due(self: &Arc<Self>) {
        let join = {
            let mut flights = self.lock();
            let now = Instant::now();
            let wall = self.clock.now();
            let valid = match self.current.load().as_deref() {
                Some(cached) if cached.fresh(now, wall) => return,
                Some(cached) if cached.valid(now, wall) => {
                    // Keep callers from starting a second refresh.
                    let _ = cached.claim_refresh();
                    true
                }
                _ => false,
            };
            self.join_or_register(&mut flights, now, !valid, Reason::Background)
        };
        let _ = self.wait(join, Reason::Background).await;
    }

    pub(super) fn invalidate(self: &Arc<Self>, token: &Token) -> bool {
        let pending = {
            let mut flights = self.lock();
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
            if flights.is_running() {
                return true;
            }
            flights.clear_cooldown();
            match flights.register(Instant::now(), MIN_FETCH_INTERVAL) {
                Ok((_, pending)) => pending,
                Err(flight::NoRuntime) => return true, // the next access_token fetches
            }
        };
        self.spawn(pending, Reason::Invalidated);
        true
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.current.load();
        let now = Instant::now();
        f.debug_struct("TokenProvider")
            .field(
                "token_valid_for",
                &cached
                    .as_deref()
                    .map(|c| c.expires_at.saturating_duration_since(now)),
            )
            .field("clock_offset", &self.below.below().measured())
            .field("settings", &self.settings)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// The spawned fetch: waits out the minimum interval, runs whatever happens to the callers,
/// publishes, then tells the waiters.
async fn run_flight(
    mut guard: FlightGuard,
    reason: Reason,
    not_before: Instant,
    sender: tokio::sync::watch::Sender<Option<Shared>>,
) {
    let cache = Arc::clone(&guard.cache);
    let span = tracing::info_span!(
        "ibkr_oauth.refresh",
        reason = reason.as_str(),
        attempts = field::Empty,
    );
    tokio::time::sleep_until(not_before).await;
    let (result, attempts) = cache.below.fetch().instrument(span.clone()).await;
    span.record("attempts", attempts);
    let outcome = span.in_scope(|| cache.settle(guard.id, result));
    guard.done = true;
    // No receiver left (every caller gave up) is fine: the outcome is published already.
    let _ = sender.send(Some(outcome));
}

/// Clears the flight if its task is dropped before it settled (its runtime shut down), so that
/// the next caller starts a new one instead of waiting for a dead one.
struct FlightGuard {
    cache: Arc<Cache>,
    id: u64,
    done: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.cache.lock().finish(self.id);
        self.cache.release_claim();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
