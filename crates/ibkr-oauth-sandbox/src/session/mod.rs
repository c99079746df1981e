//! IBKR's session on top of the access token: the SSO session (`POST /gw/api/v1/sso-sessions`,
//! then every `/v1/api` call with its bearer) and the brokerage session (`ssodh/init`, needed by
//! `/iserver`), with the faults IBKR's users meet.
//!
//! The rules, written down from IBKR's published spec and what its users report (not from the
//! SDK):
//! - one SSO session per `sso-sessions` call, bound to the username (`credential`) and to the IP
//!   its signed body names (`ip`, or the spec's `userIp`);
//! - it ends after [`idle_timeout`](crate::SandboxBuilder::session_idle_timeout) without a
//!   request, after its [lifetime](crate::SandboxBuilder::session_lifetime), on logout, or when
//!   the caller's IP changes;
//! - one brokerage session per username: `ssodh/init` with `compete: true` takes it from
//!   whoever holds it (another session, another platform), `compete: false` does not.
//!
//! Time is tokio's ([`tokio::time::Instant`]): under paused time a test skips an idle timeout
//! without waiting for it.

mod answers;
mod state;

pub(crate) use answers::{
    accounts_answer, auth_status_answer, iserver_accounts_answer, tickle_answer, validate_answer,
};
pub(crate) use state::{Denied, Init, Iserver, Opening, Sessions};

use std::net::IpAddr;
use std::time::Duration;

/// `POST`: opens an SSO session (operation of IBKR's spec; scope [`SSO_SESSIONS_SCOPE`], body a
/// compact JWS signed with a key of the client, `application/jwt`).
pub const SSO_SESSIONS_PATH: &str = "/gw/api/v1/sso-sessions";
/// The scope `POST` [`SSO_SESSIONS_PATH`] needs (`x-ib-gateway-allowed-scopes`).
pub const SSO_SESSIONS_SCOPE: &str = "sso-sessions.write";
/// `GET`: the SSO session's user, IP and time left.
pub const SSO_VALIDATE_PATH: &str = "/v1/api/sso/validate";
/// `POST` `{"publish":true,"compete":true}`: opens the brokerage session.
pub const SSODH_INIT_PATH: &str = "/v1/api/iserver/auth/ssodh/init";
/// `GET` (what working clients send) or `POST` (IBKR's spec): the keep-alive.
pub const TICKLE_PATH: &str = "/v1/api/tickle";
/// `POST`: the brokerage session's status.
pub const AUTH_STATUS_PATH: &str = "/v1/api/iserver/auth/status";
/// `POST`: ends the session.
pub const LOGOUT_PATH: &str = "/v1/api/logout";
/// `GET`: the user's accounts; the SSO session is enough.
pub const PORTFOLIO_ACCOUNTS_PATH: &str = "/v1/api/portfolio/accounts";
/// `GET`: the tradable accounts; needs the brokerage session (else `400 no bridge`).
pub const ISERVER_ACCOUNTS_PATH: &str = "/v1/api/iserver/accounts";

/// How long an SSO session lives without a request by default: IBKR says "several minutes"; its
/// published `sso/validate` example shows `EXPIRES` of about 7 minutes.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// How long an SSO session lives at most by default: a day, as the `exp` working clients sign
/// (`iat` + 86400).
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What the sandbox does to the sessions, as IBKR's users see it happen.
///
/// Given to [`RunningSandbox::inject_session_fault`](crate::RunningSandbox::inject_session_fault);
/// each applies to every session open at that moment (the sessions of every username), except
/// [`SsoDhTokenFailure`](Self::SsoDhTokenFailure), which applies to the next `ssodh/init` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionFault {
    /// Every open SSO session ends now, as after its idle timeout: their bearer gets `401`.
    ExpireSessions,
    /// The user logs in on another platform (mobile, desktop): the brokerage session is taken
    /// from the API. `tickle` and `auth/status` then say `competing: true`, `authenticated:
    /// false`; `/iserver` calls get `400 no bridge`; `ssodh/init` with `compete: true` takes it
    /// back, with `compete: false` it stays away.
    CompetingLogin,
    /// The brokerage session is lost (as after a restart of IBKR's side): `/iserver` calls get
    /// `400 {"error":"Bad Request: no bridge","statusCode":400}` until `ssodh/init`.
    NoBridge,
    /// The next `times` `ssodh/init` calls get `500 {"error":"failed to generate sso dh token"}`.
    SsoDhTokenFailure {
        /// How many calls fail.
        times: usize,
    },
    /// The session decays in stages, moved on by each `tickle`: first `/iserver` calls get `500
    /// {"error":"Please query /accounts first"}`; from the next tickle on, tickle says
    /// `authenticated: false` too (twice); after those two, every call with the SSO bearer gets
    /// `401`. `ssodh/init` heals it until then; after, only a new SSO session does.
    Decay,
    /// IBKR's nightly reset: for `lasts` (tokio time) `ssodh/init` and `/iserver` calls get
    /// `503`, `tickle` answers `{"error": ...}`; every brokerage session is closed by it (the SSO
    /// sessions survive), so after the window a client opens it again.
    NightlyReset {
        /// How long the window lasts.
        lasts: Duration,
    },
    /// IBKR is slow: the next `times` tickles are answered only after `delay` (tokio time),
    /// as they would have been without it. For a client's takeover or keep-alive under a
    /// stalling IBKR.
    SlowTickles {
        /// How many tickles are held.
        times: usize,
        /// How long each is held.
        delay: Duration,
    },
    /// Requests now come from `new_ip`: every SSO session bound to another IP ends (`401`), and
    /// `sso-sessions` is refused unless its body names `new_ip`.
    IpChange {
        /// The caller's new public IP.
        new_ip: IpAddr,
    },
}

/// The session settings of a sandbox.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    pub(crate) idle_timeout: Duration,
    pub(crate) lifetime: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
            lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }
}
