//! The `IBKR_*` variables [`Config`](super::Config) reads ([`env_vars`]) and where each
//! setting came from ([`SettingOrigin`]).

use std::fmt;

/// The names of the environment variables [`Config::from_env`](super::Config::from_env) reads.
pub mod env_vars {
    /// The client id registered with IBKR (`iss` and `sub` of the assertion).
    pub const CLIENT_ID: &str = "IBKR_CLIENT_ID";
    /// The key id registered with IBKR (the assertion's `kid`).
    pub const KEY_ID: &str = "IBKR_KEY_ID";
    /// The private key: the path of a PEM file, or the PEM text itself.
    pub const PRIVATE_KEY: &str = "IBKR_PRIVATE_KEY";
    /// The passphrase of an encrypted private key (`BEGIN ENCRYPTED PRIVATE KEY`).
    pub const PRIVATE_KEY_PASSPHRASE: &str = "IBKR_PRIVATE_KEY_PASSPHRASE";
    /// The scopes to ask for, space-delimited.
    pub const SCOPE: &str = "IBKR_SCOPE";
    /// The server (default `https://api.ibkr.com`).
    pub const BASE_URL: &str = "IBKR_BASE_URL";
    /// The assertion's `aud` (default `/token`).
    pub const AUDIENCE: &str = "IBKR_AUDIENCE";
    /// The signature algorithm (default: the key's own, RS256 for RSA).
    pub const ALG: &str = "IBKR_ALG";
    /// The IBKR username a session is opened for (the sso-sessions `credential`).
    pub const USERNAME: &str = "IBKR_USERNAME";
    /// The public IP IBKR sees requests come from (the sso-sessions `ip`).
    pub const SESSION_IP: &str = "IBKR_SESSION_IP";
    /// Every variable of the token settings, in the order above ([`USERNAME`] and
    /// [`SESSION_IP`] are the session's).
    pub const ALL: [&str; 8] = [
        CLIENT_ID,
        KEY_ID,
        PRIVATE_KEY,
        PRIVATE_KEY_PASSPHRASE,
        SCOPE,
        BASE_URL,
        AUDIENCE,
        ALG,
    ];
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingOrigin {
    /// Set in code (by the `ibkr-oauth` command: a flag).
    Set,
    /// Read from this environment variable.
    Variable(&'static str),
    /// Not given: the default applies (or the setting is missing).
    Default,
}

impl fmt::Display for SettingOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingOrigin::Set => f.write_str("flag"),
            SettingOrigin::Variable(name) => write!(f, "variable {name}"),
            SettingOrigin::Default => f.write_str("default"),
        }
    }
}

/// One setting's value and where it came from.
#[derive(Clone)]
pub(super) struct Setting<T> {
    pub(super) value: Option<T>,
    pub(super) origin: SettingOrigin,
}

impl<T> Setting<T> {
    pub(super) fn unset() -> Self {
        Self {
            value: None,
            origin: SettingOrigin::Default,
        }
    }

    pub(super) fn set(&mut self, value: T) {
        self.value = Some(value);
        self.origin = SettingOrigin::Set;
    }
}
