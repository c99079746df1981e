//! What the fleet's session hands out: the SSO token (the owner's own session's, or the
//! published one), refusals reported, and the status.

use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::session::{Session, SsoToken};

use super::entry;
use super::{Inner, Role, SessionRole, SharedSessionError, SharedStatus};

/// How often a caller waiting for a published session looks in Redis itself.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Where a token comes from now.
enum From {
    Own(Session),
    Published(Arc<SsoToken>),
    Failed(SharedSessionError),
    Wait,
}

impl Inner {
    fn from(&self) -> From {
        let state = self.lock();
        match &state.role {
            Role::Owner {
                session, adopting, ..
            }
            | Role::Alone { session, adopting } => match (&state.cached, adopting) {
                // Until the adoption is done, the published token is the one to use.
                (Some(cached), true) => From::Published(Arc::clone(&cached.token)),
                _ => From::Own(session.clone()),
            },
            Role::Unavailable(error) => From::Failed(error.clone()),
            Role::Follower | Role::Starting => match (&state.cached, &state.unreadable) {
                (Some(cached), _) => From::Published(Arc::clone(&cached.token)),
                (None, Some(reason)) => From::Failed(SharedSessionError::Unreadable {
                    reason: Arc::clone(reason),
                }),
                (None, None) => From::Wait,
            },
        }
    }

    pub(super) async fn sso_token(&self) -> Result<Arc<SsoToken>, ibkr_oauth::Error> {
        let limit = self.lease_ttl + self.lease_ttl / 3;
        let started = tokio::time::Instant::now();
        loop {
            match self.from() {
                From::Own(session) => return session.sso_token().await,
                From::Published(token) => return Ok(token),
                From::Failed(error) => return Err(error.into()),
                From::Wait => {}
            }
            if started.elapsed() >= limit {
                return Err(SharedSessionError::NoSession {
                    waited_ms: super::millis(limit),
                }
                .into());
            }
            let changed = self.changed.notified();
            let _ = tokio::time::timeout(LOOK_EVERY, changed).await;
            if matches!(self.from(), From::Wait) {
                self.follow().await;
            }
        }
    }

    /// IBKR refused `token`: the owner opens a new session; a follower reports it and waits
    /// (up to the takeover bound) for the owner's new one.
    pub(super) async fn invalidate(&self, token: &SsoToken) -> bool {
        let published = match self.from() {
            From::Own(session) => {
                let replaced = session.invalidate(token).await;
                self.wake.notify_one(); // publish the new one at once
                return replaced;
            }
            From::Published(current) => current,
            From::Failed(_) | From::Wait => return false,
        };
        if !published.same(token) {
            return true; // already replaced
        }
        let fingerprint = entry::token_fingerprint(&self.key, token.secret());
        if let Err(error) = self
            .store
            .report_refused(&fingerprint, self.lease_ttl)
            .await
        {
            tracing::debug!(%error, "could not report the refused SSO token to the owner");
        }
        let limit = self.lease_ttl + self.lease_ttl / 3;
        let started = tokio::time::Instant::now();
        while started.elapsed() < limit {
            let changed = self.changed.notified();
            let _ = tokio::time::timeout(LOOK_EVERY, changed).await;
            self.follow().await;
            match self.from() {
                From::Published(current) if !current.same(token) => return true,
                From::Own(_) => return true,
                From::Failed(_) => return false,
                _ => {}
            }
        }
        false
    }

    pub(super) async fn open_brokerage(&self) -> Result<(), ibkr_oauth::Error> {
        match self.from() {
            From::Own(session) => session.open_brokerage().await.map(|_| ()),
            From::Failed(error) => Err(error.into()),
            From::Published(_) | From::Wait => Err(SharedSessionError::NotOwner.into()),
        }
    }

    pub(super) fn status(&self) -> SharedStatus {
        let state = self.lock();
        let role = state.role_kind();
        let (session_state, stale, reason, error) = match &state.role {
            Role::Owner { session, .. } | Role::Alone { session, .. } => {
                let status = session.status();
                (Some(status.state), status.stale, status.reason, None)
            }
            Role::Unavailable(error) => (None, false, None, Some(error.clone())),
            Role::Follower | Role::Starting => match (&state.cached, &state.unreadable) {
                (Some(cached), _) => (cached.state, cached.stale, None, None),
                (None, Some(reason)) => (
                    None,
                    false,
                    None,
                    Some(SharedSessionError::Unreadable {
                        reason: Arc::clone(reason),
                    }),
                ),
                (None, None) => (
                    None,
                    false,
                    Some(Arc::from("no session published by the owner yet")),
                    None,
                ),
            },
        };
        let reason = reason.or_else(|| {
            (role != SessionRole::Unavailable)
                .then(|| state.redis_error.clone())
                .flatten()
        });
        SharedStatus {
            role,
            state: session_state,
            stale,
            reason,
            error,
            fence: state.highest_fence.max(match &state.role {
                Role::Owner { fence, .. } => *fence,
                _ => 0,
            }),
            since: state.since,
        }
    }
}
