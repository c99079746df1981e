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
//! let client = ibkr_oauth::blocking::TokenClient::builder().build_blocking()?;
//! let request = TokenRequest::builder()
//!     .assertion(ClientAssertion::new("eyJ...signed JWS..."))
//!     .scope("sso-sessions.write")
//!     .build()?;
//! let token = client.request_token(&request)?;
//! println!("token expires at {:?}", token.expires_at());
//! # Ok::<(), ibkr_oauth::Error>(())
//! ```

use std::fmt;
use std::sync::mpsc;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::error::Error;
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
    /// A builder with the async client's defaults; finish it with
    /// [`build_blocking`](crate::TokenClientBuilder::build_blocking).
    pub fn builder() -> crate::TokenClientBuilder {
        crate::TokenClient::builder()
    }

    /// A client with every default, talking to [`IBKR_PRODUCTION`](crate::IBKR_PRODUCTION).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the HTTP client, the runtime or its thread cannot be
    /// started.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build_blocking()
    }

    /// Starts the runtime thread for an async client built on purpose for it.
    pub(crate) fn start(client: crate::TokenClient) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                Error::InvalidConfig(format!(
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
                Error::InvalidConfig(format!(
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
    /// Those of [`crate::TokenClient::request_token`], and [`Error::Transport`] if the
    /// runtime thread has stopped.
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
    Error::Transport {
        source: "the blocking client's runtime thread has stopped; build a new client".into(),
    }
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::TokenClient")
            .field(&self.client)
            .finish()
    }
}
