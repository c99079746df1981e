//! The `Signer`: a client id, a key id and a parsed key that sign a fresh assertion on demand,
//! and request bodies for IBKR's Signed JWT endpoints. (Just over 400 lines: both share the
//! signer's settings and its one JWS path.)

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;

use super::ClientAssertion;
use crate::algorithm::Algorithm;
use crate::error::{SignerField, SignerSetting};
use secrecy::SecretString;

use super::jws::{self, Claims};
use super::key::PrivateKey;
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, Error};
use crate::error::{KeyError, SignError};

/// The longest client id, key id or audience accepted.
const MAX_ID_LEN: usize = 1024;

/// Signs client assertions (RFC 7523 `private_key_jwt`) for one client and key.
///
/// Every call to [`sign`](Signer::sign) returns a new compact JWS with header
/// `{"alg", "typ": "JWT", "kid"}` and claims `iss` = `sub` = client id, `aud` (default
/// `/token`), `iat` = now - clock skew, `exp` = now + lifetime, a fresh 128-bit random `jti`,
/// and `nbf` = `iat` if asked for. The key is parsed once; cloning a `Signer` is cheap (an
/// `Arc`), and it is `Send + Sync`, so one signer serves every request and retry.
///
/// ```
/// use ibkr_oauth::{Algorithm, PrivateKey, Signer};
///
/// # let pem = PrivateKey::generate(Algorithm::RS256)?.to_pkcs8_pem()?;
/// let key = PrivateKey::from_pem(&pem)?; // or PrivateKey::from_pem_file("private.pem")?
/// let signer = Signer::builder("my-client-id", "main", key).build()?;
/// let assertion = signer.sign()?;
/// assert_eq!(assertion.expose_secret().split('.').count(), 3);
/// assert_eq!(format!("{assertion}"), "[redacted]");
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: String,
    key_id: String,
    audience: String,
    algorithm: Algorithm,
    key: PrivateKey,
    clock_skew: Duration,
    lifetime: Duration,
    not_before: bool,
    clock: Arc<dyn Clock>,
    header: String,
    rng: SystemRandom,
}

impl Signer {
    /// IBKR's audience: a relative value, not the endpoint URL.
    pub const DEFAULT_AUDIENCE: &str = "/token";
    /// How far `iat` is back-dated, so a server whose clock runs behind still accepts the assertion.
    pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(10);
    /// How long an assertion stays valid after it is signed.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
    /// The largest clock skew [`SignerBuilder::clock_skew`] accepts.
    pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
    /// The shortest lifetime [`SignerBuilder::lifetime`] accepts.
    pub const MIN_LIFETIME: Duration = Duration::from_secs(1);
    /// The longest lifetime [`SignerBuilder::lifetime`] accepts: assertions are meant to be
    /// short-lived, and the sandbox (like a strict server) refuses an `exp` more than 5 minutes out.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(5 * 60);

    /// Starts a signer for `client_id` (the `iss` and `sub` claims) and `key_id` (the `kid`
    /// header: the key id registered with IBKR, often `main`), signing with `key`.
    pub fn builder(
        client_id: impl Into<String>,
        key_id: impl Into<String>,
        key: PrivateKey,
    ) -> SignerBuilder {
        SignerBuilder {
            client_id: client_id.into(),
            key_id: key_id.into(),
            key,
            algorithm: None,
            audience: Signer::DEFAULT_AUDIENCE.to_owned(),
            clock_skew: Signer::DEFAULT_CLOCK_SKEW,
            lifetime: Signer::DEFAULT_LIFETIME,
            not_before: false,
            clock: Arc::new(SystemClock),
        }
    }

    /// Signs a fresh assertion stamped with the signer's clock.
    ///
    /// # Errors
    /// [`SignError::ClockOutOfRange`] if the clock reads before 1970 (or absurdly far ahead),
    /// [`SignError::Failed`] if the crypto backend or the system's random source fails.
    pub fn sign(&self) -> Result<ClientAssertion, SignError> {
        self.sign_at(self.inner.clock.now())
    }

    /// Signs a fresh assertion as if the time were `now`: for a caller that corrects its clock
    /// by the server's (a measured offset), and for tests.
    ///
    /// # Errors
    /// As [`sign`](Signer::sign).
    ///
    /// ```
    /// # use ibkr_oauth::{Algorithm, PrivateKey, Signer};
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// # let key = PrivateKey::generate(Algorithm::EdDSA)?;
    /// let signer = Signer::builder("client", "main", key).build()?;
    /// let server_ahead_by = Duration::from_secs(3);
    /// let assertion = signer.sign_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000) + server_ahead_by)?;
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn sign_at(&self, now: SystemTime) -> Result<ClientAssertion, SignError> {
        let inner = &*self.inner;
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError::ClockOutOfRange)?;
        let iat = since_epoch
            .checked_sub(inner.clock_skew)
            .ok_or(SignError::ClockOutOfRange)?
            .as_secs();
        let exp = since_epoch
            .checked_add(inner.lifetime)
            .ok_or(SignError::ClockOutOfRange)?
            .as_secs();
        let jti = jws::random_jti(inner.algorithm)?;
        let claims = Claims {
            iss: &inner.client_id,
            sub: &inner.client_id,
            aud: &inner.audience,
            iat,
            exp,
            nbf: inner.not_before.then_some(iat),
            jti: &jti,
        };
        jws::sign(
            inner.key.pair(),
            inner.algorithm,
            &inner.rng,
            &inner.header,
            &claims,
        )
    }

    /// Signs a request body for IBKR's "Signed JWT" endpoints (`POST
    /// /gw/api/v1/echo/signed-jwt` and the like): a compact JWS, with this signer's `alg` and
    /// `kid` header, whose payload is `claims` plus `iss` (the client id), `iat` and `exp` (now
    /// and now + the signer's lifetime) when `claims` does not set them. Send it as
    /// `Content-Type: application/jwt`.
    ///
    /// IBKR's spec gives the body's schema (for the echo endpoint: `{"iss": ...}`) but not the
    /// header or the time claims; this signer sends what its client assertions send, which
    /// the local sandbox checks the same way.
    ///
    /// # Errors
    /// As [`sign`](Signer::sign).
    pub fn sign_body(
        &self,
        mut claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SecretString, SignError> {
        let inner = &*self.inner;
        let now = inner
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError::ClockOutOfRange)?;
        let exp = now
            .checked_add(inner.lifetime)
            .ok_or(SignError::ClockOutOfRange)?;
        claims
            .entry("iss")
            .or_insert_with(|| inner.client_id.clone().into());
        claims.entry("iat").or_insert_with(|| now.as_secs().into());
        claims.entry("exp").or_insert_with(|| exp.as_secs().into());
        let jws = jws::sign(
            inner.key.pair(),
            inner.algorithm,
            &inner.rng,
            &inner.header,
            &claims,
        )?;
        Ok(SecretString::from(jws.expose_secret().to_owned()))
    }

    /// The client id: the `iss` and `sub` claims.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The key id: the `kid` header.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The signature algorithm: the `alg` header.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// The `aud` claim.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// How far `iat` is back-dated from now.
    pub fn clock_skew(&self) -> Duration {
        self.inner.clock_skew
    }

    /// How far `exp` lies after now.
    pub fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// The clock that stamps this signer's assertions (the token provider signs with it too).
    pub(crate) fn clock_ref(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The signing key (its public half is what the server verifies with).
    pub fn key(&self) -> &PrivateKey {
        &self.inner.key
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Signer")
            .field("client_id", &inner.client_id)
            .field("key_id", &inner.key_id)
            .field("algorithm", &inner.algorithm)
            .field("audience", &inner.audience)
            .field("clock_skew", &inner.clock_skew)
            .field("lifetime", &inner.lifetime)
            .field("not_before", &inner.not_before)
            .field("clock", &inner.clock)
            .field("key", &inner.key)
            .finish()
    }
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} assertion signer for client {} (kid {})",
            self.inner.algorithm, self.inner.client_id, self.inner.key_id
        )
    }
}

/// Configures a [`Signer`]; [`build`](SignerBuilder::build) checks every setting.
///
/// ```
/// use std::time::Duration;
/// use ibkr_oauth::{Algorithm, PrivateKey, Signer};
///
/// # let key = PrivateKey::generate(Algorithm::PS256)?;
/// let signer = Signer::builder("my-client-id", "main", key)
///     .algorithm(Algorithm::PS256)
///     .audience("https://api.ibkr.com/oauth2/api/v1/token")
///     .clock_skew(Duration::from_secs(5))
///     .lifetime(Duration::from_secs(20))
///     .build()?;
/// assert_eq!(signer.algorithm(), Algorithm::PS256);
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct SignerBuilder {
    client_id: String,
    key_id: String,
    key: PrivateKey,
    algorithm: Option<Algorithm>,
    audience: String,
    clock_skew: Duration,
    lifetime: Duration,
    not_before: bool,
    clock: Arc<dyn Clock>,
}

impl SignerBuilder {
    /// The signature algorithm. Default: `RS256` (IBKR's) for an RSA key, `ES256` for a P-256
    /// key, `EdDSA` for an Ed25519 key. A key that cannot sign the chosen algorithm is refused
    /// by [`build`](SignerBuilder::build).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// The `aud` claim. Default: `/token`, IBKR's value; other servers want their token
    /// endpoint's URL.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// How far `iat` is back-dated (`iat` = now - skew), for servers whose clock runs behind.
    /// Default 10 s; at most 5 minutes.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// How long an assertion is valid (`exp` = now + lifetime). Default 60 s; from 1 s to
    /// 5 minutes.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Also sends `nbf` (= `iat`). Default: off, as IBKR's own clients do.
    pub fn not_before(mut self, include: bool) -> Self {
        self.not_before = include;
        self
    }

    /// The clock that stamps `iat` and `exp`. Default: the system clock; tests pin it.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings and builds the signer.
    ///
    /// # Errors
    /// [`KeyError::AlgorithmMismatch`] if the key cannot sign the chosen algorithm;
    /// [`ConfigError::Signer`] for an empty or oversized client id, key id or audience, or a
    /// clock skew or lifetime out of bounds.
    pub fn build(self) -> Result<Signer, Error> {
        check_text(SignerField::ClientId, &self.client_id)?;
        check_text(SignerField::KeyId, &self.key_id)?;
        check_text(SignerField::Audience, &self.audience)?;
        if self.clock_skew > Signer::MAX_CLOCK_SKEW {
            return Err(ConfigError::Signer(SignerSetting::ClockSkew {
                skew: self.clock_skew,
                max: Signer::MAX_CLOCK_SKEW,
            })
            .into());
        }
        if !(Signer::MIN_LIFETIME..=Signer::MAX_LIFETIME).contains(&self.lifetime) {
            return Err(ConfigError::Signer(SignerSetting::Lifetime {
                lifetime: self.lifetime,
                min: Signer::MIN_LIFETIME,
                max: Signer::MAX_LIFETIME,
            })
            .into());
        }
        let key_type = self.key.key_type();
        let algorithm = self
            .algorithm
            .unwrap_or_else(|| key_type.default_algorithm());
        if algorithm.key_type() != key_type {
            return Err(KeyError::AlgorithmMismatch {
                origin: self.key.source().clone(),
                key_type,
                algorithm,
            }
            .into());
        }
        let header = jws::header_segment(algorithm, &self.key_id)?;
        Ok(Signer {
            inner: Arc::new(Inner {
                client_id: self.client_id,
                key_id: self.key_id,
                audience: self.audience,
                algorithm,
                key: self.key,
                clock_skew: self.clock_skew,
                lifetime: self.lifetime,
                not_before: self.not_before,
                clock: self.clock,
                header,
                rng: SystemRandom::new(),
            }),
        })
    }
}

impl fmt::Debug for SignerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerBuilder")
            .field("client_id", &self.client_id)
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .field("audience", &self.audience)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn check_text(field: SignerField, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::Signer(SignerSetting::Empty { field }));
    }
    if value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(ConfigError::Signer(SignerSetting::Malformed {
            field,
            max_bytes: MAX_ID_LEN,
        }));
    }
    Ok(())
}
