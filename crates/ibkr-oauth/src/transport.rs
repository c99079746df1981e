//! The one HTTP path: the generated `generate_token` operation, wrapped through its own
//! extension point (reqwest-middleware) with what it cannot do alone.
//!
//! [`Capture`] sits between the generated code and reqwest for one call. It adds the `Accept`
//! header the wire contract names, reads the body chunk by chunk and refuses it past the cap
//! (never holding more than the cap), and records the status, the headers the mapping needs and
//! the buffered body in a slot of its own. The generated code gets the status and headers with
//! an empty body: its reading of the response is ignored anyway (its untagged error enum would
//! call a 500 problem `Status400`), so the body is parsed once, by the response mapping.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE, DATE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use ibkr_oauth_generated::apis::Error as GeneratedError;
use ibkr_oauth_generated::apis::authorization_token_api::generate_token;
use ibkr_oauth_generated::apis::configuration::Configuration;
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use tracing::Instrument;

use crate::clock::Clock;
use crate::error::ResponseInfo;
use crate::error::{Error, root_cause};
use crate::request::TokenRequest;
use crate::response::{RawResponse, map_response};
use crate::token::Token;

/// The token endpoint's path below the base URL.
pub const TOKEN_PATH: &str = "/oauth2/api/v1/token";

/// Everything one token exchange needs, validated by the client's builder: the client is a
/// shell around it, and the exchange lives here.
pub(crate) struct Endpoint {
    /// The validated base URL, without a trailing slash.
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) user_agent: String,
    pub(crate) max_response_bytes: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) timeout: std::time::Duration,
}

/// What the wire contract says the client accepts.
const ACCEPT_VALUE: &str = "application/json, application/problem+json";

/// What [`Capture`] saw of the one response of its call.
#[derive(Debug)]
pub(crate) enum Captured {
    /// The whole body arrived within the cap.
    Complete(RawResponse),
    /// The body (announced or read so far) went past the cap.
    TooLarge { limit: usize, info: ResponseInfo },
}

type Slot = Arc<Mutex<Option<Captured>>>;

/// The caller's side of one [`Capture`]: what it recorded of the last response.
pub(crate) struct Recording(Slot);

impl Recording {
    /// The last response the capture saw (the retried one, after a bearer retry).
    pub(crate) fn take(&self) -> Option<Captured> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// A capture for one call (the token request, or an API call): the middleware to put in the
/// generated operation's client, and where to read what it recorded.
pub(crate) fn capture(limit: usize, clock: Arc<dyn Clock>) -> (Arc<dyn Middleware>, Recording) {
    let slot: Slot = Arc::new(Mutex::new(None));
    let middleware = Arc::new(Capture {
        slot: Arc::clone(&slot),
        limit,
        clock,
    });
    (middleware, Recording(slot))
}

/// The per-call middleware (see the module docs).
pub(crate) struct Capture {
    slot: Slot,
    limit: usize,
    clock: Arc<dyn Clock>,
}

/// The middleware's refusal of an oversized body; the slot says what happened.
#[derive(Debug, thiserror::Error)]
#[error("response body larger than the configured cap")]
struct BodyCapExceeded;

impl Capture {
    fn record(&self, captured: Captured) {
        let mut slot = self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(captured);
    }

    fn too_large(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        received_at: SystemTime,
    ) -> reqwest_middleware::Error {
        let raw = raw_response(status, headers, Bytes::new(), received_at);
        self.record(Captured::TooLarge {
            limit: self.limit,
            info: raw.info(),
        });
        reqwest_middleware::Error::middleware(BodyCapExceeded)
    }
}

fn header(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The headers servers use to name one request, for a user to quote to support.
const REQUEST_ID_HEADERS: [&str; 5] = [
    "x-request-id",
    "x-correlation-id",
    "x-b3-traceid",
    "traceparent",
    "x-amzn-trace-id",
];

fn raw_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    received_at: SystemTime,
) -> RawResponse {
    RawResponse {
        status,
        content_type: header(headers, CONTENT_TYPE),
        date: header(headers, DATE),
        retry_after: header(headers, RETRY_AFTER),
        location: header(headers, LOCATION),
        www_authenticate: header(headers, WWW_AUTHENTICATE),
        request_id: REQUEST_ID_HEADERS
            .iter()
            .find_map(|name| header(headers, *name).map(|v| format!("{name}: {v}"))),
        body,
        received_at,
    }
}

#[async_trait::async_trait]
impl Middleware for Capture {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static(ACCEPT_VALUE));
        let mut response = next.run(req, extensions).await?;
        let received_at = self.clock.now();
        let status = response.status();
        let headers = response.headers().clone();

        // A declared length past the cap is refused before reading a byte of the body.
        if response
            .content_length()
            .is_some_and(|len| len > self.limit as u64)
        {
            return Err(self.too_large(status, &headers, received_at));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len().saturating_add(chunk.len()) > self.limit {
                // Dropping `response` here closes the connection: the rest is never read.
                return Err(self.too_large(status, &headers, received_at));
            }
            body.extend_from_slice(&chunk);
        }
        let version = response.version();
        let url = response.url().clone();
        self.record(Captured::Complete(raw_response(
            status,
            &headers,
            body.freeze(),
            received_at,
        )));

        // Rebuilt with the URL it came from, which the middlewares outside look at.
        let mut rebuilt = reqwest::ResponseBuilderExt::url(http::Response::builder(), url)
            .body(Bytes::new())
            .map_err(reqwest_middleware::Error::middleware)?;
        *rebuilt.status_mut() = status;
        *rebuilt.version_mut() = version;
        *rebuilt.headers_mut() = headers;
        Ok(reqwest::Response::from(rebuilt))
    }
}

impl Endpoint {
    /// Sends one token request through the generated operation and maps what came back; the
    /// assertion is stamped at `assertion_time` when given (the provider's corrected clock).
    pub(crate) async fn request_token(
        &self,
        request: &TokenRequest,
        assertion_time: Option<SystemTime>,
    ) -> Result<Token, Error> {
        request_token(self, request, assertion_time).await
    }
}

async fn request_token(
    inner: &Endpoint,
    request: &TokenRequest,
    assertion_time: Option<SystemTime>,
) -> Result<Token, Error> {
    let span = tracing::debug_span!(
        "ibkr_oauth.request_token",
        url = %inner.base_url,
        scope = request.scope().unwrap_or(""),
        status = tracing::field::Empty,
    );
    let span_handle = span.clone();
    async move {
        let result = exchange(inner, request, assertion_time, &span_handle).await;
        match &result {
            Ok(token) => tracing::debug!(
                token_type = token.token_type().unwrap_or(""),
                scope = token.scope().unwrap_or(""),
                expires_in_secs = token.expires_in().as_secs(),
                "token granted"
            ),
            Err(e) => tracing::debug!(
                error = %e,
                retryable = e.is_retryable(),
                "token request failed"
            ),
        }
        result
    }
    .instrument(span)
    .await
}

async fn exchange(
    inner: &Endpoint,
    request: &TokenRequest,
    assertion_time: Option<SystemTime>,
    span: &tracing::Span,
) -> Result<Token, Error> {
    let assertion = request.assertion_at(assertion_time).await?;
    let (capture, recording) = capture(inner.max_response_bytes, Arc::clone(&inner.clock));
    // Built field by field: `Configuration::default()` would build a throwaway reqwest client.
    let configuration = Configuration {
        base_path: inner.base_url.clone(),
        user_agent: Some(inner.user_agent.clone()),
        client: ClientWithMiddleware::new(inner.http.clone(), vec![capture]),
        basic_auth: None,
        oauth_access_token: None,
        bearer_access_token: None,
        api_key: None,
    };
    let result = generate_token(
        &configuration,
        request.grant_type(),
        assertion.expose_secret(),
        request.client_assertion_type(),
        request.scope(),
    )
    .await;
    drop(assertion);
    let outcome = recording.take();
    let status = match &outcome {
        Some(Captured::Complete(raw)) => Some(raw.status),
        Some(Captured::TooLarge { info, .. }) => Some(info.status),
        None => None,
    };
    if let Some(status) = status {
        span.record("status", status.as_u16());
    }
    match outcome {
        Some(Captured::Complete(raw)) => map_response(&raw),
        Some(Captured::TooLarge { limit, info }) => Err(Error::ResponseTooLarge {
            limit,
            response: Arc::new(info),
        }),
        None => {
            let url: Arc<str> = Arc::from(format!("{}{}", inner.base_url, TOKEN_PATH));
            Err(match result {
                Err(e) => transport_error(e, url),
                // The generated code cannot succeed without a response passing the middleware.
                Ok(_) => Error::Transport {
                    url,
                    source: Arc::new(NoResponse),
                },
            })
        }
    }
}

/// A transport failure that left no cause of its own.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP stack returned no response")]
struct NoResponse;

/// Classifies a failure that left no response: an error of this crate raised inside a
/// middleware (the token source of the bearer middleware), connect, timeout, or other transport.
pub(crate) fn transport_error<T>(error: GeneratedError<T>, url: Arc<str>) -> Error {
    let reqwest_error = match error {
        GeneratedError::Reqwest(e) => e,
        GeneratedError::ReqwestMiddleware(reqwest_middleware::Error::Reqwest(e)) => e,
        GeneratedError::ReqwestMiddleware(reqwest_middleware::Error::Middleware(e)) => {
            if let Some(ours) = e.downcast_ref::<Error>() {
                return ours.clone();
            }
            return Error::Transport {
                url,
                source: root_cause(e.into()),
            };
        }
        GeneratedError::Io(e) => {
            return Error::Transport {
                url,
                source: Arc::new(e),
            };
        }
        // Without a recorded response these cannot come from the server.
        GeneratedError::Serde(_) | GeneratedError::ResponseError(_) => {
            return Error::Transport {
                url,
                source: Arc::new(NoResponse),
            };
        }
    };
    let (is_connect, is_timeout) = (reqwest_error.is_connect(), reqwest_error.is_timeout());
    let source = root_cause(Box::new(reqwest_error));
    if is_connect {
        Error::Connect { url, source }
    } else if is_timeout {
        Error::Timeout { url, source }
    } else {
        Error::Transport { url, source }
    }
}

#[cfg(test)]
mod tests;
