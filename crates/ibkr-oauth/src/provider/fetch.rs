//! One fetch attempt, behind a small trait so that the provider's machinery (cache, single
//! flight, refresh, retries) runs the same against the real token client and a test fake.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::client::TokenClient;
use crate::error::Error;
use crate::request::TokenRequest;
use crate::token::Token;

/// What one attempt is told.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    /// The time to stamp the assertion with: the local clock, shifted by the measured offset
    /// of the server's clock when that exceeds the threshold.
    pub(crate) assertion_time: SystemTime,
}

pub(crate) type AttemptFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, Error>> + Send + 'a>>;

/// One token request, ready to be attempted any number of times.
pub(crate) trait Fetch: Send + Sync + 'static {
    fn attempt(&self, attempt: Attempt) -> AttemptFuture<'_>;
}

/// The real fetch: the request (validated once, at build) signed afresh for every attempt,
/// then one POST through the client.
pub(crate) struct ClientFetch {
    pub(crate) client: TokenClient,
    /// Holds the signer as its assertion source.
    pub(crate) request: TokenRequest,
}

impl Fetch for ClientFetch {
    fn attempt(&self, attempt: Attempt) -> AttemptFuture<'_> {
        Box::pin(async move {
            let request = self.request.signed_at(attempt.assertion_time)?;
            self.client.request_token(&request).await
        })
    }
}
