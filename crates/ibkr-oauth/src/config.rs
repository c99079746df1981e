//! [`Config`]: the settings a program (or the `ibkr-oauth` command) needs, read from the
//! `IBKR_*` environment variables ([`env_vars`]) and overridable in code, each remembering
//! where it came from.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::assertion::{Algorithm, PrivateKey, Signer};
use crate::client::{IBKR_PRODUCTION, TokenClient};
use crate::error::VariableProblem;
use crate::error::{ConfigError, Error};

mod env; // the IBKR_* variable names, and where each setting came from

use env::Setting;
pub use env::{SettingOrigin, env_vars};

/// The settings to get a token: client id, key id, private key (and its passphrase), scopes,
/// base URL, audience and algorithm.
///
/// [`Config::from_env`] reads the [`env_vars`]; setters override (the `ibkr-oauth` command
/// sets its flags this way, so flags win over variables); [`origins`](Self::origins) says where
/// each value came from. Nothing is checked until [`signer`](Self::signer),
/// [`client`](Self::client) or [`provider`](Self::provider), whose errors name the variable
/// a bad value came from.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ibkr_oauth::Error> {
/// // IBKR_CLIENT_ID, IBKR_KEY_ID, IBKR_PRIVATE_KEY (+ IBKR_SCOPE, IBKR_BASE_URL...) set.
/// let provider = ibkr_oauth::Config::from_env()?.provider()?;
/// let token = provider.access_token().await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Config {
    client_id: Setting<String>,
    key_id: Setting<String>,
    private_key: Setting<SecretString>,
    passphrase: Setting<SecretString>,
    scope: Setting<String>,
    base_url: Setting<String>,
    audience: Setting<String>,
    algorithm: Setting<String>,
    username: Setting<String>,
    session_ip: Setting<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: Setting::unset(),
            key_id: Setting::unset(),
            private_key: Setting::unset(),
            passphrase: Setting::unset(),
            scope: Setting::unset(),
            base_url: Setting::unset(),
            audience: Setting::unset(),
            algorithm: Setting::unset(),
            username: Setting::unset(),
            session_ip: Setting::unset(),
        }
    }
}

impl Config {
    /// No settings: every one from code.
    pub fn new() -> Self {
        Self::default()
    }

    /// The settings in the [`env_vars`] (an empty variable counts as unset).
    ///
    /// # Errors
    /// [`ConfigError::Variable`] for a variable that is set but not Unicode.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name))
    }

    /// The settings that `lookup` gives for the [`env_vars`] (the environment, or a test's map).
    fn from_lookup(
        lookup: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, ConfigError> {
        let read = |name: &'static str| -> Result<Setting<String>, ConfigError> {
            match lookup(name) {
                Ok(value) if value.trim().is_empty() => Ok(Setting::unset()),
                Ok(value) => Ok(Setting {
                    value: Some(value),
                    origin: SettingOrigin::Variable(name),
                }),
                Err(std::env::VarError::NotPresent) => Ok(Setting::unset()),
                Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Variable {
                    name,
                    problem: VariableProblem::NotUnicode,
                }),
            }
        };
        let secret = |name: &'static str| -> Result<Setting<SecretString>, ConfigError> {
            let Setting { value, origin } = read(name)?;
            Ok(Setting {
                value: value.map(SecretString::from),
                origin,
            })
        };
        Ok(Self {
            client_id: read(env_vars::CLIENT_ID)?,
            key_id: read(env_vars::KEY_ID)?,
            private_key: secret(env_vars::PRIVATE_KEY)?,
            passphrase: secret(env_vars::PRIVATE_KEY_PASSPHRASE)?,
            scope: read(env_vars::SCOPE)?,
            base_url: read(env_vars::BASE_URL)?,
            audience: read(env_vars::AUDIENCE)?,
            algorithm: read(env_vars::ALG)?,
            username: read(env_vars::USERNAME)?,
            session_ip: read(env_vars::SESSION_IP)?,
        })
    }

    /// Sets the IBKR username a session is opened for.
    #[must_use]
    pub fn username(mut self, value: impl Into<String>) -> Self {
        self.username.set(value.into());
        self
    }

    /// Sets the public IP the session is bound to.
    #[must_use]
    pub fn session_ip(mut self, value: impl Into<String>) -> Self {
        self.session_ip.set(value.into());
        self
    }

    /// The IBKR username, if given.
    pub fn get_username(&self) -> Option<&str> {
        self.username.value.as_deref()
    }

    /// The session's public IP, if given.
    pub fn get_session_ip(&self) -> Option<&str> {
        self.session_ip.value.as_deref()
    }

    /// A session configuration for the username and IP given (the other session settings
    /// at their defaults, to change on the builder before `build()`).
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming `IBKR_USERNAME` or `IBKR_SESSION_IP` when one is not
    /// given.
    #[cfg(feature = "provider")]
    pub fn session_config(&self) -> Result<crate::session::SessionConfigBuilder, ConfigError> {
        let Some(username) = &self.username.value else {
            return Err(missing("IBKR username", env_vars::USERNAME));
        };
        let Some(ip) = &self.session_ip.value else {
            return Err(missing("public IP of the session", env_vars::SESSION_IP));
        };
        Ok(crate::session::SessionConfig::builder(username).ip(ip))
    }

    /// Sets the client id.
    #[must_use]
    pub fn client_id(mut self, value: impl Into<String>) -> Self {
        self.client_id.set(value.into());
        self
    }

    /// Sets the key id.
    #[must_use]
    pub fn key_id(mut self, value: impl Into<String>) -> Self {
        self.key_id.set(value.into());
        self
    }

    /// Sets the private key: the path of a PEM file, or the PEM text itself.
    #[must_use]
    pub fn private_key(mut self, path_or_pem: SecretString) -> Self {
        self.private_key.set(path_or_pem);
        self
    }

    /// Sets the passphrase of an encrypted private key.
    #[must_use]
    pub fn passphrase(mut self, passphrase: SecretString) -> Self {
        self.passphrase.set(passphrase);
        self
    }

    /// Sets the scopes, space-delimited.
    #[must_use]
    pub fn scope(mut self, value: impl Into<String>) -> Self {
        self.scope.set(value.into());
        self
    }

    /// Sets the base URL.
    #[must_use]
    pub fn base_url(mut self, value: impl Into<String>) -> Self {
        self.base_url.set(value.into());
        self
    }

    /// Sets the assertion's audience.
    #[must_use]
    pub fn audience(mut self, value: impl Into<String>) -> Self {
        self.audience.set(value.into());
        self
    }

    /// Sets the signature algorithm by name (`RS256`, `PS256`, `ES256`, `EdDSA`).
    #[must_use]
    pub fn algorithm(mut self, value: impl Into<String>) -> Self {
        self.algorithm.set(value.into());
        self
    }

    /// Whether the private key needs a passphrase that was not given.
    pub fn has_passphrase(&self) -> bool {
        self.passphrase.value.is_some()
    }

    /// The client id, if given.
    pub fn get_client_id(&self) -> Option<&str> {
        self.client_id.value.as_deref()
    }

    /// The key id, if given.
    pub fn get_key_id(&self) -> Option<&str> {
        self.key_id.value.as_deref()
    }

    /// The scopes, if given.
    pub fn get_scope(&self) -> Option<&str> {
        self.scope.value.as_deref()
    }

    /// The base URL: the one given, else [`IBKR_PRODUCTION`].
    pub fn get_base_url(&self) -> &str {
        self.base_url.value.as_deref().unwrap_or(IBKR_PRODUCTION)
    }

    /// Each setting's name and where its value came from (secrets by origin only).
    pub fn origins(&self) -> Vec<(&'static str, SettingOrigin)> {
        vec![
            ("client id", self.client_id.origin),
            ("key id", self.key_id.origin),
            ("private key", self.private_key.origin),
            ("passphrase", self.passphrase.origin),
            ("scope", self.scope.origin),
            ("base URL", self.base_url.origin),
            ("audience", self.audience.origin),
            ("algorithm", self.algorithm.origin),
        ]
    }

    /// The private key, read from its file or text (decrypted with the passphrase if given).
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when no key was given; the [`KeyError`](crate::KeyError)s of
    /// [`PrivateKey`], naming the variable the key came from.
    pub fn key(&self) -> Result<PrivateKey, Error> {
        let Some(key) = &self.private_key.value else {
            return Err(missing("private key", env_vars::PRIVATE_KEY).into());
        };
        let text = key.expose_secret();
        let name = match self.private_key.origin {
            SettingOrigin::Variable(name) => Some(name),
            _ => None,
        };
        let passphrase = self
            .passphrase
            .value
            .as_ref()
            .map(|p| p.expose_secret().to_owned());
        let passphrase = zeroize::Zeroizing::new(passphrase.unwrap_or_default());
        let encrypted = self.passphrase.value.is_some();
        Ok(PrivateKey::from_path_or_pem(
            text,
            name,
            encrypted.then_some(passphrase.as_bytes()),
        )?)
    }

    /// The signer: client id, key id, key, and the optional audience and algorithm.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for a missing client id, key id or key;
    /// [`ConfigError::Variable`] for an algorithm name that is not one (naming its variable);
    /// the key's errors; the signer builder's.
    pub fn signer(&self) -> Result<Signer, Error> {
        let client_id = self
            .client_id
            .value
            .clone()
            .ok_or_else(|| missing("client id", env_vars::CLIENT_ID))?;
        let key_id = self
            .key_id
            .value
            .clone()
            .ok_or_else(|| missing("key id", env_vars::KEY_ID))?;
        let mut builder = Signer::builder(client_id, key_id, self.key()?);
        if let Some(audience) = &self.audience.value {
            builder = builder.audience(audience);
        }
        if let Some(name) = &self.algorithm.value {
            let algorithm: Algorithm =
                name.parse()
                    .map_err(|e: ConfigError| match self.algorithm.origin {
                        SettingOrigin::Variable(var) => ConfigError::Variable {
                            name: var,
                            problem: VariableProblem::Refused(Box::new(e)),
                        },
                        _ => e,
                    })?;
            builder = builder.algorithm(algorithm);
        }
        builder.build()
    }

    /// The token client for the base URL.
    ///
    /// # Errors
    /// [`ConfigError::Client`] for a base URL the client refuses (naming its variable).
    pub fn client(&self) -> Result<TokenClient, ConfigError> {
        TokenClient::builder()
            .base_url(self.get_base_url())
            .build()
            .map_err(|e| match self.base_url.origin {
                SettingOrigin::Variable(var) => ConfigError::Variable {
                    name: var,
                    problem: VariableProblem::Refused(Box::new(e)),
                },
                _ => e,
            })
    }

    /// A token provider with these settings (and the provider's defaults).
    ///
    /// # Errors
    /// Those of [`signer`](Self::signer) and [`client`](Self::client), and the scope checks.
    #[cfg(feature = "provider")]
    pub fn provider(&self) -> Result<crate::provider::TokenProvider, Error> {
        let mut builder = crate::provider::TokenProvider::builder(self.client()?, self.signer()?);
        if let Some(scope) = &self.scope.value {
            builder = builder.scope(scope);
        }
        builder.build()
    }
}

fn missing(what: &'static str, variable: &'static str) -> ConfigError {
    ConfigError::Missing { what, variable }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Setting<String>| s.value.clone();
        f.debug_struct("Config")
            .field("client_id", &shown(&self.client_id))
            .field("key_id", &shown(&self.key_id))
            .field(
                "private_key",
                &self.private_key.value.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "passphrase",
                &self.passphrase.value.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &shown(&self.scope))
            .field("base_url", &shown(&self.base_url))
            .field("audience", &shown(&self.audience))
            .field("algorithm", &shown(&self.algorithm))
            .field("username", &shown(&self.username))
            .field("session_ip", &shown(&self.session_ip))
            .finish()
    }
}

#[cfg(test)]
mod tests;
