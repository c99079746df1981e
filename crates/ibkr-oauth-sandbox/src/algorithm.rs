//! The JWS algorithms a registered key can be bound to.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A JWS algorithm the sandbox verifies client assertions with.
///
/// Each registered key is bound to one algorithm, as IBKR binds a registered key: an assertion
/// whose header names another one is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (IBKR's default), RSA keys of at least 2048 bits.
    Rs256,
    /// RSASSA-PSS with SHA-256, RSA keys of at least 2048 bits.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// EdDSA with Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The algorithm's name as it appears in a JOSE header (`RS256`, `PS256`, `ES256`, `EdDSA`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub(crate) const fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Ps256 => jsonwebtoken::Algorithm::PS256,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses the JOSE name; case-insensitive, since command lines are typed by people.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Rs256, Self::Ps256, Self::Es256, Self::EdDsa]
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownAlgorithm(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jose_names_in_any_case() {
        assert_eq!("RS256".parse::<Algorithm>().ok(), Some(Algorithm::Rs256));
        assert_eq!("ps256".parse::<Algorithm>().ok(), Some(Algorithm::Ps256));
        assert_eq!("ES256".parse::<Algorithm>().ok(), Some(Algorithm::Es256));
        assert_eq!("eddsa".parse::<Algorithm>().ok(), Some(Algorithm::EdDsa));
        assert!(
            matches!("HS256".parse::<Algorithm>(), Err(Error::UnknownAlgorithm(name)) if name == "HS256")
        );
    }
}
