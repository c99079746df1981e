//! When Redis does not answer: the session known is kept for one lease TTL after Redis last
//! answered, then the [`SessionFallback`] policy applies (fail closed, or a session of this
//! host's own); and leaving a session held alone when Redis answers again.

use std::sync::Arc;

use ibkr_oauth::session::Session;

use super::{Cached, Inner, Role, SessionFallback, SharedSessionError};
use crate::conn::StoreError;

impl Inner {
    /// Lets go of a session this host held alone, without logging out: it may be the fleet's
    /// (adopted while Redis was down, or kept by the former owner), and a logout would end it
    /// for all. One this host opened itself idles out at IBKR after a few minutes.
    pub(super) fn leave(&self, session: &Session) {
        session.release();
    }

    /// Redis has not answered for a lease TTL: the policy applies.
    pub(super) async fn redis_down(self: &Arc<Self>) {
        let role = std::mem::replace(&mut self.lock().role, Role::Starting);
        match (self.fallback, role) {
            (
                SessionFallback::Local,
                Role::Owner {
                    session, adopting, ..
                }
                | Role::Alone { session, adopting },
            ) => {
                self.fence
                    .alone
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.set_role(Role::Alone { session, adopting });
            }
            (SessionFallback::Local, _) => {
                self.fence
                    .alone
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let session = match self.build_session() {
                    Ok(session) => session,
                    Err(error) => {
                        tracing::error!(%error, "the session's settings are refused");
                        self.set_role(Role::Unavailable(self.unavailable()));
                        return;
                    }
                };
                let token = self
                    .lock()
                    .cached
                    .as_ref()
                    .map(|c| c.token.secret().clone());
                tracing::warn!(username = %self.username, "Redis is unavailable; this host holds a session of its own (--session-fallback local)");
                self.set_role(Role::Alone {
                    session: session.clone(),
                    adopting: token.is_some(),
                });
                self.hold(session, token);
            }
            (SessionFallback::FailClosed, role) => {
                if let Role::Owner { session, .. } = role {
                    // Remembered (not used while unavailable): when Redis answers again with
                    // its data lost, the next owner adopts it rather than opening another.
                    if let Some(token) = session.held_token() {
                        let status = session.status();
                        self.lock().cached = Some(Cached {
                            token,
                            state: Some(status.state),
                            stale: status.stale,
                        });
                    }
                    session.release();
                }
                self.fence.close();
                let error = self.unavailable();
                tracing::warn!(username = %self.username, %error, "failing closed");
                self.set_role(Role::Unavailable(error));
                self.changed.notify_waiters();
            }
        }
    }

    pub(super) fn unavailable(&self) -> SharedSessionError {
        SharedSessionError::RedisUnavailable {
            reason: self
                .lock()
                .redis_error
                .clone()
                .unwrap_or_else(|| Arc::from("no answer")),
            lease_ms: super::millis(self.lease_ttl),
        }
    }

    pub(super) fn answered(&self) {
        let mut state = self.lock();
        state.last_answer = Some(std::time::Instant::now());
        if state.redis_error.take().is_some() {
            tracing::warn!(username = %self.username, "Redis answers again");
        }
    }

    pub(super) fn redis_failed(&self, error: &StoreError) {
        let mut state = self.lock();
        if state.redis_error.is_none() {
            tracing::warn!(username = %self.username, %error, "Redis does not answer; the session known is kept for one lease TTL");
        }
        state.redis_error = Some(Arc::from(error.to_string()));
    }
}
