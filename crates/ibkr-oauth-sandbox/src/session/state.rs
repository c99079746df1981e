//! The table of SSO sessions and of the brokerage session of each username, and what each
//! fault does to them: pure state, no HTTP (the handlers live in `server::session`).

use std::collections::HashMap;
use std::net::IpAddr;

use tokio::time::Instant;

use super::{SessionFault, SessionSettings};

/// Above this many sessions, ended ones are forgotten (their bearer then reads as unknown).
const PRUNE_THRESHOLD: usize = 1024;
/// Above this many remembered `jti`s, the ones whose body has expired are forgotten.
const JTI_PRUNE_THRESHOLD: usize = 1024;

/// Why a call with an SSO bearer is refused: the `detail` of its `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied(pub(crate) String);

/// Who holds the brokerage session of a username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Session(u64),
    /// Another platform (a competing login).
    Elsewhere,
}

#[derive(Debug)]
struct SsoSession {
    client_id: String,
    username: String,
    ip: Option<IpAddr>,
    /// The `session` of tickle's answer: random, not the bearer.
    name: String,
    auth_time_ms: i64,
    last_accessed_ms: i64,
    opened: Instant,
    last_used: Instant,
    /// 0 healthy; 1 to 3 decaying (see `SessionFault::Decay`): 1 `/iserver` refused, 2 and 3
    /// not authenticated either, then ended.
    decay: u8,
    ended: Option<String>,
}

/// What a session's caller sees of it.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) name: String,
    pub(crate) auth_time_ms: i64,
    pub(crate) last_accessed_ms: i64,
    /// Milliseconds until it ends if left idle.
    pub(crate) expires_ms: u64,
}

/// The brokerage session as `tickle`, `ssodh/init` and `auth/status` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) authenticated: bool,
    pub(crate) competing: bool,
    pub(crate) connected: bool,
}

/// The outcome of `ssodh/init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Init {
    /// Inside the nightly reset window: `503`.
    Unavailable,
    /// An injected `failed to generate sso dh token`: `500`.
    DhFailure,
    /// `200` with this status.
    Done(Status),
}

/// Why an `/iserver` call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Iserver {
    Ok,
    /// Inside the nightly reset window: `503`.
    Unavailable,
    /// Decaying: `500 Please query /accounts first`.
    QueryAccountsFirst,
    /// No brokerage session: `400 no bridge`.
    NoBridge,
}

/// Every session of a sandbox.
#[derive(Debug)]
pub(crate) struct Sessions {
    settings: SessionSettings,
    sessions: HashMap<u64, SsoSession>,
    tokens: HashMap<String, u64>,
    brokerage: HashMap<String, Owner>,
    next_id: u64,
    caller_ip: Option<IpAddr>,
    reset_until: Option<Instant>,
    ssodh_failures: usize,
    /// Tickles still to hold, and for how long each.
    slow_tickles: (usize, std::time::Duration),
    /// `(client id, jti)` of sso-sessions bodies -> their `exp` (or the time they came).
    seen_jtis: HashMap<(String, String), i64>,
}

impl Sessions {
    pub(crate) fn new(settings: SessionSettings) -> Self {
        Self {
            settings,
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            brokerage: HashMap::new(),
            next_id: 1,
            caller_ip: None,
            reset_until: None,
            ssodh_failures: 0,
            slow_tickles: (0, std::time::Duration::ZERO),
            seen_jtis: HashMap::new(),
        }
    }

    /// The IP requests come from, once an [`SessionFault::IpChange`] set it.
    pub(crate) fn caller_ip(&self) -> Option<IpAddr> {
        self.caller_ip
    }

    /// Records an sso-sessions body's `jti` unless it was used before.
    pub(crate) fn remember_jti(
        &mut self,
        client_id: &str,
        jti: &str,
        exp: i64,
        now: i64,
    ) -> Result<(), String> {
        if self.seen_jtis.len() >= JTI_PRUNE_THRESHOLD {
            self.seen_jtis.retain(|_, e| *e > now);
        }
        let key = (client_id.to_owned(), jti.to_owned());
        if self.seen_jtis.contains_key(&key) {
            return Err(format!(
                "jti {} was already used (replay)",
                crate::verify::quote(jti)
            ));
        }
        self.seen_jtis.insert(key, exp);
        Ok(())
    }

    /// Opens an SSO session under `token` (the bearer) and returns its id. `ip` is the one the
    /// signed body names; without one the session is bound to the caller's IP when known.
    pub(crate) fn open(
        &mut self,
        opening: Opening,
        now: Instant,
        now_ms: i64,
    ) -> Result<u64, String> {
        if let (Some(caller), Some(ip)) = (self.caller_ip, opening.ip) {
            if caller != ip {
                return Err(format!(
                    "ip: {} is not the address the request comes from ({caller}); sign the \
                     caller's public IP",
                    crate::verify::quote(&ip.to_string())
                ));
            }
        }
        if self.sessions.len() >= PRUNE_THRESHOLD {
            let ended: Vec<u64> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.ended.is_some())
                .map(|(id, _)| *id)
                .collect();
            for id in ended {
                self.sessions.remove(&id);
            }
            let sessions = &self.sessions;
            self.tokens.retain(|_, id| sessions.contains_key(id));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.sessions.insert(
            id,
            SsoSession {
                client_id: opening.client_id,
                username: opening.username,
                ip: opening.ip.or(self.caller_ip),
                name: opening.name,
                auth_time_ms: now_ms,
                last_accessed_ms: now_ms,
                opened: now,
                last_used: now,
                decay: 0,
                ended: None,
            },
        );
        self.tokens.insert(opening.token, id);
        Ok(id)
    }

    /// The session of an SSO bearer, if it is still open; counts as activity (the idle timer
    /// starts again).
    pub(crate) fn touch(&mut self, token: &str, now: Instant, now_ms: i64) -> Result<u64, Denied> {
        let Some(&id) = self.tokens.get(token) else {
            return Err(Denied(
                "SSO session: the bearer is not a session this sandbox opened; open one with \
                 POST /gw/api/v1/sso-sessions"
                    .into(),
            ));
        };
        let settings = self.settings.clone();
        let caller_ip = self.caller_ip;
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or_else(|| Denied("SSO session: unknown".into()))?;
        if session.ended.is_none() {
            let idle = now.saturating_duration_since(session.last_used);
            if idle >= settings.idle_timeout {
                session.ended = Some(format!(
                    "expired after {} ms without a request",
                    settings.idle_timeout.as_millis()
                ));
            } else if now.saturating_duration_since(session.opened) >= settings.lifetime {
                session.ended = Some(format!(
                    "reached its lifetime of {} s",
                    settings.lifetime.as_secs()
                ));
            } else if let (Some(bound), Some(caller)) = (session.ip, caller_ip) {
                if bound != caller {
                    session.ended = Some(format!(
                        "opened for IP {bound}, but requests now come from {caller}"
                    ));
                }
            }
        }
        if let Some(reason) = &session.ended {
            let detail =
                format!("SSO session: {reason}; open a new one with POST /gw/api/v1/sso-sessions");
            self.release(id);
            return Err(Denied(detail));
        }
        session.last_used = now;
        session.last_accessed_ms = now_ms;
        Ok(id)
    }

    fn release(&mut self, id: u64) {
        self.brokerage
            .retain(|_, owner| *owner != Owner::Session(id));
    }

    fn end(&mut self, id: u64, reason: &str) {
        if let Some(session) = self.sessions.get_mut(&id) {
            if session.ended.is_none() {
                session.ended = Some(reason.to_owned());
            }
        }
        self.release(id);
    }

    pub(crate) fn view(&self, id: u64, now: Instant) -> Option<View> {
        let s = self.sessions.get(&id)?;
        let idle_left = (s.last_used + self.settings.idle_timeout).saturating_duration_since(now);
        let life_left = (s.opened + self.settings.lifetime).saturating_duration_since(now);
        Some(View {
            client_id: s.client_id.clone(),
            username: s.username.clone(),
            ip: s.ip,
            name: s.name.clone(),
            auth_time_ms: s.auth_time_ms,
            last_accessed_ms: s.last_accessed_ms,
            expires_ms: u64::try_from(idle_left.min(life_left).as_millis()).unwrap_or(u64::MAX),
        })
    }

    fn in_reset(&mut self, now: Instant) -> bool {
        match self.reset_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.reset_until = None;
                false
            }
            None => false,
        }
    }

    /// The brokerage status session `id` sees.
    pub(crate) fn status(&mut self, id: u64, now: Instant) -> Status {
        if self.in_reset(now) {
            return Status {
                authenticated: false,
                competing: false,
                connected: false,
            };
        }
        let Some(session) = self.sessions.get(&id) else {
            return Status {
                authenticated: false,
                competing: false,
                connected: true,
            };
        };
        let owner = self.brokerage.get(&session.username).copied();
        Status {
            authenticated: owner == Some(Owner::Session(id)) && session.decay < 2,
            competing: matches!(owner, Some(o) if o != Owner::Session(id)),
            connected: true,
        }
    }

    /// `ssodh/init` by session `id`.
    pub(crate) fn init(&mut self, id: u64, compete: bool, now: Instant) -> Init {
        if self.in_reset(now) {
            return Init::Unavailable;
        }
        if self.ssodh_failures > 0 {
            self.ssodh_failures -= 1;
            return Init::DhFailure;
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return Init::Unavailable;
        };
        let username = session.username.clone();
        match self.brokerage.get(&username) {
            Some(owner) if *owner != Owner::Session(id) && !compete => {}
            _ => {
                session.decay = 0;
                self.brokerage.insert(username, Owner::Session(id));
            }
        }
        Init::Done(self.status(id, now))
    }

    /// `tickle` by session `id`: its status, or (inside the reset window) the error to answer;
    /// then the decay, if any, moves on a stage.
    pub(crate) fn tickle(&mut self, id: u64, now: Instant) -> Result<Status, &'static str> {
        if self.in_reset(now) {
            return Err("failed to process request");
        }
        let status = self.status(id, now);
        let decay = self.sessions.get(&id).map_or(0, |s| s.decay);
        match decay {
            0 => {}
            1 | 2 => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.decay = decay + 1;
                }
            }
            _ => self.end(id, "decayed"),
        }
        Ok(status)
    }

    /// Whether session `id` may make an `/iserver` call.
    pub(crate) fn iserver(&mut self, id: u64, now: Instant) -> Iserver {
        if self.in_reset(now) {
            return Iserver::Unavailable;
        }
        if self.sessions.get(&id).is_some_and(|s| s.decay > 0) {
            return Iserver::QueryAccountsFirst;
        }
        if self.status(id, now).authenticated {
            Iserver::Ok
        } else {
            Iserver::NoBridge
        }
    }

    pub(crate) fn logout(&mut self, id: u64) {
        self.end(id, "logged out");
    }

    /// How many SSO sessions are open (not ended; idle ones count until a request finds them
    /// expired).
    pub(crate) fn open_count(&self) -> usize {
        self.sessions.values().filter(|s| s.ended.is_none()).count()
    }

    /// Whether an SSO session holds the brokerage session of `username`.
    pub(crate) fn brokerage_held(&self, username: &str) -> bool {
        matches!(self.brokerage.get(username), Some(Owner::Session(_)))
    }

    pub(crate) fn apply(&mut self, fault: SessionFault, now: Instant) {
        let live: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.ended.is_none())
            .map(|(id, _)| *id)
            .collect();
        match fault {
            SessionFault::ExpireSessions => {
                let reason = format!(
                    "expired after {} ms without a request",
                    self.settings.idle_timeout.as_millis()
                );
                for id in live {
                    self.end(id, &reason);
                }
            }
            SessionFault::CompetingLogin => {
                for id in live {
                    if let Some(s) = self.sessions.get(&id) {
                        self.brokerage.insert(s.username.clone(), Owner::Elsewhere);
                    }
                }
            }
            SessionFault::NoBridge => self.brokerage.clear(),
            SessionFault::SsoDhTokenFailure { times } => {
                self.ssodh_failures = self.ssodh_failures.saturating_add(times);
            }
            SessionFault::Decay => {
                for id in live {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.decay = 1;
                    }
                }
            }
            SessionFault::NightlyReset { lasts } => {
                self.reset_until = now.checked_add(lasts).or(Some(now));
                self.brokerage.clear();
            }
            SessionFault::IpChange { new_ip } => self.caller_ip = Some(new_ip),
            SessionFault::SlowTickles { times, delay } => self.slow_tickles = (times, delay),
        }
    }

    /// How long to hold the tickle now being answered (a [`SessionFault::SlowTickles`]).
    pub(crate) fn tickle_delay(&mut self) -> Option<std::time::Duration> {
        let (left, delay) = &mut self.slow_tickles;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(*delay)
    }
}

/// What `open` needs of an accepted sso-sessions request.
#[derive(Debug)]
pub(crate) struct Opening {
    pub(crate) token: String,
    pub(crate) name: String,
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) ip: Option<IpAddr>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(SessionSettings {
            idle_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(100),
        })
    }

    fn opening(token: &str, username: &str, ip: Option<&str>) -> Opening {
        Opening {
            token: token.into(),
            name: format!("name-{token}"),
            client_id: "c".into(),
            username: username.into(),
            ip: ip.map(|ip| ip.parse().unwrap()),
        }
    }

    const AUTH: Status = Status {
        authenticated: true,
        competing: false,
        connected: true,
    };
    const NONE: Status = Status {
        authenticated: false,
        competing: false,
        connected: true,
    };
    const COMPETING: Status = Status {
        authenticated: false,
        competing: true,
        connected: true,
    };

    #[test]
    fn idle_expiry_and_lifetime() {
        let t0 = Instant::now();
        let mut s = sessions();
        let id = s.open(opening("t", "u", None), t0, 0).unwrap();
        assert_eq!(s.touch("t", t0 + Duration::from_secs(9), 9), Ok(id));
        assert_eq!(
            s.view(id, t0 + Duration::from_secs(9)).unwrap().expires_ms,
            10_000
        );
        // Each request starts the idle timer again; the lifetime is absolute.
        for n in 2..=11 {
            assert_eq!(s.touch("t", t0 + Duration::from_secs(9 * n), 0), Ok(id));
        }
        let denied = s.touch("t", t0 + Duration::from_secs(100), 0).unwrap_err();
        assert!(denied.0.contains("lifetime of 100 s"), "{denied:?}");
        let id = s.open(opening("t2", "u", None), t0, 0).unwrap();
        assert_eq!(s.init(id, true, t0), Init::Done(AUTH));
        let denied = s.touch("t2", t0 + Duration::from_secs(10), 0).unwrap_err();
        assert!(denied.0.contains("expired after 10000 ms"), "{denied:?}");
        assert!(
            !s.brokerage_held("u"),
            "an ended session frees the brokerage"
        );
        assert!(
            s.touch("nope", t0, 0)
                .unwrap_err()
                .0
                .contains("not a session")
        );
    }

    #[test]
    fn one_brokerage_session_per_username() {
        let t = Instant::now();
        let mut s = sessions();
        let a = s.open(opening("a", "u", None), t, 0).unwrap();
        let b = s.open(opening("b", "u", None), t, 0).unwrap();
        let other = s.open(opening("o", "v", None), t, 0).unwrap();
        assert_eq!(s.status(a, t), NONE);
        assert_eq!(s.init(a, true, t), Init::Done(AUTH));
        assert_eq!(s.init(other, false, t), Init::Done(AUTH));
        assert_eq!(s.status(b, t), COMPETING);
        assert_eq!(
            s.init(b, false, t),
            Init::Done(COMPETING),
            "compete false waits"
        );
        assert_eq!(
            s.init(b, true, t),
            Init::Done(AUTH),
            "compete true takes it"
        );
        assert_eq!(s.status(a, t), COMPETING);
        assert_eq!(s.iserver(a, t), Iserver::NoBridge);
        assert_eq!(s.status(other, t), AUTH);
        s.logout(b);
        assert_eq!(s.status(a, t), NONE);
        assert!(s.touch("b", t, 0).unwrap_err().0.contains("logged out"));
    }

    #[test]
    fn slow_tickles_are_counted_down() {
        let mut s = Sessions::new(SessionSettings::default());
        assert_eq!(s.tickle_delay(), None);
        let delay = std::time::Duration::from_secs(2);
        s.apply(
            SessionFault::SlowTickles { times: 2, delay },
            Instant::now(),
        );
        assert_eq!(s.tickle_delay(), Some(delay));
        assert_eq!(s.tickle_delay(), Some(delay));
        assert_eq!(s.tickle_delay(), None);
    }

    #[test]
    fn competing_login_and_no_bridge() {
        let t = Instant::now();
        let mut s = sessions();
        let a = s.open(opening("a", "u", None), t, 0).unwrap();
        s.init(a, true, t);
        s.apply(SessionFault::CompetingLogin, t);
        assert_eq!(s.status(a, t), COMPETING);
        assert_eq!(s.init(a, false, t), Init::Done(COMPETING));
        assert_eq!(s.init(a, true, t), Init::Done(AUTH));
        s.apply(SessionFault::NoBridge, t);
        assert_eq!(s.iserver(a, t), Iserver::NoBridge);
        assert_eq!(s.status(a, t), NONE);
        s.apply(SessionFault::SsoDhTokenFailure { times: 1 }, t);
        assert_eq!(s.init(a, true, t), Init::DhFailure);
        assert_eq!(s.init(a, true, t), Init::Done(AUTH));
        assert_eq!(s.iserver(a, t), Iserver::Ok);
    }

    #[test]
    fn decay_in_stages_healed_by_init_until_the_last() {
        let t = Instant::now();
        let mut s = sessions();
        let a = s.open(opening("a", "u", None), t, 0).unwrap();
        s.init(a, true, t);
        s.apply(SessionFault::Decay, t);
        assert_eq!(s.iserver(a, t), Iserver::QueryAccountsFirst);
        assert_eq!(s.tickle(a, t), Ok(AUTH));
        assert_eq!(s.tickle(a, t), Ok(NONE), "stage 2: not authenticated");
        assert_eq!(s.init(a, true, t), Init::Done(AUTH), "healed by init");
        assert_eq!(s.iserver(a, t), Iserver::Ok);
        s.apply(SessionFault::Decay, t);
        for _ in 0..3 {
            let _ = s.tickle(a, t);
        }
        assert!(s.touch("a", t, 0).unwrap_err().0.contains("decayed"));
    }

    #[test]
    fn nightly_reset_window() {
        let t = Instant::now();
        let mut s = sessions();
        let a = s.open(opening("a", "u", None), t, 0).unwrap();
        s.init(a, true, t);
        s.apply(
            SessionFault::NightlyReset {
                lasts: Duration::from_secs(5),
            },
            t,
        );
        assert_eq!(s.tickle(a, t), Err("failed to process request"));
        assert_eq!(s.init(a, true, t), Init::Unavailable);
        assert_eq!(s.iserver(a, t), Iserver::Unavailable);
        let after = t + Duration::from_secs(5);
        assert_eq!(s.touch("a", after, 0), Ok(a), "the SSO session survives");
        assert_eq!(
            s.iserver(a, after),
            Iserver::NoBridge,
            "the reset closed it"
        );
        assert_eq!(s.init(a, true, after), Init::Done(AUTH));
    }

    #[test]
    fn ip_change_ends_bound_sessions() {
        let t = Instant::now();
        let mut s = sessions();
        s.open(opening("a", "u", Some("1.2.3.4")), t, 0).unwrap();
        s.apply(
            SessionFault::IpChange {
                new_ip: "5.6.7.8".parse().unwrap(),
            },
            t,
        );
        let denied = s.touch("a", t, 0).unwrap_err();
        assert!(
            denied
                .0
                .contains("opened for IP 1.2.3.4, but requests now come from 5.6.7.8")
        );
        assert!(s.open(opening("b", "u", Some("1.2.3.4")), t, 0).is_err());
        s.open(opening("c", "u", Some("5.6.7.8")), t, 0).unwrap();
        s.open(opening("d", "u", None), t, 0).unwrap();
        assert!(s.touch("c", t, 0).is_ok() && s.touch("d", t, 0).is_ok());
    }

    #[test]
    fn replayed_jti_is_refused() {
        let mut s = sessions();
        s.remember_jti("c", "j", 10, 0).unwrap();
        assert!(
            s.remember_jti("c", "j", 10, 0)
                .unwrap_err()
                .contains("replay")
        );
        s.remember_jti("other", "j", 10, 0).unwrap();
    }
}
