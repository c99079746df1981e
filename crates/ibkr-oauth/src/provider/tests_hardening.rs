//! The provider against clocks that lie and settings that would storm: each test fails
//! without its fix (bounded `Date` offsets, the local-time fallback, both clocks, the minimum
//! interval, one warning, the corrective retry outside the policy).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tokio::time::sleep;

use super::builder::Settings;
use super::cache::Margin;
use super::tests::{harness, name, ok, ok_dated, problem, secs, settings, t0};
use super::{ClientFetch, RetryPolicy, TokenProvider};
use crate::assertion::ClientAssertion;
use crate::client::TokenClient;
use crate::error::{ConfigError, Error};
use crate::request::TokenRequest;

const HOURS_2: u64 = 2 * 60 * 60;

#[tokio::test(start_paused = true)]
async fn a_date_in_1970_is_ignored_and_signing_stays_possible() {
    let h = harness(settings(), |n| match n {
        1 => problem(503, None, Some(UNIX_EPOCH + secs(1_000))),
        n => ok(n, 3600),
    });
    let token = h.provider.access_token().await.expect("the retry works");
    assert_eq!(name(&token), "tok-2");
    assert_eq!(
        h.provider.clock_offset(),
        None,
        "the 1970 Date was not believed"
    );
    let seen = h.seen();
    let drift = seen[1]
        .assertion_time
        .duration_since(t0())
        .expect("after t0");
    assert!(
        drift < secs(60),
        "stamped with the local time, not near the epoch"
    );
}

#[tokio::test(start_paused = true)]
async fn an_offset_past_the_maximum_is_not_applied() {
    let h = harness(settings(), |n| {
        ok_dated(n, 3600, Some(t0() + secs(HOURS_2)))
    });
    let first = h.provider.access_token().await.unwrap();
    assert_eq!(h.provider.clock_offset(), None);
    h.provider.invalidate(&first);
    h.provider.access_token().await.unwrap();
    assert_eq!(h.seen()[1].assertion_time, t0() + secs(1), "local time");
}

#[tokio::test(start_paused = true)]
async fn a_gateway_date_that_misleads_is_dropped_after_local_time_works() {
    // The gateway's Date runs 2 h ahead; the server that checks assertions is on time. The
    // maximum is raised so that the 2 h offset is believed at first.
    let mut s = settings();
    s.max_clock_offset = secs(3 * HOURS_2);
    let gateway = Some(t0() + secs(HOURS_2));
    let h = harness(s, move |n| match n {
        2 => problem(400, None, gateway), // stamped 2 h ahead: refused
        n => ok_dated(n, 3600, gateway),
    });
    let first = h.provider.access_token().await.unwrap();
    assert!(h.provider.clock_offset().is_some());
    h.provider.invalidate(&first);
    let second = h
        .provider
        .access_token()
        .await
        .expect("the local time works");
    assert_eq!(name(&second), "tok-3");
    let seen = h.seen();
    assert_eq!(
        seen[1].assertion_time,
        t0() + secs(1) + secs(HOURS_2),
        "corrected"
    );
    assert_eq!(
        seen[2].assertion_time,
        t0() + secs(1),
        "then the plain local time"
    );
    assert_eq!(seen[2].at, seen[1].at, "at once");

    // From now on the misleading offset is not applied, though every answer repeats it.
    h.provider.invalidate(&second);
    h.provider.access_token().await.unwrap();
    assert_eq!(h.calls(), 4);
    assert_eq!(h.seen()[3].assertion_time, t0() + secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_that_jumps_ahead_leads_to_a_refresh() {
    let h = harness(settings(), |n| ok(n, 3600));
    assert_eq!(name(&h.provider.access_token().await.unwrap()), "tok-1");
    // Resume from sleep: the wall clock moved 2 hours, tokio's monotonic clock did not.
    h.jumped_secs.store(HOURS_2 as u32, Ordering::SeqCst);
    let token = h.provider.access_token().await.unwrap();
    assert_eq!(name(&token), "tok-2", "the expired token is not handed out");
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn fetches_keep_a_minimum_interval_for_every_caller() {
    // Tokens without a lifetime: each is expired when it arrives.
    let h = harness(settings(), |n| ok(n, 0));
    for _ in 0..10 {
        h.provider.access_token().await.unwrap();
    }
    let seen = h.seen();
    assert_eq!(seen.len(), 10);
    for pair in seen.windows(2) {
        assert!(pair[1].at - pair[0].at >= secs(1), "{pair:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_corrective_retry_happens_even_with_no_retries() {
    let mut s = settings();
    s.retry = RetryPolicy::no_retries();
    let h = harness(s, |_| problem(400, None, Some(t0() - secs(600))));
    let e = h.provider.access_token().await.expect_err("refused");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(
        h.calls(),
        2,
        "the one corrective attempt, however the policy is set"
    );
    assert_eq!(h.seen()[1].assertion_time, t0() - secs(600));

    // A plain server failure is not retried under no_retries.
    let mut s = settings();
    s.retry = RetryPolicy::no_retries();
    let h = harness(s, |_| problem(503, None, None));
    h.provider.access_token().await.expect_err("failed");
    assert_eq!(h.calls(), 1);
}

#[test]
fn settings_that_make_a_fresh_token_due_at_once_are_refused() {
    for fraction in [1.0, 0.95, -0.1, f64::NAN] {
        let client = TokenClient::new().expect("client");
        let request = TokenRequest::builder()
            .assertion(ClientAssertion::new("a.b.c"))
            .build()
            .expect("request");
        let error = TokenProvider::with_source(ClientFetch::new(client, request))
            .refresh_fraction(fraction)
            .build()
            .expect_err("refused");
        assert!(
            matches!(error, Error::Config(ConfigError::Provider(_))),
            "{fraction}: {error:?}"
        );
    }
}

/// Counts `warn` events.
struct WarnCounter(Arc<Mutex<u32>>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            *self.0.lock().unwrap() += 1;
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn outside_a_runtime_one_warning_and_the_hit_path_stays_lock_free() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Every token is inside its refresh margin from the start.
    let s = Settings {
        margin: Margin {
            max: Duration::MAX,
            fraction: 1.0,
        },
        ..settings()
    };
    let h = runtime.block_on(async {
        let h = harness(s, |n| ok(n, 3600));
        h.provider.access_token().await.unwrap();
        h
    });
    drop(runtime);

    let warnings = Arc::new(Mutex::new(0));
    tracing::subscriber::with_default(WarnCounter(Arc::clone(&warnings)), || {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        for _ in 0..1_000 {
            let mut call = std::pin::pin!(h.provider.access_token());
            match call.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(token) => assert_eq!(name(&token.unwrap()), "tok-1"),
                std::task::Poll::Pending => panic!("the hit path waited"),
            }
        }
    });
    assert_eq!(
        *warnings.lock().unwrap(),
        1,
        "one warning, not one per call"
    );
    assert_eq!(h.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_waits_out_its_pause_by_both_clocks() {
    // Stale on error: the retry instant must hold by the wall clock too, or every caller
    // inside the margin would start a refresh at once.
    let mut s = settings();
    s.retry = RetryPolicy::no_retries();
    s.failure_cooldown = secs(10);
    let h = harness(s, |n| match n {
        1 => ok(n, 100),
        _ => problem(503, None, None),
    });
    h.provider.access_token().await.unwrap();
    sleep(secs(85)).await; // inside the 20 s margin of a 100 s token
    h.provider.access_token().await.unwrap();
    super::tests::run_spawned().await;
    assert_eq!(h.calls(), 2, "the refresh ahead ran and failed");
    for _ in 0..100 {
        h.provider.access_token().await.unwrap();
    }
    super::tests::run_spawned().await;
    assert_eq!(h.calls(), 2, "no new refresh during the pause");
}

/// One trait for a source of tokens: the provider caches in front of any `TokenSource`, here
/// one that signs nothing and so answers `fetch` with its `access_token` (the default).
#[tokio::test]
async fn the_provider_caches_in_front_of_any_token_source() {
    use secrecy::{ExposeSecret, SecretString};
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let source = crate::FnSource::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Ok(Arc::new(
                crate::Token::builder(SecretString::from("from-source"))
                    .expires_in(Duration::from_secs(3600))
                    .build()?,
            ))
        })
    });
    let provider = TokenProvider::with_source(source).build().unwrap();
    for _ in 0..3 {
        let token = provider.access_token().await.unwrap();
        assert_eq!(token.access_token().expose_secret(), "from-source");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "cached after the first fetch"
    );
}
