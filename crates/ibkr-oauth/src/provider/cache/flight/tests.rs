//! Unit tests of `flight` (may use its private items).

use super::*;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn one_flight_then_cooldown() {
    let mut flights = Flights::<Result<u32, &'static str>>::default();
    let now = Instant::now();
    assert!(flights.join(now, true).is_none());
    let (receiver, pending) = flights.register(now, Duration::from_secs(1)).unwrap();
    assert_eq!(pending.not_before, now, "the first flight starts at once");
    assert!(matches!(flights.join(now, true), Some(Join::Wait(_, None))));
    pending.sender.send(Some(Err("down"))).unwrap();
    assert_eq!(outcome(receiver).await, Some(Err("down")));
    flights.finish(pending.id);
    assert_eq!(flights.failed(), 1);
    flights.cool_down(now + Duration::from_secs(1), Err("down"));
    assert!(matches!(
        flights.join(now, true),
        Some(Join::Done(Err("down")))
    ));
    assert!(
        flights.join(now, false).is_none(),
        "the cool-down is not honoured"
    );
    assert!(flights.join(now + Duration::from_secs(1), true).is_none());
    flights.succeeded();
    assert_eq!(flights.cooldown_until(), None);
    let (_, next) = flights.register(now, Duration::from_secs(1)).unwrap();
    assert_eq!(
        next.not_before,
        now + Duration::from_secs(1),
        "the minimum interval holds"
    );
}

#[tokio::test]
async fn a_dead_job_is_not_waited_for() {
    let mut flights = Flights::<u32>::default();
    let (receiver, pending) = flights.register(Instant::now(), Duration::ZERO).unwrap();
    drop(pending);
    assert!(!flights.is_running());
    assert_eq!(outcome(receiver).await, None);
}

#[test]
fn no_runtime_no_flight() {
    let mut flights = Flights::<u32>::default();
    assert!(flights.register(Instant::now(), Duration::ZERO).is_err());
}
