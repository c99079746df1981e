//! Helpers shared by the `assertion_*` tests: fixtures, a pinned clock and an independent
//! verifier (jsonwebtoken with its RustCrypto backend, not the aws-lc-rs that signs).

#![allow(dead_code)] // each test file uses a part

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ibkr_oauth::Algorithm;
use ibkr_oauth::clock::Clock;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

pub const PASSPHRASE: &str = "test-passphrase";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture exists")
}

/// A clock that always reads the same instant.
#[derive(Debug)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// Now, truncated to whole seconds, so `iat`/`exp` are exactly predictable.
pub fn now_whole_seconds() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// The claims as the independent verifier reads them back (unknown members refused, so an
/// unexpected claim fails the test).
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default)]
    pub nbf: Option<u64>,
    pub jti: String,
}

pub fn jwt_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        other => panic!("no verifier mapping for {other}"),
    }
}

/// The verifier's key for a PEM public key (SubjectPublicKeyInfo).
pub fn decoding_key(alg: Algorithm, public_pem: &str) -> DecodingKey {
    let pem = public_pem.as_bytes();
    match alg {
        Algorithm::RS256 | Algorithm::PS256 => DecodingKey::from_rsa_pem(pem),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        other => panic!("no verifier mapping for {other}"),
    }
    .expect("verifier reads the public key")
}

/// What a server does: pick the key by `kid`, check `alg`, signature, `aud`, `iss`, `sub`,
/// `exp` (no leeway) and return the header and claims.
pub fn verify(
    token: &str,
    alg: Algorithm,
    keys: &[(&str, DecodingKey)],
    client_id: &str,
    audience: &str,
) -> Result<(jsonwebtoken::Header, Claims), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.clone().ok_or("no kid")?;
    let key = keys
        .iter()
        .find(|(k, _)| *k == kid)
        .map(|(_, key)| key)
        .ok_or_else(|| format!("unknown kid {kid}"))?;
    let mut validation = Validation::new(jwt_algorithm(alg));
    validation.leeway = 0;
    validation.set_audience(&[audience]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| e.to_string())?;
    Ok((data.header, data.claims))
}
