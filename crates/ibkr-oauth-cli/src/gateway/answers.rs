//! The session's endpoints answered from the held session (no IBKR budget spent), and
//! `/healthz`.

use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ibkr_oauth::session::{SessionEvent, SessionState};
use serde_json::{Value, json};

use super::Gateway;
use super::held::View;

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// IBKR's `authStatus` object for the held session.
fn auth_status_of(status: &View) -> Value {
    json!({
        "authenticated": status.is(SessionState::Brokerage),
        "competing": status.is(SessionState::Competing),
        "connected": status.is_open(),
        "message": status.reason.as_deref().unwrap_or(""),
        "MAC": "",
        "serverInfo": {},
    })
}

fn state_label(state: Option<SessionState>) -> &'static str {
    let Some(state) = state else {
        return "none";
    };
    match state {
        SessionState::Opening => "opening",
        SessionState::ReadOnly => "read_only",
        SessionState::Brokerage => "brokerage",
        SessionState::Competing => "competing",
        SessionState::NoBridge => "no_bridge",
        SessionState::Expired => "expired",
        SessionState::Closed => "closed",
        _ => "other",
    }
}

/// Sets the session-state gauge (1 for the current state, 0 for the others).
pub(super) fn record_session_state(status: &View) {
    for state in [
        SessionState::Opening,
        SessionState::ReadOnly,
        SessionState::Brokerage,
        SessionState::Competing,
        SessionState::NoBridge,
        SessionState::Expired,
        SessionState::Closed,
    ] {
        let value = if status.is(state) { 1.0 } else { 0.0 };
        metrics::gauge!("ibkr_oauth_session_state", "state" => state_label(Some(state))).set(value);
    }
}

/// Records the session keeper's events: the keep-alive's latency (a histogram) and the
/// sessions opened again (by kind).
pub fn record_session_event(event: &SessionEvent) {
    match event {
        SessionEvent::Tickled { latency } => {
            metrics::histogram!("ibkr_oauth_session_tickle_seconds").record(latency.as_secs_f64());
        }
        SessionEvent::Reopened { brokerage } => {
            let session = if *brokerage { "brokerage" } else { "sso" };
            metrics::counter!("ibkr_oauth_session_reopens_total", "session" => session)
                .increment(1);
        }
        _ => {}
    }
}

fn answered(endpoint: &'static str) {
    metrics::counter!("ibkr_oauth_gateway_answered_total", "endpoint" => endpoint).increment(1);
}

/// `tickle`: what IBKR's keep-alive answers, from the session the gateway keeps alive itself.
pub(super) async fn tickle(State(gateway): State<Gateway>) -> Response {
    answered("tickle");
    let status = gateway.inner.session.view();
    if !status.is_open() {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": format!("no session ({})", state_label(status.state))}),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({
            "session": "ibkr-oauth-gateway",
            "collission": status.is(SessionState::Competing),
            "userId": 0,
            "iserver": {"authStatus": auth_status_of(&status)},
        }),
    )
}

/// `iserver/auth/status`.
pub(super) async fn auth_status(State(gateway): State<Gateway>) -> Response {
    answered("auth_status");
    let status = gateway.inner.session.view();
    let mut body = auth_status_of(&status);
    body["fail"] = json!("");
    json_response(StatusCode::OK, &body)
}

/// `sso/validate`.
pub(super) async fn validate(State(gateway): State<Gateway>) -> Response {
    answered("sso_validate");
    let status = gateway.inner.session.view();
    let username = gateway.inner.session.username().to_owned();
    json_response(
        StatusCode::OK,
        &json!({"RESULT": status.is_open(), "USER_NAME": username}),
    )
}

/// `logout`: the session is everyone's; a client leaving does not end it.
pub(super) async fn logout() -> Response {
    answered("logout");
    tracing::info!("gateway: a client logged out; the session stays open for the others");
    json_response(StatusCode::OK, &json!({"status": true}))
}

/// `/healthz`: the session's state.
pub(super) async fn healthz(State(gateway): State<Gateway>) -> Response {
    let status = gateway.inner.session.view();
    let since = status
        .since
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let code = if status.is_open() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        code,
        &json!({
            "status": if status.is_open() { "ok" } else { "unavailable" },
            "session": {
                "state": state_label(status.state),
                "authenticated": status.is(SessionState::Brokerage),
                "competing": status.is(SessionState::Competing),
                "stale": status.stale,
                "reason": status.reason.as_deref(),
                "since": since,
                "username": gateway.inner.session.username(),
                // With --redis: this process's part in the fleet's one session.
                "role": status.role.map(|(role, _)| role.to_string()),
                "fence": status.role.map(|(_, fence)| fence),
                "code": status.error.as_ref().map(|e| e.code()),
            },
            "pacing": {
                "admitted": gateway.inner.pacer.stats().admitted,
                "refused": gateway.inner.pacer.stats().refused,
            },
        }),
    )
}
