//! [`Session`]: from the access token to an SSO session (and, when asked, the brokerage
//! session) that stays open, for IBKR's `/v1/api` endpoints.
//!
//! ```text
//! TokenSource ──> POST /gw/api/v1/sso-sessions (a JWS signed with the client key) ──> SSO bearer
//!                 GET  /v1/api/sso/validate
//!                 POST /v1/api/iserver/auth/ssodh/init   (the brokerage session, when asked)
//!   keeper:       GET  /v1/api/tickle about every 60 s, heals what it finds
//!   close / drop: POST /v1/api/logout
//! ```
//!
//! ```no_run
//! # async fn run() -> Result<(), ibkr_oauth::Error> {
//! use ibkr_oauth::provider::TokenProvider;
//! use ibkr_oauth::session::{Session, SessionConfig};
//! use ibkr_oauth::{PrivateKey, Signer, TokenClient};
//!
//! let key = PrivateKey::from_pem_file("private.pem")?;
//! let signer = Signer::builder("my-client-id", "main", key).build()?;
//! let tokens = TokenProvider::builder(TokenClient::new()?, signer.clone())
//!     .scope("sso-sessions.write")
//!     .build()?;
//! let config = SessionConfig::builder("my-ibkr-username")
//!     .ip("203.0.113.7")
//!     .brokerage(true)
//!     .build()?;
//! let session = Session::builder(tokens, signer, config).build()?;
//! let status = session.open().await?; // e.g. "brokerage"
//! println!("{status}");
//! let mut changes = session.watch();
//! while changes.changed().await.is_ok() {
//!     println!("session: {}", *changes.borrow());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # States
//! [`SessionState`]: `Opening` -> `ReadOnly` (SSO session only) or `Brokerage` (`/iserver`
//! too); `Competing` (another session holds the brokerage session), `NoBridge` (the brokerage
//! session asked for is not open), `Expired` (the SSO session ended and no new one could be
//! had yet), `Closed`. [`Session::status`] reads it, [`Session::watch`] follows it; `stale`
//! says the last keep-alive failed while the session is still used as it was.
//!
//! # How it heals
//! - **Keep-alive**: a tickle every [`tickle_interval`](SessionConfigBuilder::tickle_interval)
//!   (default 60 s, minus up to a tenth of jitter, never more than one a second).
//! - **Not authenticated** (tickle or a call): the brokerage session is opened again
//!   (`ssodh/init`), if it was asked for.
//! - **401** on a `/v1/api` call: a new SSO session; **401** on sso-sessions: the access
//!   token is reported to its source ([`TokenSource::invalidate`]) and a new one is used, once.
//! - **IBKR briefly down, timeouts**: the session stays usable (`stale`), the keeper retries
//!   with bounded, jittered backoff ([`SessionBuilder::backoff`]); it never dies on an error
//!   and never retries faster than once a second.
//! - **Competing**: reported as [`SessionState::Competing`]; taken over only as the
//!   [`Compete`] policy says.
//! - **Nightly reset**: failures inside the [`ResetWindow`] are retried at `debug` level.
//! - **Re-opens are single flight**: however many callers report the same refused token, one
//!   new SSO session is opened; callers that waited for a failed one get its error.
//! - **Handed over** (a fleet with one owner per username): [`Session::adopt`] takes over an
//!   SSO session another process opened, checking it with a tickle and opening a new one only
//!   if it has ended; [`Session::release`] lets go without logging out; a
//!   [fence](SessionBuilder::fence) keeps a process that may have lost the ownership from
//!   tickling or opening anything.
//! - **Close**: [`Session::close`] logs out (bounded by
//!   [`logout_timeout`](SessionBuilder::logout_timeout)); so does dropping the last handle,
//!   best effort, when a tokio runtime is there to run it.
//!
//! # Layout
//! `mod.rs` the public API · `open` opening (single flight), the brokerage session, close and
//! drop · `keeper` the keep-alive task and healing · `calls`
//! the six IBKR calls through the generated operations · `answers` their parsed answers ·
//! `handover` adopting a session another process opened, releasing one, the fence ·
//! `config` [`SessionConfig`] · `builder` [`SessionBuilder`] · `state` [`SessionState`] ·
//! `token` [`SsoToken`] · `source` [`SessionSource`] · `error` [`SessionError`].

mod answers;
mod builder;
mod calls;
mod config;
mod handover;
mod keeper;
mod open;
mod source;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_handover;
#[cfg(test)]
mod tests_http;
#[cfg(test)]
mod tests_lifecycle;
mod token;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use self::builder::Timing;
use self::calls::Calls;
use crate::assertion::Signer;
use crate::clock::Clock;
use crate::error::Error;
use crate::source::TokenSource;

pub use self::answers::{
    BrokerageStatus, SsoValidation, TickleStatus, parse_tickle, parse_validate,
};
pub use self::builder::{
    DEFAULT_INITIAL_BACKOFF, DEFAULT_LOGOUT_TIMEOUT, DEFAULT_MAX_BACKOFF, SessionBuilder,
};
pub use self::config::{
    Compete, DEFAULT_TICKLE_INTERVAL, IpResolver, MAX_TICKLE_INTERVAL, MIN_TICKLE_INTERVAL,
    ResetWindow, SessionConfig, SessionConfigBuilder,
};
pub use self::source::{FixedSession, SessionSource};
pub use self::state::{SessionEvent, SessionState, SessionStatus};
pub use self::token::SsoToken;
pub use crate::error::session::{SessionCall, SessionError};

/// The scope the access token needs to open an SSO session.
pub const SSO_SESSIONS_SCOPE: &str = "sso-sessions.write";

/// An SSO session (and, when asked, the brokerage session) kept open; cheap to clone, every
/// clone shares it. See the [module docs](self).
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    tokens: Arc<dyn TokenSource>,
    calls: Arc<dyn Calls>,
    config: SessionConfig,
    base_url: String,
    clock: Arc<dyn Clock>,
    timing: Timing,
    /// The current SSO bearer (kept while IBKR is briefly down: stale but usable).
    current: Mutex<Option<Arc<SsoToken>>>,
    /// Single flight for opening an SSO session; holds the last attempt's failure.
    opening: tokio::sync::Mutex<Option<Error>>,
    /// Opening attempts finished, to tell waiters that one failed while they waited.
    attempts: AtomicU64,
    /// The brokerage session was asked for (config, or `open_brokerage`).
    want_brokerage: AtomicBool,
    status: watch::Sender<SessionStatus>,
    keeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
    closed: AtomicBool,
    /// Whether this process may act for the session ([`SessionBuilder::fence`]).
    fence: std::sync::OnceLock<handover::Fence>,
    /// The hook of [`SessionBuilder::on_event`].
    observer: Option<Observer>,
}

/// A hook called with each [`SessionEvent`].
pub(crate) type Observer = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

impl Session {
    /// A builder for a session opened with access tokens from `tokens` (scope
    /// [`SSO_SESSIONS_SCOPE`]), its sso-sessions body signed by `signer` (the client's
    /// registered key), for the user and settings of `config`.
    pub fn builder(
        tokens: impl TokenSource + 'static,
        signer: Signer,
        config: SessionConfig,
    ) -> SessionBuilder {
        SessionBuilder::new(Arc::new(tokens), signer, config)
    }

    pub(crate) fn from_parts(
        tokens: Arc<dyn TokenSource>,
        calls: Arc<dyn Calls>,
        config: SessionConfig,
        base_url: String,
        clock: Arc<dyn Clock>,
        timing: Timing,
    ) -> Self {
        let status = SessionStatus::new(SessionState::Opening, None, clock.now());
        Self {
            inner: Arc::new(Inner {
                tokens,
                calls,
                want_brokerage: AtomicBool::new(config.brokerage),
                config,
                base_url,
                clock,
                timing,
                current: Mutex::new(None),
                opening: tokio::sync::Mutex::new(None),
                attempts: AtomicU64::new(0),
                status: watch::Sender::new(status),
                keeper: Mutex::new(None),
                closed: AtomicBool::new(false),
                fence: std::sync::OnceLock::new(),
                observer: None,
            }),
        }
    }

    /// The same session (just built, not shared yet) with `observer` called on each event.
    pub(crate) fn observed(mut self, observer: Option<Observer>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.observer = observer;
        }
        self
    }

    /// Opens the SSO session (and the brokerage session if the config asks), unless it is
    /// open, and starts the keeper. Returns the status then.
    ///
    /// # Errors
    /// The access token's errors; [`SessionError`] for IBKR's refusals and failures;
    /// [`SessionError::Closed`] after [`close`](Self::close).
    pub async fn open(&self) -> Result<SessionStatus, Error> {
        self.sso_token().await?;
        Ok(self.status())
    }

    /// The current SSO token; opens the session first if it is not open (and starts the
    /// keeper). While IBKR is briefly down the last token is handed out (stale but usable).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn sso_token(&self) -> Result<Arc<SsoToken>, Error> {
        self.inner.ensure_open()?;
        if let Some(token) = self.inner.current() {
            return Ok(token);
        }
        let token = self.inner.open_sso(None).await?;
        keeper::start(&self.inner);
        Ok(token)
    }

    /// Reports that IBKR refused `token` (401): a new SSO session is opened, once however
    /// many callers report the same token. Returns whether this report replaced it.
    pub async fn invalidate(&self, token: &SsoToken) -> bool {
        match self.inner.current() {
            Some(current) if current.same(token) => {}
            _ => return false,
        }
        match self.inner.open_sso(Some(token)).await {
            Ok(new) => !new.same(token),
            Err(_) => false,
        }
    }

    /// Opens the brokerage session (`ssodh/init`) and keeps it open from now on.
    ///
    /// # Errors
    /// [`SessionError::NoBridge`] when IBKR does not authenticate it,
    /// [`SessionError::Competing`] when another session holds it and the policy says not to
    /// take it over; the call's errors.
    pub async fn open_brokerage(&self) -> Result<BrokerageStatus, Error> {
        let sso = self.sso_token().await?;
        self.inner.want_brokerage.store(true, Ordering::SeqCst);
        self.inner
            .init_brokerage(&sso, self.inner.compete_at_open())
            .await
    }

    /// `GET /v1/api/sso/validate` now (IBKR paces it at one a minute).
    ///
    /// # Errors
    /// The call's errors.
    pub async fn validate(&self) -> Result<SsoValidation, Error> {
        let sso = self.sso_token().await?;
        Ok(self.inner.calls.validate(&sso).await?)
    }

    /// One tickle now (the keeper tickles by itself; IBKR paces it at one a second).
    ///
    /// # Errors
    /// The call's errors.
    pub async fn tickle(&self) -> Result<TickleStatus, Error> {
        let sso = self.sso_token().await?;
        let tickle = self.inner.calls.tickle(&sso).await?;
        if tickle.error.is_none() && self.inner.want_brokerage.load(Ordering::SeqCst) {
            // What it saw is the state now; healing stays the keeper's.
            self.inner
                .apply_brokerage(&tickle.brokerage.clone().unwrap_or_default());
        }
        Ok(tickle)
    }

    /// `POST /v1/api/iserver/auth/status` now.
    ///
    /// # Errors
    /// The call's errors.
    pub async fn brokerage_status(&self) -> Result<BrokerageStatus, Error> {
        let sso = self.sso_token().await?;
        let status = self.inner.calls.status(&sso).await?;
        if self.inner.want_brokerage.load(Ordering::SeqCst) {
            self.inner.apply_brokerage(&status);
        }
        Ok(status)
    }

    /// The session's status now.
    pub fn status(&self) -> SessionStatus {
        self.inner.status.borrow().clone()
    }

    /// A receiver that sees every change of the status.
    pub fn watch(&self) -> watch::Receiver<SessionStatus> {
        self.inner.status.subscribe()
    }

    /// The settings the session was built with.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The API server the session calls.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Stops the keeper and logs out (`POST /v1/api/logout`, bounded by the logout timeout).
    /// The session is closed whatever the logout's outcome; calling it again does nothing.
    ///
    /// # Errors
    /// The logout's failure (the session is closed anyway).
    pub async fn close(&self) -> Result<(), Error> {
        let Some(token) = self.inner.shut() else {
            return Ok(());
        };
        let outcome = tokio::time::timeout(
            self.inner.timing.logout_timeout,
            self.inner.calls.logout(&token),
        )
        .await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::from(SessionError::Transport {
                call: SessionCall::Logout,
                url: Arc::from(format!("{}/v1/api/logout", self.inner.base_url)),
                timeout: true,
                source: Arc::new(LogoutTimedOut),
            })),
        }
    }
}

/// The logout did not finish within the logout timeout.
#[derive(Debug, thiserror::Error)]
#[error("the logout did not finish within the logout timeout")]
struct LogoutTimedOut;

#[async_trait::async_trait]
impl SessionSource for Session {
    async fn sso_token(&self) -> Result<Arc<SsoToken>, Error> {
        Session::sso_token(self).await
    }

    async fn invalidate(&self, token: &SsoToken) -> bool {
        Session::invalidate(self, token).await
    }

    async fn open_brokerage(&self) -> Result<(), Error> {
        Session::open_brokerage(self).await.map(|_| ())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("base_url", &self.inner.base_url)
            .field("config", &self.inner.config)
            .field("status", &*self.inner.status.borrow())
            .field("has_token", &self.inner.current().is_some())
            .finish_non_exhaustive()
    }
}
