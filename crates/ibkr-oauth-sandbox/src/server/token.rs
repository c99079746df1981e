//! `POST /oauth2/api/v1/token`: faults first, then the checks, then a token.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::shared::{BodyRead, Shared, close_connection};
use crate::log::{Endpoint, MAX_DECODED_ASSERTION_BYTES, RecordedForm, bounded};
use crate::protocol::fields;
use crate::verify::{self, Refusal, form, jws};
use crate::{Fault, response};

pub(super) async fn token_endpoint(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut entry = shared.arrival(&parts, Endpoint::Token);
    let body = match shared.read_body(&parts.headers, body).await {
        BodyRead::Read(body) => body,
        BodyRead::Shutdown => return close_connection(),
    };
    let content_type = entry.content_type.clone();
    let is_form = content_type
        .as_deref()
        .is_some_and(verify::is_form_content_type);
    // Empty when not a form (the checks then refuse the content type); `Err`: a malformed form.
    let mut parsed = Ok(Vec::new());
    if let Ok(bytes) = &body {
        entry.body_len = Some(bytes.len());
        if is_form {
            parsed = form::parse_form(bytes);
        }
    }
    if let Ok(fields) = &parsed {
        entry.form = RecordedForm::from_fields(fields);
        if let Some((_, assertion)) = fields
            .iter()
            .find(|(k, _)| k == fields::CLIENT_ASSERTION)
            .filter(|(_, assertion)| assertion.len() <= MAX_DECODED_ASSERTION_BYTES)
        {
            (entry.assertion_header, entry.assertion_claims) = jws::peek(assertion);
            entry.kid = jws::member(entry.assertion_header.as_ref(), "kid").map(bounded);
            entry.client_id = jws::member(entry.assertion_claims.as_ref(), "iss").map(bounded);
        }
    }
    let fault = shared.next_fault();
    entry.fault.clone_from(&fault);
    let exchange = shared.record(entry);

    match fault {
        None => {}
        Some(Fault::ServerError) => {
            return shared.refuse(
                &exchange,
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected fault: the sandbox was told to fail this request",
            );
        }
        Some(Fault::TooManyRequests { retry_after }) => {
            let secs = retry_after
                .as_secs()
                .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
            let detail = format!("injected fault: too many requests; retry after {secs} seconds");
            let response = response::too_many_requests(secs, &detail);
            return shared.answer(
                &exchange,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&detail),
                response,
            );
        }
        Some(Fault::CloseConnection) => return shared.close(&exchange),
        Some(Fault::StallForever) => {
            shared.until_shutdown().await;
            return shared.close(&exchange);
        }
        Some(Fault::Stall(delay)) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.until_shutdown() => return shared.close(&exchange),
            }
        } // `Fault` is non-exhaustive only for users; every variant is handled above.
    }

    if let Err(detail) = body {
        return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail);
    }
    let form = match parsed {
        Ok(form) => form,
        Err(detail) => return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail),
    };
    let now = shared.clock.unix_secs();
    let grant = match verify::check(&shared.config, now, content_type.as_deref(), &form)
        .and_then(|grant| shared.remember_jti(&grant, now).map(|()| grant))
    {
        Ok(grant) => grant,
        Err(Refusal(detail)) => {
            return shared.refuse(&exchange, StatusCode::BAD_REQUEST, &detail);
        }
    };
    let scope = (!grant.scopes.is_empty()).then(|| grant.scopes.join(" "));
    let expires_in = shared.config.expires_in_secs;
    let serial = shared.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
    match shared
        .minter
        .mint(&grant.client_id, scope.as_deref(), now, expires_in, serial)
    {
        Some(token) => {
            let response = response::token(&token, scope.as_deref(), expires_in);
            shared.answer(&exchange, StatusCode::OK, None, response)
        }
        None => shared.refuse(
            &exchange,
            StatusCode::INTERNAL_SERVER_ERROR,
            "access token: could not be signed (no randomness for its jti)",
        ),
    }
}
