//! [`RedisPacer`]: IBKR's pacing for a whole fleet. The same GCRA as the in-process
//! [`Governor`], run by one Lua script in Redis so that every process sharing a username
//! draws from one budget, with Redis's clock (the hosts' clocks never enter).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ibkr_oauth::pacing::{
    Endpoint, GLOBAL, Governor, Pacer, PacingError, PacingStats, PacingTable,
};
use tokio::time::Instant;

use crate::conn::{Conn, StoreError};
use crate::error::Error;
use crate::source::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_KEY_PREFIX, check_name, open_client, redacted_url,
};

/// Takes a turn from every limit that covers a request, or none.
///
/// KEYS[1] the endpoint's pause; KEYS[2..] the limits' theoretical arrival times (TAT, in
/// microseconds of Redis's clock). ARGV: for each limit, its interval and burst.
/// Returns `{1, now_us, 0}` when the request may go (each TAT advanced by its interval), else
/// `{0, wait_us, which}` with `which` 0 for the pause, else the index of the limit (1-based
/// among the limits) that waits longest; nothing is taken then.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = redis.call('PTTL', KEYS[1])
if pause > 0 then return {0, pause * 1000, 0} end
local n = #KEYS - 1
local wait, which = 0, 0
local tats = {}
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if tat < now then tat = now end
  local next_tat = tat + interval
  local w = next_tat - now - interval * burst
  if w > wait then wait, which = w, i end
  tats[i] = next_tat
end
if wait > 0 then return {0, wait, which} end
for i = 1, n do
  local ms = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i + 1], string.format('%.0f', tats[i]), 'PX', ms)
end
return {1, now, 0}";

/// Pauses an endpoint for ARGV[1] ms unless it is paused longer already.
const PAUSE: &str = r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1";

/// What a [`RedisPacer`] does when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenRedisDown {
    /// Refuse every request with [`PacingError::Unavailable`] (the default): processes pacing
    /// alone would together pass IBKR's limit.
    #[default]
    FailClosed,
    /// Pace this process alone with an in-process [`Governor`] on the same table (the fleet
    /// as a whole may then pass the limit: divide the table by the fleet's size if you allow
    /// it).
    PaceAlone,
}

/// IBKR's pacing shared by every process that uses the same Redis, key prefix and username.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ibkr_oauth::pacing::{Pacer, PacingTable};
/// use ibkr_oauth_redis::RedisPacer;
///
/// let pacer = RedisPacer::builder("redis://cache.internal:6379", "ibkr-username", PacingTable::ibkr())
///     .build()?;
/// pacer.acquire("/v1/api/iserver/accounts").await?; // then send the request
/// # Ok(())
/// # }
/// ```
///
/// Keys: `<prefix>pace:{<username>}:...` (one hash slot per username): a limit's theoretical
/// arrival time and an endpoint's pause, each expiring once it no longer matters. Commands:
/// `EVALSHA`/`EVAL` (two scripts; the first reads Redis's `TIME`).
#[derive(Clone)]
pub struct RedisPacer {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    table: PacingTable,
    /// `<prefix>pace:{<username>}:`
    namespace: String,
    take: redis::Script,
    pause: redis::Script,
    when_down: WhenRedisDown,
    /// For [`WhenRedisDown::PaceAlone`].
    alone: Governor,
    redis_down: AtomicBool,
    redis: String,
    admitted: AtomicU64,
    waited: AtomicU64,
    refused: AtomicU64,
    paused: AtomicU64,
}

/// Builds a [`RedisPacer`].
pub struct RedisPacerBuilder {
    redis_url: String,
    username: String,
    table: PacingTable,
    key_prefix: String,
    command_timeout: Duration,
    tls_root: Option<Vec<u8>>,
    when_down: WhenRedisDown,
}

impl RedisPacer {
    /// A pacer for `username`'s budget (IBKR's limits are per username) in the Redis at
    /// `redis_url`, enforcing `table`.
    pub fn builder(
        redis_url: impl Into<String>,
        username: impl Into<String>,
        table: PacingTable,
    ) -> RedisPacerBuilder {
        RedisPacerBuilder {
            redis_url: redis_url.into(),
            username: username.into(),
            table,
            key_prefix: DEFAULT_KEY_PREFIX.into(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            tls_root: None,
            when_down: WhenRedisDown::default(),
        }
    }

    /// The table it enforces.
    pub fn table(&self) -> &PacingTable {
        &self.inner.table
    }

    /// The Redis key of the per-user limit (for tests and operators).
    pub fn global_key(&self) -> String {
        format!("{}{GLOBAL}", self.inner.namespace)
    }

    /// One try: `Ok(admitted at)` to go, else the wait and which limit (or the pause) made it.
    async fn try_take(
        &self,
        endpoint: &Endpoint,
    ) -> Result<Result<SystemTime, (Duration, bool, String)>, StoreError> {
        let inner = &self.inner;
        let mut invocation = inner.take.prepare_invoke();
        invocation.key(format!("{}pause:{}", inner.namespace, endpoint.key));
        invocation.key(self.global_key());
        let global = inner.table.global_limit();
        invocation
            .arg(micros(global.interval()))
            .arg(global.burst_size());
        if let Some(i) = endpoint.rule {
            let rule = &inner.table.rules()[i];
            invocation.key(format!("{}rule:{}", inner.namespace, endpoint.key));
            invocation
                .arg(micros(rule.limit.interval()))
                .arg(rule.limit.burst_size());
        }
        let (go, micros, which): (i64, i64, i64) = inner
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let micros = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
        if go == 1 {
            return Ok(Ok(UNIX_EPOCH + micros));
        }
        let wait = micros;
        Ok(Err(match which {
            0 => (wait, true, endpoint.key.clone()),
            1 => (wait, false, GLOBAL.to_owned()),
            _ => (wait, false, endpoint.key.clone()),
        }))
    }

    fn redis_state(&self, down: bool, error: Option<&StoreError>) {
        if self.inner.redis_down.swap(down, Ordering::Relaxed) != down {
            match error {
                Some(error) => {
                    tracing::warn!(redis = %self.inner.redis, %error, "pacing: Redis is unavailable")
                }
                None => tracing::warn!(redis = %self.inner.redis, "pacing: Redis answers again"),
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl RedisPacer {
    /// As [`Pacer::acquire`], and when the request was admitted by Redis's clock (by this
    /// host's when Redis is down and the process paces alone): for auditing the fleet's rate.
    ///
    /// # Errors
    /// As [`Pacer::acquire`].
    pub async fn admit(&self, path: &str) -> Result<SystemTime, PacingError> {
        let inner = &self.inner;
        let endpoint = inner.table.classify(path);
        let max_wait = inner.table.max_wait_bound();
        let deadline = Instant::now() + max_wait;
        let mut waited = false;
        loop {
            let (wait, paused, key) = match self.try_take(&endpoint).await {
                Ok(Ok(at)) => {
                    self.redis_state(false, None);
                    inner.admitted.fetch_add(1, Ordering::Relaxed);
                    if waited {
                        inner.waited.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(at);
                }
                Ok(Err(turn)) => {
                    self.redis_state(false, None);
                    turn
                }
                Err(error) => {
                    self.redis_state(true, Some(&error));
                    return match inner.when_down {
                        WhenRedisDown::PaceAlone => {
                            inner.alone.acquire(path).await.map(|()| SystemTime::now())
                        }
                        WhenRedisDown::FailClosed => {
                            inner.refused.fetch_add(1, Ordering::Relaxed);
                            Err(PacingError::Unavailable(error.to_string()))
                        }
                    };
                }
            };
            if Instant::now() + wait > deadline {
                inner.refused.fetch_add(1, Ordering::Relaxed);
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
            tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
        }
    }
}

#[async_trait::async_trait]
impl Pacer for RedisPacer {
    async fn acquire(&self, path: &str) -> Result<(), PacingError> {
        self.admit(path).await.map(|_| ())
    }

    async fn too_many_requests(&self, path: &str, retry_after: Option<Duration>) {
        let inner = &self.inner;
        inner.paused.fetch_add(1, Ordering::Relaxed);
        // Paused here too, so that this process holds back even if Redis is gone.
        inner.alone.too_many_requests(path, retry_after).await;
        let endpoint = inner.table.classify(path);
        let pause = retry_after
            .unwrap_or(inner.table.default_pause_length())
            .min(Duration::from_secs(86_400));
        let ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = inner.pause.prepare_invoke();
        invocation
            .key(format!("{}pause:{}", inner.namespace, endpoint.key))
            .arg(ms);
        let result: Result<i64, _> = inner
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await;
        match result {
            Ok(_) => {
                tracing::warn!(endpoint = %endpoint.key, pause_ms = ms, "IBKR answered 429: the endpoint is paused for the fleet")
            }
            Err(error) => {
                tracing::warn!(endpoint = %endpoint.key, %error, "IBKR answered 429; the fleet's pause could not be stored")
            }
        }
    }

    fn stats(&self) -> PacingStats {
        let inner = &self.inner;
        let mut stats = PacingStats::default();
        stats.admitted = inner.admitted.load(Ordering::Relaxed);
        stats.waited = inner.waited.load(Ordering::Relaxed);
        stats.refused = inner.refused.load(Ordering::Relaxed);
        stats.paused = inner.paused.load(Ordering::Relaxed);
        let alone = inner.alone.stats();
        stats.admitted += alone.admitted;
        stats.waited += alone.waited;
        stats.refused += alone.refused;
        stats
    }
}

impl RedisPacerBuilder {
    /// The prefix of the Redis keys (default `ibkr-oauth:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The bound on each Redis command, connecting included (default 500 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// For `rediss://`: trust the certificate authorities in this PEM.
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// What to do when Redis does not answer ([`WhenRedisDown::FailClosed`] by default).
    pub fn when_redis_down(mut self, policy: WhenRedisDown) -> Self {
        self.when_down = policy;
        self
    }

    /// Checks the settings and builds the pacer. No network I/O.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], or [`Error::InvalidConfig`] for an empty or odd username, a
    /// zero timeout or a table out of range.
    pub fn build(self) -> Result<RedisPacer, Error> {
        let redis = redacted_url(&self.redis_url)?;
        let client = open_client(&self.redis_url, self.tls_root)?;
        check_name("username", &self.username, false)?;
        check_name("key prefix", &self.key_prefix, true)?;
        if self.username.contains(['{', '}']) {
            return Err(Error::InvalidConfig("the username holds { or }".into()));
        }
        if self.command_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "command_timeout is zero; use a short positive time such as 500 ms".into(),
            ));
        }
        let alone =
            Governor::new(self.table.clone()).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        Ok(RedisPacer {
            inner: Arc::new(Inner {
                conn: Conn::new(client, self.command_timeout),
                namespace: format!("{}pace:{{{}}}:", self.key_prefix, self.username),
                table: self.table,
                take: redis::Script::new(TAKE),
                pause: redis::Script::new(PAUSE),
                when_down: self.when_down,
                alone,
                redis_down: AtomicBool::new(false),
                redis,
                admitted: AtomicU64::new(0),
                waited: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                paused: AtomicU64::new(0),
            }),
        })
    }
}

impl fmt::Debug for RedisPacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPacer")
            .field("redis", &self.inner.redis)
            .field("namespace", &self.inner.namespace)
            .field("when_down", &self.inner.when_down)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisPacerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPacerBuilder")
            .field(
                "redis",
                &redacted_url(&self.redis_url).unwrap_or_else(|_| "[invalid]".into()),
            )
            .field("username", &self.username)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}
