//! The session's healing against a scripted fake of IBKR's six calls, under tokio's paused
//! clock: every wait below is virtual time, exact and instant. The same paths over real HTTP
//! (mockito) are in `tests_http.rs`.

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
use crate::error::ResponseInfo;
use crate::error::{Error, ErrorKind};
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
    async fn create_sso(&self, access: &Token, _: &str, _: IpAddr) -> Result<SsoToken, Error> {
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

fn session(fake: &Arc<Fake>, tokens: &Arc<Tokens>, brokerage: bool, compete: Compete) -> Session {
    // 12:00 UTC: outside every reset window.
    session_with(fake, tokens, config(brokerage, compete), At::utc(12, 0))
}

/// Steps virtual time until `call` was made `n` times (at most a day).
async fn until(fake: &Fake, call: &str, n: usize) {
    for _ in 0..864_000 {
        if fake.count(call) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{call} was not called {n} times in a day");
}

async fn wait(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

fn token_text(token: &SsoToken) -> String {
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
async fn competing_is_reported_under_at_open() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    s.open().await.unwrap();
    fake.script("tickle", &[Answer::Competing, Answer::Competing]);
    let mut changes = s.watch();
    wait(61).await;
    assert!(changes.has_changed().unwrap());
    assert_eq!(changes.borrow_and_update().state, SessionState::Competing);
    assert_eq!(fake.count("init"), 1, "not taken over");
    // Once the other session is gone (not authenticated, not competing), it is not fought
    // for either: re-opened without compete.
    fake.script("tickle", &[Answer::NotAuthenticated]);
    wait(2 * 60).await;
    assert_eq!(*fake.competes.lock().unwrap(), vec![true, false]);
}

#[tokio::test(start_paused = true)]
async fn competing_is_taken_over_under_always() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::Always);
    s.open().await.unwrap();
    fake.script("tickle", &[Answer::Competing]);
    wait(61).await;
    assert_eq!(*fake.competes.lock().unwrap(), vec![true, true]);
    assert_eq!(s.status().state, SessionState::Brokerage);
}

#[tokio::test(start_paused = true)]
async fn competing_is_never_fought_under_never() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("init", &[Answer::Competing]);
    let s = session(&fake, &tokens, true, Compete::Never);
    assert_eq!(s.open().await.unwrap().state, SessionState::Competing);
    assert_eq!(*fake.competes.lock().unwrap(), vec![false]);
    let err = s.open_brokerage().await;
    assert!(err.is_ok(), "the second init (scripted Ok) opens it");
    assert_eq!(*fake.competes.lock().unwrap(), vec![false, false]);
}

/// Counts events by level on this thread.
#[derive(Default)]
struct Levels {
    warn: AtomicUsize,
    debug: AtomicUsize,
}

struct Counting(Arc<Levels>);

impl tracing::Subscriber for Counting {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        match *event.metadata().level() {
            tracing::Level::WARN => self.0.warn.fetch_add(1, Ordering::SeqCst),
            tracing::Level::DEBUG => self.0.debug.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

async fn failures_logged_at(hour: u64, minute: u64) -> (usize, usize, Session, Arc<Fake>) {
    let levels = Arc::new(Levels::default());
    let _guard = tracing::subscriber::set_default(Counting(Arc::clone(&levels)));
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session_with(
        &fake,
        &tokens,
        config(false, Compete::AtOpen),
        At::utc(hour, minute),
    );
    s.open().await.unwrap();
    fake.script(
        "tickle",
        &[Answer::Status(503), Answer::Timeout, Answer::Status(503)],
    );
    wait(5 * 60).await;
    (
        levels.warn.load(Ordering::SeqCst),
        levels.debug.load(Ordering::SeqCst),
        s,
        fake,
    )
}

#[tokio::test(start_paused = true)]
async fn failures_inside_the_nightly_window_are_retried_quietly() {
    // 05:30 UTC: inside the default (New York) window.
    let (warn, debug, s, fake) = failures_logged_at(5, 30).await;
    assert_eq!(warn, 0, "no warning inside the reset window");
    assert!(debug >= 3, "{debug} debug events");
    assert!(!s.status().stale, "retried until it worked");
    assert!(fake.count("tickle") >= 4);
}

#[tokio::test(start_paused = true)]
async fn failures_outside_the_nightly_window_warn() {
    let (warn, _, _, _) = failures_logged_at(12, 0).await;
    assert_eq!(warn, 3);
}

#[test]
fn reset_windows_cover_one_in_the_morning_local_time() {
    let at = |h: u64, m: u64| UNIX_EPOCH + Duration::from_secs(1_699_920_000 + h * 3600 + m * 60);
    let na = ResetWindow::north_america();
    assert!(na.contains(at(5, 0)) && na.contains(at(6, 0)) && na.contains(at(6, 44)));
    assert!(!na.contains(at(4, 44)) && !na.contains(at(6, 45)) && !na.contains(at(12, 0)));
    let eu = ResetWindow::europe();
    assert!(eu.contains(at(23, 0)) && eu.contains(at(0, 0)) && eu.contains(at(0, 44)));
    assert!(!eu.contains(at(22, 44)) && !eu.contains(at(0, 45)));
    let asia = ResetWindow::asia();
    assert!(asia.contains(at(17, 0)) && !asia.contains(at(18, 0)));
    assert!(!ResetWindow::none().contains(at(5, 0)));
    let custom = ResetWindow::daily_utc(23, 30, Duration::from_secs(3600)).unwrap();
    assert!(custom.contains(at(0, 15)) && !custom.contains(at(0, 31)));
    assert!(matches!(
        ResetWindow::daily_utc(24, 0, Duration::from_secs(60)),
        Err(crate::ConfigError::Session(_))
    ));
    assert!(matches!(
        ResetWindow::daily_utc(1, 0, Duration::from_secs(86_400)),
        Err(crate::ConfigError::Session(_))
    ));
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

#[tokio::test(start_paused = true)]
async fn close_logs_out_once_and_refuses_further_use() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    s.close().await.unwrap();
    s.close().await.unwrap();
    assert_eq!(fake.count("logout"), 1);
    assert_eq!(s.status().state, SessionState::Closed);
    let err = s.sso_token().await.unwrap_err();
    assert!(matches!(&err, Error::Session(e) if matches!(**e, SessionError::Closed)));
    wait(10 * 60).await;
    assert_eq!(fake.count("tickle"), 0, "the keeper stopped");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_logout_is_bounded() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("logout", &[Answer::Timeout]);
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    let started = tokio::time::Instant::now();
    let err = s.close().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(
        matches!(&err, Error::Session(e) if matches!(**e, SessionError::Transport { call: SessionCall::Logout, timeout: true, .. }))
    );
    assert_eq!(s.status().state, SessionState::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_logs_out_and_stops_the_keeper() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    let clone = s.clone();
    drop(s);
    wait(1).await;
    assert_eq!(fake.count("logout"), 0, "a clone still holds it");
    drop(clone);
    wait(1).await;
    assert_eq!(fake.count("logout"), 1);
    wait(10 * 60).await;
    assert_eq!(fake.count("tickle"), 0, "the keeper ended with the session");
}

#[tokio::test(start_paused = true)]
async fn the_watch_sees_each_change_with_its_reason() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    let mut changes = s.watch();
    s.open().await.unwrap();
    assert_eq!(changes.borrow_and_update().state, SessionState::Brokerage);
    fake.script("tickle", &[Answer::NotAuthenticated]);
    fake.script("init", &[Answer::NotAuthenticated]);
    until(&fake, "init", 2).await;
    let now = changes.borrow_and_update().clone();
    assert_eq!(now.state, SessionState::NoBridge);
    assert_eq!(now.reason.as_deref(), Some("not authenticated"));
    assert_eq!(now.to_string(), "no bridge: not authenticated");
}

#[test]
fn config_is_checked_at_build() {
    let refused = |b: SessionConfigBuilder| match b.build() {
        Err(crate::ConfigError::Session(m)) => m,
        other => panic!("{other:?}"),
    };
    refused(SessionConfig::builder(" ").ip("1.2.3.4"));
    refused(SessionConfig::builder("user name").ip("1.2.3.4"));
    refused(SessionConfig::builder("u".repeat(65)).ip("1.2.3.4"));
    refused(SessionConfig::builder("user"));
    let m = refused(SessionConfig::builder("user").ip("not-an-ip"));
    assert!(m.contains("not an IPv4 or IPv6"), "{m}");
    refused(
        SessionConfig::builder("user")
            .ip("1.2.3.4")
            .tickle_interval(Duration::from_millis(999)),
    );
    refused(
        SessionConfig::builder("user")
            .ip("1.2.3.4")
            .tickle_interval(Duration::from_secs(241)),
    );
    let ok = SessionConfig::builder(" user ")
        .ip("2001:db8::1")
        .build()
        .unwrap();
    assert_eq!(ok.credential(), "user");
    assert_eq!(ok.ip(), Some("2001:db8::1".parse().unwrap()));
    assert_eq!(ok.tickle_interval(), DEFAULT_TICKLE_INTERVAL);
    assert_eq!(ok.compete(), Compete::AtOpen);
}

#[test]
fn secrets_never_print() {
    let token = SsoToken::new(SecretString::from("sso-secret-value"));
    let fixed = FixedSession::new(SsoToken::new(SecretString::from("sso-secret-value")));
    for text in [format!("{token:?}"), format!("{fixed:?}")] {
        assert!(!text.contains("sso-secret-value"), "{text}");
    }
    assert!(token.authorization_header().is_sensitive());
}

#[tokio::test(start_paused = true)]
async fn session_debug_and_errors_never_print_the_sso_token() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, false, Compete::AtOpen);
    s.open().await.unwrap();
    let debug = format!("{s:?} {:?}", s.status());
    assert!(!debug.contains("sso-1"), "{debug}");
    s.close().await.unwrap();
    let err = s.sso_token().await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("sso-1"));
}

#[test]
fn waits_are_jittered_bounded_and_never_under_a_second() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let s = session_with(
        &fake,
        &tokens,
        config(false, Compete::AtOpen),
        Arc::new(crate::SystemClock),
    );
    let inner = &s.inner;
    for _ in 0..200 {
        let w = inner.next_wait(0);
        assert!(
            w > Duration::from_secs(53) && w <= Duration::from_secs(60),
            "{w:?}"
        );
        let b = inner.next_wait(40);
        assert!(
            b >= Duration::from_secs(60) && b <= Duration::from_secs(120),
            "{b:?}"
        );
        assert!(inner.next_wait(1) >= Duration::from_secs(1));
    }
}
