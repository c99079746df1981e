//! Layer 0 of the provider: [`ClientFetch`], the [`TokenSource`] that asks IBKR (one request
//! per token, through the client, the transport and the response mapping). The cache above
//! runs in front of it, or of any other `TokenSource` (a fleet-shared cache, a test fake).

use std::fmt;
use std::sync::Arc;

use crate::client::TokenClient;
use crate::error::Error;
use crate::request::TokenRequest;
use crate::source::{FetchContext, TokenSource};
use crate::token::Token;

/// The real fetch: the request (validated once) signed afresh for every attempt at the
/// context's time, then one POST through the client. As a [`TokenSource`] on its own it
/// caches nothing: every [`access_token`](TokenSource::access_token) is a request.
#[derive(Clone)]
pub struct ClientFetch {
    client: TokenClient,
    request: TokenRequest,
}

impl ClientFetch {
    /// A fetch that sends `request` (which should sign its own assertions: see
    /// [`TokenRequestBuilder::signer`](crate::builders::TokenRequestBuilder::signer)) through
    /// `client`.
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
impl TokenSource for ClientFetch {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        self.client.request_token(&self.request).await.map(Arc::new)
    }

    /// Nothing is cached, so there is nothing to drop.
    async fn invalidate(&self, _token: &Token) -> bool {
        false
    }

    async fn fetch(&self, context: FetchContext) -> Result<Token, Error> {
        self.client
            .request_token_at(&self.request, context.assertion_time)
            .await
    }
}
