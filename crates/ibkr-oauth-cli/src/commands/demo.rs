//! `ibkr-oauth demo`: the whole flow with no IBKR account. It starts the sandbox in process,
//! registers a fresh key with it as one registers a key with IBKR, and gets tokens through the
//! SDK's [`TokenProvider`]: sign, request, cache hit, invalidation, a retried server error, and
//! a refusal; then the doctor, and a session with one `/v1/api` call through it. Every step is
//! printed; no secret is.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::middleware::SessionAuth;
use ibkr_oauth::provider::{RetryPolicy, TokenProvider};
use ibkr_oauth::session::{Session, SessionConfig};
use ibkr_oauth::{
    Config, ExposeSecret, PrivateKey, SecretString, Signer, Token, TokenClient, TokenRequest,
};
use ibkr_oauth_sandbox::{Fault, Outcome, RegisteredClient, RunningSandbox, Sandbox};

use super::{decode_jws, describe_key, doctor, emit};
use crate::cli::DemoArgs;
use crate::config::{Settings, USER_AGENT};
use crate::error::Error;
use crate::output::{self, LocalTime};

/// The demo's client id.
pub const CLIENT_ID: &str = "demo-client";
/// The demo's key id.
pub const KEY_ID: &str = "main";
/// The scope the demo asks for (the one IBKR's own clients ask for).
pub const SCOPE: &str = "sso-sessions.write";

/// Runs the demo, printing each step to `out`.
///
/// # Errors
/// Whatever fails along the way (none of it is expected: the sandbox runs in process), or
/// [`Error::Internal`] if the provider does not behave as documented.
pub async fn run(args: &DemoArgs, local: &LocalTime, out: &mut dyn Write) -> Result<(), Error> {
    emit(
        out,
        "ibkr-oauth demo: the whole token flow against a local sandbox of IBKR's token endpoint\n\n",
    )?;

    // 1. The key pair a client makes and registers with IBKR.
    let key = PrivateKey::generate(args.alg)?;
    step(
        out,
        1,
        &format!(
            "generated an {} key pair for {} (the private key stays in memory)",
            describe_key(&key),
            args.alg
        ),
    )?;

    // 2. The sandbox, with the public key registered under a kid.
    let registered = RegisteredClient::new(CLIENT_ID)
        .key_with_algorithm(KEY_ID, args.alg.as_str().parse()?, key.public_key_pem())
        .allowed_scopes([SCOPE, "echo.read", "echo.write"]);
    let sandbox = Sandbox::builder().client(registered).start().await?;
    step(
        out,
        2,
        &format!(
            "started the sandbox at {} and registered client {CLIENT_ID:?} with the public key \
             under kid {KEY_ID:?}, as you register a key with IBKR",
            sandbox.base_url()
        ),
    )?;

    // 3. One assertion, decoded: what every token request carries.
    // Kept for the doctor step, which reads the key as a user's setting (wiped on drop).
    let mut key_pem = Some(key.to_pkcs8_pem()?);
    let signer = Signer::builder(CLIENT_ID, KEY_ID, key)
        .algorithm(args.alg)
        .build()?;
    let assertion = signer.sign()?;
    let (header, claims) = decode_jws(assertion.expose_secret())?;
    step(
        out,
        3,
        &format!(
            "signed a client assertion: {}\n     header {header}\n     claims {claims}",
            output::secret(assertion.expose_secret(), false)
        ),
    )?;
    drop(assertion);

    // 4. The provider's first call: nothing cached, so it signs and asks.
    let client = TokenClient::builder()
        .base_url(sandbox.base_url())
        .user_agent(USER_AGENT)
        .build()?;
    let provider = TokenProvider::builder(client.clone(), signer.clone())
        .scope(SCOPE)
        .retry_policy(RetryPolicy::default().initial_backoff(Duration::from_millis(50)))
        .build()?;
    let first = provider.access_token().await?;
    step(
        out,
        4,
        &format!(
            "provider.access_token(): nothing cached, so it signed a fresh assertion and sent \
             it: POST {} -> {}\n{}",
            sandbox.token_url(),
            statuses(&sandbox, 1),
            output::token_summary(&first, false, local, "     ").trim_end()
        ),
    )?;

    // 5. The second call: the cached token, no request.
    let again = provider.access_token().await?;
    expect(
        Arc::ptr_eq(&first, &again) || same_token(&first, &again),
        "the second access_token() did not return the cached token",
    )?;
    expect(sandbox.request_count() == 1, "the cache hit sent a request")?;
    let claims = sandbox.verify_access_token(first.access_token().expose_secret())?;
    step(
        out,
        5,
        &format!(
            "provider.access_token() again: the same token from the cache, at once (the sandbox \
             still counts 1 request)\n     the sandbox verifies it as a resource server would: \
             signed by it, sub {:?}, scope {:?}, valid",
            claims.sub,
            claims.scope.as_deref().unwrap_or("")
        ),
    )?;

    // 6. The API said 401: invalidate, and the provider fetches a new token once.
    provider.invalidate(&first);
    let second = provider.access_token().await?;
    expect(
        !same_token(&first, &second),
        "invalidate() did not lead to a new token",
    )?;
    step(
        out,
        6,
        &format!(
            "provider.invalidate(&token), as after a 401 from the API: the provider fetched a \
             new, different token ({})",
            statuses(&sandbox, 1)
        ),
    )?;

    // 7. A server fault: the provider retries it with a fresh assertion.
    sandbox.inject_fault(Fault::ServerError, 1);
    provider.invalidate(&second);
    let third = provider.access_token().await?;
    expect(
        !same_token(&second, &third),
        "the retried fetch did not give a new token",
    )?;
    step(
        out,
        7,
        &format!(
            "the sandbox fails the next request with a 500 problem, and the token is \
             invalidated again: the provider retried with a fresh assertion after a short \
             backoff ({})",
            statuses(&sandbox, 2)
        ),
    )?;

    // 8. A refusal, as `ibkr-oauth token` reports it.
    let stranger = Signer::builder(CLIENT_ID, "retired-key", PrivateKey::generate(args.alg)?)
        .algorithm(args.alg)
        .build()?;
    let request = TokenRequest::builder()
        .assertion(stranger.sign()?)
        .scope(SCOPE)
        .build()?;
    let refusal = match client.request_token(&request).await {
        Err(error @ ibkr_oauth::Error::Problem { .. }) => error,
        Err(other) => return Err(other.into()),
        Ok(_) => {
            return Err(Error::Internal(
                "the sandbox accepted an assertion signed with an unregistered key".into(),
            ));
        }
    };
    step(
        out,
        8,
        &format!(
            "an assertion signed under an unregistered kid is refused with IBKR's problem \
             format:\n     {refusal}\n     (`ibkr-oauth token` prints such a refusal on stderr \
             and exits 3)"
        ),
    )?;

    // 9. The setup checker, as `ibkr-oauth doctor` runs it against IBKR.
    let pem = key_pem.take().unwrap_or_default();
    let config = Config::new()
        .client_id(CLIENT_ID)
        .key_id(KEY_ID)
        .private_key(SecretString::from(pem.as_str().to_owned()))
        .algorithm(args.alg.as_str())
        .scope(DOCTOR_SCOPES)
        .base_url(sandbox.base_url());
    let (report, base_url) = doctor::checks(Ok(Settings::from_config(config)), local).await;
    let text = report.text(&doctor::heading(&base_url));
    expect(
        report.first_failure().is_none(),
        &format!("doctor found a failure:\n{text}"),
    )?;
    step(
        out,
        9,
        &format!(
            "`ibkr-oauth doctor` checks a setup step by step (here the sandbox's, asking for \
             {DOCTOR_SCOPES:?}):\n{}",
            indent(&text)
        ),
    )?;

    // 10. The session on top of the token, and one /v1/api call through it.
    let (state, called) = session_step(&sandbox, provider, signer).await?;
    step(
        out,
        10,
        &format!(
            "opened an SSO session for {DEMO_USER:?} from {DEMO_IP} with the token (POST \
             {}/gw/api/v1/sso-sessions, a body signed with the key): state {state}\n     then \
             {called} through the session middleware; closed it (logout)",
            sandbox.base_url()
        ),
    )?;

    let requests = sandbox.request_count();
    let issued = sandbox.tokens_issued();
    sandbox.shutdown().await;
    emit(
        out,
        &format!(
            "\ndone: {requests} requests, {issued} tokens issued, no secret printed.\nNext: \
             `ibkr-oauth keygen` for your own key pair, register its public key with IBKR, then \
             `ibkr-oauth token`;\nor `ibkr-oauth sandbox` to develop against a local endpoint.\n"
        ),
    )
}

/// The IBKR username of the demo's session.
const DEMO_USER: &str = "demouser";
/// The public IP the demo's session is bound to (a documentation address).
const DEMO_IP: &str = "203.0.113.7";

/// Opens a session with the provider's tokens, makes one `/v1/api` call through the session
/// middleware, and closes the session. Returns the state after opening and what the call got.
async fn session_step(
    sandbox: &RunningSandbox,
    provider: TokenProvider,
    signer: Signer,
) -> Result<(String, String), Error> {
    let config = SessionConfig::builder(DEMO_USER)
        .ip(DEMO_IP)
        .build()
        .map_err(|e| Error::Sdk(e.into()))?;
    let session = Session::builder(provider, signer, config)
        .base_url(sandbox.base_url())
        .build()
        .map_err(|e| Error::Sdk(e.into()))?;
    let state = session.open().await?.state.to_string();
    let auth =
        SessionAuth::new(session.clone(), &sandbox.base_url()).map_err(|e| Error::Sdk(e.into()))?;
    let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let url = format!("{}/v1/api/portfolio/accounts", sandbox.base_url());
    let response = api
        .get(&url)
        .send()
        .await
        .map_err(|e| Error::Internal(format!("the sandbox did not answer {url}: {e}")))?;
    let status = response.status();
    let accounts: serde_json::Value = response
        .json()
        .await
        .map_err(|e| Error::Internal(format!("{url} did not answer JSON: {e}")))?;
    let account = accounts[0]["accountId"].as_str().unwrap_or("-").to_owned();
    expect(status.is_success(), &format!("{url} answered {status}"))?;
    session.close().await?;
    Ok((
        state,
        format!(
            "GET /v1/api/portfolio/accounts -> {} (account {account})",
            status.as_u16()
        ),
    ))
}

/// The scopes the doctor step asks for: both echo endpoints.
const DOCTOR_SCOPES: &str = "echo.read echo.write";

/// Each line indented for a step.
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes one numbered step.
fn step(out: &mut dyn Write, number: u32, text: &str) -> Result<(), Error> {
    emit(out, &format!("{number}. {text}\n"))
}

/// The statuses of the sandbox's last `count` requests: `500 then 200`.
fn statuses(sandbox: &RunningSandbox, count: usize) -> String {
    let requests = sandbox.requests();
    let start = requests.len().saturating_sub(count);
    requests
        .get(start..)
        .unwrap_or_default()
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Answered { status, .. } => status.to_string(),
            Outcome::ConnectionClosed => "connection closed".to_owned(),
            _ => "no answer".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" then ")
}

fn same_token(a: &Token, b: &Token) -> bool {
    a.access_token().expose_secret() == b.access_token().expose_secret()
}

/// Fails the demo with [`Error::Internal`] when the SDK does not do what it documents.
fn expect(holds: bool, what: &str) -> Result<(), Error> {
    if holds {
        Ok(())
    } else {
        Err(Error::Internal(format!("demo: {what}")))
    }
}
