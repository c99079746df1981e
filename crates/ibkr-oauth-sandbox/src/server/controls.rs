//! The session controls of a running sandbox: faults, and what a test reads of the sessions.

use std::net::IpAddr;

use tokio::time::Instant;

use super::handle::RunningSandbox;
use super::shared::lock;
use crate::session::{SSO_SESSIONS_PATH, SessionFault};

impl RunningSandbox {
    /// Makes `fault` happen now to the sessions (see [`SessionFault`] for what each does).
    pub fn inject_session_fault(&self, fault: SessionFault) {
        lock(&self.shared.sessions).apply(fault, Instant::now());
    }

    /// How many SSO sessions are open (an idle one counts until a request finds it expired).
    pub fn open_sessions(&self) -> usize {
        lock(&self.shared.sessions).open_count()
    }

    /// Whether one of the sandbox's SSO sessions holds the brokerage session of `username`.
    pub fn brokerage_session_open(&self, username: &str) -> bool {
        lock(&self.shared.sessions).brokerage_held(username)
    }

    /// The IP the sandbox sees requests come from, once a [`SessionFault::IpChange`] set it.
    pub fn caller_ip(&self) -> Option<IpAddr> {
        lock(&self.shared.sessions).caller_ip()
    }

    /// The full URL of `POST` [`SSO_SESSIONS_PATH`](crate::SSO_SESSIONS_PATH).
    pub fn sso_sessions_url(&self) -> String {
        format!("{}{SSO_SESSIONS_PATH}", self.base_url())
    }

    /// [`base_url`](Self::base_url) followed by `path` (such as
    /// [`TICKLE_PATH`](crate::TICKLE_PATH)).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }
}
