//! Handing a session from one process to another (a fleet with one session owner per
//! username, such as `ibkr-oauth-redis`'s shared session): [`Session::adopt`] takes over an SSO
//! session another process opened, [`Session::held_token`] reads the token without opening one,
//! [`Session::release`] lets go of it without logging out, and the
//! [fence](super::SessionBuilder::fence) stops a process that may have lost the ownership from
//! acting for the session.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Inner, Session, SessionError, SessionState, SessionStatus, SsoToken, keeper};
use crate::error::Error;

/// Says whether this process may act for the session now; see
/// [`SessionBuilder::fence`](super::SessionBuilder::fence).
pub(crate) type Fence = Arc<dyn Fn() -> bool + Send + Sync>;

impl Session {
    /// Takes over the SSO session of `token`, opened by another process (a fleet's former
    /// owner), instead of opening a new one: the token is checked with one tickle first. If
    /// IBKR answers, it is kept and healed as the keeper would (the brokerage session opened
    /// if asked and not open; a competing session is reported, not fought, unless the policy
    /// is [`Compete::Always`](super::Compete::Always)); if IBKR says the session has ended
    /// (401), a new SSO session is opened; if IBKR does not answer, the token is kept (stale)
    /// and the keeper retries. Starts the keeper. Returns the status then.
    ///
    /// Does nothing (and returns the status) when the session already holds a token.
    ///
    /// # Errors
    /// [`SessionError::Closed`] after [`close`](Self::close) or [`release`](Self::release);
    /// [`SessionError::Fenced`] when the fence says no.
    pub async fn adopt(&self, token: SsoToken) -> Result<SessionStatus, Error> {
        self.inner.ensure_open()?;
        self.inner.check_fence()?;
        if self.inner.current().is_some() {
            return Ok(self.status());
        }
        {
            // Under the opening lock: a caller opening meanwhile waits and then finds it.
            let _opening = self.inner.opening.lock().await;
            if self.inner.current().is_some() {
                return Ok(self.status());
            }
            *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(token));
        }
        tracing::info!("adopting an SSO session opened by another process; checking it");
        // One keeper round now: tickle, and heal what it finds (a new session on 401).
        let _ = self.inner.keep_once().await;
        keeper::start(&self.inner);
        Ok(self.status())
    }

    /// The SSO token held now, without opening a session (`None` before the first open,
    /// after a failed re-open, or once closed).
    pub fn held_token(&self) -> Option<Arc<SsoToken>> {
        self.inner.current()
    }

    /// Lets go of the session without logging out, so that another process can
    /// [adopt](Self::adopt) it: the keeper stops, the token is forgotten, the state becomes
    /// [`Closed`](SessionState::Closed) and dropping the last handle no longer logs out.
    /// Calling it again, or after [`close`](Self::close), does nothing.
    pub fn release(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(keeper) = self
            .inner
            .keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            keeper.abort();
        }
        self.inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.inner.set_state(
            SessionState::Closed,
            Some(Arc::from("released to another process")),
        );
    }
}

impl Inner {
    /// Whether the fence (if any) lets this process act for the session now.
    pub(crate) fn may_act(&self) -> bool {
        self.fence.get().is_none_or(|fence| fence())
    }

    /// [`SessionError::Fenced`] when the fence says no.
    pub(crate) fn check_fence(&self) -> Result<(), Error> {
        if self.may_act() {
            Ok(())
        } else {
            Err(SessionError::Fenced.into())
        }
    }
}

impl Session {
    /// Sets the fence (once; the builder's).
    pub(crate) fn set_fence(&self, fence: Fence) {
        let _ = self.inner.fence.set(fence);
    }
}
