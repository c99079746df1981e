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

use super::pair::{Format, KeyPair};
use crate::assertion::pem;
use crate::error::KeyError;
use crate::error::KeyOrigin;

/// Key files larger than this are refused unread: a PEM key of 8192 bits is under 7 KiB.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Reads a key file into a wiped buffer, refusing anything past [`MAX_KEY_FILE_BYTES`].
pub(super) fn read_key_file(
    path: &Path,
    source: &KeyOrigin,
) -> Result<Zeroizing<String>, KeyError> {
    let read_error = |io: std::io::Error| KeyError::FileRead {
        origin: source.clone(),
        io: std::sync::Arc::new(io),
    };
    // A FIFO without a writer blocks open() for ever, and a device may never end: only a
    // regular file is opened (checked on the path, then again on what was opened).
    let not_a_file = || KeyError::NotAFile {
        origin: source.clone(),
    };
    if !std::fs::metadata(path).map_err(read_error)?.is_file() {
        return Err(not_a_file());
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(not_a_file());
    }
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

pub(super) fn parse(
    text: &str,
    source: KeyOrigin,
    passphrase: Option<&[u8]>,
) -> Result<(KeyPair, Format), KeyError> {
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
    let malformed = |source: KeyOrigin, reason: &'static str| KeyError::Malformed {
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
            Ok((KeyPair::Rsa(pair), format))
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
            Ok((KeyPair::EcP256(pair), format))
        }
        Format::EncryptedPkcs8 => {
            let Some(passphrase) = passphrase else {
                return Err(KeyError::Encrypted { origin: source });
            };
            let plain = super::decrypt::decrypt(&der, passphrase, &source)?;
            // A wrong passphrase can, rarely, pass the padding check and yield garbage.
            if pkcs8::PrivateKeyInfoRef::from_der(plain.as_slice()).is_err() {
                return Err(KeyError::PassphraseWrong { origin: source });
            }
            from_pkcs8(plain.as_slice(), source, Format::Pkcs8)
        }
    }
}

/// The error for input that holds PEM blocks but no private key, or no PEM at all.
fn no_key_error(blocks: &[pem::Block<'_>], origin: KeyOrigin) -> KeyError {
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

fn from_pkcs8(
    der: &[u8],
    source: KeyOrigin,
    format: Format,
) -> Result<(KeyPair, Format), KeyError> {
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
    Ok((pair, format))
}

/// Maps aws-lc-rs's refusal of a key to the error that says why.
fn rejected(err: KeyRejected, origin: KeyOrigin, format: Format) -> KeyError {
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
