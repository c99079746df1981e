//! A blocking token client and token provider, for programs without an async runtime
//! (feature `blocking`).
//!
//! Like `reqwest::blocking`, it runs the async [`crate::TokenClient`] on a private
//! current-thread tokio runtime that lives on a thread of its own; a call sends the request to
//! that thread and waits for the answer. Because the runtime never runs on the caller's
//! thread, calling from inside another async runtime cannot panic ("cannot start a runtime
//! from within a runtime"), and neither can dropping the client there. It would still block
//! that runtime's thread for the whole exchange: in async code use [`crate::TokenClient`].
//!
//! ```no_run
//! use ibkr_oauth::{ClientAssertion, TokenRequest};
//!
//! let client = ibkr_oauth::blocking::TokenClient::new()?;
//! let request = TokenRequest::builder()
//!     .assertion(ClientAssertion::new("eyJ...signed JWS..."))
//!     .scope("sso-sessions.write")
//!     .build()?;
//! let token = client.request_token(&request)?;
//! println!("token expires at {:?}", token.expires_at());
//! # Ok::<(), ibkr_oauth::Error>(())
//! ```
//!
//! The cached, refreshed token ([`TokenProvider`]) works the same way: its refresher runs on
//! the private runtime, and a cached token is handed out without crossing threads.
//!
//! ```no_run
//! use ibkr_oauth::{PrivateKey, Signer, TokenClient};
//!
//! let signer = Signer::builder("my-client-id", "main", PrivateKey::from_pem_file("private.pem")?).build()?;
//! use ibkr_oauth::provider::TokenProvider;
//!
//! // The async provider's builder, with all its settings, built into the blocking provider.
//! let provider = ibkr_oauth::blocking::TokenProvider::build(
//!     TokenProvider::builder(TokenClient::new()?, signer).scope("sso-sessions.write"),
//! )?;
//! let token = provider.access_token()?; // blocks only when no valid token is cached
//! # let _ = token;
//! # Ok::<(), ibkr_oauth::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, mpsc};

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::error::{ClientSetting, ConfigError, Error};
use crate::request::TokenRequest;
use crate::token::Token;

mod session; // the blocking Session
pub use session::Session;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A current-thread tokio runtime on a thread of its own, running the jobs it is sent; it
/// stops when the last handle is dropped.
#[derive(Clone)]
struct Worker {
    jobs: UnboundedSender<Job>,
}

impl Worker {
    fn start(name: &'static str) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                ConfigError::Client(ClientSetting::Worker {
                    worker: name,
                    reason: e.to_string(),
                })
            })?;
        let (jobs, mut queue) = unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("ibkr-oauth-blocking".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .map_err(|e| {
                ConfigError::Client(ClientSetting::Worker {
                    worker: name,
                    reason: e.to_string(),
                })
            })?;
        Ok(Self { jobs })
    }

    /// Runs `job` on the runtime and waits for its result.
    fn run<T: Send + 'static>(
        &self,
        job: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::pin(async move {
                // The caller may have gone; nothing to do then.
                let _ = reply.send(job.await);
            }))
            .map_err(|_| worker_stopped())?;
        answer.recv().map_err(|_| worker_stopped())?
    }
}

/// The blocking counterpart of [`crate::TokenClient`]: same settings, same errors.
///
/// Cheap to clone; the clones share the runtime thread, which stops when the last clone is
/// dropped. Several threads may call it at once: their requests run concurrently.
#[derive(Clone)]
pub struct TokenClient {
    client: crate::TokenClient,
    worker: Worker,
}

impl TokenClient {
    /// Builds the async client from `builder` (all of
    /// [`TokenClientBuilder`](crate::builders::TokenClientBuilder)'s settings, validated the
    /// same way) and starts the runtime thread.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let client = ibkr_oauth::blocking::TokenClient::build(
    ///     ibkr_oauth::TokenClient::builder().timeout(Duration::from_secs(10)),
    /// )?;
    /// # Ok::<(), ibkr_oauth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`crate::builders::TokenClientBuilder::build`], and [`ConfigError::Client`] if
    /// the private runtime or its thread cannot be started.
    pub fn build(builder: crate::builders::TokenClientBuilder) -> Result<Self, ConfigError> {
        let client = builder.build()?;
        let worker = Worker::start("blocking client")?;
        Ok(TokenClient { client, worker })
    }

    /// A client with every default, talking to [`IBKR_PRODUCTION`](crate::IBKR_PRODUCTION).
    ///
    /// # Errors
    /// [`ConfigError::Client`] if the HTTP client, the runtime or its thread cannot be
    /// started.
    pub fn new() -> Result<Self, ConfigError> {
        Self::build(crate::TokenClient::builder())
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// Sends one token request and waits for the token or the error (see
    /// [`crate::TokenClient::request_token`]).
    ///
    /// # Errors
    /// Those of [`crate::TokenClient::request_token`], and an [`ErrorKind::Internal`](crate::ErrorKind::Internal)
    /// error if the runtime thread has stopped.
    pub fn request_token(&self, request: &TokenRequest) -> Result<Token, Error> {
        let client = self.client.clone();
        let request = request.clone();
        self.worker
            .run(async move { client.request_token(&request).await })
    }
}

/// The blocking counterpart of [`crate::provider::TokenProvider`]: a cached token, refreshed
/// ahead of expiry by a refresher on a private runtime thread.
///
/// Cheap to clone; the clones share the cache and the thread, which stops (with the
/// refresher) when the last clone is dropped.
#[derive(Clone)]
pub struct TokenProvider {
    inner: crate::provider::TokenProvider,
    worker: Worker,
}

impl TokenProvider {
    /// Builds the async provider from `builder` (all of
    /// [`TokenProviderBuilder`](crate::provider::TokenProviderBuilder)'s settings), starts its
    /// runtime thread and its refresher there.
    ///
    /// # Errors
    /// Those of [`crate::provider::TokenProviderBuilder::build`], and
    /// [`ConfigError::Client`] if the runtime or its thread cannot be started.
    pub fn build(builder: crate::provider::TokenProviderBuilder) -> Result<Self, Error> {
        let inner = builder.build()?;
        let worker = Worker::start("blocking token provider")?;
        let background = inner.clone();
        worker
            .jobs
            .send(Box::pin(async move {
                // Lives as long as the runtime: the refresher stops with the last handle.
                if let Ok(_refresher) = background.spawn_refresher() {
                    std::future::pending::<()>().await;
                }
            }))
            .map_err(|_| worker_stopped())?;
        Ok(TokenProvider { inner, worker })
    }

    /// The current token: the cached one at once while valid, else the one fetch that all
    /// callers share (this call blocks until it ends).
    ///
    /// # Errors
    /// Those of [`crate::provider::TokenProvider::access_token`].
    pub fn access_token(&self) -> Result<Arc<Token>, Error> {
        if let Some(token) = self.inner.cached() {
            return Ok(token);
        }
        let provider = self.inner.clone();
        self.worker
            .run(async move { provider.access_token().await })
    }

    /// Reports that the API rejected `token`; see
    /// [`crate::provider::TokenProvider::invalidate`].
    pub fn invalidate(&self, token: &Token) -> bool {
        let provider = self.inner.clone();
        let token = token.clone();
        self.worker
            .run(async move { Ok(provider.invalidate(&token)) })
            .unwrap_or(false)
    }

    /// The async provider inside, for async code in the same program.
    pub fn as_async(&self) -> &crate::provider::TokenProvider {
        &self.inner
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::TokenProvider")
            .field(&self.inner)
            .finish()
    }
}

fn worker_stopped() -> Error {
    Error::custom(
        crate::ErrorKind::Internal,
        "the blocking client's runtime thread has stopped; build a new client",
        None,
    )
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::TokenClient")
            .field(&self.client)
            .finish()
    }
}
