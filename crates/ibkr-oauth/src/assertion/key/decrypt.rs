//! Encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`): PBES2 with PBKDF2 or scrypt and AES,
//! the key-derivation costs checked against caps before any derivation runs. Behind the
//! `encrypted-keys` feature (it brings the RustCrypto PBES2 stack); without it, an encrypted
//! key is refused with a message that names the feature.

use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::error::KeyOrigin;

/// The most PBKDF2 iterations an encrypted key may ask for (`PrivateKey::MAX_PBKDF2_ITERATIONS`).
pub(super) const MAX_PBKDF2_ITERATIONS: u64 = 1_000_000;
/// The most memory scrypt may need (`PrivateKey::MAX_SCRYPT_MEMORY_BYTES`).
pub(super) const MAX_SCRYPT_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
/// The most work scrypt may do (`PrivateKey::MAX_SCRYPT_WORK`).
pub(super) const MAX_SCRYPT_WORK: u64 = 1 << 24;

/// Decrypts an `EncryptedPrivateKeyInfo` into the DER of a `PrivateKeyInfo`.
#[cfg(feature = "encrypted-keys")]
pub(super) fn decrypt(
    der: &[u8],
    passphrase: &[u8],
    source: &KeyOrigin,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let document = decrypt_pkcs8(der, passphrase, source)?;
    Ok(Zeroizing::new(document.as_bytes().to_vec()))
}

/// Without the `encrypted-keys` feature: the refusal that says how to get it.
#[cfg(not(feature = "encrypted-keys"))]
pub(super) fn decrypt(
    _der: &[u8],
    _passphrase: &[u8],
    source: &KeyOrigin,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    Err(KeyError::EncryptedKeysDisabled {
        origin: source.clone(),
    })
}

#[cfg(feature = "encrypted-keys")]
mod pbes2 {
    use pkcs8::ObjectIdentifier;
    use pkcs8::der::asn1::AnyRef;
    use pkcs8::der::{self, Decode as _};

    use super::super::pair::Format;
    use super::{MAX_PBKDF2_ITERATIONS, MAX_SCRYPT_MEMORY_BYTES, MAX_SCRYPT_WORK};
    use crate::error::KeyError;
    use crate::error::KeyOrigin;

    const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

    pub(super) fn decrypt_pkcs8(
        der: &[u8],
        passphrase: &[u8],
        source: &KeyOrigin,
    ) -> Result<pkcs8::SecretDocument, KeyError> {
        let unsupported = |scheme: String| KeyError::EncryptionUnsupported {
            origin: source.clone(),
            scheme,
        };
        let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(der).map_err(|_| {
            // pkcs5 reports an unknown scheme as a generic DER error: read the scheme's OID
            // ourselves to tell "unsupported" from "damaged".
            match encryption_scheme(der) {
                Some(oid) if oid == OID_PBES2 => unsupported(format!(
                    "PBES2 ({oid}) with a key derivation or cipher other than PBKDF2/scrypt and AES"
                )),
                Some(oid) => unsupported(scheme_name(oid)),
                None => KeyError::Malformed {
                    origin: source.clone(),
                    format: Format::EncryptedPkcs8.name(),
                    reason: "its DER structure is not a PKCS#8 EncryptedPrivateKeyInfo",
                },
            }
        })?;
        check_kdf_cost(&info.encryption_algorithm, source)?;
        info.decrypt(passphrase).map_err(|e| match e {
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm {
                oid,
            }) => unsupported(oid.to_string()),
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::NoPbes1CryptSupport) => {
                unsupported("PBES1".to_owned())
            }
            pkcs8::Error::EncryptedPrivateKey(
                pkcs8::pkcs5::Error::AlgorithmParametersInvalid { oid },
            ) => unsupported(format!("{oid} with unusable parameters")),
            _ => KeyError::PassphraseWrong {
                origin: source.clone(),
            },
        })
    }

    /// Refuses key-derivation parameters past the caps before any derivation runs: a crafted file
    /// could otherwise ask scrypt for a petabyte or PBKDF2 for hours.
    fn check_kdf_cost(
        scheme: &pkcs8::pkcs5::EncryptionScheme,
        source: &KeyOrigin,
    ) -> Result<(), KeyError> {
        let too_high = |parameter: &'static str, value: u64, cap: u64| KeyError::KdfCostTooHigh {
            origin: source.clone(),
            parameter,
            value,
            cap,
        };
        let Some(params) = scheme.pbes2() else {
            return Ok(()); // PBES1 is refused as unsupported by the decryption itself
        };
        if let Some(pbkdf2) = params.kdf.pbkdf2() {
            let iterations = u64::from(pbkdf2.iteration_count);
            if iterations > MAX_PBKDF2_ITERATIONS {
                return Err(too_high(
                    "PBKDF2 iterations",
                    iterations,
                    MAX_PBKDF2_ITERATIONS,
                ));
            }
        }
        if let Some(scrypt) = params.kdf.scrypt() {
            let n = scrypt.cost_parameter;
            let r = u64::from(scrypt.block_size);
            let p = u64::from(scrypt.parallelization);
            let memory = n.saturating_mul(r).saturating_mul(128);
            if memory > MAX_SCRYPT_MEMORY_BYTES {
                return Err(too_high(
                    "scrypt memory in bytes (128 * r * N)",
                    memory,
                    MAX_SCRYPT_MEMORY_BYTES,
                ));
            }
            let work = n.saturating_mul(r).saturating_mul(p);
            if work > MAX_SCRYPT_WORK {
                return Err(too_high("scrypt work (N * r * p)", work, MAX_SCRYPT_WORK));
            }
        }
        Ok(())
    }

    /// The encryption scheme OID of an `EncryptedPrivateKeyInfo`, read without interpreting it.
    fn encryption_scheme(der: &[u8]) -> Option<ObjectIdentifier> {
        let sequence = AnyRef::from_der(der).ok()?;
        let mut reader = der::SliceReader::new(sequence.value()).ok()?;
        let algorithm = pkcs8::AlgorithmIdentifierRef::decode(&mut reader).ok()?;
        Some(algorithm.oid)
    }

    fn scheme_name(oid: ObjectIdentifier) -> String {
        let text = oid.to_string();
        if text.starts_with("1.2.840.113549.1.12.1.") {
            format!("PKCS#12 password-based encryption, {text}")
        } else if text.starts_with("1.2.840.113549.1.5.") {
            format!("PBES1, {text}")
        } else {
            text
        }
    }
}

#[cfg(feature = "encrypted-keys")]
use pbes2::decrypt_pkcs8;

#[cfg(all(test, feature = "encrypted-keys"))]
mod tests;
