//! Reading PEM private keys: the block's format, unencrypted PKCS#8 / PKCS#1 / SEC1, and
//! encrypted PKCS#8 with its key-derivation costs checked before any derivation.

use std::io::Read as _;
use std::path::Path;

use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
};
use pkcs8::ObjectIdentifier;
use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{self, Decode as _, TagNumber};
use zeroize::Zeroizing;

use super::error::KeyError;
use super::key::{KeyPair, PrivateKey};
use super::key_source::KeySource;
use super::pem;

/// Key files larger than this are refused unread: a PEM key of 8192 bits is under 7 KiB.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

/// Reads a key file into a wiped buffer, refusing anything past [`MAX_KEY_FILE_BYTES`].
pub(super) fn read_key_file(
    path: &Path,
    source: &KeySource,
) -> Result<Zeroizing<String>, KeyError> {
    let read_error = |io: std::io::Error| KeyError::FileRead {
        origin: source.clone(),
        io: std::sync::Arc::new(io),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    // Sized from the file's length (within the cap) so that reading does not reallocate: a
    // reallocation would leave an unwiped copy of the key behind.
    let len = file
        .metadata()
        .map_or(0, |m| m.len())
        .min(MAX_KEY_FILE_BYTES);
    let capacity = usize::try_from(len).unwrap_or(0).max(16 * 1024) + 1;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::FileTooLarge {
            origin: source.clone(),
            limit: MAX_KEY_FILE_BYTES,
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        // Binary (DER, PKCS#12) or another encoding: not the PEM text we read.
        Err(_) => Err(KeyError::NotPem {
            origin: source.clone(),
        }),
    }
}

/// The format a PEM label announces.
#[derive(Clone, Copy)]
enum Format {
    Pkcs8,
    Pkcs1,
    Sec1,
    EncryptedPkcs8,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Pkcs8 => "PKCS#8 (BEGIN PRIVATE KEY)",
            Format::Pkcs1 => "PKCS#1 RSA (BEGIN RSA PRIVATE KEY)",
            Format::Sec1 => "SEC1 EC (BEGIN EC PRIVATE KEY)",
            Format::EncryptedPkcs8 => "encrypted PKCS#8 (BEGIN ENCRYPTED PRIVATE KEY)",
        }
    }
}

pub(super) fn parse(
    text: &str,
    source: KeySource,
    passphrase: Option<&[u8]>,
) -> Result<PrivateKey, KeyError> {
    if text.trim().is_empty() {
        return Err(KeyError::Empty { origin: source });
    }
    let unflattened = pem::unflatten(text);
    let blocks = pem::blocks(unflattened.as_deref().map_or(text, String::as_str));
    let key_block = blocks.iter().find_map(|block| {
        let format = match block.label {
            "PRIVATE KEY" => Format::Pkcs8,
            "RSA PRIVATE KEY" => Format::Pkcs1,
            "EC PRIVATE KEY" => Format::Sec1,
            "ENCRYPTED PRIVATE KEY" => Format::EncryptedPkcs8,
            _ => return None,
        };
        Some((block, format))
    });
    let Some((block, format)) = key_block else {
        return Err(no_key_error(&blocks, source));
    };
    if block.legacy_encrypted {
        return Err(KeyError::LegacyEncrypted { origin: source });
    }
    let malformed = |source: KeySource, reason: &'static str| KeyError::Malformed {
        origin: source,
        format: format.name(),
        reason,
    };
    if !block.terminated {
        return Err(malformed(source, "its END line is missing"));
    }
    let Some(der) = block.decode() else {
        return Err(malformed(source, "its base64 body is damaged"));
    };
    match format {
        Format::Pkcs8 => from_pkcs8(&der, source, format),
        Format::Pkcs1 => {
            let pair =
                RsaKeyPair::from_der(&der).map_err(|e| rejected(e, source.clone(), format))?;
            finish(KeyPair::Rsa(pair), source, format)
        }
        Format::Sec1 => {
            if let Some(curve) = sec1_curve(&der).filter(|curve| *curve != OID_P256) {
                return Err(KeyError::TypeUnsupported {
                    origin: source,
                    found: format!("an EC key on curve {}", curve_name(curve)),
                });
            }
            let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|e| match e.description_() {
                "WrongAlgorithm" => KeyError::TypeUnsupported {
                    origin: source.clone(),
                    found: "an EC key on a curve other than P-256".to_owned(),
                },
                _ => rejected(e, source.clone(), format),
            })?;
            finish(KeyPair::EcP256(pair), source, format)
        }
        Format::EncryptedPkcs8 => {
            let Some(passphrase) = passphrase else {
                return Err(KeyError::Encrypted { origin: source });
            };
            let plain = decrypt(&der, passphrase, &source)?;
            // A wrong passphrase can, rarely, pass the padding check and yield garbage.
            if pkcs8::PrivateKeyInfoRef::from_der(plain.as_bytes()).is_err() {
                return Err(KeyError::PassphraseWrong { origin: source });
            }
            from_pkcs8(plain.as_bytes(), source, Format::Pkcs8)
        }
    }
}

/// The error for input that holds PEM blocks but no private key, or no PEM at all.
fn no_key_error(blocks: &[pem::Block<'_>], origin: KeySource) -> KeyError {
    let has = |pred: fn(&str) -> bool| blocks.iter().any(|b| pred(b.label));
    if has(|label| label.contains("PUBLIC KEY")) {
        KeyError::IsPublic { origin }
    } else if has(|label| label.contains("CERTIFICATE")) {
        KeyError::IsCertificate { origin }
    } else if let Some(block) = blocks.first() {
        KeyError::FormatUnsupported {
            origin,
            label: block.label.chars().take(64).collect(),
        }
    } else {
        KeyError::NotPem { origin }
    }
}

fn from_pkcs8(der: &[u8], source: KeySource, format: Format) -> Result<PrivateKey, KeyError> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(der).map_err(|_| KeyError::Malformed {
        origin: source.clone(),
        format: format.name(),
        reason: "its DER structure is not a PKCS#8 PrivateKeyInfo",
    })?;
    let oid = info.algorithm.oid;
    let pair = if oid == OID_RSA {
        KeyPair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| rejected(e, source.clone(), format))?)
    } else if oid == OID_EC {
        let curve = info
            .algorithm
            .parameters
            .and_then(|params| params.decode_as::<ObjectIdentifier>().ok());
        match curve {
            Some(curve) if curve == OID_P256 => KeyPair::EcP256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| rejected(e, source.clone(), format))?,
            ),
            curve => {
                return Err(KeyError::TypeUnsupported {
                    origin: source,
                    found: match curve {
                        Some(curve) => format!("an EC key on curve {}", curve_name(curve)),
                        None => "an EC key without a named curve".to_owned(),
                    },
                });
            }
        }
    } else if oid == OID_ED25519 {
        KeyPair::Ed25519(
            Ed25519KeyPair::from_pkcs8(der).map_err(|e| rejected(e, source.clone(), format))?,
        )
    } else {
        return Err(KeyError::TypeUnsupported {
            origin: source,
            found: format!("a {} key", algorithm_name(oid)),
        });
    };
    finish(pair, source, format)
}

fn finish(pair: KeyPair, source: KeySource, format: Format) -> Result<PrivateKey, KeyError> {
    PrivateKey::new(pair, source.clone()).map_err(|_| KeyError::Malformed {
        origin: source,
        format: format.name(),
        reason: "its public key cannot be derived",
    })
}

/// Maps aws-lc-rs's refusal of a key to the error that says why.
fn rejected(err: KeyRejected, origin: KeySource, format: Format) -> KeyError {
    match err.description_() {
        "TooSmall" => KeyError::RsaTooSmall { origin },
        "TooLarge" => KeyError::TypeUnsupported {
            origin,
            found: "an RSA key over 8192 bits".to_owned(),
        },
        _ => KeyError::Malformed {
            origin,
            format: format.name(),
            reason: "the crypto backend rejects its contents",
        },
    }
}

fn decrypt(
    der: &[u8],
    passphrase: &[u8],
    source: &KeySource,
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
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm { oid }) => {
            unsupported(oid.to_string())
        }
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::NoPbes1CryptSupport) => {
            unsupported("PBES1".to_owned())
        }
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::AlgorithmParametersInvalid {
            oid,
        }) => unsupported(format!("{oid} with unusable parameters")),
        _ => KeyError::PassphraseWrong {
            origin: source.clone(),
        },
    })
}

/// Refuses key-derivation parameters past the caps before any derivation runs: a crafted file
/// could otherwise ask scrypt for a petabyte or PBKDF2 for hours.
fn check_kdf_cost(
    scheme: &pkcs8::pkcs5::EncryptionScheme,
    source: &KeySource,
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
        if iterations > PrivateKey::MAX_PBKDF2_ITERATIONS {
            return Err(too_high(
                "PBKDF2 iterations",
                iterations,
                PrivateKey::MAX_PBKDF2_ITERATIONS,
            ));
        }
    }
    if let Some(scrypt) = params.kdf.scrypt() {
        let n = scrypt.cost_parameter;
        let r = u64::from(scrypt.block_size);
        let p = u64::from(scrypt.parallelization);
        let memory = n.saturating_mul(r).saturating_mul(128);
        if memory > PrivateKey::MAX_SCRYPT_MEMORY_BYTES {
            return Err(too_high(
                "scrypt memory in bytes (128 * r * N)",
                memory,
                PrivateKey::MAX_SCRYPT_MEMORY_BYTES,
            ));
        }
        let work = n.saturating_mul(r).saturating_mul(p);
        if work > PrivateKey::MAX_SCRYPT_WORK {
            return Err(too_high(
                "scrypt work (N * r * p)",
                work,
                PrivateKey::MAX_SCRYPT_WORK,
            ));
        }
    }
    Ok(())
}

/// The named curve of a SEC1 `ECPrivateKey` (its `[0]` parameters), if it names one.
fn sec1_curve(der: &[u8]) -> Option<ObjectIdentifier> {
    let sequence = AnyRef::from_der(der).ok()?;
    let mut reader = der::SliceReader::new(sequence.value()).ok()?;
    AnyRef::decode(&mut reader).ok()?; // version
    AnyRef::decode(&mut reader).ok()?; // privateKey
    let params =
        der::asn1::ContextSpecific::<ObjectIdentifier>::decode_explicit(&mut reader, TagNumber(0))
            .ok()??;
    Some(params.value)
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

fn curve_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.34" => "P-384".to_owned(),
        "1.3.132.0.35" => "P-521".to_owned(),
        "1.3.132.0.10" => "secp256k1".to_owned(),
        other => other.to_owned(),
    }
}

fn algorithm_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.10" => "RSA-PSS-restricted (id-RSASSA-PSS)".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        other => format!("algorithm {other}"),
    }
}

#[cfg(test)]
mod tests {
    use pkcs8::der::Encode as _;
    use pkcs8::der::asn1::OctetStringRef;
    use pkcs8::pkcs5::EncryptionScheme;
    use pkcs8::pkcs5::pbes2::{self, Kdf, Pbkdf2Params, Pbkdf2Prf, Salt, ScryptParams};

    use super::*;

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
        for kdf in [pbkdf2(2048), scrypt(1 << 14, 8, 1)] {
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
        assert!(text.contains("cap of 10000000"), "{text}");
    }
}
