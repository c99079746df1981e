//! The compact JWS (RFC 7515): header, claims, signature, each base64url without padding.
//!
//! Built by hand over the parsed key pair: a JWT library would re-parse the key on every call,
//! which costs more than the signature itself.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use zeroize::Zeroizing;

use super::ClientAssertion;
use super::key::KeyPair;
use crate::algorithm::Algorithm;
use crate::error::SignError;

/// The JOSE header: the same for every assertion of a signer, so it is encoded once.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// The RFC 7523 claims of one assertion.
#[derive(Serialize)]
pub(crate) struct Claims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) sub: &'a str,
    pub(crate) aud: &'a str,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nbf: Option<u64>,
    pub(crate) jti: &'a str,
}

/// The encoded header segment for `alg` and `kid`.
pub(crate) fn header_segment(algorithm: Algorithm, kid: &str) -> Result<String, SignError> {
    let json = serde_json::to_vec(&Header {
        alg: algorithm.as_str(),
        typ: "JWT",
        kid,
    })
    .map_err(|_| SignError::Failed { algorithm })?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// A fresh random `jti`: 128 bits from the system's CSPRNG, base64url (22 characters).
pub(crate) fn random_jti(algorithm: Algorithm) -> Result<String, SignError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SignError::Failed { algorithm })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Signs `header.claims` and returns the compact JWS.
pub(crate) fn sign(
    pair: &KeyPair,
    algorithm: Algorithm,
    rng: &SystemRandom,
    header: &str,
    claims: &impl serde::Serialize,
) -> Result<ClientAssertion, SignError> {
    let failed = |_| SignError::Failed { algorithm };
    let claims =
        Zeroizing::new(serde_json::to_vec(claims).map_err(|_| SignError::Failed { algorithm })?);
    let signature_len = match pair {
        KeyPair::Rsa(pair) => pair.public_modulus_len(),
        KeyPair::EcP256(_) | KeyPair::Ed25519(_) => 64,
    };
    // Sized exactly, so the finished assertion is never reallocated (and never copied unwiped).
    let mut jws = String::with_capacity(
        header.len() + 2 + encoded_len(claims.len()) + encoded_len(signature_len),
    );
    jws.push_str(header);
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(claims.as_slice(), &mut jws);
    let message = jws.as_bytes();
    match (pair, algorithm) {
        (KeyPair::Rsa(pair), Algorithm::RS256 | Algorithm::PS256) => {
            let padding = if algorithm == Algorithm::PS256 {
                &RSA_PSS_SHA256 as &'static dyn aws_lc_rs::signature::RsaEncoding
            } else {
                &RSA_PKCS1_SHA256
            };
            let mut signature = vec![0u8; signature_len];
            pair.sign(padding, rng, message, &mut signature)
                .map_err(failed)?;
            push_segment(&mut jws, &signature);
        }
        (KeyPair::EcP256(pair), Algorithm::ES256) => {
            let signature = pair.sign(rng, message).map_err(failed)?;
            push_segment(&mut jws, signature.as_ref());
        }
        (KeyPair::Ed25519(pair), Algorithm::EdDSA) => {
            let signature = pair.try_sign(message).map_err(failed)?;
            push_segment(&mut jws, signature.as_ref());
        }
        // The builder refuses a key that does not fit the algorithm; this stays an error, not
        // a panic, should that ever change.
        _ => return Err(SignError::Failed { algorithm }),
    }
    Ok(ClientAssertion::new(jws))
}

fn push_segment(jws: &mut String, signature: &[u8]) {
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, jws);
}

/// The length of `n` bytes in base64 without padding.
const fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + (n % 3 * 4).div_ceil(3)
}

#[cfg(test)]
mod tests;
