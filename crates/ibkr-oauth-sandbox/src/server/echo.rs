//! IBKR's echo endpoints as a protected resource, and the answers for other paths and methods.
//!
//! An API call is checked in this order: the bearer token (401 missing or invalid, 400 a
//! malformed `Authorization`), its scope (403), then for the Signed JWT policy the content type
//! (415) and the signed body (400). Injected faults apply to token requests only.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::ALLOW;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::shared::{BodyRead, Exchange, Shared, close_connection};
use crate::log::{Endpoint, MAX_DECODED_ASSERTION_BYTES, bounded};
use crate::protocol::{
    ECHO_HTTPS_PATH, ECHO_READ_SCOPE, ECHO_SIGNED_JWT_PATH, ECHO_WRITE_SCOPE, TOKEN_PATH,
};
use crate::session::{
    AUTH_STATUS_PATH, ISERVER_ACCOUNTS_PATH, LOGOUT_PATH, PORTFOLIO_ACCOUNTS_PATH,
    SSO_SESSIONS_PATH, SSO_VALIDATE_PATH, SSODH_INIT_PATH, TICKLE_PATH,
};
use crate::verify::bearer::{self, Denial};
use crate::verify::signed_body::{self, BodyRefusal};
use crate::verify::{form, jws, quote};
use crate::{AccessTokenClaims, Error, response};

/// The longest query string echoed back, in bytes.
const MAX_QUERY_BYTES: usize = 8 * 1024;

pub(super) async fn echo_https(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let mut exchange = shared.record(shared.arrival(&parts, Endpoint::EchoHttps));
    if let Err(refused) = shared.authorize(&mut exchange, &parts.headers, ECHO_READ_SCOPE) {
        return *refused;
    }
    match query_parameters(parts.uri.query()) {
        Ok(query) => {
            let response = response::echo("GET", "HTTPS", query);
            shared.answer(&exchange, StatusCode::OK, None, response)
        }
        Err(detail) => shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail),
    }
}

pub(super) async fn echo_signed_jwt(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut entry = shared.arrival(&parts, Endpoint::EchoSignedJwt);
    let body = match shared.read_body(&parts.headers, body).await {
        BodyRead::Read(body) => body,
        BodyRead::Shutdown => return close_connection(),
    };
    if let Ok(bytes) = &body {
        entry.body_len = Some(bytes.len());
        if let Some(text) = std::str::from_utf8(bytes)
            .ok()
            .filter(|text| text.len() <= MAX_DECODED_ASSERTION_BYTES)
        {
            (entry.signed_body_header, entry.signed_body_claims) = jws::peek(text.trim());
            entry.kid = jws::member(entry.signed_body_header.as_ref(), "kid").map(bounded);
        }
    }
    let content_type = entry.content_type.clone();
    let mut exchange = shared.record(entry);
    let claims = match shared.authorize(&mut exchange, &parts.headers, ECHO_WRITE_SCOPE) {
        Ok(claims) => claims,
        Err(refused) => return *refused,
    };
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(detail) => return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail),
    };
    let now = shared.clock.unix_secs();
    let checked = signed_body::check(
        &shared.config,
        now,
        &claims.client_id,
        content_type.as_deref(),
        &bytes,
    );
    let query = match checked
        .and_then(|_| query_parameters(parts.uri.query()).map_err(BodyRefusal::Invalid))
    {
        Ok(query) => query,
        Err(BodyRefusal::MediaType(detail)) => {
            return shared.refuse(&exchange, StatusCode::UNSUPPORTED_MEDIA_TYPE, &detail);
        }
        Err(BodyRefusal::Invalid(detail)) => {
            return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail);
        }
    };
    let response = response::echo("POST", "SIGNED_JWT", query);
    shared.answer(&exchange, StatusCode::OK, None, response)
}

impl Shared {
    /// The bearer token's claims when it is valid and has `scope`; else the answer to send.
    pub(super) fn authorize(
        &self,
        exchange: &mut Exchange,
        headers: &HeaderMap,
        scope: &'static str,
    ) -> Result<AccessTokenClaims, Box<Response>> {
        let checked = bearer::bearer_token(headers).and_then(|token| {
            self.check_access_token(token).map_err(|e| match e {
                Error::InvalidAccessToken(reason) => {
                    Denial::InvalidToken(format!("access token: {reason}"))
                }
                other => Denial::InvalidToken(format!("access token: {other}")),
            })
        });
        let claims = checked.and_then(|claims| {
            exchange.client_id = Some(bounded(&claims.client_id));
            bearer::require_scope(&claims, scope).map(|()| claims)
        });
        claims.map_err(|denial| {
            let (status, detail, error, needed) = match &denial {
                Denial::Missing(detail) => (StatusCode::UNAUTHORIZED, detail, None, None),
                Denial::InvalidRequest(detail) => (
                    StatusCode::BAD_REQUEST,
                    detail,
                    Some("invalid_request"),
                    None,
                ),
                Denial::InvalidToken(detail) => (
                    StatusCode::UNAUTHORIZED,
                    detail,
                    Some("invalid_token"),
                    None,
                ),
                Denial::InsufficientScope { scope, detail } => (
                    StatusCode::FORBIDDEN,
                    detail,
                    Some("insufficient_scope"),
                    Some(*scope),
                ),
            };
            let response = response::challenge(status, detail, error, needed);
            Box::new(self.answer(exchange, status, Some(detail), response))
        })
    }
}

/// The query string as `EchoResponse.queryParameters`: each name to its value, or to an array
/// of its values when repeated. Parsed as strictly as a form.
fn query_parameters(query: Option<&str>) -> Result<Map<String, Value>, String> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "query: {} bytes is more than the {MAX_QUERY_BYTES}-byte limit",
            query.len()
        ));
    }
    let pairs = form::parse_form(query.as_bytes())
        .map_err(|detail| detail.replacen("form:", "query:", 1))?;
    let mut map = Map::new();
    for (name, value) in pairs {
        match map.get_mut(&name) {
            None => {
                map.insert(name, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                map.insert(name, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    Ok(map)
}

/// The endpoint at `path`, with its one method.
fn endpoint_at(path: &str) -> Option<(Endpoint, &'static str, &'static str)> {
    match path {
        TOKEN_PATH => Some((Endpoint::Token, "POST", "the token endpoint is POST")),
        ECHO_HTTPS_PATH => Some((Endpoint::EchoHttps, "GET", "this endpoint is GET")),
        ECHO_SIGNED_JWT_PATH => Some((Endpoint::EchoSignedJwt, "POST", "this endpoint is POST")),
        TICKLE_PATH => Some((
            Endpoint::Tickle,
            "GET, POST",
            "this endpoint is GET or POST",
        )),
        _ => session_endpoint_at(path),
    }
}

/// The session endpoints with one method.
fn session_endpoint_at(path: &str) -> Option<(Endpoint, &'static str, &'static str)> {
    const GET: (&str, &str) = ("GET", "this endpoint is GET");
    const POST: (&str, &str) = ("POST", "this endpoint is POST");
    let (endpoint, (allow, says)) = match path {
        SSO_SESSIONS_PATH => (Endpoint::SsoSessions, POST),
        SSO_VALIDATE_PATH => (Endpoint::SsoValidate, GET),
        SSODH_INIT_PATH => (Endpoint::SsoDhInit, POST),
        AUTH_STATUS_PATH => (Endpoint::AuthStatus, POST),
        LOGOUT_PATH => (Endpoint::Logout, POST),
        PORTFOLIO_ACCOUNTS_PATH => (Endpoint::PortfolioAccounts, GET),
        ISERVER_ACCOUNTS_PATH => (Endpoint::IserverAccounts, GET),
        _ => return None,
    };
    Some((endpoint, allow, says))
}

pub(super) async fn method_not_allowed(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let path = parts.uri.path();
    let (endpoint, allow, says) =
        endpoint_at(path).unwrap_or((Endpoint::Other, "POST", "the token endpoint is POST"));
    let exchange = shared.record(shared.arrival(&parts, endpoint));
    let detail = format!(
        "method {} is not allowed; {says} {path}",
        quote(parts.method.as_str())
    );
    let mut response = shared.refuse(&exchange, StatusCode::METHOD_NOT_ALLOWED, &detail);
    // RFC 9110 section 15.5.6: a 405 lists the allowed methods. Set here, not left to axum's
    // router (which sets it only when the handler has not).
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

pub(super) async fn not_found(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let exchange = shared.record(shared.arrival(&parts, Endpoint::Other));
    let detail = format!(
        "no endpoint at {}; the token endpoint is POST {TOKEN_PATH}",
        quote(parts.uri.path())
    );
    shared.refuse(&exchange, StatusCode::NOT_FOUND, &detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_query_parameters_and_repeats_as_arrays() {
        let map = query_parameters(Some("a=1&b=x+y&a=2&a=3")).unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"a": ["1", "2", "3"], "b": "x y"})
        );
        assert_eq!(query_parameters(None).unwrap(), Map::new());
        assert_eq!(
            query_parameters(Some("a=%00")).unwrap_err(),
            "query: field \"a\" contains a control character"
        );
        let long = "a".repeat(MAX_QUERY_BYTES + 1);
        assert!(
            query_parameters(Some(&long))
                .unwrap_err()
                .starts_with("query: 8193 bytes")
        );
    }
}
