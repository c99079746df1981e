//! [`SharedSessionError`]: why the fleet's shared session gives no SSO token. It reaches callers
//! as the source of an [`ibkr_oauth::Error`] of kind `Custom` (see
//! [`SharedSessionError::find`]).

use std::sync::Arc;

use ibkr_oauth::ErrorKind;

/// Why [`SharedSession`](super::SharedSession) gives no SSO token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedSessionError {
    /// Redis has not answered for longer than the lease TTL, and the policy is
    /// [`SessionFallback::FailClosed`](super::SessionFallback::FailClosed): no process may
    /// open a session of its own, since two would compete for the brokerage session.
    #[error(
        "Redis has not answered for over {lease_ms} ms ({reason}), so the fleet's one session \
         per username cannot be kept and no process opens its own (two would compete for the \
         brokerage session); bring Redis back, or allow each host its own session \
         (SessionFallback::Local, the CLI's --session-fallback local)"
    )]
    RedisUnavailable {
        /// Redis's failure, as last seen (never a password).
        reason: Arc<str>,
        /// The lease TTL: how long a process goes on with the session it knows.
        lease_ms: u64,
    },
    /// No owner has published an SSO session yet (it is opening one, or failing to).
    #[error(
        "no process of the fleet has published an SSO session for this username within {waited_ms} \
         ms; the owner opens it: look at the owner's logs (GET /healthz names the role), or retry"
    )]
    NoSession {
        /// How long this call waited for one.
        waited_ms: u64,
    },
    /// The published entry cannot be opened with this process's key.
    #[error("the fleet's shared SSO session cannot be read: {reason}")]
    Unreadable {
        /// Why (never the value).
        reason: Arc<str>,
    },
    /// A follower was asked to open the brokerage session: only the owner opens it.
    #[error(
        "this process follows the fleet's session owner, which alone opens the brokerage \
         session; it keeps trying by itself (GET /healthz on the owner says why it is not open)"
    )]
    NotOwner,
}

impl SharedSessionError {
    /// What kind of failure this is, as the facade sorts errors.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SharedSessionError::RedisUnavailable { .. } => ErrorKind::Transport,
            SharedSessionError::NoSession { .. } | SharedSessionError::NotOwner => {
                ErrorKind::Session
            }
            SharedSessionError::Unreadable { .. } => ErrorKind::Configuration,
        }
    }

    /// A short, stable code for programs (the gateway's problem+json `code`).
    pub fn code(&self) -> &'static str {
        match self {
            SharedSessionError::RedisUnavailable { .. } => "shared_session_redis_unavailable",
            SharedSessionError::NoSession { .. } => "shared_session_not_published",
            SharedSessionError::Unreadable { .. } => "shared_session_unreadable",
            SharedSessionError::NotOwner => "shared_session_not_owner",
        }
    }

    /// This error inside a facade error (its source), if it is one.
    pub fn find(error: &ibkr_oauth::Error) -> Option<&SharedSessionError> {
        match error {
            // The cause itself, not `source()`: that is the `Arc` around it.
            ibkr_oauth::Error::Custom {
                source: Some(cause),
                ..
            } => (**cause).downcast_ref::<SharedSessionError>(),
            _ => None,
        }
    }
}

impl From<SharedSessionError> for ibkr_oauth::Error {
    fn from(error: SharedSessionError) -> Self {
        ibkr_oauth::Error::custom(
            error.kind(),
            "the fleet's shared session gave no SSO token",
            Some(Box::new(error)),
        )
    }
}
