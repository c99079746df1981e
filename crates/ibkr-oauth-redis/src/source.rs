//! [`RedisTokenSource`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ibkr_oauth::provider::{
    DEFAULT_FAILURE_COOLDOWN, DEFAULT_REFRESH_FRACTION, DEFAULT_REFRESH_MARGIN, Refresher,
    RetryPolicy, TokenProvider,
};
use ibkr_oauth::{Token, TokenSource};

use crate::entry::Binding;
use crate::error::Error;
use crate::identity::TokenIdentity;
use crate::key::EncryptionKey;
use crate::shared::{self, SharedFetch};
use crate::store::Store;

/// The default prefix of the Redis keys.
pub const DEFAULT_KEY_PREFIX: &str = "ibkr-oauth:";
/// The default bound on each Redis command (connecting included).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The default lifetime of the lease without renewal. The holder renews it every third of
/// this while its token request runs, so only a holder that died loses it this long after.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// The default time the holder keeps the lease after a failed token request: the whole
/// fleet's pause before its next attempt.
pub const DEFAULT_FAILURE_HOLD: Duration = Duration::from_secs(1);

/// The longest cache name accepted (the Redis keys stay short).
const MAX_NAME_LEN: usize = 200;

/// A fleet-shared access token: every process that builds one with the same Redis, key
/// prefix, cache name and encryption key shares one token, fetched once for the fleet.
///
/// In front sits a [`TokenProvider`]: the hot read ([`access_token`](Self::access_token) while
/// the token is valid) is the provider's lock-free cached read, with no Redis command. Only
/// when the provider needs a new token (cold start, refresh ahead, expiry, `invalidate`) does
/// the source look in Redis. See the [crate docs](crate) for the protocol and an example.
///
/// Cheap to clone; every clone shares the cache. Implements [`TokenSource`].
#[derive(Clone)]
pub struct RedisTokenSource {
    provider: TokenProvider,
    shared: SharedFetch,
    redis: Arc<str>,
}

impl RedisTokenSource {
    /// Starts a builder.
    ///
    /// - `redis_url`: `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS
    ///   (rustls, with the system's root certificates).
    /// - `cache_name`: names the shared entry under the key prefix (`ibkr-oauth:` by default).
    ///   Processes share a token only under one name, so the name must tell apart everything
    ///   that makes two tokens differ: use [`TokenIdentity::cache_name`] (client id, key id,
    ///   audience, base URL and scope set), and give the same identity to
    ///   [`identity`](RedisTokenSourceBuilder::identity) so that every entry is checked.
    /// - `key`: the fleet's [`EncryptionKey`].
    /// - `fetch`: how the elected process gets a token, normally
    ///   [`ClientFetch`](ibkr_oauth::provider::ClientFetch).
    pub fn builder(
        redis_url: impl Into<String>,
        cache_name: impl Into<String>,
        key: EncryptionKey,
        fetch: impl TokenSource + 'static,
    ) -> RedisTokenSourceBuilder {
        RedisTokenSourceBuilder {
            redis_url: redis_url.into(),
            cache_name: cache_name.into(),
            key,
            fetch: Box::new(fetch),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            lease_ttl: DEFAULT_LEASE_TTL,
            failure_hold: DEFAULT_FAILURE_HOLD,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            refresh_fraction: DEFAULT_REFRESH_FRACTION,
            retry_policy: None,
            failure_cooldown: DEFAULT_FAILURE_COOLDOWN,
            tls_root: None,
            identity: None,
        }
    }

    /// The current token: the provider's cached one while valid (no Redis command), else the
    /// fleet's from Redis, else one this process fetches for the fleet (or alone, when Redis
    /// cannot help).
    ///
    /// # Errors
    /// The token request's error, when this process had to fetch and it failed.
    pub async fn access_token(&self) -> Result<Arc<Token>, ibkr_oauth::Error> {
        self.provider.access_token().await
    }

    /// The API refused `token` (401): deletes the fleet's entry if it still holds that token
    /// (a compare-and-delete in one script: a late report never deletes a newer token), then
    /// drops it from the provider. Returns whether it was this process's current token.
    pub async fn invalidate(&self, token: &Token) -> bool {
        self.shared.invalidate(token).await;
        self.provider.invalidate(token)
    }

    /// Keeps the token fresh in the background with no caller (see
    /// [`TokenProvider::spawn_refresher`]); the refreshes still go through Redis, once per
    /// fleet.
    ///
    /// # Errors
    /// [`ibkr_oauth::Error`] of kind configuration when called outside a tokio runtime.
    pub fn spawn_refresher(&self) -> Result<Refresher, ibkr_oauth::Error> {
        self.provider.spawn_refresher()
    }

    /// The provider in front of Redis.
    pub fn provider(&self) -> &TokenProvider {
        &self.provider
    }

    /// The Redis key of the shared entry (`<prefix><cache name>:token`).
    pub fn entry_key(&self) -> &str {
        self.shared.entry_key()
    }

    /// The Redis key of the lease (`<prefix><cache name>:lease`).
    pub fn lease_key(&self) -> &str {
        self.shared.lease_key()
    }
}

#[async_trait::async_trait]
impl TokenSource for RedisTokenSource {
    async fn access_token(&self) -> Result<Arc<Token>, ibkr_oauth::Error> {
        RedisTokenSource::access_token(self).await
    }

    async fn invalidate(&self, token: &Token) -> bool {
        RedisTokenSource::invalidate(self, token).await
    }
}

impl fmt::Debug for RedisTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenSource")
            .field("redis", &self.redis)
            .field("shared", &self.shared)
            .field("provider", &self.provider)
            .finish()
    }
}

/// Configures a [`RedisTokenSource`]; [`build`](Self::build) checks everything and makes no
/// connection (the first token request connects).
#[must_use = "a builder does nothing until build() is called"]
pub struct RedisTokenSourceBuilder {
    redis_url: String,
    cache_name: String,
    key: EncryptionKey,
    fetch: Box<dyn TokenSource>,
    key_prefix: String,
    command_timeout: Duration,
    lease_ttl: Duration,
    failure_hold: Duration,
    refresh_margin: Duration,
    refresh_fraction: f64,
    retry_policy: Option<RetryPolicy>,
    failure_cooldown: Duration,
    tls_root: Option<Vec<u8>>,
    identity: Option<TokenIdentity>,
}

impl RedisTokenSourceBuilder {
    /// What this process asks for. Its client id and scope set are sealed in every entry it
    /// writes, and an entry sealed for another client id or scope set is not used: the process
    /// fetches alone and leaves it (a misnamed cache never hands out another scope's token).
    /// Without it, only entries written without one are used.
    pub fn identity(mut self, identity: TokenIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// For `rediss://`: trust the certificate authorities in this PEM (one or more
    /// certificates) instead of the system's roots, e.g. a private CA of your Redis.
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// The prefix of the Redis keys (default `ibkr-oauth:`), e.g. one per environment.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The bound on each Redis command, connecting included (default 500 ms). Past it the
    /// process fetches alone; keep it short.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The lease's lifetime without renewal (default 5 s): how long the fleet waits for a
    /// holder that died before another process takes over.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How long the holder keeps the lease after its token request failed (default 1 s): the
    /// fleet's pause before its next attempt, so that a failing IBKR gets one request per
    /// pause from the whole fleet, not one per process.
    pub fn failure_hold(mut self, hold: Duration) -> Self {
        self.failure_hold = hold;
        self
    }

    /// How long before expiry the fleet refreshes (default 5 minutes, at most
    /// [`refresh_fraction`](Self::refresh_fraction) of the lifetime). Applies both to the
    /// provider in front and to the shared entry.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The largest fraction of the lifetime used as refresh margin (default 0.2); clamped to
    /// `0.0..=1.0`, NaN counts as 0.
    pub fn refresh_fraction(mut self, fraction: f64) -> Self {
        self.refresh_fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// How the provider retries a failed fetch (default: the provider's).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// The provider's pause after a failed fetch (default 1 s).
    pub fn failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.failure_cooldown = cooldown;
        self
    }

    /// Checks the settings and builds the source. No network I/O.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a URL that is not `redis://` or `rediss://` with a host;
    /// [`Error::InvalidConfig`] for an empty or odd cache name or a zero timeout or lease.
    pub fn build(self) -> Result<RedisTokenSource, Error> {
        let redis = redacted_url(&self.redis_url)?;
        let client = open_client(&self.redis_url, self.tls_root)?;
        check_name("cache name", &self.cache_name, false)?;
        check_name("key prefix", &self.key_prefix, true)?;
        if self.command_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "command_timeout is zero; use a short positive time such as 500 ms".into(),
            ));
        }
        if self.lease_ttl < Duration::from_millis(30) {
            return Err(Error::InvalidConfig(
                "lease_ttl is under 30 ms; use a few seconds".into(),
            ));
        }
        let namespace = format!("{}{}", self.key_prefix, self.cache_name);
        let store = Store::new(client, &namespace, self.command_timeout);
        let settings = shared::Settings {
            margin_max: self.refresh_margin,
            margin_fraction: self.refresh_fraction,
            lease_ttl: self.lease_ttl,
            failure_hold: self.failure_hold,
            poll_min: Duration::from_millis(5),
            poll_max: (self.lease_ttl / 10)
                .clamp(Duration::from_millis(20), Duration::from_millis(250)),
        };
        let binding = self
            .identity
            .map(|identity| Binding {
                client_id: Some(identity.client_id().to_owned()),
                scope_set: Some(identity.scope_set()),
            })
            .unwrap_or_default();
        let shared = SharedFetch::new(
            self.fetch,
            store,
            self.key,
            settings,
            self.cache_name,
            binding,
        );
        let mut provider = TokenProvider::with_source(shared.clone())
            .refresh_margin(self.refresh_margin)
            .refresh_fraction(self.refresh_fraction)
            .failure_cooldown(self.failure_cooldown);
        if let Some(policy) = self.retry_policy {
            provider = provider.retry_policy(policy);
        }
        Ok(RedisTokenSource {
            provider: provider.build()?,
            shared,
            redis: redis.into(),
        })
    }
}

impl fmt::Debug for RedisTokenSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenSourceBuilder")
            .field(
                "redis",
                &redacted_url(&self.redis_url).unwrap_or_else(|_| "[invalid]".into()),
            )
            .field("cache_name", &self.cache_name)
            .field("key", &self.key)
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

/// The Redis client for `url`, trusting `tls_root` (PEM) instead of the system's roots when
/// given. Never quotes the URL in an error.
pub(crate) fn open_client(url: &str, tls_root: Option<Vec<u8>>) -> Result<redis::Client, Error> {
    match tls_root {
        None => redis::Client::open(url),
        Some(pem) => {
            if !url.starts_with("rediss://") {
                return Err(Error::InvalidConfig(
                    "tls_root_certificates is set but the URL is not rediss://".into(),
                ));
            }
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
    }
    .map_err(|e| {
        Error::InvalidUrl(format!(
            "the Redis client refused it or its TLS roots ({:?})",
            e.kind()
        ))
    })
}

/// Checks the URL's scheme and host, and gives it back with any password replaced (for
/// `Debug` and logs). Never quotes the URL in an error.
pub(crate) fn redacted_url(text: &str) -> Result<String, Error> {
    let mut url = url::Url::parse(text)
        .map_err(|e| Error::InvalidUrl(format!("it does not parse as a URL ({e})")))?;
    match url.scheme() {
        "redis" | "rediss" => {}
        other => {
            return Err(Error::InvalidUrl(format!(
                "the scheme `{other}` is not redis or rediss"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidUrl("it has no host".into()));
    }
    if url.password().is_some() && url.set_password(Some("redacted")).is_err() {
        return Ok(format!("{}://[redacted]", url.scheme()));
    }
    Ok(url.to_string())
}

pub(crate) fn check_name(what: &str, name: &str, may_be_empty: bool) -> Result<(), Error> {
    if name.is_empty() && !may_be_empty {
        return Err(Error::InvalidConfig(format!(
            "the {what} is empty; use the client id, e.g. \"my-client\""
        )));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidConfig(format!(
            "the {what} is {} bytes long; at most {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::InvalidConfig(format!(
            "the {what} holds spaces or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            redacted_url("redis://user:SECRET@localhost:6379/2").unwrap(),
            "redis://user:redacted@localhost:6379/2"
        );
        assert!(redacted_url("rediss://cache.example:6380").is_ok());
        for bad in [
            "http://localhost",
            "localhost:6379",
            "redis://",
            "unix:///tmp/r.sock",
        ] {
            let err = redacted_url(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidUrl(_)), "{bad}: {err}");
        }
        let err = redacted_url("https://user:SECRET@x").unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn names() {
        assert!(check_name("cache name", "my-client", false).is_ok());
        assert!(check_name("cache name", "", false).is_err());
        assert!(check_name("key prefix", "", true).is_ok());
        assert!(check_name("cache name", "a b", false).is_err());
        assert!(check_name("cache name", &"x".repeat(201), false).is_err());
    }
}
