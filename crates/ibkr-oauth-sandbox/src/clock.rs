//! The sandbox's clock: the system clock shifted by an adjustable offset.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Drives the `Date` header and every time check, so a test can put the server minutes away
/// from the client without touching the system clock.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    pub(crate) fn new(offset_secs: i64) -> Self {
        Self {
            offset_secs: AtomicI64::new(offset_secs),
        }
    }

    pub(crate) fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    pub(crate) fn set_offset_secs(&self, offset: i64) {
        self.offset_secs.store(offset, Ordering::Relaxed);
    }

    /// The sandbox's time in whole seconds since the Unix epoch (JWT NumericDate).
    pub(crate) fn unix_secs(&self) -> i64 {
        let system = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        };
        system.saturating_add(self.offset_secs())
    }

    /// The sandbox's time as a `SystemTime`.
    pub(crate) fn now(&self) -> SystemTime {
        let secs = self.unix_secs();
        let magnitude = Duration::from_secs(secs.unsigned_abs());
        let shifted = if secs >= 0 {
            UNIX_EPOCH.checked_add(magnitude)
        } else {
            UNIX_EPOCH.checked_sub(magnitude)
        };
        shifted.unwrap_or(UNIX_EPOCH)
    }

    /// The `Date` header value (IMF-fixdate) at the sandbox's time.
    pub(crate) fn http_date(&self) -> String {
        // httpdate cannot format times before 1970 or after 9999: clamp to what it can.
        let secs = self.unix_secs().clamp(0, 253_402_300_799);
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_moves_every_reading() {
        let clock = Clock::new(0);
        let base = clock.unix_secs();
        clock.set_offset_secs(-3600);
        let behind = clock.unix_secs();
        assert!((base - 3600 - behind).abs() <= 1);
        assert_eq!(clock.offset_secs(), -3600);
        let date = httpdate::parse_http_date(&clock.http_date()).unwrap();
        let secs = date.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((secs - behind).abs() <= 1);
    }

    #[test]
    fn extreme_offsets_do_not_panic() {
        let clock = Clock::new(i64::MAX);
        let _ = (clock.now(), clock.http_date());
        clock.set_offset_secs(i64::MIN);
        let _ = (clock.now(), clock.http_date());
    }
}
