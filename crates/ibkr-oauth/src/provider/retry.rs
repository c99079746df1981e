//! Layer 2 of the provider: [`Retrying`], the skew-corrected fetch retried by the
//! [`RetryPolicy`] (exponential backoff with full jitter, bounded by attempts and elapsed time,
//! honouring the server's `Retry-After` up to a cap). It knows nothing of the cache above.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{Instrument, field};

use super::skew::{Corrections, SkewCorrected};
use crate::error::Error;
use crate::token::Token;

/// How one token fetch retries a retryable failure ([`Error::is_retryable`]: network errors,
/// timeouts, 429 and 5xx answers). A refusal (a 4xx problem, a bad key) is never retried.
///
/// The wait before retry *n* (n = 1, 2, ...) is the server's `Retry-After` when it sent one
/// (at most [`max_retry_after`](Self::max_retry_after)), else a uniformly random duration
/// between zero and `initial_backoff * 2^(n-1)` capped at [`max_backoff`](Self::max_backoff)
/// ("full jitter", so that many clients do not retry in step). A fetch stops after
/// [`max_attempts`](Self::max_attempts) attempts, or when the next wait would end more than
/// [`max_elapsed`](Self::max_elapsed) after its first attempt started. Every attempt signs a
/// new assertion.
///
/// ```
/// use std::time::Duration;
/// use ibkr_oauth::provider::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(3)
///     .initial_backoff(Duration::from_millis(100))
///     .max_elapsed(Duration::from_secs(10));
/// # let _ = policy;
/// ```
///
/// [`Error::is_retryable`]: crate::Error::is_retryable
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_elapsed: Duration,
    pub(crate) max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff from 250 ms up to 8 s, at most 30 s in all, `Retry-After` honoured
    /// up to 20 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry of a failure. The one corrective attempt after a refusal that a
    /// skewed clock may explain is not a retry of the policy's and still happens (see the
    /// [module docs](super)).
    pub fn no_retries() -> Self {
        Self::default().max_attempts(1)
    }

    /// Attempts per fetch, the first included (default 4). Zero counts as one.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff ceiling before the first retry, doubled for each further one (default
    /// 250 ms).
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The largest backoff ceiling (default 8 s).
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The longest time from a fetch's first attempt to the end of its last wait (default
    /// 30 s): a retry whose wait would end later is not made.
    #[must_use]
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// The longest `Retry-After` honoured as sent (default 20 s); a longer one is waited for
    /// this long.
    #[must_use]
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// The backoff ceiling before retry `retry` (1 for the first retry).
    pub(crate) fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff)
    }

    /// The wait before retry `retry`: `Retry-After` (capped) when the server sent one, else full
    /// jitter below the ceiling.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(after) => after.min(self.max_retry_after),
            None => self.ceiling(retry).mul_f64(unit_random()),
        }
    }
}

/// A uniformly distributed number in `[0, 1)` for jitter. Not cryptographic: seeded by the
/// standard library's per-process random hash keys, which every `RandomState` varies.
fn unit_random() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    // 53 random bits make every f64 in [0, 1) with that spacing equally likely.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Layer 2 of the provider: the skew-corrected fetch attempted as the policy says.
pub(super) struct Retrying {
    below: SkewCorrected,
    policy: RetryPolicy,
}

/// A fetched token, with when its request was sent (its lifetime counts from there).
pub(super) struct Fetched {
    pub(super) token: Token,
    pub(super) sent_at: Instant,
    pub(super) sent_wall: SystemTime,
}

impl Retrying {
    pub(super) fn new(below: SkewCorrected, policy: RetryPolicy) -> Self {
        Self { below, policy }
    }

    /// The layer below (for the measured clock offset).
    pub(super) fn below(&self) -> &SkewCorrected {
        &self.below
    }

    /// The policy this layer retries by.
    pub(super) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The fetch with its retries, a fresh assertion per attempt; also returns how many
    /// attempts were made. Beside the policy's retries, the layer below may ask for one
    /// corrective attempt at once after a refusal the clock may explain, whatever the policy
    /// (`RetryPolicy::no_retries` included).
    pub(super) async fn fetch(&self) -> (Result<Fetched, Error>, u32) {
        let policy = &self.policy;
        let started = Instant::now();
        let mut number = 0u32;
        let mut corrections = Corrections::default();
        loop {
            number = number.saturating_add(1);
            let span = tracing::debug_span!(
                "ibkr_oauth.fetch",
                attempt = number,
                status = field::Empty,
                expires_in = field::Empty,
                skew = field::Empty,
            );
            let attempt = self
                .below
                .attempt(&mut corrections)
                .instrument(span.clone())
                .await;
            if let Some(offset) = attempt.measured {
                span.record("skew", offset.as_millis());
            }
            let error = match attempt.result {
                Ok(token) => {
                    span.record("expires_in", token.expires_in().as_secs());
                    let fetched = Fetched {
                        token,
                        sent_at: attempt.sent_at,
                        sent_wall: attempt.sent_wall,
                    };
                    return (Ok(fetched), number);
                }
                Err(error) => error,
            };
            let status = error.status().map(|s| s.as_u16());
            if let Some(status) = status {
                span.record("status", status);
            }
            let delay = if attempt.corrective {
                Some(Duration::ZERO)
            } else if error.is_retryable() {
                Some(policy.delay(number, error.retry_after())).filter(|delay| {
                    number < policy.max_attempts
                        && started.elapsed().saturating_add(*delay) <= policy.max_elapsed
                })
            } else {
                None
            };
            let Some(delay) = delay else {
                return (Err(error), number);
            };
            let retry_span = tracing::debug_span!(
                "ibkr_oauth.retry",
                attempt = number.saturating_add(1),
                status,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                retry_after = error.retry_after().is_some(),
            );
            retry_span.in_scope(|| {
                tracing::info!(
                    error = %error,
                    skew_suspect = attempt.corrective,
                    local_time = attempt.plain_local,
                    "token request failed; retrying"
                );
            });
            tokio::time::sleep(delay).instrument(retry_span).await;
        }
    }
}

#[cfg(test)]
mod tests;
