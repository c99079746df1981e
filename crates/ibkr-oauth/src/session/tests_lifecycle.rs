//! The session's policies and lifecycle against the scripted fake of `tests.rs`, in paused
//! time: competing per policy, the nightly window, close and drop, the watch, settings,
//! redaction, the keeper's waits, the IP resolver. Over 400 lines: one fake and one concern
//! (the lifecycle), whose tests read best side by side.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use secrecy::SecretString;

use super::tests::{Answer, At, Fake, Tokens, config, session, session_with, until, wait};
use super::*;
use crate::error::{Error, ErrorKind};

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

/// Every field of every event and span, as text.
#[derive(Default)]
struct Text(Mutex<String>);

impl tracing::field::Visit for &Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let mut text = self.0.lock().unwrap();
        text.push_str(&format!("{}={value:?} ", field.name()));
    }
}

struct Recording(Arc<Text>);

impl tracing::Subscriber for Recording {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        attrs.record(&mut &*self.0);
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut &*self.0);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut &*self.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn tracing_never_records_a_token() {
    let text = Arc::new(Text::default());
    let _guard = tracing::subscriber::set_default(Recording(Arc::clone(&text)));
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    fake.script("create", &[Answer::Status(401)]);
    let s = session(&fake, &tokens, true, Compete::Always);
    s.open().await.unwrap();
    fake.script(
        "tickle",
        &[Answer::Status(401), Answer::Timeout, Answer::Competing],
    );
    fake.script("init", &[Answer::NotAuthenticated]);
    wait(10 * 60).await;
    s.close().await.unwrap();
    let text = text.0.lock().unwrap().clone();
    assert!(text.contains("session state changed"), "{text}");
    for secret in ["sso-1", "sso-2", "sso-3", "access-1", "access-2"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

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
    assert_eq!(
        m,
        crate::error::SessionSetting::NotAnIp {
            given: "not-an-ip".into()
        }
    );
    assert!(m.to_string().contains("not an IPv4 or IPv6"), "{m}");
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
        Arc::new(crate::clock::SystemClock),
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

/// Answers the IPs it was given, one per call; fails when out of them.
#[derive(Debug)]
struct Ips(Mutex<VecDeque<&'static str>>);

#[async_trait::async_trait]
impl IpResolver for Ips {
    async fn public_ip(&self) -> Result<IpAddr, Error> {
        match self.0.lock().unwrap().pop_front() {
            Some(ip) => Ok(ip.parse().unwrap()),
            None => Err(Error::custom(ErrorKind::Transport, "no egress", None)),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_resolver_is_asked_for_each_new_sso_session() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let resolver = Ips(Mutex::new(VecDeque::from(["198.51.100.1", "198.51.100.2"])));
    let config = SessionConfig::builder("user1234")
        .ip_resolver(resolver)
        .build()
        .unwrap();
    let s = session_with(&fake, &tokens, config, At::utc(12, 0));
    let first = s.sso_token().await.unwrap();
    assert!(
        s.invalidate(&first).await,
        "a new session from the second IP"
    );
    // Out of IPs: the next re-open fails with the resolver's variant.
    let second = s.sso_token().await.unwrap();
    assert!(!s.invalidate(&second).await);
    let err = s.sso_token().await.unwrap_err();
    assert!(
        matches!(&err, Error::Session(e) if matches!(&**e, SessionError::IpResolver { message } if message.contains("no egress"))),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Configuration);
    let seen: Vec<String> = fake
        .ips_seen
        .lock()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(seen, ["198.51.100.1", "198.51.100.2"]);
}

#[tokio::test(start_paused = true)]
async fn a_tickle_by_hand_updates_the_state() {
    let (fake, tokens) = (Arc::new(Fake::default()), Arc::new(Tokens::default()));
    let s = session(&fake, &tokens, true, Compete::AtOpen);
    s.open().await.unwrap();
    fake.script("tickle", &[Answer::Competing]);
    let t = s.tickle().await.unwrap();
    assert!(t.brokerage.unwrap().competing);
    assert_eq!(s.status().state, SessionState::Competing);
    fake.script("status", &[Answer::Ok]);
    assert!(s.brokerage_status().await.unwrap().authenticated);
    assert_eq!(s.status().state, SessionState::Brokerage);
    assert_eq!(
        fake.count("init"),
        1,
        "a tickle by hand observes; the keeper heals"
    );
}
