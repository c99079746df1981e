//! [`SsoToken`]: the SSO session's bearer for `/v1/api` calls, held as a secret.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// Tells tokens apart without comparing secrets.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The bearer of one SSO session (the `access_token` of the sso-sessions answer). Debug and
/// Display never print it.
pub struct SsoToken {
    secret: SecretString,
    id: u64,
}

impl SsoToken {
    /// Wraps an SSO token (e.g. one shared by another process, or a test's).
    pub fn new(secret: SecretString) -> Self {
        Self {
            secret,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The token itself. Keep it out of logs.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// `Bearer <token>`, marked sensitive (HTTP/2 never indexes it, Debug hides it). A token
    /// that cannot be a header value gives an empty, still sensitive value (refused by IBKR).
    pub fn authorization_header(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.secret.expose_secret()))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// Whether `other` is this very token (the same grant, not merely the same text).
    pub fn same(&self, other: &SsoToken) -> bool {
        self.id == other.id
    }
}

impl fmt::Debug for SsoToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoToken")
            .field("secret", &"[REDACTED]")
            .field("id", &self.id)
            .finish()
    }
}
