//! The session checks, run when a username is given (`--username`, `IBKR_USERNAME`): an SSO
//! session opened with the token (`sso-sessions`), `sso/validate` echoing the username and IP
//! back, the brokerage session (`ssodh/init`), and whether another session competes for it.
//! The session is logged out at the end.

use ibkr_oauth::session::{Compete, Session, SessionError};
use ibkr_oauth::{FixedToken, Signer, Token};

use super::echo::request_id;
use super::report::{Check, Report};
use crate::config::Settings;
use crate::error::Error;
use crate::exit;

/// The scope an SSO session needs.
pub const SSO_SCOPE: &str = "sso-sessions.write";

/// The names of the session checks, in order.
pub const NAMES: [&str; 4] = ["sso-sessions", "sso/validate", "brokerage", "competing"];

/// Whether the session checks run: a username was given.
pub fn wanted(settings: &Settings) -> bool {
    settings.username().is_some()
}

/// Runs the session checks with `token`.
pub async fn checks(report: &mut Report, settings: &Settings, signer: &Signer, token: Token) {
    let skip_after = |report: &mut Report, done: usize, because: &str| {
        for name in NAMES.iter().skip(done) {
            report.push(Check::skipped(
                name,
                format!("needs the {because} check to pass"),
            ));
        }
    };
    if !token.scopes().any(|s| s == SSO_SCOPE) {
        report.push(
            Check::failed(
                "sso-sessions",
                exit::REFUSED,
                format!("the token was not granted {SSO_SCOPE}"),
            )
            .hint(format!(
                "ask for it (--scope \"{SSO_SCOPE}\"); IBKR must grant it to this client"
            )),
        );
        skip_after(report, 1, "sso-sessions");
        return;
    }
    let config = match settings.session_config() {
        Ok(builder) => builder.compete(Compete::Never).build(),
        Err(error) => {
            report.push(failure("sso-sessions", &error, "set the variable it names"));
            skip_after(report, 1, "sso-sessions");
            return;
        }
    };
    let session = config.map_err(|e| Error::Sdk(e.into())).and_then(|config| {
        Session::builder(FixedToken::new(token), signer.clone(), config)
            .base_url(settings.base_url())
            .timeout(settings.timeout())
            .build()
            .map_err(|e| Error::Sdk(e.into()))
    });
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            report.push(failure("sso-sessions", &error, "fix the setting it names"));
            skip_after(report, 1, "sso-sessions");
            return;
        }
    };
    let url = format!(
        "{}/gw/api/v1/sso-sessions",
        settings.base_url().trim_end_matches('/')
    );
    if let Err(error) = session.open().await {
        let hint = match status_of(&error) {
            Some(401) => "the access token was refused: get a new one (`ibkr-oauth token`)",
            Some(403) => "the token lacks sso-sessions.write: ask IBKR to grant it to this client",
            Some(400) => {
                "IBKR refused the signed body: check IBKR_USERNAME (your IBKR username), \
                 IBKR_SESSION_IP (the public IP IBKR sees) and that the key is the registered one"
            }
            _ => "IBKR did not open a session: retry; if it persists, quote the request id to IBKR",
        };
        let id = request_id(&error);
        report.push(failure("sso-sessions", &Error::from(error), hint).request_id(id));
        skip_after(report, 1, "sso-sessions");
        return;
    }
    report.push(Check::passed(
        "sso-sessions",
        format!("POST {url} opened an SSO session"),
    ));
    report.push(validate_check(&session, settings).await);
    brokerage_checks(report, &session).await;
    // Logged out: the doctor leaves nothing open at IBKR.
    let _ = session.close().await;
}

async fn validate_check(session: &Session, settings: &Settings) -> Check {
    let validation = match session.validate().await {
        Ok(validation) => validation,
        Err(error) => {
            let id = request_id(&error);
            return failure(
                "sso/validate",
                &Error::from(error),
                "the session did not validate: open a new one (`ibkr-oauth session open`)",
            )
            .request_id(id);
        }
    };
    let user = validation.user_name.as_deref().unwrap_or("-");
    let ip = validation.ip.as_deref().unwrap_or("-");
    let detail = format!("IBKR echoed back user {user:?} and IP {ip:?}");
    let wanted_user = settings.username().unwrap_or_default();
    let wanted_ip = settings.session_ip().unwrap_or_default();
    if !validation.valid {
        return Check::failed(
            "sso/validate",
            exit::REFUSED,
            format!("RESULT false; {detail}"),
        )
        .hint("the session is not valid: open a new one (`ibkr-oauth session open`)");
    }
    if !user.eq_ignore_ascii_case(wanted_user) {
        return Check::failed("sso/validate", exit::REFUSED, detail).hint(format!(
            "the session is for another user than {wanted_user:?}: check IBKR_USERNAME"
        ));
    }
    if ip != "-" && ip != wanted_ip {
        return Check::failed("sso/validate", exit::REFUSED, detail).hint(format!(
            "IBKR bound the session to another IP than {wanted_ip:?}: set IBKR_SESSION_IP to \
             the public IP IBKR sees"
        ));
    }
    Check::passed("sso/validate", detail)
}

async fn brokerage_checks(report: &mut Report, session: &Session) {
    match session.open_brokerage().await {
        Ok(_) => {
            report.push(Check::passed(
                "brokerage",
                "ssodh/init opened the brokerage session (/iserver calls work)",
            ));
            report.push(Check::passed("competing", "no other session holds it"));
        }
        Err(ibkr_oauth::Error::Session(e)) if matches!(*e, SessionError::Competing { .. }) => {
            report.push(Check::skipped(
                "brokerage",
                "another session holds it (see competing)",
            ));
            report.push(
                Check::failed("competing", exit::REFUSED, e.to_string()).hint(
                    "another session holds the brokerage session (TWS, the mobile app, another \
                     program): log out there, or let this one take it over (compete)",
                ),
            );
        }
        Err(error) => {
            let id = request_id(&error);
            report.push(
                failure(
                    "brokerage",
                    &Error::from(error),
                    "the brokerage session did not open: `failed to generate sso dh token` is \
                     common on new accounts (retry later, or ask IBKR); inside the nightly reset \
                     retry after it",
                )
                .request_id(id),
            );
            report.push(Check::skipped("competing", "needs the brokerage check"));
        }
    }
}

fn status_of(error: &ibkr_oauth::Error) -> Option<u16> {
    error.response().map(|r| r.status.as_u16())
}

fn failure(name: &'static str, error: &Error, hint: &str) -> Check {
    Check::failed(name, exit::code(error), exit::one_line(&exit::chain(error))).hint(hint)
}
