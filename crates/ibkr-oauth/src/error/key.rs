//! Key and signing failures: [`KeyError`] (what `PrivateKey::from_*`, `generate` and the signer
//! builder return) and [`SignError`] (what signing an assertion or a body can fail with).

use std::sync::Arc;

use super::ErrorKind;
use super::key_origin::KeyOrigin;
use crate::algorithm::{Algorithm, KeyType};

/// What every key error says was expected.
pub(crate) const EXPECTED_KEY: &str = "a PEM private key (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE \
                                       KEY, BEGIN EC PRIVATE KEY or BEGIN ENCRYPTED PRIVATE KEY)";

/// A private key that could not be read, parsed, decrypted, generated or used.
///
/// Every variant names the key's [`KeyOrigin`] (a path is shown only if it cannot be key
/// material) and never any key material. Wrapped by [`Error::Key`](crate::Error::Key).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file (named directly or by an environment variable) could not be read.
    #[error("could not read {origin}; check the path and that this process may read it")]
    FileRead {
        /// The file.
        origin: KeyOrigin,
        /// The operating system's error.
        #[source]
        io: Arc<std::io::Error>,
    },
    /// A key file is larger than any PEM private key.
    #[error(
        "{origin} is over {limit} bytes, far larger than a PEM private key; point to the key \
         file itself ({EXPECTED_KEY})"
    )]
    FileTooLarge {
        /// The file.
        origin: KeyOrigin,
        /// The size limit in bytes.
        limit: u64,
    },
    /// The key path names something other than a regular file (a FIFO, a device, a
    /// directory, a socket): refused unopened, since reading it could block for ever.
    #[error("{origin} is not a regular file; point to the key file itself ({EXPECTED_KEY})")]
    NotAFile {
        /// The path.
        origin: KeyOrigin,
    },
    /// The environment variable that should hold the key (or its path) is unset or empty.
    #[error(
        "environment variable {name} is unset, empty or not Unicode; set it to the path of the \
         private key file or to the PEM text itself"
    )]
    EnvVar {
        /// The variable's name.
        name: String,
    },
    /// The key file or string is empty.
    #[error("{origin} is empty; expected {EXPECTED_KEY}")]
    Empty {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The input holds no PEM block at all (garbage, binary DER, another format).
    #[error(
        "{origin} is not PEM text (no -----BEGIN line found); expected {EXPECTED_KEY}; a binary \
         DER key converts with `openssl pkey -in key.der -inform DER -out key.pem`"
    )]
    NotPem {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The input holds a public key, not the private key.
    #[error(
        "{origin} holds a public key (BEGIN PUBLIC KEY); give the private key that belongs to \
         it (keygen writes it as private.pem beside public.pem): expected {EXPECTED_KEY}"
    )]
    IsPublic {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The input holds a certificate (or certificate request), not a private key.
    #[error(
        "{origin} holds a certificate, not a private key; use the private key file that was \
         generated with it: expected {EXPECTED_KEY}"
    )]
    IsCertificate {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The input holds a PEM block of a kind this crate does not read (OpenSSH, DSA, ...).
    #[error(
        "{origin} holds a `{label}` PEM block, which is not a supported private key format; \
         expected {EXPECTED_KEY}; convert it with `openssl pkcs8 -topk8 -nocrypt -in OLD -out \
         key.pem` (for OpenSSH keys: `ssh-keygen -p -m PKCS8 -f KEY`)"
    )]
    FormatUnsupported {
        /// Where the key was read from.
        origin: KeyOrigin,
        /// The PEM label found (at most 64 characters).
        label: String,
    },
    /// The key is encrypted PKCS#8 and no passphrase was given.
    #[error(
        "{origin} is encrypted (BEGIN ENCRYPTED PRIVATE KEY); load it with \
         PrivateKey::from_encrypted_pem or from_encrypted_pem_file and its passphrase"
    )]
    Encrypted {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The key is encrypted, and this build of the crate reads no encrypted keys.
    #[error(
        "{origin} is encrypted (BEGIN ENCRYPTED PRIVATE KEY), and this build reads no encrypted \
         keys: enable ibkr-oauth's `encrypted-keys` feature, or store the key decrypted in a \
         secret store (`openssl pkcs8 -in key.enc.pem -out key.pem`)"
    )]
    EncryptedKeysDisabled {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The key uses OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`).
    #[error(
        "{origin} uses OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED), which is not \
         supported; re-encrypt it as PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD \
         -out key.pem`"
    )]
    LegacyEncrypted {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The passphrase does not decrypt the key (or the encrypted key is damaged).
    #[error(
        "could not decrypt {origin}: the passphrase is wrong or the file is damaged; check the \
         passphrase"
    )]
    PassphraseWrong {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The key is encrypted with a scheme this crate does not implement.
    #[error(
        "{origin} is encrypted with an unsupported scheme ({scheme}); expected PBES2 with AES-CBC \
         and PBKDF2-HMAC-SHA-256 or scrypt; re-encrypt it with `openssl pkcs8 -topk8 -v2 \
         aes-256-cbc -v2prf hmacWithSHA256 -in OLD -out key.pem`"
    )]
    EncryptionUnsupported {
        /// Where the key was read from.
        origin: KeyOrigin,
        /// The scheme found (an OID or name).
        scheme: String,
    },
    /// The key's encryption asks for a key derivation costlier than the documented caps
    /// ([`PrivateKey::MAX_PBKDF2_ITERATIONS`](crate::PrivateKey::MAX_PBKDF2_ITERATIONS),
    /// [`PrivateKey::MAX_SCRYPT_MEMORY_BYTES`](crate::PrivateKey::MAX_SCRYPT_MEMORY_BYTES),
    /// [`PrivateKey::MAX_SCRYPT_WORK`](crate::PrivateKey::MAX_SCRYPT_WORK)); refused before
    /// any derivation, since a crafted file could otherwise run for hours or exhaust memory.
    #[error(
        "{origin} asks for a key derivation with {parameter} = {value}, over this crate's cap \
         of {cap} (set so that loading a key takes seconds, not hours); re-encrypt it with usual \
         costs (`openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out key.pem` writes 2048 \
         iterations)"
    )]
    KdfCostTooHigh {
        /// Where the key was read from.
        origin: KeyOrigin,
        /// The parameter over its cap (`PBKDF2 iterations`, `scrypt memory (bytes)`...).
        parameter: &'static str,
        /// Its value in the file.
        value: u64,
        /// The cap.
        cap: u64,
    },
    /// A private-key PEM block whose base64 or DER content is damaged.
    #[error(
        "{origin} has a {format} block, but {reason}; the file is damaged or truncated: export \
         the key again"
    )]
    Malformed {
        /// Where the key was read from.
        origin: KeyOrigin,
        /// The format its PEM label announced.
        format: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A well-formed private key of a type or curve that no supported algorithm signs with.
    #[error(
        "{origin} holds {found}, which cannot sign client assertions; expected an RSA key (2048 \
         to 8192 bits), an EC P-256 key or an Ed25519 key"
    )]
    TypeUnsupported {
        /// Where the key was read from.
        origin: KeyOrigin,
        /// What the key is.
        found: String,
    },
    /// An RSA key shorter than 2048 bits.
    #[error(
        "{origin} holds an RSA key shorter than 2048 bits, which is too weak; generate a new key \
         of 2048 bits or more (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`) \
         and register its public key"
    )]
    RsaTooSmall {
        /// Where the key was read from.
        origin: KeyOrigin,
    },
    /// The key cannot sign with the algorithm chosen for the signer.
    #[error(
        "the {key_type} key from {origin} cannot sign {algorithm}; choose an algorithm the key \
         supports ({}) or a key for {algorithm}",
        crate::algorithm::names(*key_type)
    )]
    AlgorithmMismatch {
        /// Where the key was read from.
        origin: KeyOrigin,
        /// The key's type.
        key_type: KeyType,
        /// The algorithm that was chosen.
        algorithm: Algorithm,
    },
    /// The crypto backend could not generate a key.
    #[error("could not generate a {key_type} key: the crypto backend failed; retry")]
    Generation {
        /// The type of key asked for.
        key_type: KeyType,
    },
    /// The crypto backend could not serialise a key.
    #[error("could not export the {key_type} key: the crypto backend failed; retry")]
    Export {
        /// The key's type.
        key_type: KeyType,
    },
}

impl KeyError {
    /// [`ErrorKind::Key`], but [`ErrorKind::Internal`] for a crypto backend that failed to
    /// generate or export a key.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KeyError::Generation { .. } | KeyError::Export { .. } => ErrorKind::Internal,
            _ => ErrorKind::Key,
        }
    }
}

/// A client assertion (or a signed request body) that could not be signed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The clock reads a time that cannot be put into `iat`/`exp`.
    #[error(
        "the clock reads a time before 1970 (or too far ahead) to stamp an assertion; fix the \
         system clock or the injected Clock"
    )]
    ClockOutOfRange,
    /// Signing failed in the crypto backend or the system random source.
    #[error(
        "could not sign with {algorithm}: the crypto backend or the system's random source \
         failed; retry, and report it if it persists"
    )]
    Failed {
        /// The algorithm used.
        algorithm: Algorithm,
    },
    /// A payload to sign that cannot be serialised as JSON claims.
    #[error("the payload to sign is not a JSON object; pass an object of claims")]
    Payload,
}

impl SignError {
    /// [`ErrorKind::Configuration`] for a clock out of range or a bad payload,
    /// [`ErrorKind::Internal`] for a backend failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SignError::ClockOutOfRange | SignError::Payload => ErrorKind::Configuration,
            SignError::Failed { .. } => ErrorKind::Internal,
        }
    }
}
