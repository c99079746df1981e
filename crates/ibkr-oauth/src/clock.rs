//! The wall clock, injectable so that tests can pin assertion times and token expiry.

use std::fmt;
use std::time::SystemTime;

/// A source of wall-clock time.
///
/// Everything in this crate that stamps a time (assertion `iat`/`exp`, a token's expiry instant)
/// asks a `Clock`, so tests can pin it. Production code uses [`SystemClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
