//! The session the gateway holds: its own ([`Session`]), or the fleet's with `--redis`
//! ([`SharedSession`]: one owner per username opens and tickles it, the others forward with
//! the token it publishes). [`View`] is what the answered endpoints and `/healthz` read.

use std::sync::Arc;
use std::time::SystemTime;

use ibkr_oauth::session::{Session, SessionSource, SessionState};
use ibkr_oauth_redis::{SessionRole, SharedSession, SharedSessionError};

/// The session behind a gateway.
#[derive(Debug, Clone)]
pub enum HeldSession {
    /// This process's own session.
    Own(Session),
    /// The fleet's session through Redis.
    Shared(SharedSession),
}

impl From<Session> for HeldSession {
    fn from(session: Session) -> Self {
        HeldSession::Own(session)
    }
}

impl From<SharedSession> for HeldSession {
    fn from(shared: SharedSession) -> Self {
        HeldSession::Shared(shared)
    }
}

/// The held session's state as the gateway reports it.
#[derive(Debug, Clone)]
pub(crate) struct View {
    /// `None` when no session is known (no owner published one, Redis down and failing closed).
    pub(crate) state: Option<SessionState>,
    pub(crate) stale: bool,
    pub(crate) reason: Option<Arc<str>>,
    pub(crate) since: SystemTime,
    /// With `--redis`: this process's role and the owner's fencing token.
    pub(crate) role: Option<(SessionRole, u64)>,
    /// Why no SSO token can be had (the fleet's typed error).
    pub(crate) error: Option<SharedSessionError>,
}

impl View {
    /// Whether `/v1/api` calls can be made now.
    pub(crate) fn is_open(&self) -> bool {
        self.error.is_none() && self.state.is_some_and(SessionState::is_open)
    }

    pub(crate) fn is(&self, state: SessionState) -> bool {
        self.state == Some(state)
    }
}

impl HeldSession {
    /// The SSO tokens for forwarding.
    pub(crate) fn source(&self) -> Arc<dyn SessionSource> {
        match self {
            HeldSession::Own(session) => Arc::new(session.clone()),
            HeldSession::Shared(shared) => Arc::new(shared.clone()),
        }
    }

    pub(crate) fn username(&self) -> &str {
        match self {
            HeldSession::Own(session) => session.config().credential(),
            HeldSession::Shared(shared) => shared.username(),
        }
    }

    pub(crate) fn view(&self) -> View {
        match self {
            HeldSession::Own(session) => {
                let status = session.status();
                View {
                    state: Some(status.state),
                    stale: status.stale,
                    reason: status.reason,
                    since: status.since,
                    role: None,
                    error: None,
                }
            }
            HeldSession::Shared(shared) => {
                let status = shared.status();
                let reason = status
                    .error
                    .as_ref()
                    .map(|e| Arc::from(e.to_string()))
                    .or(status.reason);
                View {
                    state: status.state,
                    stale: status.stale,
                    reason,
                    since: status.since,
                    role: Some((status.role, status.fence)),
                    error: status.error,
                }
            }
        }
    }
}
