//! The election: one round every third of the lease TTL (jittered). The owner renews its lease
//! and publishes its session (fenced); the others try to take the lease, and follow the
//! published session when they cannot; when Redis does not answer, `outage` decides.

use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use ibkr_oauth::session::{Session, SessionState, SsoToken};

use super::entry::{self, Published};
use super::store::Renewed;
use super::{Cached, ENTRY_TTL, Inner, Role, SessionRole, State};

/// Starts the background rounds (holding the session weakly: the last handle's drop ends them).
pub(super) fn spawn_loop(inner: &Arc<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(inner);
    let wake = Arc::clone(&inner.wake);
    let every = inner.lease_ttl / 3;
    let task = runtime.spawn(run(weak, wake, every));
    *inner.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
}

async fn run(weak: Weak<Inner>, wake: Arc<tokio::sync::Notify>, every: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(crate::shared::jitter(every)) => {}
            () = wake.notified() => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        inner.round().await;
    }
}

impl Inner {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One round of the election.
    pub(super) async fn round(self: &Arc<Self>) {
        let _one_at_a_time = self.rounds.lock().await;
        let owner = match &self.lock().role {
            Role::Owner { session, fence, .. } => Some((session.clone(), *fence)),
            _ => None,
        };
        match owner {
            Some((session, fence)) => self.owner_round(&session, fence).await,
            None => self.contend().await,
        }
    }

    /// The owner's heartbeat: renew, publish, act on a follower's refusal report.
    async fn owner_round(self: &Arc<Self>, session: &Session, fence: u64) {
        let sent = std::time::Instant::now();
        let sealed = self.seal(session, fence);
        let renewed = self
            .store
            .renew(
                &self.holder,
                fence,
                self.lease_ttl,
                sealed.as_deref(),
                ENTRY_TTL,
            )
            .await;
        match renewed {
            Ok(Renewed::Held(refused)) => {
                self.fence.extend_to(sent + self.lease_ttl.mul_f64(0.75));
                self.answered();
                // Taken from Redis by the renewal itself (read and deleted at once).
                let Some(refused) = refused else { return };
                if let Some(current) = session.held_token() {
                    if entry::token_fingerprint(&self.key, current.secret())[..] == refused[..] {
                        tracing::info!(username = %self.username, "a follower reports IBKR refused the fleet's SSO token; opening a new session");
                        // In the background: the heartbeat must not wait for IBKR.
                        let (session, wake) = (session.clone(), Arc::clone(&self.wake));
                        tokio::spawn(async move {
                            session.invalidate(&current).await;
                            wake.notify_one(); // publish it at once
                        });
                    }
                }
            }
            Ok(Renewed::Lost) => {
                tracing::warn!(username = %self.username, "the session lease passed to another process; following it");
                self.fence.close();
                self.set_role(Role::Follower);
                session.release();
                self.follow().await;
            }
            Err(error) => {
                self.redis_failed(&error);
                if !self.fence.allows() {
                    self.redis_down().await;
                }
            }
        }
    }

    /// Not the owner: take the lease if it is free, else follow.
    async fn contend(self: &Arc<Self>) {
        let sent = std::time::Instant::now();
        let seen = self.lock().highest_fence;
        match self.store.acquire(&self.holder, self.lease_ttl, seen).await {
            Ok(Some(fence)) => {
                self.fence.extend_to(sent + self.lease_ttl.mul_f64(0.75));
                self.answered();
                {
                    let mut state = self.lock();
                    state.highest_fence = state.highest_fence.max(fence);
                }
                self.become_owner(fence).await;
            }
            Ok(None) => {
                self.answered();
                let previous = std::mem::replace(&mut self.lock().role, Role::Starting);
                // This host's own session stops acting before the owner's is followed (the
                // read below may take a while): two sessions must not compete meanwhile.
                if let Role::Alone { session, .. } = previous {
                    tracing::warn!(username = %self.username, "Redis answers again and another process owns the session; leaving this host's own");
                    self.fence.close();
                    self.leave(&session);
                }
                self.set_role(Role::Follower);
                self.follow().await;
            }
            Err(error) => {
                self.redis_failed(&error);
                let grace_over = self
                    .lock()
                    .last_answer
                    .is_none_or(|at| at.elapsed() >= self.lease_ttl);
                if grace_over {
                    self.redis_down().await;
                }
            }
        }
    }

    /// Took the lease: keep this host's own session (after a Redis outage), adopt the
    /// published one, or open one; in the background, so the heartbeat goes on meanwhile.
    async fn become_owner(self: &Arc<Self>, fence: u64) {
        self.fence
            .alone
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let previous = std::mem::replace(&mut self.lock().role, Role::Starting);
        if let Role::Alone { session, .. } = previous {
            tracing::info!(username = %self.username, fence, "Redis answers again; this host's own session becomes the fleet's");
            self.set_role(Role::Owner {
                session,
                fence,
                adopting: false,
            });
            return;
        }
        let published = match self.store.read().await {
            Ok(Some(value)) => entry::open(&self.key, &self.store.entry, &value)
                .ok()
                .filter(|p| p.username == self.username),
            _ => None,
        };
        let session = match self.build_session() {
            Ok(session) => session,
            Err(error) => {
                tracing::error!(%error, "the session's settings are refused; cannot own it");
                let _ = self.store.release(&self.holder).await;
                self.fence.close();
                self.set_role(Role::Follower);
                return;
            }
        };
        let token = match published {
            Some(p) => {
                let secret = p.token.clone();
                self.take(p); // the published token is the one to use while adopting it
                Some(secret)
            }
            // No entry (Redis lost its data): the session this process knew, if any.
            None => self
                .lock()
                .cached
                .as_ref()
                .map(|c| c.token.secret().clone()),
        };
        tracing::info!(username = %self.username, fence, adopting = token.is_some(), "this process owns the fleet's session now");
        self.set_role(Role::Owner {
            session: session.clone(),
            fence,
            adopting: token.is_some(),
        });
        self.hold(session, token);
    }

    /// Adopts `token` (or opens a session) in the background, so the heartbeat goes on; until
    /// it is done, callers get the published token (never a second session opened meanwhile).
    pub(super) fn hold(self: &Arc<Self>, session: Session, token: Option<secrecy::SecretString>) {
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let outcome = match token {
                Some(token) => session.adopt(SsoToken::new(token)).await,
                None => session.open().await,
            };
            match outcome {
                Ok(status) => tracing::info!(%status, "session ready"),
                Err(error) => {
                    tracing::warn!(%error, "the session is not open yet; the keeper retries")
                }
            }
            if let Role::Owner { adopting, .. } | Role::Alone { adopting, .. } =
                &mut this.lock().role
            {
                *adopting = false;
            }
            this.wake.notify_one(); // publish at once
            this.changed.notify_waiters();
        });
        *self.adoption.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// A session for this process, with the fence.
    pub(super) fn build_session(&self) -> Result<Session, ibkr_oauth::ConfigError> {
        let fence = Arc::clone(&self.fence);
        (self.make)().fence(move || fence.allows()).build()
    }

    /// Reads the published session.
    pub(super) async fn follow(&self) {
        match self.store.read().await {
            Ok(Some(value)) => match entry::open(&self.key, &self.store.entry, &value) {
                Ok(published) => self.take(published),
                Err(reason) => {
                    let mut state = self.lock();
                    if state.unreadable.is_none() {
                        tracing::warn!(username = %self.username, %reason, "the fleet's shared session cannot be read");
                    }
                    state.unreadable = Some(Arc::from(reason));
                }
            },
            Ok(None) => {}
            Err(error) => self.redis_failed(&error),
        }
    }

    pub(super) fn set_role(&self, role: Role) {
        let mut state = self.lock();
        if state.shown != role.kind() {
            state.shown = role.kind();
            state.since = SystemTime::now();
        }
        state.role = role;
    }

    /// A published session read: cached (a new `SsoToken` only when the token changed).
    fn take(&self, published: Published) {
        use secrecy::ExposeSecret as _;
        let mut state = self.lock();
        state.unreadable = None;
        if published.username != self.username {
            return; // another username's
        }
        // Not compared with the highest fence seen: only the holder of the lease and of the
        // current fence writes the entry (the renewal script checks both), and after Redis
        // lost its data a lower fence can be the current owner's.
        state.highest_fence = state.highest_fence.max(published.fence);
        let same = state
            .cached
            .as_ref()
            .is_some_and(|c| c.token.secret().expose_secret() == published.token.expose_secret());
        let token = match state.cached.take() {
            Some(cached) if same => cached.token,
            _ => Arc::new(SsoToken::new(published.token)),
        };
        state.cached = Some(Cached {
            token,
            state: parse_state(&published.state),
            stale: published.stale,
        });
        drop(state);
        self.changed.notify_waiters();
    }

    /// The owner's entry: its current token and state, sealed.
    fn seal(&self, session: &Session, fence: u64) -> Option<Vec<u8>> {
        let token = session.held_token()?;
        let status = session.status();
        let published = Published {
            token: token.secret().clone(),
            username: self.username.clone(),
            fence,
            state: status.state.to_string(),
            stale: status.stale,
            written_ms: u64::try_from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis()),
            )
            .unwrap_or(u64::MAX),
        };
        entry::seal(&self.key, &self.store.entry, &published)
    }
}

impl Role {
    pub(super) fn kind(&self) -> SessionRole {
        match self {
            Role::Starting => SessionRole::Starting,
            Role::Follower => SessionRole::Follower,
            Role::Owner { .. } => SessionRole::Owner,
            Role::Alone { .. } => SessionRole::Alone,
            Role::Unavailable(_) => SessionRole::Unavailable,
        }
    }
}

impl State {
    pub(super) fn role_kind(&self) -> SessionRole {
        self.role.kind()
    }
}

/// A state as the owner published it (its display text).
pub(super) fn parse_state(text: &str) -> Option<SessionState> {
    Some(match text {
        "opening" => SessionState::Opening,
        "read-only" => SessionState::ReadOnly,
        "brokerage" => SessionState::Brokerage,
        "competing" => SessionState::Competing,
        "no bridge" => SessionState::NoBridge,
        "expired" => SessionState::Expired,
        "closed" => SessionState::Closed,
        _ => return None,
    })
}
