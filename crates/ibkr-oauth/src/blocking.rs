//! A blocking token client, for programs without an async runtime (feature `blocking`).
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
//! let client = ibkr_oauth::blocking::TokenClient::builder().build()?;
//! let request = TokenRequest::builder()
//!     .assertion(ClientAssertion::new("eyJ...signed JWS..."))
//!     .scope("sso-sessions.write")
//!     .build()?;
//! let token = client.request_token(&request)?;
//! println!("token expires at {:?}", token.expires_at());
//! # Ok::<(), ibkr_oauth::Error>(())
//! ```

use std::fmt;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::clock::Clock;
use crate::error::{ConfigError, Error};
use crate::request::TokenRequest;
use crate::token::Token;

/// One request handed to the runtime thread, with where to send the answer.
struct Job {
    request: TokenRequest,
    reply: mpsc::SyncSender<Result<Token, Error>>,
}

/// The blocking counterpart of [`crate::TokenClient`]: same settings, same errors.
///
/// Cheap to clone; the clones share the runtime thread, which stops when the last clone is
/// dropped. Several threads may call it at once: their requests run concurrently.
#[derive(Clone)]
pub struct TokenClient {
    client: crate::TokenClient,
    jobs: UnboundedSender<Job>,
}

impl TokenClient {
    /// A builder with the async client's defaults.
    pub fn builder() -> TokenClientBuilder {
        TokenClientBuilder {
            inner: crate::TokenClient::builder(),
        }
    }

    /// A client with every default, talking to [`IBKR_PRODUCTION`](crate::IBKR_PRODUCTION).
    ///
    /// # Errors
    /// [`ConfigError::Client`] if the HTTP client, the runtime or its thread cannot be
    /// started.
    pub fn new() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// Starts the runtime thread for an async client built on purpose for it.
    fn start(client: crate::TokenClient) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                ConfigError::Client(format!(
                    "could not start the blocking client's runtime ({e}); check the process's \
                     thread and file limits"
                ))
            })?;
        let (jobs, mut queue) = unbounded_channel::<Job>();
        let worker = client.clone();
        std::thread::Builder::new()
            .name("ibkr-oauth-blocking".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        let client = worker.clone();
                        tokio::spawn(async move {
                            let result = client.request_token(&job.request).await;
                            // The caller may have gone; nothing to do then.
                            let _ = job.reply.send(result);
                        });
                    }
                });
            })
            .map_err(|e| {
                ConfigError::Client(format!(
                    "could not start the blocking client's thread ({e}); check the process's \
                     thread limits"
                ))
            })?;
        Ok(Self { client, jobs })
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
        let (reply, answer) = mpsc::sync_channel(1);
        self.jobs
            .send(Job {
                request: request.clone(),
                reply,
            })
            .map_err(|_| worker_stopped())?;
        answer.recv().map_err(|_| worker_stopped())?
    }
}

fn worker_stopped() -> Error {
    Error::custom(
        crate::ErrorKind::Internal,
        "the blocking client's runtime thread has stopped; build a new client",
        None,
    )
}

/// Builds a [`blocking::TokenClient`](TokenClient): the settings of
/// [`crate::TokenClientBuilder`], validated the same way by [`build`](Self::build).
#[must_use = "a builder does nothing until build() is called"]
#[derive(Debug)]
pub struct TokenClientBuilder {
    inner: crate::TokenClientBuilder,
}

impl TokenClientBuilder {
    /// See [`crate::TokenClientBuilder::base_url`].
    pub fn base_url(self, base_url: impl AsRef<str>) -> Self {
        Self {
            inner: self.inner.base_url(base_url),
        }
    }

    /// See [`crate::TokenClientBuilder::connect_timeout`].
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        Self {
            inner: self.inner.connect_timeout(timeout),
        }
    }

    /// See [`crate::TokenClientBuilder::timeout`].
    pub fn timeout(self, timeout: Duration) -> Self {
        Self {
            inner: self.inner.timeout(timeout),
        }
    }

    /// See [`crate::TokenClientBuilder::max_response_bytes`].
    pub fn max_response_bytes(self, bytes: usize) -> Self {
        Self {
            inner: self.inner.max_response_bytes(bytes),
        }
    }

    /// See [`crate::TokenClientBuilder::user_agent`].
    pub fn user_agent(self, user_agent: impl Into<String>) -> Self {
        Self {
            inner: self.inner.user_agent(user_agent),
        }
    }

    /// See [`crate::TokenClientBuilder::clock`].
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: self.inner.clock(clock),
        }
    }

    /// See [`crate::TokenClientBuilder::http_client_builder`].
    pub fn http_client_builder(self, builder: reqwest::ClientBuilder) -> Self {
        Self {
            inner: self.inner.http_client_builder(builder),
        }
    }

    /// Validates the settings, builds the client and starts its runtime thread.
    ///
    /// # Errors
    /// Those of [`crate::TokenClientBuilder::build`], and [`ConfigError::Client`] if the
    /// private runtime or its thread cannot be started.
    pub fn build(self) -> Result<TokenClient, ConfigError> {
        TokenClient::start(self.inner.build()?)
    }
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::TokenClient")
            .field(&self.client)
            .finish()
    }
}
