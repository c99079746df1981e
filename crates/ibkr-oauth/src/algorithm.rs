//! The JWS algorithms a client assertion can be signed with, and the key types they need.

use std::fmt;
use std::str::FromStr;

use crate::setting::ConfigError;

/// A JWS signature algorithm (RFC 7518) for the client assertion.
///
/// IBKR registers RSA keys and expects [`Algorithm::RS256`], the default. The others serve
/// servers (and the local sandbox) that accept them.
///
/// ```
/// use ibkr_oauth::Algorithm;
/// use ibkr_oauth::key::KeyType;
///
/// let alg: Algorithm = "PS256".parse()?;
/// assert_eq!(alg, Algorithm::PS256);
/// assert_eq!(alg.key_type(), KeyType::Rsa);
/// assert_eq!(Algorithm::default().as_str(), "RS256");
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (IBKR's algorithm). Needs an RSA key of 2048 bits or more.
    #[default]
    RS256,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256. Needs an RSA key of 2048 bits or more.
    PS256,
    /// ECDSA on P-256 with SHA-256 (64-byte `r || s` signature). Needs a P-256 key.
    ES256,
    /// EdDSA with Ed25519 (RFC 8037). Needs an Ed25519 key.
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm, in a stable order.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ];

    /// The JOSE `alg` value (`RS256`, `PS256`, `ES256`, `EdDSA`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The type of key this algorithm signs with.
    pub const fn key_type(self) -> KeyType {
        match self {
            Algorithm::RS256 | Algorithm::PS256 => KeyType::Rsa,
            Algorithm::ES256 => KeyType::EcP256,
            Algorithm::EdDSA => KeyType::Ed25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ConfigError;

    /// Parses a JOSE `alg` value, ignoring ASCII case (`rs256` and `RS256` both work).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ConfigError::UnknownAlgorithm {
                // Bounded and one line, so that an argument cannot flood or drive a terminal.
                name: crate::sanitize::sanitize(s, 32),
            })
    }
}

/// The type of a private key, which decides the algorithms it can sign with.
///
/// ```
/// use ibkr_oauth::Algorithm;
/// use ibkr_oauth::key::KeyType;
///
/// assert_eq!(KeyType::Rsa.algorithms(), &[Algorithm::RS256, Algorithm::PS256]);
/// assert_eq!(KeyType::Ed25519.default_algorithm(), Algorithm::EdDSA);
/// assert_eq!(KeyType::EcP256.to_string(), "EC P-256");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// An RSA key (2048 to 8192 bits): signs [`Algorithm::RS256`] and [`Algorithm::PS256`].
    Rsa,
    /// An elliptic-curve key on NIST P-256: signs [`Algorithm::ES256`].
    EcP256,
    /// An Ed25519 key: signs [`Algorithm::EdDSA`].
    Ed25519,
}

impl KeyType {
    /// The algorithms a key of this type can sign with; the first is the one used when none is
    /// chosen.
    pub const fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyType::Rsa => &[Algorithm::RS256, Algorithm::PS256],
            KeyType::EcP256 => &[Algorithm::ES256],
            KeyType::Ed25519 => &[Algorithm::EdDSA],
        }
    }

    /// The algorithm used for a key of this type when none is chosen: `RS256` for RSA (IBKR's).
    pub const fn default_algorithm(self) -> Algorithm {
        match self {
            KeyType::Rsa => Algorithm::RS256,
            KeyType::EcP256 => Algorithm::ES256,
            KeyType::Ed25519 => Algorithm::EdDSA,
        }
    }
}

/// The `alg` names a key type signs, comma-separated, for error messages.
pub(crate) fn names(key_type: KeyType) -> String {
    let names: Vec<&str> = key_type.algorithms().iter().map(|a| a.as_str()).collect();
    names.join(", ")
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::Ed25519 => "Ed25519",
        })
    }
}
