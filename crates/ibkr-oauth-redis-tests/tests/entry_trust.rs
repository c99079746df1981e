//! What a reader trusts in an entry (issue 20), against a real Redis and the sandbox: only a
//! token asked for by its own client id and scope set; a lifetime from the sealed expiry, never
//! from Redis's TTL; never an entry older than one it has seen.

use std::time::{Duration, SystemTime};

use ibkr_oauth::ExposeSecret;
use ibkr_oauth_redis::{EncryptionKey, RedisTokenSource};
use ibkr_oauth_redis_tests::{Fleet, OTHER_SCOPE, RedisServer, SCOPE};

const LIFETIME: Duration = Duration::from_secs(600);
/// Ten years, as an attacker who can write to Redis would set it.
const TEN_YEARS_MS: u64 = 10 * 365 * 86_400 * 1000;

fn secret(token: &ibkr_oauth::Token) -> String {
    token.access_token().expose_secret().to_owned()
}

fn key(fleet: &Fleet) -> EncryptionKey {
    EncryptionKey::from_base64(&fleet.encryption_key).unwrap()
}

/// A source of the fleet asking for `scope`, under the cache name `name`.
fn source(fleet: &Fleet, redis: &RedisServer, name: &str, scope: &str) -> RedisTokenSource {
    RedisTokenSource::builder(redis.url(), name, key(fleet), fleet.fetch_scope(scope))
        .identity(fleet.identity(scope))
        .build()
        .unwrap()
}

// One thread: the tracing recorder sees the events of every task.
#[tokio::test(flavor = "current_thread")]
async fn an_entry_sealed_for_another_scope_is_not_used() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(LIFETIME).await;
    // Two processes of one client misconfigured with one cache name for two scope sets.
    let sso = source(&fleet, &redis, "one-name", SCOPE);
    let echo = source(&fleet, &redis, "one-name", OTHER_SCOPE);
    let recorder = ibkr_oauth_redis_tests::Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());

    let first = sso.access_token().await.unwrap();
    let other = echo.access_token().await.unwrap();
    assert_ne!(secret(&other), secret(&first), "its own token");
    assert_eq!(other.scope(), Some(OTHER_SCOPE));
    assert_eq!(fleet.tokens_issued(), 2);
    assert!(
        recorder
            .text()
            .contains("was not asked for by this process's client and scopes"),
        "{}",
        recorder.text()
    );
    // It fetched alone and left the entry: the first scope's processes still share it.
    let again = source(&fleet, &redis, "one-name", SCOPE);
    assert_eq!(secret(&again.access_token().await.unwrap()), secret(&first));
    assert_eq!(fleet.tokens_issued(), 2);

    // Named by identity, the two never meet.
    assert_ne!(
        fleet.identity(SCOPE).cache_name(),
        fleet.identity(OTHER_SCOPE).cache_name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_entry_with_a_huge_ttl_lives_only_its_sealed_lifetime() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(LIFETIME).await;
    let name = fleet.identity(SCOPE).cache_name();
    let a = source(&fleet, &redis, &name, SCOPE);

    let first = a.access_token().await.unwrap();
    let old: Vec<u8> = redis.query(redis::cmd("GET").arg(a.entry_key()));
    // The API refuses it: the fleet moves to a second token.
    assert!(a.invalidate(&first).await);
    let second = a.access_token().await.unwrap();
    assert_ne!(secret(&second), secret(&first));

    // Someone who can write to Redis puts the old entry back, to live ten years.
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(a.entry_key())
            .arg(&old)
            .arg("PX")
            .arg(TEN_YEARS_MS),
    );
    // A process that never saw the newer one cannot tell, but hands it out only for the
    // lifetime sealed in it, bounded by what the server granted.
    let fresh = source(&fleet, &redis, &name, SCOPE);
    let replayed = fresh.access_token().await.unwrap();
    assert_eq!(secret(&replayed), secret(&first));
    assert!(
        replayed.expires_in() <= LIFETIME,
        "handed out for {:?}",
        replayed.expires_in()
    );
    assert!(replayed.expires_at() <= SystemTime::now() + LIFETIME);

    // The largest TTL Redis reports (PTTL ~9.2e18 ms): no overflow, the same bound.
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let _: i64 = redis.query(
        redis::cmd("PEXPIRE")
            .arg(a.entry_key())
            .arg(i64::MAX - now_ms - 60_000),
    );
    let pttl: i64 = redis.query(redis::cmd("PTTL").arg(a.entry_key()));
    assert!(pttl > 9_000_000_000_000_000_000, "{pttl}");
    let huge = source(&fleet, &redis, &name, SCOPE);
    let token = huge.access_token().await.unwrap();
    assert!(token.expires_in() <= LIFETIME, "{:?}", token.expires_in());

    // The process that saw the second token refuses the older entry and replaces it.
    a.invalidate(&second).await;
    let third = a.access_token().await.unwrap();
    assert_ne!(secret(&third), secret(&first), "the replayed token");
    assert_ne!(secret(&third), secret(&second));
    assert_eq!(fleet.tokens_issued(), 3);
    let ttl: i64 = redis.query(redis::cmd("PTTL").arg(a.entry_key()));
    assert!(
        ttl > 0 && ttl <= LIFETIME.as_millis() as i64,
        "the entry lives as long as its token: {ttl}"
    );
}
