//! The one error type of this crate.

/// Everything that can go wrong while getting a token.
///
/// Each variant's message says what happened and what to do about it. No variant ever holds or
/// prints a secret (access token, assertion, key).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- request, HTTP and response mapping (client, request, transport, problem, token) ---
    /// The request builder refused its input before any network I/O.
    #[error("invalid token request: {0}")]
    InvalidRequest(String),
    // --- keys and assertions (assertion/) ---
}
