//! Counters and gauges through the `metrics` facade (feature `metrics`); no-ops without it.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `ibkr_oauth_redis_token_requests_total` | counter | `cache`, `mode` (`shared`: as lease holder; `alone`: fallback), `outcome` (`ok` or the error kind) | token requests this process sent to IBKR |
//! | `ibkr_oauth_redis_refreshes_ahead_total` | counter | `cache` | fleet refreshes before expiry made by this process |
//! | `ibkr_oauth_redis_lease_waits_total` | counter | `cache` | fetches that waited for another process's lease |
//! | `ibkr_oauth_redis_fallbacks_total` | counter | `cache`, `reason` (`redis_unavailable`, `other_key`, `unreadable_entry`, `lease_wait_limit`) | fetches made alone because Redis could not help |
//! | `ibkr_oauth_redis_stale_served_total` | counter | `cache` | a failed fleet refresh answered with the stored, still valid token |
//! | `ibkr_oauth_redis_token_seconds_until_expiry` | gauge | `cache` | the lifetime left of the token last obtained, when it was obtained |

use ibkr_oauth::{Error, Token};

#[cfg(feature = "metrics")]
mod enabled {
    use super::*;

    pub(crate) fn token_request(cache: &str, mode: &'static str, result: &Result<Token, Error>) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.kind().to_string().replace(' ', "_"),
        };
        metrics::counter!(
            "ibkr_oauth_redis_token_requests_total",
            "cache" => cache.to_owned(),
            "mode" => mode,
            "outcome" => outcome,
        )
        .increment(1);
    }

    pub(crate) fn refresh_ahead(cache: &str) {
        metrics::counter!("ibkr_oauth_redis_refreshes_ahead_total", "cache" => cache.to_owned())
            .increment(1);
    }

    pub(crate) fn lease_wait(cache: &str) {
        metrics::counter!("ibkr_oauth_redis_lease_waits_total", "cache" => cache.to_owned())
            .increment(1);
    }

    pub(crate) fn fallback(cache: &str, reason: &'static str) {
        metrics::counter!(
            "ibkr_oauth_redis_fallbacks_total",
            "cache" => cache.to_owned(),
            "reason" => reason,
        )
        .increment(1);
    }

    pub(crate) fn stale_served(cache: &str) {
        metrics::counter!("ibkr_oauth_redis_stale_served_total", "cache" => cache.to_owned())
            .increment(1);
    }

    pub(crate) fn seconds_until_expiry(cache: &str, token: &Token) {
        let left = token
            .expires_at()
            .duration_since(std::time::SystemTime::now())
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!(
            "ibkr_oauth_redis_token_seconds_until_expiry",
            "cache" => cache.to_owned(),
        )
        .set(left);
    }
}

#[cfg(feature = "metrics")]
pub(crate) use enabled::*;

#[cfg(not(feature = "metrics"))]
mod disabled {
    use super::*;

    #[inline]
    pub(crate) fn token_request(_: &str, _: &'static str, _: &Result<Token, Error>) {}
    #[inline]
    pub(crate) fn refresh_ahead(_: &str) {}
    #[inline]
    pub(crate) fn lease_wait(_: &str) {}
    #[inline]
    pub(crate) fn fallback(_: &str, _: &'static str) {}
    #[inline]
    pub(crate) fn stale_served(_: &str) {}
    #[inline]
    pub(crate) fn seconds_until_expiry(_: &str, _: &Token) {}
}

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::*;
