//! [`TokenProviderBuilder`]: the provider's settings, validated at build time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::cache::{self, Margin};
use super::fetch::ClientFetch;
use super::retry::RetryPolicy;
use super::{
    DEFAULT_FAILURE_COOLDOWN, DEFAULT_REFRESH_FRACTION, DEFAULT_REFRESH_MARGIN,
    DEFAULT_SKEW_THRESHOLD, TokenProvider,
};
use crate::assertion::AssertionSigner;
use crate::client::TokenClient;
use crate::clock::{Clock, SystemClock};
use crate::error::ProviderSetting;
use crate::error::{ConfigError, Error};
use crate::request::{TokenRequest, TokenRequestBuilder};
use crate::source::TokenSource;

/// The default largest plausible offset between the token server's clock and the local one.
pub const DEFAULT_MAX_CLOCK_OFFSET: Duration = Duration::from_secs(60 * 60);
/// The largest refresh fraction accepted: a larger one would make a fresh token due at once.
const MAX_REFRESH_FRACTION: f64 = 0.9;

/// The provider's settings, apart from the fetch.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) margin: Margin,
    pub(crate) retry: RetryPolicy,
    pub(crate) failure_cooldown: Duration,
    pub(crate) skew_threshold: Duration,
    pub(crate) max_clock_offset: Duration,
    pub(crate) shards: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            margin: Margin {
                max: DEFAULT_REFRESH_MARGIN,
                fraction: DEFAULT_REFRESH_FRACTION,
            },
            retry: RetryPolicy::default(),
            failure_cooldown: DEFAULT_FAILURE_COOLDOWN,
            skew_threshold: DEFAULT_SKEW_THRESHOLD,
            max_clock_offset: DEFAULT_MAX_CLOCK_OFFSET,
            shards: cache::default_shards(),
        }
    }
}

/// Where the provider's tokens come from.
enum Source {
    /// IBKR's token endpoint: the request is built (and its scopes checked) at `build`.
    Client {
        client: TokenClient,
        request: TokenRequestBuilder,
    },
    /// Any other fetch.
    Custom(Box<dyn TokenSource>),
}

/// Configures a [`TokenProvider`]; [`build`](Self::build) validates everything.
///
/// ```
/// use std::time::Duration;
/// use ibkr_oauth::provider::{RetryPolicy, TokenProvider};
/// # use ibkr_oauth::{PrivateKey, Signer, TokenClient};
/// # let signer = Signer::builder("client", "main", PrivateKey::generate(ibkr_oauth::Algorithm::EdDSA)?).build()?;
/// # let client = TokenClient::new()?;
///
/// let provider = TokenProvider::builder(client, signer)
///     .scopes(["echo.read", "echo.write"])
///     .refresh_margin(Duration::from_secs(10 * 60))
///     .retry_policy(RetryPolicy::default().max_attempts(6))
///     .skew_threshold(Duration::from_secs(3))
///     .build()?;
/// # let _ = provider;
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct TokenProviderBuilder {
    source: Source,
    scoped: bool,
    settings: Settings,
    clock: Arc<dyn Clock>,
}

impl TokenProviderBuilder {
    pub(super) fn new(client: TokenClient, signer: impl AssertionSigner) -> Self {
        // The signer's clock, so that a clock pinned on the signer keeps stamping its
        // assertions when the provider signs them (shifted by the measured offset).
        let clock = signer.clock();
        Self {
            source: Source::Client {
                client,
                request: TokenRequest::builder().signer(signer),
            },
            scoped: false,
            settings: Settings::default(),
            clock,
        }
    }

    pub(super) fn with_source(fetch: Box<dyn TokenSource>) -> Self {
        Self {
            source: Source::Custom(fetch),
            scoped: false,
            settings: Settings::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Adds one scope (or several, space-delimited) to request.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.scopes([scope.into()])
    }

    /// Adds several scopes to request.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scoped = true;
        if let Source::Client { client, request } = self.source {
            self.source = Source::Client {
                client,
                request: request.scopes(scopes),
            };
        }
        self
    }

    /// How long before expiry the refresh ahead starts (default 5 minutes). For short-lived
    /// tokens the margin is at most [`refresh_fraction`](Self::refresh_fraction) of the
    /// lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.settings.margin.max = margin;
        self
    }

    /// The largest fraction of a token's lifetime used as refresh margin (default 0.2: a
    /// 60-second token is refreshed after 48 seconds). `build` refuses a value outside
    /// `0.0..=0.9`: a larger one would make every fresh token due at once.
    pub fn refresh_fraction(mut self, fraction: f64) -> Self {
        self.settings.margin.fraction = fraction;
        self
    }

    /// How each fetch retries (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.settings.retry = policy;
        self
    }

    /// The pause after a failed fetch (default 1 s), doubled for each further consecutive
    /// failure up to 30 s, or longer if the server's `Retry-After` asks for more: with a valid
    /// token, the next refresh waits this long; without one, calls get the failure's error at
    /// once for this long.
    pub fn failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.failure_cooldown = cooldown;
        self
    }

    /// The clock offset above which assertions are stamped with the server's time (default
    /// 5 s). `Duration::MAX` turns the correction off (the offset is still measured).
    pub fn skew_threshold(mut self, threshold: Duration) -> Self {
        self.settings.skew_threshold = threshold;
        self
    }

    /// The largest offset of the server's `Date` from the local clock that is believed
    /// (default [`DEFAULT_MAX_CLOCK_OFFSET`], one hour). A `Date` further off is ignored with a
    /// warning: a server's broken or hostile `Date` must not make signing impossible.
    pub fn max_clock_offset(mut self, max: Duration) -> Self {
        self.settings.max_clock_offset = max;
        self
    }

    /// The wall clock that stamps assertions, measures the offset and bounds the cached
    /// token's validity (default: the signer's clock, which is the system clock unless
    /// [`SignerBuilder::clock`](crate::builders::SignerBuilder::clock) set another). Deadlines also use
    /// tokio's monotonic clock, so tokio's paused time drives them in tests.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings and builds the provider. No network I/O: the first token is
    /// fetched by the first [`access_token`](TokenProvider::access_token) (or the refresher).
    ///
    /// # Errors
    /// [`ConfigError::Request`] when a scope is empty or the joined scopes are outside the
    /// length the token endpoint accepts; [`ConfigError::Provider`] for a refresh fraction
    /// outside `0.0..=0.9`, or scopes given to a provider built with
    /// [`TokenProvider::with_source`] (the fetch decides its scopes).
    pub fn build(self) -> Result<TokenProvider, Error> {
        let fraction = self.settings.margin.fraction;
        if !(0.0..=MAX_REFRESH_FRACTION).contains(&fraction) {
            return Err(ConfigError::Provider(ProviderSetting::RefreshFraction {
                fraction,
                max: MAX_REFRESH_FRACTION,
            })
            .into());
        }
        let fetch: Box<dyn TokenSource> = match self.source {
            Source::Client { client, request } => {
                // Built once: the request builder checks the scopes here, before any I/O.
                Box::new(ClientFetch::new(client, request.build()?))
            }
            Source::Custom(_) if self.scoped => {
                return Err(ConfigError::Provider(ProviderSetting::ScopesWithCustomFetch).into());
            }
            Source::Custom(fetch) => fetch,
        };
        Ok(TokenProvider::from_fetch(fetch, self.clock, self.settings))
    }
}

impl fmt::Debug for TokenProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TokenProviderBuilder");
        if let Source::Client { client, request } = &self.source {
            debug.field("client", client).field("request", request);
        }
        debug
            .field("settings", &self.settings)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
