//! [`SessionSource`]: anything that hands out SSO tokens, as [`TokenSource`](crate::TokenSource)
//! hands out access tokens. [`Session`](super::Session) implements it; so does
//! [`FixedSession`] (tests). The session middleware takes a `SessionSource`, so a test can
//! hand it a fake.

use std::fmt;
use std::sync::Arc;

use super::SsoToken;
use crate::error::Error;

/// Hands out the SSO bearer for `/v1/api` calls and hears about refusals.
///
/// Object-safe: use it as `Arc<dyn SessionSource>`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ibkr_oauth::Error> {
/// use ibkr_oauth::SecretString;
/// use ibkr_oauth::session::{FixedSession, SessionSource, SsoToken};
///
/// let source = FixedSession::new(SsoToken::new(SecretString::from("sso-token")));
/// let token = source.sso_token().await?;
/// assert_eq!(token.authorization_header(), "Bearer sso-token");
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait SessionSource: Send + Sync + fmt::Debug {
    /// The current SSO token, opening the session first if it is not open.
    ///
    /// # Errors
    /// Why no SSO session can be had now; [`Error::kind`] says what kind of failure.
    async fn sso_token(&self) -> Result<Arc<SsoToken>, Error>;

    /// The API refused `token` (401): open a new SSO session, once however many callers report
    /// the same token. Returns whether this report replaced it.
    async fn invalidate(&self, token: &SsoToken) -> bool;

    /// The API answered `no bridge`: open the brokerage session (`ssodh/init`).
    ///
    /// # Errors
    /// Why it could not be opened ([`SessionError`](super::SessionError)).
    async fn open_brokerage(&self) -> Result<(), Error>;
}

#[async_trait::async_trait]
impl<S: SessionSource + ?Sized> SessionSource for Arc<S> {
    async fn sso_token(&self) -> Result<Arc<SsoToken>, Error> {
        (**self).sso_token().await
    }

    async fn invalidate(&self, token: &SsoToken) -> bool {
        (**self).invalidate(token).await
    }

    async fn open_brokerage(&self) -> Result<(), Error> {
        (**self).open_brokerage().await
    }
}

/// A source that always hands out the same SSO token; refusals are ignored and
/// `open_brokerage` succeeds at once (for tests).
#[derive(Debug, Clone)]
pub struct FixedSession {
    token: Arc<SsoToken>,
}

impl FixedSession {
    /// A source of `token`, for ever.
    pub fn new(token: SsoToken) -> Self {
        Self {
            token: Arc::new(token),
        }
    }
}

#[async_trait::async_trait]
impl SessionSource for FixedSession {
    async fn sso_token(&self) -> Result<Arc<SsoToken>, Error> {
        Ok(Arc::clone(&self.token))
    }

    async fn invalidate(&self, _token: &SsoToken) -> bool {
        false
    }

    async fn open_brokerage(&self) -> Result<(), Error> {
        Ok(())
    }
}
