//! The shared session's entry: the SSO token sealed with AES-256-GCM under the fleet's key (the
//! same [`EncryptionKey`] and handling as the access token's entry).
//!
//! Layout: 1 byte format (`0x53`, "S") · 8 bytes key id · 12 bytes nonce · ciphertext and tag
//! of the JSON payload (the token, the username, the fencing token of the owner that wrote it,
//! the session's state as the owner saw it, when it was written). The associated data is the
//! entry's Redis key name and the first 9 bytes, so an entry copied under another username's
//! name fails to open.

use aws_lc_rs::aead::NONCE_LEN;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::entry::{FINGERPRINT_LEN, fingerprint};
use crate::key::{EncryptionKey, KEY_ID_LEN, hex};

const FORMAT: u8 = 0x53;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const CIPHERTEXT_AT: usize = HEADER_LEN + NONCE_LEN;

/// An SSO session as the owner publishes it (`Debug` redacts the token: `SecretString`).
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) token: SecretString,
    pub(crate) username: String,
    /// The fencing token of the owner that wrote it.
    pub(crate) fence: u64,
    /// The session's state (`SessionState`'s display text) and whether it was stale.
    pub(crate) state: String,
    pub(crate) stale: bool,
    /// When it was written (Unix ms, the owner's clock).
    pub(crate) written_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    #[serde(rename = "t", borrow)]
    token: std::borrow::Cow<'a, str>,
    #[serde(rename = "u")]
    username: String,
    #[serde(rename = "f")]
    fence: u64,
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "st")]
    stale: bool,
    #[serde(rename = "w")]
    written_ms: u64,
}

/// Seals `published` for the Redis key `name`.
pub(crate) fn seal(key: &EncryptionKey, name: &str, published: &Published) -> Option<Vec<u8>> {
    let payload = Payload {
        token: std::borrow::Cow::Borrowed(published.token.expose_secret()),
        username: published.username.clone(),
        fence: published.fence,
        state: published.state.clone(),
        stale: published.stale,
        written_ms: published.written_ms,
    };
    let plaintext = Zeroizing::new(serde_json::to_vec(&payload).ok()?);
    let mut header = Vec::with_capacity(CIPHERTEXT_AT + plaintext.len() + 16);
    header.push(FORMAT);
    header.extend_from_slice(&key.id);
    key.seal_after(name, header, plaintext)
}

/// Opens an entry read from the Redis key `name`; `Err` says why it cannot be read (never
/// quoting the value).
pub(crate) fn open(key: &EncryptionKey, name: &str, value: &[u8]) -> Result<Published, String> {
    let (Some(header), Some(sealed), true) = (
        value.get(..HEADER_LEN),
        value.get(HEADER_LEN..),
        value.len() >= CIPHERTEXT_AT,
    ) else {
        return Err("the entry is too short to be one".into());
    };
    if header[0] != FORMAT {
        return Err(format!("the entry has the unknown format {}", header[0]));
    }
    let Some(plain) = key.open_after(name, header, sealed) else {
        let id = &header[1..];
        return Err(if id == key.id {
            "the entry does not authenticate under this process's key (damaged or forged)".into()
        } else {
            format!(
                "the entry was sealed under another encryption key (key id {}); every process \
                 of the fleet must use the same key",
                hex(id)
            )
        });
    };
    let payload: Payload<'_> = serde_json::from_slice(&plain)
        .map_err(|_| "the entry's payload is not in the expected form".to_owned())?;
    Ok(Published {
        token: SecretString::from(payload.token.into_owned()),
        username: payload.username,
        fence: payload.fence,
        state: payload.state,
        stale: payload.stale,
        written_ms: payload.written_ms,
    })
}

/// The fingerprint of an SSO token (for the refusal report: never the token itself).
pub(crate) fn token_fingerprint(
    key: &EncryptionKey,
    token: &SecretString,
) -> [u8; FINGERPRINT_LEN] {
    fingerprint(key, token.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published() -> Published {
        Published {
            token: SecretString::from("SSO-SECRET".to_owned()),
            username: "alice".into(),
            fence: 7,
            state: "brokerage".into(),
            stale: false,
            written_ms: 1,
        }
    }

    #[test]
    fn round_trip_and_nothing_in_clear() {
        let key = EncryptionKey::from_bytes(&[1; 32]).unwrap();
        let sealed = seal(&key, "n:entry", &published()).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("SSO-SECRET"));
        let opened = open(&key, "n:entry", &sealed).unwrap();
        assert_eq!(opened.token.expose_secret(), "SSO-SECRET");
        assert_eq!((opened.fence, opened.username.as_str()), (7, "alice"));
    }

    #[test]
    fn another_key_name_or_damage_is_refused() {
        let key = EncryptionKey::from_bytes(&[1; 32]).unwrap();
        let sealed = seal(&key, "n:entry", &published()).unwrap();
        let other = EncryptionKey::from_bytes(&[2; 32]).unwrap();
        assert!(
            open(&other, "n:entry", &sealed)
                .unwrap_err()
                .contains("another encryption key")
        );
        assert!(
            open(&key, "m:entry", &sealed)
                .unwrap_err()
                .contains("damaged")
        );
        assert!(open(&key, "n:entry", &sealed[..5]).is_err());
        let mut token_entry = sealed.clone();
        token_entry[0] = 2; // an access token entry's format
        assert!(
            open(&key, "n:entry", &token_entry)
                .unwrap_err()
                .contains("format")
        );
    }
}
