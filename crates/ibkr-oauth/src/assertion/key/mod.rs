//! Private keys: [`PrivateKey`], parsed once, generated or exported.
//!
//! Private parts, one way: this file -> `parse` (PEM and DER to a key pair) -> `decrypt`
//! (encrypted PKCS#8) ; `pair` (the key pair and its format) is the leaf all of them use.
//!
//! A key is parsed once into an aws-lc-rs key pair and then shared: parsing an RSA key costs
//! more than signing with it. aws-lc frees key pairs with `OPENSSL_free`, which wipes the memory,
//! and every PEM or DER copy made here lives in a `Zeroizing` buffer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use zeroize::Zeroizing;

mod decrypt;
mod pair;
mod parse;

use super::pem;
use crate::algorithm::{Algorithm, KeyType};
use crate::error::KeyError;
use crate::error::KeyOrigin;
use parse::read_key_file;

pub(crate) use pair::KeyPair;

/// Parses a PEM key and derives its public half.
fn parse(text: &str, source: KeyOrigin, passphrase: Option<&[u8]>) -> Result<PrivateKey, KeyError> {
    let (pair, format) = parse::parse(text, source.clone(), passphrase)?;
    PrivateKey::new(pair, source.clone()).map_err(|_| KeyError::Malformed {
        origin: source,
        format: format.name(),
        reason: "its public key cannot be derived",
    })
}

struct Inner {
    pair: KeyPair,
    public_der: Vec<u8>,
    source: KeyOrigin,
}

/// A private key for signing client assertions, parsed once and cheap to clone.
///
/// Reads PEM: PKCS#8 (`BEGIN PRIVATE KEY`: RSA, EC P-256 or Ed25519), PKCS#1
/// (`BEGIN RSA PRIVATE KEY`), SEC1 (`BEGIN EC PRIVATE KEY`) and encrypted PKCS#8
/// (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 with AES and PBKDF2-SHA-256 or scrypt). RSA keys
/// must have 2048 to 8192 bits. Any other input is refused with an error that names its
/// [`KeyOrigin`] and says what was expected; no input panics.
///
/// Key material is wiped from memory when the last clone is dropped, and `Debug` and
/// `Display` print only the key's type and source.
///
/// ```
/// use ibkr_oauth::key::KeyType;
/// use ibkr_oauth::{Algorithm, PrivateKey};
///
/// let generated = PrivateKey::generate(Algorithm::ES256)?;
/// let pem = generated.to_pkcs8_pem()?;
/// let key = PrivateKey::from_pem(&pem)?;
/// assert_eq!(key.key_type(), KeyType::EcP256);
/// assert_eq!(key.public_key_pem(), generated.public_key_pem());
/// assert!(!format!("{key:?}").contains(pem.as_str()));
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[derive(Clone)]
pub struct PrivateKey {
    inner: Arc<Inner>,
}

impl PrivateKey {
    /// The most PBKDF2 iterations an encrypted key may ask for: 1,000,000. The tools IBKR users
    /// encrypt keys with write fewer (OpenSSL 2048, Java's keytool 10,000; OWASP advises
    /// 600,000 for PBKDF2-HMAC-SHA256). What a million costs, measured on a loaded 2-core
    /// machine: 0.9 s for `openssl pkey`, 27 s for a debug build of this crate (`ibkr-oauth
    /// jwk`); the derivation runs once per key load. Past the cap a crafted file could hold a
    /// process for hours: it is refused before any derivation.
    pub const MAX_PBKDF2_ITERATIONS: u64 = decrypt::MAX_PBKDF2_ITERATIONS;
    /// The most memory scrypt may need to decrypt a key (`128 * r * N` bytes; OpenSSL's
    /// defaults need 16 MiB).
    pub const MAX_SCRYPT_MEMORY_BYTES: u64 = decrypt::MAX_SCRYPT_MEMORY_BYTES;
    /// The most work scrypt may do to decrypt a key (`N * r * p`; OpenSSL's defaults: 131,072).
    pub const MAX_SCRYPT_WORK: u64 = decrypt::MAX_SCRYPT_WORK;

    /// Parses an unencrypted PEM private key from a string.
    ///
    /// # Errors
    /// A key error naming [`KeyOrigin::PemString`]: [`KeyError::Empty`], [`KeyError::NotPem`],
    /// [`KeyError::IsPublic`], [`KeyError::IsCertificate`], [`KeyError::FormatUnsupported`],
    /// [`KeyError::Encrypted`], [`KeyError::LegacyEncrypted`], [`KeyError::Malformed`],
    /// [`KeyError::TypeUnsupported`] or [`KeyError::RsaTooSmall`].
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        parse(pem, KeyOrigin::PemString, None)
    }

    /// Reads and parses an unencrypted PEM private key file.
    ///
    /// # Errors
    /// [`KeyError::FileRead`] if the file cannot be read, [`KeyError::NotAFile`] for a FIFO, a
    /// device or a directory (refused unopened), [`KeyError::FileTooLarge`] past 1 MiB,
    /// otherwise the errors of [`PrivateKey::from_pem`], naming the file.
    ///
    /// ```no_run
    /// use ibkr_oauth::PrivateKey;
    ///
    /// let key = PrivateKey::from_pem_file("/etc/ibkr/private.pem")?;
    /// println!("loaded {key}"); // "RSA 2048-bit private key from key file ... ([redacted])"
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let source = KeyOrigin::File(path.to_path_buf());
        let text = read_key_file(path, &source)?;
        parse(&text, source, None)
    }

    /// Parses a PEM private key that may be encrypted (`BEGIN ENCRYPTED PRIVATE KEY`),
    /// decrypting it with `passphrase`. An unencrypted key is accepted as it is.
    ///
    /// # Errors
    /// The errors of [`PrivateKey::from_pem`], plus [`KeyError::PassphraseWrong`] and
    /// [`KeyError::EncryptionUnsupported`].
    ///
    /// ```no_run
    /// use ibkr_oauth::PrivateKey;
    ///
    /// let pem = std::fs::read_to_string("private.enc.pem").unwrap_or_default();
    /// let passphrase = std::env::var("IBKR_KEY_PASSPHRASE").unwrap_or_default();
    /// let key = PrivateKey::from_encrypted_pem(&pem, passphrase)?;
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn from_encrypted_pem(pem: &str, passphrase: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        parse(pem, KeyOrigin::PemString, Some(passphrase.as_ref()))
    }

    /// Reads a PEM private key file that may be encrypted, decrypting it with `passphrase`.
    ///
    /// # Errors
    /// The errors of [`PrivateKey::from_pem_file`] and [`PrivateKey::from_encrypted_pem`].
    pub fn from_encrypted_pem_file(
        path: impl AsRef<Path>,
        passphrase: impl AsRef<[u8]>,
    ) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let source = KeyOrigin::File(path.to_path_buf());
        let text = read_key_file(path, &source)?;
        parse(&text, source, Some(passphrase.as_ref()))
    }

    /// Reads an unencrypted key from the environment variable `var`, which holds either PEM
    /// text (recognised by `-----BEGIN`; literal `\n` sequences, as `.env` files write them, are
    /// read as line breaks) or the path of a PEM file.
    ///
    /// # Errors
    /// [`KeyError::EnvVar`] if the variable is unset, empty or not Unicode; otherwise the
    /// errors of [`PrivateKey::from_pem`] or [`PrivateKey::from_pem_file`], naming the variable.
    ///
    /// ```no_run
    /// let key = ibkr_oauth::PrivateKey::from_env("IBKR_PRIVATE_KEY")?;
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let value = match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Zeroizing::new(value),
            _ => {
                return Err(KeyError::EnvVar {
                    name: var.to_owned(),
                });
            }
        };
        Self::from_path_or_pem(&value, Some(var), None)
    }

    /// A key from text that is either PEM (recognised by `-----BEGIN`; literal `\n` sequences
    /// are read as line breaks) or the path of a PEM file; `var` names the environment
    /// variable the text came from, for the errors; `passphrase` decrypts an encrypted key.
    pub(crate) fn from_path_or_pem(
        value: &str,
        var: Option<&str>,
        passphrase: Option<&[u8]>,
    ) -> Result<Self, KeyError> {
        if value.contains("-----BEGIN") {
            let source = match var {
                Some(name) => KeyOrigin::EnvVar {
                    name: name.to_owned(),
                    file: None,
                },
                None => KeyOrigin::PemString,
            };
            if !value.contains('\n') && value.contains("\\n") {
                let unescaped = Zeroizing::new(value.replace("\\n", "\n"));
                return parse(&unescaped, source, passphrase);
            }
            return parse(value, source, passphrase);
        }
        let path = PathBuf::from(value.trim());
        let source = match var {
            Some(name) => KeyOrigin::EnvVar {
                name: name.to_owned(),
                file: Some(path.clone()),
            },
            None => KeyOrigin::File(path.clone()),
        };
        let text = read_key_file(&path, &source)?;
        parse(&text, source, passphrase)
    }

    /// Generates a fresh key for `algorithm`: RSA 2048 bits for `RS256`/`PS256`, P-256 for
    /// `ES256`, Ed25519 for `EdDSA`. For tests, sandboxes and `keygen`; register its
    /// [`public_key_pem`](PrivateKey::public_key_pem) with the server.
    ///
    /// # Errors
    /// [`KeyError::Generation`] if the crypto backend fails.
    ///
    /// ```
    /// use ibkr_oauth::key::KeyType;
    /// use ibkr_oauth::{Algorithm, PrivateKey};
    ///
    /// let key = PrivateKey::generate(Algorithm::RS256)?;
    /// assert_eq!((key.key_type(), key.bits()), (KeyType::Rsa, 2048));
    /// assert!(key.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    /// assert!(key.to_pkcs8_pem()?.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn generate(algorithm: Algorithm) -> Result<Self, KeyError> {
        let key_type = algorithm.key_type();
        let failed = |_| KeyError::Generation { key_type };
        let pair = match key_type {
            KeyType::Rsa => KeyPair::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?),
            KeyType::EcP256 => KeyPair::EcP256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?,
            ),
            KeyType::Ed25519 => KeyPair::Ed25519(Ed25519KeyPair::generate().map_err(failed)?),
        };
        Self::new(pair, KeyOrigin::Generated).map_err(|_| KeyError::Generation { key_type })
    }

    /// The key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), in a buffer wiped on drop.
    ///
    /// # Errors
    /// [`KeyError::Export`] if the crypto backend cannot serialise the key.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let failed = |_| KeyError::Export {
            key_type: self.key_type(),
        };
        let pem = match &self.inner.pair {
            KeyPair::Rsa(pair) => {
                let der: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
                pem::encode("PRIVATE KEY", der.as_ref())
            }
            KeyPair::EcP256(pair) => {
                let der = pair.to_pkcs8v1().map_err(failed)?;
                pem::encode("PRIVATE KEY", der.as_ref())
            }
            KeyPair::Ed25519(pair) => {
                let der = pair.to_pkcs8v1().map_err(failed)?;
                pem::encode("PRIVATE KEY", der.as_ref())
            }
        };
        Ok(pem)
    }

    /// The public key as PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`): what the server needs
    /// to verify this key's assertions.
    pub fn public_key_pem(&self) -> String {
        let pem = pem::encode("PUBLIC KEY", &self.inner.public_der);
        pem.as_str().to_owned()
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.inner.public_der
    }

    /// The key's type, which decides the algorithms it signs with.
    pub fn key_type(&self) -> KeyType {
        match &self.inner.pair {
            KeyPair::Rsa(_) => KeyType::Rsa,
            KeyPair::EcP256(_) => KeyType::EcP256,
            KeyPair::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The key size in bits: the RSA modulus length, 256 for P-256 and Ed25519.
    pub fn bits(&self) -> usize {
        match &self.inner.pair {
            KeyPair::Rsa(pair) => pair.public_modulus_len() * 8,
            KeyPair::EcP256(_) | KeyPair::Ed25519(_) => 256,
        }
    }

    /// Where the key came from.
    pub fn source(&self) -> &KeyOrigin {
        &self.inner.source
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.inner.pair
    }

    fn new(pair: KeyPair, source: KeyOrigin) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let public_der = match &pair {
            KeyPair::Rsa(pair) => pair.public_key().as_der()?.as_ref().to_vec(),
            KeyPair::EcP256(pair) => pair.public_key().as_der()?.as_ref().to_vec(),
            KeyPair::Ed25519(pair) => pair.public_key().as_der()?.as_ref().to_vec(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                pair,
                public_der,
                source,
            }),
        })
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type())
            .field("bits", &self.bits())
            .field("source", &self.inner.source)
            .field("material", &"[redacted]")
            .finish()
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-bit private key from {} ([redacted])",
            self.key_type(),
            self.bits(),
            self.inner.source
        )
    }
}
