//! The public key as a JWK (RFC 7517, RFC 7518 section 6, RFC 8037) and its RFC 7638
//! thumbprint: what a user compares with the key registered with IBKR.
//!
//! The members come from the public key's SubjectPublicKeyInfo DER, the one form every key
//! type has: RSA `n` and `e` from the PKCS#1 `RSAPublicKey` inside it, P-256 `x` and `y` from
//! the uncompressed point, Ed25519 `x` from the 32 raw bytes.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pkcs8::SubjectPublicKeyInfoRef;
use pkcs8::der::asn1::{AnyRef, UintRef};
use pkcs8::der::{Decode as _, SliceReader, Tag, Tagged as _};
use serde_json::{Map, Value};

use super::key::PrivateKey;
use crate::algorithm::{Algorithm, KeyType};
use crate::error::KeyError;

impl PrivateKey {
    /// The public key as a JWK with `kid`, `alg` and `use: sig`: `{"kty":"RSA","n":..,"e":..}`,
    /// `{"kty":"EC","crv":"P-256","x":..,"y":..}` or `{"kty":"OKP","crv":"Ed25519","x":..}`.
    /// It holds no private member.
    ///
    /// # Errors
    /// [`KeyError::AlgorithmMismatch`] when the key cannot sign `algorithm`;
    /// [`KeyError::Export`] if the public key does not decode (a crypto backend fault).
    ///
    /// ```
    /// use ibkr_oauth::{Algorithm, PrivateKey};
    ///
    /// let key = PrivateKey::generate(Algorithm::ES256)?;
    /// let jwk = key.public_jwk("main", Algorithm::ES256)?;
    /// assert_eq!(jwk["kty"], "EC");
    /// assert_eq!(jwk["kid"], "main");
    /// assert_eq!(jwk["use"], "sig");
    /// assert!(jwk.get("d").is_none());
    /// assert_eq!(key.thumbprint()?.len(), 43);
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn public_jwk(&self, kid: &str, algorithm: Algorithm) -> Result<Value, KeyError> {
        if algorithm.key_type() != self.key_type() {
            return Err(KeyError::AlgorithmMismatch {
                origin: self.source().clone(),
                key_type: self.key_type(),
                algorithm,
            });
        }
        let mut jwk = Map::new();
        for (name, value) in self.required_members()? {
            jwk.insert(name.to_owned(), Value::String(value));
        }
        jwk.insert("kid".to_owned(), Value::String(kid.to_owned()));
        jwk.insert(
            "alg".to_owned(),
            Value::String(algorithm.as_str().to_owned()),
        );
        jwk.insert("use".to_owned(), Value::String("sig".to_owned()));
        Ok(Value::Object(jwk))
    }

    /// The public key's JWK thumbprint (RFC 7638): SHA-256 over the JWK's required members in
    /// lexicographic order with no white space, base64url without padding (43 characters).
    /// It does not depend on `kid` or `alg`.
    ///
    /// # Errors
    /// [`KeyError::Export`] if the public key does not decode (a crypto backend fault).
    pub fn thumbprint(&self) -> Result<String, KeyError> {
        Ok(thumbprint_of(&self.required_members()?))
    }

    /// The JWK members RFC 7638 requires for this key type, in lexicographic order.
    fn required_members(&self) -> Result<Vec<(&'static str, String)>, KeyError> {
        required_members(self.key_type(), self.public_key_der()).ok_or(KeyError::Export {
            key_type: self.key_type(),
        })
    }
}

/// The required members of the JWK of a SubjectPublicKeyInfo of `key_type`, sorted by name.
fn required_members(key_type: KeyType, spki_der: &[u8]) -> Option<Vec<(&'static str, String)>> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    let key = spki.subject_public_key.as_bytes()?;
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    Some(match key_type {
        KeyType::Rsa => {
            let (n, e) = rsa_public_key(key)?;
            vec![("e", b64(e)), ("kty", "RSA".to_owned()), ("n", b64(n))]
        }
        KeyType::EcP256 => {
            // The uncompressed point: 0x04, then x and y of 32 bytes each.
            let (tag, point) = key.split_first()?;
            if *tag != 0x04 || point.len() != 64 {
                return None;
            }
            let (x, y) = point.split_at(32);
            vec![
                ("crv", "P-256".to_owned()),
                ("kty", "EC".to_owned()),
                ("x", b64(x)),
                ("y", b64(y)),
            ]
        }
        KeyType::Ed25519 => {
            if key.len() != 32 {
                return None;
            }
            vec![
                ("crv", "Ed25519".to_owned()),
                ("kty", "OKP".to_owned()),
                ("x", b64(key)),
            ]
        }
    })
}

/// The modulus and exponent of a PKCS#1 `RSAPublicKey`, without leading zero bytes.
fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let sequence = AnyRef::from_der(der).ok()?;
    if sequence.tag() != Tag::Sequence {
        return None;
    }
    let mut reader = SliceReader::new(sequence.value()).ok()?;
    let n = UintRef::decode(&mut reader).ok()?;
    let e = UintRef::decode(&mut reader).ok()?;
    Some((n.as_bytes(), e.as_bytes()))
}

/// RFC 7638 section 3: the members (already sorted) as JSON without white space, hashed with
/// SHA-256, base64url without padding.
fn thumbprint_of(members: &[(&str, String)]) -> String {
    let canonical = members
        .iter()
        .map(|(name, value)| format!("{}:{}", Value::from(*name), Value::from(value.as_str())))
        .collect::<Vec<_>>()
        .join(",");
    let hash = digest(&SHA256, format!("{{{canonical}}}").as_bytes());
    URL_SAFE_NO_PAD.encode(hash.as_ref())
}

#[cfg(test)]
mod tests;
