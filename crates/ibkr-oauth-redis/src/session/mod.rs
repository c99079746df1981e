//! [`SharedSession`]: one IBKR session per username for a whole fleet, through Redis; its
//! docs say how. `elect` the rounds of the election · `source` what it hands out · `outage` when Redis does not answer · `builder`
//! · `store` the Redis keys and scripts · `entry` the sealed SSO token · `error`.

mod builder;
mod elect;
mod entry;
mod error;
mod outage;
mod source;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use ibkr_oauth::session::{Session, SessionBuilder, SessionSource, SessionState, SsoToken};
use tokio::sync::Notify;

use crate::key::EncryptionKey;
use crate::source::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_KEY_PREFIX};

pub use builder::SharedSessionBuilder;
pub use error::SharedSessionError;
use store::SessionStore;

/// The default lease TTL of the session owner.
pub const DEFAULT_SESSION_LEASE_TTL: Duration = Duration::from_secs(10);
/// How long the published entry outlives the last heartbeat: longer than IBKR's idle timeout,
/// so a new owner finds the session to adopt (or learns with one tickle that it ended).
const ENTRY_TTL: Duration = Duration::from_secs(15 * 60);

/// What to do when Redis does not answer (for longer than the lease TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SessionFallback {
    /// Give [`SharedSessionError::RedisUnavailable`] and open nothing: two sessions of one
    /// username compete for the brokerage session.
    #[default]
    FailClosed,
    /// Each process keeps a session of its own (the owner keeps its; a follower adopts the
    /// last published one, or opens one) until Redis answers again. Sessions may then compete.
    Local,
}

/// This process's part in the fleet's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionRole {
    /// Not elected yet.
    Starting,
    /// Holds the lease: opens, tickles and publishes the session.
    Owner,
    /// Uses the owner's session, read from Redis.
    Follower,
    /// Redis is down and [`SessionFallback::Local`] lets it hold a session of its own.
    Alone,
    /// Redis is down and the policy fails closed: no session.
    Unavailable,
}

impl fmt::Display for SessionRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionRole::Starting => "starting",
            SessionRole::Owner => "owner",
            SessionRole::Follower => "follower",
            SessionRole::Alone => "alone",
            SessionRole::Unavailable => "unavailable",
        })
    }
}

/// The fleet's session as this process sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SharedStatus {
    /// This process's role.
    pub role: SessionRole,
    /// The session's state (the owner's, as published, for a follower); `None` when none is
    /// known.
    pub state: Option<SessionState>,
    /// The last keep-alive failed (see `SessionStatus::stale`).
    pub stale: bool,
    /// Why, when something is wrong.
    pub reason: Option<Arc<str>>,
    /// Why no SSO token can be had now, if so.
    pub error: Option<SharedSessionError>,
    /// The fencing token of the owner whose session is known (0: none yet).
    pub fence: u64,
    /// When the role last changed.
    pub since: SystemTime,
}

impl SharedStatus {
    /// Whether `/v1/api` calls can be made now.
    pub fn is_open(&self) -> bool {
        self.error.is_none() && self.state.is_some_and(SessionState::is_open)
    }
}

/// One IBKR session per username for a whole fleet, through Redis. Cheap to clone.
///
/// IBKR allows one brokerage session per username: two processes that each open one take it
/// from each other (the "competing" session). The processes sharing a `SharedSession` (same
/// Redis, key prefix, username and [`EncryptionKey`]) elect one **owner** with a lease, the
/// token lease's design:
///
/// - the owner holds `<prefix>session:{<username>}:lease` (`SET NX PX`), renews it every third
///   of the [lease TTL](SharedSessionBuilder::lease_ttl), and at each renewal publishes the SSO
///   token sealed with the fleet's key (AES-256-GCM, as the access token's entry) in
///   `...:entry`. Only the owner opens the SSO session and the brokerage session, and tickles.
/// - every other process **follows**: it reads the entry every third of the TTL and forwards
///   with that token; it never opens a session. A follower that sees IBKR refuse the token
///   reports it (`...:refused`, the token's HMAC fingerprint, never the token); the owner
///   opens a new session and publishes it.
/// - **Takeover**: an owner that dies or pauses stops renewing; its lease ends after the TTL,
///   and the next follower to look takes it (within [`takeover_bound`](SharedSession::takeover_bound):
///   the TTL and a third of it, plus one tickle) and **adopts** the published session
///   ([`Session::adopt`]: one tickle; a new session only if IBKR says it has ended), so the
///   fleet's own session is never fought.
/// - **Fencing**: each new owner raises `...:fence` (a counter, above the highest this process
///   has seen, so a Redis that restarts empty does not count from 1 again); the heartbeat script writes
///   the entry only while the lease and the fence are still the writer's, so a paused former
///   owner that wakes cannot overwrite it. Before that, its session's
///   [fence](ibkr_oauth::session::SessionBuilder::fence) has closed: the owner counts its lease
///   valid for three quarters of the TTL after sending the renewal, by its own monotonic
///   clock, and a session past that neither tickles nor opens anything.
/// - **Redis unavailable**: a process goes on with the session it knows for one lease TTL
///   after Redis last answered. Then, under [`SessionFallback::FailClosed`] (the default),
///   it gives [`SharedSessionError::RedisUnavailable`] and opens nothing (two sessions would
///   compete); under [`SessionFallback::Local`] it keeps (or adopts, or opens) a session of its
///   own, and rejoins the election when Redis answers again.
/// - **Dropping** the last handle without [`stop`](SharedSession::stop) (an early return, a
///   panic) lets go of the session as `stop` does, never with a logout (which would end it for
///   the whole fleet), and releases the lease in the background.
///
/// ```no_run
/// # async fn run(signer: ibkr_oauth::Signer, tokens: std::sync::Arc<dyn ibkr_oauth::TokenSource>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use ibkr_oauth::session::{Session, SessionConfig, SessionSource};
/// use ibkr_oauth_redis::{EncryptionKey, SharedSession};
///
/// let config = SessionConfig::builder("my-ibkr-username").ip("203.0.113.7").brokerage(true).build()?;
/// let shared = SharedSession::builder(
///     "redis://cache.internal:6379",
///     "my-ibkr-username",
///     EncryptionKey::from_env("IBKR_REDIS_KEY")?,
///     move || Session::builder(tokens.clone(), signer.clone(), config.clone()),
/// )
/// .build()?;
/// let status = shared.start().await; // owner or follower
/// println!("{} ({:?})", status.role, status.state);
/// let sso = shared.sso_token().await?; // the fleet's one session
/// # let _ = sso;
/// shared.stop().await; // hands the session on without logging out
/// # Ok(())
/// # }
/// ```

#[derive(Clone)]
pub struct SharedSession {
    inner: Arc<Inner>,
}

type MakeSession = Box<dyn Fn() -> SessionBuilder + Send + Sync>;

struct Inner {
    /// Shared so that the drop can release the lease after `Inner` is gone.
    store: Arc<SessionStore>,
    key: EncryptionKey,
    username: String,
    /// This process's random value in the lease.
    holder: String,
    lease_ttl: Duration,
    fallback: SessionFallback,
    redis: String,
    make: MakeSession,
    fence: Arc<FenceClock>,
    state: Mutex<State>,
    /// Wakes waiters for a token, and the loop for an early round.
    changed: Notify,
    wake: Arc<Notify>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    adoption: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// One election round at a time (`start`, `stop` and the loop, woken early by an
    /// adoption, would otherwise run two at once).
    rounds: tokio::sync::Mutex<()>,
}

impl Drop for Inner {
    /// The last handle dropped without [`SharedSession::stop`] (an early return, a panic):
    /// the session held is let go without logging out, as `stop` would, since a logout ends
    /// the session for every host of the fleet; the lease is released if a runtime can run it
    /// (else it expires after its TTL).
    fn drop(&mut self) {
        for task in [self.task.get_mut(), self.adoption.get_mut()] {
            if let Some(task) = task.unwrap_or_else(PoisonError::into_inner).take() {
                task.abort();
            }
        }
        self.fence.close();
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut state.role, Role::Starting) {
            Role::Owner { session, .. } => {
                session.release();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let (store, holder) =
                        (Arc::clone(&self.store), std::mem::take(&mut self.holder));
                    runtime.spawn(async move {
                        if let Err(e) = store.release(&holder).await {
                            tracing::debug!(error = %e, "could not release the session lease; it expires by itself");
                        }
                    });
                }
            }
            Role::Alone { session, .. } => session.release(),
            _ => {}
        }
    }
}

/// What the sessions' fence reads: lock-free, by the monotonic clock.
struct FenceClock {
    base: std::time::Instant,
    /// Milliseconds after `base` until which this process may act as owner.
    valid_until_ms: AtomicU64,
    /// Redis is down and the policy lets this process hold its own session.
    alone: AtomicBool,
}

impl FenceClock {
    fn allows(&self) -> bool {
        self.alone.load(Ordering::SeqCst)
            || millis(self.base.elapsed()) < self.valid_until_ms.load(Ordering::SeqCst)
    }

    fn extend_to(&self, until: std::time::Instant) {
        let ms = millis(until.saturating_duration_since(self.base));
        self.valid_until_ms.store(ms, Ordering::SeqCst);
    }

    fn close(&self) {
        self.valid_until_ms.store(0, Ordering::SeqCst);
        self.alone.store(false, Ordering::SeqCst);
    }
}

enum Role {
    Starting,
    Follower,
    Owner {
        session: Session,
        fence: u64,
        /// The session is being adopted: the published token is still the one to use.
        adopting: bool,
    },
    Alone {
        session: Session,
        /// As the owner's: the last published token is used until adopted.
        adopting: bool,
    },
    Unavailable(SharedSessionError),
}

/// The published session as a follower knows it.
struct Cached {
    token: Arc<SsoToken>,
    state: Option<SessionState>,
    stale: bool,
}

struct State {
    role: Role,
    cached: Option<Cached>,
    /// The highest fencing token seen (published or taken): the next one this process takes
    /// is above it, even from a Redis that lost the counter.
    highest_fence: u64,
    /// When Redis last answered (the grace before the Redis-down policy applies).
    last_answer: Option<std::time::Instant>,
    redis_error: Option<Arc<str>>,
    unreadable: Option<Arc<str>>,
    /// The role `since` belongs to (roles are swapped out briefly while they change).
    shown: SessionRole,
    since: SystemTime,
}

impl SharedSession {
    /// Starts a builder: `redis_url` (`redis://` or `rediss://`), the IBKR `username` whose
    /// session is shared, the fleet's `key`, and `make_session`, which gives a
    /// [`SessionBuilder`] for this username each time this process must hold a session
    /// (owner, or alone): the shared session adds its fence and builds it.
    pub fn builder(
        redis_url: impl Into<String>,
        username: impl Into<String>,
        key: EncryptionKey,
        make_session: impl Fn() -> SessionBuilder + Send + Sync + 'static,
    ) -> SharedSessionBuilder {
        SharedSessionBuilder {
            redis_url: redis_url.into(),
            username: username.into(),
            key,
            make: Box::new(make_session),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            lease_ttl: DEFAULT_SESSION_LEASE_TTL,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            fallback: SessionFallback::default(),
        }
    }

    /// Takes part in the election now (one round, then every third of the lease TTL in the
    /// background); as owner, waits for the session to be adopted or opened (bounded by the
    /// takeover bound). Returns the status then. Calling it again does nothing more.
    pub async fn start(&self) -> SharedStatus {
        if self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return self.status();
        }
        self.inner.round().await;
        elect::spawn_loop(&self.inner);
        let adoption = self
            .inner
            .adoption
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(adoption) = adoption {
            let _ = tokio::time::timeout(self.takeover_bound(), adoption).await;
            if self.role() == SessionRole::Owner {
                self.inner.round().await; // publish it now, not a third of the TTL later
            }
        }
        self.status()
    }

    /// Leaves the fleet cleanly: stops the background rounds, releases the lease if held (the
    /// next owner need not wait for it to expire) and lets go of the session without logging
    /// out (the next owner adopts it), a session held alone too (it may be the fleet's).
    pub async fn stop(&self) {
        if let Some(task) = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        // A last heartbeat first: the session as it is now is what the next owner adopts.
        if self.role() == SessionRole::Owner {
            self.inner.round().await;
        }
        self.inner.fence.close();
        let role = std::mem::replace(&mut self.inner.lock().role, Role::Starting);
        match role {
            Role::Owner { session, .. } => {
                session.release();
                if let Err(e) = self.inner.store.release(&self.inner.holder).await {
                    tracing::debug!(error = %e, "could not release the session lease; it expires by itself");
                }
            }
            Role::Alone { session, .. } => self.inner.leave(&session),
            _ => {}
        }
    }

    /// The longest time from an owner's death (or pause) to another process's holding the
    /// session: the lease TTL and a third of it (a follower looks every third, jittered), plus
    /// the new owner's one tickle to check the session it adopts.
    pub fn takeover_bound(&self) -> Duration {
        self.inner.lease_ttl + self.inner.lease_ttl / 3
    }

    /// The lease's Redis key.
    pub fn lease_key(&self) -> &str {
        self.inner.store.lease_key()
    }

    /// This process's role now.
    pub fn role(&self) -> SessionRole {
        self.inner.lock().role_kind()
    }

    /// The username whose session is shared.
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The fleet's session as this process sees it now.
    pub fn status(&self) -> SharedStatus {
        self.inner.status()
    }
}

#[async_trait::async_trait]
impl SessionSource for SharedSession {
    async fn sso_token(&self) -> Result<Arc<SsoToken>, ibkr_oauth::Error> {
        self.inner.sso_token().await
    }

    async fn invalidate(&self, token: &SsoToken) -> bool {
        self.inner.invalidate(token).await
    }

    async fn open_brokerage(&self) -> Result<(), ibkr_oauth::Error> {
        self.inner.open_brokerage().await
    }
}

impl fmt::Debug for SharedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSession")
            .field("redis", &self.inner.redis)
            .field("username", &self.inner.username)
            .field("lease", &self.inner.store.lease_key())
            .field("key", &self.inner.key)
            .field("role", &self.role())
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
