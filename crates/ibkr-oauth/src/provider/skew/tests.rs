//! Unit tests of `skew` (may use its private items).

use super::*;
use std::time::UNIX_EPOCH;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn offset_sign_and_apply() {
    let ahead = ClockOffset::between(t(1_000_300), t(1_000_000));
    assert_eq!(ahead.as_millis(), 300_000);
    assert!(ahead.server_ahead());
    assert_eq!(ahead.apply(t(5_000)), t(5_300));
    assert_eq!(ahead.to_string(), "+300.000 s");
    let behind = ClockOffset::between(t(1_000_000), t(1_000_002));
    assert_eq!(behind.as_millis(), -2_000);
    assert_eq!(behind.magnitude(), Duration::from_secs(2));
    assert_eq!(behind.apply(t(5_000)), t(4_998));
    assert_eq!(behind.to_string(), "-2.000 s");
}

#[test]
fn correction_only_above_threshold() {
    let tracker = SkewTracker::new(Duration::from_secs(5), Duration::from_secs(3600));
    assert_eq!(tracker.measured(), None);
    tracker.record(t(1_000_003), t(1_000_000));
    assert_eq!(tracker.measured().map(|o| o.as_millis()), Some(3_000));
    assert_eq!(tracker.correction(), None);
    tracker.record(t(1_000_000), t(1_000_060));
    assert_eq!(tracker.correction().map(|o| o.as_millis()), Some(-60_000));
}

#[test]
fn implausible_offsets_are_ignored() {
    let tracker = SkewTracker::new(Duration::from_secs(5), Duration::from_secs(3600));
    tracker.record(t(1_000_060), t(1_000_000));
    // A Date in 1970 is not the server's clock: the last plausible offset stays.
    assert_eq!(tracker.record(t(0), t(1_000_000)), None);
    assert_eq!(tracker.correction().map(|o| o.as_millis()), Some(60_000));
}

#[test]
fn a_distrusted_offset_is_not_applied_until_it_moves() {
    let tracker = SkewTracker::new(Duration::from_secs(5), Duration::from_secs(3 * 3600));
    tracker.record(t(1_007_200), t(1_000_000));
    assert!(tracker.correction().is_some());
    tracker.distrust();
    assert_eq!(tracker.correction(), None);
    tracker.record(t(1_007_201), t(1_000_000));
    assert_eq!(
        tracker.correction(),
        None,
        "the same offset, one second of noise"
    );
    tracker.record(t(1_000_060), t(1_000_000));
    assert_eq!(tracker.correction().map(|o| o.as_millis()), Some(60_000));
}
