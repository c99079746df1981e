//! The SDK's `Session` against the sandbox, end to end and in tokio's paused time (the keeper's
//! minutes pass without waiting): every fault the sandbox injects is healed, or reported with
//! its kind for a competing login, and a `/v1/api` call through the session middleware answers.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ibkr_oauth::middleware::SessionAuth;
use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::session::{
    Compete, IpResolver, ResetWindow, Session, SessionConfig, SessionConfigBuilder, SessionError,
    SessionState, SessionStatus,
};
use ibkr_oauth::{Algorithm, Error, ErrorKind, PrivateKey, Signer, TokenClient};
use ibkr_oauth_sandbox::{
    Endpoint, ISERVER_ACCOUNTS_PATH, PORTFOLIO_ACCOUNTS_PATH, RegisteredClient, RunningSandbox,
    Sandbox, SessionFault,
};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;

const CLIENT: &str = "e2e-session-client";
const KID: &str = "main";
const USER: &str = "e2euser1";
const IP: &str = "203.0.113.7";
/// The keeper's tickle interval in these tests (IBKR's is 60 s; paused time skips it).
const TICKLE: Duration = Duration::from_secs(10);
/// Long enough for any healing here, in paused time: a hang fails the test, it does not stall.
const PATIENCE: Duration = Duration::from_secs(3600);

struct Env {
    sandbox: RunningSandbox,
    tokens: TokenProvider,
    signer: Signer,
}

async fn env_with(idle_timeout: Duration) -> Env {
    let key = PrivateKey::generate(Algorithm::ES256).expect("key");
    let sandbox = Sandbox::builder()
        .client(RegisteredClient::new(CLIENT).key(KID, key.public_key_pem()))
        .session_idle_timeout(idle_timeout)
        .start()
        .await
        .expect("sandbox");
    let client = TokenClient::builder()
        .base_url(sandbox.base_url())
        .build()
        .expect("token client");
    let signer = Signer::builder(CLIENT, KID, key).build().expect("signer");
    let tokens = TokenProvider::builder(client, signer.clone())
        .scope("sso-sessions.write")
        .build()
        .expect("provider");
    Env {
        sandbox,
        tokens,
        signer,
    }
}

async fn env() -> Env {
    env_with(Duration::from_secs(6 * 60)).await
}

fn config() -> SessionConfigBuilder {
    SessionConfig::builder(USER)
        .brokerage(true)
        .tickle_interval(TICKLE)
        .reset_window(ResetWindow::none())
}

fn session(env: &Env, config: SessionConfigBuilder) -> Session {
    Session::builder(
        env.tokens.clone(),
        env.signer.clone(),
        config.build().expect("config"),
    )
    .base_url(env.sandbox.base_url())
    .backoff(Duration::from_secs(1), Duration::from_secs(8))
    .build()
    .expect("session")
}

fn api(env: &Env, session: &Session) -> ClientWithMiddleware {
    let auth = SessionAuth::new(session.clone(), &env.sandbox.base_url()).expect("middleware");
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build()
}

async fn get(env: &Env, api: &ClientWithMiddleware, path: &str) -> (u16, Value) {
    let response = api.get(env.sandbox.url(path)).send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits (in paused time: the keeper runs meanwhile) until the status satisfies `done`.
async fn until(session: &Session, done: impl Fn(&SessionStatus) -> bool) -> SessionStatus {
    let mut changes = session.watch();
    let waited = tokio::time::timeout(PATIENCE, async {
        changes.wait_for(|s| done(s)).await.map(|s| s.clone())
    })
    .await;
    match waited {
        Ok(Ok(status)) => status,
        _ => panic!("the session never got there; it is {:?}", session.status()),
    }
}

fn in_state(state: SessionState) -> impl Fn(&SessionStatus) -> bool {
    move |s| s.state == state && !s.stale
}

fn count(env: &Env, endpoint: Endpoint) -> usize {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .count()
}

fn statuses(env: &Env, endpoint: Endpoint) -> Vec<Option<u16>> {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .map(|r| r.status())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn opens_the_brokerage_session_and_keeps_it_through_idle_minutes() {
    let env = env_with(Duration::from_secs(30)).await;
    let session = session(&env, config().ip(IP));
    assert_eq!(
        session.open().await.expect("open").state,
        SessionState::Brokerage
    );
    let validation = session.validate().await.expect("validate");
    assert_eq!(validation.user_name.as_deref(), Some(USER));
    assert_eq!(validation.ip.as_deref(), Some(IP));

    // Ten minutes of tickles every 10 s keep a session whose idle timeout is 30 s.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(session.status().state, SessionState::Brokerage);
    assert_eq!(count(&env, Endpoint::SsoSessions), 1, "never re-opened");
    assert!(count(&env, Endpoint::Tickle) >= 50);
    let api = api(&env, &session);
    let (status, accounts) = get(&env, &api, ISERVER_ACCOUNTS_PATH).await;
    assert_eq!(status, 200, "{accounts}");
    session.close().await.expect("logout");
    assert_eq!(session.status().state, SessionState::Closed);
    assert_eq!(statuses(&env, Endpoint::Logout), [Some(200)]);
    assert_eq!(env.sandbox.open_sessions(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_expired_session_is_opened_again() {
    // The keeper tickles every 10 s; the sandbox ends sessions idle for 5 s: each tickle finds
    // the session gone (401) and opens a new one.
    let env = env_with(Duration::from_secs(5)).await;
    let session = session(&env, config().ip(IP));
    session.open().await.expect("open");
    tokio::time::sleep(TICKLE * 3).await;
    let tickles = statuses(&env, Endpoint::Tickle);
    assert!(tickles.contains(&Some(401)), "{tickles:?}");
    assert!(count(&env, Endpoint::SsoSessions) >= 2);
    until(&session, in_state(SessionState::Brokerage)).await;
    let (status, _) = get(&env, &api(&env, &session), ISERVER_ACCOUNTS_PATH).await;
    assert_eq!(status, 200);
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_is_healed_by_a_call_or_by_the_keeper() {
    let env = env().await;
    let session = session(&env, config().ip(IP));
    session.open().await.expect("open");
    let api = api(&env, &session);

    // A call meets the 401 first: the middleware opens a new SSO session and retries once.
    env.sandbox
        .inject_session_fault(SessionFault::ExpireSessions);
    let (status, accounts) = get(&env, &api, PORTFOLIO_ACCOUNTS_PATH).await;
    assert_eq!(status, 200, "{accounts}");
    assert!(accounts[0]["accountId"].as_str().unwrap().starts_with("DU"));
    assert_eq!(
        statuses(&env, Endpoint::PortfolioAccounts),
        [Some(401), Some(200)]
    );
    assert_eq!(count(&env, Endpoint::SsoSessions), 2);

    // The keeper meets it first: its tickle gets the 401 and opens a new one.
    env.sandbox
        .inject_session_fault(SessionFault::ExpireSessions);
    tokio::time::sleep(TICKLE * 2).await;
    assert_eq!(count(&env, Endpoint::SsoSessions), 3);
    until(&session, in_state(SessionState::Brokerage)).await;
    assert_eq!(get(&env, &api, ISERVER_ACCOUNTS_PATH).await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn a_refused_access_token_is_replaced_when_the_session_is_reopened() {
    let env = env().await;
    let session = session(&env, config().ip(IP));
    session.open().await.expect("open");
    env.sandbox.revoke_all_tokens();
    env.sandbox
        .inject_session_fault(SessionFault::ExpireSessions);
    let (status, _) = get(&env, &api(&env, &session), PORTFOLIO_ACCOUNTS_PATH).await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&env, Endpoint::SsoSessions),
        [Some(200), Some(401), Some(200)],
        "the revoked token's 401, then a new token"
    );
    assert_eq!(env.sandbox.tokens_issued(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_competing_login_is_reported_with_its_kind() {
    let env = env().await;
    let session = session(&env, config().ip(IP).compete(Compete::Never));
    session.open().await.expect("open");
    env.sandbox
        .inject_session_fault(SessionFault::CompetingLogin);
    let status = until(&session, |s| s.state == SessionState::Competing).await;
    assert!(status.reason.is_some());
    // Never taken over: the sandbox saw no ssodh/init with compete true after the login.
    tokio::time::sleep(TICKLE * 5).await;
    assert_eq!(session.status().state, SessionState::Competing);
    assert!(!env.sandbox.brokerage_session_open(USER));
    let error = session.open_brokerage().await.expect_err("competing");
    assert_eq!(error.kind(), ErrorKind::Session);
    assert!(
        matches!(&error, Error::Session(e) if matches!(**e, SessionError::Competing { .. })),
        "{error:?}"
    );
    // The SSO session itself still works.
    let (status, _) = get(&env, &api(&env, &session), PORTFOLIO_ACCOUNTS_PATH).await;
    assert_eq!(status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_competing_login_is_taken_over_when_the_policy_says_always() {
    let env = env().await;
    let session = session(&env, config().ip(IP).compete(Compete::Always));
    session.open().await.expect("open");
    env.sandbox
        .inject_session_fault(SessionFault::CompetingLogin);
    tokio::time::sleep(TICKLE * 2).await;
    until(&session, in_state(SessionState::Brokerage)).await;
    assert!(env.sandbox.brokerage_session_open(USER));
    assert_eq!(
        get(&env, &api(&env, &session), ISERVER_ACCOUNTS_PATH)
            .await
            .0,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn no_bridge_is_healed_by_the_middleware_and_by_the_keeper() {
    let env = env().await;
    // Read-only at first: the first /iserver call meets `no bridge` and opens it.
    let session = session(&env, config().ip(IP).brokerage(false));
    assert_eq!(
        session.open().await.expect("open").state,
        SessionState::ReadOnly
    );
    let api = api(&env, &session);
    assert_eq!(get(&env, &api, ISERVER_ACCOUNTS_PATH).await.0, 200);
    assert_eq!(
        statuses(&env, Endpoint::IserverAccounts),
        [Some(400), Some(200)]
    );
    assert_eq!(session.status().state, SessionState::Brokerage);

    // Lost later: the keeper's tickle sees it not authenticated and opens it again.
    env.sandbox.inject_session_fault(SessionFault::NoBridge);
    tokio::time::sleep(TICKLE * 2).await;
    until(&session, in_state(SessionState::Brokerage)).await;
    assert!(env.sandbox.brokerage_session_open(USER));
    assert_eq!(
        count(&env, Endpoint::SsoSessions),
        1,
        "the SSO session was kept"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_to_generate_sso_dh_token_is_retried_without_compete() {
    let env = env().await;
    env.sandbox
        .inject_session_fault(SessionFault::SsoDhTokenFailure { times: 1 });
    let session = session(&env, config().ip(IP));
    assert_eq!(
        session.open().await.expect("open").state,
        SessionState::Brokerage
    );
    assert_eq!(statuses(&env, Endpoint::SsoDhInit), [Some(500), Some(200)]);
    let init_bodies: Vec<_> = env
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::SsoDhInit)
        .map(|r| r.body_len)
        .collect();
    assert_eq!(init_bodies.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn staged_decay_is_healed_before_it_ends_the_session() {
    let env = env().await;
    let session = session(&env, config().ip(IP));
    session.open().await.expect("open");
    let api = api(&env, &session);
    env.sandbox.inject_session_fault(SessionFault::Decay);
    // The first stage reaches the caller as IBKR sends it.
    let (status, body) = get(&env, &api, ISERVER_ACCOUNTS_PATH).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("Please query /accounts first"))
    );
    // The keeper's tickles move it on; the one that says "not authenticated" re-opens the
    // brokerage session, which heals it, before the third stage's 401s.
    tokio::time::sleep(TICKLE * 4).await;
    until(&session, in_state(SessionState::Brokerage)).await;
    assert_eq!(get(&env, &api, ISERVER_ACCOUNTS_PATH).await.0, 200);
    assert_eq!(
        count(&env, Endpoint::SsoSessions),
        1,
        "healed without a new SSO session"
    );
    assert!(count(&env, Endpoint::SsoDhInit) >= 2);
}

/// A reset window around now, so that the keeper treats failures as expected.
fn window_around_now() -> ResetWindow {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute_of_day = (secs % 86_400) / 60;
    let start = (minute_of_day + 24 * 60 - 30) % (24 * 60);
    ResetWindow::daily_utc(
        u8::try_from(start / 60).unwrap(),
        u8::try_from(start % 60).unwrap(),
        Duration::from_secs(2 * 3600),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_nightly_reset_is_ridden_out_and_the_brokerage_session_reopened() {
    let env = env().await;
    let session = session(&env, config().ip(IP).reset_window(window_around_now()));
    session.open().await.expect("open");
    let api = api(&env, &session);
    env.sandbox
        .inject_session_fault(SessionFault::NightlyReset {
            lasts: Duration::from_secs(120),
        });
    let during = until(&session, |s| s.stale).await;
    assert!(
        during
            .reason
            .as_deref()
            .unwrap()
            .contains("failed to process request"),
        "{during:?}"
    );
    assert_eq!(
        get(&env, &api, PORTFOLIO_ACCOUNTS_PATH).await.0,
        200,
        "the SSO session is usable through the reset"
    );
    tokio::time::sleep(Duration::from_secs(150)).await;
    until(&session, in_state(SessionState::Brokerage)).await;
    assert_eq!(get(&env, &api, ISERVER_ACCOUNTS_PATH).await.0, 200);
    assert_eq!(count(&env, Endpoint::SsoSessions), 1);
}

/// The caller's public IP as a test changes it.
#[derive(Debug, Clone)]
struct SharedIp(Arc<Mutex<IpAddr>>);

#[async_trait::async_trait]
impl IpResolver for SharedIp {
    async fn public_ip(&self) -> Result<IpAddr, Error> {
        Ok(*self.0.lock().unwrap())
    }
}

#[tokio::test(start_paused = true)]
async fn an_ip_change_opens_a_session_for_the_new_ip() {
    let env = env().await;
    let ip = SharedIp(Arc::new(Mutex::new(IP.parse().unwrap())));
    let session = session(&env, config().ip_resolver(ip.clone()));
    session.open().await.expect("open");
    let new_ip: IpAddr = "198.51.100.23".parse().unwrap();
    *ip.0.lock().unwrap() = new_ip;
    env.sandbox
        .inject_session_fault(SessionFault::IpChange { new_ip });
    tokio::time::sleep(TICKLE * 2).await;
    until(&session, in_state(SessionState::Brokerage)).await;
    assert_eq!(count(&env, Endpoint::SsoSessions), 2);
    let validation = session.validate().await.expect("validate");
    assert_eq!(validation.ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(
        get(&env, &api(&env, &session), ISERVER_ACCOUNTS_PATH)
            .await
            .0,
        200
    );
}

/// The snippet of `crates/ibkr-oauth/examples/session.rs`, step for step, checked.
#[tokio::test]
async fn from_a_key_file_to_a_v1_api_answer() {
    let generated = PrivateKey::generate(Algorithm::ES256).unwrap();
    let key_file = std::env::temp_dir().join(format!("e2e-session-{}.pem", std::process::id()));
    std::fs::write(&key_file, generated.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let sandbox = Sandbox::builder()
        .client(RegisteredClient::new("example-client").key("main", generated.public_key_pem()))
        .start()
        .await
        .unwrap();

    let key = PrivateKey::from_pem_file(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let signer = Signer::builder("example-client", "main", key)
        .build()
        .unwrap();
    let tokens = TokenProvider::builder(
        TokenClient::builder()
            .base_url(sandbox.base_url())
            .build()
            .unwrap(),
        signer.clone(),
    )
    .scope("sso-sessions.write")
    .build()
    .unwrap();
    let config = SessionConfig::builder("exampleuser")
        .ip("203.0.113.7")
        .build()
        .unwrap();
    let session = Session::builder(tokens, signer, config)
        .base_url(sandbox.base_url())
        .build()
        .unwrap();
    let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SessionAuth::new(session.clone(), &sandbox.base_url()).unwrap())
        .build();

    let accounts: Value = api
        .get(format!("{}/v1/api/portfolio/accounts", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = accounts[0]["accountId"].as_str().unwrap().to_owned();
    assert_eq!(session.status().state, SessionState::ReadOnly);
    let tradable: Value = api
        .get(format!("{}/v1/api/iserver/accounts", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tradable["accounts"], serde_json::json!([account]));
    assert_eq!(session.status().state, SessionState::Brokerage);
    session.close().await.unwrap();
    assert_eq!(sandbox.open_sessions(), 0);
}
