//! [`SharedFetch`]: the fetch the provider calls. It takes the fleet's token from Redis when
//! there is a fresh one, elects one fetcher for the fleet with a lease when there is not, and
//! fetches alone when Redis cannot help.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ibkr_oauth::{Error, ExposeSecret, Token};
use ibkr_oauth::{FetchContext, TokenSource};
use tokio::time::Instant;

use crate::entry::{self, Binding, FINGERPRINT_LEN, Plain, Unreadable};
use crate::key::{EncryptionKey, hex};
use crate::metrics;
use crate::store::{Store, StoreError};

/// How many refused tokens a process remembers.
const REFUSED_KEPT: usize = 4;

/// The settings of the shared part (the provider has its own).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// At most this long before expiry, an entry counts as due.
    pub(crate) margin_max: Duration,
    /// At most this fraction of the lifetime, for short-lived tokens.
    pub(crate) margin_fraction: f64,
    /// How long a lease lasts without renewal (the holder renews it while it fetches).
    pub(crate) lease_ttl: Duration,
    /// After a failed fetch, the holder keeps the lease this long: the fleet's pause before
    /// the next attempt.
    pub(crate) failure_hold: Duration,
    /// Waiters look again after this long at first, doubling up to `poll_max`.
    pub(crate) poll_min: Duration,
    pub(crate) poll_max: Duration,
}

impl Settings {
    fn margin(&self, lifetime: Duration) -> Duration {
        self.margin_max.min(lifetime.mul_f64(self.margin_fraction))
    }

    /// How long a process without a lease waits for the holder before fetching alone: a dead
    /// holder's lease ends after `lease_ttl`, so this leaves room for one takeover.
    fn wait_limit(&self) -> Duration {
        self.lease_ttl
            .saturating_mul(2)
            .saturating_add(self.failure_hold)
            .saturating_add(Duration::from_secs(1))
    }
}

/// A cheap handle: the provider holds one, the source another (for `invalidate`).
#[derive(Clone)]
pub(crate) struct SharedFetch {
    inner: Arc<Inner>,
}

struct Inner {
    fetch: Box<dyn TokenSource>,
    store: Store,
    key: EncryptionKey,
    settings: Settings,
    /// The cache name, for logs and metric labels.
    name: String,
    /// What this process asks for: sealed in what it writes, checked in what it reads.
    binding: Binding,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether the last Redis exchange failed (a warning is logged on each change).
    redis_down: bool,
    /// The fingerprints of the tokens last reported refused here: an entry holding one counts
    /// as missing (its compare-and-delete may not have reached Redis).
    refused: Vec<[u8; FINGERPRINT_LEN]>,
    /// The fingerprint of the token this process last took from Redis or fetched: when the
    /// provider asks again and the entry still holds it, the provider is refreshing (its
    /// deadlines count from before the read, so they come a little before the entry's own
    /// margin): the entry counts as due, not fresh, or the provider would come back for it
    /// again and again as expiry nears.
    handed: Option<[u8; FINGERPRINT_LEN]>,
    /// The newest sealed issue time (Unix ms) this process has read or written: an entry
    /// issued before it is an old one put back (a replay) and counts as missing.
    newest_issued_ms: u64,
}

/// What the entry in Redis is, for this process.
enum Entry {
    /// Valid and outside the refresh margin: use it.
    Fresh(Token),
    /// Valid but inside the refresh margin: refresh it (one process), keep it meanwhile.
    Due(Token),
    Missing,
    /// There, unexpired, and not readable with this process's key.
    Unreadable(Unreadable),
}

/// Why this process fetches alone.
enum Alone {
    Unreachable(StoreError),
    Unreadable(Unreadable),
    WaitedTooLong,
}

impl Alone {
    fn label(&self) -> &'static str {
        match self {
            Alone::Unreachable(_) => "redis_unavailable",
            Alone::Unreadable(Unreadable::OtherKey(_)) => "other_key",
            Alone::Unreadable(Unreadable::OtherRequest) => "other_request",
            Alone::Unreadable(_) => "unreadable_entry",
            Alone::WaitedTooLong => "lease_wait_limit",
        }
    }
}

impl SharedFetch {
    pub(crate) fn new(
        fetch: Box<dyn TokenSource>,
        store: Store,
        key: EncryptionKey,
        settings: Settings,
        name: String,
        binding: Binding,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                fetch,
                store,
                key,
                settings,
                name,
                binding,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub(crate) fn entry_key(&self) -> &str {
        &self.inner.store.entry_key
    }

    pub(crate) fn lease_key(&self) -> &str {
        self.inner.store.lease_key()
    }

    /// Deletes the fleet's entry if it still holds `token`, and remembers `token` as refused.
    /// Returns whether the entry was deleted.
    pub(crate) async fn invalidate(&self, token: &Token) -> bool {
        let inner = &self.inner;
        let fingerprint = entry::fingerprint(&inner.key, token.access_token().expose_secret());
        {
            let mut state = inner.lock();
            if state.refused.len() >= REFUSED_KEPT {
                state.refused.remove(0);
            }
            state.refused.push(fingerprint);
        }
        match inner.store.invalidate(&fingerprint).await {
            Ok(deleted) => {
                inner.redis_answered();
                if deleted {
                    tracing::info!(
                        cache = %inner.name,
                        "the shared token was reported refused; deleted it from Redis"
                    );
                }
                deleted
            }
            Err(error) => {
                inner.redis_failed(&error);
                false
            }
        }
    }
}

/// The provider in front (inside [`RedisTokenSource`](crate::RedisTokenSource)) calls
/// `fetch`; `access_token` is one uncached fetch, and `invalidate` compares and deletes the
/// fleet's entry, as `RedisTokenSource::invalidate` does.
#[async_trait::async_trait]
impl TokenSource for SharedFetch {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        TokenSource::fetch(self, FetchContext::new(std::time::SystemTime::now()))
            .await
            .map(Arc::new)
    }

    async fn invalidate(&self, token: &Token) -> bool {
        SharedFetch::invalidate(self, token).await
    }

    async fn fetch(&self, context: FetchContext) -> Result<Token, Error> {
        let inner = &self.inner;
        let result = inner.shared(context).await;
        if let Ok(token) = &result {
            metrics::seconds_until_expiry(&inner.name, token);
            let fingerprint = entry::fingerprint(&inner.key, token.access_token().expose_secret());
            inner.lock().handed = Some(fingerprint);
        }
        result
    }
}

impl fmt::Debug for SharedFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedFetch")
            .field("cache", &self.inner.name)
            .field("entry_key", &self.inner.store.entry_key)
            .field("key", &self.inner.key)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn shared(&self, context: FetchContext) -> Result<Token, Error> {
        let deadline = Instant::now() + self.settings.wait_limit();
        let holder = holder_id();
        let mut poll = self.settings.poll_min;
        let mut waited = false;
        loop {
            let due = match self.read().await {
                Err(error) => return self.alone(context, Alone::Unreachable(error)).await,
                Ok(Entry::Fresh(token)) => {
                    tracing::debug!(cache = %self.name, "took the fleet's token from Redis");
                    return Ok(token);
                }
                Ok(Entry::Unreadable(why)) => {
                    return self.alone(context, Alone::Unreadable(why)).await;
                }
                Ok(Entry::Due(token)) => Some(token),
                Ok(Entry::Missing) => None,
            };
            match self.store.try_lease(&holder, self.settings.lease_ttl).await {
                Err(error) => return self.alone(context, Alone::Unreachable(error)).await,
                Ok(true) => return self.hold(context, &holder, due).await,
                Ok(false) => {}
            }
            self.redis_answered();
            if !waited {
                waited = true;
                metrics::lease_wait(&self.name);
                tracing::debug!(cache = %self.name, "another process is fetching the token; waiting for it");
            }
            if Instant::now() >= deadline {
                if let Some(token) = due {
                    // Still valid: keep it; the provider asks again before it expires.
                    return Ok(token);
                }
                return self.alone(context, Alone::WaitedTooLong).await;
            }
            tokio::time::sleep(jitter(poll)).await;
            poll = poll.saturating_mul(2).min(self.settings.poll_max);
        }
    }

    /// The lease holder's part: fetch once for the fleet, store, release.
    async fn hold(
        &self,
        context: FetchContext,
        holder: &str,
        due: Option<Token>,
    ) -> Result<Token, Error> {
        // Another holder may have stored a token between our read and our lease.
        match self.read().await {
            Ok(Entry::Fresh(token)) => {
                self.release(holder).await;
                return Ok(token);
            }
            Ok(Entry::Unreadable(why)) => {
                self.release(holder).await;
                return self.alone(context, Alone::Unreadable(why)).await;
            }
            Err(error) => {
                self.release(holder).await;
                return self.alone(context, Alone::Unreachable(error)).await;
            }
            Ok(Entry::Due(_) | Entry::Missing) => {}
        }
        if due.is_some() {
            metrics::refresh_ahead(&self.name);
        }
        tracing::debug!(cache = %self.name, ahead = due.is_some(), "holding the lease; fetching the token for the fleet");
        let result = self.fetch_renewing(context, holder).await;
        metrics::token_request(&self.name, "shared", &result);
        match result {
            Ok(token) => {
                self.store_token(&token).await;
                self.release(holder).await;
                Ok(token)
            }
            Err(error) => {
                // Keep the lease a little: the fleet's next attempt waits this long.
                if let Err(e) = self.store.hold(holder, self.settings.failure_hold).await {
                    self.redis_failed(&e);
                }
                match due {
                    Some(token) => {
                        metrics::stale_served(&self.name);
                        tracing::warn!(
                            cache = %self.name,
                            error = %error,
                            "refreshing the fleet's token failed; the stored token is still valid and is used meanwhile"
                        );
                        Ok(token)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// The inner fetch, renewing the lease while it runs so that only a dead holder loses it.
    async fn fetch_renewing(&self, context: FetchContext, holder: &str) -> Result<Token, Error> {
        let fetch = self.fetch.fetch(context);
        tokio::pin!(fetch);
        let every = (self.settings.lease_ttl / 3).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            tokio::select! {
                result = &mut fetch => return result,
                _ = tick.tick() => {
                    if let Err(e) = self.store.hold(holder, self.settings.lease_ttl).await {
                        self.redis_failed(&e);
                    }
                }
            }
        }
    }

    /// Fetches without Redis: a warning (once per change) and a metric.
    async fn alone(&self, context: FetchContext, why: Alone) -> Result<Token, Error> {
        metrics::fallback(&self.name, why.label());
        match &why {
            Alone::Unreachable(error) => self.redis_failed(error),
            Alone::Unreadable(reason @ Unreadable::OtherRequest) => tracing::warn!(
                cache = %self.name,
                reason = %reason,
                "the shared token in Redis was not asked for by this process's client and \
                 scopes; fetching a token alone and leaving the entry as it is"
            ),
            Alone::Unreadable(reason) => tracing::warn!(
                cache = %self.name,
                reason = %reason,
                "the shared token in Redis cannot be read with this process's encryption key; \
                 fetching a token alone and leaving the entry as it is"
            ),
            Alone::WaitedTooLong => tracing::warn!(
                cache = %self.name,
                waited_ms = u64::try_from(self.settings.wait_limit().as_millis()).unwrap_or(u64::MAX),
                "no token appeared in Redis while other processes held the lease; fetching alone"
            ),
        }
        let result = self.fetch.fetch(context).await;
        metrics::token_request(&self.name, "alone", &result);
        result
    }

    /// Reads and classifies the entry.
    async fn read(&self) -> Result<Entry, StoreError> {
        let read = match self.store.read().await {
            Ok(read) => read,
            Err(error) => return Err(error),
        };
        self.redis_answered();
        let Some(read) = read else {
            return Ok(Entry::Missing);
        };
        let plain = match entry::open(&self.key, &self.store.entry_key, &read.value) {
            Ok(plain) => plain,
            // Written before expiries were sealed: replace it.
            Err(Unreadable::Old(_)) => return Ok(Entry::Missing),
            Err(why) => return Ok(Entry::Unreadable(why)),
        };
        if plain.binding != self.binding {
            return Ok(Entry::Unreadable(Unreadable::OtherRequest));
        }
        // The lifetime left comes from the sealed expiry, bounded by what the server granted;
        // Redis's TTL (which whoever writes to Redis sets) may only shorten it.
        let sealed_left =
            Duration::from_millis(plain.expires_ms.saturating_sub(unix_ms(SystemTime::now())));
        let remaining = sealed_left.min(plain.lifetime).min(read.ttl);
        if remaining.is_zero() {
            return Ok(Entry::Missing);
        }
        let fingerprint = entry::fingerprint(&self.key, plain.access_token.expose_secret());
        let handed_already = {
            let mut state = self.lock();
            if state.refused.contains(&fingerprint) {
                return Ok(Entry::Missing);
            }
            if plain.issued_ms < state.newest_issued_ms {
                drop(state);
                tracing::warn!(
                    cache = %self.name,
                    "the entry in Redis is older than one this process has seen (put back by \
                     someone who can write to Redis?); ignoring it and replacing it"
                );
                return Ok(Entry::Missing);
            }
            state.newest_issued_ms = plain.issued_ms;
            state.handed == Some(fingerprint)
        };
        let due = handed_already || remaining <= self.settings.margin(plain.lifetime);
        let Ok(token) = token_from(plain, remaining) else {
            return Ok(Entry::Unreadable(Unreadable::Payload));
        };
        Ok(if due {
            Entry::Due(token)
        } else {
            Entry::Fresh(token)
        })
    }

    /// Seals and stores a new token for the rest of its lifetime.
    async fn store_token(&self, token: &Token) {
        let remaining = token
            .expires_at()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(token.expires_in());
        if remaining < Duration::from_millis(1) {
            return; // nothing to share: a token without a lifetime is for the request at hand
        }
        let now_ms = unix_ms(SystemTime::now());
        // Never below an issue time already seen, whatever this host's clock says, so that
        // the fleet's entries only move forward.
        let issued_ms = now_ms.max(self.lock().newest_issued_ms.saturating_add(1));
        let plain = Plain {
            access_token: token.access_token().clone(),
            token_type: token.token_type().map(str::to_owned),
            scope: token.scope().map(str::to_owned),
            lifetime: token.expires_in(),
            binding: self.binding.clone(),
            issued_ms,
            expires_ms: now_ms.saturating_add(millis(remaining)),
        };
        let Ok(sealed) = entry::seal(&self.key, &self.store.entry_key, &plain) else {
            tracing::warn!(cache = %self.name, "sealing the token failed; it is not shared");
            return;
        };
        match self.store.write(&sealed, remaining).await {
            Ok(()) => {
                self.redis_answered();
                let mut state = self.lock();
                state.newest_issued_ms = state.newest_issued_ms.max(issued_ms);
                drop(state);
                tracing::debug!(cache = %self.name, ttl_s = remaining.as_secs(), "stored the fleet's token in Redis");
            }
            Err(error) => self.redis_failed(&error),
        }
    }

    async fn release(&self, holder: &str) {
        if let Err(error) = self.store.release(holder).await {
            // The lease ends by itself after its TTL.
            self.redis_failed(&error);
        }
    }

    fn redis_answered(&self) {
        let mut state = self.lock();
        if state.redis_down {
            state.redis_down = false;
            drop(state);
            tracing::warn!(cache = %self.name, "Redis answers again; sharing the token with the fleet");
        }
    }

    fn redis_failed(&self, error: &StoreError) {
        let mut state = self.lock();
        let was_down = std::mem::replace(&mut state.redis_down, true);
        drop(state);
        if was_down {
            tracing::debug!(cache = %self.name, error = %error, "Redis still unavailable");
        } else {
            tracing::warn!(
                cache = %self.name,
                error = %error,
                "Redis is unavailable; fetching tokens alone until it answers again"
            );
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, millis)
}

/// A token from a shared entry: its lifetime counts from now, for `remaining` (from the
/// sealed expiry).
fn token_from(plain: Plain, remaining: Duration) -> Result<Token, Error> {
    let Plain {
        access_token,
        token_type,
        scope,
        ..
    } = plain;
    let mut builder = Token::builder(access_token)
        .expires_in(remaining)
        .received_at(SystemTime::now());
    if let Some(token_type) = token_type {
        builder = builder.token_type(token_type);
    }
    if let Some(scope) = scope {
        builder = builder.scope(scope);
    }
    builder.build()
}

/// A value only this attempt puts in the lease.
fn holder_id() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Unique enough without the random generator: process, time, a counter.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return format!("{}-{t}-{n}", std::process::id());
    }
    hex(&bytes)
}

/// Between half and all of `d`, so that waiters do not poll in step.
fn jitter(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let r = if aws_lc_rs::rand::fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0
    } else {
        1.0
    };
    d.mul_f64(0.5 + r / 2.0)
}
