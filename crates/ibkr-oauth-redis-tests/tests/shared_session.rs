//! The election of one session owner per username ([`SharedSession`]) against a real Redis and
//! the sandbox, in one process (each `SharedSession` is its own member: its own holder id and
//! connection, as a separate process would have): the owner's lease and fencing token, the
//! takeover that adopts the session, and a former owner that the fencing token stops even when
//! the lease looks like its own again. Real processes: the CLI's `tests/gateway_fleet.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ibkr_oauth::provider::TokenProvider;
use ibkr_oauth::session::{Session, SessionConfig, SessionSource, SsoToken};
use ibkr_oauth::{ExposeSecret, Signer};
use ibkr_oauth_redis::{EncryptionKey, SessionFallback, SessionRole, SharedSession};
use ibkr_oauth_redis_tests::{CLIENT, Fleet, KID, LIMIT, RedisServer};

const USER: &str = "alice";

fn member(fleet: &Fleet, redis: &RedisServer) -> SharedSession {
    member_with(fleet, redis, SessionFallback::FailClosed)
}

fn member_with(fleet: &Fleet, redis: &RedisServer, fallback: SessionFallback) -> SharedSession {
    let tokens = Arc::new(TokenProvider::with_source(fleet.fetch()).build().unwrap());
    let signer = Signer::builder(CLIENT, KID, fleet.key.clone())
        .build()
        .unwrap();
    let config = SessionConfig::builder(USER)
        .ip("127.0.0.1")
        .brokerage(true)
        .build()
        .unwrap();
    let base = fleet.sandbox.base_url();
    let key = EncryptionKey::from_base64(&fleet.encryption_key).unwrap();
    SharedSession::builder(redis.url(), USER, key, move || {
        Session::builder(Arc::clone(&tokens), signer.clone(), config.clone()).base_url(base.clone())
    })
    .lease_ttl(Duration::from_millis(900))
    .command_timeout(Duration::from_millis(250))
    .fallback(fallback)
    .build()
    .unwrap()
}

/// Compares two SSO tokens' texts (never printing them).
fn same(a: &SsoToken, b: &SsoToken) -> bool {
    a.secret().expose_secret() == b.secret().expose_secret()
}

fn sent(fleet: &Fleet, path: &str) -> usize {
    fleet
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .count()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_opens_the_followers_use_its_token() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3600)).await;
    let a = member(&fleet, &redis);
    let b = member(&fleet, &redis);
    assert_eq!(a.start().await.role, SessionRole::Owner);
    assert_eq!(b.start().await.role, SessionRole::Follower);
    let owned = a.sso_token().await.unwrap();
    let followed = b.sso_token().await.unwrap();
    assert!(same(&owned, &followed), "the same SSO token");
    // Nothing of the token in Redis in clear.
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("*"));
    for key in keys.iter().filter(|k| k.contains("session:")) {
        let value: Vec<u8> = match redis.query::<Option<Vec<u8>>>(redis::cmd("GET").arg(key)) {
            Some(v) => v,
            None => continue,
        };
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains(owned.secret().expose_secret()), "{key}");
    }
    assert_eq!(sent(&fleet, "/gw/api/v1/sso-sessions"), 1);
    assert_eq!(sent(&fleet, "/v1/api/iserver/auth/ssodh/init"), 1);
    assert!(
        b.open_brokerage().await.is_err(),
        "a follower opens nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fencing_token_stops_a_former_owner_whose_lease_looks_like_its_own() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3600)).await;
    let a = member(&fleet, &redis);
    assert_eq!(a.start().await.role, SessionRole::Owner);
    let token = a.sso_token().await.unwrap();
    let lease = a.lease_key().to_owned();
    let a_holder: String = redis.query(redis::cmd("GET").arg(&lease));
    // A's lease "expires" (as after a pause): B takes over and adopts A's session.
    let _: () = redis.query(redis::cmd("DEL").arg(&lease));
    let b = member(&fleet, &redis);
    let status = b.start().await;
    assert_eq!(status.role, SessionRole::Owner);
    assert_eq!(status.fence, 2);
    let adopted = b.sso_token().await.unwrap();
    assert!(same(&adopted, &token), "adopted, not re-opened");
    // Split brain: the lease holds A's value again; only the fencing token tells A apart.
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(&lease)
            .arg(&a_holder)
            .arg("PX")
            .arg(60_000),
    );
    until("A to step down", || a.role() == SessionRole::Follower).await;
    until("A to follow B's session", || a.status().fence == 2).await;
    assert_eq!(sent(&fleet, "/gw/api/v1/sso-sessions"), 1);
    assert_eq!(sent(&fleet, "/v1/api/iserver/auth/ssodh/init"), 1);
    assert_eq!(
        sent(&fleet, "/v1/api/logout"),
        0,
        "handed over, never logged out"
    );
    assert_eq!(fleet.sandbox.open_sessions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_reported_and_the_owner_opens_a_new_one() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3600)).await;
    let a = member(&fleet, &redis);
    let b = member(&fleet, &redis);
    a.start().await;
    b.start().await;
    let old = b.sso_token().await.unwrap();
    fleet
        .sandbox
        .inject_session_fault(ibkr_oauth_sandbox::SessionFault::ExpireSessions);
    // The follower saw a 401 with it: reported; the owner opens one new session for all.
    assert!(b.invalidate(&old).await, "replaced");
    let new = b.sso_token().await.unwrap();
    assert!(!same(&new, &old), "a new SSO token");
    assert!(
        same(&a.sso_token().await.unwrap(), &new),
        "the same SSO token"
    );
    assert_eq!(sent(&fleet, "/gw/api/v1/sso-sessions"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_owner_hands_the_session_on_without_logging_out() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3600)).await;
    let a = member(&fleet, &redis);
    assert_eq!(a.start().await.role, SessionRole::Owner);
    let token = a.sso_token().await.unwrap();
    a.stop().await;
    // The lease is released at once: the next process owns it without waiting for the TTL,
    // and adopts the session while IBKR holds its checking tickle.
    fleet
        .sandbox
        .inject_session_fault(ibkr_oauth_sandbox::SessionFault::SlowTickles {
            times: 1,
            delay: Duration::from_secs(1),
        });
    let c = member(&fleet, &redis);
    let starting = tokio::spawn({
        let c = c.clone();
        async move { c.start().await }
    });
    until("C to own", || c.role() == SessionRole::Owner).await;
    let during = c.sso_token().await.unwrap();
    assert!(same(&during, &token), "the same SSO token");
    let status = starting.await.unwrap();
    assert_eq!(status.fence, 2);
    assert!(same(&c.sso_token().await.unwrap(), &token), "adopted");
    assert_eq!(sent(&fleet, "/gw/api/v1/sso-sessions"), 1);
    assert_eq!(sent(&fleet, "/v1/api/logout"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_owner_lets_go_of_the_session_without_logging_out() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3600)).await;
    let a = member(&fleet, &redis);
    assert_eq!(a.start().await.role, SessionRole::Owner);
    let token = a.sso_token().await.unwrap();
    let lease = a.lease_key().to_owned();
    // No stop(): an early return or a panic drops the last handle.
    drop(a);
    until("the lease released", || {
        redis.query::<i64>(redis::cmd("EXISTS").arg(&lease)) == 0
    })
    .await;
    // The next owner adopts the session: it was let go, not logged out.
    let c = member(&fleet, &redis);
    let status = c.start().await;
    assert_eq!(status.role, SessionRole::Owner);
    assert!(same(&c.sso_token().await.unwrap(), &token), "adopted");
    assert_eq!(sent(&fleet, "/v1/api/logout"), 0, "never logged out");
    assert_eq!(sent(&fleet, "/gw/api/v1/sso-sessions"), 1);
    assert_eq!(fleet.sandbox.open_sessions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_then_the_fleet_rejoins_the_session_it_knew() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3600)).await;
    let a = member(&fleet, &redis);
    let b = member(&fleet, &redis);
    // Owners before these two: the fleet knows fence 6 when Redis loses the counter.
    let fence_key = a.lease_key().replace(":lease", ":fence");
    let _: () = redis.query(redis::cmd("SET").arg(&fence_key).arg(5));
    a.start().await;
    b.start().await;
    let token = b.sso_token().await.unwrap();
    assert_eq!(b.status().fence, 6);
    redis.kill();
    for m in [&a, &b] {
        until("fail closed", || m.role() == SessionRole::Unavailable).await;
        let error = m.sso_token().await.unwrap_err();
        assert!(
            matches!(
                ibkr_oauth_redis::SharedSessionError::find(&error),
                Some(ibkr_oauth_redis::SharedSessionError::RedisUnavailable { .. })
            ),
            "{error:?}"
        );
        assert!(m.status().error.is_some());
    }
    // Redis back, empty: one owner again, adopting the session the fleet knew.
    redis.restart_empty();
    until("an owner", || {
        [a.role(), b.role()] == [SessionRole::Owner, SessionRole::Follower]
            || [a.role(), b.role()] == [SessionRole::Follower, SessionRole::Owner]
    })
    .await;
    for m in [&a, &b] {
        let started = Instant::now();
        let again = loop {
            match m.sso_token().await {
                Ok(t) => break t,
                Err(e) => assert!(started.elapsed() < LIMIT, "no token again: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(same(&again, &token), "the same SSO token");
    }
    assert_eq!(
        sent(&fleet, "/gw/api/v1/sso-sessions"),
        1,
        "no second session"
    );
    // The new owner's fence is above the fleet's (not 1 again), and the follower takes the
    // session it re-opens.
    let (owner, follower) = if a.role() == SessionRole::Owner {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(owner.status().fence, 7);
    fleet
        .sandbox
        .inject_session_fault(ibkr_oauth_sandbox::SessionFault::ExpireSessions);
    // The follower's own handle on the token (the same text as `token`).
    let held = follower.sso_token().await.unwrap();
    assert!(follower.invalidate(&held).await, "replaced");
    let new = follower.sso_token().await.unwrap();
    assert!(!same(&new, &token), "the re-opened session's token");
    assert!(same(&owner.sso_token().await.unwrap(), &new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_fallback_keeps_the_fleets_session_and_rejoins_without_logging_it_out() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(Duration::from_secs(3600)).await;
    let a = member_with(&fleet, &redis, SessionFallback::Local);
    let b = member_with(&fleet, &redis, SessionFallback::Local);
    a.start().await;
    b.start().await;
    let token = b.sso_token().await.unwrap();
    redis.kill();
    for m in [&a, &b] {
        until("alone", || m.role() == SessionRole::Alone).await;
        assert!(
            same(&m.sso_token().await.unwrap(), &token),
            "the session it knew"
        );
    }
    redis.restart_empty();
    until("an owner and a follower", || {
        let roles = [a.role(), b.role()];
        roles.contains(&SessionRole::Owner) && roles.contains(&SessionRole::Follower)
    })
    .await;
    for m in [&a, &b] {
        assert!(
            same(&m.sso_token().await.unwrap(), &token),
            "the fleet's session"
        );
    }
    assert_eq!(
        sent(&fleet, "/gw/api/v1/sso-sessions"),
        1,
        "no session of a host's own"
    );
    assert_eq!(
        sent(&fleet, "/v1/api/logout"),
        0,
        "the fleet's session was never logged out"
    );
}
