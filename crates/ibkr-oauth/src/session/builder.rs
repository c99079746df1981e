//! [`SessionBuilder`]: where the session's calls go and how it retries, validated at build time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::calls::{Calls, HttpCalls};
use super::{Session, SessionConfig};
use crate::assertion::Signer;
use crate::client::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT,
    IBKR_PRODUCTION, locked_http_client, validate_base_url,
};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::error::{ClientSetting, SessionSetting};
use crate::source::TokenSource;

/// The default first wait after a failed keep-alive (doubling per failure, jittered).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The default longest wait between two attempts while the session is failing: shorter than
/// IBKR's idle timeout, so the session is kept once IBKR answers again.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(120);
/// The default time allowed for the logout on close or drop.
pub const DEFAULT_LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The session's timing settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) logout_timeout: Duration,
}

/// Configures a [`Session`]; see [`Session::builder`].
#[must_use = "a builder does nothing until build() is called"]
pub struct SessionBuilder {
    tokens: Arc<dyn TokenSource>,
    signer: Signer,
    config: SessionConfig,
    base_url: String,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    timing: Timing,
    http: Option<reqwest::ClientBuilder>,
    fence: Option<super::handover::Fence>,
    #[cfg(feature = "pacing")]
    pacer: Option<Arc<dyn crate::pacing::Pacer>>,
    observer: Option<super::Observer>,
}

impl SessionBuilder {
    pub(crate) fn new(tokens: Arc<dyn TokenSource>, signer: Signer, config: SessionConfig) -> Self {
        Self {
            tokens,
            signer,
            config,
            base_url: IBKR_PRODUCTION.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            clock: Arc::new(SystemClock),
            timing: Timing {
                initial_backoff: DEFAULT_INITIAL_BACKOFF,
                max_backoff: DEFAULT_MAX_BACKOFF,
                logout_timeout: DEFAULT_LOGOUT_TIMEOUT,
            },
            http: None,
            fence: None,
            #[cfg(feature = "pacing")]
            pacer: None,
            observer: None,
        }
    }

    /// IBKR's API server (default [`IBKR_PRODUCTION`]): https, or http to a loopback host.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The time allowed for one call (default 30 s; connecting: 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The wall clock (for the reset window); default the system's. Waits use tokio's clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The first and the longest wait between attempts while the session fails (default 1 s
    /// and 2 min; doubling, jittered, never under 1 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.timing.initial_backoff = initial;
        self.timing.max_backoff = max;
        self
    }

    /// The time allowed for the logout on [`Session::close`] and on drop (default 5 s).
    pub fn logout_timeout(mut self, timeout: Duration) -> Self {
        self.timing.logout_timeout = timeout;
        self
    }

    /// A reqwest builder with the caller's settings (proxy, root certificates...); the
    /// session's policy (rustls, no redirects, timeouts) is applied on top.
    pub fn http_client_builder(mut self, builder: reqwest::ClientBuilder) -> Self {
        self.http = Some(builder);
        self
    }

    /// A fence for a fleet with one session owner (such as `ibkr-oauth-redis`'s shared
    /// session): `may_act` is asked before every keep-alive round, every new SSO session and
    /// every `ssodh/init`; when it answers `false` the session does none of them (the keeper
    /// skips its round, opening fails with [`SessionError::Fenced`](super::SessionError)).
    /// It is asked again right before each sso-sessions and `ssodh/init` is sent (after the IP
    /// lookup, the access token and the pacer's wait); the window left between
    /// that check and IBKR's receiving the call is small, not zero: IBKR takes no fencing
    /// token. Make it cheap and synchronous, e.g. "my lease is still valid by my own clock", so that
    /// a process that was paused past its lease stops acting before anything else.
    pub fn fence(mut self, may_act: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.fence = Some(Arc::new(may_act));
        self
    }

    /// Paces the session's own calls (tickle, validate, ssodh/init, auth status, logout,
    /// sso-sessions) with `pacer`, the one the program's other IBKR calls go through (e.g.
    /// [`Paced`](crate::pacing::Paced) with the same governor), so that IBKR's per-user and
    /// per-endpoint limits (`/tickle` 1/s, `/sso/validate` 1/min) count them too. A call the
    /// pacer refuses is not sent and fails with
    /// [`SessionError::Paced`](super::SessionError::Paced); a 429 pauses its endpoint.
    #[cfg(feature = "pacing")]
    pub fn pacer(mut self, pacer: Arc<dyn crate::pacing::Pacer>) -> Self {
        self.pacer = Some(pacer);
        self
    }

    /// Calls `hook` with each [`SessionEvent`](super::SessionEvent) as it happens (a keep-alive's latency, a
    /// re-opened session), e.g. to record metrics. It runs on the keeper's task: keep it quick.
    pub fn on_event(mut self, hook: impl Fn(&super::SessionEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(hook));
        self
    }

    /// Checks the settings and builds the session (no network I/O: call
    /// [`Session::open`], or let the first call open it).
    ///
    /// # Errors
    /// [`ConfigError::Client`] for a base URL that is not https (or http to loopback), a zero
    /// timeout, an HTTP client reqwest cannot build; [`ConfigError::Session`] for backoff
    /// settings out of order or zero.
    pub fn build(self) -> Result<Session, ConfigError> {
        let (base_url, https) = validate_base_url(&self.base_url)?;
        if self.timeout.is_zero() {
            return Err(ConfigError::Client(ClientSetting::ZeroTimeout));
        }
        let t = self.timing;
        if t.initial_backoff.is_zero() || t.max_backoff < t.initial_backoff {
            return Err(ConfigError::Session(SessionSetting::Backoff));
        }
        if t.logout_timeout.is_zero() {
            return Err(ConfigError::Session(SessionSetting::ZeroLogoutTimeout));
        }
        let http = locked_http_client(
            self.http.unwrap_or_default(),
            https,
            DEFAULT_CONNECT_TIMEOUT.min(self.timeout),
            self.timeout,
        )?;
        let calls: Arc<dyn Calls> = Arc::new(HttpCalls {
            base_url: base_url.clone(),
            http,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            clock: Arc::clone(&self.clock),
            signer: self.signer,
            #[cfg(feature = "pacing")]
            pacer: self.pacer,
            fence: self.fence.clone(),
        });
        let session = Session::from_parts(self.tokens, calls, self.config, base_url, self.clock, t)
            .observed(self.observer);
        if let Some(fence) = self.fence {
            session.set_fence(fence);
        }
        Ok(session)
    }
}

impl fmt::Debug for SessionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("tokens", &self.tokens)
            .field("signer", &self.signer)
            .field("config", &self.config)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}
