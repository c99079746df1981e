//! [`AssertionSigner`]: anything that signs a client assertion. [`Signer`] (a key in this
//! process) implements it; a key held in a KMS or an HSM implements it too.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::ClientAssertion;
use super::signer::Signer;
use crate::clock::{Clock, SystemClock};
use crate::error::Error;

/// Signs client assertions for the token requests. The request builder and the token provider
/// take any implementation, so the private key need not live in this process.
///
/// The assertion must be a compact JWS with the claims IBKR checks: `iss` and `sub` the client
/// id, `aud` `/token`, `iat` and `exp` around `now`, a fresh `jti`, and the `kid` header.
///
/// ```
/// use std::time::SystemTime;
/// use ibkr_oauth::{AssertionSigner, ClientAssertion, Error, ErrorKind};
///
/// /// Signs with a key held elsewhere (here: a closure standing in for a KMS call).
/// struct Kms<F>(F);
///
/// impl<F> std::fmt::Debug for Kms<F> {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("Kms")
///     }
/// }
///
/// #[async_trait::async_trait]
/// impl<F> AssertionSigner for Kms<F>
/// where
///     F: Fn(SystemTime) -> Result<String, String> + Send + Sync + 'static,
/// {
///     async fn sign_assertion(&self, now: SystemTime) -> Result<ClientAssertion, Error> {
///         (self.0)(now)
///             .map(ClientAssertion::new)
///             .map_err(|e| Error::custom(ErrorKind::Transport, format!("the KMS failed: {e}; retry"), None))
///     }
/// }
/// # let _ = Kms(|_: SystemTime| Ok::<_, String>("eyJhbGciOiJSUzI1NiJ9.e30.c2ln".to_owned()));
/// ```
#[async_trait::async_trait]
pub trait AssertionSigner: Send + Sync + fmt::Debug + 'static {
    /// Signs a fresh assertion stamped as if the time were `now`.
    ///
    /// # Errors
    /// Whatever keeps it from signing; [`Error::custom`] builds one for outside code.
    async fn sign_assertion(&self, now: SystemTime) -> Result<ClientAssertion, Error>;

    /// The clock that stamps this signer's assertions (default: the system clock).
    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

#[async_trait::async_trait]
impl AssertionSigner for Signer {
    async fn sign_assertion(&self, now: SystemTime) -> Result<ClientAssertion, Error> {
        Ok(self.sign_at(now)?)
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(self.clock_ref())
    }
}
