//! Client assertions (RFC 7521 / RFC 7523): the signed JWT that authenticates the client.
//!
//! A [`PrivateKey`] is read once (PEM: PKCS#8, PKCS#1, SEC1, encrypted PKCS#8), a [`Signer`]
//! holds it with the client id and key id, and every token request asks the signer for a fresh
//! [`ClientAssertion`]:
//!
//! ```no_run
//! use ibkr_oauth::{PrivateKey, Signer};
//!
//! let key = PrivateKey::from_pem_file("private.pem")?;
//! let signer = Signer::builder("my-client-id", "main", key).build()?; // RS256, aud "/token"
//! let assertion = signer.sign()?; // a new JWS, jti and iat/exp on every call
//! # Ok::<(), ibkr_oauth::Error>(())
//! ```

mod jwk; // the public key as a JWK, and its RFC 7638 thumbprint
mod jws;
mod key;
mod pem;
mod sign;
mod signer;

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

// Their types live below this module (the algorithms a leaf, the key and signing errors with
// the crate's errors), so that `error` never imports `assertion`.
pub use crate::algorithm::{Algorithm, KeyType};
pub use crate::error::{KeyError, KeyOrigin, SignError};
#[cfg(feature = "provider")]
pub(crate) use jws::random_jti;
pub use key::PrivateKey;
pub use sign::AssertionSigner;
pub use signer::{Signer, SignerBuilder}; // the sso-sessions JWS's `jti`

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
