//! Compact JWS: splitting and peeking, and verifying a signature with a registered key.
//!
//! Used for both JWSs a client signs: the token request's client assertion and the body of a
//! Signed JWT call. When a signature does not verify with the key its `kid` names, the other
//! keys of the client are tried, so that a refusal can tell a wrong `kid` (signed by a key
//! registered under another kid) from a key that is not registered at all.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{TokenData, Validation};
use serde_json::{Map, Value};

use super::quote;
use crate::config::{Config, KeyEntry};

/// The three parts of a compact JWS, if it has exactly three.
pub(crate) fn split_jws(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s), None) => Some((h, c, s)),
        _ => None,
    }
}

pub(crate) fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A JWS's header and claims, decoded without any check, for the request log.
pub(crate) fn peek(token: &str) -> (Option<Value>, Option<Value>) {
    match split_jws(token) {
        Some((header, claims, _)) => (
            decode_object(header).map(Value::Object),
            decode_object(claims).map(Value::Object),
        ),
        None => (None, None),
    }
}

/// A string member of a peeked JSON object.
pub(crate) fn member<'v>(object: Option<&'v Value>, name: &str) -> Option<&'v str> {
    object?.get(name)?.as_str()
}

/// A NumericDate claim (RFC 7519: seconds, possibly fractional) as whole seconds.
pub(crate) fn numeric_date(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    // `as` saturates for out-of-range floats, which is what a time comparison wants.
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f.floor() as i64))
}

/// A JWS whose signature verified with the registered key its `kid` names.
pub(crate) struct Verified<'c> {
    pub(crate) kid: String,
    pub(crate) key: &'c KeyEntry,
    pub(crate) claims: Map<String, Value>,
}

/// Checks the structure, the `kid`, the algorithm bound to its key and the signature; the
/// claims are left to the caller. With `diagnose_for` (the bearer token's client), a refusal
/// for an unknown `kid` or a signature that does not verify also names the kid of that
/// client's key the signature does verify with, if any. A refusal is the `detail` without its
/// prefix (`client_assertion: ` or `signed body: `).
pub(crate) fn verify<'c>(
    config: &'c Config,
    token: &str,
    diagnose_for: Option<&str>,
) -> Result<Verified<'c>, String> {
    let Some((header_part, claims_part, _)) = split_jws(token) else {
        return Err("not a compact JWS (expected three base64url parts separated by dots)".into());
    };
    let header =
        decode_object(header_part).ok_or("header is not a base64url-encoded JSON object")?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err("header has no \"alg\" string".into()),
    };
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => kid.as_str(),
        _ => return Err("header has no \"kid\" string".into()),
    };
    let Some(key) = config.keys.get(kid) else {
        let mut detail = format!("unknown kid {}", quote(kid));
        if let Some(other) =
            diagnose_for.and_then(|c| signed_by_another_key(config, c, alg, token, kid))
        {
            detail.push_str(&format!(
                "; the signature verifies with the key registered as kid {}",
                quote(other)
            ));
        }
        return Err(detail);
    };
    if alg != key.algorithm.as_str() {
        return Err(format!(
            "alg {} is not allowed for kid {} (registered for {})",
            quote(alg),
            quote(kid),
            key.algorithm
        ));
    }
    if decode_object(claims_part).is_none() {
        return Err("claims are not a base64url-encoded JSON object".into());
    }

    // Signature only: every time check runs against the sandbox's clock, not the library's
    // wall clock, so the validation of jsonwebtoken is switched off.
    let mut validation = Validation::new(key.algorithm.jwt());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    crate::crypto::ensure_provider();
    match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
        Ok(TokenData { claims, .. }) => Ok(Verified {
            kid: kid.to_owned(),
            key,
            claims,
        }),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => {
                let mut detail = format!(
                    "signature does not verify with the public key of kid {}",
                    quote(kid)
                );
                if let Some(other) = diagnose_for
                    .filter(|client| *client == key.client_id)
                    .and_then(|client| signed_by_another_key(config, client, alg, token, kid))
                {
                    detail.push_str(&format!(
                        "; it verifies with the key registered as kid {}",
                        quote(other)
                    ));
                }
                detail
            }
            ErrorKind::Base64(_) => "signature is not base64url".into(),
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => "header is not a valid JOSE header".into(),
            other => format!("could not be verified ({other:?})"),
        }),
    }
}

/// The kid of another key of `client`, bound to `alg`, whose signature `token` carries: the
/// diagnosis of a wrong `kid`. The smallest such kid, so that the answer does not depend on
/// the order of a hash map.
fn signed_by_another_key<'c>(
    config: &'c Config,
    client: &str,
    alg: &str,
    token: &str,
    except_kid: &str,
) -> Option<&'c str> {
    let (header, claims, signature) = split_jws(token)?;
    let message = format!("{header}.{claims}");
    crate::crypto::ensure_provider();
    config
        .keys
        .iter()
        .filter(|(kid, key)| {
            kid.as_str() != except_kid && key.client_id == client && key.algorithm.as_str() == alg
        })
        .filter(|(_, key)| {
            jsonwebtoken::crypto::verify(
                signature,
                message.as_bytes(),
                &key.key,
                key.algorithm.jwt(),
            )
            .unwrap_or(false)
        })
        .map(|(kid, _)| kid.as_str())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_peek_never_panic_on_junk() {
        for junk in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "%%%.%%%.%%%",
            "eyJ9.e30.",
            "é.é.é",
        ] {
            let _ = peek(junk);
        }
        assert_eq!(split_jws("a.b.c"), Some(("a", "b", "c")));
        assert_eq!(split_jws("a.b.c.d"), None);
        assert_eq!(split_jws("a.b"), None);
    }

    #[test]
    fn numeric_dates_floor_and_saturate() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"a":10,"b":10.9,"c":1e300,"d":"x"}"#).unwrap();
        assert_eq!(numeric_date(&claims, "a"), Some(10));
        assert_eq!(numeric_date(&claims, "b"), Some(10));
        assert_eq!(numeric_date(&claims, "c"), Some(i64::MAX));
        assert_eq!(numeric_date(&claims, "d"), None);
        assert_eq!(numeric_date(&claims, "e"), None);
    }
}
