//! The echo checks: `GET /gw/api/v1/echo/https` with the token (scope `echo.read`) and `POST
//! /gw/api/v1/echo/signed-jwt` with a body signed by the client's key (scope `echo.write`),
//! through the SDK's [`ApiClient`].

use ibkr_oauth::api::{ApiClient, ECHO_HTTPS_PATH, ECHO_SIGNED_JWT_PATH};
use ibkr_oauth::models::EchoResponse;
use ibkr_oauth::{FixedToken, Signer, Token};

use super::hints;
use super::report::{Check, Report};
use crate::config::Settings;
use crate::error::Error;
use crate::exit;

/// The scope `echo/https` needs.
pub const ECHO_READ: &str = "echo.read";
/// The scope `echo/signed-jwt` needs.
pub const ECHO_WRITE: &str = "echo.write";

/// The request or trace id header of the response behind `error` (`x-request-id: ...`), if
/// the server sent one.
pub fn request_id(error: &ibkr_oauth::Error) -> Option<String> {
    error.response().and_then(|r| r.request_id.clone())
}

/// Runs the echo checks the token's scopes allow, with the token as it was granted.
pub async fn checks(report: &mut Report, settings: &Settings, signer: &Signer, token: Token) {
    let granted: Vec<String> = token.scopes().map(str::to_owned).collect();
    let has = |scope: &str| granted.iter().any(|g| g == scope);
    let api = ApiClient::builder(FixedToken::new(token))
        .base_url(settings.base_url())
        .timeout(settings.timeout())
        .build();
    let api = match api {
        Ok(api) => api,
        Err(error) => {
            let error = Error::from(error);
            for name in ["echo/https", "echo/signed-jwt"] {
                report.push(Check::failed(
                    name,
                    exit::code(&error),
                    exit::one_line(&error.to_string()),
                ));
            }
            return;
        }
    };
    let url = |path: &str| format!("{}{path}", settings.base_url().trim_end_matches('/'));

    if has(ECHO_READ) {
        let outcome = api.echo_https().await;
        report.push(check(
            "echo/https",
            &format!("GET {}", url(ECHO_HTTPS_PATH)),
            ECHO_READ,
            outcome,
        ));
    } else {
        report.push(not_granted("echo/https", ECHO_READ));
    }
    if has(ECHO_WRITE) {
        let outcome = api.echo_signed_jwt(signer).await;
        let what = format!(
            "POST {} (a body signed with the key)",
            url(ECHO_SIGNED_JWT_PATH)
        );
        report.push(check("echo/signed-jwt", &what, ECHO_WRITE, outcome));
    } else {
        report.push(not_granted("echo/signed-jwt", ECHO_WRITE));
    }
}

fn check(
    name: &'static str,
    what: &str,
    scope: &str,
    outcome: Result<EchoResponse, ibkr_oauth::Error>,
) -> Check {
    match outcome {
        Ok(echo) => Check::passed(
            name,
            format!(
                "{what} answered: requestMethod {:?}, securityPolicy {:?}",
                echo.request_method, echo.security_policy
            ),
        ),
        Err(error) => {
            let hint = hints::echo(&error, scope);
            let id = request_id(&error);
            let error = Error::from(error);
            let check = Check::failed(name, exit::code(&error), exit::one_line(&error.to_string()))
                .request_id(id);
            match hint {
                Some(hint) => check.hint(hint),
                None => check,
            }
        }
    }
}

fn not_granted(name: &'static str, scope: &str) -> Check {
    Check::skipped(name, format!("{scope} not granted")).hint(format!(
        "ask for it (--scope \"{ECHO_READ} {ECHO_WRITE}\") to check the token against IBKR's API"
    ))
}
