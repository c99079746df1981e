//! What the session does with IBKR: open an SSO session (single flight, a new access token
//! on a 401), the brokerage session and the state it means, shutting down and the logout on
//! the last drop. The public API over it is in `mod.rs`; the keep-alive in `keeper.rs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{
    BrokerageStatus, Compete, Inner, SessionError, SessionState, SsoToken, config::IpSource,
};
use crate::error::Error;

impl Inner {
    pub(super) fn current(&self) -> Option<Arc<SsoToken>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, token: Option<Arc<SsoToken>>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = token;
    }

    pub(super) fn ensure_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(SessionError::Closed.into());
        }
        Ok(())
    }

    /// Marks the session closed: keeper stopped, token dropped, state `Closed`. Returns the
    /// token to log out, the first time only.
    pub(super) fn shut(&self) -> Option<Arc<SsoToken>> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return None;
        }
        if let Some(keeper) = self.keeper.lock().unwrap_or_else(|p| p.into_inner()).take() {
            keeper.abort();
        }
        let token = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.set_state(SessionState::Closed, None);
        token
    }

    /// Sets the status, notifying watchers only when something changed.
    pub(crate) fn set_status(&self, state: SessionState, reason: Option<Arc<str>>, stale: bool) {
        let now = self.clock.now();
        self.status.send_if_modified(|s| {
            if s.state == state && s.reason == reason && s.stale == stale {
                return false;
            }
            if s.state != state {
                s.since = now;
                tracing::info!(
                    from = %s.state,
                    to = %state,
                    reason = reason.as_deref().unwrap_or(""),
                    "session state changed"
                );
            }
            s.state = state;
            s.reason = reason;
            s.stale = stale;
            true
        });
    }

    pub(super) fn set_state(&self, state: SessionState, reason: Option<Arc<str>>) {
        self.set_status(state, reason, false);
    }

    pub(super) fn compete_at_open(&self) -> bool {
        self.config.compete != Compete::Never
    }

    async fn public_ip(&self) -> Result<IpAddr, Error> {
        match &self.config.ip {
            IpSource::Fixed(ip) => Ok(*ip),
            IpSource::Resolver(resolver) => resolver.public_ip().await.map_err(|e| {
                SessionError::IpResolver {
                    message: Arc::from(crate::sanitize(&e.to_string(), 200)),
                }
                .into()
            }),
        }
    }

    /// Opens a new SSO session, single flight: unless `refused` is given and is no longer the
    /// current token (someone else re-opened already), or an attempt failed while this caller
    /// waited (it gets that error).
    pub(crate) async fn open_sso(
        &self,
        refused: Option<&SsoToken>,
    ) -> Result<Arc<SsoToken>, Error> {
        let seen = self.attempts.load(Ordering::SeqCst);
        let mut last_failure = self.opening.lock().await;
        self.ensure_open()?;
        if let Some(current) = self.current() {
            if refused.is_none_or(|r| !current.same(r)) {
                return Ok(current);
            }
        }
        if self.attempts.load(Ordering::SeqCst) != seen {
            if let Some(error) = last_failure.clone() {
                return Err(error);
            }
        }
        let result = self.create().await;
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(token) => {
                *last_failure = None;
                let token = Arc::new(token);
                self.set_current(Some(Arc::clone(&token)));
                drop(last_failure);
                self.after_open(&token).await;
                Ok(token)
            }
            Err(error) => {
                *last_failure = Some(error.clone());
                // A refused token is dead: callers open a new session rather than use it.
                if let Some(refused) = refused {
                    let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
                    if current.as_ref().is_some_and(|c| c.same(refused)) {
                        *current = None;
                    }
                }
                let state =
                    if refused.is_some() || self.status.borrow().state != SessionState::Opening {
                        SessionState::Expired
                    } else {
                        SessionState::Opening
                    };
                self.set_state(state, Some(Arc::from(error.to_string())));
                Err(error)
            }
        }
    }

    /// sso-sessions with the current access token; on a 401 the token is reported refused and
    /// the call made once more with a new one. The fence is checked again right before each
    /// send (the IP lookup and the access token may take a while; the pacer's wait is fenced
    /// in `calls`).
    async fn create(&self) -> Result<SsoToken, Error> {
        self.check_fence()?;
        let ip = self.public_ip().await?;
        let mut retried = false;
        loop {
            let access = self.tokens.access_token().await?;
            self.check_fence()?;
            match self
                .calls
                .create_sso(&access, &self.config.credential, ip)
                .await
            {
                Err(Error::Session(e)) if e.is_unauthorized() && !retried => {
                    tracing::info!(
                        "IBKR refused the access token for a new SSO session (401); trying once more with a new one"
                    );
                    self.tokens.invalidate(&access).await;
                    retried = true;
                }
                other => return other,
            }
        }
    }

    /// After a new SSO session: the brokerage session if asked, and the state.
    async fn after_open(&self, token: &SsoToken) {
        if self.want_brokerage.load(Ordering::SeqCst) {
            // Its outcome is in the state; the SSO session is open either way.
            let _ = self.init_brokerage(token, self.compete_at_open()).await;
        } else {
            self.set_state(SessionState::ReadOnly, None);
        }
    }

    /// `ssodh/init`; a `500 failed to generate sso dh token` is tried once more with
    /// `compete: false` (new or ineligible accounts). Sets the state from the answer.
    pub(crate) async fn init_brokerage(
        &self,
        sso: &SsoToken,
        compete: bool,
    ) -> Result<BrokerageStatus, Error> {
        self.check_fence()?;
        let mut answer = self.calls.init(sso, compete).await;
        if compete {
            if let Err(e) = &answer {
                if e.response().is_some_and(|r| r.status.is_server_error()) {
                    tracing::info!(error = %e, "ssodh/init failed; trying once more with compete: false");
                    self.check_fence()?;
                    answer = self.calls.init(sso, false).await;
                }
            }
        }
        match answer {
            Ok(status) => {
                self.apply_brokerage(&status);
                if status.competing && !status.authenticated {
                    return Err(SessionError::Competing {
                        reason: status.message.clone(),
                    }
                    .into());
                }
                if !status.authenticated {
                    return Err(SessionError::NoBridge {
                        reason: status.message.clone(),
                    }
                    .into());
                }
                Ok(status)
            }
            // Fenced after the pacer's wait: nothing was sent, the state is not this call's.
            Err(e @ SessionError::Fenced) => Err(e.into()),
            Err(e) => {
                self.set_state(SessionState::NoBridge, Some(Arc::from(e.to_string())));
                Err(e.into())
            }
        }
    }

    /// The state a brokerage status means.
    pub(super) fn apply_brokerage(&self, status: &BrokerageStatus) {
        let (state, reason) = if status.competing {
            (
                SessionState::Competing,
                status
                    .message
                    .clone()
                    .or_else(|| Some(Arc::from("another session holds the brokerage session"))),
            )
        } else if status.authenticated {
            (SessionState::Brokerage, None)
        } else {
            (
                SessionState::NoBridge,
                status
                    .message
                    .clone()
                    .or_else(|| Some(Arc::from("the brokerage session is not authenticated"))),
            )
        };
        self.set_state(state, reason);
    }
}

impl Drop for Inner {
    /// The last handle is gone: log out, best effort, if a runtime can run it.
    fn drop(&mut self) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        if let Some(keeper) = self
            .keeper
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            keeper.abort();
        }
        let Some(token) = self
            .current
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("session dropped outside a tokio runtime: no logout");
            return;
        };
        let calls = Arc::clone(&self.calls);
        let limit = self.timing.logout_timeout;
        runtime.spawn(async move {
            match tokio::time::timeout(limit, calls.logout(&token)).await {
                Ok(Ok(())) => tracing::debug!("session dropped: logged out"),
                Ok(Err(e)) => tracing::debug!(error = %e, "session dropped: logout failed"),
                Err(_) => tracing::debug!("session dropped: logout timed out"),
            }
        });
    }
}
