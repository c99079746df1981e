//! Reading the token endpoint's answer: status and content type first, then the body.
//!
//! [`map_response`] is a pure function of what the transport recorded (status, a few headers,
//! the buffered body, the instant it arrived), so it can be fed arbitrary bytes in tests. It
//! turns a 2xx JSON body into a [`Token`], an RFC 9457 problem document into
//! [`Error::Problem`], an RFC 6749 section 5.2 error body into [`Error::OAuth`] and everything
//! else (a redirect, an HTML error page...) into [`Error::UnexpectedResponse`].

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::token::Token;

/// How much of a body an unexpected-response excerpt shows, in characters.
const EXCERPT_CHARS: usize = 160;
/// How much of a body is looked at to build an excerpt, in bytes (bounds the work).
const EXCERPT_SCAN_BYTES: usize = 4096;
/// How much of one server-supplied text field (title, detail...) an error message shows.
const FIELD_CHARS: usize = 300;
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
}

impl ResponseInfo {
    /// Whether a response with this status may succeed when sent again later: 5xx, 429 (too
    /// many requests) and 408 (request timeout).
    pub fn is_retryable_status(&self) -> bool {
        retryable_status(self.status)
    }
}

pub(crate) fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

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

/// What the transport recorded of one response: the input of [`map_response`].
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) date: Option<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) location: Option<String>,
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
        }
    }
}

/// The media type families the mapping tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Problem,
    Json,
    Html,
    Other,
}

fn media(content_type: Option<&str>) -> Media {
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
                    reason,
                    response: Box::new(info),
                }),
            Media::Problem => Err(Error::InvalidResponse {
                reason: "a success status came with an application/problem+json body".into(),
                response: Box::new(info),
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
                        error: Box::new(oauth),
                        response: Box::new(info),
                    });
                }
            }
            return Err(Error::Problem {
                problem: Box::new(Problem::from_object(status, map)),
                response: Box::new(info),
            });
        }
    }

    // 1xx, 3xx (redirects are never followed), odd codes, and error bodies that are not JSON.
    let excerpt = excerpt(&raw.body, media == Media::Html);
    Err(unexpected(raw, info, Some(excerpt)))
}

fn unexpected(raw: &RawResponse, info: ResponseInfo, excerpt: Option<String>) -> Error {
    Error::UnexpectedResponse {
        excerpt,
        location: if raw.status.is_redirection() {
            raw.location.as_deref().map(|l| sanitize(l, HEADER_CHARS))
        } else {
            None
        },
        response: Box::new(info),
    }
}

/// A short, single-line, sanitised excerpt of a body (tags dropped from HTML).
pub(crate) fn excerpt(body: &[u8], html: bool) -> String {
    let head = body.get(..EXCERPT_SCAN_BYTES).unwrap_or(body);
    let text = String::from_utf8_lossy(head);
    if html {
        sanitize(&strip_tags(&text), EXCERPT_CHARS)
    } else {
        sanitize(&text, EXCERPT_CHARS)
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// One line of server-supplied text made safe to print: control and bidi-override characters
/// become spaces, runs of white space collapse, JWT-shaped words become `[redacted]`, and the
/// result is cut at `max_chars` characters.
pub(crate) fn sanitize(text: &str, max_chars: usize) -> String {
    let mut cleaned = String::with_capacity(text.len().min(max_chars * 4));
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || is_bidi_control(c) || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if !last_space {
                cleaned.push(' ');
            }
            last_space = true;
        } else {
            cleaned.push(c);
            last_space = false;
        }
    }
    let redacted = redact_jwts(cleaned.trim_end());
    let mut out: String = redacted.chars().take(max_chars).collect();
    if redacted.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_token_char(c: char) -> bool {
    // base64url and the dots of a compact JWS.
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Replaces every word that looks like a compact JWS/JWE (starting `eyJ`, the base64url of
/// `{"`, with at least two dots) with `[redacted]`: IBKR's access tokens and client assertions
/// both have that shape, so an endpoint echoing one back cannot leak it through an error.
fn redact_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.starts_with("eyJ") && word.matches('.').count() >= 2 {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
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
            body: Bytes::copy_from_slice(body),
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn sanitize_removes_controls_and_collapses_space() {
        assert_eq!(sanitize("a\r\n\tb\u{202E}c  ", 100), "a b c");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }

    #[test]
    fn sanitize_redacts_jwt_shaped_words() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(
            sanitize(&format!("token=\"{jwt}\" end"), 200),
            "token=\"[redacted]\" end"
        );
        assert_eq!(
            sanitize("see api.ibkr.com/v1.2", 200),
            "see api.ibkr.com/v1.2"
        );
    }

    #[test]
    fn html_excerpt_drops_tags() {
        let body = b"<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>";
        assert_eq!(excerpt(body, true), "502 Bad Gateway nginx");
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
