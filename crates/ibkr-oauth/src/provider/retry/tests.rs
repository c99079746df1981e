//! Unit tests of `retry` (may use its private items).

use super::*;

#[test]
fn ceiling_doubles_up_to_the_cap() {
    let p = RetryPolicy::default()
        .initial_backoff(Duration::from_millis(100))
        .max_backoff(Duration::from_millis(500));
    let ceilings: Vec<_> = (1..=5).map(|n| p.ceiling(n).as_millis()).collect();
    assert_eq!(ceilings, [100, 200, 400, 500, 500]);
    assert_eq!(p.ceiling(200), Duration::from_millis(500));
}

#[test]
fn jitter_stays_below_the_ceiling_and_varies() {
    let p = RetryPolicy::default();
    let delays: Vec<_> = (0..64).map(|_| p.delay(3, None)).collect();
    assert!(delays.iter().all(|d| *d < p.ceiling(3)));
    assert!(delays.iter().any(|d| *d != delays[0]));
}

#[test]
fn retry_after_is_capped() {
    let p = RetryPolicy::default().max_retry_after(Duration::from_secs(5));
    assert_eq!(
        p.delay(1, Some(Duration::from_secs(2))),
        Duration::from_secs(2)
    );
    assert_eq!(
        p.delay(1, Some(Duration::from_secs(60))),
        Duration::from_secs(5)
    );
}

#[test]
fn zero_attempts_means_one() {
    assert_eq!(RetryPolicy::default().max_attempts(0).max_attempts, 1);
}
