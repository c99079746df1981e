//! [`SharedSessionBuilder`]: the shared session's settings, checked before any I/O.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::store::SessionStore;
use super::{
    FenceClock, Inner, MakeSession, Role, SessionFallback, SessionRole, SharedSession, State,
};
use crate::error::Error;
use crate::key::EncryptionKey;
use crate::source::{check_name, open_client, redacted_url};

/// Configures a [`SharedSession`]; [`build`](Self::build) checks everything, no I/O.
#[must_use = "a builder does nothing until build() is called"]
pub struct SharedSessionBuilder {
    pub(super) redis_url: String,
    pub(super) username: String,
    pub(super) key: EncryptionKey,
    pub(super) make: MakeSession,
    pub(super) key_prefix: String,
    pub(super) lease_ttl: Duration,
    pub(super) command_timeout: Duration,
    pub(super) fallback: SessionFallback,
}

impl SharedSessionBuilder {
    /// The prefix of the Redis keys (default `ibkr-oauth:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The owner's lease TTL (default 10 s, at least 300 ms): the takeover bound is a third
    /// more. Every process of the fleet should use the same.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The bound on each Redis command (default 500 ms); keep it well under the lease TTL.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// What to do when Redis does not answer (default [`SessionFallback::FailClosed`]).
    pub fn fallback(mut self, fallback: SessionFallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Checks the settings and builds the shared session (no I/O until
    /// [`start`](SharedSession::start)).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a URL that is not `redis://` or `rediss://` with a host;
    /// [`Error::InvalidConfig`] for an empty or odd username or prefix, a lease TTL under
    /// 300 ms, or a command timeout that is zero or not under a third of the lease TTL.
    pub fn build(self) -> Result<SharedSession, Error> {
        let redis = redacted_url(&self.redis_url)?;
        let client = open_client(&self.redis_url, None)?;
        check_name("username", &self.username, false)?;
        check_name("key prefix", &self.key_prefix, true)?;
        if self.username.contains(['{', '}']) {
            return Err(Error::InvalidConfig("the username holds braces".into()));
        }
        if self.lease_ttl < Duration::from_millis(300) {
            return Err(Error::InvalidConfig(
                "the session lease TTL is under 300 ms; use a few seconds (default 10 s)".into(),
            ));
        }
        if self.command_timeout.is_zero() || self.command_timeout >= self.lease_ttl / 3 {
            return Err(Error::InvalidConfig(format!(
                "a session lease of {} ms leaves no room for a renewal (every third of it) within \
                 the {} ms command timeout; give a lease over three times the command timeout",
                self.lease_ttl.as_millis(),
                self.command_timeout.as_millis()
            )));
        }
        let store = SessionStore::new(
            client,
            &self.key_prefix,
            &self.username,
            self.command_timeout,
        );
        Ok(SharedSession {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                key: self.key,
                username: self.username,
                holder: crate::shared::holder_id(),
                lease_ttl: self.lease_ttl,
                fallback: self.fallback,
                redis,
                make: self.make,
                fence: Arc::new(FenceClock {
                    base: std::time::Instant::now(),
                    valid_until_ms: AtomicU64::new(0),
                    alone: AtomicBool::new(false),
                }),
                state: Mutex::new(State {
                    role: Role::Starting,
                    cached: None,
                    highest_fence: 0,
                    last_answer: None,
                    redis_error: None,
                    unreadable: None,
                    shown: SessionRole::Starting,
                    since: SystemTime::now(),
                }),
                changed: Notify::new(),
                wake: Arc::new(Notify::new()),
                task: Mutex::new(None),
                adoption: Mutex::new(None),
                rounds: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl fmt::Debug for SharedSessionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSessionBuilder")
            .field("username", &self.username)
            .field("key", &self.key)
            .field("lease_ttl", &self.lease_ttl)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}
