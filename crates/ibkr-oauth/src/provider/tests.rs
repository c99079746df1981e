//! The provider's machinery against a scripted fake fetch, under tokio's paused clock: every
//! delay below is virtual time, exact and instant.
//! (Long on purpose: one scripted scenario per behaviour, each spelled out; the clock and
//! storm cases live in `tests_hardening.rs`.)

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use secrecy::ExposeSecret;
use tokio::time::{Instant, advance, sleep, timeout};

use super::builder::Settings;
use super::{RetryPolicy, TokenProvider};
use crate::clock::Clock;
use crate::error::Error;
use crate::response::{RawResponse, map_response};
use crate::source::{FetchContext, TokenSource};
use crate::token::Token;

const T0_SECS: u64 = 1_700_000_000;

pub(super) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0_SECS)
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A wall clock that moves with tokio's (paused) clock, from `t0()`, plus whatever it was
/// made to jump (a resume from sleep: the wall clock moved, the monotonic one did not).
#[derive(Debug)]
pub(super) struct TokioClock {
    start: Instant,
    jumped_secs: Arc<AtomicU32>,
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        t0() + self.start.elapsed() + secs(u64::from(self.jumped_secs.load(Ordering::SeqCst)))
    }
}

/// What one attempt of the fake answers, after `delay`.
pub(super) struct Step {
    delay: Duration,
    result: Result<Token, Error>,
}

impl Step {
    pub(super) fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

pub(super) fn ok(n: u32, lifetime_secs: u64) -> Step {
    ok_dated(n, lifetime_secs, None)
}

pub(super) fn ok_dated(n: u32, lifetime_secs: u64, server_date: Option<SystemTime>) -> Step {
    let body = format!(
        r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{lifetime_secs}}}"#
    );
    let token = Token::from_json_body(body.as_bytes(), t0(), server_date).expect("token");
    Step {
        delay: Duration::ZERO,
        result: Ok(token),
    }
}

/// An RFC 9457 problem answer, as the real mapping makes it.
pub(super) fn problem(status: u16, retry_after: Option<&str>, date: Option<SystemTime>) -> Step {
    let raw = RawResponse {
        status: StatusCode::from_u16(status).expect("status"),
        content_type: Some("application/problem+json".into()),
        date: date.map(httpdate::fmt_http_date),
        retry_after: retry_after.map(Into::into),
        location: None,
        request_id: None,
        www_authenticate: None,
        body: Bytes::from(format!(r#"{{"type":"/simple","status":{status}}}"#)),
        received_at: t0(),
    };
    Step {
        delay: Duration::ZERO,
        result: Err(map_response(&raw).expect_err("an error status")),
    }
}

pub(super) type Script = dyn Fn(u32) -> Step + Send + Sync;

/// The fake's record of one attempt: when it started (tokio clock) and the assertion time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub(super) at: Instant,
    pub(super) assertion_time: SystemTime,
}

struct Fake {
    script: Box<Script>,
    calls: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl std::fmt::Debug for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fake")
    }
}

#[async_trait::async_trait]
impl TokenSource for Fake {
    async fn access_token(&self) -> Result<Arc<Token>, Error> {
        self.fetch(FetchContext::new(SystemTime::now()))
            .await
            .map(Arc::new)
    }

    async fn invalidate(&self, _token: &Token) -> bool {
        false
    }

    async fn fetch(&self, context: FetchContext) -> Result<Token, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            assertion_time: context.assertion_time,
        });
        let step = (self.script)(n);
        if !step.delay.is_zero() {
            sleep(step.delay).await;
        }
        step.result
    }
}

pub(super) struct Harness {
    pub(super) provider: TokenProvider,
    calls: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Moves the wall clock ahead without moving tokio's.
    pub(super) jumped_secs: Arc<AtomicU32>,
}

impl Harness {
    pub(super) fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The answer, which must come without waiting (no await on the network or a timer).
    pub(super) async fn at_once(&self) -> Result<Arc<Token>, Error> {
        timeout(Duration::ZERO, self.provider.access_token())
            .await
            .expect("answered without waiting")
    }
}

pub(super) fn settings() -> Settings {
    Settings {
        shards: 3,
        ..Settings::default()
    }
}

pub(super) fn harness(
    settings: Settings,
    script: impl Fn(u32) -> Step + Send + Sync + 'static,
) -> Harness {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        script: Box::new(script),
        calls: Arc::clone(&calls),
        seen: Arc::clone(&seen),
    };
    let jumped_secs = Arc::new(AtomicU32::new(0));
    let clock = Arc::new(TokioClock {
        start: Instant::now(),
        jumped_secs: Arc::clone(&jumped_secs),
    });
    Harness {
        provider: TokenProvider::from_fetch(Box::new(fake), clock, settings),
        calls,
        seen,
        jumped_secs,
    }
}

/// Whether two errors share their parts (clones of one error), not merely look alike.
pub(super) fn same_error(a: &Error, b: &Error) -> bool {
    match (a, b) {
        (Error::Problem { problem: x, .. }, Error::Problem { problem: y, .. }) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

pub(super) fn name(token: &Token) -> &str {
    token.access_token().expose_secret()
}

/// Lets spawned tasks that have nothing to wait for run to completion.
pub(super) async fn run_spawned() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_cold_callers_make_one_request() {
    let h = harness(settings(), |n| ok(n, 3600).after(secs(1)));
    let started = Instant::now();
    let callers: Vec<_> = (0..10_000)
        .map(|_| {
            let provider = h.provider.clone();
            tokio::spawn(async move { provider.access_token().await })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(name(&token), "tok-1");
    }
    assert_eq!(h.calls(), 1);
    // They all waited for the one (slow) fetch.
    assert_eq!(started.elapsed(), secs(1));
    // And the token is now served from the cache.
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    assert_eq!(h.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_serves_the_cached_token_while_a_slow_refresh_runs() {
    let h = harness(settings(), |n| match n {
        1 => ok(1, 3600),
        n => ok(n, 3600).after(secs(60)),
    });
    assert_eq!(name(&h.provider.access_token().await.unwrap()), "tok-1");
    // Default margin: 5 minutes before expiry.
    advance(secs(3600 - 300 - 1)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    run_spawned().await;
    assert_eq!(h.calls(), 1, "no refresh before the margin");

    advance(secs(2)).await;
    for _ in 0..1_000 {
        assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    }
    run_spawned().await;
    assert_eq!(h.calls(), 2, "exactly one refresh started");

    // Half-way through the slow refresh: still the cached token, at once, no second fetch.
    advance(secs(30)).await;
    for _ in 0..1_000 {
        assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    }
    assert_eq!(h.calls(), 2);

    sleep(secs(31)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-2");
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn short_lived_tokens_refresh_at_a_fraction_of_their_lifetime() {
    let h = harness(settings(), |n| ok(n, 60));
    h.provider.access_token().await.unwrap();
    // 20 % of 60 s: refresh from 48 s on.
    advance(secs(47)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    run_spawned().await;
    assert_eq!(h.calls(), 1);
    advance(secs(2)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    run_spawned().await;
    assert_eq!(h.calls(), 2);
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-2");
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_serving_the_valid_token_and_backs_off() {
    let mut s = settings();
    s.retry = RetryPolicy::no_retries();
    s.failure_cooldown = secs(1);
    let h = harness(s, |n| match n {
        1 => ok(1, 3600),
        n if n < 5 => problem(503, None, None),
        n => ok(n, 3600),
    });
    h.provider.access_token().await.unwrap();
    advance(secs(3600 - 200)).await;

    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    run_spawned().await;
    assert_eq!(h.calls(), 2, "the refresh ran and failed");
    // Stale on error: the valid token, at once, and no new attempt before the back-off.
    for _ in 0..100 {
        assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    }
    run_spawned().await;
    assert_eq!(h.calls(), 2);

    advance(secs(1)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    run_spawned().await;
    assert_eq!(h.calls(), 3, "one new attempt after the 1 s back-off");
    // The second consecutive failure doubles the back-off to 2 s.
    advance(secs(1)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    run_spawned().await;
    assert_eq!(h.calls(), 3);
    advance(secs(1)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    run_spawned().await;
    assert_eq!(h.calls(), 4);

    advance(secs(4)).await;
    h.at_once().await.unwrap();
    run_spawned().await;
    assert_eq!(h.calls(), 5);
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-5");
}

#[tokio::test(start_paused = true)]
async fn expiry_plus_failure_gives_the_error_and_no_storm() {
    let mut s = settings();
    s.retry = RetryPolicy::no_retries();
    s.failure_cooldown = secs(1);
    let h = harness(s, |n| match n {
        1 => ok(1, 60),
        n if n < 5 => problem(503, None, None).after(Duration::from_millis(10)),
        n => ok(n, 3600),
    });
    h.provider.access_token().await.unwrap();
    advance(secs(61)).await;

    let callers: Vec<_> = (0..100)
        .map(|_| {
            let provider = h.provider.clone();
            tokio::spawn(async move { provider.access_token().await })
        })
        .collect();
    let mut errors = Vec::new();
    for caller in callers {
        errors.push(
            caller
                .await
                .unwrap()
                .expect_err("expired and the fetch failed"),
        );
    }
    assert_eq!(h.calls(), 2, "one fetch for all the callers");
    assert!(matches!(&errors[0], Error::Problem { .. }));
    assert_eq!(errors[0].status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(
        errors.iter().all(|e| same_error(e, &errors[0])),
        "the same error"
    );

    // The cool-down: the same error at once, no request.
    for _ in 0..1_000 {
        let e = h.at_once().await.expect_err("cool-down");
        assert!(same_error(&e, &errors[0]));
    }
    run_spawned().await;
    assert_eq!(h.calls(), 2);

    advance(secs(1)).await;
    h.provider.access_token().await.expect_err("fails again");
    assert_eq!(h.calls(), 3);
    // Doubled: 2 s now.
    advance(secs(1)).await;
    h.at_once().await.expect_err("cool-down");
    assert_eq!(h.calls(), 3);
    advance(secs(1)).await;
    h.provider.access_token().await.expect_err("fails again");
    assert_eq!(h.calls(), 4);

    advance(secs(4)).await;
    assert_eq!(name(&h.provider.access_token().await.unwrap()), "tok-5");
    assert_eq!(h.calls(), 5);
}

/// A cool-down too long to represent as an instant (here `Duration::MAX`) means "very long",
/// not "none": the calls after a failure still get the error without a request.
#[tokio::test(start_paused = true)]
async fn an_overflowing_cool_down_still_holds_back_requests() {
    let mut s = settings();
    s.retry = RetryPolicy::no_retries();
    s.failure_cooldown = Duration::MAX;
    let h = harness(s, |_| problem(503, None, None));
    h.provider
        .access_token()
        .await
        .expect_err("the fetch fails");
    assert_eq!(h.calls(), 1);
    for _ in 0..100 {
        h.at_once().await.expect_err("cool-down");
    }
    run_spawned().await;
    assert_eq!(h.calls(), 1, "no request during the cool-down");
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_with_full_jitter_and_stop_at_the_attempt_bound() {
    let mut s = settings();
    s.retry = RetryPolicy::default()
        .max_attempts(5)
        .initial_backoff(Duration::from_millis(100))
        .max_backoff(secs(1));
    let h = harness(s, |n| match n {
        n if n <= 3 => problem(503, None, None),
        n => ok(n, 3600),
    });
    assert_eq!(name(&h.provider.access_token().await.unwrap()), "tok-4");
    assert_eq!(h.calls(), 4);
    let seen = h.seen();
    for (i, ceiling_ms) in [100, 200, 400].into_iter().enumerate() {
        let delay = seen[i + 1].at - seen[i].at;
        assert!(
            delay <= Duration::from_millis(ceiling_ms),
            "retry {i}: {delay:?}"
        );
        // Every attempt is stamped anew (the real fetch signs a new assertion from it).
        assert_eq!(
            seen[i + 1]
                .assertion_time
                .duration_since(seen[i].assertion_time)
                .unwrap(),
            delay
        );
    }

    let mut s = settings();
    s.retry = RetryPolicy::default().max_attempts(3);
    let h = harness(s, |_| problem(500, None, None));
    let e = h.provider.access_token().await.expect_err("always 500");
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(h.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_capped_and_bounded_by_elapsed_time() {
    let mut s = settings();
    s.retry = RetryPolicy::default().max_retry_after(secs(20));
    let h = harness(s, |n| match n {
        1 => problem(503, Some("7"), None),
        2 => problem(429, Some("120"), None),
        n => ok(n, 3600),
    });
    assert_eq!(name(&h.provider.access_token().await.unwrap()), "tok-3");
    let seen = h.seen();
    assert_eq!(seen[1].at - seen[0].at, secs(7), "Retry-After: 7");
    assert_eq!(
        seen[2].at - seen[1].at,
        secs(20),
        "Retry-After: 120, capped at 20 s"
    );

    // 10 s apart, at most 25 s in all: attempts at 0, 10 and 20 s, not at 30 s.
    let mut s = settings();
    s.retry = RetryPolicy::default()
        .max_attempts(10)
        .max_elapsed(secs(25));
    let h = harness(s, |_| problem(503, Some("10"), None));
    let started = Instant::now();
    h.provider.access_token().await.expect_err("always 503");
    assert_eq!(h.calls(), 3);
    assert_eq!(started.elapsed(), secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_client_error_is_not_retried() {
    let h = harness(settings(), |_| problem(400, None, None));
    let e = h.provider.access_token().await.expect_err("400");
    assert!(matches!(&e, Error::Problem { .. }));
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(h.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn invalidate_refreshes_once_and_ignores_older_tokens() {
    let h = harness(settings(), |n| ok(n, 3600).after(secs(1)));
    let first = h.provider.access_token().await.unwrap();

    let reporters: Vec<_> = (0..100)
        .map(|_| {
            let provider = h.provider.clone();
            let token = Arc::clone(&first);
            tokio::spawn(async move {
                let dropped = provider.invalidate(&token);
                (dropped, provider.access_token().await.unwrap())
            })
        })
        .collect();
    let mut dropped = 0;
    for reporter in reporters {
        let (did, token) = reporter.await.unwrap();
        dropped += u32::from(did);
        assert_eq!(name(&token), "tok-2");
    }
    assert_eq!(dropped, 1, "one report dropped the token");
    assert_eq!(h.calls(), 2, "one refresh");

    // A late report about the old token (or a copy of it) changes nothing.
    assert!(!h.provider.invalidate(&first));
    assert!(!h.provider.invalidate(&Token::clone(&first)));
    run_spawned().await;
    assert_eq!(h.calls(), 2);
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-2");

    // The current token, reported by a copy, does refresh.
    let second = h.at_once().await.unwrap();
    assert!(h.provider.invalidate(&Token::clone(&second)));
    assert_eq!(name(&h.provider.access_token().await.unwrap()), "tok-3");
    assert_eq!(h.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_first_caller_neither_cancels_the_fetch_nor_blocks_the_provider() {
    let h = harness(settings(), |n| ok(n, 3600).after(secs(5)));
    let provider = h.provider.clone();
    let first = tokio::spawn(async move { provider.access_token().await });
    run_spawned().await;
    assert_eq!(h.calls(), 1, "the first caller started the fetch");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    // A second caller joins the same fetch.
    let started = Instant::now();
    assert_eq!(name(&h.provider.access_token().await.unwrap()), "tok-1");
    assert_eq!(h.calls(), 1);
    assert_eq!(
        started.elapsed(),
        secs(5),
        "the fetch the cancelled caller started"
    );

    // A lone caller that gives up still leaves a cached token behind.
    let h = harness(settings(), |n| ok(n, 3600).after(secs(5)));
    assert!(timeout(secs(1), h.provider.access_token()).await.is_err());
    sleep(secs(5)).await;
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-1");
    assert_eq!(h.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_server_clock_minutes_ahead_shifts_the_next_assertion() {
    let h = harness(settings(), |n| {
        ok_dated(n, 3600, Some(t0() + secs(300) + secs(u64::from(n))))
    });
    let first = h.provider.access_token().await.unwrap();
    let offset = h.provider.clock_offset().expect("measured");
    assert_eq!(offset.as_millis(), 301_000);

    assert!(h.provider.invalidate(&first));
    h.provider.access_token().await.unwrap();
    let seen = h.seen();
    assert_eq!(seen[0].assertion_time, t0(), "first assertion: local time");
    // The new fetch starts one second later (the minimum interval between fetches).
    assert_eq!(
        seen[1].assertion_time,
        t0() + secs(1) + secs(301),
        "next assertion: the server's time"
    );

    // Below the threshold (5 s) the offset is measured but not applied.
    let h = harness(settings(), |n| ok_dated(n, 3600, Some(t0() + secs(3))));
    let first = h.provider.access_token().await.unwrap();
    assert_eq!(h.provider.clock_offset().unwrap().as_millis(), 3_000);
    h.provider.invalidate(&first);
    h.provider.access_token().await.unwrap();
    assert_eq!(
        h.seen()[1].assertion_time,
        t0() + secs(1),
        "local time, a second later"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_that_reveals_skew_is_retried_once_with_the_server_time() {
    let h = harness(settings(), |n| match n {
        1 => problem(400, None, Some(t0() - secs(600))),
        n => problem(400, None, Some(t0() - secs(600) + secs(u64::from(n)))),
    });
    let e = h.provider.access_token().await.expect_err("still refused");
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(h.calls(), 2, "one extra attempt, not more");
    let seen = h.seen();
    assert_eq!(seen[1].assertion_time, t0() - secs(600));
    assert_eq!(seen[1].at, seen[0].at, "at once");
}

#[tokio::test(start_paused = true)]
async fn the_refresher_keeps_the_token_fresh_without_callers_and_stops_on_drop() {
    let h = harness(settings(), |n| ok(n, 3600));
    let refresher = h.provider.spawn_refresher().unwrap();
    run_spawned().await;
    assert_eq!(h.calls(), 1, "fetched with no caller");
    sleep(secs(3300)).await;
    run_spawned().await;
    assert_eq!(h.calls(), 2, "refreshed at the start of the margin");
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-2");
    drop(refresher);
    sleep(secs(3 * 3600)).await;
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_refresher_waits_out_failures() {
    let mut s = settings();
    s.retry = RetryPolicy::no_retries();
    s.failure_cooldown = secs(1);
    let h = harness(s, |n| match n {
        n if n < 4 => problem(503, None, None),
        n => ok(n, 3600),
    });
    let _refresher = h.provider.spawn_refresher().unwrap();
    run_spawned().await;
    assert_eq!(h.calls(), 1);
    sleep(secs(1)).await;
    run_spawned().await;
    assert_eq!(h.calls(), 2);
    sleep(secs(2)).await;
    run_spawned().await;
    assert_eq!(h.calls(), 3);
    sleep(secs(4)).await;
    run_spawned().await;
    assert_eq!(h.calls(), 4);
    assert_eq!(name(&h.at_once().await.unwrap()), "tok-4");
}

#[tokio::test(start_paused = true)]
async fn debug_never_shows_the_token() {
    let h = harness(settings(), |n| ok(n, 3600));
    h.provider.access_token().await.unwrap();
    let debug = format!("{:?}", h.provider);
    assert!(!debug.contains("tok-"), "{debug}");
    assert!(debug.contains("token_valid_for"), "{debug}");
}

#[test]
fn the_provider_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let h = harness(settings(), |n| ok(n, 3600));
    send_sync(&h.provider);
    send(&h.provider.access_token());
}
