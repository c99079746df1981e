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

use crate::error::Error;
use crate::problem::{OAuthError, Problem};
use crate::sanitize::{excerpt, sanitize};
use crate::token::Token;

/// How much of a header value (content type, location) is kept.
const HEADER_CHARS: usize = 200;

/// What the facade kept of an HTTP response that became an error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseInfo {
    /// The HTTP status of the response (the real one, whatever the body says).
    pub status: StatusCode,
    /// The `Content-Type` header as sent (control characters removed, capped in length).
    pub content_type: Option<String>,
    /// The response's `Date` header: the server's clock when it answered. Lets a caller
    /// measure the skew between its clock and the server's.
    pub server_date: Option<SystemTime>,
    /// The `Retry-After` header as a delay: its seconds, or its HTTP-date minus the response's
    /// `Date` (or, without one, minus the client's clock when the response arrived). A date in
    /// the past gives zero.
    pub retry_after: Option<Duration>,
    /// The header that names this request for the server's support (`x-request-id`,
    /// `traceparent`...), as `name: value` (sanitised): quote it when asking IBKR.
    pub request_id: Option<String>,
}

impl ResponseInfo {
    /// Whether a response with this status may succeed when sent again later: 5xx but 501
    /// (not implemented), 429 (too many requests) and 408 (request timeout).
    pub fn is_retryable_status(&self) -> bool {
        retryable_status(self.status)
    }
}

/// 501 (Not Implemented) is the one 5xx that a retry cannot fix: the server does not do this.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(status: u16, content_type: Option<&str>, body: &[u8]) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: content_type.map(str::to_owned),
            date: None,
            retry_after: None,
            location: None,
            request_id: None,
            www_authenticate: None,
            body: Bytes::copy_from_slice(body),
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(
            media(Some("application/problem+json; charset=utf-8")),
            Media::Problem
        );
        assert_eq!(media(Some("Application/JSON")), Media::Json);
        assert_eq!(media(Some("application/vnd.x+json")), Media::Json);
        assert_eq!(media(Some("text/html;charset=utf-8")), Media::Html);
        assert_eq!(media(Some("text/plain")), Media::Other);
        assert_eq!(media(None), Media::Other);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after(" 120 ", base),
            Some(Duration::from_secs(120))
        );
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", base),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", base),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", base), None);
        assert_eq!(parse_retry_after("-5", base), None);
        assert_eq!(parse_retry_after("", base), None);
    }

    #[test]
    fn retry_after_date_is_relative_to_the_date_header_else_to_arrival() {
        let mut r = raw(503, Some("text/plain"), b"busy");
        // received_at is 1_700_000_000 = Tue, 14 Nov 2023 22:13:20 GMT.
        r.retry_after = Some("Tue, 14 Nov 2023 22:14:20 GMT".into());
        assert_eq!(r.info().retry_after, Some(Duration::from_secs(60)));
        assert_eq!(r.info().server_date, None);
        r.date = Some("Tue, 14 Nov 2023 22:14:00 GMT".into());
        assert_eq!(r.info().retry_after, Some(Duration::from_secs(20)));
    }

    #[test]
    fn problem_on_json_with_error_member_is_oauth() {
        let r = raw(
            401,
            Some("application/json"),
            br#"{"error":"invalid_client"}"#,
        );
        assert!(matches!(map_response(&r), Err(Error::OAuth { .. })));
        // problem+json decides for Problem, whatever the members.
        let r = raw(401, Some("application/problem+json"), br#"{"error":"x"}"#);
        match map_response(&r) {
            Err(Error::Problem { problem, .. }) => {
                assert_eq!(problem.extension("error"), Some(&Value::from("x")));
            }
            other => panic!("{other:?}"),
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
        ];
        let keys = prop_oneof![
            Just("type".to_owned()),
            Just("title".to_owned()),
            Just("status".to_owned()),
            Just("detail".to_owned()),
            Just("instance".to_owned()),
            Just("error".to_owned()),
            Just("error_description".to_owned()),
            Just("error_uri".to_owned()),
            Just("access_token".to_owned()),
            Just("token_type".to_owned()),
            Just("scope".to_owned()),
            Just("expires_in".to_owned()),
            ".{0,12}",
        ];
        leaf.prop_recursive(3, 32, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn content_type() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("application/json".to_owned())),
            Just(Some("application/problem+json".to_owned())),
            Just(Some("application/json; charset=utf-8".to_owned())),
            Just(Some("text/html".to_owned())),
            Just(Some("text/plain".to_owned())),
            ".{0,30}".prop_map(Some),
        ]
    }

    fn header() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned())),
            "[0-9]{0,25}".prop_map(Some),
            ".{0,40}".prop_map(Some),
        ]
    }

    fn check(
        status: u16,
        content_type: Option<String>,
        date: Option<String>,
        retry: Option<String>,
        body: Vec<u8>,
    ) {
        let r = RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            content_type,
            date,
            retry_after: retry,
            location: Some("https://elsewhere.example/".into()),
            request_id: Some("x-request-id: abc".into()),
            www_authenticate: None,
            body: Bytes::from(body),
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        match map_response(&r) {
            Ok(token) => {
                assert!((200..300).contains(&status));
                let _ = format!("{token:?}");
            }
            Err(e) => {
                // Formatting and the queries must not panic either.
                let _ = (
                    format!("{e}"),
                    format!("{e:?}"),
                    e.is_retryable(),
                    e.retry_after(),
                );
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            status in 100u16..=999,
            ct in content_type(),
            date in header(),
            retry in header(),
            body in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            check(status, ct, date, retry, body);
        }

        #[test]
        fn arbitrary_json_never_panics(
            status in prop_oneof![Just(200u16), Just(400), Just(401), Just(429), Just(500), 100u16..=999],
            ct in content_type(),
            date in header(),
            retry in header(),
            value in json_value(),
        ) {
            check(status, ct, date, retry, value.to_string().into_bytes());
        }
    }
}
