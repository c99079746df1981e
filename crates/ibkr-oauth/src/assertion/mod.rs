//! Client assertions (RFC 7521 / RFC 7523): the signed JWT that authenticates the client.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A compact JWS client assertion, held as a secret from the moment it exists until it goes
/// on the wire. Prints as `[redacted]`.
#[derive(Clone)]
pub struct ClientAssertion(SecretString);

impl ClientAssertion {
    /// Wraps an already signed compact JWS (for callers who sign assertions themselves).
    pub fn new(compact_jws: impl Into<String>) -> Self {
        Self(SecretString::from(compact_jws.into()))
    }

    /// The compact JWS. Only for putting it on the wire or into a verifier.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientAssertion([redacted])")
    }
}

impl fmt::Display for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
