//! The pacing table: IBKR's per-user limit and its per-endpoint limits, and which rule a
//! request path falls under.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::ConfigError;
use crate::error::PacingSetting;

/// The prefix of the session-based Web API paths; rules are written below it.
pub const API_PREFIX: &str = "/v1/api";

/// The key of the per-user limit (in errors, metrics and Redis keys).
pub const GLOBAL: &str = "global";

/// Longest path kept as an endpoint key of a pause: longer ones are cut (a pause is keyed by
/// what IBKR answered 429 to, and a client may send any path).
const MAX_ENDPOINT_KEY: usize = 200;

/// One GCRA limit: requests spaced by `interval` on average, at most `burst` at once.
///
/// In any window of length `w` at most `burst + w / interval` requests pass, so
/// [`per_second(40)`](Self::per_second) with [`burst(5)`](Self::burst) stays within 45 in
/// every second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    interval: Duration,
    burst: NonZeroU32,
}

impl Limit {
    /// `n` requests per second (none at all for `n == 0` is not a limit: treated as 1), burst 1.
    pub fn per_second(n: u32) -> Self {
        Self::every(Duration::from_secs(1) / n.max(1))
    }

    /// One request per `period` (at least a microsecond), burst 1.
    pub fn every(period: Duration) -> Self {
        Self {
            interval: period.max(Duration::from_micros(1)),
            burst: NonZeroU32::MIN,
        }
    }

    /// Up to `burst` requests at once (at least 1).
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// The average spacing of requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many may pass at once.
    pub fn burst_size(&self) -> u32 {
        self.burst.get()
    }

    /// At most this many requests pass in any window of `window`.
    pub fn max_in(&self, window: Duration) -> u64 {
        let per = window.as_nanos() / self.interval.as_nanos().max(1);
        u64::try_from(per)
            .unwrap_or(u64::MAX)
            .saturating_add(u64::from(self.burst.get()))
    }
}

/// Which paths a rule covers, below [`API_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// One path, e.g. `/tickle` (a trailing `/` and the query are ignored).
    Exact(String),
    /// Every path under a prefix, e.g. `/fyi/`.
    Prefix(String),
}

impl PathPattern {
    /// The pattern from text: a trailing `*` makes a prefix (`/fyi/*`), anything else is exact.
    pub fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) => PathPattern::Prefix(prefix.to_owned()),
            None => PathPattern::Exact(text.trim_end_matches('/').to_owned()),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(exact) => path == exact,
            PathPattern::Prefix(prefix) => path.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Exact(exact) => f.write_str(exact),
            PathPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A per-endpoint rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The paths it covers.
    pub pattern: PathPattern,
    /// Their limit (all paths of a prefix rule share it).
    pub limit: Limit,
}

/// IBKR's pacing: the per-user limit and the per-endpoint rules, with the governor's bounds.
///
/// [`PacingTable::ibkr`] holds the defaults from IBKR's documentation; change any of them with
/// [`global`](Self::global) and [`endpoint`](Self::endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacingTable {
    global: Limit,
    rules: Vec<Rule>,
    max_wait: Duration,
    default_pause: Duration,
}

/// How long a call waits for its turn by default before failing with
/// [`PacingError::OverLimit`](super::PacingError::OverLimit).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(2);

/// How long a 429 without `Retry-After` pauses its endpoint.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

impl Default for PacingTable {
    fn default() -> Self {
        Self::ibkr()
    }
}

impl PacingTable {
    /// IBKR's documented limits, conservative where sources differ:
    ///
    /// | rule | limit |
    /// |---|---|
    /// | per user (all paths) | 50/s documented: 40/s with a burst of 5, so no second ever sees more than 45 leave: the other 5 are left for the session's own calls (ssodh/init, validate, the keep-alive) when they do not pass through the governor ([`SessionBuilder::pacer`](crate::session::SessionBuilder::pacer)), and for requests that reach IBKR closer together than they left (bound them with a limit on requests in flight, as `serve --gateway` does) |
    /// | `/tickle`, `/iserver/scanner/run`, `/fyi/*` | 1/s |
    /// | `/sso/validate` | 1/min |
    /// | `/iserver/marketdata/snapshot` | 10/s |
    /// | `/iserver/scanner/params`, `/pa/performance`, `/pa/summary`, `/pa/transactions` | 1 per 15 min |
    /// | `/iserver/trades`, `/iserver/account/trades`, `/iserver/orders`, `/iserver/account/orders`, `/iserver/account/pnl/partitioned`, `/portfolio/accounts`, `/portfolio/subaccounts` | 1 per 5 s |
    ///
    /// (`/iserver/orders` and `/iserver/account/orders` are both listed: sources name either.)
    pub fn ibkr() -> Self {
        let every = |secs| Limit::every(Duration::from_secs(secs));
        let mut table = Self {
            global: Limit::per_second(40).burst(5),
            rules: Vec::new(),
            max_wait: DEFAULT_MAX_WAIT,
            default_pause: DEFAULT_PAUSE,
        };
        for (path, limit) in [
            ("/tickle", Limit::per_second(1)),
            ("/sso/validate", every(60)),
            ("/iserver/marketdata/snapshot", Limit::per_second(10)),
            ("/iserver/scanner/run", Limit::per_second(1)),
            ("/iserver/scanner/params", every(15 * 60)),
            ("/iserver/trades", every(5)),
            ("/iserver/account/trades", every(5)),
            ("/iserver/orders", every(5)),
            ("/iserver/account/orders", every(5)),
            ("/iserver/account/pnl/partitioned", every(5)),
            ("/portfolio/accounts", every(5)),
            ("/portfolio/subaccounts", every(5)),
            ("/pa/performance", every(15 * 60)),
            ("/pa/summary", every(15 * 60)),
            ("/pa/transactions", every(15 * 60)),
            ("/fyi/*", Limit::per_second(1)),
        ] {
            table = table.endpoint(path, limit);
        }
        table
    }

    /// The per-user limit on every request.
    #[must_use]
    pub fn global(mut self, limit: Limit) -> Self {
        self.global = limit;
        self
    }

    /// Sets the rule for `pattern` (below `/v1/api`, e.g. `/tickle`, or `/fyi/*` for a
    /// prefix), replacing one with the same pattern.
    #[must_use]
    pub fn endpoint(mut self, pattern: &str, limit: Limit) -> Self {
        let pattern = PathPattern::parse(pattern);
        match self.rules.iter_mut().find(|r| r.pattern == pattern) {
            Some(rule) => rule.limit = limit,
            None => self.rules.push(Rule { pattern, limit }),
        }
        self
    }

    /// Removes every per-endpoint rule (the per-user limit stays).
    #[must_use]
    pub fn without_endpoints(mut self) -> Self {
        self.rules.clear();
        self
    }

    /// How long a call may wait for its turn before it fails instead ([`DEFAULT_MAX_WAIT`]).
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// How long a 429 without `Retry-After` pauses its endpoint ([`DEFAULT_PAUSE`]).
    #[must_use]
    pub fn default_pause(mut self, pause: Duration) -> Self {
        self.default_pause = pause;
        self
    }

    /// Checks the table: every interval within a day, so the arithmetic of any backend (in
    /// microseconds in Redis) stays exact.
    ///
    /// # Errors
    /// [`ConfigError::Pacing`] naming the rule out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let day = Duration::from_secs(86_400);
        let check = |name: &str, limit: &Limit| {
            if limit.interval > day || limit.burst.get() > 1_000_000 {
                Err(ConfigError::Pacing(PacingSetting::Rule {
                    rule: name.to_owned(),
                    interval: limit.interval,
                    burst: limit.burst.get(),
                }))
            } else {
                Ok(())
            }
        };
        check(GLOBAL, &self.global)?;
        for rule in &self.rules {
            check(&rule.pattern.to_string(), &rule.limit)?;
        }
        if self.max_wait > day || self.default_pause > day {
            return Err(ConfigError::Pacing(PacingSetting::Wait));
        }
        Ok(())
    }

    /// The per-user limit.
    pub fn global_limit(&self) -> Limit {
        self.global
    }

    /// The per-endpoint rules, in the order they are matched (the first match wins).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The bound on a wait.
    pub fn max_wait_bound(&self) -> Duration {
        self.max_wait
    }

    /// The pause after a 429 without `Retry-After`.
    pub fn default_pause_length(&self) -> Duration {
        self.default_pause
    }

    /// Which rule `path` (a request path, with or without the query) falls under.
    pub fn classify(&self, path: &str) -> Endpoint {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let below = path.strip_prefix(API_PREFIX).filter(|p| p.starts_with('/'));
        let rule = below.and_then(|below| {
            let trimmed = match below.trim_end_matches('/') {
                "" => "/",
                t => t,
            };
            self.rules.iter().position(|r| r.pattern.matches(trimmed))
        });
        let key = match rule {
            Some(i) => self.rules[i].pattern.to_string(),
            None => {
                let shown = below.unwrap_or(path);
                let cut = (0..=MAX_ENDPOINT_KEY.min(shown.len()))
                    .rev()
                    .find(|&i| shown.is_char_boundary(i))
                    .unwrap_or(0);
                shown[..cut].to_owned()
            }
        };
        Endpoint { rule, key }
    }
}

/// Where a request falls in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The index of its rule in [`PacingTable::rules`], if one covers it.
    pub rule: Option<usize>,
    /// Its name: the rule's pattern, or its path below `/v1/api` when no rule covers it.
    pub key: String,
}
