//! How many forwarded calls are on their way to IBKR at once.
//!
//! Why a bound on calls in flight: the governor spaces out when calls *leave*, but IBKR counts
//! when they *arrive*, and on a busy host a call admitted early can reach IBKR late, next to
//! ones admitted after it (seen: the sandbox counted 50 in one second behind a governor that
//! let 45 go). A call holds its slot from before it asks the governor for its turn until
//! IBKR's answer comes back, so every call IBKR counts within a second either was admitted
//! within that second (the governor's budget) or was already in flight when it began (at most
//! the number of slots), whatever the delays on the way: IBKR sees at most budget + slots.
//!
//! `/iserver/marketdata/history` has its own bound: IBKR serves at most 5 of them at once per
//! username.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// IBKR's bound on `/iserver/marketdata/history` calls at once, per username.
pub const HISTORY_AT_ONCE: usize = 5;

const HISTORY_PATH: &str = "/v1/api/iserver/marketdata/history";

/// The gateway's slots for calls on their way to IBKR.
#[derive(Debug)]
pub(super) struct Slots {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    history: Arc<Semaphore>,
    max_wait: Duration,
}

/// The slots a call holds until IBKR's answer is back.
#[derive(Debug)]
pub(super) struct Held {
    _history: Option<OwnedSemaphorePermit>,
    _in_flight: OwnedSemaphorePermit,
}

/// Which bound kept a call from leaving within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Busy {
    /// Every slot for calls in flight stayed taken (the number of slots).
    InFlight(usize),
    /// Five `/iserver/marketdata/history` calls stayed in flight.
    History,
}

impl Busy {
    pub(super) fn message(self) -> String {
        match self {
            Busy::InFlight(n) => format!(
                "not sent: the gateway's {n} calls in flight to IBKR stayed busy for the whole \
                 wait; try again shortly, or raise --max-in-flight"
            ),
            Busy::History => format!(
                "not sent: IBKR serves at most {HISTORY_AT_ONCE} /iserver/marketdata/history \
                 calls at once and that many stayed in flight; try again shortly"
            ),
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Busy::InFlight(_) => "in_flight",
            Busy::History => "history",
        }
    }
}

fn is_history(path: &str) -> bool {
    path.trim_end_matches('/') == HISTORY_PATH
}

impl Slots {
    /// `max_in_flight` calls at once (at least 1); a call waits up to `max_wait` for its slots.
    pub(super) fn new(max_in_flight: usize, max_wait: Duration) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            history: Arc::new(Semaphore::new(HISTORY_AT_ONCE)),
            max_wait,
        }
    }

    /// Takes the slots a call to `path` needs (the history one first, so that a waiting
    /// history call does not hold a slot the others could use), waiting up to the bound.
    pub(super) async fn take(&self, path: &str) -> Result<Held, Busy> {
        let deadline = Instant::now() + self.max_wait;
        let history = if is_history(path) {
            let permit =
                tokio::time::timeout_at(deadline, Arc::clone(&self.history).acquire_owned())
                    .await
                    .map_err(|_| Busy::History)?
                    .map_err(|_| Busy::History)?;
            Some(permit)
        } else {
            None
        };
        let in_flight =
            tokio::time::timeout_at(deadline, Arc::clone(&self.in_flight).acquire_owned())
                .await
                .map_err(|_| Busy::InFlight(self.max_in_flight))?
                .map_err(|_| Busy::InFlight(self.max_in_flight))?;
        Ok(Held {
            _history: history,
            _in_flight: in_flight,
        })
    }

    /// Calls in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn in_flight_calls_are_bounded_and_a_wait_is_bounded() {
        let slots = Slots::new(2, Duration::from_millis(500));
        let first = slots.take("/v1/api/iserver/accounts").await.unwrap();
        let _second = slots.take("/v1/api/portfolio/accounts").await.unwrap();
        assert_eq!(slots.in_flight(), 2);
        let started = Instant::now();
        assert_eq!(
            slots.take("/v1/api/iserver/accounts").await.unwrap_err(),
            Busy::InFlight(2)
        );
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        // A slot freed within the wait is taken.
        let freed = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(first);
        };
        let (taken, ()) = tokio::join!(slots.take("/v1/api/iserver/accounts"), freed);
        assert!(taken.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_five_history_calls_at_once() {
        let slots = Slots::new(8, Duration::from_millis(200));
        let mut held = Vec::new();
        for _ in 0..HISTORY_AT_ONCE {
            held.push(
                slots
                    .take("/v1/api/iserver/marketdata/history")
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            slots
                .take("/v1/api/iserver/marketdata/history/")
                .await
                .unwrap_err(),
            Busy::History
        );
        // Other calls still have slots; the refused history call holds none.
        assert_eq!(slots.in_flight(), 5);
        let _other = slots.take("/v1/api/iserver/accounts").await.unwrap();
        drop(held.pop());
        assert!(
            slots
                .take("/v1/api/iserver/marketdata/history")
                .await
                .is_ok()
        );
    }
}
