//! Encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`): PBES2 with PBKDF2 or scrypt and AES,
//! the key-derivation costs checked against caps before any derivation runs. Behind the
//! `encrypted-keys` feature (it brings the RustCrypto PBES2 stack); without it, an encrypted
//! key is refused with a message that names the feature.

use zeroize::Zeroizing;

use crate::assertion::error::KeyError;
use crate::assertion::key_origin::KeyOrigin;

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
    use crate::assertion::error::KeyError;
    use crate::assertion::key_origin::KeyOrigin;

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
mod tests {
    use pkcs8::der::Encode as _;
    use pkcs8::der::asn1::OctetStringRef;
    use pkcs8::pkcs5::EncryptionScheme;
    use pkcs8::pkcs5::pbes2::{self, Kdf, Pbkdf2Params, Pbkdf2Prf, Salt, ScryptParams};

    use super::super::PrivateKey;
    use super::*;
    use crate::assertion::pem;

    /// An encrypted key file with these KDF parameters (the ciphertext is junk: it must never
    /// be reached).
    fn crafted(kdf: Kdf) -> String {
        let scheme = EncryptionScheme::Pbes2(pbes2::Parameters {
            kdf,
            encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: [7; 16] },
        });
        let data = [0u8; 48];
        let info = pkcs8::EncryptedPrivateKeyInfoRef {
            encryption_algorithm: scheme,
            encrypted_data: OctetStringRef::new(&data).expect("octets"),
        };
        let der = info.to_der().expect("der");
        pem::encode("ENCRYPTED PRIVATE KEY", &der)
            .as_str()
            .to_owned()
    }

    fn pbkdf2(iterations: u32) -> Kdf {
        Kdf::Pbkdf2(Pbkdf2Params {
            salt: Salt::new([1u8; 16]).expect("salt"),
            iteration_count: iterations,
            key_length: None,
            prf: Pbkdf2Prf::HmacWithSha256,
        })
    }

    fn scrypt(cost: u64, block_size: u16, parallelization: u16) -> Kdf {
        Kdf::Scrypt(ScryptParams {
            salt: Salt::new([1u8; 16]).expect("salt"),
            cost_parameter: cost,
            block_size,
            parallelization,
            key_length: Some(32),
        })
    }

    fn refused(kdf: Kdf) -> (&'static str, u64, u64) {
        match PrivateKey::from_encrypted_pem(&crafted(kdf), "passphrase") {
            Err(KeyError::KdfCostTooHigh {
                parameter,
                value,
                cap,
                ..
            }) => (parameter, value, cap),
            other => panic!("expected KdfCostTooHigh, got {other:?}"),
        }
    }

    #[test]
    fn pbkdf2_iterations_past_the_cap_are_refused_at_once() {
        let (parameter, value, cap) = refused(pbkdf2(u32::MAX));
        assert_eq!(parameter, "PBKDF2 iterations");
        assert_eq!(
            (value, cap),
            (u64::from(u32::MAX), PrivateKey::MAX_PBKDF2_ITERATIONS)
        );
        refused(pbkdf2(50_000_000));
        // Issue 20: the cap was 10 million, about two minutes of a debug build; now a million.
        let (_, value, cap) = refused(pbkdf2(1_000_001));
        assert_eq!((value, cap), (1_000_001, 1_000_000));
        refused(pbkdf2(10_000_000));
    }

    #[test]
    fn scrypt_memory_and_work_past_the_caps_are_refused_at_once() {
        // N = 2^40, r = 8: about 1 PiB, which would abort the process.
        let (parameter, value, cap) = refused(scrypt(1 << 40, 8, 1));
        assert!(parameter.starts_with("scrypt memory"), "{parameter}");
        assert_eq!(
            (value, cap),
            ((128 * 8) << 40, PrivateKey::MAX_SCRYPT_MEMORY_BYTES)
        );
        // Little memory, much work: N = 2^14, r = 1, p = 65535.
        let (parameter, ..) = refused(scrypt(1 << 14, 1, u16::MAX));
        assert!(parameter.starts_with("scrypt work"), "{parameter}");
    }

    #[test]
    fn usual_costs_are_not_refused_by_the_caps() {
        // OpenSSL's defaults pass the caps; the junk ciphertext then fails to decrypt.
        for kdf in [pbkdf2(2048), pbkdf2(10_000), scrypt(1 << 14, 8, 1)] {
            assert!(matches!(
                PrivateKey::from_encrypted_pem(&crafted(kdf), "passphrase"),
                Err(KeyError::PassphraseWrong { .. })
            ));
        }
    }

    #[test]
    fn the_message_names_the_parameter_and_the_cap() {
        let error = PrivateKey::from_encrypted_pem(&crafted(pbkdf2(u32::MAX)), "x").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("PBKDF2 iterations = 4294967295"), "{text}");
        assert!(text.contains("cap of 1000000 "), "{text}");
    }
}
