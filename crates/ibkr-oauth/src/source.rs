//! [`TokenSource`]: anything that hands out access tokens, the one trait for it. [`TokenProvider`]
//! (one process) implements it; so do [`FixedToken`] (tests), [`FnSource`] (a closure),
//! [`ClientFetch`] (one request per token, the provider's bottom layer) and, in other crates,
//! a fleet-shared cache. Code that needs a token (the bearer middleware, your own API client)
//! takes a `TokenSource`, so a test can hand it a fake; a [`TokenProvider`] caches in front of
//! any `TokenSource` ([`TokenProvider::with_source`]), calling its
//! [`fetch`](TokenSource::fetch).
//!
//! [`ClientFetch`]: crate::provider::ClientFetch
//! [`TokenProvider::with_source`]: crate::provider::TokenProvider::with_source
//! [`TokenProvider`]: crate::provider::TokenProvider

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Error;
use crate::token::Token;

/// Hands out access tokens and hears about the ones the API refused.
///
/// Object-safe: use it as `Arc<dyn TokenSource>`. Mock it in your own tests with
/// [`FixedToken`], [`FnSource`], or an implementation of your own:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ibkr_oauth::{Error, SecretString, Token, TokenSource};
///
/// /// Hands out "first", then "second" once "first" was reported refused.
/// #[derive(Debug, Default)]
/// struct Rotating {
///     refused: Mutex<bool>,
/// }
///
/// #[async_trait::async_trait]
/// impl TokenSource for Rotating {
///     async fn access_token(&self) -> Result<Arc<Token>, Error> {
///         let name = if *self.refused.lock().unwrap() { "second" } else { "first" };
///         Ok(Arc::new(Token::builder(SecretString::from(name)).build()?))
///     }
///
///     async fn invalidate(&self, _token: &Token) -> bool {
///         *self.refused.lock().unwrap() = true;
///         true
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let source: Arc<dyn TokenSource> = Arc::new(Rotating::default());
/// let token = source.access_token().await?;
/// source.invalidate(&token).await;
/// # use ibkr_oauth::ExposeSecret;
/// assert_eq!(source.access_token().await?.access_token().expose_secret(), "second");
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// The current token (cached while valid, fetched when not).
    ///
    /// # Errors
    /// Why no token can be had now; [`Error::kind`] says what kind of failure it is.
    async fn access_token(&self) -> Result<Arc<Token>, Error>;

    /// The API refused `token` (a 401): drop it if it is still the current one, so that the
    /// next [`access_token`](Self::access_token) brings a new one. Returns whether it was the
    /// current one.
    async fn invalidate(&self, token: &Token) -> bool;

    /// A new token for one attempt of a cache in front (a
    /// [`TokenProvider`](crate::provider::TokenProvider) built with
    /// [`with_source`](crate::provider::TokenProvider::with_source)), whose assertion, if
    /// this source signs one, is stamped at `context.assertion_time` (the local time
    /// corrected by the server's clock). The cache retries a retryable error
    /// ([`Error::is_retryable`]).
    ///
    /// The default hands out [`access_token`](Self::access_token): right for a source that
    /// signs nothing. A source that signs assertions (or passes the context on to one that
    /// does) overrides it.
    async fn fetch(&self, context: FetchContext) -> Result<Token, Error> {
        let _ = context;
        Ok(Token::clone(&*self.access_token().await?))
    }
}

/// What one attempt of [`TokenSource::fetch`] is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FetchContext {
    /// The time to stamp the assertion with: the local clock, shifted by the measured offset
    /// of the server's clock when that exceeds the threshold.
    pub assertion_time: SystemTime,
}

impl FetchContext {
    /// A context for an attempt stamped at `assertion_time` (for tests of a custom source).
    pub fn new(assertion_time: SystemTime) -> Self {
        Self { assertion_time }
    }
}

#[async_trait::async_trait]
impl<S: TokenSource + ?Sized> TokenSource for Arc<S> {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        (**self).access_token().await
    }

    async fn invalidate(&self, token: &Token) -> bool {
        (**self).invalidate(token).await
    }

    async fn fetch(&self, context: FetchContext) -> Result<Token, Error> {
        (**self).fetch(context).await
    }
}

#[async_trait::async_trait]
impl<S: TokenSource + ?Sized> TokenSource for Box<S> {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        (**self).access_token().await
    }

    async fn invalidate(&self, token: &Token) -> bool {
        (**self).invalidate(token).await
    }

    async fn fetch(&self, context: FetchContext) -> Result<Token, Error> {
        (**self).fetch(context).await
    }
}

/// A source that always hands out the same token and ignores reports (for tests).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ibkr_oauth::Error> {
/// use ibkr_oauth::{FixedToken, SecretString, Token, TokenSource};
///
/// let source = FixedToken::new(Token::builder(SecretString::from("test-token")).build()?);
/// assert_eq!(source.access_token().await?.authorization_header(), "Bearer test-token");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FixedToken {
    token: Arc<Token>,
}

impl FixedToken {
    /// A source of `token`, for ever.
    pub fn new(token: Token) -> Self {
        Self {
            token: Arc::new(token),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for FixedToken {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        Ok(Arc::clone(&self.token))
    }

    async fn invalidate(&self, _token: &Token) -> bool {
        false
    }
}

/// The future a [`FnSource`] closure returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<Arc<Token>, Error>> + Send>>;

/// A source made of a closure that returns a token future (like aws-config's
/// `provide_credentials_fn`). Reports of refused tokens are ignored: put a
/// [`TokenProvider`](crate::provider::TokenProvider) in front of it for caching and
/// invalidation.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ibkr_oauth::Error> {
/// use std::sync::Arc;
/// use ibkr_oauth::{FnSource, SecretString, Token, TokenSource};
///
/// let source = FnSource::new(|| {
///     Box::pin(async {
///         // e.g. read the token a sidecar keeps fresh
///         Ok(Arc::new(Token::builder(SecretString::from("from-sidecar")).build()?))
///     })
/// });
/// assert_eq!(source.access_token().await?.authorization_header(), "Bearer from-sidecar");
/// # Ok(())
/// # }
/// ```
pub struct FnSource<F> {
    f: F,
}

impl<F> FnSource<F>
where
    F: Fn() -> TokenFuture + Send + Sync,
{
    /// A source that calls `f` for every token.
    pub fn new(f: F) -> Self {
        Self { f }
    }
}

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnSource")
    }
}

#[async_trait::async_trait]
impl<F> TokenSource for FnSource<F>
where
    F: Fn() -> TokenFuture + Send + Sync,
{
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        (self.f)().await
    }

    async fn invalidate(&self, _token: &Token) -> bool {
        false
    }
}
