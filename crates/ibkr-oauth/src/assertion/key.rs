//! Private keys: reading PEM (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8), generating, exporting.
//!
//! A key is parsed once into an aws-lc-rs key pair and then shared: parsing an RSA key costs
//! more than signing with it. aws-lc frees key pairs with `OPENSSL_free`, which wipes the memory,
//! and every PEM or DER copy made here lives in a `Zeroizing` buffer.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use pkcs8::ObjectIdentifier;
use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{self, Decode as _, TagNumber};
use zeroize::Zeroizing;

use super::algorithm::{Algorithm, KeyType};
use super::pem;
use crate::error::Error;

/// What every key error says was expected.
pub(crate) const EXPECTED_KEY: &str = "a PEM private key (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE \
                                       KEY, BEGIN EC PRIVATE KEY or BEGIN ENCRYPTED PRIVATE KEY)";

/// Key files larger than this are refused unread: a PEM key of 8192 bits is under 7 KiB.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

/// Where a key came from, named in every key error so the user knows which file to fix.
///
/// ```
/// use ibkr_oauth::assertion::{KeySource, PrivateKey};
/// use ibkr_oauth::Error;
///
/// let err = PrivateKey::from_pem_file("/no/such/key.pem").unwrap_err();
/// assert!(matches!(&err, Error::KeyFileRead { origin: KeySource::File(path), .. }
///     if path.ends_with("key.pem")));
/// assert!(err.to_string().contains("/no/such/key.pem"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A file read by [`PrivateKey::from_pem_file`] or [`PrivateKey::from_encrypted_pem_file`].
    File(PathBuf),
    /// A string passed to [`PrivateKey::from_pem`] or [`PrivateKey::from_encrypted_pem`].
    PemString,
    /// An environment variable read by [`PrivateKey::from_env`], holding PEM text (`file` is
    /// `None`) or the path of a file.
    EnvVar {
        /// The variable's name.
        name: String,
        /// The file the variable names, if it holds a path.
        file: Option<PathBuf>,
    },
    /// A key made by [`PrivateKey::generate`].
    Generated,
}

/// A path as errors show it: a "path" that is really key material (base64 pasted where a path
/// or PEM text was expected) is not echoed back.
struct ShownPath<'a>(&'a Path);

impl ShownPath<'_> {
    /// Whether the "path" may be key material: PEM pieces (a BEGIN line with a typo, or a body
    /// and END line without their BEGIN), line breaks, or a long run of base64. Real key
    /// paths have none of these.
    fn may_be_key_material(text: &str) -> bool {
        let base64ish =
            |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c) || c.is_whitespace();
        text.contains("----")
            || text.contains("PRIVATE KEY")
            || text.contains(['\n', '\r'])
            || text.len() > 512
            || (text.len() >= 64 && text.chars().all(base64ish))
    }
}

impl fmt::Display for ShownPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string_lossy();
        if Self::may_be_key_material(&text) {
            write!(
                f,
                "[redacted: {} characters that look like key material, not a path; pass the PEM \
                 text with its -----BEGIN and -----END lines, or the path of a key file]",
                text.len()
            )
        } else {
            write!(f, "{}", self.0.display())
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => f
                .debug_tuple("File")
                .field(&format_args!("{}", ShownPath(path)))
                .finish(),
            KeySource::PemString => f.write_str("PemString"),
            KeySource::EnvVar { name, file } => f
                .debug_struct("EnvVar")
                .field("name", name)
                .field(
                    "file",
                    &file.as_deref().map(|path| format!("{}", ShownPath(path))),
                )
                .finish(),
            KeySource::Generated => f.write_str("Generated"),
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "key file {}", ShownPath(path)),
            KeySource::PemString => f.write_str("the PEM string"),
            KeySource::EnvVar { name, file: None } => {
                write!(f, "the PEM text in environment variable {name}")
            }
            KeySource::EnvVar {
                name,
                file: Some(path),
            } => write!(
                f,
                "key file {} (named by environment variable {name})",
                ShownPath(path)
            ),
            KeySource::Generated => f.write_str("the generated key"),
        }
    }
}

/// The parsed key pair. Signing borrows it; nothing re-parses.
pub(crate) enum KeyPair {
    Rsa(RsaKeyPair),
    EcP256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

struct Inner {
    pair: KeyPair,
    public_der: Vec<u8>,
    source: KeySource,
}

/// A private key for signing client assertions, parsed once and cheap to clone.
///
/// Reads PEM: PKCS#8 (`BEGIN PRIVATE KEY`: RSA, EC P-256 or Ed25519), PKCS#1
/// (`BEGIN RSA PRIVATE KEY`), SEC1 (`BEGIN EC PRIVATE KEY`) and encrypted PKCS#8
/// (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 with AES and PBKDF2-SHA-256 or scrypt). RSA keys
/// must have 2048 to 8192 bits. Any other input is refused with an error that names its
/// [`KeySource`] and says what was expected; no input panics.
///
/// Key material is wiped from memory when the last clone is dropped, and `Debug` and
/// `Display` print only the key's type and source.
///
/// ```
/// use ibkr_oauth::assertion::{Algorithm, KeyType, PrivateKey};
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
    /// Parses an unencrypted PEM private key from a string.
    ///
    /// # Errors
    /// A key error naming [`KeySource::PemString`]: [`Error::KeyEmpty`], [`Error::KeyNotPem`],
    /// [`Error::KeyIsPublic`], [`Error::KeyIsCertificate`], [`Error::KeyFormatUnsupported`],
    /// [`Error::KeyEncrypted`], [`Error::KeyLegacyEncrypted`], [`Error::KeyMalformed`],
    /// [`Error::KeyTypeUnsupported`] or [`Error::KeyRsaTooSmall`].
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        parse(pem, KeySource::PemString, None)
    }

    /// Reads and parses an unencrypted PEM private key file.
    ///
    /// # Errors
    /// [`Error::KeyFileRead`] if the file cannot be read, [`Error::KeyFileTooLarge`] past 1 MiB,
    /// otherwise the errors of [`PrivateKey::from_pem`], naming the file.
    ///
    /// ```no_run
    /// use ibkr_oauth::assertion::PrivateKey;
    ///
    /// let key = PrivateKey::from_pem_file("/etc/ibkr/private.pem")?;
    /// println!("loaded {key}"); // "RSA 2048-bit private key from key file ... ([redacted])"
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let source = KeySource::File(path.to_path_buf());
        let text = read_key_file(path, &source)?;
        parse(&text, source, None)
    }

    /// Parses a PEM private key that may be encrypted (`BEGIN ENCRYPTED PRIVATE KEY`),
    /// decrypting it with `passphrase`. An unencrypted key is accepted as it is.
    ///
    /// # Errors
    /// The errors of [`PrivateKey::from_pem`], plus [`Error::KeyPassphraseWrong`] and
    /// [`Error::KeyEncryptionUnsupported`].
    ///
    /// ```no_run
    /// use ibkr_oauth::assertion::PrivateKey;
    ///
    /// let pem = std::fs::read_to_string("private.enc.pem").unwrap_or_default();
    /// let passphrase = std::env::var("IBKR_KEY_PASSPHRASE").unwrap_or_default();
    /// let key = PrivateKey::from_encrypted_pem(&pem, passphrase)?;
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn from_encrypted_pem(pem: &str, passphrase: impl AsRef<[u8]>) -> Result<Self, Error> {
        parse(pem, KeySource::PemString, Some(passphrase.as_ref()))
    }

    /// Reads a PEM private key file that may be encrypted, decrypting it with `passphrase`.
    ///
    /// # Errors
    /// The errors of [`PrivateKey::from_pem_file`] and [`PrivateKey::from_encrypted_pem`].
    pub fn from_encrypted_pem_file(
        path: impl AsRef<Path>,
        passphrase: impl AsRef<[u8]>,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let source = KeySource::File(path.to_path_buf());
        let text = read_key_file(path, &source)?;
        parse(&text, source, Some(passphrase.as_ref()))
    }

    /// Reads an unencrypted key from the environment variable `var`, which holds either PEM
    /// text (recognised by `-----BEGIN`; literal `\n` sequences, as `.env` files write them, are
    /// read as line breaks) or the path of a PEM file.
    ///
    /// # Errors
    /// [`Error::KeyEnvVar`] if the variable is unset, empty or not Unicode; otherwise the
    /// errors of [`PrivateKey::from_pem`] or [`PrivateKey::from_pem_file`], naming the variable.
    ///
    /// ```no_run
    /// let key = ibkr_oauth::assertion::PrivateKey::from_env("IBKR_PRIVATE_KEY")?;
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn from_env(var: &str) -> Result<Self, Error> {
        let value = match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Zeroizing::new(value),
            _ => {
                return Err(Error::KeyEnvVar {
                    name: var.to_owned(),
                });
            }
        };
        if value.contains("-----BEGIN") {
            let source = KeySource::EnvVar {
                name: var.to_owned(),
                file: None,
            };
            if !value.contains('\n') && value.contains("\\n") {
                let unescaped = Zeroizing::new(value.replace("\\n", "\n"));
                return parse(&unescaped, source, None);
            }
            return parse(&value, source, None);
        }
        let path = PathBuf::from(value.trim());
        let source = KeySource::EnvVar {
            name: var.to_owned(),
            file: Some(path.clone()),
        };
        let text = read_key_file(&path, &source)?;
        parse(&text, source, None)
    }

    /// Generates a fresh key for `algorithm`: RSA 2048 bits for `RS256`/`PS256`, P-256 for
    /// `ES256`, Ed25519 for `EdDSA`. For tests, sandboxes and `keygen`; register its
    /// [`public_key_pem`](PrivateKey::public_key_pem) with the server.
    ///
    /// # Errors
    /// [`Error::KeyGeneration`] if the crypto backend fails.
    ///
    /// ```
    /// use ibkr_oauth::assertion::{Algorithm, KeyType, PrivateKey};
    ///
    /// let key = PrivateKey::generate(Algorithm::RS256)?;
    /// assert_eq!((key.key_type(), key.bits()), (KeyType::Rsa, 2048));
    /// assert!(key.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    /// assert!(key.to_pkcs8_pem()?.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn generate(algorithm: Algorithm) -> Result<Self, Error> {
        let key_type = algorithm.key_type();
        let failed = |_| Error::KeyGeneration { key_type };
        let pair = match key_type {
            KeyType::Rsa => KeyPair::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?),
            KeyType::EcP256 => KeyPair::EcP256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?,
            ),
            KeyType::Ed25519 => KeyPair::Ed25519(Ed25519KeyPair::generate().map_err(failed)?),
        };
        Self::new(pair, KeySource::Generated).map_err(|_| Error::KeyGeneration { key_type })
    }

    /// The key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), in a buffer wiped on drop.
    ///
    /// # Errors
    /// [`Error::KeyExport`] if the crypto backend cannot serialise the key.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        let failed = |_| Error::KeyExport {
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
    pub fn source(&self) -> &KeySource {
        &self.inner.source
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.inner.pair
    }

    fn new(pair: KeyPair, source: KeySource) -> Result<Self, aws_lc_rs::error::Unspecified> {
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

/// Reads a key file into a wiped buffer, refusing anything past [`MAX_KEY_FILE_BYTES`].
fn read_key_file(path: &Path, source: &KeySource) -> Result<Zeroizing<String>, Error> {
    let read_error = |io| Error::KeyFileRead {
        origin: source.clone(),
        io,
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
        return Err(Error::KeyFileTooLarge {
            origin: source.clone(),
            limit: MAX_KEY_FILE_BYTES,
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        // Binary (DER, PKCS#12) or another encoding: not the PEM text we read.
        Err(_) => Err(Error::KeyNotPem {
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

fn parse(text: &str, source: KeySource, passphrase: Option<&[u8]>) -> Result<PrivateKey, Error> {
    if text.trim().is_empty() {
        return Err(Error::KeyEmpty { origin: source });
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
        return Err(Error::KeyLegacyEncrypted { origin: source });
    }
    let malformed = |source: KeySource, reason: &'static str| Error::KeyMalformed {
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
                return Err(Error::KeyTypeUnsupported {
                    origin: source,
                    found: format!("an EC key on curve {}", curve_name(curve)),
                });
            }
            let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|e| match e.description_() {
                "WrongAlgorithm" => Error::KeyTypeUnsupported {
                    origin: source.clone(),
                    found: "an EC key on a curve other than P-256".to_owned(),
                },
                _ => rejected(e, source.clone(), format),
            })?;
            finish(KeyPair::EcP256(pair), source, format)
        }
        Format::EncryptedPkcs8 => {
            let Some(passphrase) = passphrase else {
                return Err(Error::KeyEncrypted { origin: source });
            };
            let plain = decrypt(&der, passphrase, &source)?;
            // A wrong passphrase can, rarely, pass the padding check and yield garbage.
            if pkcs8::PrivateKeyInfoRef::from_der(plain.as_bytes()).is_err() {
                return Err(Error::KeyPassphraseWrong { origin: source });
            }
            from_pkcs8(plain.as_bytes(), source, Format::Pkcs8)
        }
    }
}

/// The error for input that holds PEM blocks but no private key, or no PEM at all.
fn no_key_error(blocks: &[pem::Block<'_>], origin: KeySource) -> Error {
    let has = |pred: fn(&str) -> bool| blocks.iter().any(|b| pred(b.label));
    if has(|label| label.contains("PUBLIC KEY")) {
        Error::KeyIsPublic { origin }
    } else if has(|label| label.contains("CERTIFICATE")) {
        Error::KeyIsCertificate { origin }
    } else if let Some(block) = blocks.first() {
        Error::KeyFormatUnsupported {
            origin,
            label: block.label.chars().take(64).collect(),
        }
    } else {
        Error::KeyNotPem { origin }
    }
}

fn from_pkcs8(der: &[u8], source: KeySource, format: Format) -> Result<PrivateKey, Error> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(der).map_err(|_| Error::KeyMalformed {
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
                return Err(Error::KeyTypeUnsupported {
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
        return Err(Error::KeyTypeUnsupported {
            origin: source,
            found: format!("a {} key", algorithm_name(oid)),
        });
    };
    finish(pair, source, format)
}

fn finish(pair: KeyPair, source: KeySource, format: Format) -> Result<PrivateKey, Error> {
    PrivateKey::new(pair, source.clone()).map_err(|_| Error::KeyMalformed {
        origin: source,
        format: format.name(),
        reason: "its public key cannot be derived",
    })
}

/// Maps aws-lc-rs's refusal of a key to the error that says why.
fn rejected(err: KeyRejected, origin: KeySource, format: Format) -> Error {
    match err.description_() {
        "TooSmall" => Error::KeyRsaTooSmall { origin },
        "TooLarge" => Error::KeyTypeUnsupported {
            origin,
            found: "an RSA key over 8192 bits".to_owned(),
        },
        _ => Error::KeyMalformed {
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
) -> Result<pkcs8::SecretDocument, Error> {
    let unsupported = |scheme: String| Error::KeyEncryptionUnsupported {
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
            None => Error::KeyMalformed {
                origin: source.clone(),
                format: Format::EncryptedPkcs8.name(),
                reason: "its DER structure is not a PKCS#8 EncryptedPrivateKeyInfo",
            },
        }
    })?;
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
        _ => Error::KeyPassphraseWrong {
            origin: source.clone(),
        },
    })
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
