//! The two refusal bodies the token endpoint (or a gateway in front of it) sends: an RFC 9457
//! [`Problem`] (IBKR's own format) and an RFC 6749 section 5.2 [`OAuthError`].

use std::fmt;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::sanitize::sanitize;

/// How much of one server-supplied text field (title, detail...) an error message shows.
const FIELD_CHARS: usize = 300;

/// An RFC 9457 problem detail, as the token endpoint sent it (IBKR's 400 and 500 bodies).
///
/// Every standard member is optional. A member of the wrong JSON type is ignored, as the RFC
/// requires; members beyond the five standard ones are kept as [`extensions`](Self::extensions).
/// The HTTP status of the response is kept beside the body's own `status`, which may differ.
///
/// `Display` prints one sanitised line: control characters removed, long fields shortened and
/// anything shaped like a JWT (an access token or assertion echoed back) shown as `[redacted]`.
/// The accessors return the members exactly as sent.
#[derive(Clone, PartialEq)]
pub struct Problem {
    http_status: StatusCode,
    problem_type: Option<String>,
    title: Option<String>,
    status: Option<u16>,
    detail: Option<String>,
    instance: Option<String>,
    extensions: Map<String, Value>,
}

impl Problem {
    /// The problem type that RFC 9457 gives a problem without a `type` member.
    pub const ABOUT_BLANK: &'static str = "about:blank";

    pub(crate) fn from_object(http_status: StatusCode, mut map: Map<String, Value>) -> Self {
        // Standard members are taken out whatever their type; a wrong-typed one is dropped.
        let mut string_member = |name: &str| match map.remove(name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let problem_type = string_member("type");
        let title = string_member("title");
        let detail = string_member("detail");
        let instance = string_member("instance");
        let status = match map.remove("status") {
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|s| (100..=999).contains(s))
                .and_then(|s| u16::try_from(s).ok()),
            _ => None,
        };
        Self {
            http_status,
            problem_type,
            title,
            status,
            detail,
            instance,
            extensions: map,
        }
    }

    /// The HTTP status of the response that carried this problem.
    pub fn http_status(&self) -> StatusCode {
        self.http_status
    }

    /// The `type` member: a URI reference (IBKR sends the relative `/simple`), or
    /// `about:blank` when the member is absent or not a string.
    pub fn problem_type(&self) -> &str {
        self.problem_type.as_deref().unwrap_or(Self::ABOUT_BLANK)
    }

    /// The `title` member: a short summary of the problem type.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// The body's `status` member (absent, or ignored when not an integer in 100..=999).
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The `detail` member: an explanation of this occurrence.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The `instance` member: a URI reference for this occurrence.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The extension members: every member besides `type`, `title`, `status`, `detail` and
    /// `instance`.
    pub fn extensions(&self) -> &Map<String, Value> {
        &self.extensions
    }

    /// One extension member by name.
    pub fn extension(&self, name: &str) -> Option<&Value> {
        self.extensions.get(name)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = self.title.as_deref().map(|t| sanitize(t, FIELD_CHARS));
        let detail = self.detail.as_deref().map(|d| sanitize(d, FIELD_CHARS));
        match (title, detail) {
            (Some(t), Some(d)) => write!(f, "{t}: {d}")?,
            (Some(t), None) => f.write_str(&t)?,
            (None, Some(d)) => f.write_str(&d)?,
            (None, None) => f.write_str("no title or detail given")?,
        }
        if let Some(t) = &self.problem_type {
            write!(f, " [type {}]", sanitize(t, FIELD_CHARS))?;
        }
        if let Some(s) = self.status.filter(|s| *s != self.http_status.as_u16()) {
            write!(f, " [body status {s}]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = |v: &Option<String>| v.as_deref().map(|s| sanitize(s, FIELD_CHARS));
        // Extension values are server-supplied JSON: shown compact and sanitised like the rest.
        let extensions = Value::Object(self.extensions.clone()).to_string();
        f.debug_struct("Problem")
            .field("http_status", &self.http_status.as_u16())
            .field("type", &sanitize(self.problem_type(), FIELD_CHARS))
            .field("title", &field(&self.title))
            .field("status", &self.status)
            .field("detail", &field(&self.detail))
            .field("instance", &field(&self.instance))
            .field("extensions", &sanitize(&extensions, FIELD_CHARS))
            .finish()
    }
}

/// An error body in the shape of RFC 6749 section 5.2 (`error`, `error_description`,
/// `error_uri`), which some OAuth servers and gateways send instead of a problem document.
///
/// `Display` sanitises like [`Problem`]'s; the accessors return the members as sent.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthError {
    http_status: StatusCode,
    error: String,
    description: Option<String>,
    uri: Option<String>,
}

impl OAuthError {
    /// Reads an RFC 6749 error body: a JSON object with a string `error` member.
    pub(crate) fn from_object(http_status: StatusCode, map: &Map<String, Value>) -> Option<Self> {
        let string_member = |name: &str| match map.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        Some(Self {
            http_status,
            error: string_member("error")?,
            description: string_member("error_description"),
            uri: string_member("error_uri"),
        })
    }

    /// The HTTP status of the response that carried this error.
    pub fn http_status(&self) -> StatusCode {
        self.http_status
    }

    /// The `error` code, e.g. `invalid_client`, `invalid_scope`.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// The `error_description` member.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `error_uri` member.
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    /// What a person can do about the standard error codes.
    fn hint(&self) -> Option<&'static str> {
        Some(match self.error.as_str() {
            "invalid_client" => "check the client id, the key id and the signing key",
            "invalid_scope" => "check the requested scopes",
            "invalid_grant" => "check the assertion's claims and the clock",
            "unauthorized_client" => "this client may not use this grant type or scope",
            "unsupported_grant_type" => "the server does not accept this grant type",
            "invalid_request" => "the request is malformed: check the request parameters",
            _ => return None,
        })
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&sanitize(&self.error, FIELD_CHARS))?;
        if let Some(d) = &self.description {
            write!(f, ": {}", sanitize(d, FIELD_CHARS))?;
        }
        if let Some(u) = &self.uri {
            write!(f, " (see {})", sanitize(u, FIELD_CHARS))?;
        }
        if let Some(h) = self.hint() {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = |v: &Option<String>| v.as_deref().map(|s| sanitize(s, FIELD_CHARS));
        f.debug_struct("OAuthError")
            .field("http_status", &self.http_status.as_u16())
            .field("error", &sanitize(&self.error, FIELD_CHARS))
            .field("description", &field(&self.description))
            .field("uri", &field(&self.uri))
            .finish()
    }
}
