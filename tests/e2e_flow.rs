//! End to end through `TokenProvider` against the sandbox on loopback: the cache, clock-skew
//! correction measured from the sandbox's `Date`, retries with a fresh assertion per attempt,
//! `Retry-After`, and refusals that are not retried.
//!
//! Real time with short backoffs: nothing here asserts on how long anything took. The wait a
//! `Retry-After` asked for is read from the provider's `ibkr_oauth.retry` span.

mod common;

use std::collections::HashSet;
use std::fmt::{Debug, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{CLIENT, Env, KID, SCOPE, claim_i64, claim_str, sandbox_time_in, unix, unix_now};
use ibkr_oauth::provider::{DEFAULT_SKEW_THRESHOLD, RetryPolicy, TokenProvider};
use ibkr_oauth::{Algorithm, Error, ExposeSecret, Signer, StatusCode};
use ibkr_oauth_sandbox::{
    DEFAULT_IAT_TOLERANCE, DEFAULT_MAX_ASSERTION_LIFETIME, Fault, RecordedRequest,
};

/// Retries within milliseconds, so that only a `Retry-After` makes a retry wait longer.
fn quick_retries() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(1))
}

fn provider_with(env: &Env, signer: Signer, policy: RetryPolicy) -> TokenProvider {
    TokenProvider::builder(env.client.clone(), signer)
        .scope(SCOPE)
        .retry_policy(policy)
        .build()
        .expect("a valid provider")
}

fn provider(env: &Env) -> TokenProvider {
    provider_with(env, env.signer(), quick_retries())
}

fn jtis(requests: &[RecordedRequest]) -> HashSet<String> {
    requests.iter().map(|r| claim_str(r, "jti")).collect()
}

#[tokio::test]
async fn the_first_call_fetches_and_the_second_is_served_from_the_cache() {
    let env = Env::start(Algorithm::EdDSA).await;
    let provider = provider(&env);

    let first = provider.access_token().await.unwrap();
    assert_eq!(env.sandbox.request_count(), 1);
    let second = provider.access_token().await.unwrap();
    assert_eq!(env.sandbox.request_count(), 1, "served from the cache");

    assert_eq!(
        first.access_token().expose_secret(),
        second.access_token().expose_secret()
    );
    let claims = env
        .sandbox
        .verify_access_token(second.access_token().expose_secret())
        .expect("the sandbox issued it");
    assert_eq!(
        (claims.sub.as_str(), claims.scope.as_deref()),
        (CLIENT, Some(SCOPE))
    );
    let logged = env.request(1);
    assert_eq!(logged.status(), Some(200));
    assert_eq!(logged.assertion_header.as_ref().unwrap()["kid"], KID);
    assert_eq!(env.sandbox.tokens_issued(), 1);
}

/// The sandbox's clock is moved `offset_secs` away after a first token. The next fetch (the
/// token is reported rejected) signs with the local time, is refused with `refusal(iat, exp,
/// sandbox time)`, measures the offset from the refusal's `Date` and is retried at once with
/// the corrected time, which is granted; the fetch after that is corrected from the start.
async fn skew_is_measured_and_corrected(
    offset_secs: i64,
    refusal: impl Fn(i64, i64, i64) -> String,
) {
    let env = Env::start(Algorithm::EdDSA).await;
    let provider = provider(&env);
    let first = provider.access_token().await.unwrap();
    let in_sync = provider
        .clock_offset()
        .expect("measured from the first Date");
    assert!(in_sync.magnitude() <= DEFAULT_SKEW_THRESHOLD, "{in_sync}");

    env.sandbox.set_clock_offset(offset_secs);
    assert!(provider.invalidate(&first));
    let second = provider.access_token().await.unwrap();

    assert_eq!(env.sandbox.request_count(), 3, "refused once, then granted");
    let offset = provider.clock_offset().expect("measured");
    assert!(offset.magnitude() > DEFAULT_SKEW_THRESHOLD);
    // `Date` has one-second resolution, and the measure includes the loopback latency.
    assert!(
        (offset.as_millis() - offset_secs * 1000).abs() <= 2_000,
        "measured {offset}, moved by {offset_secs} s"
    );

    let unshifted = env.request(2);
    let detail = unshifted.detail().expect("refused").to_owned();
    let sandbox_time = sandbox_time_in(&detail, unix_now() + offset_secs);
    assert_eq!(unshifted.status(), Some(400));
    assert_eq!(
        detail,
        refusal(
            claim_i64(&unshifted, "iat"),
            claim_i64(&unshifted, "exp"),
            sandbox_time
        )
    );

    let shifted = env.request(3);
    assert_eq!(shifted.status(), Some(200));
    let shift = claim_i64(&shifted, "iat") - claim_i64(&unshifted, "iat");
    assert!(
        (shift - offset_secs).abs() <= 2,
        "iat moved by {shift} s, the clock by {offset_secs} s"
    );
    // Stamped with the sandbox's time: iat is back-dated by the signer's 10 s from it.
    let received = unix(shifted.received_at);
    assert!(
        (claim_i64(&shifted, "iat") - (received - 10)).abs() <= 2,
        "{:?} received at {received}",
        shifted.assertion_claims
    );
    assert_eq!(
        jtis(&[unshifted, shifted]).len(),
        2,
        "a fresh jti on the retry"
    );
    env.sandbox
        .verify_access_token(second.access_token().expose_secret())
        .expect("the sandbox issued it");

    // The measured offset now stamps the first attempt: one request, granted.
    assert!(provider.invalidate(&second));
    provider.access_token().await.unwrap();
    assert_eq!(env.sandbox.request_count(), 4);
    let corrected = env.request(4);
    assert_eq!(corrected.status(), Some(200));
    let received = unix(corrected.received_at);
    assert!((claim_i64(&corrected, "iat") - (received - 10)).abs() <= 2);
}

#[tokio::test]
async fn a_server_clock_three_minutes_behind_is_measured_and_moves_iat_back() {
    // Unshifted, iat (local - 10 s) is 170 s ahead of the sandbox: past its 60 s tolerance,
    // while exp (local + 60 s) is 240 s ahead: within its 300 s limit. So iat is what fails.
    let behind = 180;
    assert!(behind - 10 > DEFAULT_IAT_TOLERANCE.as_secs());
    assert!(behind + 60 <= DEFAULT_MAX_ASSERTION_LIFETIME.as_secs());
    let tolerance = DEFAULT_IAT_TOLERANCE.as_secs();
    skew_is_measured_and_corrected(-i64::try_from(behind).unwrap(), |iat, _, now| {
        format!(
            "client_assertion: iat {iat} is in the future by more than {tolerance} seconds \
             (sandbox time {now})"
        )
    })
    .await;
}

#[tokio::test]
async fn a_server_clock_ten_minutes_ahead_is_measured_and_moves_exp_forward() {
    // Unshifted, exp (local + 60 s) is 540 s in the sandbox's past.
    skew_is_measured_and_corrected(600, |_, exp, now| {
        format!("client_assertion: exp {exp} is in the past (sandbox time {now})")
    })
    .await;
}

#[tokio::test]
async fn an_injected_500_is_retried_with_a_fresh_jti() {
    let env = Env::start(Algorithm::EdDSA).await;
    env.sandbox.inject_fault(Fault::ServerError, 1);
    let provider = provider(&env);

    let token = provider.access_token().await.unwrap();

    let requests = env.sandbox.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[0].fault.clone(), requests[0].status()),
        (Some(Fault::ServerError), Some(500))
    );
    assert_eq!(
        (requests[1].fault.clone(), requests[1].status()),
        (None, Some(200))
    );
    assert_eq!(jtis(&requests).len(), 2, "a new assertion per attempt");
    env.sandbox
        .verify_access_token(token.access_token().expose_secret())
        .expect("the sandbox issued it");
}

#[tokio::test]
async fn persistent_500s_end_after_max_attempts_and_the_error_is_shared_in_the_cool_down() {
    let env = Env::start(Algorithm::EdDSA).await;
    env.sandbox.inject_fault(Fault::ServerError, 10);
    let provider = TokenProvider::builder(env.client.clone(), env.signer())
        .scope(SCOPE)
        .retry_policy(quick_retries().max_attempts(3))
        .failure_cooldown(Duration::from_secs(600))
        .build()
        .unwrap();

    let error = provider.access_token().await.unwrap_err();

    let Error::Problem { problem, .. } = &error else {
        panic!("expected Error::Problem, got {error:?}");
    };
    assert_eq!(problem.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(error.is_retryable());
    let requests = env.sandbox.requests();
    assert_eq!(requests.len(), 3, "max_attempts");
    assert!(requests.iter().all(|r| r.status() == Some(500)));
    assert_eq!(jtis(&requests).len(), 3);

    let again = provider.access_token().await.unwrap_err();
    let Error::Problem {
        problem: again_problem,
        ..
    } = &again
    else {
        panic!("{again:?}");
    };
    assert!(Arc::ptr_eq(problem, again_problem), "the same error");
    assert_eq!(
        env.sandbox.request_count(),
        3,
        "no request in the cool-down"
    );
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let env = Env::start(Algorithm::EdDSA).await;
    let signer = Signer::builder(CLIENT, KID, env.key.clone())
        .audience("https://elsewhere/token")
        .build()
        .unwrap();
    let provider = provider_with(&env, signer, quick_retries());

    let error = provider.access_token().await.unwrap_err();

    let Error::Problem { problem, .. } = &error else {
        panic!("expected Error::Problem, got {error:?}");
    };
    assert_eq!(problem.http_status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        problem.detail(),
        Some(
            r#"client_assertion: aud "https://elsewhere/token" is not the expected audience "/token""#
        )
    );
    assert!(!error.is_retryable());
    assert_eq!(env.sandbox.request_count(), 1);
}

/// Writes the name and fields of every span into one string.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<String>>, Arc<AtomicU64>);

struct Fields<'a>(&'a Mutex<String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        let _ = write!(self.0.lock().unwrap(), " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let _ = write!(self.0.lock().unwrap(), "\n[{}]", span.metadata().name());
        span.record(&mut Fields(&self.0));
        tracing::span::Id::from_u64(self.1.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    // The provider's fetch runs in a task on this (current-thread) runtime: this thread's
    // subscriber sees its spans.
    let spans = Spans::default();
    let _subscriber = tracing::subscriber::set_default(spans.clone());
    let env = Env::start(Algorithm::EdDSA).await;
    env.sandbox.inject_fault(
        Fault::TooManyRequests {
            retry_after: Duration::from_secs(1),
        },
        1,
    );
    let provider = provider(&env);

    let token = provider.access_token().await.unwrap();

    let requests = env.sandbox.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status(), Some(429));
    assert_eq!(requests[1].status(), Some(200));
    assert_eq!(jtis(&requests).len(), 2, "a new assertion per attempt");
    env.sandbox
        .verify_access_token(token.access_token().expose_secret())
        .expect("the sandbox issued it");
    // The one wait was the server's second, not the 1 ms backoff.
    let spans = spans.0.lock().unwrap().clone();
    let retries: Vec<&str> = spans
        .lines()
        .filter(|l| l.starts_with("[ibkr_oauth.retry]"))
        .collect();
    assert_eq!(
        retries,
        ["[ibkr_oauth.retry] attempt=2 status=429 delay_ms=1000 retry_after=true"],
        "{spans}"
    );
}
