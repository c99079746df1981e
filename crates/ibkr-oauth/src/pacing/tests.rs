//! The in-process governor in tokio's paused time: no test waits for real.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

/// Admission times (since the start) of `n` callers of `path` arriving at `arrivals`.
async fn admissions(governor: &Governor, path: &str, arrivals: &[Duration]) -> Vec<Duration> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for &at in arrivals {
        let governor = governor.clone();
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + at).await;
            governor.acquire(&path).await.map(|()| start.elapsed())
        }));
    }
    let mut admitted = Vec::new();
    for task in tasks {
        if let Ok(at) = task.await.expect("no panic") {
            admitted.push(at);
        }
    }
    admitted.sort();
    admitted
}

/// The most admissions within any window of `window` (windows start at an admission).
fn most_in_window(admitted: &[Duration], window: Duration) -> usize {
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

#[tokio::test(start_paused = true)]
async fn tickle_waits_its_second_then_goes() {
    let governor = Governor::new(PacingTable::ibkr()).unwrap();
    let start = Instant::now();
    governor.acquire("/v1/api/tickle").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    governor.acquire("/v1/api/tickle?x=1").await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(999) && waited <= Duration::from_millis(1001),
        "{waited:?}"
    );
    let stats = governor.stats();
    assert_eq!((stats.admitted, stats.waited, stats.refused), (2, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn over_the_bound_fails_fast_with_the_endpoint() {
    let governor = Governor::new(PacingTable::ibkr().max_wait(Duration::from_secs(2))).unwrap();
    governor.acquire("/v1/api/sso/validate").await.unwrap();
    let start = Instant::now();
    let refused = governor.acquire("/v1/api/sso/validate/").await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
    match &refused {
        PacingError::OverLimit {
            endpoint,
            wait,
            max_wait,
        } => {
            assert_eq!(endpoint, "/sso/validate");
            assert!(*wait > Duration::from_secs(59), "{wait:?}");
            assert_eq!(*max_wait, Duration::from_secs(2));
        }
        other => panic!("expected OverLimit, got {other:?}"),
    }
    assert_eq!(refused.endpoint(), Some("/sso/validate"));
    assert_eq!(governor.stats().refused, 1);
    // Another endpoint is not held up by that rule.
    governor.acquire("/v1/api/tickle").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn global_refusal_names_global() {
    let table = PacingTable::ibkr()
        .global(Limit::per_second(2))
        .max_wait(Duration::ZERO);
    let governor = Governor::new(table).unwrap();
    governor
        .acquire("/v1/api/portfolio/U1/ledger")
        .await
        .unwrap();
    match governor.acquire("/v1/api/portfolio/U1/ledger").await {
        Err(PacingError::OverLimit { endpoint, wait, .. }) => {
            assert_eq!(endpoint, GLOBAL);
            assert_eq!(wait, Duration::from_millis(500));
        }
        other => panic!("expected OverLimit, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_its_endpoint_for_retry_after() {
    let governor = Governor::new(PacingTable::ibkr().max_wait(Duration::from_secs(1))).unwrap();
    governor
        .too_many_requests(
            "/v1/api/iserver/marketdata/snapshot?conids=1",
            Some(Duration::from_secs(3)),
        )
        .await;
    match governor
        .acquire("/v1/api/iserver/marketdata/snapshot")
        .await
    {
        Err(PacingError::Paused {
            endpoint,
            retry_after,
        }) => {
            assert_eq!(endpoint, "/iserver/marketdata/snapshot");
            assert_eq!(retry_after, Duration::from_secs(3));
        }
        other => panic!("expected Paused, got {other:?}"),
    }
    // Other endpoints go on.
    governor.acquire("/v1/api/iserver/accounts").await.unwrap();
    // Once the pause has passed, it goes again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    governor
        .acquire("/v1/api/iserver/marketdata/snapshot")
        .await
        .unwrap();
    assert_eq!(governor.stats().paused, 1);
}

#[tokio::test(start_paused = true)]
async fn a_pause_within_the_bound_is_waited_out() {
    let governor = Governor::new(PacingTable::ibkr().max_wait(Duration::from_secs(5))).unwrap();
    governor
        .too_many_requests("/v1/api/iserver/accounts", Some(Duration::from_secs(2)))
        .await;
    // A shorter Retry-After later does not shorten the pause.
    governor
        .too_many_requests("/v1/api/iserver/accounts", Some(Duration::from_millis(10)))
        .await;
    let start = Instant::now();
    governor.acquire("/v1/api/iserver/accounts").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_pauses_for_the_default() {
    let table = PacingTable::ibkr()
        .default_pause(Duration::from_secs(7))
        .max_wait(Duration::ZERO);
    let governor = Governor::new(table).unwrap();
    governor
        .too_many_requests("/v1/api/fyi/unreadnumber", None)
        .await;
    match governor.acquire("/v1/api/fyi/settings").await {
        Err(PacingError::Paused {
            endpoint,
            retry_after,
        }) => {
            assert_eq!(endpoint, "/fyi/*", "the rule's pause covers its prefix");
            assert_eq!(retry_after, Duration::from_secs(7));
        }
        other => panic!("expected Paused, got {other:?}"),
    }
}

#[test]
fn classify() {
    let table = PacingTable::ibkr();
    let rule = |p: &str| table.classify(p).key;
    assert_eq!(rule("/v1/api/tickle"), "/tickle");
    assert_eq!(rule("/v1/api/tickle/?a=b"), "/tickle");
    assert_eq!(rule("/v1/api/fyi/notifications"), "/fyi/*");
    assert_eq!(
        rule("/v1/api/iserver/account/orders"),
        "/iserver/account/orders"
    );
    assert_eq!(table.classify("/v1/api/iserver/accounts").rule, None);
    assert_eq!(rule("/v1/api/iserver/accounts"), "/iserver/accounts");
    assert_eq!(table.classify("/gw/api/v1/echo/https").rule, None);
    assert_eq!(table.classify("/v1/apitickle").rule, None);
    assert!(
        table
            .classify(&format!("/v1/api/{}", "é".repeat(500)))
            .key
            .len()
            <= 200
    );
}

#[test]
fn validate_refuses_out_of_range() {
    let table = PacingTable::ibkr().endpoint("/x", Limit::every(Duration::from_secs(2 * 86_400)));
    assert!(matches!(
        Governor::new(table),
        Err(crate::ConfigError::Pacing(crate::error::PacingSetting::Rule { rule, .. })) if rule.contains("/x")
    ));
}

#[test]
fn the_default_global_limit_leaves_room_under_fifty_a_second() {
    assert_eq!(
        PacingTable::ibkr()
            .global_limit()
            .max_in(Duration::from_secs(1)),
        45
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the arrivals, no window of one interval-multiple sees more than the limit
    /// allows, and with an ample bound nobody is refused.
    #[test]
    fn never_more_than_the_limit_in_any_window(
        per_second in 1u32..60,
        burst in 1u32..8,
        arrivals in proptest::collection::vec(0u64..3_000, 1..200),
    ) {
        let limit = Limit::per_second(per_second).burst(burst);
        let table = PacingTable::ibkr()
            .without_endpoints()
            .global(limit)
            .max_wait(Duration::from_secs(3_600));
        let arrivals: Vec<Duration> = arrivals.into_iter().map(Duration::from_millis).collect();
        let admitted = paused_runtime().block_on(async {
            let governor = Governor::new(table).unwrap();
            admissions(&governor, "/v1/api/iserver/accounts", &arrivals).await
        });
        prop_assert_eq!(admitted.len(), arrivals.len());
        let window = Duration::from_secs(1);
        let most = most_in_window(&admitted, window);
        prop_assert!(most as u64 <= limit.max_in(window), "{} in a second, limit {:?}", most, limit);
    }

    /// Callers refused are refused without being counted: the admitted ones alone respect
    /// the limit, and a refusal happens only when the wait would pass the bound.
    #[test]
    fn refusals_only_past_the_bound(
        max_wait_ms in 0u64..500,
        arrivals in proptest::collection::vec(0u64..1_000, 1..150),
    ) {
        let limit = Limit::per_second(20).burst(2);
        let table = PacingTable::ibkr()
            .without_endpoints()
            .global(limit)
            .max_wait(Duration::from_millis(max_wait_ms));
        let arrivals: Vec<Duration> = arrivals.into_iter().map(Duration::from_millis).collect();
        let (admitted, stats) = paused_runtime().block_on(async {
            let governor = Governor::new(table).unwrap();
            let admitted = admissions(&governor, "/v1/api/x", &arrivals).await;
            (admitted, governor.stats())
        });
        prop_assert_eq!(stats.admitted as usize, admitted.len());
        prop_assert_eq!(stats.admitted + stats.refused, arrivals.len() as u64);
        let most = most_in_window(&admitted, Duration::from_secs(1));
        prop_assert!(most as u64 <= limit.max_in(Duration::from_secs(1)));
        // With no refusal the last admission is bounded by the schedule (all arrived at once
        // at worst: burst at once, then one per interval).
        if stats.refused == 0 {
            let last = admitted.last().copied().unwrap_or_default();
            let bound = Duration::from_secs(1) + limit.interval() * arrivals.len() as u32;
            prop_assert!(last <= bound);
        }
    }
}
