//! Configuration: registered clients and the endpoint's policy, validated once in `build()`.

mod client;
#[cfg(test)]
mod tests;

pub use client::RegisteredClient;

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::DecodingKey;

use crate::key::{KeyType, parse_public_key};
use crate::session::SessionSettings;
use crate::trace::TraceSink;
use crate::{Algorithm, Error};

/// The audience IBKR's clients put in their assertions: a relative value, not the endpoint URL.
pub const DEFAULT_AUDIENCE: &str = "/token";
/// IBKR's access token lifetime in its published example, in seconds.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(86_399);
/// How far ahead of the sandbox's clock an assertion's `exp` may lie by default.
pub const DEFAULT_MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// How far ahead of the sandbox's clock an assertion's `iat` (and `nbf`) may lie by default.
pub const DEFAULT_IAT_TOLERANCE: Duration = Duration::from_secs(60);
/// How many requests the log keeps by default (the oldest go first).
pub const DEFAULT_REQUEST_LOG_CAPACITY: usize = 10_000;
/// The largest request body the sandbox reads by default, in bytes. A token request is about
/// 1 KiB; the cap keeps a hostile body from costing memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds a [`Sandbox`]: registered clients and the endpoint's policy.
///
/// Start from [`Sandbox::builder`]; every setting has IBKR's value (or a permissive one) as its
/// default, and nothing is checked until [`build`](Self::build) or [`start`](Self::start).
#[derive(Debug, Clone)]
#[must_use]
pub struct SandboxBuilder {
    clients: Vec<RegisteredClient>,
    audience: String,
    expires_in: Duration,
    max_assertion_lifetime: Duration,
    iat_tolerance: Duration,
    clock_offset_secs: i64,
    request_log_capacity: usize,
    max_body_bytes: usize,
    trace: Option<TraceSink>,
    sessions: SessionSettings,
    tls: bool,
    pacing: Option<crate::SandboxPacing>,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            expires_in: DEFAULT_EXPIRES_IN,
            max_assertion_lifetime: DEFAULT_MAX_ASSERTION_LIFETIME,
            iat_tolerance: DEFAULT_IAT_TOLERANCE,
            clock_offset_secs: 0,
            request_log_capacity: DEFAULT_REQUEST_LOG_CAPACITY,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            trace: None,
            sessions: SessionSettings::default(),
            tls: false,
            pacing: None,
        }
    }
}

impl SandboxBuilder {
    /// Registers a client.
    pub fn client(mut self, client: RegisteredClient) -> Self {
        self.clients.push(client);
        self
    }

    /// Shorthand for one client with one key, its algorithm implied by the key's type.
    pub fn client_key(
        self,
        client_id: impl Into<String>,
        kid: impl Into<String>,
        public_key_pem: impl Into<String>,
    ) -> Self {
        self.client(RegisteredClient::new(client_id).key(kid, public_key_pem))
    }

    /// The `aud` every assertion must carry (default [`DEFAULT_AUDIENCE`], `/token`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The access token lifetime, sent as `expires_in` in whole seconds (default 86399 s).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = lifetime;
        self
    }

    /// How far ahead of the sandbox's clock an assertion's `exp` may lie (default 300 s).
    pub fn max_assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_assertion_lifetime = lifetime;
        self
    }

    /// How far ahead of the sandbox's clock an assertion's `iat` or `nbf` may lie (default 60 s).
    pub fn iat_tolerance(mut self, tolerance: Duration) -> Self {
        self.iat_tolerance = tolerance;
        self
    }

    /// Starts the sandbox's clock this many seconds ahead of (positive) or behind (negative) the
    /// system clock; [`RunningSandbox::set_clock_offset`](crate::RunningSandbox::set_clock_offset) changes it later.
    pub fn clock_offset(mut self, offset_secs: i64) -> Self {
        self.clock_offset_secs = offset_secs;
        self
    }

    /// How many requests the log keeps (default 10 000); older ones are dropped first. The
    /// request count is not affected.
    pub fn request_log_capacity(mut self, capacity: usize) -> Self {
        self.request_log_capacity = capacity;
        self
    }

    /// The largest request body read, in bytes (default 64 KiB); a larger one is refused.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// Writes one line per request to stderr (on) or nothing (off, the default): the time, the
    /// request id, the client id, the kid, the endpoint, the status and the outcome (with the
    /// problem's detail for a refusal). No line holds an assertion, an access token, a signed
    /// body or a key. The `ibkr-oauth-sandbox` binary switches it on.
    pub fn trace_requests(mut self, on: bool) -> Self {
        self.trace = on.then(TraceSink::stderr);
        self
    }

    /// Sends the lines of [`trace_requests`](Self::trace_requests) to `sink` instead of stderr
    /// (one call per request, the line without its newline).
    pub fn trace_requests_to(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.trace = Some(TraceSink::to(sink));
        self
    }

    /// How long an SSO session lives without a request (default
    /// [`DEFAULT_SESSION_IDLE_TIMEOUT`](crate::DEFAULT_SESSION_IDLE_TIMEOUT)); tests shorten it
    /// (tokio time: under paused time it passes without waiting).
    pub fn session_idle_timeout(mut self, timeout: Duration) -> Self {
        self.sessions.idle_timeout = timeout;
        self
    }

    /// Enforces IBKR's pacing on the calls with an SSO bearer, per username: `429` with
    /// `Retry-After` past a limit, then a penalty window (off by default).
    pub fn pacing(mut self, pacing: crate::SandboxPacing) -> Self {
        self.pacing = Some(pacing);
        self
    }

    /// How long an SSO session lives at most, however busy (default
    /// [`DEFAULT_SESSION_LIFETIME`](crate::DEFAULT_SESSION_LIFETIME), a day).
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.sessions.lifetime = lifetime;
        self
    }

    /// Serves `https` (on) instead of `http` (off, the default), with a certificate for
    /// `localhost`, `127.0.0.1` and `::1` issued by a CA made at start:
    /// [`RunningSandbox::ca_certificate_pem`](crate::RunningSandbox::ca_certificate_pem) is the one certificate a client must trust.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Checks every setting and key, and returns the sandbox ready to start.
    ///
    /// # Errors
    /// [`Error::NoClient`], [`Error::ClientWithoutKey`], [`Error::InvalidPublicKey`],
    /// [`Error::KeyAlgorithmMismatch`], [`Error::DuplicateKid`], [`Error::DuplicateClient`] or
    /// [`Error::InvalidSetting`], each naming what to fix.
    pub fn build(self) -> Result<Sandbox, Error> {
        let invalid =
            |setting: &'static str, reason: String| Error::InvalidSetting { setting, reason };
        if self.clients.is_empty() {
            return Err(Error::NoClient);
        }
        if self.audience.is_empty() {
            return Err(invalid("audience", "must not be empty".into()));
        }
        let expires_in = self.expires_in.as_secs();
        if expires_in == 0 || i64::try_from(expires_in).is_err() {
            return Err(invalid("expires_in", "must be at least one second".into()));
        }
        let max_assertion_lifetime = secs_i64(self.max_assertion_lifetime);
        if max_assertion_lifetime == 0 {
            return Err(invalid(
                "max_assertion_lifetime",
                "must be at least one second".into(),
            ));
        }
        if self.sessions.idle_timeout.is_zero() || self.sessions.lifetime.is_zero() {
            return Err(invalid(
                "session_idle_timeout / session_lifetime",
                "must be more than zero".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid(
                "max_body_bytes",
                "must be at least 1024 bytes".into(),
            ));
        }
        let mut keys = HashMap::new();
        let mut clients = HashMap::new();
        for client in self.clients {
            if client.id.is_empty() {
                return Err(invalid("client id", "must not be empty".into()));
            }
            if client.keys.is_empty() {
                return Err(Error::ClientWithoutKey {
                    client_id: client.id,
                });
            }
            for scope in client
                .allowed_scopes
                .iter()
                .flatten()
                .chain(&client.default_scopes)
            {
                if !crate::verify::is_scope_token(scope) {
                    return Err(invalid(
                        "scopes",
                        format!(
                            "{scope:?} of client {:?} is not a scope token (RFC 6749 section 3.3)",
                            client.id
                        ),
                    ));
                }
            }
            if let Some(allowed) = &client.allowed_scopes {
                if let Some(extra) = client.default_scopes.iter().find(|s| !allowed.contains(s)) {
                    return Err(invalid(
                        "default_scopes",
                        format!(
                            "{extra:?} of client {:?} is not among its allowed scopes",
                            client.id
                        ),
                    ));
                }
            }
            for spec in &client.keys {
                if spec.kid.is_empty() {
                    return Err(invalid(
                        "kid",
                        format!("a key of client {:?} has an empty kid", client.id),
                    ));
                }
                let parsed = parse_public_key(&spec.kid, &spec.pem)?;
                let algorithm = spec
                    .algorithm
                    .unwrap_or(parsed.key_type.default_algorithm());
                check_fit(&spec.kid, parsed.key_type, algorithm)?;
                let entry = KeyEntry {
                    client_id: client.id.clone(),
                    algorithm,
                    key: parsed.decoding_key,
                };
                if keys.insert(spec.kid.clone(), entry).is_some() {
                    return Err(Error::DuplicateKid {
                        kid: spec.kid.clone(),
                    });
                }
            }
            let policy = ClientPolicy {
                allowed_scopes: client.allowed_scopes,
                default_scopes: client.default_scopes,
            };
            if clients.insert(client.id.clone(), policy).is_some() {
                return Err(Error::DuplicateClient {
                    client_id: client.id,
                });
            }
        }
        Ok(Sandbox {
            config: Config {
                keys,
                clients,
                audience: self.audience,
                expires_in_secs: expires_in,
                max_assertion_lifetime_secs: max_assertion_lifetime,
                iat_tolerance_secs: secs_i64(self.iat_tolerance),
                request_log_capacity: self.request_log_capacity,
                max_body_bytes: self.max_body_bytes,
                trace: self.trace,
                sessions: self.sessions,
                tls: self.tls,
                pacing: self.pacing,
            },
            clock_offset_secs: self.clock_offset_secs,
        })
    }
}

fn secs_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn check_fit(kid: &str, key_type: KeyType, algorithm: Algorithm) -> Result<(), Error> {
    if key_type.fits(algorithm) {
        Ok(())
    } else {
        Err(Error::KeyAlgorithmMismatch {
            kid: kid.to_owned(),
            algorithm,
            key_type: key_type.name(),
            fits: key_type.fitting().to_owned(),
        })
    }
}

/// A checked sandbox configuration, ready to start.
///
/// Made by [`SandboxBuilder::build`]; [`Sandbox::builder`] is where to begin.
#[derive(Debug)]
pub struct Sandbox {
    pub(crate) config: Config,
    pub(crate) clock_offset_secs: i64,
}

impl Sandbox {
    /// A builder with IBKR's defaults and no client yet.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }
}

/// The validated configuration the request handler reads.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) keys: HashMap<String, KeyEntry>,
    pub(crate) clients: HashMap<String, ClientPolicy>,
    pub(crate) audience: String,
    pub(crate) expires_in_secs: u64,
    pub(crate) max_assertion_lifetime_secs: i64,
    pub(crate) iat_tolerance_secs: i64,
    pub(crate) request_log_capacity: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) trace: Option<TraceSink>,
    pub(crate) sessions: SessionSettings,
    pub(crate) tls: bool,
    pub(crate) pacing: Option<crate::SandboxPacing>,
}

#[derive(Debug)]
pub(crate) struct KeyEntry {
    pub(crate) client_id: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

#[derive(Debug)]
pub(crate) struct ClientPolicy {
    pub(crate) allowed_scopes: Option<Vec<String>>,
    pub(crate) default_scopes: Vec<String>,
}
