//! The fleet's pacing (`RedisPacer`) against a real Redis: 8 OS processes (`pace-member`)
//! offering three times IBKR's limit together stay within it; a 429 pauses an endpoint for
//! every process; an endpoint's rule is shared; Redis down fails closed by default.
//! Counts are of Redis's own admission times; every wait is bounded.

use std::time::Duration;

use ibkr_oauth::pacing::{Limit, Pacer as _, PacingError, PacingTable};
use ibkr_oauth_redis::{RedisPacer, WhenRedisDown};
use ibkr_oauth_redis_tests::{Member, RedisServer, pace_member};

fn pacer(redis: &RedisServer, table: PacingTable) -> RedisPacer {
    RedisPacer::builder(redis.url(), "fleet-user", table)
        .build()
        .expect("a pacer")
}

/// The most admissions (µs) within any half-open window of `window`.
fn most_in_window(admitted: &[u64], window: u64) -> usize {
    (0..admitted.len())
        .map(|i| {
            admitted[i..]
                .iter()
                .take_while(|&&t| t < admitted[i] + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_at_three_times_the_limit_stay_within_it() {
    let redis = RedisServer::start();
    let limit = Limit::per_second(45).burst(5); // the default: at most 50 in any second
    let run = Duration::from_secs(3);
    // 8 x 19/s = 152/s offered, three times IBKR's 50/s.
    let mut members: Vec<Member> = (0..8)
        .map(|_| {
            pace_member(&redis.url())
                .env("PACE_RATE", "19")
                .env("PACE_MS", run.as_millis().to_string())
                .spawn()
        })
        .collect();
    for member in &members {
        member.wait_for_line("ready");
    }
    for member in &mut members {
        member.go();
    }
    let mut admitted = Vec::new();
    let mut refused = 0u64;
    for member in &mut members {
        assert!(member.wait(), "a member failed: {}", member.stderr());
        for line in member.lines() {
            if let Some(at) = line.strip_prefix("admitted ") {
                admitted.push(at.parse::<u64>().expect("µs"));
            }
            if let Some(rest) = line.strip_prefix("refused ") {
                refused += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
                assert!(rest.contains("unavailable=0"), "{rest}");
            }
        }
    }
    admitted.sort_unstable();
    let most = most_in_window(&admitted, 1_000_000);
    assert!(
        most as u64 <= limit.max_in(Duration::from_secs(1)),
        "{most} admitted within one second; the limit allows {}",
        limit.max_in(Duration::from_secs(1))
    );
    // At the limit, not far under it: the offered load keeps the budget used.
    let span = Duration::from_micros(admitted.last().unwrap() - admitted.first().unwrap());
    let expected = 45.0 * span.as_secs_f64();
    assert!(
        admitted.len() as f64 >= 0.7 * expected,
        "{} admitted over {span:?}, expected about {expected}",
        admitted.len()
    );
    assert!(
        refused > 0,
        "three times the limit was offered; some must be refused"
    );
    eprintln!(
        "8 processes: {} admitted over {span:?} (at most {most} in any second), {refused} refused",
        admitted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_rule_is_shared_by_the_fleet() {
    let redis = RedisServer::start();
    let table = PacingTable::ibkr().max_wait(Duration::ZERO);
    let (a, b) = (pacer(&redis, table.clone()), pacer(&redis, table));
    a.acquire("/v1/api/tickle").await.unwrap();
    match b.acquire("/v1/api/tickle").await {
        Err(PacingError::OverLimit { endpoint, wait, .. }) => {
            assert_eq!(endpoint, "/tickle");
            assert!(
                wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
                "{wait:?}"
            );
        }
        other => panic!("expected OverLimit, got {other:?}"),
    }
    // Other paths are under the per-user limit only.
    b.acquire("/v1/api/iserver/accounts").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_endpoint_for_the_fleet() {
    let redis = RedisServer::start();
    let table = PacingTable::ibkr().max_wait(Duration::from_millis(100));
    let (a, b) = (pacer(&redis, table.clone()), pacer(&redis, table));
    a.too_many_requests(
        "/v1/api/iserver/marketdata/snapshot?conids=265598",
        Some(Duration::from_secs(30)),
    )
    .await;
    match b.acquire("/v1/api/iserver/marketdata/snapshot").await {
        Err(PacingError::Paused {
            endpoint,
            retry_after,
        }) => {
            assert_eq!(endpoint, "/iserver/marketdata/snapshot");
            assert!(
                retry_after > Duration::from_secs(29) && retry_after <= Duration::from_secs(30)
            );
        }
        other => panic!("expected Paused, got {other:?}"),
    }
    b.acquire("/v1/api/iserver/accounts").await.unwrap();
    // A shorter Retry-After later does not shorten the fleet's pause.
    b.too_many_requests(
        "/v1/api/iserver/marketdata/snapshot",
        Some(Duration::from_secs(1)),
    )
    .await;
    let ttl: i64 = redis.query(
        redis::cmd("PTTL").arg("ibkr-oauth:pace:{fleet-user}:pause:/iserver/marketdata/snapshot"),
    );
    assert!(ttl > 29_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_unless_pacing_alone_is_allowed() {
    let mut redis = RedisServer::start();
    let table = PacingTable::ibkr();
    let closed = pacer(&redis, table.clone());
    let alone = RedisPacer::builder(redis.url(), "fleet-user", table)
        .command_timeout(Duration::from_millis(200))
        .when_redis_down(WhenRedisDown::PaceAlone)
        .build()
        .unwrap();
    closed.acquire("/v1/api/iserver/accounts").await.unwrap();
    redis.kill();
    match closed.acquire("/v1/api/iserver/accounts").await {
        Err(PacingError::Unavailable(detail)) => assert!(detail.contains("Redis"), "{detail}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    alone.acquire("/v1/api/iserver/accounts").await.unwrap();
}
