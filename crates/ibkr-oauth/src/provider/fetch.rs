//! [`Fetch`]: what the provider calls to get a new token, so that its machinery (cache, single
//! flight, refresh ahead, retries, clock skew) runs in front of any source of tokens: the real
//! token client ([`ClientFetch`]), a fleet-shared cache, or a test fake.

use std::fmt;
use std::time::SystemTime;

use crate::client::TokenClient;
use crate::error::Error;
use crate::request::TokenRequest;
use crate::token::Token;

/// What one attempt is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FetchContext {
    /// The time to stamp the assertion with: the local clock, shifted by the measured offset
    /// of the server's clock when that exceeds the threshold.
    pub assertion_time: SystemTime,
}

impl FetchContext {
    /// A context for an attempt stamped at `assertion_time` (for tests of a custom fetch).
    pub fn new(assertion_time: SystemTime) -> Self {
        Self { assertion_time }
    }
}

/// One way of getting a new token, attempted by the provider as often as its retry policy
/// says. [`ClientFetch`] asks IBKR; implement it to put the provider in front of another
/// source of tokens (a shared cache, a test fake) and build the provider with
/// [`TokenProvider::with_fetch`](super::TokenProvider::with_fetch).
#[async_trait::async_trait]
pub trait Fetch: Send + Sync + 'static {
    /// One attempt. A retryable error ([`Error::is_retryable`]) is retried by the provider.
    async fn fetch(&self, context: FetchContext) -> Result<Token, Error>;
}

/// The real fetch: the request (validated once) signed afresh for every attempt at the
/// context's time, then one POST through the client.
#[derive(Clone)]
pub struct ClientFetch {
    client: TokenClient,
    request: TokenRequest,
}

impl ClientFetch {
    /// A fetch that sends `request` (which should sign its own assertions: see
    /// [`TokenRequestBuilder::signer`](crate::TokenRequestBuilder::signer)) through `client`.
    pub fn new(client: TokenClient, request: TokenRequest) -> Self {
        Self { client, request }
    }

    /// The request this fetch sends.
    pub fn request(&self) -> &TokenRequest {
        &self.request
    }
}

impl fmt::Debug for ClientFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientFetch")
            .field("client", &self.client)
            .field("request", &self.request)
            .finish()
    }
}

#[async_trait::async_trait]
impl Fetch for ClientFetch {
    async fn fetch(&self, context: FetchContext) -> Result<Token, Error> {
        self.client
            .request_token_at(&self.request, context.assertion_time)
            .await
    }
}
