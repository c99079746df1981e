//! The client settings of `token`, `doctor`, `assertion` and `jwk`: the SDK's
//! [`Config::from_env`] (the `IBKR_*` variables), overridden by flags, turned into the SDK's
//! [`Signer`], [`TokenClient`] and [`TokenRequest`].
//!
//! | flag | environment | default |
//! |---|---|---|
//! | `--client-id` | `IBKR_CLIENT_ID` | required |
//! | `--key-id` (`--kid`) | `IBKR_KEY_ID` | `main` |
//! | `--private-key` | `IBKR_PRIVATE_KEY` (a path, or the PEM text) | required |
//! | (none: never a flag) | `IBKR_PRIVATE_KEY_PASSPHRASE`, or a prompt on a terminal | none |
//! | `--scope` | `IBKR_SCOPE` (space-delimited) | none |
//! | `--base-url` | `IBKR_BASE_URL` | `https://api.ibkr.com` |
//! | `--audience` | `IBKR_AUDIENCE` | `/token` |
//! | `--alg` | `IBKR_ALG` | from the key type (RS256 for RSA) |
//!
//! A flag wins over its variable. Everything is checked before any network I/O; a missing or
//! invalid setting is a configuration error (exit code 2) that names the flag or the variable
//! it came from.

use std::time::Duration;

use ibkr_oauth::{
    Algorithm, Config, ConfigError, KeyError, PrivateKey, SettingOrigin, Signer, TokenClient,
    TokenRequest, env_vars,
};

use crate::cli::{RequestArgs, SignerArgs};
use crate::error::Error;
use crate::passphrase;

/// The `User-Agent` of the command's requests.
pub const USER_AGENT: &str = concat!("ibkr-oauth-cli/", env!("CARGO_PKG_VERSION"));

/// The key id used when neither `--key-id` nor `IBKR_KEY_ID` gives one.
pub const DEFAULT_KEY_ID: &str = "main";

/// The settings of one run: the SDK's [`Config`] with the flags applied.
#[derive(Debug, Clone)]
pub struct Settings {
    config: Config,
    /// The key id came from neither a flag nor the variable.
    key_id_defaulted: bool,
    /// `--alg`, kept to choose the JWK's `alg` without a signer.
    alg_flag: Option<Algorithm>,
    timeout: Duration,
}

impl Settings {
    /// The variables, then the flags of `signer` and `request` over them.
    ///
    /// # Errors
    /// [`ConfigError::Variable`] for a variable that is not Unicode.
    pub fn new(signer: &SignerArgs, request: Option<&RequestArgs>) -> Result<Self, Error> {
        let mut config = Config::from_env()?;
        if let Some(id) = &signer.client_id {
            config = config.client_id(id);
        }
        if let Some(kid) = &signer.key_id {
            config = config.key_id(kid);
        }
        if let Some(key) = &signer.private_key {
            config = config.private_key(key.clone());
        }
        if let Some(audience) = &signer.audience {
            config = config.audience(audience);
        }
        if let Some(alg) = signer.alg {
            config = config.algorithm(alg.as_str());
        }
        let mut timeout = Duration::from_secs(30);
        if let Some(request) = request {
            if let Some(scope) = &request.scope {
                config = config.scope(scope);
            }
            if let Some(url) = &request.base_url {
                config = config.base_url(url);
            }
            timeout = Duration::from_secs(request.timeout);
        }
        let key_id_defaulted = config.get_key_id().is_none();
        if key_id_defaulted {
            config = config.key_id(DEFAULT_KEY_ID);
        }
        Ok(Self {
            config,
            key_id_defaulted,
            alg_flag: signer.alg,
            timeout,
        })
    }

    /// The session's username and IP flags over `IBKR_USERNAME` and `IBKR_SESSION_IP`.
    #[must_use]
    pub fn with_session(mut self, username: Option<&str>, ip: Option<&str>) -> Self {
        if let Some(username) = username {
            self.config = self.config.username(username);
        }
        if let Some(ip) = ip {
            self.config = self.config.session_ip(ip);
        }
        self
    }

    /// The IBKR username, if given (flag or `IBKR_USERNAME`).
    pub fn username(&self) -> Option<&str> {
        self.config.get_username()
    }

    /// The session's public IP, if given (flag or `IBKR_SESSION_IP`).
    pub fn session_ip(&self) -> Option<&str> {
        self.config.get_session_ip()
    }

    /// A session configuration for the username and IP given.
    ///
    /// # Errors
    /// A configuration error naming `IBKR_USERNAME` or `IBKR_SESSION_IP` when one is missing.
    pub fn session_config(&self) -> Result<ibkr_oauth::session::SessionConfigBuilder, Error> {
        self.config
            .session_config()
            .map_err(|e| Error::Sdk(e.into()))
    }

    /// Settings given in code only, the environment left out: what `demo` checks its sandbox
    /// with, whatever the user's `IBKR_*` variables say.
    pub fn from_config(config: Config) -> Self {
        let key_id_defaulted = config.get_key_id().is_none();
        let config = if key_id_defaulted {
            config.key_id(DEFAULT_KEY_ID)
        } else {
            config
        };
        Self {
            config,
            key_id_defaulted,
            alg_flag: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Each setting, where its value came from (`flag`, `variable IBKR_...`, `default`), and
    /// whether it is present; secrets by origin only.
    pub fn origins(&self) -> Vec<(&'static str, String)> {
        self.config
            .origins()
            .into_iter()
            .map(|(name, origin)| {
                let shown = match origin {
                    SettingOrigin::Set if name == "key id" && self.key_id_defaulted => {
                        format!("default {DEFAULT_KEY_ID}")
                    }
                    // Settings with no default: say plainly that they were not given.
                    SettingOrigin::Default
                        if matches!(name, "client id" | "private key" | "passphrase" | "scope") =>
                    {
                        "not set".to_owned()
                    }
                    other => other.to_string(),
                };
                (name, shown)
            })
            .collect()
    }

    /// The settings that are required and missing, with the flag and variable that give them.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self
            .config
            .get_client_id()
            .is_none_or(|id| id.trim().is_empty())
        {
            missing.push(format!(
                "no client id: pass --client-id ID or set {} to the client id IBKR gave you",
                env_vars::CLIENT_ID
            ));
        }
        if self.private_key_missing() {
            missing.push(no_private_key());
        }
        missing
    }

    fn private_key_missing(&self) -> bool {
        self.config
            .origins()
            .iter()
            .any(|(name, origin)| *name == "private key" && *origin == SettingOrigin::Default)
    }

    /// The private key, decrypted with `IBKR_PRIVATE_KEY_PASSPHRASE` or, when stdin is a
    /// terminal, a passphrase asked for there.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing key or an encrypted key without a passphrase; the
    /// SDK's key errors, naming the file or the variable.
    pub fn key(&mut self) -> Result<PrivateKey, Error> {
        if self.private_key_missing() {
            return Err(Error::Config(no_private_key()));
        }
        match self.config.key() {
            Err(ibkr_oauth::Error::Key(error)) if !self.config.has_passphrase() => {
                let KeyError::Encrypted { origin } = &*error else {
                    return Err(ibkr_oauth::Error::Key(error).into());
                };
                let asked = passphrase::ask(&origin.to_string())?;
                self.config = self.config.clone().passphrase(asked);
                Ok(self.config.key()?)
            }
            other => Ok(other?),
        }
    }

    /// The key id, the one given or [`DEFAULT_KEY_ID`].
    pub fn key_id(&self) -> &str {
        self.config.get_key_id().unwrap_or(DEFAULT_KEY_ID)
    }

    /// The algorithm given by `--alg` or `IBKR_ALG`, if any.
    ///
    /// # Errors
    /// [`ConfigError::Variable`] naming `IBKR_ALG` for a name that is not an algorithm.
    pub fn algorithm(&self) -> Result<Option<Algorithm>, Error> {
        algorithm_from(std::env::var(env_vars::ALG).ok(), self.alg_flag)
    }

    /// The signer: client id, key id, key (asking for its passphrase if need be), audience
    /// and algorithm.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing client id or private key; the SDK's key and signer
    /// errors, naming the variable a bad value came from.
    pub fn signer(&mut self) -> Result<Signer, Error> {
        if let Some(error) = self.missing().into_iter().next() {
            return Err(Error::Config(error));
        }
        // Read (and decrypted) first, so that the config's own read finds the passphrase.
        self.key()?;
        Ok(self.config.signer()?)
    }

    /// The token client: base URL (checked: https, or http to loopback), timeout, user agent.
    ///
    /// # Errors
    /// The SDK's [`ConfigError`] for a base URL it refuses, naming `IBKR_BASE_URL` when the
    /// URL came from there.
    pub fn client(&self) -> Result<TokenClient, Error> {
        // The config's own check names the variable a bad URL came from.
        self.config.client()?;
        Ok(TokenClient::builder()
            .base_url(self.base_url())
            .timeout(self.timeout)
            .user_agent(USER_AGENT)
            .build()?)
    }

    /// The base URL, the one given or IBKR's production server.
    pub fn base_url(&self) -> &str {
        self.config.get_base_url()
    }

    /// The timeout of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The scopes to ask for, space-delimited, if any were given.
    pub fn scope(&self) -> Option<&str> {
        self.config.get_scope().filter(|s| !s.trim().is_empty())
    }

    /// A token request carrying a fresh assertion from `signer` and the scopes.
    ///
    /// # Errors
    /// The signer's errors; [`ConfigError::Request`] for scopes the endpoint would refuse.
    pub fn request(&self, signer: &Signer) -> Result<TokenRequest, Error> {
        let mut builder = TokenRequest::builder().assertion(signer.sign()?);
        if let Some(scope) = self.scope() {
            builder = builder.scope(scope);
        }
        Ok(builder.build()?)
    }
}

fn no_private_key() -> String {
    format!(
        "no private key: pass --private-key PATH (or the PEM text) or set {}; `ibkr-oauth \
         keygen` makes a key pair",
        env_vars::PRIVATE_KEY
    )
}

/// The algorithm of a flag, else of the `IBKR_ALG` value `variable`; an error names the
/// variable.
///
/// # Errors
/// [`ConfigError::Variable`] for a variable that names no algorithm.
pub fn algorithm_from(
    variable: Option<String>,
    flag: Option<Algorithm>,
) -> Result<Option<Algorithm>, Error> {
    if flag.is_some() {
        return Ok(flag);
    }
    match variable.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) => name.parse().map(Some).map_err(|e: ConfigError| {
            ConfigError::Variable {
                name: env_vars::ALG,
                problem: ibkr_oauth::config_error::VariableProblem::Refused(Box::new(e)),
            }
            .into()
        }),
    }
}
