//! Registered public keys: PEM SubjectPublicKeyInfo in, a ready `DecodingKey` out.
//!
//! Parsed with `spki` rather than jsonwebtoken's PEM helpers because those also take a private
//! key or a certificate where a public key is expected; the sandbox says which one it got.

use jsonwebtoken::DecodingKey;
use spki::der::asn1::UintRef;
use spki::der::{DecodePem, Reader, SliceReader};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};

use crate::{Algorithm, Error};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// IBKR's instructions ask for RSA 2048; shorter keys are refused as the SDK refuses them.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// The type of a parsed public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa,
    P256,
    Ed25519,
}

impl KeyType {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::P256 => "P-256",
            Self::Ed25519 => "Ed25519",
        }
    }

    /// The algorithm used when none is named at registration.
    pub(crate) const fn default_algorithm(self) -> Algorithm {
        match self {
            Self::Rsa => Algorithm::RS256,
            Self::P256 => Algorithm::ES256,
            Self::Ed25519 => Algorithm::EdDSA,
        }
    }

    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (Self::Rsa, Algorithm::RS256 | Algorithm::PS256)
                | (Self::P256, Algorithm::ES256)
                | (Self::Ed25519, Algorithm::EdDSA)
        )
    }

    pub(crate) const fn fitting(self) -> &'static str {
        match self {
            Self::Rsa => "RS256 or PS256",
            Self::P256 => "ES256",
            Self::Ed25519 => "EdDSA",
        }
    }
}

/// A public key ready to verify assertions.
pub(crate) struct PublicKey {
    pub(crate) key_type: KeyType,
    pub(crate) decoding_key: DecodingKey,
}

/// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of a type the sandbox supports.
pub(crate) fn parse_public_key(kid: &str, pem: &str) -> Result<PublicKey, Error> {
    let refuse = |reason: String| Error::InvalidPublicKey {
        kid: kid.to_owned(),
        reason,
    };
    let pem = pem.trim();
    if pem.is_empty() {
        return Err(refuse("the PEM text is empty".into()));
    }
    let label = spki::der::pem::decode_label(pem.as_bytes())
        .map_err(|e| refuse(format!("not PEM ({e})")))?;
    match label {
        "PUBLIC KEY" => {}
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            return Err(refuse(format!(
                "this is a private key ({label}); the sandbox needs only the public key \
                 (`openssl pkey -in KEY -pubout`)"
            )));
        }
        "RSA PUBLIC KEY" => {
            return Err(refuse(
                "this is a PKCS#1 RSA PUBLIC KEY; convert it to SubjectPublicKeyInfo \
                 (`openssl rsa -RSAPublicKey_in -in KEY -pubout`)"
                    .into(),
            ));
        }
        "CERTIFICATE" => {
            return Err(refuse(
                "this is a certificate; extract its public key (`openssl x509 -in CERT -pubkey -noout`)"
                    .into(),
            ));
        }
        other => return Err(refuse(format!("found a PEM {other:?} block"))),
    }
    let spki = SubjectPublicKeyInfoOwned::from_pem(pem.as_bytes())
        .map_err(|e| refuse(format!("not a valid SubjectPublicKeyInfo ({e})")))?;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| refuse("the key's bit string is not byte-aligned".into()))?;
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        rsa_key(key_bytes).map_err(refuse)
    } else if oid == EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|params| params.decode_as::<ObjectIdentifier>().ok());
        match curve {
            Some(c) if c == SECP256R1 => ec_key(key_bytes).map_err(refuse),
            Some(c) if c == SECP384R1 => Err(refuse(
                "P-384 keys are not supported; ES256 needs a P-256 key".into(),
            )),
            Some(c) if c == SECP521R1 => Err(refuse(
                "P-521 keys are not supported; ES256 needs a P-256 key".into(),
            )),
            _ => Err(refuse(
                "an EC key on an unsupported curve; ES256 needs a P-256 key".into(),
            )),
        }
    } else if oid == ED25519 {
        ed25519_key(key_bytes).map_err(refuse)
    } else {
        Err(refuse(format!(
            "unsupported key algorithm {oid}; use RSA (2048 bits or more), P-256 or Ed25519"
        )))
    }
}

fn rsa_key(pkcs1: &[u8]) -> Result<PublicKey, String> {
    let malformed = |e: spki::der::Error| format!("not a valid RSA public key ({e})");
    let mut reader = SliceReader::new(pkcs1).map_err(malformed)?;
    let (n, e) = reader
        .sequence(|r| {
            Ok::<_, spki::der::Error>((r.decode::<UintRef<'_>>()?, r.decode::<UintRef<'_>>()?))
        })
        .map_err(malformed)?;
    reader.finish().map_err(malformed)?;
    let (n, e) = (n.as_bytes(), e.as_bytes());
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    // The verifier rejects exponents above 2^33 - 1; refuse them here, not on every request.
    let e_bits = bit_length(e);
    if !(2..=33).contains(&e_bits) || e.last().is_none_or(|last| last & 1 == 0) {
        return Err("the RSA public exponent is not an odd number between 3 and 2^33".into());
    }
    Ok(PublicKey {
        key_type: KeyType::Rsa,
        decoding_key: DecodingKey::from_rsa_raw_components(n, e),
    })
}

fn ec_key(point: &[u8]) -> Result<PublicKey, String> {
    // Uncompressed SEC1 point: 0x04 || x || y; the verifier parses nothing else.
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err("the P-256 key is not an uncompressed point".into());
    }
    let decoding_key = DecodingKey::from_ec_der(point);
    probe(&decoding_key, Algorithm::ES256)?;
    Ok(PublicKey {
        key_type: KeyType::P256,
        decoding_key,
    })
}

fn ed25519_key(raw: &[u8]) -> Result<PublicKey, String> {
    // The verifier slices the first 32 bytes without checking the length: check it here.
    if raw.len() != 32 {
        return Err(format!("the Ed25519 key has {} bytes, not 32", raw.len()));
    }
    let decoding_key = DecodingKey::from_ed_der(raw);
    probe(&decoding_key, Algorithm::EdDSA)?;
    Ok(PublicKey {
        key_type: KeyType::Ed25519,
        decoding_key,
    })
}

/// Builds the verifier once with a dummy signature: a key the verifier cannot load fails here,
/// at registration, instead of on the first request.
fn probe(key: &DecodingKey, alg: Algorithm) -> Result<(), String> {
    crate::crypto::ensure_provider();
    match jsonwebtoken::crypto::verify("AA", b"probe", key, alg.jwt()) {
        Ok(_) => Ok(()),
        Err(_) => Err("the key is not a valid point on its curve".into()),
    }
}

fn bit_length(unsigned_be: &[u8]) -> usize {
    let mut bytes = unsigned_be.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * bytes.count(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}{name}")).unwrap()
    }

    fn reason(pem: &str) -> String {
        match parse_public_key("main", pem) {
            Err(Error::InvalidPublicKey { kid, reason }) => {
                assert_eq!(kid, "main");
                reason
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("key accepted"),
        }
    }

    #[test]
    fn parses_each_supported_key_type() {
        let cases = [
            ("rsa_public.pem", KeyType::Rsa),
            ("ec_public.pem", KeyType::P256),
            ("ed25519_public.pem", KeyType::Ed25519),
        ];
        for (file, expected) in cases {
            let key = parse_public_key("main", &fixture(file)).unwrap();
            assert_eq!(key.key_type, expected, "{file}");
        }
    }

    #[test]
    fn refuses_private_keys_with_a_hint() {
        assert!(reason(&fixture("rsa_private.pem")).contains("private key (RSA PRIVATE KEY)"));
        assert!(reason(&fixture("ec_private.pem")).contains("private key (PRIVATE KEY)"));
    }

    #[test]
    fn refuses_short_rsa_and_other_curves() {
        assert_eq!(
            reason(&fixture("rsa1024_public.pem")),
            "the RSA key has 1024 bits; at least 2048 are required"
        );
        assert!(reason(&fixture("p384_public.pem")).starts_with("P-384 keys are not supported"));
    }

    #[test]
    fn refuses_garbage_and_empty_text() {
        assert_eq!(reason("  \n"), "the PEM text is empty");
        assert!(reason("hello").starts_with("not PEM"));
        let truncated = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n";
        assert!(reason(truncated).starts_with("not a valid SubjectPublicKeyInfo"));
    }

    #[test]
    fn counts_bits() {
        assert_eq!(bit_length(&[0, 0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[]), 0);
    }
}
