//! The handle of a running sandbox: where it listens, and the controls a test uses on it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tokio::task::JoinHandle;

use super::shared::{Shared, lock};
use crate::protocol::{ECHO_HTTPS_PATH, ECHO_SIGNED_JWT_PATH, TOKEN_PATH};
use crate::{AccessTokenClaims, Error, Fault, RecordedRequest};

/// A started sandbox: where it listens, and the controls a test uses on it.
///
/// Dropping it stops the server (in the background); [`shutdown`](Self::shutdown) stops it and
/// waits until every connection is closed. It is `Send + Sync`: share it behind an `Arc` to
/// inject faults from another task.
pub struct RunningSandbox {
    pub(super) shared: Arc<Shared>,
    local_addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    ca_pem: Option<String>,
}

impl fmt::Debug for RunningSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningSandbox")
            .field("base_url", &self.base_url())
            .field("clock_offset_secs", &self.clock_offset())
            .field("request_count", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl RunningSandbox {
    pub(super) fn new(
        shared: Arc<Shared>,
        local_addr: SocketAddr,
        task: JoinHandle<()>,
        ca_pem: Option<String>,
    ) -> Self {
        Self {
            shared,
            local_addr,
            task: Some(task),
            ca_pem,
        }
    }

    /// With [`tls`](crate::SandboxBuilder::tls) on, the PEM certificate of the CA that issued
    /// the sandbox's server certificate: what a client adds to its trusted roots.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The address the sandbox listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL to give a client, such as `http://127.0.0.1:41234` (no trailing slash;
    /// `https://` with [`tls`](crate::SandboxBuilder::tls) on).
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The token endpoint's full URL: [`base_url`](Self::base_url) followed by [`TOKEN_PATH`].
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url())
    }

    /// The full URL of `GET` [`ECHO_HTTPS_PATH`](crate::ECHO_HTTPS_PATH).
    pub fn echo_https_url(&self) -> String {
        format!("{}{ECHO_HTTPS_PATH}", self.base_url())
    }

    /// The full URL of `POST` [`ECHO_SIGNED_JWT_PATH`](crate::ECHO_SIGNED_JWT_PATH).
    pub fn echo_signed_jwt_url(&self) -> String {
        format!("{}{ECHO_SIGNED_JWT_PATH}", self.base_url())
    }

    /// The `aud` the sandbox expects in assertions.
    pub fn audience(&self) -> &str {
        &self.shared.config.audience
    }

    /// Stops accepting, closes idle connections and stalled requests, lets requests being
    /// handled finish, and returns when all connections are closed. A connection still open
    /// after a grace period of one second (a client that sent part of a request, say) is
    /// dropped.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Queues `fault` for the next `times` token requests, after any fault already queued.
    pub fn inject_fault(&self, fault: Fault, times: usize) {
        lock(&self.shared.faults).extend(std::iter::repeat_n(fault, times));
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many queued faults are left.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Sets the sandbox's clock this many seconds ahead of (positive) or behind (negative) the
    /// system clock. It drives the `Date` header, the assertion's `exp`/`iat`/`nbf` checks and
    /// the issued tokens' `iat`/`exp`.
    pub fn set_clock_offset(&self, offset_secs: i64) {
        self.shared.clock.set_offset_secs(offset_secs);
    }

    /// The clock offset in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.shared.clock.offset_secs()
    }

    /// The sandbox's current time (system clock plus offset, whole seconds).
    pub fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    /// The requests received, token requests and API calls alike, oldest first (at most the
    /// log's capacity, the newest kept). [`RecordedRequest::endpoint`] tells them apart.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).snapshot()
    }

    /// The newest request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.log).last()
    }

    /// Empties the request log; the count goes on.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// How many requests have been received (head and body read) since the start, on any path,
    /// answered or not.
    pub fn request_count(&self) -> u64 {
        *self.shared.received.borrow()
    }

    /// Waits until at least `count` requests have been received, and so are in the log: the
    /// way to know that a stalled request has reached the sandbox without sleeping.
    pub async fn wait_for_requests(&self, count: u64) {
        let mut received = self.shared.received.subscribe();
        // The sender lives in `shared`, which `self` holds: this cannot fail.
        let _ = received.wait_for(|n| *n >= count).await;
    }

    /// What pacing counted for `username` (`None` when pacing is off or the username made no
    /// paced call).
    pub fn pacing_counts(&self, username: &str) -> Option<crate::PacingCounts> {
        self.shared
            .pacing
            .as_ref()
            .and_then(|pacing| lock(pacing).counts(username))
    }

    /// How many access tokens the sandbox has issued.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens_issued.load(Ordering::Relaxed)
    }

    /// Checks an access token as the echo endpoints do: signed by this sandbox, not expired by
    /// its clock, not revoked.
    ///
    /// # Errors
    /// [`Error::InvalidAccessToken`] saying why it is refused.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, Error> {
        self.shared.check_access_token(token)
    }

    /// Revokes one access token: from now on the echo endpoints answer it with `401`
    /// (`error="invalid_token"`, detail `access token: revoked`). Returns its claims.
    ///
    /// # Errors
    /// [`Error::InvalidAccessToken`] when the token was not issued by this sandbox.
    pub fn revoke_token(&self, token: &str) -> Result<AccessTokenClaims, Error> {
        let claims = self.shared.minter.decode(token)?;
        lock(&self.shared.revoked_jtis).insert(claims.jti.clone());
        Ok(claims)
    }

    /// Revokes every access token issued so far (tokens issued later are valid); returns how
    /// many that is.
    pub fn revoke_all_tokens(&self) -> u64 {
        let issued = self.shared.tokens_issued.load(Ordering::Relaxed);
        self.shared
            .revoked_through
            .fetch_max(issued, Ordering::Relaxed);
        issued
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        // The accept loop and the connections see this and stop on their own.
        self.shared.shutdown.send_replace(true);
    }
}
