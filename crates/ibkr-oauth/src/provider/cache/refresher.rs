//! The refresh-ahead driver: keeps the token fresh when nobody asks for it. It only asks the
//! cache when to look and to refresh if due.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::Cache;
use crate::error::Error;

/// The refresher never looks twice within this, whatever the server answers.
const MIN_REFRESHER_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the token fresh in the background while it lives; see
/// [`TokenProvider::spawn_refresher`](crate::provider::TokenProvider::spawn_refresher). Dropping it stops
/// the task (a fetch already running completes for the callers waiting on it).
#[must_use = "the background refresh stops as soon as the Refresher is dropped"]
#[derive(Debug)]
pub struct Refresher {
    task: tokio::task::JoinHandle<()>,
}

impl Refresher {
    pub(in crate::provider) fn spawn(cache: &Arc<Cache>) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let task = runtime.spawn(refresher(Arc::downgrade(cache)));
        Ok(Self { task })
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The background refresher's loop; ends when the provider is gone.
async fn refresher(provider: Weak<Cache>) {
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
