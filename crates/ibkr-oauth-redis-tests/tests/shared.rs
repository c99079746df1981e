//! The shared cache in one test process: several sources (each with its own provider and Redis
//! connection, as separate processes have) against a real Redis and the sandbox.

use std::time::Duration;

use ibkr_oauth::ExposeSecret;
use ibkr_oauth_redis_tests::{Fleet, RedisServer};

const DAY: Duration = Duration::from_secs(86_399);

fn secret(token: &ibkr_oauth::Token) -> String {
    token.access_token().expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_share_one_token_request() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let a = fleet.source(&redis.url()).build().unwrap();
    let b = fleet.source(&redis.url()).build().unwrap();
    let c = fleet.source(&redis.url()).build().unwrap();

    let first = a.access_token().await.unwrap();
    assert_eq!(secret(&b.access_token().await.unwrap()), secret(&first));
    assert_eq!(secret(&c.access_token().await.unwrap()), secret(&first));
    assert_eq!(fleet.tokens_issued(), 1);
    assert_eq!(fleet.sandbox.request_count(), 1);

    // Redis holds the sealed entry, expiring with the token, and nothing usable in clear.
    let raw: Vec<u8> = redis.query(redis::cmd("GET").arg(a.entry_key()));
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&secret(&first)));
    for part in secret(&first).split('.') {
        assert!(
            !text.contains(part),
            "a part of the token is stored in clear"
        );
    }
    assert!(!text.contains("Bearer") && !text.contains("sso-sessions"));
    let ttl: i64 = redis.query(redis::cmd("PTTL").arg(a.entry_key()));
    assert!(ttl > 0 && ttl <= 86_399_000, "{ttl}");
    // The lease is released.
    let lease: Option<String> = redis.query(redis::cmd("GET").arg(a.lease_key()));
    assert_eq!(lease, None);
    assert_eq!(a.entry_key(), "ibkr-oauth:fleet-client:token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reads_send_no_redis_command() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let source = fleet.source(&redis.url()).build().unwrap();
    let token = source.access_token().await.unwrap();
    redis.reset_stats();
    for _ in 0..10_000 {
        let again = source.access_token().await.unwrap();
        assert_eq!(secret(&again), secret(&token));
    }
    let calls: u64 = redis.command_calls().values().sum();
    assert_eq!(calls, 0, "{:?}", redis.command_calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_deletes_only_the_reported_token() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let a = fleet.source(&redis.url()).build().unwrap();
    let b = fleet.source(&redis.url()).build().unwrap();
    let first = a.access_token().await.unwrap();
    assert_eq!(secret(&b.access_token().await.unwrap()), secret(&first));

    // A reports it: the entry goes, and A fetches the fleet's next token.
    assert!(a.invalidate(&first).await);
    let second = a.access_token().await.unwrap();
    assert_ne!(secret(&second), secret(&first));
    assert_eq!(fleet.tokens_issued(), 2);

    // B reports the same old token late: the newer entry stays, and B takes it from Redis.
    let before: Vec<u8> = redis.query(redis::cmd("GET").arg(a.entry_key()));
    assert!(b.invalidate(&first).await);
    let after: Vec<u8> = redis.query(redis::cmd("GET").arg(a.entry_key()));
    assert_eq!(before, after, "a late report deleted a newer token");
    assert_eq!(secret(&b.access_token().await.unwrap()), secret(&second));
    assert_eq!(fleet.tokens_issued(), 2);

    // A report of a token this process never had changes nothing here.
    assert!(!a.invalidate(&first).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefix_and_cache_name_separate_caches() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let prod = fleet
        .source(&redis.url())
        .key_prefix("prod:")
        .build()
        .unwrap();
    let test = fleet
        .source(&redis.url())
        .key_prefix("test:")
        .build()
        .unwrap();
    assert_ne!(
        secret(&prod.access_token().await.unwrap()),
        secret(&test.access_token().await.unwrap())
    );
    assert_eq!(fleet.tokens_issued(), 2);
    assert_eq!(prod.entry_key(), "prod:fleet-client:token");
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("*"));
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["prod:fleet-client:token", "test:fleet-client:token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fleet_fetch_is_an_error_and_the_next_attempt_shares() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let a = fleet
        .source(&redis.url())
        .retry_policy(ibkr_oauth::provider::RetryPolicy::default().max_attempts(1))
        .failure_cooldown(Duration::from_millis(1))
        .failure_hold(Duration::from_millis(50))
        .build()
        .unwrap();
    fleet
        .sandbox
        .inject_fault(ibkr_oauth_sandbox::Fault::ServerError, 1);
    let error = a.access_token().await.unwrap_err();
    assert_eq!(error.kind(), ibkr_oauth::ErrorKind::Refused);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));

    // Later: one request for the fleet again.
    let b = fleet.source(&redis.url()).build().unwrap();
    let mut token = None;
    for _ in 0..200 {
        if let Ok(t) = a.access_token().await {
            token = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let token = token.expect("a token once the fault is gone");
    assert_eq!(secret(&b.access_token().await.unwrap()), secret(&token));
    assert_eq!(fleet.tokens_issued(), 1);
    assert_eq!(fleet.sandbox.request_count(), 2);
}

#[test]
fn debug_output_has_no_secrets() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let redis = RedisServer::start();
        let fleet = Fleet::start(DAY).await;
        let url = format!("redis://user:PASSWORD-SECRET@127.0.0.1:{}", redis.port());
        let builder = fleet.source(&url);
        let debug = format!("{builder:?}");
        assert!(!debug.contains("PASSWORD-SECRET"), "{debug}");
        let source = builder.build().unwrap();
        let debug = format!("{source:?}");
        assert!(!debug.contains("PASSWORD-SECRET"), "{debug}");
        assert!(!debug.contains(&fleet.encryption_key), "{debug}");
    });
}
