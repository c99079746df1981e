//! The session endpoints: `POST /gw/api/v1/sso-sessions` (access token + signed body -> SSO
//! bearer), and with the SSO bearer `sso/validate`, `ssodh/init`, `tickle`, `auth/status`,
//! `logout`. The state they act on is `crate::session::Sessions`; the answers' shapes are in
//! `crate::session`'s `answers`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::PRAGMA;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::shared::{BodyRead, Exchange, Shared, close_connection, lock};
use crate::log::{Endpoint, MAX_DECODED_ASSERTION_BYTES, bounded};
use crate::response;
use crate::session::{
    Denied, Init, Opening, SSO_SESSIONS_SCOPE, auth_status_answer, tickle_answer, validate_answer,
};
use crate::token::random_id;
use crate::verify::bearer::{self, Denial};
use crate::verify::signed_body::{self, BodyRefusal};
use crate::verify::{jws, sso_body};

/// `200 application/json` with `body`.
pub(super) fn ok_json(body: &Value) -> Response {
    response::json(StatusCode::OK, "application/json", body)
}

/// IBKR's `errorResponse` (`{"error":..., "statusCode":...}`, `application/json`), as its
/// `/iserver` endpoints answer (`400 {"error":"Bad Request: no bridge","statusCode":400}`).
pub(super) fn error_json(status: StatusCode, error: &str) -> Response {
    let body = json!({"error": error, "statusCode": status.as_u16()});
    response::json(status, "application/json", &body)
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.clock.unix_secs().saturating_mul(1000)
    }

    /// Records a call with the SSO bearer and finds its session, or answers `401`.
    pub(super) fn session_call(
        &self,
        parts: &Parts,
        endpoint: Endpoint,
    ) -> Result<(Exchange, u64), Box<Response>> {
        let mut exchange = self.record(self.arrival(parts, endpoint));
        let found = bearer::bearer_token(&parts.headers).and_then(|token| {
            lock(&self.sessions)
                .touch(token, Instant::now(), self.now_ms())
                .map_err(|Denied(detail)| Denial::InvalidToken(detail))
        });
        match found {
            Ok(id) => {
                let now = Instant::now();
                if let Some(view) = lock(&self.sessions).view(id, now) {
                    exchange.client_id = Some(bounded(&view.client_id));
                    if let Some(refused) = self.paced(&exchange, &view.username, parts, now) {
                        return Err(Box::new(refused));
                    }
                }
                Ok((exchange, id))
            }
            Err(denial) => {
                let (status, detail, error) = match &denial {
                    Denial::Missing(detail) => (StatusCode::UNAUTHORIZED, detail, None),
                    Denial::InvalidRequest(detail) => {
                        (StatusCode::BAD_REQUEST, detail, Some("invalid_request"))
                    }
                    Denial::InvalidToken(detail) | Denial::InsufficientScope { detail, .. } => {
                        (StatusCode::UNAUTHORIZED, detail, Some("invalid_token"))
                    }
                };
                let response = response::challenge(status, detail, error, None);
                Err(Box::new(self.answer(
                    &exchange,
                    status,
                    Some(detail),
                    response,
                )))
            }
        }
    }
}

pub(super) async fn sso_sessions(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut entry = shared.arrival(&parts, Endpoint::SsoSessions);
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
    let claims = match shared.authorize(&mut exchange, &parts.headers, SSO_SESSIONS_SCOPE) {
        Ok(claims) => claims,
        Err(refused) => return *refused,
    };
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(detail) => return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail),
    };
    let now = shared.clock.unix_secs();
    let signed = signed_body::check(
        &shared.config,
        now,
        &claims.client_id,
        content_type.as_deref(),
        &bytes,
    );
    let body_claims = match signed {
        Ok(body_claims) => body_claims,
        Err(BodyRefusal::MediaType(detail)) => {
            return shared.refuse(&exchange, StatusCode::UNSUPPORTED_MEDIA_TYPE, &detail);
        }
        Err(BodyRefusal::Invalid(detail)) => {
            return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail);
        }
    };
    let wanted = match sso_body::read(&body_claims) {
        Ok(wanted) => wanted,
        Err(detail) => return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail),
    };
    let (Some(token), Some(name)) = (
        random_id().zip(random_id()).map(|(a, b)| a + &b),
        random_id(),
    ) else {
        return shared.refuse(
            &exchange,
            StatusCode::INTERNAL_SERVER_ERROR,
            "SSO session: no randomness for its token",
        );
    };
    let opened = {
        let mut sessions = lock(&shared.sessions);
        let replay = match &wanted.jti {
            Some(jti) => sessions.remember_jti(
                &claims.client_id,
                jti,
                wanted.exp.unwrap_or(now.saturating_add(86_400)),
                now,
            ),
            None => Ok(()),
        };
        replay
            .and_then(|()| {
                let opening = Opening {
                    token: token.clone(),
                    name,
                    client_id: claims.client_id.clone(),
                    username: wanted.credential.clone(),
                    ip: wanted.ip,
                };
                sessions.open(opening, Instant::now(), shared.now_ms())
            })
            .map_err(|what| format!("signed body: {what}"))
    };
    if let Err(detail) = opened {
        return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail);
    }
    let body = json!({"active": true, "access_token": token, "token_type": "Bearer"});
    let mut response = ok_json(&body);
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    shared.answer(&exchange, StatusCode::OK, None, response)
}

pub(super) async fn validate(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let (exchange, id) = match shared.session_call(&parts, Endpoint::SsoValidate) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let view = lock(&shared.sessions).view(id, Instant::now());
    match view {
        Some(view) => shared.answer(
            &exchange,
            StatusCode::OK,
            None,
            ok_json(&validate_answer(&view)),
        ),
        None => shared.refuse(&exchange, StatusCode::UNAUTHORIZED, "SSO session: gone"),
    }
}

pub(super) async fn ssodh_init(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match shared.read_body(&parts.headers, body).await {
        BodyRead::Read(body) => body,
        BodyRead::Shutdown => return close_connection(),
    };
    let (exchange, id) = match shared.session_call(&parts, Endpoint::SsoDhInit) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let flags = body.and_then(|bytes| init_flags(&bytes));
    let (publish, compete) = match flags {
        Ok(flags) => flags,
        Err(detail) => {
            let error = format!("Bad Request: {detail}");
            return shared.answer(
                &exchange,
                StatusCode::BAD_REQUEST,
                Some(&error),
                error_json(StatusCode::BAD_REQUEST, &error),
            );
        }
    };
    if !publish {
        // The spec: with `publish: false` the session token must have been published before;
        // the sandbox has no other way to publish it, so the session stays closed.
        let mut answer =
            auth_status_answer(lock(&shared.sessions).status(id, Instant::now()), false);
        answer["message"] =
            json!("publish is false and no session token was published; send publish: true");
        return shared.answer(&exchange, StatusCode::OK, None, ok_json(&answer));
    }
    let outcome = lock(&shared.sessions).init(id, compete, Instant::now());
    match outcome {
        Init::Done(status) => {
            let answer = auth_status_answer(status, false);
            shared.answer(&exchange, StatusCode::OK, None, ok_json(&answer))
        }
        Init::DhFailure => {
            let error = "failed to generate sso dh token";
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            shared.answer(&exchange, status, Some(error), error_json(status, error))
        }
        Init::Unavailable => unavailable(&shared, &exchange),
    }
}

/// `503` as IBKR's `errorResponse`, inside the nightly reset window.
pub(super) fn unavailable(shared: &Shared, exchange: &Exchange) -> Response {
    let error = "Service Unavailable: the brokerage system is in its nightly reset; retry later";
    let status = StatusCode::SERVICE_UNAVAILABLE;
    shared.answer(exchange, status, Some(error), error_json(status, error))
}

/// `publish` and `compete` of an `ssodh/init` body (both default to false, as booleans absent
/// from a JSON object read in IBKR's Java).
fn init_flags(bytes: &[u8]) -> Result<(bool, bool), String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|_| "the body is not JSON; send {\"publish\":true,\"compete\":true}".to_owned())?;
    let Value::Object(map) = value else {
        return Err("the body is not a JSON object".into());
    };
    let flag = |name: &str| match map.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{name} is not a boolean")),
    };
    Ok((flag("publish")?, flag("compete")?))
}

pub(super) async fn tickle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let (exchange, id) = match shared.session_call(&parts, Endpoint::Tickle) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let delay = lock(&shared.sessions).tickle_delay();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let now = Instant::now();
    let (outcome, view) = {
        let mut sessions = lock(&shared.sessions);
        let view = sessions.view(id, now);
        (sessions.tickle(id, now), view)
    };
    match (outcome, view) {
        (Ok(status), Some(view)) => {
            let answer = tickle_answer(&view, status);
            shared.answer(&exchange, StatusCode::OK, None, ok_json(&answer))
        }
        // `failedTickleResponse`: a 200 whose body says what failed.
        (Err(error), _) => shared.answer(
            &exchange,
            StatusCode::OK,
            Some(error),
            ok_json(&json!({"error": error})),
        ),
        (Ok(_), None) => shared.refuse(&exchange, StatusCode::UNAUTHORIZED, "SSO session: gone"),
    }
}

pub(super) async fn auth_status(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let (exchange, id) = match shared.session_call(&parts, Endpoint::AuthStatus) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let status = lock(&shared.sessions).status(id, Instant::now());
    shared.answer(
        &exchange,
        StatusCode::OK,
        None,
        ok_json(&auth_status_answer(status, true)),
    )
}

pub(super) async fn logout(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let (exchange, id) = match shared.session_call(&parts, Endpoint::Logout) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    lock(&shared.sessions).logout(id);
    shared.answer(
        &exchange,
        StatusCode::OK,
        None,
        ok_json(&json!({"status": true})),
    )
}

impl Shared {
    /// Counts the call against `username`'s pacing (when on): the `429` to send past a limit.
    fn paced(
        &self,
        exchange: &Exchange,
        username: &str,
        parts: &Parts,
        now: Instant,
    ) -> Option<Response> {
        let pacing = self.pacing.as_ref()?;
        let retry_after = lock(pacing).admit(username, parts.uri.path(), now).err()?;
        let status = StatusCode::TOO_MANY_REQUESTS;
        let mut response = error_json(status, "Too Many Requests");
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(secs.max(1)),
        );
        Some(self.answer(
            exchange,
            status,
            Some("pacing: too many requests"),
            response,
        ))
    }
}
