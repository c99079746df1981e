//! What was wrong with a setting of the session or of the pacing table.

use std::time::Duration;

#[cfg(doc)]
use super::ConfigError;

/// What was wrong with a session setting ([`ConfigError::Session`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionSetting {
    /// The username is empty.
    #[error("the username (credential) is empty; give the IBKR username")]
    EmptyUsername,
    /// The username is too long or holds spaces or control characters.
    #[error(
        "the username (credential) is not an IBKR username (at most {max_chars} characters, no \
         spaces or control characters)"
    )]
    Username {
        /// The longest accepted, in characters.
        max_chars: usize,
    },
    /// Both an IP and an IP resolver were given.
    #[error("give the public IP or an IP resolver, not both")]
    IpAndResolver,
    /// Neither an IP nor an IP resolver was given.
    #[error(
        "no public IP: IBKR binds the session to it; give ip(\"203.0.113.7\") or an ip_resolver"
    )]
    NoIp,
    /// The IP is not an address.
    #[error("the IP `{given}` is not an IPv4 or IPv6 address")]
    NotAnIp {
        /// The text given (sanitised, at most 64 characters).
        given: String,
    },
    /// The tickle interval is out of range.
    #[error(
        "a tickle interval of {interval:?} is outside 1 s to 4 min (IBKR paces tickles at 1/s \
         and ends an idle session after a few minutes)"
    )]
    TickleInterval {
        /// The interval given.
        interval: Duration,
    },
    /// The backoff is zero or out of order.
    #[error("the backoff needs 0 < initial <= max (e.g. 1 s and 2 min)")]
    Backoff,
    /// The logout timeout is zero.
    #[error("a logout timeout of zero would never log out; give a positive duration")]
    ZeroLogoutTimeout,
    /// The reset window's start is not a time of day.
    #[error("reset window start {hour}:{minute:02} is not a time of day; give 0-23 and 0-59")]
    ResetWindowStart {
        /// The hour given.
        hour: u8,
        /// The minute given.
        minute: u8,
    },
    /// The reset window lasts a day or more.
    #[error("a reset window of a day or more would hide every failure; give less than 24 h")]
    ResetWindowLength,
}

/// What was wrong with a pacing table ([`ConfigError::Pacing`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacingSetting {
    /// A rule's interval or burst is out of range.
    #[error(
        "rule {rule}: one request per {interval:?} with a burst of {burst} is out of range; use \
         at most a day and a burst of at most 1000000"
    )]
    Rule {
        /// The rule (its path pattern, or `global`).
        rule: String,
        /// Its interval.
        interval: Duration,
        /// Its burst.
        burst: u32,
    },
    /// `max_wait` or `default_pause` is over a day.
    #[error("max_wait and default_pause must be at most a day")]
    Wait,
}
