//! [`ConfigError`]: a setting refused before any network I/O, and what was wrong with it as
//! data (one enum per builder), so that a caller can branch on it and the message is written
//! once: here, and in `setting/` (`token`: the token path's builders; `session`: the
//! session's and the pacing table's).

mod session;
mod token;

pub use session::{PacingSetting, SessionSetting};
pub use token::{ClientSetting, ProviderSetting, RequestSetting, SignerField, SignerSetting};

/// A setting refused at build time, before any network I/O: by a builder's `build()` or by
/// parsing a setting's text. Each builder's refusals are an enum of what was wrong (in
/// [`config_error`](crate::config_error)); every variant's message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The request builder (scopes, assertion) or the token builder refused its input.
    #[error("invalid token request: {0}")]
    Request(RequestSetting),
    /// A client builder refused its configuration (base URL, timeouts, size cap, user agent,
    /// HTTP client): the token client's, the API client's, the session's or a middleware's.
    #[error("invalid token client configuration: {0}")]
    Client(ClientSetting),
    /// The signer builder refused a setting (client id, key id, audience, lifetime...).
    #[error("invalid assertion signer: {0}")]
    Signer(SignerSetting),
    /// The provider builder refused a setting (refresh fraction, scopes...).
    #[error("invalid token provider settings: {0}")]
    Provider(ProviderSetting),
    /// The session's settings were refused (username, IP, tickle interval, reset window).
    #[error("invalid session settings: {0}")]
    Session(SessionSetting),
    /// The pacing table was refused (a rule or a wait out of range).
    #[error("invalid pacing table: {0}")]
    Pacing(PacingSetting),
    /// A required setting was given neither in code (a flag) nor in its environment variable.
    #[error("no {what} given; set {variable} (or the matching flag or builder setting)")]
    Missing {
        /// The setting (`client id`, `key id`, `private key`).
        what: &'static str,
        /// The environment variable that would give it.
        variable: &'static str,
    },
    /// An environment variable holds a value that cannot be used.
    #[error("environment variable {name}: {problem}")]
    Variable {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with its value (never the value itself).
        problem: VariableProblem,
    },
    /// A request for an IBKR API path (`/v1/api/`, `/gw/api/`, `/oauth2/`) went through
    /// [`BearerAuth`](crate::middleware::BearerAuth) to another origin than the one it was
    /// built for: the token is kept to that origin, so the request was not sent (it would have
    /// been a `401 authorization: missing`).
    #[error(
        "a request to the IBKR API at {request_origin} went through BearerAuth built for \
         {api_origin}; the token goes only to {api_origin}, so the request was not sent: build \
         BearerAuth with the base URL the requests use (Config::get_base_url, IBKR_BASE_URL)"
    )]
    OriginMismatch {
        /// The origin the request was for (scheme, host, port).
        request_origin: String,
        /// The origin the middleware hands the token to.
        api_origin: String,
    },
    /// An algorithm name that is not one of `RS256`, `PS256`, `ES256`, `EdDSA`.
    #[error("unknown signature algorithm `{name}`; use RS256 (IBKR's), PS256, ES256 or EdDSA")]
    UnknownAlgorithm {
        /// The name given (sanitised, at most 32 characters).
        name: String,
    },
}

/// What is wrong with an environment variable's value ([`ConfigError::Variable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VariableProblem {
    /// The value is not valid Unicode.
    #[error("is not valid Unicode")]
    NotUnicode,
    /// The value was refused as the setting it gives.
    #[error("{0}")]
    Refused(Box<ConfigError>),
}
