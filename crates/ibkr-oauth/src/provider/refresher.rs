//! The background refresher: keeps the token fresh when nobody asks for it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::Inner;
use super::state::Reason;
use crate::error::Error;

/// The refresher never looks twice within this, whatever the server answers.
const MIN_REFRESHER_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the token fresh in the background while it lives; see
/// [`TokenProvider::spawn_refresher`](super::TokenProvider::spawn_refresher). Dropping it stops
/// the task (a fetch already running completes for the callers waiting on it).
#[must_use = "the background refresh stops as soon as the Refresher is dropped"]
#[derive(Debug)]
pub struct Refresher {
    task: tokio::task::JoinHandle<()>,
}

impl Refresher {
    pub(super) fn spawn(inner: &Arc<Inner>) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let task = runtime.spawn(refresher(Arc::downgrade(inner)));
        Ok(Self { task })
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    /// When the refresher should next look: the start of the refresh margin, or the end of the
    /// cool-down, or now.
    fn next_refresh(&self) -> Instant {
        let now = Instant::now();
        if let Some(cached) = self.current.load().as_deref() {
            if cached.valid(now, self.clock.now()) {
                return cached.refresh_at;
            }
        }
        self.lock().cooldown_until().unwrap_or(now)
    }

    /// The refresher's turn: refresh if due (joining a running fetch), and wait for it.
    async fn refresh_if_due(self: &Arc<Self>) {
        let join = {
            let mut flights = self.lock();
            let now = Instant::now();
            let wall = self.clock.now();
            let valid = match self.current.load().as_deref() {
                Some(cached) if cached.fresh(now, wall) => return,
                Some(cached) if cached.valid(now, wall) => {
                    // Keep callers from starting a second refresh.
                    let _ = cached.claim_refresh();
                    true
                }
                _ => false,
            };
            self.join_or_register(&mut flights, now, !valid, Reason::Background)
        };
        let _ = self.wait(join, Reason::Background).await;
    }
}

/// The background refresher's loop; ends when the provider is gone.
async fn refresher(provider: Weak<Inner>) {
    let mut last_run: Option<Instant> = None;
    loop {
        let Some(inner) = provider.upgrade() else {
            return;
        };
        let mut wake = inner.next_refresh();
        if let Some(last) = last_run {
            wake = wake.max(last + MIN_REFRESHER_INTERVAL);
        }
        drop(inner);
        tokio::time::sleep_until(wake).await;
        let Some(inner) = provider.upgrade() else {
            return;
        };
        last_run = Some(Instant::now());
        inner.refresh_if_due().await;
    }
}
