//! Forwarding a `/v1/api` or `/gw/api` call to the configured upstream, and its answer back.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    RETRY_AFTER, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ibkr_oauth::pacing::PacingError;

use super::{Gateway, MAX_BODY_BYTES};
use crate::agent::{SECRET_HEADER, problem};

/// A problem+json answer with a `code` member (a stable name of the failure).
fn problem_with_code(status: StatusCode, detail: &str, code: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// Headers that belong to one connection, not to the message (RFC 9110 7.6.1), plus the ones
/// the gateway sets itself.
fn is_hop_by_hop(name: &HeaderName, connection: &HeaderMap) -> bool {
    const FIXED: [HeaderName; 8] = [
        CONNECTION,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        HOST,
    ];
    FIXED.contains(name)
        || name.as_str() == "keep-alive"
        || connection
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// The client's headers as they go upstream: no hop-by-hop, no `Authorization` (the gateway
/// sets its own), no agent secret, no `Content-Length` (set from the body).
fn upstream_headers(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| {
            !is_hop_by_hop(name, headers)
                && *name != AUTHORIZATION
                && *name != CONTENT_LENGTH
                && name.as_str() != SECRET_HEADER
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// A label of bounded cardinality for metrics: the pacing rule, or the first path segment.
fn endpoint_label(path: &str) -> String {
    let below = path
        .strip_prefix("/v1/api/")
        .map(|rest| ("/v1/api/", rest))
        .or_else(|| path.strip_prefix("/gw/api/").map(|rest| ("/gw/api/", rest)));
    match below {
        Some((prefix, rest)) => {
            let first: String = rest
                .split('/')
                .next()
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(32)
                .collect();
            format!("{prefix}{first}")
        }
        None => "other".into(),
    }
}

fn count(endpoint: &str, status: u16) {
    metrics::counter!(
        "ibkr_oauth_gateway_requests_total",
        "endpoint" => endpoint.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// Whether `path` has a `.` or `..` segment as the URL parser that builds the upstream request
/// sees it (WHATWG): `%2e` is a dot, and `\` separates segments as `/` does in http(s) URLs.
fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    })
}

pub(super) async fn forward(State(gateway): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let endpoint = endpoint_label(path);
    // The router only sends /v1/api and /gw/api here; refuse dot segments that would climb out.
    if has_dot_segment(path) {
        count(&endpoint, 400);
        return problem(StatusCode::BAD_REQUEST, "dot segments are not forwarded");
    }
    let target = format!(
        "{}{}",
        gateway.inner.upstream,
        parts.uri.path_and_query().map_or(path, |pq| pq.as_str())
    );
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            count(&endpoint, 413);
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request bodies are forwarded up to {MAX_BODY_BYTES} bytes"),
            );
        }
    };
    let mut outgoing = gateway
        .inner
        .api
        .request(parts.method.clone(), &target)
        .headers(upstream_headers(&parts.headers))
        .body(body);
    if path.starts_with("/gw/api/") {
        match gateway.inner.tokens.access_token().await {
            Ok(token) => outgoing = outgoing.header(AUTHORIZATION, token.authorization_header()),
            Err(error) => {
                count(&endpoint, 503);
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "no access token: {}",
                        ibkr_oauth::sanitize(&error.to_string(), 300)
                    ),
                );
            }
        }
    }
    // The slot is held until IBKR's answer is back (see `slots`): taken before the governor
    // gives the call its turn, inside `send`.
    let _held = match gateway.inner.slots.take(path).await {
        Ok(held) => held,
        Err(busy) => {
            count(&endpoint, 429);
            metrics::counter!("ibkr_oauth_gateway_busy_total", "limit" => busy.label())
                .increment(1);
            let mut response = problem(StatusCode::TOO_MANY_REQUESTS, &busy.message());
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(1u32));
            return response;
        }
    };
    match outgoing.send().await {
        Ok(answer) => {
            let status = answer.status();
            count(&endpoint, status.as_u16());
            let mut response = Response::builder().status(status.as_u16());
            let upstream = answer.headers().clone();
            if let Some(headers) = response.headers_mut() {
                for (name, value) in &upstream {
                    if !is_hop_by_hop(name, &upstream) {
                        headers.append(name.clone(), value.clone());
                    }
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| {
                    problem(
                        StatusCode::BAD_GATEWAY,
                        "IBKR's answer could not be passed on",
                    )
                })
        }
        Err(reqwest_middleware::Error::Middleware(error)) => {
            if let Some(refusal) = error.downcast_ref::<PacingError>() {
                count(&endpoint, 429);
                let mut response = problem(StatusCode::TOO_MANY_REQUESTS, &refusal.to_string());
                if let Some(after) = refusal.retry_after() {
                    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
                }
                if matches!(refusal, PacingError::Unavailable(_)) {
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                return response;
            }
            count(&endpoint, 503);
            tracing::warn!(error = %error, "gateway: no session to forward with");
            let shared = error
                .downcast_ref::<ibkr_oauth::Error>()
                .and_then(ibkr_oauth_redis::SharedSessionError::find);
            if let Some(shared) = shared {
                // The fleet's session (--redis): say which failure, with its stable code.
                return problem_with_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &ibkr_oauth::sanitize(&shared.to_string(), 500),
                    shared.code(),
                );
            }
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "no IBKR session: {}",
                    ibkr_oauth::sanitize(&error.to_string(), 300)
                ),
            )
        }
        Err(reqwest_middleware::Error::Reqwest(error)) => {
            let status = if error.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            count(&endpoint, status.as_u16());
            tracing::warn!(error = %error, "gateway: IBKR could not be reached");
            problem(status, "IBKR could not be reached; try again")
        }
    }
}
