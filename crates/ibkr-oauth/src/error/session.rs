//! [`SessionError`]: what can go wrong with the SSO and brokerage session, joined to the
//! crate's [`Error`](crate::Error) as [`Error::Session`](crate::Error::Session).
//!
//! Every message says which call failed, what happened and what to do, and quotes the
//! request id when the server sent one. None ever holds or prints the SSO token.

use std::fmt;
use std::sync::Arc;

use crate::error::ResponseInfo;
use crate::error::{Cause, ErrorKind};

/// One of IBKR's session calls, as named in errors and tracing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionCall {
    /// `POST /gw/api/v1/sso-sessions`: open an SSO session with the access token.
    CreateSso,
    /// `GET /v1/api/sso/validate`.
    Validate,
    /// `POST /v1/api/iserver/auth/ssodh/init`: open the brokerage session.
    BrokerageInit,
    /// `GET /v1/api/tickle`: the keep-alive.
    Tickle,
    /// `POST /v1/api/iserver/auth/status`.
    BrokerageStatus,
    /// `POST /v1/api/logout`.
    Logout,
}

impl SessionCall {
    /// The HTTP method and path of the call.
    pub fn endpoint(self) -> &'static str {
        match self {
            SessionCall::CreateSso => "POST /gw/api/v1/sso-sessions",
            SessionCall::Validate => "GET /v1/api/sso/validate",
            SessionCall::BrokerageInit => "POST /v1/api/iserver/auth/ssodh/init",
            SessionCall::Tickle => "GET /v1/api/tickle",
            SessionCall::BrokerageStatus => "POST /v1/api/iserver/auth/status",
            SessionCall::Logout => "POST /v1/api/logout",
        }
    }
}

impl fmt::Display for SessionCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.endpoint())
    }
}

/// What went wrong with the session. Reached as [`Error::Session`](crate::Error::Session);
/// [`kind`](Self::kind) sorts it like every other error of the crate.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// IBKR refused or failed the call with a 4xx or 5xx.
    #[error("{}", refused_text(*call, detail.as_deref(), response))]
    Refused {
        /// The call.
        call: SessionCall,
        /// IBKR's explanation (the problem's `detail`/`title`, or the `error` member),
        /// sanitised; never a token.
        detail: Option<Arc<str>>,
        /// The response's status and headers (with the request id).
        response: Arc<ResponseInfo>,
    },
    /// A success answer that is not what IBKR's spec gives (not JSON, no SSO token...).
    #[error(
        "{call} answered {} with a body that is not what IBKR's spec gives ({reason}){}; check \
         the base URL",
        crate::error::status_text(response.status),
        request_id(response)
    )]
    InvalidResponse {
        /// The call.
        call: SessionCall,
        /// What is wrong (never a value from the body).
        reason: Arc<str>,
        /// The response's status and headers.
        response: Arc<ResponseInfo>,
    },
    /// The answer was larger than the cap and was refused unread.
    #[error(
        "{call} answered {} with a body over the {limit}-byte cap, refused unread{}; check the \
         base URL",
        crate::error::status_text(response.status),
        request_id(response)
    )]
    TooLarge {
        /// The call.
        call: SessionCall,
        /// The cap, in bytes.
        limit: usize,
        /// The response's status and headers.
        response: Arc<ResponseInfo>,
    },
    /// No answer: connect failure, timeout, broken connection.
    #[error("{call} to {url} got no answer ({}); the session retries by itself, or retry later",
        if *timeout { "timed out" } else { "connection failed" })]
    Transport {
        /// The call.
        call: SessionCall,
        /// The URL called.
        url: Arc<str>,
        /// Whether it was a timeout (else a connect or transfer failure).
        timeout: bool,
        /// The HTTP stack's innermost cause.
        #[source]
        source: Cause,
    },
    /// The brokerage session is not open: IBKR answered `no bridge`, or ssodh/init said not
    /// authenticated.
    #[error(
        "the brokerage session is not open ({}): /iserver calls need it; call \
         Session::open_brokerage, or check that the username may trade through the API",
        reason.as_deref().unwrap_or("no reason given")
    )]
    NoBridge {
        /// IBKR's message, sanitised.
        reason: Option<Arc<str>>,
    },
    /// Another session (IBKR's app, the desktop TWS, another process) holds the brokerage
    /// session, and the [`Compete`](crate::session::Compete) policy says not to take it over.
    #[error(
        "another session holds the brokerage session for this username ({}); close it, or set \
         the Compete policy to take it over",
        reason.as_deref().unwrap_or("competing")
    )]
    Competing {
        /// IBKR's message, sanitised.
        reason: Option<Arc<str>>,
    },
    /// The session's pacer ([`SessionBuilder::pacer`](crate::session::SessionBuilder::pacer))
    /// did not let the call leave: nothing was sent. The keeper tries again on its next round.
    #[cfg(feature = "pacing")]
    #[error(
        "{call} was not sent: IBKR's pacing held it back; the session tries again by itself, \
         or call less often"
    )]
    Paced {
        /// The call.
        call: SessionCall,
        /// The pacer's refusal (how long until the call could leave). `PacingError` is a leaf
        /// (`pacing/error.rs` imports nothing of this crate), so no import cycle comes of it.
        #[source]
        source: crate::pacing::PacingError,
    },
    /// The session was closed ([`Session::close`](crate::session::Session::close)); build a new one.
    #[error("the session is closed; build and open a new Session")]
    Closed,
    /// The session's [fence](crate::session::SessionBuilder::fence) says this process may no longer act
    /// for it (a fleet's former owner whose lease may have passed to another process): it
    /// neither opens a session nor the brokerage session.
    #[error(
        "this process no longer holds the session (its lease may have passed to another \
         process); it opens nothing: use the fleet's current owner's session"
    )]
    Fenced,
    /// The user-supplied IP resolver failed.
    #[error("the public IP resolver failed: {message}; give the IP with SessionConfig's ip()")]
    IpResolver {
        /// What the resolver said.
        message: Arc<str>,
    },
}

fn request_id(response: &ResponseInfo) -> String {
    match &response.request_id {
        Some(id) => format!(" (quote {id} to IBKR)"),
        None => String::new(),
    }
}

fn refused_text(call: SessionCall, detail: Option<&str>, response: &ResponseInfo) -> String {
    let status = crate::error::status_text(response.status);
    let said = detail.map(|d| format!(": {d}")).unwrap_or_default();
    let todo = match (call, response.status.as_u16()) {
        (SessionCall::CreateSso, 401) => {
            "the access token was refused; the session fetches a new one by itself"
        }
        (SessionCall::CreateSso, 403) => {
            "the access token lacks the sso-sessions.write scope: ask for it in the token request"
        }
        (SessionCall::CreateSso, 400) => {
            "check the username (credential) and IP in SessionConfig, and that the key is the one \
             registered for the client"
        }
        (_, 401) => "the SSO session has ended; the session opens a new one by itself",
        (_, 429) => "too many requests: IBKR paces this endpoint; slow down",
        (_, s) if s >= 500 => "IBKR failed; the session retries by itself, or retry later",
        _ => "check the SessionConfig and the account's API access",
    };
    format!(
        "{call} refused ({status}){said}{}; {todo}",
        request_id(response)
    )
}

impl SessionError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SessionError::Refused { .. } => ErrorKind::Refused,
            SessionError::InvalidResponse { .. } | SessionError::TooLarge { .. } => {
                ErrorKind::InvalidResponse
            }
            SessionError::Transport { .. } => ErrorKind::Transport,
            #[cfg(feature = "pacing")]
            SessionError::Paced { .. } => ErrorKind::Transport,
            SessionError::NoBridge { .. }
            | SessionError::Competing { .. }
            | SessionError::Closed
            | SessionError::Fenced => ErrorKind::Session,
            SessionError::IpResolver { .. } => ErrorKind::Configuration,
        }
    }

    /// The call that failed, when the failure is one call's.
    pub fn call(&self) -> Option<SessionCall> {
        match self {
            SessionError::Refused { call, .. }
            | SessionError::InvalidResponse { call, .. }
            | SessionError::TooLarge { call, .. }
            | SessionError::Transport { call, .. } => Some(*call),
            #[cfg(feature = "pacing")]
            SessionError::Paced { call, .. } => Some(*call),
            _ => None,
        }
    }

    /// The response this error comes from, if any.
    pub fn response(&self) -> Option<&ResponseInfo> {
        match self {
            SessionError::Refused { response, .. }
            | SessionError::InvalidResponse { response, .. }
            | SessionError::TooLarge { response, .. } => Some(response),
            _ => None,
        }
    }

    /// Whether the same call may succeed later (no answer, a 5xx but 501, 429, 408).
    pub fn is_retryable(&self) -> bool {
        match self {
            SessionError::Transport { .. } => true,
            #[cfg(feature = "pacing")]
            SessionError::Paced { .. } => true,
            _ => self
                .response()
                .is_some_and(ResponseInfo::is_retryable_status),
        }
    }

    /// Whether IBKR answered 401: the bearer sent (access token or SSO token) was refused.
    pub(crate) fn is_unauthorized(&self) -> bool {
        matches!(self, SessionError::Refused { response, .. } if response.status == http::StatusCode::UNAUTHORIZED)
    }
}

#[cfg(test)]
mod tests;
