//! Turning the token endpoint's answer into a [`Token`] or an [`Error`]: status and content type
//! first, then one parse of the body.
//!
//! [`map_response`] is a pure function of what the transport recorded (status, a few headers,
//! the buffered body, the instant it arrived), so it can be fed arbitrary bytes in tests. It
//! turns a 2xx JSON body into a [`Token`], an RFC 9457 problem document into
//! [`Error::Problem`], an RFC 6749 section 5.2 error body into [`Error::OAuth`] and everything
//! else (a redirect, an HTML error page...) into [`Error::UnexpectedResponse`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::error::{Error, ResponseInfo};
use crate::problem::{OAuthError, Problem};
use crate::sanitize::{excerpt, sanitize};
use crate::token::Token;

/// How much of a header value (content type, location) is kept.
const HEADER_CHARS: usize = 200;

/// What the transport recorded of one response: the input of [`map_response`].
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) date: Option<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) location: Option<String>,
    /// The first request-id header found, as `name: value`.
    pub(crate) request_id: Option<String>,
    /// The `WWW-Authenticate` challenge of a 401 or 403 from the API.
    #[cfg_attr(not(feature = "middleware"), allow(dead_code))]
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: Bytes,
    /// The client's clock when the response headers arrived.
    pub(crate) received_at: SystemTime,
}

impl RawResponse {
    /// The status and headers an error keeps.
    pub(crate) fn info(&self) -> ResponseInfo {
        let server_date = self.date.as_deref().and_then(parse_http_date);
        let base = server_date.unwrap_or(self.received_at);
        ResponseInfo {
            status: self.status,
            content_type: self
                .content_type
                .as_deref()
                .map(|c| sanitize(c, HEADER_CHARS)),
            server_date,
            retry_after: self
                .retry_after
                .as_deref()
                .and_then(|r| parse_retry_after(r, base)),
            request_id: self
                .request_id
                .as_deref()
                .map(|r| sanitize(r, HEADER_CHARS)),
        }
    }
}

/// The media type families the mapping tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    Problem,
    Json,
    Html,
    Other,
}

pub(crate) fn media(content_type: Option<&str>) -> Media {
    let Some(ct) = content_type else {
        return Media::Other;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/problem+json" {
        Media::Problem
    } else if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Media::Json
    } else if essence == "text/html" || essence == "application/xhtml+xml" {
        Media::Html
    } else {
        Media::Other
    }
}

/// Turns one recorded response into a token or an error: by status and content type first,
/// then by the body. Never panics, whatever the input.
pub(crate) fn map_response(raw: &RawResponse) -> Result<Token, Error> {
    let media = media(raw.content_type.as_deref());
    let info = raw.info();
    let status = raw.status;

    if status.is_success() {
        return match media {
            Media::Json => Token::from_json_body(&raw.body, raw.received_at, info.server_date)
                .map_err(|reason| Error::InvalidResponse {
                    reason: Arc::from(reason),
                    response: Arc::new(info),
                }),
            Media::Problem => Err(Error::InvalidResponse {
                reason: Arc::from("a success status came with an application/problem+json body"),
                response: Arc::new(info),
            }),
            // A success body may be a credential in another format: it is never quoted.
            Media::Html | Media::Other => Err(unexpected(raw, info, None)),
        };
    }

    if status.is_client_error() || status.is_server_error() {
        let object = match media {
            Media::Problem | Media::Json => match serde_json::from_slice::<Value>(&raw.body) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            },
            Media::Html | Media::Other => None,
        };
        if let Some(map) = object {
            if media == Media::Json {
                if let Some(oauth) = OAuthError::from_object(status, &map) {
                    return Err(Error::OAuth {
                        error: Arc::new(oauth),
                        response: Arc::new(info),
                    });
                }
            }
            return Err(Error::Problem {
                problem: Arc::new(Problem::from_object(status, map)),
                response: Arc::new(info),
            });
        }
    }

    // 1xx, 3xx (redirects are never followed), odd codes, and error bodies that are not JSON.
    let excerpt = excerpt(&raw.body, media == Media::Html);
    Err(unexpected(raw, info, Some(excerpt)))
}

fn unexpected(raw: &RawResponse, info: ResponseInfo, excerpt: Option<String>) -> Error {
    Error::UnexpectedResponse {
        excerpt: excerpt.map(Arc::from),
        location: if raw.status.is_redirection() {
            raw.location
                .as_deref()
                .map(|l| Arc::from(sanitize(l, HEADER_CHARS)))
        } else {
            None
        },
        response: Arc::new(info),
    }
}

/// Parses an HTTP-date (`Date`, `Retry-After`), in any of the three formats HTTP allows.
pub(crate) fn parse_http_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim()).ok()
}

/// Parses `Retry-After`: delay-seconds, or an HTTP-date taken relative to `base`.
pub(crate) fn parse_retry_after(value: &str, base: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(base).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
