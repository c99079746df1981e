//! Pacing: IBKR's request limits enforced before a request leaves.
//!
//! IBKR allows about 50 requests per second per authenticated username and stricter limits
//! on some endpoints (`/tickle` 1/s, `/sso/validate` 1/min, ...); past them it answers 429
//! and may put the caller's IP address in a penalty box for 10 minutes. A [`Pacer`] decides
//! before each request: it lets it go at once, makes it wait its turn (up to a bound), or
//! refuses it with a typed [`PacingError`] so that it is never sent. A 429 that still comes
//! back is reported with [`Pacer::too_many_requests`] and pauses that endpoint (for as long as
//! `Retry-After` says).
//!
//! | pacer | where the state lives | for |
//! |---|---|---|
//! | [`Governor`] | this process (the `governor` crate's GCRA) | one process per username |
//! | `RedisPacer` (crate `ibkr-oauth-redis`) | Redis (the same GCRA as one Lua script) | a fleet sharing a username |
//!
//! The limits come from a [`PacingTable`]: [`PacingTable::ibkr`] holds IBKR's documented
//! ones, each can be changed.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use ibkr_oauth::pacing::{Governor, Limit, Pacer, PacingError, PacingTable};
//!
//! let table = PacingTable::ibkr()
//!     .endpoint("/iserver/marketdata/snapshot", Limit::per_second(5))
//!     .max_wait(Duration::ZERO); // never wait: refuse at once
//! let governor = Governor::new(table)?;
//! governor.acquire("/v1/api/sso/validate").await?;
//! match governor.acquire("/v1/api/sso/validate").await {
//!     Err(PacingError::OverLimit { wait, .. }) => assert!(wait > Duration::from_secs(59)),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod local;
#[cfg(feature = "middleware")]
mod middleware;
mod table;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

pub use error::PacingError;
pub use local::Governor;
#[cfg(feature = "middleware")]
pub use middleware::Paced;
pub use table::{
    API_PREFIX, DEFAULT_MAX_WAIT, DEFAULT_PAUSE, Endpoint, GLOBAL, Limit, PacingTable, PathPattern,
    Rule,
};

/// Decides whether a request to IBKR may leave now.
#[async_trait::async_trait]
pub trait Pacer: Send + Sync + fmt::Debug {
    /// Takes a turn for a request to `path` (e.g. `/v1/api/tickle`, a query is ignored):
    /// returns when it may be sent, waiting up to the table's bound.
    ///
    /// # Errors
    /// [`PacingError`]: the request must not be sent.
    async fn acquire(&self, path: &str) -> Result<(), PacingError>;

    /// Reports that IBKR answered 429 to a request to `path`: the endpoint is paused for
    /// `retry_after` (or the table's default pause).
    async fn too_many_requests(&self, path: &str, retry_after: Option<Duration>);

    /// What this pacer decided so far, in this process.
    fn stats(&self) -> PacingStats;
}

/// Counts of a pacer's decisions in this process (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacingStats {
    /// Requests let through.
    pub admitted: u64,
    /// Of those, the ones that waited for their turn first.
    pub waited: u64,
    /// Requests refused (never sent).
    pub refused: u64,
    /// 429s reported.
    pub paused: u64,
}
