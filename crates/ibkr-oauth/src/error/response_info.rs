//! [`ResponseInfo`]: what an error keeps of the HTTP response it comes from. It belongs to the
//! errors (the response mapping builds it, every response error holds it).

use std::time::{Duration, SystemTime};

use http::StatusCode;

/// What the facade kept of an HTTP response that became an error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseInfo {
    /// The HTTP status of the response (the real one, whatever the body says).
    pub status: StatusCode,
    /// The `Content-Type` header as sent (control characters removed, capped in length).
    pub content_type: Option<String>,
    /// The response's `Date` header: the server's clock when it answered. Lets a caller
    /// measure the skew between its clock and the server's.
    pub server_date: Option<SystemTime>,
    /// The `Retry-After` header as a delay: its seconds, or its HTTP-date minus the response's
    /// `Date` (or, without one, minus the client's clock when the response arrived). A date in
    /// the past gives zero.
    pub retry_after: Option<Duration>,
    /// The header that names this request for the server's support (`x-request-id`,
    /// `traceparent`...), as `name: value` (sanitised): quote it when asking IBKR.
    pub request_id: Option<String>,
}

impl ResponseInfo {
    /// Whether a response with this status may succeed when sent again later: 5xx but 501
    /// (not implemented), 429 (too many requests) and 408 (request timeout).
    pub fn is_retryable_status(&self) -> bool {
        retryable_status(self.status)
    }
}

/// 501 (Not Implemented) is the one 5xx that a retry cannot fix: the server does not do this.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}
