//! [`Config`]: the settings a program (or the `ibkr-oauth` command) needs, read from the
//! `IBKR_*` environment variables ([`env_vars`]) and overridable in code, each remembering
//! where it came from.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::assertion::{Algorithm, PrivateKey, Signer};
use crate::client::{IBKR_PRODUCTION, TokenClient};
use crate::error::{ConfigError, Error};

/// The names of the environment variables [`Config::from_env`] reads.
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
    /// Every variable, in the order above.
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
pub enum Origin {
    /// Set in code (by the `ibkr-oauth` command: a flag).
    Set,
    /// Read from this environment variable.
    Variable(&'static str),
    /// Not given: the default applies (or the setting is missing).
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Set => f.write_str("flag"),
            Origin::Variable(name) => write!(f, "variable {name}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// One setting's value and where it came from.
#[derive(Clone)]
struct Setting<T> {
    value: Option<T>,
    origin: Origin,
}

impl<T> Setting<T> {
    fn unset() -> Self {
        Self {
            value: None,
            origin: Origin::Default,
        }
    }

    fn set(&mut self, value: T) {
        self.value = Some(value);
        self.origin = Origin::Set;
    }
}

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
                    origin: Origin::Variable(name),
                }),
                Err(std::env::VarError::NotPresent) => Ok(Setting::unset()),
                Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Variable {
                    name,
                    problem: "is not valid Unicode".into(),
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
        })
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
    pub fn origins(&self) -> Vec<(&'static str, Origin)> {
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
            Origin::Variable(name) => Some(name),
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
                        Origin::Variable(var) => ConfigError::Variable {
                            name: var,
                            problem: e.to_string(),
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
                Origin::Variable(var) => ConfigError::Variable {
                    name: var,
                    problem: e.to_string(),
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
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::env::VarError;

    use super::*;
    use crate::assertion::KeyError;

    fn config(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned().ok_or(VarError::NotPresent))
            .expect("config")
    }

    fn pem() -> String {
        let key = PrivateKey::generate(Algorithm::EdDSA).expect("key");
        key.to_pkcs8_pem().expect("pem").as_str().to_owned()
    }

    #[test]
    fn variables_and_their_origins() {
        let pem = pem();
        let c = config(&[
            (env_vars::CLIENT_ID, "client"),
            (env_vars::KEY_ID, "main"),
            (env_vars::PRIVATE_KEY, &pem),
            (env_vars::SCOPE, "echo.read"),
            (env_vars::BASE_URL, ""),
        ]);
        let signer = c.signer().expect("signer");
        assert_eq!((signer.client_id(), signer.key_id()), ("client", "main"));
        let origins: HashMap<_, _> = c.origins().into_iter().collect();
        assert_eq!(origins["client id"], Origin::Variable(env_vars::CLIENT_ID));
        assert_eq!(
            origins["base URL"],
            Origin::Default,
            "an empty variable is unset"
        );
        assert_eq!(c.get_base_url(), IBKR_PRODUCTION);
        let c = c.client_id("flag-client");
        assert_eq!(c.origins()[0], ("client id", Origin::Set), "a flag wins");
        assert!(
            !format!("{c:?}").contains("PRIVATE KEY"),
            "the key never prints"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let pem = pem();
        let base = [
            (env_vars::CLIENT_ID, "client"),
            (env_vars::KEY_ID, "main"),
            (env_vars::PRIVATE_KEY, pem.as_str()),
        ];
        let mut vars = base.to_vec();
        vars.push((env_vars::ALG, "foo"));
        let error = config(&vars).signer().expect_err("bad algorithm");
        assert!(
            matches!(
                &error,
                Error::Config(ConfigError::Variable {
                    name: "IBKR_ALG",
                    ..
                })
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("IBKR_ALG"), "{error}");

        let mut vars = base.to_vec();
        vars.push((env_vars::BASE_URL, "http://api.ibkr.com"));
        let error = config(&vars).client().expect_err("plain http");
        assert!(
            matches!(
                error,
                ConfigError::Variable {
                    name: "IBKR_BASE_URL",
                    ..
                }
            ),
            "{error:?}"
        );

        let error = config(&base[..2]).signer().expect_err("no key");
        assert!(
            matches!(
                error,
                Error::Config(ConfigError::Missing {
                    variable: "IBKR_PRIVATE_KEY",
                    ..
                })
            ),
            "{error:?}"
        );
        let vars = [(env_vars::PRIVATE_KEY, "/no/such/key.pem")];
        match config(&vars).key() {
            Err(Error::Key(e)) => assert!(
                matches!(&*e, KeyError::FileRead { origin: crate::KeySource::EnvVar { name, .. }, .. } if name == "IBKR_PRIVATE_KEY"),
                "{e:?}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_encrypted_key_needs_the_passphrase_variable() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let encrypted = format!("{fixtures}/ed25519_encrypted.pem");
        let plain =
            PrivateKey::from_pem_file(format!("{fixtures}/ed25519_pkcs8.pem")).expect("plain");
        let without = config(&[(env_vars::PRIVATE_KEY, &encrypted)]);
        assert!(
            matches!(without.key(), Err(Error::Key(e)) if matches!(&*e, KeyError::Encrypted { .. }))
        );
        let with = config(&[
            (env_vars::PRIVATE_KEY, &encrypted),
            (env_vars::PRIVATE_KEY_PASSPHRASE, "test-passphrase"),
        ]);
        assert_eq!(
            with.key().expect("decrypted").public_key_pem(),
            plain.public_key_pem()
        );
    }
}
