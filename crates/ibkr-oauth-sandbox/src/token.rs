//! The sandbox's own access tokens: HS256 JWTs under a random per-sandbox secret.
//!
//! IBKR signs its tokens RS256; a symmetric key is enough here (only the sandbox verifies its
//! tokens) and costs nothing to make.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;

/// The `iss` of every access token the sandbox issues.
pub const ACCESS_TOKEN_ISSUER: &str = "ibkr-oauth-sandbox";

/// The claims of an access token the sandbox issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessTokenClaims {
    /// Always [`ACCESS_TOKEN_ISSUER`].
    pub iss: String,
    /// The client id.
    pub sub: String,
    /// The client id again, under the name OAuth token introspection uses.
    pub client_id: String,
    /// The granted scopes, space-delimited; absent when none was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issued at, seconds since the epoch (sandbox clock).
    pub iat: i64,
    /// Expires at, seconds since the epoch (sandbox clock).
    pub exp: i64,
    /// A unique id.
    pub jti: String,
    /// The token's number among those this sandbox issued, from 1 (what
    /// [`RunningSandbox::revoke_all_tokens`](crate::RunningSandbox::revoke_all_tokens) goes by).
    #[serde(default)]
    pub serial: u64,
}

/// Signs and checks the sandbox's access tokens.
pub(crate) struct Minter {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Minter([redacted])")
    }
}

impl Minter {
    pub(crate) fn new() -> Result<Self, Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut_slice()).map_err(|e| Error::Random(e.to_string()))?;
        // Both only refuse an empty secret.
        let refused = |e: jsonwebtoken::errors::Error| Error::Random(e.to_string());
        let encoding = EncodingKey::from_secret(secret.as_slice()).map_err(refused)?;
        let decoding = DecodingKey::from_secret(secret.as_slice()).map_err(refused)?;
        Ok(Self { encoding, decoding })
    }

    /// Signs a token for `client_id`; `None` only when the operating system gives no
    /// randomness for its `jti` or signing fails, both server faults.
    pub(crate) fn mint(
        &self,
        client_id: &str,
        scope: Option<&str>,
        now: i64,
        lifetime_secs: u64,
        serial: u64,
    ) -> Option<String> {
        let claims = AccessTokenClaims {
            iss: ACCESS_TOKEN_ISSUER.to_owned(),
            sub: client_id.to_owned(),
            client_id: client_id.to_owned(),
            scope: scope.map(str::to_owned),
            iat: now,
            exp: now.saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX)),
            jti: random_id()?,
            serial,
        };
        crate::crypto::ensure_provider();
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).ok()
    }

    /// Checks a token's signature, issuer and expiry at the sandbox time `now`.
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<AccessTokenClaims, Error> {
        let claims = self.decode(token)?;
        if claims.exp <= now {
            return Err(Error::InvalidAccessToken(format!(
                "expired at {} (sandbox time {now})",
                claims.exp
            )));
        }
        Ok(claims)
    }

    /// Checks a token's signature and issuer, not its expiry.
    pub(crate) fn decode(&self, token: &str) -> Result<AccessTokenClaims, Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        crate::crypto::ensure_provider();
        let claims = jsonwebtoken::decode::<AccessTokenClaims>(token, &self.decoding, &validation)
            .map_err(|e| Error::InvalidAccessToken(format!("not issued by this sandbox ({e})")))?
            .claims;
        if claims.iss != ACCESS_TOKEN_ISSUER {
            return Err(Error::InvalidAccessToken(format!(
                "issuer {:?}",
                claims.iss
            )));
        }
        Ok(claims)
    }
}

/// 128 random bits as hex.
pub(crate) fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mints_and_verifies_by_the_sandbox_clock() {
        let minter = Minter::new().unwrap();
        let token = minter.mint("c", Some("a.read"), 1_000, 60, 7).unwrap();
        let claims = minter.verify(&token, 1_059).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.scope.as_deref(), claims.exp),
            ("c", Some("a.read"), 1_060)
        );
        assert_eq!(claims.serial, 7);
        assert_eq!(minter.decode(&token).unwrap().exp, 1_060);
        assert!(matches!(
            minter.verify(&token, 1_060),
            Err(Error::InvalidAccessToken(_))
        ));
        let other = Minter::new().unwrap();
        assert!(matches!(
            other.verify(&token, 1_000),
            Err(Error::InvalidAccessToken(_))
        ));
        assert!(matches!(
            minter.verify("junk", 1_000),
            Err(Error::InvalidAccessToken(_))
        ));
        assert_eq!(format!("{minter:?}"), "Minter([redacted])");
    }
}
