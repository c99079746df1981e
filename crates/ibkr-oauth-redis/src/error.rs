//! The crate's one error: what a [`RedisTokenSourceBuilder`](crate::RedisTokenSourceBuilder)
//! refuses. Nothing at run time is an error of this crate: a Redis failure makes the source
//! fetch alone, and a failed token request is the facade's [`ibkr_oauth::Error`].

/// Why a [`RedisTokenSource`](crate::RedisTokenSource) could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL is not one this crate connects to. The message never quotes the URL
    /// (it may hold a password).
    #[error(
        "invalid Redis URL: {0}; use redis://[user:password@]host[:port][/db] or rediss://... for TLS"
    )]
    InvalidUrl(String),
    /// The encryption key is not 32 bytes (or not readable as such). The message never quotes
    /// the key.
    #[error("invalid encryption key: {0}")]
    InvalidKey(String),
    /// A setting is out of range or missing; the message names it and what it accepts.
    #[error("invalid setting: {0}")]
    InvalidConfig(String),
    /// The token provider in front of the shared cache refused its settings.
    #[error("the token provider refused its settings: {0}")]
    Provider(#[from] ibkr_oauth::Error),
}
