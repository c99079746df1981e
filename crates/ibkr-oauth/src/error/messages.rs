//! The texts of the response and transport errors: what happened, then what to do.

use std::fmt;
use std::sync::Arc;

use super::Cause;
use super::ResponseInfo;
use crate::problem::{OAuthError, Problem};

/// `400 Bad Request`, or `599` for a code without a reason phrase.
pub(crate) fn status_text(status: http::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

pub(crate) fn retry_hint(response: &ResponseInfo) -> String {
    match (response.is_retryable_status(), response.retry_after) {
        (true, Some(after)) => format!("; retry in {} s", after.as_secs()),
        (true, None) => "; retry later".to_owned(),
        (false, _) => String::new(),
    }
}

pub(super) fn problem(problem: &Problem, response: &ResponseInfo) -> String {
    let verb = if response.status.is_server_error() {
        "token endpoint failed"
    } else {
        "token request rejected"
    };
    format!(
        "{verb} ({}): {problem}{}",
        status_text(response.status),
        retry_hint(response)
    )
}

pub(super) fn oauth(error: &OAuthError, response: &ResponseInfo) -> String {
    format!(
        "token request rejected ({}): {error}{}",
        status_text(response.status),
        retry_hint(response)
    )
}

pub(super) fn unexpected(
    excerpt: Option<&str>,
    location: Option<&str>,
    response: &ResponseInfo,
) -> String {
    let status = status_text(response.status);
    if response.status.is_redirection() {
        let to = location.unwrap_or("no Location given");
        return format!(
            "the token endpoint redirected ({status}) to {to}; redirects are not followed so \
             the assertion is not resent elsewhere: set the base URL to the endpoint's real \
             address if you trust it"
        );
    }
    let content_type = response
        .content_type
        .as_deref()
        .unwrap_or("no content type");
    let body = match excerpt {
        Some("") => ", empty body".to_owned(),
        Some(e) => format!(": \"{e}\""),
        None => ", body not shown".to_owned(),
    };
    format!(
        "unexpected response from the token endpoint ({status}, {content_type}){body}; check \
         the base URL{}{}",
        if response.is_retryable_status() {
            ", or retry later"
        } else {
            ""
        },
        response
            .retry_after
            .map(|d| format!(" (Retry-After {} s)", d.as_secs()))
            .unwrap_or_default()
    )
}

pub(super) fn connect(url: &str, cause: &(dyn std::error::Error + 'static)) -> String {
    // rustls's words for a TLS handshake answered in plain text say nothing to a person.
    let text = cause.to_string();
    if text.contains("InvalidContentType") || text.contains("invalid content type") {
        return format!(
            "could not connect to {url}: the server answered the TLS handshake in plain text, \
             so it speaks http, not https; use an http:// base URL for a local server, or the \
             https port of a real one"
        );
    }
    format!(
        "could not connect to the token endpoint at {url}; check the base URL, DNS and network, then retry"
    )
}

/// The innermost error of a chain, kept as the cause that an error shows (the HTTP stack's
/// outer layers repeat the URL and say "error sending request", which the message says better).
pub(crate) fn root_cause(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Cause {
    RootCause::new(error.as_ref())
        .map(|root| Arc::new(root) as Cause)
        .unwrap_or_else(|| Cause::from(error))
}

/// The text of an error chain's innermost error, kept without its outer layers.
#[derive(Debug)]
struct RootCause(String);

impl RootCause {
    fn new(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut current = error;
        let mut depth = 0;
        while let Some(next) = current.source() {
            current = next;
            depth += 1;
        }
        (depth > 0).then(|| Self(current.to_string()))
    }
}

impl fmt::Display for RootCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RootCause {}
