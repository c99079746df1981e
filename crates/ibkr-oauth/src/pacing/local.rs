//! [`Governor`]: the pacing table enforced in this process, with the `governor` crate's GCRA
//! on tokio's clock (so tests drive it in paused time).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::table::{Endpoint, GLOBAL, Limit, PacingTable};
use super::{Pacer, PacingError, PacingStats};
use crate::error::ConfigError;

/// At most this many paused endpoints are remembered; past it, ended pauses are forgotten.
const PAUSES_KEPT: usize = 1024;

/// tokio's clock as the limiter's: instants are the time since the governor was made.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// IBKR's pacing for one process: the per-user limit and every per-endpoint rule, checked
/// before a request leaves; a 429 pauses its endpoint.
///
/// Cheap to clone (one shared state). For several processes, use the Redis governor of
/// `ibkr-oauth-redis`, which runs the same algorithm for the whole fleet.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ibkr_oauth::pacing::{Governor, Pacer, PacingTable};
///
/// let governor = Governor::new(PacingTable::ibkr())?;
/// governor.acquire("/v1/api/tickle").await?; // the first tickle leaves at once
/// let again = governor.acquire("/v1/api/tickle").await; // 1/s: waits about a second
/// assert!(again.is_ok());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Governor {
    inner: Arc<Inner>,
}

struct Inner {
    table: PacingTable,
    clock: TokioClock,
    global: Limiter,
    rules: Vec<Limiter>,
    /// Endpoint key -> when its pause ends.
    paused: Mutex<HashMap<String, Instant>>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    admitted: AtomicU64,
    waited: AtomicU64,
    refused: AtomicU64,
    paused: AtomicU64,
}

fn limiter(limit: Limit, clock: TokioClock) -> Limiter {
    // `with_period` refuses only a zero period, which `Limit` never holds.
    let quota = Quota::with_period(limit.interval())
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(limit.burst_size()).unwrap_or(NonZeroU32::MIN));
    RateLimiter::direct_with_clock(quota, clock)
}

impl Governor {
    /// A governor enforcing `table` in this process.
    ///
    /// # Errors
    /// [`ConfigError::Client`] when the table is out of range ([`PacingTable::validate`]).
    pub fn new(table: PacingTable) -> Result<Self, ConfigError> {
        table.validate()?;
        let clock = TokioClock {
            start: Instant::now(),
        };
        let global = limiter(table.global_limit(), clock);
        let rules = table
            .rules()
            .iter()
            .map(|r| limiter(r.limit, clock))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                table,
                clock,
                global,
                rules,
                paused: Mutex::new(HashMap::new()),
                stats: Stats::default(),
            }),
        })
    }

    /// The table it enforces.
    pub fn table(&self) -> &PacingTable {
        &self.inner.table
    }

    /// How long `endpoint` must wait now, or `None` to go (its cells are then taken).
    fn try_take(&self, endpoint: &Endpoint) -> Option<(Duration, bool)> {
        let inner = &self.inner;
        if let Some(until) = self.paused_until(&endpoint.key) {
            return Some((until.saturating_duration_since(Instant::now()), true));
        }
        let now = inner.clock.now();
        // The per-user limit first: a cell it gives and the endpoint's rule then refuses is a
        // few milliseconds of budget lost, while the other order could lose a rare endpoint
        // cell (one per 15 minutes) to a short global wait.
        if let Err(not_until) = inner.global.check() {
            return Some((not_until.wait_time_from(now), false));
        }
        if let Some(i) = endpoint.rule {
            if let Err(not_until) = inner.rules[i].check() {
                return Some((not_until.wait_time_from(now), false));
            }
        }
        None
    }

    fn paused_until(&self, key: &str) -> Option<Instant> {
        let paused = self
            .inner
            .paused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        paused
            .get(key)
            .copied()
            .filter(|&until| until > Instant::now())
    }
}

#[async_trait::async_trait]
impl Pacer for Governor {
    async fn acquire(&self, path: &str) -> Result<(), PacingError> {
        let inner = &self.inner;
        let endpoint = inner.table.classify(path);
        let max_wait = inner.table.max_wait_bound();
        let deadline = Instant::now() + max_wait;
        let mut waited = false;
        loop {
            let Some((wait, paused)) = self.try_take(&endpoint) else {
                inner.stats.admitted.fetch_add(1, Ordering::Relaxed);
                if waited {
                    inner.stats.waited.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(());
            };
            let now = Instant::now();
            if now + wait > deadline {
                inner.stats.refused.fetch_add(1, Ordering::Relaxed);
                let key = if paused || endpoint.rule.is_some() {
                    endpoint.key.clone()
                } else {
                    GLOBAL.to_owned()
                };
                tracing::debug!(endpoint = %key, wait_ms = wait.as_millis() as u64, "pacing: refused");
                return Err(if paused {
                    PacingError::Paused {
                        endpoint: key,
                        retry_after: wait,
                    }
                } else {
                    PacingError::OverLimit {
                        endpoint: key,
                        wait,
                        max_wait,
                    }
                });
            }
            waited = true;
            // At least a microsecond, so a zero wait cannot spin.
            tokio::time::sleep(wait.max(Duration::from_micros(1))).await;
        }
    }

    async fn too_many_requests(&self, path: &str, retry_after: Option<Duration>) {
        let inner = &self.inner;
        let endpoint = inner.table.classify(path);
        let pause = retry_after
            .unwrap_or(inner.table.default_pause_length())
            .min(Duration::from_secs(86_400));
        let until = Instant::now() + pause;
        inner.stats.paused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(endpoint = %endpoint.key, pause_ms = pause.as_millis() as u64, "IBKR answered 429: pausing the endpoint");
        let mut paused = inner.paused.lock().unwrap_or_else(PoisonError::into_inner);
        if paused.len() >= PAUSES_KEPT {
            let now = Instant::now();
            paused.retain(|_, until| *until > now);
        }
        if paused.len() < PAUSES_KEPT || paused.contains_key(&endpoint.key) {
            let entry = paused.entry(endpoint.key).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    fn stats(&self) -> PacingStats {
        let s = &self.inner.stats;
        PacingStats {
            admitted: s.admitted.load(Ordering::Relaxed),
            waited: s.waited.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            paused: s.paused.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Governor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Governor")
            .field("table", &self.inner.table)
            .field("stats", &self.stats())
            .finish()
    }
}
