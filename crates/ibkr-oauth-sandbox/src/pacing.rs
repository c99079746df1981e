//! IBKR's request pacing as the sandbox enforces it: it counts each username's `/v1/api`
//! calls (those with an SSO bearer) and answers past the limits with `429` and `Retry-After`,
//! then keeps answering `429` to that username for a penalty window, as IBKR's "penalty box"
//! does.
//!
//! Written down from IBKR's documentation (not from the SDK): 50 requests per second per
//! username, and per-endpoint limits. Counted over sliding windows (the strictest reading of
//! "N per second"): a request is refused when the window ending with it would hold more than
//! the limit.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// IBKR's penalty for a username past the limit: 10 minutes.
pub const DEFAULT_PENALTY: Duration = Duration::from_secs(10 * 60);

/// The limits the sandbox enforces when pacing is on ([`SandboxBuilder::pacing`](crate::SandboxBuilder::pacing)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPacing {
    per_second: u32,
    rules: Vec<(String, u32, Duration)>,
    penalty: Duration,
}

impl SandboxPacing {
    /// IBKR's documented limits: 50/s per username; `/tickle`, `/iserver/scanner/run`,
    /// `/fyi/*` 1/s; `/sso/validate` 1/min; `/iserver/marketdata/snapshot` 10/s;
    /// `/iserver/scanner/params` and `/pa/{performance,summary,transactions}` 1 per 15 min;
    /// `/iserver/trades`, `/iserver/account/orders`, `/iserver/account/pnl/partitioned`,
    /// `/portfolio/accounts`, `/portfolio/subaccounts` 1 per 5 s; penalty 10 minutes.
    pub fn ibkr() -> Self {
        let second = Duration::from_secs(1);
        let five = Duration::from_secs(5);
        let quarter = Duration::from_secs(15 * 60);
        let rules = [
            ("/v1/api/tickle", 1, second),
            ("/v1/api/sso/validate", 1, Duration::from_secs(60)),
            ("/v1/api/iserver/marketdata/snapshot", 10, second),
            ("/v1/api/iserver/scanner/run", 1, second),
            ("/v1/api/iserver/scanner/params", 1, quarter),
            ("/v1/api/iserver/trades", 1, five),
            ("/v1/api/iserver/account/orders", 1, five),
            ("/v1/api/iserver/account/pnl/partitioned", 1, five),
            ("/v1/api/portfolio/accounts", 1, five),
            ("/v1/api/portfolio/subaccounts", 1, five),
            ("/v1/api/pa/performance", 1, quarter),
            ("/v1/api/pa/summary", 1, quarter),
            ("/v1/api/pa/transactions", 1, quarter),
            ("/v1/api/fyi/*", 1, second),
        ]
        .into_iter()
        .map(|(path, max, per)| (path.to_owned(), max, per))
        .collect();
        Self {
            per_second: 50,
            rules,
            penalty: DEFAULT_PENALTY,
        }
    }

    /// The per-username limit per second (default 50).
    #[must_use]
    pub fn per_second(mut self, n: u32) -> Self {
        self.per_second = n.max(1);
        self
    }

    /// At most `max` requests to `path` (`/v1/api/...`, a trailing `*` for a prefix) in any
    /// window of `per`, replacing a rule of the same path.
    #[must_use]
    pub fn endpoint(mut self, path: &str, max: u32, per: Duration) -> Self {
        self.rules.retain(|(p, _, _)| p != path);
        self.rules.push((path.to_owned(), max.max(1), per));
        self
    }

    /// Removes the per-endpoint rules.
    #[must_use]
    pub fn without_endpoints(mut self) -> Self {
        self.rules.clear();
        self
    }

    /// How long a username past a limit gets `429` for everything (default 10 minutes).
    #[must_use]
    pub fn penalty(mut self, penalty: Duration) -> Self {
        self.penalty = penalty;
        self
    }

    fn rule_of(&self, path: &str) -> Option<usize> {
        let path = path.trim_end_matches('/');
        self.rules
            .iter()
            .position(|(p, _, _)| match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => p == path,
            })
    }
}

/// What the sandbox counted for one username.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacingCounts {
    /// Requests let through (answered by the endpoint).
    pub admitted: u64,
    /// Requests answered `429` (past a limit, or in the penalty window).
    pub refused: u64,
    /// The most requests let through within any one second.
    pub most_in_one_second: u64,
}

#[derive(Default)]
struct User {
    /// Admissions within the last second.
    recent: VecDeque<Instant>,
    /// Per rule: admissions within its window.
    rules: HashMap<usize, VecDeque<Instant>>,
    penalty_until: Option<Instant>,
    counts: PacingCounts,
}

/// The sandbox's counters (on only when configured).
pub(crate) struct Pacing {
    limits: SandboxPacing,
    users: HashMap<String, User>,
}

fn prune(window: &mut VecDeque<Instant>, now: Instant, per: Duration) {
    while window
        .front()
        .is_some_and(|&t| now.duration_since(t) >= per)
    {
        window.pop_front();
    }
}

impl Pacing {
    pub(crate) fn new(limits: SandboxPacing) -> Self {
        Self {
            limits,
            users: HashMap::new(),
        }
    }

    /// Counts a request of `username` to `path`: `Err(retry after)` when it must get `429`.
    pub(crate) fn admit(
        &mut self,
        username: &str,
        path: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        let rule = self.limits.rule_of(path);
        let (per_second, penalty) = (self.limits.per_second, self.limits.penalty);
        let rule_limit = rule.map(|i| (self.limits.rules[i].1, self.limits.rules[i].2));
        let user = self.users.entry(username.to_owned()).or_default();
        if let Some(until) = user.penalty_until.filter(|&until| until > now) {
            user.counts.refused += 1;
            return Err(until - now);
        }
        let second = Duration::from_secs(1);
        prune(&mut user.recent, now, second);
        let mut over = user.recent.len() >= per_second as usize;
        if let (Some(i), Some((max, per))) = (rule, rule_limit) {
            let window = user.rules.entry(i).or_default();
            prune(window, now, per);
            over |= window.len() >= max as usize;
        }
        if over {
            user.counts.refused += 1;
            user.penalty_until = Some(now + penalty);
            tracing::info!(
                username,
                path,
                "sandbox: pacing exceeded; penalty window starts"
            );
            return Err(penalty);
        }
        user.recent.push_back(now);
        if let Some(i) = rule {
            user.rules.entry(i).or_default().push_back(now);
        }
        user.counts.admitted += 1;
        user.counts.most_in_one_second =
            user.counts.most_in_one_second.max(user.recent.len() as u64);
        Ok(())
    }

    pub(crate) fn counts(&self, username: &str) -> Option<PacingCounts> {
        self.users.get(username).map(|u| u.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_a_second_then_the_penalty_box() {
        let mut pacing = Pacing::new(SandboxPacing::ibkr().penalty(Duration::from_secs(30)));
        let start = Instant::now();
        for i in 0..50u32 {
            let at = start + Duration::from_millis(u64::from(i));
            assert_eq!(pacing.admit("u", "/v1/api/iserver/accounts", at), Ok(()));
        }
        let at = start + Duration::from_millis(999);
        assert_eq!(
            pacing.admit("u", "/v1/api/iserver/accounts", at),
            Err(Duration::from_secs(30))
        );
        // In the penalty window everything is refused, even after the second has passed.
        let later = start + Duration::from_secs(10);
        assert_eq!(
            pacing.admit("u", "/v1/api/iserver/accounts", later),
            Err(Duration::from_millis(20_999))
        );
        // Another username has its own budget.
        assert_eq!(pacing.admit("v", "/v1/api/iserver/accounts", later), Ok(()));
        let after = start + Duration::from_secs(31);
        assert_eq!(pacing.admit("u", "/v1/api/iserver/accounts", after), Ok(()));
        let counts = pacing.counts("u").unwrap();
        assert_eq!(
            (counts.admitted, counts.refused, counts.most_in_one_second),
            (51, 2, 50)
        );
    }

    #[test]
    fn sliding_window_and_endpoint_rules() {
        let mut pacing = Pacing::new(SandboxPacing::ibkr().penalty(Duration::ZERO));
        let start = Instant::now();
        assert!(pacing.admit("u", "/v1/api/tickle", start).is_ok());
        assert!(
            pacing
                .admit("u", "/v1/api/tickle/", start + Duration::from_millis(999))
                .is_err()
        );
        assert!(
            pacing
                .admit("u", "/v1/api/tickle", start + Duration::from_secs(1))
                .is_ok()
        );
        let t = start + Duration::from_secs(2);
        assert!(pacing.admit("u", "/v1/api/fyi/unreadnumber", t).is_ok());
        assert!(pacing.admit("u", "/v1/api/fyi/settings", t).is_err());
        let t = start + Duration::from_secs(3);
        assert!(pacing.admit("u", "/v1/api/portfolio/accounts", t).is_ok());
        let four = t + Duration::from_secs(4);
        assert!(
            pacing
                .admit("u", "/v1/api/portfolio/accounts", four)
                .is_err()
        );
        let five = t + Duration::from_secs(5);
        assert!(
            pacing
                .admit("u", "/v1/api/portfolio/accounts", five)
                .is_ok()
        );
    }
}
