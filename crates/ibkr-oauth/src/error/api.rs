//! [`ApiError`]: an IBKR Web API call (not the token request) refused or failed. The API's
//! refusal is not a token error, so it has its own type; [`Error::Api`] carries it. Public as
//! `ibkr_oauth::api::ApiError`; defined here so that `error` never imports `api`.

use std::sync::Arc;

use super::{ErrorKind, ResponseInfo, retry_hint, status_text};
use crate::problem::Problem;

#[cfg(doc)]
use super::Error;

/// An IBKR Web API call (not the token request) was refused or failed: a 4xx or 5xx, with
/// IBKR's problem document when it sent one, or a success body that is not what the spec
/// gives.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", message(path, problem.as_deref(), challenge.as_deref(), reason.as_deref(), response))]
#[non_exhaustive]
pub struct ApiError {
    /// The API path called (e.g. `/gw/api/v1/echo/https`).
    pub path: &'static str,
    /// The problem document of the refusal, if the body was one.
    pub problem: Option<Arc<Problem>>,
    /// The `WWW-Authenticate` challenge (sanitised): RFC 6750's `error="invalid_token"`
    /// or `error="insufficient_scope"`.
    pub challenge: Option<Arc<str>>,
    /// What is wrong with a success body, for a 2xx.
    pub reason: Option<Arc<str>>,
    /// The response's status and headers.
    pub response: Arc<ResponseInfo>,
}

impl ApiError {
    /// [`ErrorKind::InvalidResponse`] for a success body that is not usable, else
    /// [`ErrorKind::Refused`].
    pub fn kind(&self) -> ErrorKind {
        if self.response.status.is_success() {
            ErrorKind::InvalidResponse
        } else {
            ErrorKind::Refused
        }
    }
}

fn message(
    path: &str,
    problem: Option<&Problem>,
    challenge: Option<&str>,
    reason: Option<&str>,
    response: &ResponseInfo,
) -> String {
    let status = status_text(response.status);
    let mut text = match reason {
        Some(reason) => {
            format!("the IBKR API's answer to {path} ({status}) is not usable: {reason}")
        }
        None => format!("the IBKR API refused {path} ({status})"),
    };
    if let Some(problem) = problem {
        text.push_str(&format!(": {problem}"));
    }
    if let Some(challenge) = challenge {
        text.push_str(&format!(" [{challenge}]"));
    }
    text.push_str(match response.status.as_u16() {
        401 => "; the token was refused even after a fresh one: check the client's registration",
        403 => {
            "; the token lacks the scope this endpoint needs: ask for it (and have IBKR grant it)"
        }
        _ if reason.is_some() => "; check the API base URL",
        _ => "",
    });
    text.push_str(&retry_hint(response));
    if let Some(id) = &response.request_id {
        text.push_str(&format!(" ({id})"));
    }
    text
}
