//! The deployment's encryption key and the keys derived from it.
//!
//! One 32-byte secret is given; HKDF-SHA256 derives from it, each under its own label, the
//! AES-256-GCM key that seals the entry, the HMAC-SHA256 key that fingerprints a token (so that
//! `invalidate` can compare tokens inside Redis without the token in clear), and a short key id
//! that tells "another key" from "a damaged entry" in the logs.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::Error;

/// The length of the key the deployment provides.
pub const KEY_LEN: usize = 32;
/// The length of the key id stored in each entry.
pub(crate) const KEY_ID_LEN: usize = 8;

/// HKDF's salt: fixed, so that every process of the fleet derives the same keys.
const SALT: &[u8] = b"ibkr-oauth-redis v1";
const AEAD_LABEL: &[u8] = b"entry aead";
const FINGERPRINT_LABEL: &[u8] = b"token fingerprint";
const KEY_ID_LABEL: &[u8] = b"key id";

/// The 32-byte secret that encrypts and authenticates the entry in Redis (AES-256-GCM).
///
/// Every process of the fleet must have the same one; provide it the way you provide other
/// secrets (a secret manager, an environment variable), never through Redis. Make one with
/// `openssl rand -base64 32` or [`EncryptionKey::generate_base64`].
///
/// `Debug` shows only the key id, a value derived one-way from the key that the logs use to
/// say that an entry was written under another key.
pub struct EncryptionKey {
    pub(crate) aead: LessSafeKey,
    pub(crate) fingerprint: hmac::Key,
    pub(crate) id: [u8; KEY_ID_LEN],
}

impl EncryptionKey {
    /// The key from its 32 raw bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != KEY_LEN {
            return Err(Error::InvalidKey(format!(
                "the key is {} bytes long; it must be exactly {KEY_LEN}",
                bytes.len()
            )));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(bytes);
        let mut aead = Zeroizing::new([0u8; KEY_LEN]);
        let mut fingerprint = Zeroizing::new([0u8; KEY_LEN]);
        let mut id = [0u8; KEY_ID_LEN];
        expand(&prk, AEAD_LABEL, &mut aead[..])?;
        expand(&prk, FINGERPRINT_LABEL, &mut fingerprint[..])?;
        expand(&prk, KEY_ID_LABEL, &mut id)?;
        let aead = UnboundKey::new(&AES_256_GCM, &aead[..])
            .map_err(|_| Error::InvalidKey("the AEAD key was refused by aws-lc".into()))?;
        Ok(Self {
            aead: LessSafeKey::new(aead),
            fingerprint: hmac::Key::new(hmac::HMAC_SHA256, &fingerprint[..]),
            id,
        })
    }

    /// The key from base64 (standard or URL-safe alphabet, padded or not) of 32 bytes, as
    /// `openssl rand -base64 32` prints it.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the text is not base64 of exactly 32 bytes (the message never
    /// quotes the text).
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let decoded = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| Error::InvalidKey("the key is not valid base64".into()))?;
        Self::from_bytes(&decoded)
    }

    /// The key from an environment variable holding its base64 (see
    /// [`from_base64`](Self::from_base64)).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the variable is unset, not Unicode, or not a valid key.
    pub fn from_env(var: &str) -> Result<Self, Error> {
        let value = Zeroizing::new(std::env::var(var).map_err(|e| {
            Error::InvalidKey(format!(
                "environment variable {var}: {e}; set it to the base64 of 32 random bytes"
            ))
        })?);
        Self::from_base64(&value)
    }

    /// A new random key, as base64 (what [`from_base64`](Self::from_base64) reads): for
    /// tests, or to make the deployment's key once.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the system's random generator fails.
    pub fn generate_base64() -> Result<Zeroizing<String>, Error> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(&mut bytes[..])
            .map_err(|_| Error::InvalidKey("the system random generator failed".into()))?;
        Ok(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(&bytes[..]),
        ))
    }

    /// The key id: 8 bytes derived one-way from the key, in hex. Equal ids mean (almost
    /// certainly) equal keys; the id reveals nothing about the key.
    pub fn id(&self) -> String {
        hex(&self.id)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// Appends a fresh nonce and `plaintext` sealed with AES-256-GCM to `header`. The associated
    /// data is the Redis key `name` and `header`, so an entry copied under another name, or with
    /// another header, does not open. `None` when the random source or the cipher fails.
    pub(crate) fn seal_after(
        &self,
        name: &str,
        mut header: Vec<u8>,
        mut plaintext: Zeroizing<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let aad = associated_data(name, &header);
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut *plaintext,
            )
            .ok()?;
        header.extend_from_slice(&nonce);
        header.extend_from_slice(&plaintext);
        Some(header)
    }

    /// Opens what [`seal_after`](Self::seal_after) appended to `header` (`sealed`: the nonce,
    /// then the ciphertext and tag). `None` when it is too short or does not authenticate.
    pub(crate) fn open_after(
        &self,
        name: &str,
        header: &[u8],
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = Nonce::try_assume_unique_for_key(sealed.get(..NONCE_LEN)?).ok()?;
        let mut buffer = Zeroizing::new(sealed.get(NONCE_LEN..)?.to_vec());
        let len = self
            .aead
            .open_in_place(
                nonce,
                Aad::from(associated_data(name, header)),
                &mut buffer[..],
            )
            .ok()?
            .len();
        buffer.truncate(len);
        Some(buffer)
    }
}

/// The associated data of an entry: its Redis key name, a 0 byte, its header.
fn associated_data(name: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(name.len() + 1 + header.len());
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

fn expand(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Result<(), Error> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let info = [label];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| Error::InvalidKey("deriving a key with HKDF failed".into()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_checked() {
        assert!(matches!(
            EncryptionKey::from_bytes(&[0; 31]),
            Err(Error::InvalidKey(_))
        ));
        assert!(EncryptionKey::from_bytes(&[0; 32]).is_ok());
    }

    #[test]
    fn base64_round_trip_and_ids() {
        let text = EncryptionKey::generate_base64().unwrap();
        let a = EncryptionKey::from_base64(&text).unwrap();
        let b = EncryptionKey::from_base64(&format!(" {}\n", &*text)).unwrap();
        assert_eq!(a.id(), b.id());
        let other = EncryptionKey::from_bytes(&[7; 32]).unwrap();
        assert_ne!(a.id(), other.id());
        assert_eq!(a.id().len(), 16);
    }

    #[test]
    fn bad_base64_never_quoted() {
        let err = EncryptionKey::from_base64("SECRET-not-base64!!").unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let err = EncryptionKey::from_base64("c2hvcnQ=").unwrap_err();
        assert!(err.to_string().contains("5 bytes"), "{err}");
    }

    #[test]
    fn debug_shows_only_the_id() {
        let key = EncryptionKey::from_bytes(&[1; 32]).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.id()), "{debug}");
        assert!(!debug.contains("[1, 1"), "{debug}");
    }
}
