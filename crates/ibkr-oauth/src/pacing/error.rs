//! [`PacingError`]: why the governor did not let a request leave.

use std::time::Duration;

/// Why a request was not sent: the governor decides before a request leaves, so none of these
/// cost any of IBKR's budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacingError {
    /// Over IBKR's pacing: the request could leave only after `wait`, longer than the
    /// governor's bound. Send it later, or less often.
    #[error(
        "not sent: IBKR's pacing for {endpoint} allows the next request in {} ms, more than \
         the {} ms this call may wait; call it less often or later",
        wait.as_millis(),
        max_wait.as_millis()
    )]
    OverLimit {
        /// The endpoint's rule (e.g. `/tickle`), or `global` for the per-user limit.
        endpoint: String,
        /// How long until the request could leave.
        wait: Duration,
        /// The governor's bound on a wait.
        max_wait: Duration,
    },
    /// IBKR answered 429 on this endpoint: it is paused for everyone sharing the governor
    /// until `retry_after` has passed.
    #[error(
        "not sent: IBKR answered 429 Too Many Requests on {endpoint}; it is paused for another \
         {} ms (Retry-After)",
        retry_after.as_millis()
    )]
    Paused {
        /// The paused endpoint's rule or path.
        endpoint: String,
        /// How long the pause lasts.
        retry_after: Duration,
    },
    /// The shared pacing state (a fleet's Redis) did not answer, and the policy is to fail
    /// closed rather than risk the fleet going over IBKR's limit.
    #[error(
        "not sent: the fleet's pacing state is unavailable ({0}); check Redis, or allow \
         per-process pacing when it is down"
    )]
    Unavailable(String),
}

impl PacingError {
    /// How long to wait before trying again, when the governor knows.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PacingError::OverLimit { wait, .. } => Some(*wait),
            PacingError::Paused { retry_after, .. } => Some(*retry_after),
            PacingError::Unavailable(_) => None,
        }
    }

    /// The endpoint (rule or path) the refusal is about, if any.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            PacingError::OverLimit { endpoint, .. } | PacingError::Paused { endpoint, .. } => {
                Some(endpoint)
            }
            PacingError::Unavailable(_) => None,
        }
    }
}
