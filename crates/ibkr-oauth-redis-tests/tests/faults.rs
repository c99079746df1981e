//! Redis failing under the shared cache: killed during a refresh, paused past the timeouts,
//! restarted empty, and a process with the wrong encryption key. A Redis outage is never an
//! outage of tokens while IBKR answers. Counts and order only; every wait is bounded.

use std::time::Duration;

use ibkr_oauth::ExposeSecret;
use ibkr_oauth_redis::EncryptionKey;
use ibkr_oauth_redis_tests::{CLIENT, Fleet, Recorder, RedisServer};
use ibkr_oauth_sandbox::Fault;

const DAY: Duration = Duration::from_secs(86_399);
const SHORT: Duration = Duration::from_millis(200);

fn secret(token: &ibkr_oauth::Token) -> String {
    token.access_token().expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_during_a_refresh() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let holder = fleet
        .source(&redis.url())
        .command_timeout(SHORT)
        .build()
        .unwrap();
    let waiter = fleet
        .source(&redis.url())
        .command_timeout(SHORT)
        .build()
        .unwrap();

    // The holder's token request stalls at the sandbox while it holds the lease.
    fleet
        .sandbox
        .inject_fault(Fault::Stall(Duration::from_secs(2)), 1);
    let holding = tokio::spawn({
        let holder = holder.clone();
        async move { holder.access_token().await }
    });
    fleet.sandbox.wait_for_requests(1).await;
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.access_token().await }
    });
    redis.kill();

    // Both get a token: the holder its own (storing it fails), the waiter one it fetched alone.
    let held = holding.await.unwrap().expect("the holder's token");
    let waited = waiting.await.unwrap().expect("the waiter's token");
    assert_ne!(secret(&held), secret(&waited));
    assert_eq!(fleet.tokens_issued(), 2);

    // Redis back (empty): new processes share again, one request for all of them.
    redis.restart_empty();
    let c = fleet.source(&redis.url()).build().unwrap();
    let d = fleet.source(&redis.url()).build().unwrap();
    let shared = c.access_token().await.unwrap();
    assert_eq!(secret(&d.access_token().await.unwrap()), secret(&shared));
    assert_eq!(fleet.tokens_issued(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_past_the_timeouts_then_resumed() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    // One process has a connection open before the pause.
    let early = fleet
        .source(&redis.url())
        .command_timeout(SHORT)
        .build()
        .unwrap();
    let first = early.access_token().await.unwrap();
    assert_eq!(fleet.tokens_issued(), 1);

    redis.pause();
    // Cold processes while Redis says nothing: each gets a token alone, none hangs.
    let mut alone = Vec::new();
    for _ in 0..3 {
        let source = fleet
            .source(&redis.url())
            .command_timeout(SHORT)
            .build()
            .unwrap();
        alone.push(secret(&source.access_token().await.unwrap()));
    }
    assert_eq!(fleet.tokens_issued(), 4);
    // The early process's refused token: the compare-and-delete times out, a new token comes.
    assert!(early.invalidate(&first).await);
    let early_alone = early.access_token().await.unwrap();
    assert_ne!(secret(&early_alone), secret(&first));
    assert_eq!(fleet.tokens_issued(), 5);

    redis.resume();
    // Sharing again: a new process and the early one (asked for a new token) end up with the
    // same token. Which of them fetched it depends on whether the compare-and-delete sent
    // during the pause reached Redis (the early process never takes back a token it reported).
    let mut previous = early_alone;
    let mut shared_again = false;
    for _ in 0..20 {
        early.invalidate(&previous).await;
        let mine = early.access_token().await.unwrap();
        let late = fleet
            .source(&redis.url())
            .command_timeout(SHORT)
            .build()
            .unwrap();
        let theirs = late.access_token().await.unwrap();
        if secret(&mine) == secret(&theirs) {
            assert!(alone.iter().all(|t| *t != secret(&mine)));
            shared_again = true;
            break;
        }
        previous = mine;
    }
    assert!(shared_again, "the early process never shared again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let a = fleet
        .source(&redis.url())
        .command_timeout(SHORT)
        .build()
        .unwrap();
    let first = a.access_token().await.unwrap();

    redis.restart_empty();
    // The running process keeps its cached token: no Redis command on the hot path.
    assert_eq!(secret(&a.access_token().await.unwrap()), secret(&first));
    // A refused token after the restart: a new one comes (shared or alone, never none).
    a.invalidate(&first).await;
    let after = a.access_token().await.unwrap();
    assert_ne!(secret(&after), secret(&first));

    // New processes find Redis empty (or holding A's new token) and share one token.
    let b = fleet.source(&redis.url()).build().unwrap();
    let c = fleet.source(&redis.url()).build().unwrap();
    let shared = b.access_token().await.unwrap();
    assert_eq!(secret(&c.access_token().await.unwrap()), secret(&shared));
    assert!(fleet.tokens_issued() <= 3, "{}", fleet.tokens_issued());
}

#[test]
fn the_wrong_encryption_key_fetches_alone_and_never_overwrites() {
    let recorder = Recorder::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(recorder.clone(), || {
        runtime.block_on(async {
            let redis = RedisServer::start();
            let fleet = Fleet::start(DAY).await;
            let good = fleet.source(&redis.url()).build().unwrap();
            let token = good.access_token().await.unwrap();
            let entry: Vec<u8> = redis.query(redis::cmd("GET").arg(good.entry_key()));

            let wrong_key = EncryptionKey::from_bytes(&[9; 32]).unwrap();
            let wrong = ibkr_oauth_redis::RedisTokenSource::builder(
                redis.url(),
                CLIENT,
                wrong_key,
                fleet.fetch(),
            )
            .build()
            .unwrap();
            let own = wrong.access_token().await.unwrap();
            assert_ne!(secret(&own), secret(&token));
            assert_eq!(fleet.tokens_issued(), 2);
            // Again (a refused token): alone again, and the good entry stays as it was.
            assert!(wrong.invalidate(&own).await);
            let own_again = wrong.access_token().await.unwrap();
            assert_ne!(secret(&own_again), secret(&own));
            assert_eq!(fleet.tokens_issued(), 3);
            let still: Vec<u8> = redis.query(redis::cmd("GET").arg(good.entry_key()));
            assert_eq!(still, entry, "the entry was overwritten");

            // The fleet still reads it.
            let other = fleet.source(&redis.url()).build().unwrap();
            assert_eq!(secret(&other.access_token().await.unwrap()), secret(&token));
            assert_eq!(fleet.tokens_issued(), 3);

            let log = recorder.text();
            assert!(
                log.contains("WARN") && log.contains("another encryption key"),
                "{log}"
            );
            for t in [&token, &own, &own_again] {
                assert!(!log.contains(&secret(t)), "a token in the logs");
            }
        });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_entry_is_not_overwritten_either() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(DAY).await;
    let a = fleet.source(&redis.url()).build().unwrap();
    let token = a.access_token().await.unwrap();
    // Flip one byte of the ciphertext.
    let mut entry: Vec<u8> = redis.query(redis::cmd("GET").arg(a.entry_key()));
    if let Some(last) = entry.last_mut() {
        *last ^= 1;
    }
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(a.entry_key())
            .arg(&entry)
            .arg("PX")
            .arg(60_000),
    );
    let b = fleet.source(&redis.url()).build().unwrap();
    let own = b.access_token().await.unwrap();
    assert_ne!(secret(&own), secret(&token));
    let still: Vec<u8> = redis.query(redis::cmd("GET").arg(a.entry_key()));
    assert_eq!(still, entry);
}
