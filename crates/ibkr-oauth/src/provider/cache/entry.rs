//! The cached token and its deadlines, read on the hit path without a lock.
//!
//! The token is held in one `Arc` per shard, each on its own cache line: a reader clones the
//! shard of its thread, so readers on different cores bump different reference counts instead
//! of bouncing one counter between cores (the cost that makes a shared `Arc::clone` stop
//! scaling past one core).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;
use tokio::time::Instant;

use crate::token::Token;

/// When to refresh ahead of expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Margin {
    /// At most this long before expiry (default 5 minutes).
    pub(crate) max: Duration,
    /// At most this fraction of the lifetime, for short-lived tokens.
    pub(crate) fraction: f64,
}

impl Margin {
    pub(crate) fn for_lifetime(&self, lifetime: Duration) -> Duration {
        self.max.min(lifetime.mul_f64(self.fraction))
    }
}

/// "Much later": 30 years.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `at + after` on tokio's clock, saturating far in the future: an overflow (a huge
/// `expires_in`, cool-down or `Retry-After`) must mean "much later", never "now", or every call
/// would fetch.
pub(crate) fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// The same on the wall clock.
pub(crate) fn later_wall(at: SystemTime, after: Duration) -> SystemTime {
    at.checked_add(after)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// One `Arc<Token>` alone on a cache line (128 bytes covers adjacent-line prefetching too).
#[repr(align(128))]
struct Shard(Arc<Token>);

/// The token the provider hands out, with its tokio-clock deadlines.
pub(crate) struct Cached {
    first: Shard,
    /// Further copies of the token, one per extra shard (a separate allocation each).
    more: Box<[Shard]>,
    /// From here on, the first caller starts a refresh in the background.
    pub(crate) refresh_at: Instant,
    /// From here on, the token is not handed out any more.
    pub(crate) expires_at: Instant,
    /// The same two deadlines by the wall clock, which keeps running while the machine sleeps
    /// (the monotonic clock stops on Linux and macOS): a token is handed out only while both
    /// clocks agree.
    pub(crate) wall_refresh_at: SystemTime,
    wall_expires_at: SystemTime,
    /// Set by the caller that starts the refresh ahead, so that the others do not even lock.
    refresh_claimed: AtomicBool,
}

impl Cached {
    /// Caches `token`, whose request was sent at `sent_at` (by the wall clock: `sent_wall`); its
    /// lifetime counts from there, the safe side of the network round trip.
    pub(crate) fn new(
        token: Token,
        sent_at: Instant,
        sent_wall: SystemTime,
        margin: Margin,
        shards: usize,
    ) -> Self {
        let lifetime = token.expires_in();
        let ahead = margin.for_lifetime(lifetime);
        let expires_at = later(sent_at, lifetime);
        let refresh_at = expires_at
            .checked_sub(ahead)
            .unwrap_or(sent_at)
            .max(sent_at);
        let wall_expires_at = later_wall(sent_wall, lifetime);
        let wall_refresh_at = wall_expires_at
            .checked_sub(ahead)
            .unwrap_or(sent_wall)
            .max(sent_wall);
        let more = (1..shards)
            .map(|_| Shard(Arc::new(token.clone())))
            .collect();
        Self {
            first: Shard(Arc::new(token)),
            more,
            refresh_at,
            expires_at,
            wall_refresh_at,
            wall_expires_at,
            refresh_claimed: AtomicBool::new(false),
        }
    }

    /// Before the refresh margin by both clocks: hand out, nothing to do.
    #[inline]
    pub(crate) fn fresh(&self, now: Instant, wall: SystemTime) -> bool {
        now < self.refresh_at && wall < self.wall_refresh_at
    }

    /// Not expired by either clock: may be handed out.
    #[inline]
    pub(crate) fn valid(&self, now: Instant, wall: SystemTime) -> bool {
        now < self.expires_at && wall < self.wall_expires_at
    }

    /// The same token with the refresh pushed back to `refresh_at` (by the wall clock:
    /// `wall_refresh_at`) after a failed refresh, and the claim released.
    pub(crate) fn retry_at(&self, refresh_at: Instant, wall_refresh_at: SystemTime) -> Self {
        Self {
            first: Shard(Arc::clone(&self.first.0)),
            more: self.more.iter().map(|s| Shard(Arc::clone(&s.0))).collect(),
            refresh_at: refresh_at.min(self.expires_at),
            expires_at: self.expires_at,
            wall_refresh_at: wall_refresh_at.min(self.wall_expires_at),
            wall_expires_at: self.wall_expires_at,
            refresh_claimed: AtomicBool::new(false),
        }
    }

    /// The token for this thread: one reference-count bump on this thread's shard.
    #[inline]
    pub(crate) fn token(&self) -> Arc<Token> {
        let shard = match shard_index() % (self.more.len() + 1) {
            0 => &self.first,
            i => self.more.get(i - 1).unwrap_or(&self.first),
        };
        Arc::clone(&shard.0)
    }

    /// Whether `token` is this token (the same value, wherever the caller's copy came from).
    pub(crate) fn holds(&self, token: &Token) -> bool {
        let ours = &*self.first.0;
        std::ptr::eq(ours, token)
            || ours.access_token().expose_secret() == token.access_token().expose_secret()
    }

    /// Claims the refresh ahead; true for exactly one caller per cached entry. Plain load
    /// first so that the losers only read the line.
    #[inline]
    pub(crate) fn claim_refresh(&self) -> bool {
        !self.refresh_claimed.load(Ordering::Relaxed)
            && !self.refresh_claimed.swap(true, Ordering::AcqRel)
    }
}

/// A small per-thread number that spreads threads over the shards.
#[inline]
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.try_with(|i| *i).unwrap_or(0)
}

/// How many shards to keep: one per core the process may use, at most 64.
pub(crate) fn default_shards() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 64)
}
