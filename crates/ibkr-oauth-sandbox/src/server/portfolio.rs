//! Two plain `/v1/api` read endpoints, so that end-to-end calls through a session are real:
//! `GET /v1/api/portfolio/accounts` (the SSO session is enough) and `GET
//! /v1/api/iserver/accounts` (needs the brokerage session: `400 no bridge` without it, as IBKR
//! answers).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::time::Instant;

use super::session::{error_json, ok_json, unavailable};
use super::shared::{Shared, lock};
use crate::log::Endpoint;
use crate::session::{Iserver, accounts_answer, iserver_accounts_answer};

pub(super) async fn portfolio_accounts(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let (exchange, id) = match shared.session_call(&parts, Endpoint::PortfolioAccounts) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let view = lock(&shared.sessions).view(id, Instant::now());
    match view {
        Some(view) => {
            let answer = accounts_answer(&view.username);
            shared.answer(&exchange, StatusCode::OK, None, ok_json(&answer))
        }
        None => shared.refuse(&exchange, StatusCode::UNAUTHORIZED, "SSO session: gone"),
    }
}

pub(super) async fn iserver_accounts(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let (exchange, id) = match shared.session_call(&parts, Endpoint::IserverAccounts) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let now = Instant::now();
    let (gate, view) = {
        let mut sessions = lock(&shared.sessions);
        (sessions.iserver(id, now), sessions.view(id, now))
    };
    let refusal = |status: StatusCode, error: &str| {
        shared.answer(&exchange, status, Some(error), error_json(status, error))
    };
    match (gate, view) {
        (Iserver::Ok, Some(view)) => {
            let answer = iserver_accounts_answer(&view.username, &view.name);
            shared.answer(&exchange, StatusCode::OK, None, ok_json(&answer))
        }
        (Iserver::Unavailable, _) => unavailable(&shared, &exchange),
        (Iserver::QueryAccountsFirst, _) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Please query /accounts first",
        ),
        (Iserver::NoBridge, _) | (Iserver::Ok, None) => {
            refusal(StatusCode::BAD_REQUEST, "Bad Request: no bridge")
        }
    }
}
