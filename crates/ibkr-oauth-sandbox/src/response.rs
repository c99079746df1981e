//! The responses the endpoint sends: token responses and RFC 9457 problems in IBKR's shape.

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

/// The content type of every problem response.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// IBKR's problem `type`: a relative reference, as in its published examples.
const PROBLEM_TYPE: &str = "/simple";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    expires_in: u64,
}

/// A problem response: `{"type":"/simple","title":...,"status":...,"detail":...}`.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    let body = Problem {
        kind: PROBLEM_TYPE,
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
    };
    json(status, PROBLEM_CONTENT_TYPE, &body)
}

/// `429` with `Retry-After` (whole seconds).
pub(crate) fn too_many_requests(retry_after_secs: u64, detail: &str) -> Response {
    let mut response = problem(StatusCode::TOO_MANY_REQUESTS, detail);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The realm of the sandbox's `WWW-Authenticate` challenges.
pub(crate) const REALM: &str = "ibkr-oauth-sandbox";

/// A problem with a `WWW-Authenticate: Bearer` challenge (RFC 6750 section 3): `error` is
/// `None` when the request carried no credentials, `scope` names the one missing.
pub(crate) fn challenge(
    status: StatusCode,
    detail: &str,
    error: Option<&str>,
    scope: Option<&str>,
) -> Response {
    let mut value = format!("Bearer realm=\"{REALM}\"");
    if let Some(error) = error {
        value.push_str(&format!(", error=\"{error}\""));
    }
    if let Some(scope) = scope {
        value.push_str(&format!(", scope=\"{scope}\""));
    }
    let mut response = problem(status, detail);
    // Built from constants: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EchoBody<'a> {
    request_method: &'a str,
    security_policy: &'a str,
    query_parameters: Map<String, Value>,
}

/// `200` with IBKR's `EchoResponse`.
pub(crate) fn echo(method: &str, policy: &str, query: Map<String, Value>) -> Response {
    let body = EchoBody {
        request_method: method,
        security_policy: policy,
        query_parameters: query,
    };
    json(StatusCode::OK, "application/json", &body)
}

/// `200` token response. RFC 6749 section 5.1: no caching of token responses.
pub(crate) fn token(access_token: &str, scope: Option<&str>, expires_in: u64) -> Response {
    let body = TokenBody {
        access_token,
        token_type: "Bearer",
        scope,
        expires_in,
    };
    let mut response = json(StatusCode::OK, "application/json", &body);
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub(crate) fn json(
    status: StatusCode,
    content_type: &'static str,
    body: &impl Serialize,
) -> Response {
    // Serializing these plain structs cannot fail; an empty body would still be a valid answer.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
