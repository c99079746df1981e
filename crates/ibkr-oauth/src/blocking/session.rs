//! The blocking [`Session`]: the async [`crate::session::Session`] on the blocking module's
//! private runtime thread, where its keeper runs too.
//!
//! ```no_run
//! use ibkr_oauth::session::SessionConfig;
//! use ibkr_oauth::{PrivateKey, Signer, TokenClient};
//!
//! let signer = Signer::builder("my-client-id", "main", PrivateKey::from_pem_file("private.pem")?).build()?;
//! let tokens = ibkr_oauth::blocking::TokenProvider::build(
//!     ibkr_oauth::provider::TokenProvider::builder(TokenClient::new()?, signer.clone())
//!         .scope("sso-sessions.write"),
//! )?;
//! let config = SessionConfig::builder("my-ibkr-username").ip("203.0.113.7").build()?;
//! let session = ibkr_oauth::blocking::Session::build(
//!     ibkr_oauth::session::Session::builder(tokens.as_async().clone(), signer, config),
//! )?;
//! println!("{}", session.open()?);
//! session.close()?;
//! # Ok::<(), ibkr_oauth::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use super::Worker;
use crate::error::Error;
use crate::session::{
    BrokerageStatus, SessionBuilder, SessionStatus, SsoToken, SsoValidation, TickleStatus,
};

/// The blocking counterpart of [`crate::session::Session`]. Cheap to clone; when the last
/// clone is dropped the session logs out (blocking for at most the logout timeout) and its
/// thread stops.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

struct Shared {
    session: crate::session::Session,
    worker: Worker,
}

impl Session {
    /// Builds the async session from `builder` and starts its runtime thread.
    ///
    /// # Errors
    /// Those of [`SessionBuilder::build`], and [`ConfigError::Client`](crate::ConfigError::Client)
    /// if the runtime or its thread cannot be started.
    pub fn build(builder: SessionBuilder) -> Result<Self, Error> {
        let session = builder.build()?;
        let worker = Worker::start("blocking session")?;
        Ok(Self {
            shared: Arc::new(Shared { session, worker }),
        })
    }

    fn run<T: Send + 'static, F>(
        &self,
        job: impl FnOnce(crate::session::Session) -> F,
    ) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    {
        let session = self.as_async().clone();
        self.shared.worker.run(job(session))
    }

    /// See [`crate::session::Session::open`].
    ///
    /// # Errors
    /// As there.
    pub fn open(&self) -> Result<SessionStatus, Error> {
        self.run(|s| async move { s.open().await })
    }

    /// See [`crate::session::Session::sso_token`].
    ///
    /// # Errors
    /// As there.
    pub fn sso_token(&self) -> Result<Arc<SsoToken>, Error> {
        self.run(|s| async move { s.sso_token().await })
    }

    /// See [`crate::session::Session::invalidate`].
    pub fn invalidate(&self, token: Arc<SsoToken>) -> bool {
        self.run(|s| async move { Ok(s.invalidate(&token).await) })
            .unwrap_or(false)
    }

    /// See [`crate::session::Session::open_brokerage`].
    ///
    /// # Errors
    /// As there.
    pub fn open_brokerage(&self) -> Result<BrokerageStatus, Error> {
        self.run(|s| async move { s.open_brokerage().await })
    }

    /// See [`crate::session::Session::validate`].
    ///
    /// # Errors
    /// As there.
    pub fn validate(&self) -> Result<SsoValidation, Error> {
        self.run(|s| async move { s.validate().await })
    }

    /// See [`crate::session::Session::tickle`].
    ///
    /// # Errors
    /// As there.
    pub fn tickle(&self) -> Result<TickleStatus, Error> {
        self.run(|s| async move { s.tickle().await })
    }

    /// The status now (no blocking).
    pub fn status(&self) -> SessionStatus {
        self.as_async().status()
    }

    /// See [`crate::session::Session::close`].
    ///
    /// # Errors
    /// As there.
    pub fn close(&self) -> Result<(), Error> {
        self.run(|s| async move { s.close().await })
    }

    /// The async session inside, for async code in the same program (its keeper runs on this
    /// session's thread).
    pub fn as_async(&self) -> &crate::session::Session {
        &self.shared.session
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Logged out on the runtime thread, bounded by the logout timeout; the handle left
        // here then drops a closed session.
        let session = self.session.clone();
        let _ = self.worker.run(async move {
            let _ = session.close().await;
            Ok(())
        });
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Session")
            .field(&self.shared.session)
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}
