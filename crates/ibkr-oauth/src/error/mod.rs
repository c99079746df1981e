//! The crate's error: [`Error`] and what kind of failure it is ([`ErrorKind`]), with the
//! subsystem errors it carries that the modules above it return: [`KeyError`] and
//! [`SignError`] (`key.rs`, with [`KeyOrigin`]), `ApiError` (`api.rs`, public at
//! `crate::api`), `SessionError` (`session.rs`, public at `crate::session`). The build-time
//! [`ConfigError`] lives in the leaf `setting` module. This module imports none of the modules
//! that return its errors.
//!
//! Every message says what happened and what to do, once: text that an error's
//! [`source`](std::error::Error::source) prints is never repeated in the message itself, so a
//! report that prints the chain (anyhow's `{:#}`, the CLI) shows each fact once.

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "middleware")]
mod api; // ApiError, public at crate::api
mod key; // KeyError, SignError
mod key_origin; // where a key came from
mod messages;
mod response_info;
#[cfg(feature = "provider")]
pub(crate) mod session; // SessionError, public at crate::session (with the session)
#[cfg(test)]
mod tests;

#[cfg(feature = "middleware")]
pub(crate) use messages::retry_hint;
pub(crate) use messages::root_cause;
#[cfg(feature = "provider")]
pub(crate) use messages::status_text;

use crate::problem::{OAuthError, Problem};
pub use crate::setting::{
    ClientSetting, ConfigError, PacingSetting, ProviderSetting, RequestSetting, SessionSetting,
    SignerField, SignerSetting, VariableProblem,
};
#[cfg(feature = "middleware")]
pub use api::ApiError;
pub use key::{KeyError, SignError};
pub use key_origin::KeyOrigin;
pub use response_info::ResponseInfo;
pub(crate) use response_info::retryable_status;

/// What kind of failure an [`Error`] is: the one question most callers branch on.
///
/// ```
/// use ibkr_oauth::{Error, ErrorKind};
///
/// fn exit_code(error: &Error) -> u8 {
///     match error.kind() {
///         ErrorKind::Configuration | ErrorKind::Key => 2,
///         ErrorKind::Refused => 3,
///         ErrorKind::Transport => 4,
///         ErrorKind::InvalidResponse => 5,
///         _ => 1,
///     }
/// }
/// # let _ = exit_code;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting was refused before any network I/O (a base URL, a scope, a signer setting),
    /// or the program is set up in a way the call cannot work in (no tokio runtime, a clock
    /// before 1970). Fix the configuration; retrying does not help.
    Configuration,
    /// The private key could not be read, parsed or used. Fix the key file.
    Key,
    /// The token endpoint answered with a refusal or failure it explains: an RFC 9457 problem
    /// or an RFC 6749 error. [`Error::is_retryable`] tells a 5xx or 429 from a 4xx refusal.
    Refused,
    /// No answer: the connection could not be made, timed out or broke.
    Transport,
    /// An answer that is neither a token nor an explained refusal: a redirect, an HTML page,
    /// a body over the size cap, a malformed token.
    InvalidResponse,
    /// A failure inside this process: the crypto backend, the random source, a task that died
    /// with its runtime.
    Internal,
    /// The SSO or brokerage session is not usable as asked: no brokerage session (`no
    /// bridge`), another session competing for it, or the session closed. See
    /// [`SessionError`](crate::session::SessionError) for what to do.
    Session,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Configuration => "configuration",
            ErrorKind::Key => "key",
            ErrorKind::Refused => "refused",
            ErrorKind::Transport => "transport",
            ErrorKind::InvalidResponse => "invalid response",
            ErrorKind::Internal => "internal",
            ErrorKind::Session => "session",
        })
    }
}

/// A shared, type-erased cause (the HTTP stack's error), cheap to clone.
pub(crate) type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while getting a token.
///
/// Cheap to clone (its parts are shared), so every caller waiting on one fetch gets the same
/// error. Branch on [`kind`](Self::kind), or match the variants for detail. No variant ever
/// holds or prints a secret (access token, assertion, key).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting was refused at build time, before any network I/O.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The private key could not be read, parsed or used (shared: a key error names its
    /// source, which would otherwise be copied with every clone).
    #[error(transparent)]
    Key(Arc<KeyError>),
    /// A client assertion (or signed body) could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The endpoint refused or failed the request with an RFC 9457 problem document
    /// (`application/problem+json`, or another JSON body on a 4xx/5xx that has no RFC 6749
    /// `error` member). The status is the response's real one: a 500 is a 500.
    #[error("{}", messages::problem(problem, response))]
    Problem {
        /// The problem document, with the HTTP status beside the body's own `status`.
        problem: Arc<Problem>,
        /// The response's status and headers.
        response: Arc<ResponseInfo>,
    },
    /// The endpoint refused the request with an RFC 6749 section 5.2 error body (an
    /// `application/json` 4xx/5xx with a string `error` member).
    #[error("{}", messages::oauth(error, response))]
    OAuth {
        /// The `error`, `error_description` and `error_uri` members.
        error: Arc<OAuthError>,
        /// The response's status and headers.
        response: Arc<ResponseInfo>,
    },
    /// A response the token API never sends: a redirect (never followed, so the assertion is
    /// not resent elsewhere), an HTML error page from a proxy, a non-JSON success...
    #[error("{}", messages::unexpected(excerpt.as_deref(), location.as_deref(), response))]
    UnexpectedResponse {
        /// A short sanitised excerpt of the body. `None` for a 2xx, whose body may be a
        /// credential in an unexpected format.
        excerpt: Option<Arc<str>>,
        /// The `Location` header of a redirect (sanitised).
        location: Option<Arc<str>>,
        /// The response's status and headers.
        response: Arc<ResponseInfo>,
    },
    /// A success response that is not a usable token: not JSON, members of the wrong type, no
    /// or an empty `access_token`, a negative `expires_in`... The reason never quotes a value.
    #[error(
        "invalid token response ({}): {reason}; the endpoint does not answer like IBKR's token \
         API: check the base URL",
        messages::status_text(response.status)
    )]
    InvalidResponse {
        /// What is wrong with the body.
        reason: Arc<str>,
        /// The response's status and headers.
        response: Arc<ResponseInfo>,
    },
    /// The response body is larger than the client's cap; it was refused without being read
    /// whole.
    #[error(
        "the token endpoint's response ({}) is larger than the {limit}-byte cap and was refused \
         unread: check the base URL, or raise `max_response_bytes` if the endpoint is trusted",
        messages::status_text(response.status)
    )]
    ResponseTooLarge {
        /// The cap, in bytes.
        limit: usize,
        /// The response's status and headers.
        response: Arc<ResponseInfo>,
    },
    /// No complete response arrived within the configured timeout (after connecting).
    #[error(
        "the token request to {url} timed out: no complete response within the configured \
         timeout; retry later, or raise the client's `timeout`"
    )]
    Timeout {
        /// The URL the request went to.
        url: Arc<str>,
        /// What the HTTP stack reported (its innermost cause).
        #[source]
        source: Cause,
    },
    /// The connection to the token endpoint could not be made (DNS, refused, TLS handshake,
    /// connect timeout).
    #[error("{}", messages::connect(url, source.as_ref()))]
    Connect {
        /// The URL the request went to.
        url: Arc<str>,
        /// What the HTTP stack reported (its innermost cause).
        #[source]
        source: Cause,
    },
    /// The exchange failed in transit for another reason (connection reset while reading...).
    #[error("the token request to {url} failed in transit; retry later")]
    Transport {
        /// The URL the request went to.
        url: Arc<str>,
        /// What the HTTP stack reported (its innermost cause).
        #[source]
        source: Cause,
    },
    /// An IBKR Web API call (not the token request) was refused or failed; see
    /// [`ApiError`](crate::api::ApiError).
    #[cfg(feature = "middleware")]
    #[error(transparent)]
    Api(Arc<ApiError>),
    /// The SSO or brokerage session failed (see [`SessionError`](crate::session::SessionError)).
    #[cfg(feature = "provider")]
    #[error(transparent)]
    Session(Arc<session::SessionError>),
    /// The token provider had to start a fetch (or its refresher) outside a tokio runtime.
    #[error(
        "the token provider needs a tokio runtime to fetch a token, and none runs on this \
         thread; call it from async code running on tokio (for example under #[tokio::main])"
    )]
    NoRuntime,
    /// The provider's fetch task ended without an outcome: its tokio runtime shut down.
    #[error(
        "the token provider's fetch task ended without an answer (its tokio runtime shut \
         down); call access_token again from a running runtime"
    )]
    FetchAborted,
    /// A token source written outside this crate (a [`TokenSource`](crate::TokenSource) of
    /// your own, a closure) failed; see [`Error::custom`].
    #[error("{message}")]
    Custom {
        /// What kind of failure the source reported.
        kind: ErrorKind,
        /// What happened and what to do.
        message: Arc<str>,
        /// The source's own error, if any.
        #[source]
        source: Option<Cause>,
    },
}

#[cfg(feature = "provider")]
impl From<session::SessionError> for Error {
    fn from(error: session::SessionError) -> Self {
        Error::Session(Arc::new(error))
    }
}

impl From<KeyError> for Error {
    fn from(error: KeyError) -> Self {
        Error::Key(Arc::new(error))
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::NoRuntime => ErrorKind::Configuration,
            Error::Key(e) => e.kind(),
            Error::Sign(e) => e.kind(),
            Error::Problem { .. } | Error::OAuth { .. } => ErrorKind::Refused,
            #[cfg(feature = "middleware")]
            Error::Api(e) => e.kind(),
            Error::UnexpectedResponse { .. }
            | Error::InvalidResponse { .. }
            | Error::ResponseTooLarge { .. } => ErrorKind::InvalidResponse,
            Error::Timeout { .. } | Error::Connect { .. } | Error::Transport { .. } => {
                ErrorKind::Transport
            }
            Error::FetchAborted => ErrorKind::Internal,
            #[cfg(feature = "provider")]
            Error::Session(e) => e.kind(),
            Error::Custom { kind, .. } => *kind,
        }
    }

    /// An error for code outside this crate that produces tokens or signatures (a custom
    /// [`TokenSource`](crate::TokenSource), a KMS signer, a test double): `message` says what
    /// happened and what to do, `source` (if any) is the underlying error.
    ///
    /// ```
    /// use ibkr_oauth::{Error, ErrorKind};
    ///
    /// let err = Error::custom(ErrorKind::Transport, "the KMS did not answer; retry", None);
    /// assert_eq!(err.kind(), ErrorKind::Transport);
    /// assert!(err.is_retryable());
    /// ```
    pub fn custom(
        kind: ErrorKind,
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Custom {
            kind,
            message: Arc::from(message.into()),
            source: source.map(Cause::from),
        }
    }

    /// The HTTP status of the response this error comes from, if it comes from one.
    pub fn status(&self) -> Option<http::StatusCode> {
        self.response().map(|r| r.status)
    }

    /// The status and headers of the response this error comes from, if it comes from one.
    pub fn response(&self) -> Option<&ResponseInfo> {
        match self {
            Error::Problem { response, .. }
            | Error::OAuth { response, .. }
            | Error::UnexpectedResponse { response, .. }
            | Error::InvalidResponse { response, .. }
            | Error::ResponseTooLarge { response, .. } => Some(response),
            #[cfg(feature = "middleware")]
            Error::Api(e) => Some(&e.response),
            #[cfg(feature = "provider")]
            Error::Session(e) => e.response(),
            _ => None,
        }
    }

    /// The problem document, for [`Error::Problem`].
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Problem { problem, .. } => Some(problem),
            #[cfg(feature = "middleware")]
            Error::Api(e) => e.problem.as_deref(),
            _ => None,
        }
    }

    /// The response's `Date` header (the server's clock), for errors that come from a
    /// response that had one.
    pub fn server_date(&self) -> Option<std::time::SystemTime> {
        self.response().and_then(|r| r.server_date)
    }

    /// Whether sending the same request again later may succeed: responses with status 5xx
    /// (but 501), 429 or 408 (whatever their body), timeouts, connect failures and failures in
    /// transit, and custom errors of kind [`ErrorKind::Transport`]. Not: other 4xx, redirects,
    /// invalid success responses, refused input or configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Connect { .. } | Error::Transport { .. } => true,
            Error::Custom { kind, .. } => *kind == ErrorKind::Transport,
            #[cfg(feature = "provider")]
            Error::Session(e) => e.is_retryable(),
            _ => self.response().is_some_and(|r| retryable_status(r.status)),
        }
    }

    /// How long the server asked to wait before retrying (`Retry-After`, as seconds or an
    /// HTTP-date taken relative to the response's `Date`, or to the client's clock when the
    /// response arrived if it had no `Date`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.response().and_then(|r| r.retry_after)
    }
}
