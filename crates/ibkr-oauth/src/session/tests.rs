//! The session's healing against a scripted fake of IBKR's six calls, under tokio's paused
//! clock: every wait below is virtual time, exact and instant. The same paths over real HTTP
//! (mockito) are in `tests_http.rs`.
//! (Long on purpose: the scripted fake of the six calls, then one scenario per healing path;
//! policies and lifecycle are in `tests_lifecycle.rs`.)

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::answers::{BrokerageStatus, SsoValidation, TickleStatus};
use super::builder::Timing;
use super::calls::Calls;
use super::*;
use crate::clock::Clock;
use crate::error::{Error, ErrorKind};
use crate::response::ResponseInfo;
use crate::source::TokenSource;
use crate::token::Token;

/// What a scripted call answers.
#[derive(Clone)]
pub(super) enum Answer {
    Ok,
    Status(u16),
    Timeout,
    NotAuthenticated,
    Competing,
    TickleError,
}

pub(super) fn info(status: u16) -> Arc<ResponseInfo> {
    Arc::new(ResponseInfo {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: Some("application/json".into()),
        server_date: None,
        retry_after: None,
        request_id: Some("x-request-id: req-42".into()),
    })
}

fn refused(call: SessionCall, status: u16) -> SessionError {
    SessionError::Refused {
        call,
        detail: None,
        response: info(status),
    }
}

fn timeout(call: SessionCall) -> SessionError {
    SessionError::Transport {
        call,
        url: Arc::from("https://api.ibkr.com/x"),
        timeout: true,
        source: Arc::new(std::io::Error::other("timed out")),
    }
}

/// IBKR's six calls, scripted per call (a queue each; an empty queue answers `Ok`).
#[derive(Default)]
pub(super) struct Fake {
    pub(super) log: Mutex<Vec<&'static str>>,
    scripts: Mutex<std::collections::HashMap<&'static str, VecDeque<Answer>>>,
    issued: AtomicUsize,
    /// The access tokens create_sso was given.
    pub(super) access_seen: Mutex<Vec<String>>,
    /// The compete flags init was given.
    pub(super) competes: Mutex<Vec<bool>>,
    /// The IPs create_sso was given.
    pub(super) ips_seen: Mutex<Vec<IpAddr>>,
    /// How long create_sso takes (so that callers overlap).
    pub(super) create_delay: Mutex<Duration>,
}

impl Fake {
    pub(super) fn script(&self, call: &'static str, answers: &[Answer]) {
        self.scripts
            .lock()
            .unwrap()
            .entry(call)
            .or_default()
            .extend(answers.iter().cloned());
    }

    fn next(&self, call: &'static str) -> Answer {
        self.log.lock().unwrap().push(call);
        self.scripts
            .lock()
            .unwrap()
            .get_mut(call)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::Ok)
    }

    pub(super) fn count(&self, call: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == call)
            .count()
    }

    fn brokerage(answer: &Answer) -> BrokerageStatus {
        BrokerageStatus {
            authenticated: matches!(answer, Answer::Ok),
            competing: matches!(answer, Answer::Competing),
            connected: true,
            established: None,
            message: match answer {
                Answer::Competing => Some(Arc::from("competing session")),
                Answer::NotAuthenticated => Some(Arc::from("not authenticated")),
                _ => None,
            },
        }
    }
}

#[async_trait::async_trait]
impl Calls for Fake {
    async fn create_sso(&self, access: &Token, _: &str, ip: IpAddr) -> Result<SsoToken, Error> {
        self.ips_seen.lock().unwrap().push(ip);
        self.access_seen
            .lock()
            .unwrap()
            .push(access.access_token().expose_secret().to_owned());
        let delay = *self.create_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        match self.next("create") {
            Answer::Status(s) => Err(refused(SessionCall::CreateSso, s).into()),
            Answer::Timeout => Err(timeout(SessionCall::CreateSso).into()),
            _ => {
                let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(SsoToken::new(SecretString::from(format!("sso-{n}"))))
            }
        }
    }

    async fn validate(&self, _: &SsoToken) -> Result<SsoValidation, SessionError> {
        match self.next("validate") {
            Answer::Status(s) => Err(refused(SessionCall::Validate, s)),
            _ => Ok(SsoValidation {
                valid: true,
                ..SsoValidation::default()
            }),
        }
    }

    async fn init(&self, _: &SsoToken, compete: bool) -> Result<BrokerageStatus, SessionError> {
        self.competes.lock().unwrap().push(compete);
        match self.next("init") {
            Answer::Status(s) => Err(refused(SessionCall::BrokerageInit, s)),
            Answer::Timeout => Err(timeout(SessionCall::BrokerageInit)),
            other => Ok(Self::brokerage(&other)),
        }
    }

    async fn tickle(&self, _: &SsoToken) -> Result<TickleStatus, SessionError> {
        match self.next("tickle") {
            Answer::Status(s) => Err(refused(SessionCall::Tickle, s)),
            Answer::Timeout => Err(timeout(SessionCall::Tickle)),
            Answer::TickleError => Ok(TickleStatus {
                error: Some(Arc::from("failed to process request")),
                ..TickleStatus::default()
            }),
            other => Ok(TickleStatus {
                sso_expires: Some(Duration::from_secs(400)),
                brokerage: Some(Self::brokerage(&other)),
                error: None,
            }),
        }
    }

    async fn status(&self, _: &SsoToken) -> Result<BrokerageStatus, SessionError> {
        Ok(Self::brokerage(&self.next("status")))
    }

    async fn logout(&self, _: &SsoToken) -> Result<(), SessionError> {
        match self.next("logout") {
            Answer::Timeout => {
                std::future::pending::<()>().await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Access tokens "access-1", "access-2"...: the next one after each invalidation.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    generation: AtomicUsize,
    pub(super) invalidated: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenSource for Tokens {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        let n = self.generation.load(Ordering::SeqCst) + 1;
        Ok(Arc::new(
            Token::builder(SecretString::from(format!("access-{n}"))).build()?,
        ))
    }

    async fn invalidate(&self, _token: &Token) -> bool {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// A wall clock at a fixed time of day (for the reset window), moving with tokio's clock.
#[derive(Debug)]
pub(super) struct At {
    start: tokio::time::Instant,
    base: SystemTime,
}

impl At {
    /// `hh:mm` UTC on 2023-11-14.
    pub(super) fn utc(hour: u64, minute: u64) -> Arc<Self> {
        let midnight = 1_699_920_000; // 2023-11-14T00:00:00Z
        Arc::new(Self {
            start: tokio::time::Instant::now(),
            base: UNIX_EPOCH + Duration::from_secs(midnight + hour * 3600 + minute * 60),
        })
    }
}

impl Clock for At {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

pub(super) fn config(brokerage: bool, compete: Compete) -> SessionConfig {
    SessionConfig::builder("user1234")
        .ip("203.0.113.7")
        .brokerage(brokerage)
        .compete(compete)
        .build()
        .unwrap()
}

pub(super) fn session_with(
    fake: &Arc<Fake>,
    tokens: &Arc<Tokens>,
    config: SessionConfig,
    clock: Arc<dyn Clock>,
) -> Session {
    Session::from_parts(
        Arc::clone(tokens) as Arc<dyn TokenSource>,
        Arc::clone(fake) as Arc<dyn Calls>,
        config,
        "https://api.ibkr.com".into(),
        clock,
        Timing {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            logout_timeout: Duration::from_secs(5),
        },
    )
}

pub(super) fn session(
    fake: &Arc<Fake>,
    tokens: &Arc<Tokens>,
    brokerage: bool,
    compete: Compete,
) -> Session {
    // 12:00 UTC: outside every reset window.
    session_with(fake, tokens, config(brokerage, compete), At::utc(12, 0))
}

/// Steps virtual time until `call` was made `n` times (at most a day).
pub(super) async fn until(fake: &Fake, call: &str, n: usize) {
    for _ in 0..864_000 {
        if fake.count(call) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{call} was not called {n} times in a day");
}

pub(super) async fn wait(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

pub(super) fn token_text(token: &SsoToken) -> String {
    token.secret().expose_secret().to_owned()
}

#[tokio::test(start_paused = true)]
async fn opens_read_only_and_tickles_about_every_minute() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    assert_eq!(s.status().state, SessionState::Opening);
    let status = s.open().await.unwrap();
    assert_eq!(status.state, SessionState::ReadOnly);
    assert_eq!(fake.count("create"), 1);
    assert_eq!(fake.count("init"), 0, "no brokerage session was asked for");
    wait(10 * 60).await;
    // 60 s minus up to 10 % jitter: 10 to 11 tickles in 10 minutes.
    let tickles = fake.count("tickle");
    assert!((10..=11).contains(&tickles), "{tickles} tickles in 10 min");
    assert_eq!(
        fake.count("create"),
        1,
        "a healthy session is not re-opened"
    );
}

#[tokio::test(start_paused = true)]
async fn opens_the_brokerage_session_when_asked() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    assert_eq!(s.open().await.unwrap().state, SessionState::Brokerage);
    assert_eq!(*fake.competes.lock().unwrap(), vec![true]);
}

#[tokio::test(start_paused = true)]
async fn a_401_on_tickle_opens_a_new_sso_session() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    let first = s.sso_token().await.unwrap();
    fake.script("tickle", &[Answer::Status(401)]);
    wait(61).await;
    let second = s.sso_token().await.unwrap();
    assert_eq!(token_text(&first), "sso-1");
    assert_eq!(token_text(&second), "sso-2");
    assert_eq!(s.status().state, SessionState::ReadOnly);
    assert_eq!(
        tokens.invalidated.load(Ordering::SeqCst),
        0,
        "the access token was fine"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_access_token_is_replaced_once() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("create", &[Answer::Status(401)]);
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    let token = s.sso_token().await.unwrap();
    assert_eq!(token_text(&token), "sso-1");
    assert_eq!(tokens.invalidated.load(Ordering::SeqCst), 1);
    assert_eq!(
        *fake.access_seen.lock().unwrap(),
        vec!["access-1", "access-2"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_refusal_of_a_new_access_token_is_the_callers() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("create", &[Answer::Status(401), Answer::Status(401)]);
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    let err = s.sso_token().await.unwrap_err();
    let Error::Session(e) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&**e, SessionError::Refused { call: SessionCall::CreateSso, response, .. } if response.status == 401)
    );
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert_eq!(fake.count("create"), 2, "one retry, never more");
    assert!(err.to_string().contains("x-request-id: req-42"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn not_authenticated_on_tickle_opens_the_brokerage_session_again() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    s.open().await.unwrap();
    fake.script("tickle", &[Answer::NotAuthenticated]);
    wait(61).await;
    assert_eq!(fake.count("init"), 2);
    assert_eq!(s.status().state, SessionState::Brokerage);
}

#[tokio::test(start_paused = true)]
async fn a_401_on_init_from_the_keeper_opens_a_new_sso_session() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    s.open().await.unwrap();
    fake.script("tickle", &[Answer::NotAuthenticated]);
    fake.script("init", &[Answer::Status(401)]);
    wait(61).await;
    assert_eq!(fake.count("create"), 2);
    assert_eq!(token_text(&s.sso_token().await.unwrap()), "sso-2");
    assert_eq!(s.status().state, SessionState::Brokerage);
}

#[tokio::test(start_paused = true)]
async fn failed_to_generate_sso_dh_token_is_tried_once_without_compete() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("init", &[Answer::Status(500)]);
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    let status = s.open_brokerage().await.unwrap();
    assert!(status.authenticated);
    assert_eq!(*fake.competes.lock().unwrap(), vec![true, false]);
}

#[tokio::test(start_paused = true)]
async fn no_bridge_is_reported_with_its_variant() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("init", &[Answer::NotAuthenticated]);
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    let err = s.open_brokerage().await.unwrap_err();
    let Error::Session(e) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&**e, SessionError::NoBridge { reason: Some(r) } if &**r == "not authenticated")
    );
    assert_eq!(err.kind(), ErrorKind::Session);
    assert_eq!(s.status().state, SessionState::NoBridge);
}

#[tokio::test(start_paused = true)]
async fn timeouts_never_kill_the_keeper_and_it_never_spins() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    fake.script("tickle", &vec![Answer::Timeout; 30]);
    wait(61).await;
    let status = s.status();
    assert!(status.stale, "{status}");
    assert_eq!(status.state, SessionState::ReadOnly, "stale but usable");
    assert_eq!(token_text(&s.sso_token().await.unwrap()), "sso-1");
    // Backoff 1, 2, 4 ... 120 s (half to all of it, never under 1 s): 30 timeouts take many
    // minutes, never a burst.
    wait(10 * 60).await;
    let in_11_min = fake.count("tickle");
    assert!(
        in_11_min < 20,
        "{in_11_min} tickles in 11 minutes of failures"
    );
    wait(60 * 60).await;
    assert!(
        fake.count("tickle") > 30,
        "the keeper lives on after 30 timeouts"
    );
    assert!(!s.status().stale, "healthy again");
    assert_eq!(
        fake.count("create"),
        1,
        "a timeout is not a reason for a new session"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tickle_error_answer_is_stale_not_fatal() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    fake.script("tickle", &[Answer::TickleError]);
    until(&fake, "tickle", 1).await;
    assert!(s.status().stale);
    assert!(
        s.status()
            .reason
            .unwrap()
            .contains("failed to process request")
    );
    wait(130).await;
    assert!(!s.status().stale);
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_is_reported_and_retried_with_backoff() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    fake.script("tickle", &[Answer::Status(401)]);
    fake.script(
        "create",
        &[
            Answer::Status(503),
            Answer::Status(503),
            Answer::Status(503),
        ],
    );
    until(&fake, "create", 2).await;
    assert_eq!(s.status().state, SessionState::Expired);
    let err = s.sso_token().await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "the dead token is not handed out"
    );
    wait(10 * 60).await;
    assert_eq!(s.status().state, SessionState::ReadOnly);
    assert_eq!(fake.count("create"), 5);
}

#[tokio::test(start_paused = true)]
async fn many_reports_of_one_refused_token_open_one_session() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    let first = s.sso_token().await.unwrap();
    *fake.create_delay.lock().unwrap() = Duration::from_millis(300);
    let reports: Vec<_> = (0..16)
        .map(|_| {
            let (s, t) = (s.clone(), Arc::clone(&first));
            tokio::spawn(async move { s.invalidate(&t).await })
        })
        .collect();
    for r in reports {
        r.await.unwrap();
    }
    assert_eq!(fake.count("create"), 2);
    assert_eq!(token_text(&s.sso_token().await.unwrap()), "sso-2");
    // A report of a token already replaced does nothing.
    assert!(!s.invalidate(&first).await);
    assert_eq!(fake.count("create"), 2);
}

#[tokio::test(start_paused = true)]
async fn waiters_of_a_failed_open_share_its_error() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("create", &[Answer::Status(503)]);
    *fake.create_delay.lock().unwrap() = Duration::from_millis(300);
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.sso_token().await })
        })
        .collect();
    for c in calls {
        let err = c.await.unwrap().unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
    assert_eq!(fake.count("create"), 1);
    // The next call tries again.
    assert!(s.sso_token().await.is_ok());
}
