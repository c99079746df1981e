//! The election's pieces that need no Redis: the fence clock, the state text, the builder's
//! checks, the typed error through the facade's, and the Redis-down policy against a port
//! where nothing listens. The election itself against a real Redis and real processes is in
//! `ibkr-oauth-redis-tests` (`tests/shared_session.rs`) and the CLI's `tests/gateway_fleet.rs`.

use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::session::{Session, SessionConfig, SessionSource, SessionState};
use ibkr_oauth::{Algorithm, PrivateKey, Signer, Token, TokenSource};

use super::elect::parse_state;
use super::*;
use crate::error::Error;

#[derive(Debug)]
struct NoTokens;

#[async_trait::async_trait]
impl TokenSource for NoTokens {
    async fn access_token(&self) -> Result<Arc<Token>, ibkr_oauth::Error> {
        Err(ibkr_oauth::Error::custom(
            ibkr_oauth::ErrorKind::Transport,
            "no tokens in this test",
            None,
        ))
    }
    async fn invalidate(&self, _: &Token) -> bool {
        false
    }
}

fn builder(url: &str) -> SharedSessionBuilder {
    let key = EncryptionKey::from_bytes(&[3; 32]).unwrap();
    let signer = Signer::builder("c", "main", PrivateKey::generate(Algorithm::ES256).unwrap())
        .build()
        .unwrap();
    let config = SessionConfig::builder("alice")
        .ip("127.0.0.1")
        .build()
        .unwrap();
    SharedSession::builder(url, "alice", key, move || {
        Session::builder(NoTokens, signer.clone(), config.clone()).base_url("http://127.0.0.1:9")
    })
    .lease_ttl(Duration::from_millis(600))
    .command_timeout(Duration::from_millis(100))
}

/// A loopback port where nothing listens.
fn closed_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}")
}

#[test]
fn the_fence_holds_until_its_deadline_or_alone() {
    let fence = FenceClock {
        base: std::time::Instant::now(),
        valid_until_ms: AtomicU64::new(0),
        alone: AtomicBool::new(false),
    };
    assert!(!fence.allows(), "closed before any lease");
    fence.extend_to(std::time::Instant::now() + Duration::from_secs(60));
    assert!(fence.allows());
    fence.extend_to(std::time::Instant::now() - Duration::from_millis(1));
    assert!(
        !fence.allows(),
        "past the deadline (a pause past the lease)"
    );
    fence.alone.store(true, Ordering::SeqCst);
    assert!(fence.allows(), "alone: its own session");
    fence.close();
    assert!(!fence.allows());
}

#[test]
fn every_state_reads_back_from_its_text() {
    for state in [
        SessionState::Opening,
        SessionState::ReadOnly,
        SessionState::Brokerage,
        SessionState::Competing,
        SessionState::NoBridge,
        SessionState::Expired,
        SessionState::Closed,
    ] {
        assert_eq!(parse_state(&state.to_string()), Some(state));
    }
    assert_eq!(parse_state("something new"), None);
}

#[test]
fn the_builder_checks_before_any_io() {
    let url = "redis://127.0.0.1:6379";
    assert!(matches!(
        builder("http://x").build(),
        Err(Error::InvalidUrl(_))
    ));
    let bad = [
        builder(url).lease_ttl(Duration::from_millis(100)),
        builder(url).command_timeout(Duration::from_millis(200)),
        builder(url).command_timeout(Duration::ZERO),
        builder(url).key_prefix("a b"),
    ];
    for b in bad {
        assert!(matches!(b.build(), Err(Error::InvalidConfig(_))));
    }
    let braces = SharedSession::builder(
        url,
        "a{b}",
        EncryptionKey::from_bytes(&[3; 32]).unwrap(),
        || unreachable!(),
    );
    assert!(matches!(braces.build(), Err(Error::InvalidConfig(_))));
    assert!(builder(url).build().is_ok());
}

#[test]
fn the_typed_error_is_found_inside_the_facades() {
    let errors = [
        SharedSessionError::RedisUnavailable {
            reason: Arc::from("Redis: connection refused"),
            lease_ms: 10_000,
        },
        SharedSessionError::NoSession { waited_ms: 13_333 },
        SharedSessionError::Unreadable {
            reason: Arc::from("another key"),
        },
        SharedSessionError::NotOwner,
    ];
    let mut codes = std::collections::BTreeSet::new();
    for error in errors {
        let text = error.to_string();
        assert!(
            text.contains("; ") || text.contains(": "),
            "says what to do: {text}"
        );
        let outer = ibkr_oauth::Error::from(error.clone());
        assert_eq!(outer.kind(), error.kind());
        assert_eq!(SharedSessionError::find(&outer), Some(&error));
        assert!(
            !outer.to_string().contains(&text),
            "the cause is not repeated"
        );
        codes.insert(error.code());
    }
    assert_eq!(codes.len(), 4, "one code each");
    let other = ibkr_oauth::Error::custom(ibkr_oauth::ErrorKind::Session, "x", None);
    assert_eq!(SharedSessionError::find(&other), None);
}

#[tokio::test]
async fn without_redis_the_default_fails_closed_with_its_variant() {
    let shared = builder(&closed_url()).build().unwrap();
    let status = shared.start().await;
    assert_eq!(status.role, SessionRole::Unavailable);
    assert!(!status.is_open());
    let error = shared.sso_token().await.unwrap_err();
    assert!(
        matches!(
            SharedSessionError::find(&error),
            Some(SharedSessionError::RedisUnavailable { lease_ms: 600, .. })
        ),
        "{error:?}"
    );
    assert!(shared.open_brokerage().await.is_err());
    shared.stop().await;
}

#[tokio::test]
async fn without_redis_the_local_fallback_holds_a_session_of_its_own() {
    let shared = builder(&closed_url())
        .fallback(SessionFallback::Local)
        .build()
        .unwrap();
    let status = shared.start().await;
    assert_eq!(status.role, SessionRole::Alone);
    assert!(status.error.is_none());
    // Its own session tries to open (and here fails: no IBKR): not the fleet's error.
    let error = shared.sso_token().await.unwrap_err();
    assert_eq!(SharedSessionError::find(&error), None, "{error:?}");
    shared.stop().await;
}
