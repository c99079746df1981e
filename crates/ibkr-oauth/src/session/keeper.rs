//! The keeper: a task that tickles about every interval and heals what it finds. It holds
//! the session weakly (the last handle's drop ends it), never dies on an error, and never
//! waits less than a second between two rounds.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Compete, Inner, SessionEvent, SessionState};
use crate::error::Error;

/// Never two rounds closer than this: IBKR paces `/tickle` at one a second.
const MIN_WAIT: Duration = Duration::from_secs(1);

/// Starts the keeper if it is not running.
pub(crate) fn start(inner: &Arc<Inner>) {
    let mut keeper = inner.keeper.lock().unwrap_or_else(|p| p.into_inner());
    if keeper.as_ref().is_some_and(|k| !k.is_finished()) || inner.closed.load(Ordering::SeqCst) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(inner);
    *keeper = Some(runtime.spawn(run(weak)));
}

/// The keeper's loop.
async fn run(weak: Weak<Inner>) {
    let mut failures: u32 = 0;
    loop {
        let wait = match weak.upgrade() {
            Some(inner) => inner.next_wait(failures),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        if !inner.may_act() {
            // Another process may hold the session now: no tickle, no healing.
            tracing::debug!("the session's fence says no; skipping the keep-alive round");
            continue;
        }
        failures = match inner.keep_once().await {
            Ok(()) => 0,
            Err(()) => failures.saturating_add(1),
        };
    }
}

/// A number in `[0, 1)` for jitter (not cryptographic: spreads clients apart).
fn unit_random() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Inner {
    /// The wait before the next round: the tickle interval less up to a tenth after a good
    /// round; after `failures` failed ones, the backoff (doubling from the initial one up to
    /// the max, between half and all of it); never under a second.
    pub(crate) fn next_wait(&self, failures: u32) -> Duration {
        let wait = if failures == 0 {
            self.config
                .tickle_interval
                .mul_f64(1.0 - 0.1 * unit_random())
        } else {
            let factor = 1u32
                .checked_shl(failures.saturating_sub(1))
                .unwrap_or(u32::MAX);
            let ceiling = self
                .timing
                .initial_backoff
                .checked_mul(factor)
                .unwrap_or(Duration::MAX)
                .min(self.timing.max_backoff);
            ceiling.mul_f64(0.5 + 0.5 * unit_random())
        };
        wait.max(MIN_WAIT)
    }

    /// Whether failures are expected now (IBKR's nightly reset).
    fn in_reset_window(&self) -> bool {
        self.config.reset_window.contains(self.clock.now())
    }

    /// Logs a failure of the keeper: quietly inside the reset window.
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        if self.in_reset_window() {
            tracing::debug!(error = %error, "{what} failed inside IBKR's nightly reset window; retrying");
        } else {
            tracing::warn!(error = %error, "{what} failed; retrying");
        }
    }

    fn emit(&self, event: &SessionEvent) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    /// Marks the session stale (kept as it is, the failure as reason).
    fn stale(&self, reason: String) {
        let state = self.status.borrow().state;
        self.set_status(state, Some(Arc::from(reason)), true);
    }

    /// One round: open the session if it is not, else tickle and heal. `Err` when the round
    /// failed (the next one comes after a backoff).
    pub(crate) async fn keep_once(self: &Arc<Self>) -> Result<(), ()> {
        let Some(sso) = self.current() else {
            return match self.open_sso(None).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    self.failed("opening the SSO session", &e);
                    Err(())
                }
            };
        };
        let sent = tokio::time::Instant::now();
        let tickle = match self.calls.tickle(&sso).await {
            Ok(tickle) => {
                self.emit(&SessionEvent::Tickled {
                    latency: sent.elapsed(),
                });
                tickle
            }
            Err(e) if e.is_unauthorized() => {
                tracing::info!("the SSO session ended (401 on tickle); opening a new one");
                return match self.open_sso(Some(&sso)).await {
                    Ok(_) => {
                        self.emit(&SessionEvent::Reopened { brokerage: false });
                        Ok(())
                    }
                    Err(e) => {
                        self.failed("re-opening the SSO session", &e);
                        Err(())
                    }
                };
            }
            Err(e) => {
                self.failed("the keep-alive tickle", &e);
                self.stale(e.to_string());
                return Err(());
            }
        };
        if let Some(error) = &tickle.error {
            self.failed("the keep-alive tickle", error);
            self.stale(format!("tickle not processed: {error}"));
            return Err(());
        }
        if !self.want_brokerage.load(Ordering::SeqCst) {
            self.set_state(SessionState::ReadOnly, None);
            return Ok(());
        }
        let brokerage = tickle.brokerage.unwrap_or_default();
        if brokerage.competing {
            if self.config.compete == Compete::Always {
                tracing::info!(
                    "another session competes for the brokerage session; taking it over (Compete::Always)"
                );
                return self.reinit(&sso, true).await;
            }
            self.apply_brokerage(&brokerage);
            return Ok(());
        }
        if !brokerage.authenticated {
            tracing::info!("the brokerage session is not authenticated; opening it again");
            // Once open, a session that lost it to another is not fought unless Always.
            let compete = self.config.compete == Compete::Always
                || (self.config.compete == Compete::AtOpen
                    && self.status.borrow().state != SessionState::Competing);
            return self.reinit(&sso, compete).await;
        }
        self.apply_brokerage(&brokerage);
        Ok(())
    }

    /// `ssodh/init` from the keeper; a 401 means the SSO session ended: a new one.
    async fn reinit(self: &Arc<Self>, sso: &super::SsoToken, compete: bool) -> Result<(), ()> {
        match self.init_brokerage(sso, compete).await {
            Ok(_) => {
                self.emit(&SessionEvent::Reopened { brokerage: true });
                Ok(())
            }
            Err(Error::Session(e)) if e.is_unauthorized() => match self.open_sso(Some(sso)).await {
                Ok(_) => {
                    self.emit(&SessionEvent::Reopened { brokerage: false });
                    Ok(())
                }
                Err(e) => {
                    self.failed("re-opening the SSO session", &e);
                    Err(())
                }
            },
            Err(e) => {
                self.failed("opening the brokerage session", &e);
                Err(())
            }
        }
    }
}
