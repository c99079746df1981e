//! [`SessionConfig`]: who the session is for (the IBKR username), from which public IP, how it
//! competes for the brokerage session, how often it tickles, and when IBKR's nightly reset is
//! expected. Validated in [`SessionConfigBuilder::build`], before any network I/O.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::SessionSetting;
use crate::error::{ConfigError, Error};

/// The default time between two keep-alive tickles (IBKR asks for about one a minute).
pub const DEFAULT_TICKLE_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest tickle interval accepted: IBKR paces `/tickle` at one a second.
pub const MIN_TICKLE_INTERVAL: Duration = Duration::from_secs(1);
/// The longest tickle interval accepted: IBKR ends an idle session after a few minutes.
pub const MAX_TICKLE_INTERVAL: Duration = Duration::from_secs(4 * 60);
/// The longest username IBKR accepts is far shorter; anything past this is a mistake.
const MAX_CREDENTIAL_CHARS: usize = 64;

/// When the session takes the brokerage session over from another one (IBKR's app, TWS,
/// another process: one brokerage session per username across IBKR's platforms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compete {
    /// Never: open with `compete: false`; a competing session is reported
    /// ([`SessionState::Competing`](super::SessionState::Competing)), never taken over.
    Never,
    /// When opening (`compete: true`, as IBKR's own clients do); a session that later takes
    /// it back (a user logging in on the phone) is reported, not fought.
    #[default]
    AtOpen,
    /// Always: whenever a competing session is seen, take the brokerage session back.
    Always,
}

/// Finds the caller's public IP for the sso-sessions `ip` claim: opt-in, supplied by the user
/// (the SDK never calls a third-party service by itself). Asked once per new SSO session, so
/// an IP change is picked up when the session is re-opened.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use ibkr_oauth::session::IpResolver;
///
/// #[derive(Debug)]
/// struct FromMyProxy;
///
/// #[async_trait::async_trait]
/// impl IpResolver for FromMyProxy {
///     async fn public_ip(&self) -> Result<IpAddr, ibkr_oauth::Error> {
///         Ok(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))) // e.g. ask your egress proxy
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait IpResolver: Send + Sync + fmt::Debug {
    /// The public IP IBKR will see requests come from.
    ///
    /// # Errors
    /// Why it cannot be found now ([`Error::custom`]).
    async fn public_ip(&self) -> Result<IpAddr, Error>;
}

/// Where the `ip` claim comes from.
#[derive(Clone)]
pub(crate) enum IpSource {
    Fixed(IpAddr),
    Resolver(Arc<dyn IpResolver>),
}

impl fmt::Debug for IpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpSource::Fixed(ip) => write!(f, "Fixed({ip})"),
            IpSource::Resolver(r) => write!(f, "Resolver({r:?})"),
        }
    }
}

/// IBKR's nightly reset window, in UTC: `/iserver` resets around 01:00 local time of the
/// region that serves the account. Failures inside the window are expected: the keeper retries
/// them quietly (`debug`, not `warn`).
///
/// The presets cover 01:00 local with and without daylight saving time, with margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetWindow {
    /// Start, in seconds after 00:00 UTC.
    start: u32,
    /// Length; zero for no window.
    length: Duration,
}

const DAY_SECS: u32 = 24 * 60 * 60;

impl ResetWindow {
    /// A window of `length` starting each day at `hour:minute` UTC.
    ///
    /// # Errors
    /// [`ConfigError::Session`] for an hour past 23, a minute past 59, or a length of a day
    /// or more.
    pub fn daily_utc(hour: u8, minute: u8, length: Duration) -> Result<Self, ConfigError> {
        if hour > 23 || minute > 59 {
            return Err(ConfigError::Session(SessionSetting::ResetWindowStart {
                hour,
                minute,
            }));
        }
        if length >= Duration::from_secs(u64::from(DAY_SECS)) {
            return Err(ConfigError::Session(SessionSetting::ResetWindowLength));
        }
        Ok(Self {
            start: u32::from(hour) * 3600 + u32::from(minute) * 60,
            length,
        })
    }

    /// No window: every failure is reported at its level.
    pub const fn none() -> Self {
        Self {
            start: 0,
            length: Duration::ZERO,
        }
    }

    /// 01:00 New York (05:00 UTC in summer, 06:00 in winter): 04:45 to 06:45 UTC.
    pub const fn north_america() -> Self {
        Self {
            start: 4 * 3600 + 45 * 60,
            length: Duration::from_secs(2 * 3600),
        }
    }

    /// 01:00 Central Europe (23:00 UTC in summer, 00:00 in winter): 22:45 to 00:45 UTC.
    pub const fn europe() -> Self {
        Self {
            start: 22 * 3600 + 45 * 60,
            length: Duration::from_secs(2 * 3600),
        }
    }

    /// 01:00 Hong Kong (no daylight saving time: 17:00 UTC): 16:45 to 17:45 UTC.
    pub const fn asia() -> Self {
        Self {
            start: 16 * 3600 + 45 * 60,
            length: Duration::from_secs(3600),
        }
    }

    /// Whether `now` falls inside the window.
    pub fn contains(&self, now: std::time::SystemTime) -> bool {
        if self.length.is_zero() {
            return false;
        }
        let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let of_day = (since.as_secs() % u64::from(DAY_SECS)) as u32;
        let into = (of_day + DAY_SECS - self.start) % DAY_SECS;
        u64::from(into) < self.length.as_secs()
    }
}

impl Default for ResetWindow {
    /// [`north_america`](Self::north_america): `api.ibkr.com`'s region.
    fn default() -> Self {
        Self::north_america()
    }
}

/// Who the session is for and how it behaves; see [`SessionConfig::builder`].
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) credential: String,
    pub(crate) ip: IpSource,
    pub(crate) compete: Compete,
    pub(crate) tickle_interval: Duration,
    pub(crate) brokerage: bool,
    pub(crate) reset_window: ResetWindow,
}

impl SessionConfig {
    /// Settings for the IBKR username `credential` (the sso-sessions `credential` claim).
    /// Give the public IP with [`ip`](SessionConfigBuilder::ip) or an
    /// [`ip_resolver`](SessionConfigBuilder::ip_resolver).
    pub fn builder(credential: impl Into<String>) -> SessionConfigBuilder {
        SessionConfigBuilder {
            credential: credential.into(),
            ip: None,
            resolver: None,
            compete: Compete::default(),
            tickle_interval: DEFAULT_TICKLE_INTERVAL,
            brokerage: false,
            reset_window: ResetWindow::default(),
        }
    }

    /// The IBKR username.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// The fixed public IP, if one was given (else a resolver finds it).
    pub fn ip(&self) -> Option<IpAddr> {
        match self.ip {
            IpSource::Fixed(ip) => Some(ip),
            IpSource::Resolver(_) => None,
        }
    }

    /// The compete policy.
    pub fn compete(&self) -> Compete {
        self.compete
    }

    /// The time between two tickles (before jitter).
    pub fn tickle_interval(&self) -> Duration {
        self.tickle_interval
    }

    /// Whether the brokerage session is opened with the SSO session.
    pub fn brokerage(&self) -> bool {
        self.brokerage
    }

    /// The nightly reset window.
    pub fn reset_window(&self) -> ResetWindow {
        self.reset_window
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("credential", &self.credential)
            .field("ip", &self.ip)
            .field("compete", &self.compete)
            .field("tickle_interval", &self.tickle_interval)
            .field("brokerage", &self.brokerage)
            .field("reset_window", &self.reset_window)
            .finish()
    }
}

/// Builds a [`SessionConfig`]; checks it in [`build`](Self::build).
#[must_use = "a builder does nothing until build() is called"]
#[derive(Debug)]
pub struct SessionConfigBuilder {
    credential: String,
    ip: Option<String>,
    resolver: Option<Arc<dyn IpResolver>>,
    compete: Compete,
    tickle_interval: Duration,
    brokerage: bool,
    reset_window: ResetWindow,
}

impl SessionConfigBuilder {
    /// The public IP requests come from (the sso-sessions `ip` claim), e.g. `203.0.113.7`.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Finds the public IP with `resolver` each time an SSO session is opened (opt-in).
    pub fn ip_resolver(mut self, resolver: impl IpResolver + 'static) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// When to take the brokerage session over from another one (default
    /// [`Compete::AtOpen`]).
    pub fn compete(mut self, compete: Compete) -> Self {
        self.compete = compete;
        self
    }

    /// The time between two keep-alive tickles (default 60 s; jittered by up to a tenth;
    /// from 1 s to 4 min).
    pub fn tickle_interval(mut self, interval: Duration) -> Self {
        self.tickle_interval = interval;
        self
    }

    /// Open the brokerage session (`ssodh/init`, needed by `/iserver` calls) with the SSO
    /// session, and keep it open (default: no; calls that need it open it on `no bridge`).
    pub fn brokerage(mut self, open: bool) -> Self {
        self.brokerage = open;
        self
    }

    /// IBKR's nightly reset window (default [`ResetWindow::north_america`]).
    pub fn reset_window(mut self, window: ResetWindow) -> Self {
        self.reset_window = window;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`ConfigError::Session`] for an empty or overlong username or one with spaces or
    /// control characters, an IP that is not an IPv4 or IPv6 address, both an IP and a
    /// resolver or neither, a tickle interval outside 1 s to 4 min.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let bad = |m: SessionSetting| Err(ConfigError::Session(m));
        let credential = self.credential.trim().to_owned();
        if credential.is_empty() {
            return bad(SessionSetting::EmptyUsername);
        }
        if credential.chars().count() > MAX_CREDENTIAL_CHARS
            || credential
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return bad(SessionSetting::Username {
                max_chars: MAX_CREDENTIAL_CHARS,
            });
        }
        let ip = match (self.ip, self.resolver) {
            (Some(_), Some(_)) => {
                return bad(SessionSetting::IpAndResolver);
            }
            (None, None) => {
                return bad(SessionSetting::NoIp);
            }
            (Some(ip), None) => match ip.trim().parse::<IpAddr>() {
                Ok(ip) => IpSource::Fixed(ip),
                Err(_) => {
                    return bad(SessionSetting::NotAnIp {
                        given: crate::sanitize(&ip, 64),
                    });
                }
            },
            (None, Some(resolver)) => IpSource::Resolver(resolver),
        };
        if self.tickle_interval < MIN_TICKLE_INTERVAL || self.tickle_interval > MAX_TICKLE_INTERVAL
        {
            return bad(SessionSetting::TickleInterval {
                interval: self.tickle_interval,
            });
        }
        Ok(SessionConfig {
            credential,
            ip,
            compete: self.compete,
            tickle_interval: self.tickle_interval,
            brokerage: self.brokerage,
            reset_window: self.reset_window,
        })
    }
}
