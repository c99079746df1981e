//! The request log: what each request carried and how it was answered.

use std::collections::VecDeque;
use std::time::SystemTime;

use secrecy::SecretString;
use serde_json::Value;

use crate::Fault;

/// The longest assertion whose header and claims are decoded into the log. A real one is about
/// 1 KiB; decoded JSON takes many times its text, so a large junk one is not kept decoded.
pub(crate) const MAX_DECODED_ASSERTION_BYTES: usize = 8 * 1024;

/// The longest string kept in the log (method, path, headers, form names and values); a longer
/// one is cut, so that a hostile request cannot make an entry large.
pub(crate) const MAX_LOGGED_STRING_BYTES: usize = 1024;

/// `value`, or for a long one its start (cut at a character boundary) and `…`, at most
/// [`MAX_LOGGED_STRING_BYTES`] bytes in all.
pub(crate) fn bounded(value: &str) -> String {
    if value.len() <= MAX_LOGGED_STRING_BYTES {
        return value.to_owned();
    }
    const ELLIPSIS: char = '…';
    let mut cut = MAX_LOGGED_STRING_BYTES - ELLIPSIS.len_utf8();
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut kept = String::with_capacity(cut + ELLIPSIS.len_utf8());
    kept.push_str(value.get(..cut).unwrap_or_default());
    kept.push(ELLIPSIS);
    kept
}

/// Which endpoint a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /oauth2/api/v1/token` (or another method on that path).
    Token,
    /// `GET /gw/api/v1/echo/https` (or another method on that path).
    EchoHttps,
    /// `POST /gw/api/v1/echo/signed-jwt` (or another method on that path).
    EchoSignedJwt,
    /// `POST /gw/api/v1/sso-sessions`.
    SsoSessions,
    /// `GET /v1/api/sso/validate`.
    SsoValidate,
    /// `POST /v1/api/iserver/auth/ssodh/init`.
    SsoDhInit,
    /// `GET` or `POST /v1/api/tickle`.
    Tickle,
    /// `POST /v1/api/iserver/auth/status`.
    AuthStatus,
    /// `POST /v1/api/logout`.
    Logout,
    /// `GET /v1/api/portfolio/accounts`.
    PortfolioAccounts,
    /// `GET /v1/api/iserver/accounts`.
    IserverAccounts,
    /// Any other path.
    Other,
}

impl Endpoint {
    /// Whether this is an API call (a protected resource), not a token request.
    pub const fn is_api_call(self) -> bool {
        !matches!(self, Self::Token | Self::Other)
    }

    /// A short name: `token`, `echo/https`, `echo/signed-jwt`, `sso-sessions`, `tickle`, ...,
    /// `other`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::EchoHttps => "echo/https",
            Self::EchoSignedJwt => "echo/signed-jwt",
            Self::SsoSessions => "sso-sessions",
            Self::SsoValidate => "sso/validate",
            Self::SsoDhInit => "ssodh/init",
            Self::Tickle => "tickle",
            Self::AuthStatus => "auth/status",
            Self::Logout => "logout",
            Self::PortfolioAccounts => "portfolio/accounts",
            Self::IserverAccounts => "iserver/accounts",
            Self::Other => "other",
        }
    }
}

/// One request the sandbox received: a token request or an API call.
///
/// Strings taken from the request (method, path, headers, form names and values) are kept up to
/// 1 KiB: a longer one is cut at a character boundary and ends with `…`. No bearer token is
/// kept; the token request's assertion is kept as a secret (see [`RecordedForm`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// Arrival order, from 1: the [`request_count`](crate::RunningSandbox::request_count) once
    /// this request was received (its head and body read).
    pub seq: u64,
    /// The id the sandbox gave the request, sent back in the `x-request-id` header.
    pub request_id: String,
    /// The endpoint it was for.
    pub endpoint: Endpoint,
    /// The client it came from, as far as the sandbox could tell: the assertion's `iss` for a
    /// token request (unverified when the request was refused), the access token's client for
    /// an API call (once the token was verified).
    pub client_id: Option<String>,
    /// The `kid` the client signed under: the assertion's, or the signed body's.
    pub kid: Option<String>,
    /// When it arrived, by the sandbox's (possibly offset) clock.
    pub received_at: SystemTime,
    /// The HTTP method.
    pub method: String,
    /// The request path (without the query).
    pub path: String,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The body's size in bytes (`None` when it was not read: too large, or a GET).
    pub body_len: Option<usize>,
    /// The form fields, when the body was read as a form.
    pub form: RecordedForm,
    /// The assertion's JOSE header, decoded but not verified (`None` when undecodable, or when
    /// the assertion is over 8 KiB).
    pub assertion_header: Option<Value>,
    /// The assertion's claims, decoded but not verified (`None` when undecodable, or when the
    /// assertion is over 8 KiB).
    pub assertion_claims: Option<Value>,
    /// For a Signed JWT call, the body's JOSE header, decoded but not verified.
    pub signed_body_header: Option<Value>,
    /// For a Signed JWT call, the body's claims, decoded but not verified.
    pub signed_body_claims: Option<Value>,
    /// The fault this request took, if any.
    pub fault: Option<Fault>,
    /// How it was answered.
    pub outcome: Outcome,
}

impl RecordedRequest {
    /// The problem `detail` the request was refused with, if it was.
    pub fn detail(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Answered { detail, .. } => detail.as_deref(),
            _ => None,
        }
    }

    /// The status it was answered with (`None` while pending or when the connection was closed).
    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Answered { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// The token request's form fields. The first value of each known field is kept apart; the
/// assertion stays a secret, and is `[redacted]` in `fields`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RecordedForm {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `client_assertion`, the signed JWS, whole (not cut as the other fields are).
    pub client_assertion: Option<SecretString>,
    /// Every field in the order received, the assertion's value replaced by `[redacted]`.
    pub fields: Vec<(String, String)>,
}

impl RecordedForm {
    pub(crate) fn from_fields(fields: &[(String, String)]) -> Self {
        let first = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        Self {
            grant_type: first("grant_type").map(bounded),
            client_assertion_type: first("client_assertion_type").map(bounded),
            scope: first("scope").map(bounded),
            client_assertion: first("client_assertion").map(SecretString::from),
            fields: fields
                .iter()
                .map(|(k, v)| {
                    let v = if k == "client_assertion" {
                        "[redacted]".to_owned()
                    } else {
                        bounded(v)
                    };
                    (bounded(k), v)
                })
                .collect(),
        }
    }
}

/// How a recorded request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Not answered yet (being handled or stalled).
    Pending,
    /// Answered with this status; `detail` is the problem's detail for a problem response.
    Answered {
        /// The HTTP status code.
        status: u16,
        /// The problem `detail`, for 4xx and 5xx answers.
        detail: Option<String>,
    },
    /// The connection was closed without an answer (an injected fault, or shutdown while stalled).
    ConnectionClosed,
}

/// A bounded log: the newest `capacity` requests.
#[derive(Debug)]
pub(crate) struct RequestLog {
    capacity: usize,
    entries: VecDeque<RecordedRequest>,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, entry: RecordedRequest) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Applies `update` to the entry of request `seq`, if it is still in the log.
    pub(crate) fn update(&mut self, seq: u64, update: impl FnOnce(&mut RecordedRequest)) {
        // The entry is near the back: requests finish roughly in arrival order.
        if let Some(entry) = self.entries.iter_mut().rev().find(|e| e.seq == seq) {
            update(entry);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn last(&self) -> Option<RecordedRequest> {
        self.entries.back().cloned()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
