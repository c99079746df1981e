//! The JWS algorithms a registered key can be bound to, named as JOSE names them (RFC 7518,
//! RFC 8037), and their jsonwebtoken counterparts for verification.
//!
//! The sandbox keeps its own list rather than the SDK's: it is an independent check of the SDK,
//! so a name the SDK gets wrong must not be wrong here in the same way.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A JWS algorithm the sandbox verifies client signatures with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: what IBKR's instructions and public clients use.
    RS256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    PS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// EdDSA on Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Self; 4] = [Self::RS256, Self::PS256, Self::ES256, Self::EdDSA];

    /// The JOSE `alg` value: `RS256`, `PS256`, `ES256` or `EdDSA`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// jsonwebtoken's name for the same algorithm.
    pub(crate) const fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
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

    /// The JOSE name, compared without regard to ASCII case (`rs256` is RS256).
    fn from_str(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| Error::UnknownAlgorithm {
                name: crate::log::bounded(name),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_jsonwebtoken() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
            assert_eq!(alg.to_string(), alg.as_str());
            assert_eq!(format!("{:?}", alg.jwt()), alg.as_str());
        }
        assert_eq!("eddsa".parse::<Algorithm>().unwrap(), Algorithm::EdDSA);
        assert_eq!(" PS256 ".parse::<Algorithm>().unwrap(), Algorithm::PS256);
    }

    #[test]
    fn refuses_other_names() {
        for name in ["HS256", "none", "", "RS384", "ES256K"] {
            match name.parse::<Algorithm>() {
                Err(Error::UnknownAlgorithm { name: got }) => assert_eq!(got, name),
                other => panic!("{name:?}: {other:?}"),
            }
        }
        let err = "HS256".parse::<Algorithm>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown algorithm \"HS256\"; use RS256, PS256, ES256 or EdDSA"
        );
    }
}
