//! `ibkr-oauth session open|status|keep|logout`: IBKR's SSO and brokerage session through the
//! SDK's [`Session`].
//!
//! `open` and `keep` open one with the client settings (as `token`) plus the username
//! (`--username`, `IBKR_USERNAME`) and the public IP (`--ip`, `IBKR_SESSION_IP`). `open` leaves
//! it open at IBKR when it exits (the SSO token, with `--raw`, is what `status` and `logout` take
//! from `IBKR_SSO_TOKEN`); `keep` holds it open in the foreground, one line per state change,
//! and logs out on Ctrl-C or SIGTERM.

use std::io::Write;
use std::time::Duration;

use ibkr_oauth::ExposeSecret;
use ibkr_oauth::middleware::SessionAuth;
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::session::{
    FixedSession, Session, SessionStatus, SsoToken, parse_tickle, parse_validate,
};
use ibkr_oauth::{Config, SecretString};

use super::emit;
use super::sandbox::StopSignals;
use crate::cli::{OpenArgs, SessionAction, SessionArgs, SessionTokenArgs};
use crate::config::{Settings, USER_AGENT};
use crate::error::Error;
use crate::output::LocalTime;

/// The variable `status` and `logout` read the SSO token from.
pub const SSO_TOKEN_VAR: &str = "IBKR_SSO_TOKEN";

/// Runs one `session` subcommand.
///
/// # Errors
/// Configuration errors before any I/O; the session's errors after.
pub async fn run(args: &SessionArgs, local: &LocalTime, out: &mut dyn Write) -> Result<(), Error> {
    match &args.action {
        SessionAction::Open(open_args) => open(open_args, out).await,
        SessionAction::Keep(open_args) => keep(open_args, local, out).await,
        SessionAction::Status(token_args) => status(token_args, out).await,
        SessionAction::Logout(token_args) => logout(token_args, out).await,
    }
}

/// The session of `args`, not opened yet.
fn build(args: &OpenArgs) -> Result<Session, Error> {
    let mut settings = Settings::new(&args.signer, Some(&args.request))?
        .with_session(args.username.as_deref(), args.ip.as_deref());
    let config = settings
        .session_config()?
        .brokerage(args.brokerage)
        .tickle_interval(Duration::from_secs(args.tickle_interval))
        .build()
        .map_err(|e| Error::Sdk(e.into()))?;
    let signer = settings.signer()?;
    let tokens = TokenProvider::builder(settings.client()?, signer.clone())
        .scope(settings.scope().unwrap_or("sso-sessions.write"))
        .build()?;
    Session::builder(tokens, signer, config)
        .base_url(settings.base_url())
        .timeout(settings.timeout())
        .build()
        .map_err(|e| Error::Sdk(e.into()))
}

async fn open(args: &OpenArgs, out: &mut dyn Write) -> Result<(), Error> {
    let session = build(args)?;
    let status = session.open().await?;
    if args.raw {
        let token = session.sso_token().await?;
        emit(out, &format!("{}\n", token.secret().expose_secret()))?;
    } else {
        let validation = session.validate().await?;
        emit(
            out,
            &format!(
                "SSO session open at {} ({})\n  user:       {}\n  IP:         {}\n  expires in: {} if idle\n\
                 Use it: IBKR_SSO_TOKEN=$(ibkr-oauth session open --raw); hold it open: ibkr-oauth session keep\n",
                session.base_url(),
                describe(&status),
                validation.user_name.as_deref().unwrap_or("-"),
                validation.ip.as_deref().unwrap_or("-"),
                validation
                    .expires
                    .map_or_else(|| "-".to_owned(), crate::output::duration),
            ),
        )?;
    }
    // Left open at IBKR: dropping the handle would log it out; the keeper ends with the process.
    std::mem::forget(session);
    Ok(())
}

async fn keep(args: &OpenArgs, local: &LocalTime, out: &mut dyn Write) -> Result<(), Error> {
    let session = build(args)?;
    let stop = StopSignals::listen()?;
    let mut stop = std::pin::pin!(stop.wait());
    let mut changes = session.watch();
    let line = |status: &SessionStatus| {
        format!(
            "{} {}\n",
            local.format(status.since).unwrap_or_else(|| "-".to_owned()),
            describe(status)
        )
    };
    let opened = tokio::select! {
        opened = session.open() => opened,
        () = &mut stop => {
            emit(out, "stopped before the session opened\n")?;
            return Ok(());
        }
    };
    let status = opened?;
    changes.mark_unchanged();
    emit(out, &line(&status))?;
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                let status = changes.borrow_and_update().clone();
                emit(out, &line(&status))?;
            }
            () = &mut stop => break,
        }
    }
    match session.close().await {
        Ok(()) => emit(out, "logged out\n"),
        Err(e) => emit(out, &format!("closed; the logout failed: {e}\n")),
    }
}

/// `brokerage`, `no bridge (reason)`, `read-only, stale (reason)`.
fn describe(status: &SessionStatus) -> String {
    let mut text = status.state.to_string();
    if status.stale {
        text.push_str(", stale");
    }
    if let Some(reason) = &status.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

/// A client whose `/v1/api` calls carry the SSO token of `IBKR_SSO_TOKEN`.
fn token_client(
    args: &SessionTokenArgs,
) -> Result<(reqwest_middleware::ClientWithMiddleware, String), Error> {
    let token = std::env::var(SSO_TOKEN_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "no SSO token: set {SSO_TOKEN_VAR}, e.g. {SSO_TOKEN_VAR}=$(ibkr-oauth session open --raw)"
            ))
        })?;
    let mut config = Config::from_env()?;
    if let Some(url) = &args.base_url {
        config = config.base_url(url);
    }
    let base_url = config.get_base_url().trim_end_matches('/').to_owned();
    let source = FixedSession::new(SsoToken::new(SecretString::from(token.trim().to_owned())));
    let auth = SessionAuth::new(source, &base_url).map_err(|e| Error::Sdk(e.into()))?;
    let http = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(Duration::from_secs(args.timeout))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Config(format!("could not build the HTTP client: {e}")))?;
    Ok((
        reqwest_middleware::ClientBuilder::new(http)
            .with(auth)
            .build(),
        base_url,
    ))
}

/// One call with the SSO token: the body of a 200, else an error saying what to do.
async fn call(request: reqwest_middleware::RequestBuilder, what: &str) -> Result<Vec<u8>, Error> {
    let response = request.send().await.map_err(|e| {
        Error::Session(format!(
            "{what}: no answer ({e}); check the base URL and retry"
        ))
    })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::Session(format!("{what}: the answer broke off ({e}); retry")))?;
    if status.as_u16() == 401 {
        return Err(Error::SessionEnded(format!(
            "{what}: 401, the SSO session has ended; open a new one with `ibkr-oauth session open`"
        )));
    }
    if !status.is_success() {
        return Err(Error::SessionEnded(format!(
            "{what}: HTTP {status}; check the session with `ibkr-oauth doctor`"
        )));
    }
    Ok(body.to_vec())
}

async fn status(args: &SessionTokenArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (client, base_url) = token_client(args)?;
    let body = call(
        client.get(format!("{base_url}/v1/api/sso/validate")),
        "sso/validate",
    )
    .await?;
    let validation = parse_validate(&body)
        .map_err(|e| Error::Session(format!("sso/validate: the answer is {e}")))?;
    let body = call(client.post(format!("{base_url}/v1/api/tickle")), "tickle").await?;
    let tickle =
        parse_tickle(&body).map_err(|e| Error::Session(format!("tickle: the answer is {e}")))?;
    let brokerage = match (&tickle.error, &tickle.brokerage) {
        (Some(error), _) => format!("unknown (tickle not processed: {error})"),
        (None, Some(b)) if b.authenticated => "open".to_owned(),
        (None, Some(b)) if b.competing => "held by another session (competing)".to_owned(),
        _ => "not open (`ibkr-oauth session open --brokerage`, or any /iserver call through the SDK, opens it)".to_owned(),
    };
    emit(
        out,
        &format!(
            "SSO session at {base_url}: {}\n  user:       {}\n  IP:         {}\n  expires in: {} if idle\n  brokerage:  {brokerage}\n",
            if validation.valid {
                "valid"
            } else {
                "not valid"
            },
            validation.user_name.as_deref().unwrap_or("-"),
            validation.ip.as_deref().unwrap_or("-"),
            validation
                .expires
                .or(tickle.sso_expires)
                .map_or_else(|| "-".to_owned(), crate::output::duration),
        ),
    )
}

async fn logout(args: &SessionTokenArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (client, base_url) = token_client(args)?;
    call(client.post(format!("{base_url}/v1/api/logout")), "logout").await?;
    emit(
        out,
        &format!("logged out of the SSO session at {base_url}\n"),
    )
}
