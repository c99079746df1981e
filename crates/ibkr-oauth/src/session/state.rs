//! [`SessionState`] and [`SessionStatus`]: what the session is, as callers read and watch it.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// The state of the session, as the keeper last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// Opening: no SSO session yet (or a new one is being opened).
    Opening,
    /// The SSO session is open: non-`/iserver` endpoints (portfolio, ...) work; no brokerage
    /// session was asked for.
    ReadOnly,
    /// The brokerage session is open too: `/iserver` endpoints (trading, market data) work.
    Brokerage,
    /// Another session holds the brokerage session for this username (IBKR's app, TWS,
    /// another process); taken over only if the [`Compete`](super::Compete) policy says so.
    Competing,
    /// The SSO session is open, but the brokerage session asked for is not (`no bridge`, not
    /// authenticated); the keeper keeps trying to open it.
    NoBridge,
    /// The SSO session has ended and a new one could not be opened yet; the keeper keeps
    /// trying, with backoff.
    Expired,
    /// Closed by [`Session::close`](super::Session::close) or the drop of its last handle.
    Closed,
}

impl SessionState {
    /// Whether `/v1/api` calls can be made now (the SSO session is open).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            SessionState::ReadOnly
                | SessionState::Brokerage
                | SessionState::Competing
                | SessionState::NoBridge
        )
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::Opening => "opening",
            SessionState::ReadOnly => "read-only",
            SessionState::Brokerage => "brokerage",
            SessionState::Competing => "competing",
            SessionState::NoBridge => "no bridge",
            SessionState::Expired => "expired",
            SessionState::Closed => "closed",
        })
    }
}

/// The session's state with why it is so: what [`Session::status`](super::Session::status)
/// returns and [`Session::watch`](super::Session::watch) sends on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStatus {
    /// The state.
    pub state: SessionState,
    /// Why (IBKR's message or what the keeper saw), sanitised; `None` when all is well.
    pub reason: Option<Arc<str>>,
    /// The last keep-alive failed (IBKR briefly down, a timeout): the session is used as it
    /// was while the keeper retries ("stale but usable").
    pub stale: bool,
    /// When the state last changed (the session's clock).
    pub since: SystemTime,
}

impl SessionStatus {
    pub(crate) fn new(state: SessionState, reason: Option<Arc<str>>, since: SystemTime) -> Self {
        Self {
            state,
            reason,
            stale: false,
            since,
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.state)?;
        if self.stale {
            f.write_str(" (stale)")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// What the session's keeper did, for metrics: given to the hook of
/// [`SessionBuilder::on_event`](super::SessionBuilder::on_event) as it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A keep-alive tickle got IBKR's answer after `latency`.
    Tickled {
        /// From sending the tickle to its whole answer.
        latency: std::time::Duration,
    },
    /// The keeper opened the session again after it ended: a new SSO session
    /// (`brokerage: false`, after a 401) or the brokerage session (`brokerage: true`, after
    /// IBKR said it was not authenticated or another session took it).
    Reopened {
        /// Whether it was the brokerage session (else the SSO session).
        brokerage: bool,
    },
}
