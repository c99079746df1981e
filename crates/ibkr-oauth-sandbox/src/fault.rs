//! Faults a test can inject into the next requests.

use std::time::Duration;

/// What the sandbox does to a token request instead of (or before) handling it.
///
/// Queued with [`RunningSandbox::inject_fault`](crate::RunningSandbox::inject_fault); each
/// request to the token endpoint takes the next queued fault, in order. Every faulted request
/// is still read and recorded in the request log, with its decoded assertion (when it is at
/// most 8 KiB).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer `500` with IBKR's `Internal Server Error` problem.
    ServerError,
    /// Answer `429` with a `Too Many Requests` problem and `Retry-After` in whole seconds
    /// (rounded up). `openapi.yaml` lists no 429; this exercises a client's rate-limit path.
    TooManyRequests {
        /// The delay sent in `Retry-After`.
        retry_after: Duration,
    },
    /// Wait this long, then handle the request normally (tokio time: paused time skips it).
    Stall(Duration),
    /// Never answer; the connection is closed when the sandbox shuts down.
    StallForever,
    /// Close the connection without sending any response.
    CloseConnection,
}
