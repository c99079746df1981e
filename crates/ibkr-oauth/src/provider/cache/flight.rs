//! Single flight with a cool-down, knowing nothing of tokens: at most one job runs at a time,
//! every caller that needs its outcome waits for that one job, and after a failure the same
//! failed outcome is handed out for a while without starting another job.
//!
//! [`Flights`] is plain state, kept under the owner's lock (never across an await); the owner
//! registers a flight under the lock, releases it, then spawns the job with the [`Pending`]
//! handle and publishes the outcome through it.

use tokio::sync::watch;
use tokio::time::Instant;

/// The flight bookkeeping of one owner; `O` is what every waiter of a flight gets.
pub(super) struct Flights<O> {
    flight: Option<Flight<O>>,
    next_id: u64,
    /// Consecutive failed flights (reset by a success).
    failures: u32,
    /// After a failure: until when callers get this outcome at once.
    cooldown: Option<(Instant, O)>,
    /// When the last flight was registered: the next one starts no sooner than the minimum
    /// interval after it, whoever asks.
    last_start: Option<Instant>,
}

impl<O> Default for Flights<O> {
    fn default() -> Self {
        Self {
            flight: None,
            next_id: 0,
            failures: 0,
            cooldown: None,
            last_start: None,
        }
    }
}

/// The flight in progress: its waiters subscribe to `outcome`.
struct Flight<O> {
    id: u64,
    outcome: watch::Receiver<Option<O>>,
}

/// A flight registered under the lock, to be spawned after the lock is released (spawning on a
/// runtime that is shutting down drops the task at once, and its drop guard takes the lock).
pub(super) struct Pending<O> {
    pub(super) id: u64,
    /// The job waits until then before it starts (the minimum interval between flights).
    pub(super) not_before: Instant,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) sender: watch::Sender<Option<O>>,
}

/// What a caller that needs a flight's outcome does.
pub(super) enum Join<O> {
    /// Wait for this flight (already running, or just registered and to be spawned).
    Wait(watch::Receiver<Option<O>>, Option<Pending<O>>),
    /// The cool-down after a failure is on: this is the answer.
    Done(O),
}

/// No tokio runtime runs on this thread, so no flight can be spawned.
#[derive(Debug)]
pub(super) struct NoRuntime;

impl<O: Clone> Flights<O> {
    /// Whether a flight is registered and its job still alive.
    pub(super) fn is_running(&mut self) -> bool {
        if let Some(flight) = &self.flight {
            // A sender gone without an outcome means the job died with its runtime.
            if flight.outcome.has_changed().is_ok() {
                return true;
            }
            self.flight = None;
        }
        false
    }

    /// The running flight to wait for, or, when `honour_cooldown`, the cool-down's outcome;
    /// `None` when neither: the caller registers a new flight.
    pub(super) fn join(&mut self, now: Instant, honour_cooldown: bool) -> Option<Join<O>> {
        if self.is_running() {
            return self
                .flight
                .as_ref()
                .map(|f| Join::Wait(f.outcome.clone(), None));
        }
        match &self.cooldown {
            Some((until, outcome)) if honour_cooldown && now < *until => {
                Some(Join::Done(outcome.clone()))
            }
            _ => None,
        }
    }

    /// Registers a new flight, to start no sooner than `min_interval` after the previous one;
    /// the caller spawns its job after releasing the lock.
    pub(super) fn register(
        &mut self,
        now: Instant,
        min_interval: std::time::Duration,
    ) -> Result<(watch::Receiver<Option<O>>, Pending<O>), NoRuntime> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NoRuntime)?;
        let not_before = self
            .last_start
            .and_then(|last| last.checked_add(min_interval))
            .map_or(now, |earliest| earliest.max(now));
        self.last_start = Some(not_before);
        let (sender, receiver) = watch::channel(None);
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.flight = Some(Flight {
            id,
            outcome: receiver.clone(),
        });
        Ok((
            receiver,
            Pending {
                id,
                not_before,
                runtime,
                sender,
            },
        ))
    }

    /// Forgets flight `id` (it settled, or its job died) if it is still the registered one.
    pub(super) fn finish(&mut self, id: u64) {
        if self.flight.as_ref().is_some_and(|f| f.id == id) {
            self.flight = None;
        }
    }

    /// A flight succeeded: the failure count and the cool-down reset.
    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
        self.cooldown = None;
    }

    /// A flight failed; returns how many in a row have.
    pub(super) fn failed(&mut self) -> u32 {
        self.failures = self.failures.saturating_add(1);
        self.failures
    }

    /// Until `until`, callers that honour the cool-down get `outcome` without a flight.
    pub(super) fn cool_down(&mut self, until: Instant, outcome: O) {
        self.cooldown = Some((until, outcome));
    }

    /// When the cool-down ends, if one is on.
    pub(super) fn cooldown_until(&self) -> Option<Instant> {
        self.cooldown.as_ref().map(|(until, _)| *until)
    }

    /// Ends the cool-down at once (the cause is gone: e.g. a token was reported rejected).
    pub(super) fn clear_cooldown(&mut self) {
        self.cooldown = None;
    }
}

/// Waits for a flight's outcome; `None` if its job died without publishing one.
pub(super) async fn outcome<O: Clone>(mut receiver: watch::Receiver<Option<O>>) -> Option<O> {
    match receiver.wait_for(Option::is_some).await {
        Ok(value) => value.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests;
