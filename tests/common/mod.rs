//! Shared by the end-to-end tests: a sandbox on loopback with one registered client, the SDK
//! pieces that talk to it, a pinned clock, and readers of the sandbox's request log.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ibkr_oauth::clock::Clock;
use ibkr_oauth::{Algorithm, PrivateKey, Signer, TokenClient};
use ibkr_oauth_sandbox::{RecordedRequest, RegisteredClient, RunningSandbox, Sandbox};
use serde_json::Value;

/// The registered client id (the assertion's `iss` and `sub`).
pub const CLIENT: &str = "e2e-client";
/// The kid its public key is registered under.
pub const KID: &str = "main";
/// A scope the client may ask for.
pub const SCOPE: &str = "sso-sessions.write";
/// Another scope the client may ask for.
pub const OTHER_SCOPE: &str = "echo.read";

/// A clock pinned at one instant: the signer stamps every assertion with it.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// A started sandbox whose one client (`CLIENT`) has `key`'s public half registered under
/// `KID`, limited to `SCOPE` and `OTHER_SCOPE`, and a token client pointed at it.
pub struct Env {
    pub sandbox: RunningSandbox,
    pub client: TokenClient,
    pub key: PrivateKey,
}

impl Env {
    pub async fn start(algorithm: Algorithm) -> Self {
        Self::start_with_scopes(algorithm, &[SCOPE, OTHER_SCOPE]).await
    }

    /// As [`start`](Self::start), with the client limited to `scopes`.
    pub async fn start_with_scopes(algorithm: Algorithm, scopes: &[&str]) -> Self {
        let key = PrivateKey::generate(algorithm).expect("generate a test key");
        let sandbox = Sandbox::builder()
            .client(
                RegisteredClient::new(CLIENT)
                    .key(KID, key.public_key_pem())
                    .allowed_scopes(scopes.iter().copied()),
            )
            .start()
            .await
            .expect("start the sandbox");
        let client = TokenClient::builder()
            .base_url(sandbox.base_url())
            .build()
            .expect("a loopback http URL is allowed");
        Self {
            sandbox,
            client,
            key,
        }
    }

    /// A signer for the registered client and key, with every default.
    pub fn signer(&self) -> Signer {
        Signer::builder(CLIENT, KID, self.key.clone())
            .build()
            .expect("a valid signer")
    }

    /// The request log entry with this sequence number (from 1).
    pub fn request(&self, seq: u64) -> RecordedRequest {
        self.sandbox
            .requests()
            .into_iter()
            .find(|r| r.seq == seq)
            .unwrap_or_else(|| panic!("no request #{seq} in the sandbox's log"))
    }
}

/// Whole seconds since the epoch of a `SystemTime`.
pub fn unix(time: SystemTime) -> i64 {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits i64")
}

/// The system clock in whole seconds since the epoch.
pub fn unix_now() -> i64 {
    unix(SystemTime::now())
}

/// A whole-second instant `offset_secs` from now (a pinned clock must not carry fractions, so
/// that the claims it stamps are exact).
pub fn whole_second(offset_secs: i64) -> SystemTime {
    let at = unix_now() + offset_secs;
    UNIX_EPOCH + Duration::from_secs(u64::try_from(at).expect("after 1970"))
}

/// One numeric claim of a recorded request's assertion (decoded by the sandbox).
pub fn claim_i64(request: &RecordedRequest, name: &str) -> i64 {
    request
        .assertion_claims
        .as_ref()
        .and_then(|c| c.get(name))
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("claim {name} in request #{}", request.seq))
}

/// One string claim of a recorded request's assertion.
pub fn claim_str(request: &RecordedRequest, name: &str) -> String {
    request
        .assertion_claims
        .as_ref()
        .and_then(|c| c.get(name))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("claim {name} in request #{}", request.seq))
        .to_owned()
}

/// The sandbox time a `detail` ends with (`... (sandbox time 1700000000)`), checked to be
/// within a few seconds of `expected` (the sandbox's clock is the system clock plus its offset).
pub fn sandbox_time_in(detail: &str, expected: i64) -> i64 {
    let number = detail
        .strip_suffix(')')
        .and_then(|d| d.rsplit_once("(sandbox time "))
        .and_then(|(_, n)| n.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no sandbox time in {detail:?}"));
    assert!(
        (number - expected).abs() <= 5,
        "sandbox time {number} is not near {expected}: {detail:?}"
    );
    number
}
