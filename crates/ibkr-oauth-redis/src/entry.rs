//! The entry stored in Redis: the token sealed with AES-256-GCM, and what stands beside it.
//!
//! Layout of the value (one Redis string, binary):
//!
//! | bytes | what |
//! |---|---|
//! | 1 | format version (2) |
//! | 8 | key id (which key sealed it; not secret) |
//! | 32 | fingerprint: HMAC-SHA256 of the access token under a derived key |
//! | 12 | nonce (random per write) |
//! | rest | ciphertext and tag of the JSON payload (token, type, scope, lifetime; the client id
//! and scope set asked for; when it was issued and when it expires, Unix milliseconds) |
//!
//! The associated data is the entry's Redis key name followed by the first 41 bytes, so that an
//! entry copied under another name, or with another fingerprint, fails to open. The expiry a
//! reader trusts is the sealed one (Redis's TTL, which anyone who can write to Redis can set,
//! can only shorten it), and the sealed issue time lets a reader refuse an entry older than one
//! it has seen (a replay). Version 1 entries had neither: they count as missing and are
//! replaced.

use std::time::Duration;

use aws_lc_rs::aead::NONCE_LEN;
use aws_lc_rs::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::key::{EncryptionKey, KEY_ID_LEN, hex};

const VERSION: u8 = 2;
pub(crate) const FINGERPRINT_LEN: usize = 32;
/// Where the fingerprint starts (0-based); the invalidate script reads it at the same place.
pub(crate) const FINGERPRINT_AT: usize = 1 + KEY_ID_LEN;
const HEADER_LEN: usize = FINGERPRINT_AT + FINGERPRINT_LEN;
const NONCE_AT: usize = HEADER_LEN;
const CIPHERTEXT_AT: usize = NONCE_AT + NONCE_LEN;

/// A token as the fleet shares it.
pub(crate) struct Plain {
    pub(crate) access_token: SecretString,
    pub(crate) token_type: Option<String>,
    pub(crate) scope: Option<String>,
    /// The lifetime the server granted (for the refresh margin, which is a fraction of it).
    pub(crate) lifetime: Duration,
    /// What the writer asked for: the entry is for it only.
    pub(crate) binding: Binding,
    /// When the writer stored it (Unix ms; never below anything the writer had seen).
    pub(crate) issued_ms: u64,
    /// When the token expires (Unix ms, the writer's clock).
    pub(crate) expires_ms: u64,
}

/// The client id and the normalised scope set a token was asked for (`None` when the source
/// was built without a [`TokenIdentity`](crate::TokenIdentity)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) client_id: Option<String>,
    pub(crate) scope_set: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    #[serde(rename = "t", borrow)]
    access_token: std::borrow::Cow<'a, str>,
    #[serde(rename = "ty", default, skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(rename = "sc", default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(rename = "l")]
    lifetime_ms: u64,
    #[serde(rename = "cid", default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(rename = "rsc", default, skip_serializing_if = "Option::is_none")]
    scope_set: Option<String>,
    #[serde(rename = "iat")]
    issued_ms: u64,
    #[serde(rename = "exp")]
    expires_ms: u64,
}

/// Why an entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Written by a newer (or unknown) format.
    Version(u8),
    /// Written by an older format, without a sealed expiry and issue time: replaceable.
    Old(u8),
    /// Too short to be an entry.
    Truncated,
    /// Sealed under another key (its id).
    OtherKey(String),
    /// Our key id, but it does not authenticate: damaged or forged.
    Forged,
    /// Authenticates but the payload is not what this version writes.
    Payload,
    /// Authenticates, but was asked for by another client id or scope set than this
    /// process's.
    OtherRequest,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Version(v) => write!(f, "the entry has format version {v}, unknown here"),
            Unreadable::Old(v) => write!(f, "the entry has the older format version {v}"),
            Unreadable::Truncated => f.write_str("the entry is too short to be one"),
            Unreadable::OtherKey(id) => write!(
                f,
                "the entry was sealed under another encryption key (key id {id}); every process \
                 of the fleet must use the same key"
            ),
            Unreadable::Forged => f.write_str(
                "the entry does not authenticate under this process's key (damaged or forged)",
            ),
            Unreadable::Payload => f.write_str("the entry's payload is not in the expected form"),
            Unreadable::OtherRequest => f.write_str(
                "the entry holds a token asked for by another client id or scope set than this \
                 process's; give each a cache name of its own (TokenIdentity::cache_name)",
            ),
        }
    }
}

/// The fingerprint of an access token: what `invalidate` compares inside Redis.
pub(crate) fn fingerprint(key: &EncryptionKey, access_token: &str) -> [u8; FINGERPRINT_LEN] {
    let tag = hmac::sign(&key.fingerprint, access_token.as_bytes());
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Seals `plain` for the Redis key `name`.
pub(crate) fn seal(key: &EncryptionKey, name: &str, plain: &Plain) -> Result<Vec<u8>, ()> {
    let payload = Payload {
        access_token: std::borrow::Cow::Borrowed(plain.access_token.expose_secret()),
        token_type: plain.token_type.clone(),
        scope: plain.scope.clone(),
        lifetime_ms: u64::try_from(plain.lifetime.as_millis()).unwrap_or(u64::MAX),
        client_id: plain.binding.client_id.clone(),
        scope_set: plain.binding.scope_set.clone(),
        issued_ms: plain.issued_ms,
        expires_ms: plain.expires_ms,
    };
    let plaintext = Zeroizing::new(serde_json::to_vec(&payload).map_err(|_| ())?);
    let mut header = Vec::with_capacity(CIPHERTEXT_AT + plaintext.len() + 16);
    header.push(VERSION);
    header.extend_from_slice(&key.id);
    header.extend_from_slice(&fingerprint(key, plain.access_token.expose_secret()));
    key.seal_after(name, header, plaintext).ok_or(())
}

/// Opens an entry read from the Redis key `name`.
pub(crate) fn open(key: &EncryptionKey, name: &str, value: &[u8]) -> Result<Plain, Unreadable> {
    let Some(&version) = value.first() else {
        return Err(Unreadable::Truncated);
    };
    if version < VERSION {
        return Err(Unreadable::Old(version));
    }
    if version != VERSION {
        return Err(Unreadable::Version(version));
    }
    let (Some(header), Some(sealed), true) = (
        value.get(..HEADER_LEN),
        value.get(NONCE_AT..),
        value.len() >= CIPHERTEXT_AT,
    ) else {
        return Err(Unreadable::Truncated);
    };
    let key_id = header.get(1..FINGERPRINT_AT).unwrap_or_default();
    let Some(plaintext) = key.open_after(name, header, sealed) else {
        return Err(if key_id == key.id {
            Unreadable::Forged
        } else {
            Unreadable::OtherKey(hex(key_id))
        });
    };
    let payload: Payload<'_> =
        serde_json::from_slice(&plaintext).map_err(|_| Unreadable::Payload)?;
    let plain = Plain {
        access_token: SecretString::from(payload.access_token.into_owned()),
        token_type: payload.token_type,
        scope: payload.scope,
        lifetime: Duration::from_millis(payload.lifetime_ms),
        binding: Binding {
            client_id: payload.client_id,
            scope_set: payload.scope_set,
        },
        issued_ms: payload.issued_ms,
        expires_ms: payload.expires_ms,
    };
    // A sealed entry carries the fingerprint of its token; check it, so that the value the
    // invalidate script compares is the one of the token inside.
    if header.get(FINGERPRINT_AT..HEADER_LEN)
        != Some(&fingerprint(key, plain.access_token.expose_secret())[..])
    {
        return Err(Unreadable::Payload);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(&[byte; 32]).unwrap()
    }

    fn plain(token: &str) -> Plain {
        Plain {
            access_token: SecretString::from(token.to_owned()),
            token_type: Some("Bearer".into()),
            scope: Some("sso-sessions.write".into()),
            lifetime: Duration::from_secs(86399),
            binding: Binding {
                client_id: Some("c".into()),
                scope_set: Some("sso-sessions.write".into()),
            },
            issued_ms: 1_000,
            expires_ms: 86_400_000,
        }
    }

    #[test]
    fn round_trip() {
        let k = key(1);
        let sealed = seal(&k, "ibkr-oauth:c:token", &plain("SECRET-TOKEN")).unwrap();
        let opened = open(&k, "ibkr-oauth:c:token", &sealed).unwrap();
        assert_eq!(opened.access_token.expose_secret(), "SECRET-TOKEN");
        assert_eq!(opened.token_type.as_deref(), Some("Bearer"));
        assert_eq!(opened.scope.as_deref(), Some("sso-sessions.write"));
        assert_eq!(opened.lifetime, Duration::from_secs(86399));
        assert_eq!(opened.binding, plain("x").binding);
        assert_eq!((opened.issued_ms, opened.expires_ms), (1_000, 86_400_000));
    }

    #[test]
    fn nothing_in_clear_and_fresh_nonce_per_write() {
        let k = key(1);
        let a = seal(&k, "n", &plain("SECRET-TOKEN")).unwrap();
        let b = seal(&k, "n", &plain("SECRET-TOKEN")).unwrap();
        assert_ne!(a, b);
        for sealed in [&a, &b] {
            let text = String::from_utf8_lossy(sealed);
            assert!(!text.contains("SECRET"), "{text}");
            assert!(!text.contains("Bearer"), "{text}");
            assert!(!text.contains("sso-sessions"), "{text}");
        }
        // The fingerprint sits where the invalidate script looks for it.
        assert_eq!(
            &a[FINGERPRINT_AT..FINGERPRINT_AT + FINGERPRINT_LEN],
            &fingerprint(&k, "SECRET-TOKEN")[..]
        );
    }

    #[test]
    fn another_key_is_told_apart_from_forgery() {
        let sealed = seal(&key(1), "n", &plain("t")).unwrap();
        assert_eq!(
            open(&key(2), "n", &sealed).err(),
            Some(Unreadable::OtherKey(key(1).id()))
        );
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert_eq!(open(&key(1), "n", &flipped).err(), Some(Unreadable::Forged));
        // Moved to another name: the associated data differs.
        assert_eq!(
            open(&key(1), "other", &sealed).err(),
            Some(Unreadable::Forged)
        );
        // Another fingerprint beside the same ciphertext.
        let mut refingered = sealed.clone();
        refingered[FINGERPRINT_AT] ^= 1;
        assert_eq!(
            open(&key(1), "n", &refingered).err(),
            Some(Unreadable::Forged)
        );
    }

    #[test]
    fn short_or_unknown_values() {
        let k = key(1);
        assert_eq!(open(&k, "n", b"").err(), Some(Unreadable::Truncated));
        assert_eq!(open(&k, "n", &[2, 2, 3]).err(), Some(Unreadable::Truncated));
        assert_eq!(open(&k, "n", &[9; 80]).err(), Some(Unreadable::Version(9)));
        assert_eq!(open(&k, "n", &[1; 80]).err(), Some(Unreadable::Old(1)));
    }
}
