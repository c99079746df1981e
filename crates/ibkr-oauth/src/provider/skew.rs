//! Layer 1 of the provider: [`SkewCorrected`], a [`TokenSource`]'s fetch whose assertions are stamped with the
//! token server's time. It measures how far the server's clock (its `Date` header) is from the
//! local one, applies the correction to the next assertion's `iat`/`exp`, and says when a
//! refusal is one the clock may explain (the retry layer above then attempts once more at
//! once). It knows nothing of retries or of the cache.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::assertion::SignError;
use crate::clock::Clock;
use crate::error::Error;
use crate::source::{FetchContext, TokenSource};
use crate::token::Token;

/// The fetch below, stamped with the corrected time; see the module docs.
pub(super) struct SkewCorrected {
    fetch: Box<dyn TokenSource>,
    clock: Arc<dyn Clock>,
    tracker: SkewTracker,
    threshold: Duration,
}

/// What one fetch (all its attempts) remembers of its corrections.
#[derive(Debug, Default)]
pub(super) struct Corrections {
    /// The one corrective attempt of this fetch was made.
    corrected_once: bool,
    /// The next attempt is stamped with the plain local time (a correction was refused).
    plain_local: bool,
}

/// What one attempt came to.
pub(super) struct Attempt {
    pub(super) result: Result<Token, Error>,
    /// When its request was sent, by tokio's clock and by the wall clock.
    pub(super) sent_at: Instant,
    pub(super) sent_wall: SystemTime,
    /// A refusal the clock may explain: attempt once more at once, whatever the retry policy.
    pub(super) corrective: bool,
    /// That next attempt is stamped with the plain local time.
    pub(super) plain_local: bool,
    /// The clock offset measured from this answer's `Date`, if it had a plausible one.
    pub(super) measured: Option<ClockOffset>,
}

impl SkewCorrected {
    pub(super) fn new(
        fetch: Box<dyn TokenSource>,
        clock: Arc<dyn Clock>,
        threshold: Duration,
        max_offset: Duration,
    ) -> Self {
        Self {
            fetch,
            clock,
            tracker: SkewTracker::new(threshold, max_offset),
            threshold,
        }
    }

    /// The latest measured offset of the server's clock.
    pub(super) fn measured(&self) -> Option<ClockOffset> {
        self.tracker.measured()
    }

    /// One attempt, stamped with the correction (or the plain local time, after a correction
    /// was refused). Runs inside the caller's `ibkr_oauth.fetch` span.
    ///
    /// A refusal the clock may explain asks for one corrective attempt per fetch: with the new
    /// correction when the answer's `Date` changed it, or with the plain local time when an
    /// assertion stamped with a correction was refused (the `Date` may be a gateway's, not the
    /// checking server's); when the local time then works, the correction is dropped.
    pub(super) async fn attempt(&self, state: &mut Corrections) -> Attempt {
        let local = self.clock.now();
        let correction = if state.plain_local {
            None
        } else {
            self.tracker.correction()
        };
        let assertion_time = correction.map_or(local, |offset| offset.apply(local));
        let sent_at = Instant::now();
        let result = self.fetch.fetch(FetchContext { assertion_time }).await;
        let server_date = match &result {
            Ok(token) => token.server_date(),
            Err(error) => error.server_date(),
        };
        let measured = server_date.and_then(|date| self.tracker.record(date, self.clock.now()));
        let corrective = match &result {
            Ok(_) => {
                if state.plain_local {
                    self.tracker.distrust();
                }
                false
            }
            Err(error) => {
                // A 4xx refusal, or a stamp the signer could not make: what a clock may explain.
                let refused = (error.status().is_some_and(|s| s.is_client_error())
                    && !error.is_retryable())
                    || matches!(error, Error::Sign(SignError::ClockOutOfRange));
                let first = !state.corrected_once && refused;
                state.plain_local = first && correction.is_some();
                let corrective = state.plain_local || (first && self.changed(correction));
                state.corrected_once |= corrective;
                corrective
            }
        };
        Attempt {
            result,
            sent_at,
            sent_wall: local,
            corrective,
            plain_local: state.plain_local,
            measured,
        }
    }

    /// Whether the correction measured now differs (by more than the threshold) from the one
    /// the last assertion was stamped with.
    fn changed(&self, used: Option<ClockOffset>) -> bool {
        match (used, self.tracker.correction()) {
            (None, None) => false,
            (Some(a), Some(b)) => {
                Duration::from_millis(a.as_millis().abs_diff(b.as_millis())) > self.threshold
            }
            _ => true,
        }
    }
}

/// The measured offset of the token server's clock from the local clock: server minus local.
///
/// Positive when the server's clock is ahead. Measured from the `Date` header of each answer
/// (token or error) at its arrival, so it carries the header's one-second resolution plus the
/// network latency: only offsets of a few seconds or more are meaningful.
///
/// ```
/// # use ibkr_oauth::provider::ClockOffset;
/// # fn show(offset: ClockOffset) {
/// println!("server clock is {offset} from ours"); // e.g. "+300.000 s"
/// let server_now = offset.apply(std::time::SystemTime::now());
/// # let _ = server_now;
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockOffset {
    millis: i64,
}

impl ClockOffset {
    /// The offset between a server timestamp and the local clock's reading of the same moment.
    pub(crate) fn between(server: SystemTime, local: SystemTime) -> Self {
        let millis = match server.duration_since(local) {
            Ok(ahead) => saturating_millis(ahead),
            Err(behind) => saturating_millis(behind.duration()).saturating_neg(),
        };
        Self { millis }
    }

    /// The offset in milliseconds: positive when the server's clock is ahead of the local one.
    pub fn as_millis(&self) -> i64 {
        self.millis
    }

    /// The size of the offset, whichever clock is ahead.
    pub fn magnitude(&self) -> Duration {
        Duration::from_millis(self.millis.unsigned_abs())
    }

    /// Whether the server's clock is ahead of the local one.
    pub fn server_ahead(&self) -> bool {
        self.millis > 0
    }

    /// Converts a local time into the server's time (local + offset), saturating at the ends of
    /// what `SystemTime` can hold.
    pub fn apply(&self, local: SystemTime) -> SystemTime {
        let by = self.magnitude();
        let shifted = if self.server_ahead() {
            local.checked_add(by)
        } else {
            local.checked_sub(by)
        };
        shifted.unwrap_or(local)
    }
}

impl fmt::Display for ClockOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.millis < 0 { '-' } else { '+' };
        let abs = self.millis.unsigned_abs();
        write!(f, "{sign}{}.{:03} s", abs / 1000, abs % 1000)
    }
}

fn saturating_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// No measurement yet. `i64::MIN` cannot come out of [`ClockOffset::between`] (it saturates at
/// `-i64::MAX`).
const UNMEASURED: i64 = i64::MIN;

/// The latest measured offset, readable from any task without a lock.
///
/// What it trusts: a server's `Date` within `max_offset` of the local clock (a larger offset is
/// far likelier a broken or hostile `Date` than a broken local clock, and is ignored with a
/// warning), and a correction only until an assertion stamped with it is refused while the
/// plain local time is accepted (then the `Date` is a gateway's, not the checking server's, and
/// that offset is distrusted until the measured offset moves away from it).
#[derive(Debug)]
struct SkewTracker {
    offset_ms: AtomicI64,
    /// An offset found wrong by a refusal; corrections near it are not applied.
    distrusted_ms: AtomicI64,
    threshold: Duration,
    max_offset: Duration,
}

impl SkewTracker {
    fn new(threshold: Duration, max_offset: Duration) -> Self {
        Self {
            offset_ms: AtomicI64::new(UNMEASURED),
            distrusted_ms: AtomicI64::new(UNMEASURED),
            threshold,
            max_offset,
        }
    }

    /// The latest measured offset, if any answer carried a plausible `Date` header yet.
    fn measured(&self) -> Option<ClockOffset> {
        match self.offset_ms.load(Ordering::Relaxed) {
            UNMEASURED => None,
            millis => Some(ClockOffset { millis }),
        }
    }

    /// The correction to stamp assertions with: the measured offset once it exceeds the
    /// threshold, nothing below it (a one-second `Date` cannot tell smaller offsets from noise),
    /// and nothing near an offset that was found wrong.
    fn correction(&self) -> Option<ClockOffset> {
        let offset = self.measured().filter(|o| o.magnitude() > self.threshold)?;
        match self.distrusted_ms.load(Ordering::Relaxed) {
            UNMEASURED => Some(offset),
            bad if Duration::from_millis(bad.abs_diff(offset.millis)) <= self.threshold => None,
            _ => Some(offset),
        }
    }

    /// An assertion stamped with the current correction was refused and the local time was
    /// accepted: stop correcting by this offset.
    fn distrust(&self) {
        let current = self.offset_ms.load(Ordering::Relaxed);
        if current != UNMEASURED {
            self.distrusted_ms.store(current, Ordering::Relaxed);
            tracing::warn!(
                skew_ms = current,
                "an assertion stamped with the token server's time was refused and one stamped \
                 with the local time was accepted; the server's Date is not the clock that \
                 checks assertions, so the local time is used from now on"
            );
        }
    }

    /// Records the offset seen in one answer and logs it; returns it, or `None` when it is
    /// implausible (over the maximum) and ignored.
    fn record(&self, server: SystemTime, local: SystemTime) -> Option<ClockOffset> {
        let offset = ClockOffset::between(server, local);
        if offset.magnitude() > self.max_offset {
            tracing::warn!(
                skew_ms = offset.millis,
                max_ms = saturating_millis(self.max_offset),
                "the token server's Date is {offset} from the local clock, more than the \
                 plausible maximum; ignoring it (check the server's clock, or raise \
                 max_clock_offset if the local clock is really that far off)"
            );
            return None;
        }
        let before = self.correction();
        self.offset_ms.store(offset.millis, Ordering::Relaxed);
        let after = self.correction();
        if after.is_some() && before.is_none_or(|b| b.as_millis().abs_diff(offset.millis) >= 1000) {
            tracing::warn!(
                skew_ms = offset.millis,
                threshold_ms = saturating_millis(self.threshold),
                "the token server's clock is {offset} from the local clock; stamping assertions \
                 with the server's time (fix the local clock: NTP)"
            );
        } else if before.is_some() && after.is_none() {
            tracing::info!(
                skew_ms = offset.millis,
                "the token server's clock now agrees with the local clock (or its offset was \
                 found wrong); stamping assertions with the local time"
            );
        } else {
            tracing::debug!(
                skew_ms = offset.millis,
                "measured the token server's clock offset"
            );
        }
        Some(offset)
    }
}

#[cfg(test)]
mod tests;
