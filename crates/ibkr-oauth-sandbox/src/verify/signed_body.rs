//! The Signed JWT security policy: the request body is a compact JWS (`application/jwt`) whose
//! payload is the operation's JSON object, signed with a key registered for the client that
//! holds the bearer token.
//!
//! IBKR's document gives the body's schema (`SignedJwtEchoRequest`: `iss`) and its content
//! type, not the checks. The sandbox checks what a verifier of such a body must: a registered
//! `kid` of the token's client, the algorithm bound to it, the signature, `iss` = the client
//! id, and `exp`, `iat`, `nbf` against its clock when they are present.

use serde_json::{Map, Value};

use super::{check_nbf, check_not_future, jws, quote};
use crate::config::Config;
use crate::protocol::{JWT_CONTENT_TYPE, has_media_type};

/// Why a signed body is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyRefusal {
    /// Not `application/jwt`: 415.
    MediaType(String),
    /// Not a valid signed body: 400.
    Invalid(String),
}

/// Checks a Signed JWT body sent with the access token of `client_id`, at sandbox time `now`;
/// returns its claims.
pub(crate) fn check(
    config: &Config,
    now: i64,
    client_id: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, BodyRefusal> {
    match content_type {
        None => {
            return Err(BodyRefusal::MediaType(format!(
                "content-type: missing; expected {JWT_CONTENT_TYPE}"
            )));
        }
        Some(value) if !has_media_type(value, JWT_CONTENT_TYPE) => {
            return Err(BodyRefusal::MediaType(format!(
                "content-type: {} is not {JWT_CONTENT_TYPE}",
                quote(value)
            )));
        }
        Some(_) => {}
    }
    let refuse = |what: String| BodyRefusal::Invalid(format!("signed body: {what}"));
    let token = std::str::from_utf8(body)
        .map_err(|_| refuse("not valid UTF-8".into()))?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    if token.is_empty() {
        return Err(refuse("empty; expected a compact JWS".into()));
    }
    let verified = jws::verify(config, token, Some(client_id)).map_err(refuse)?;
    if verified.key.client_id != client_id {
        return Err(refuse(format!(
            "kid {} is registered for another client, not for the token's client {}",
            quote(&verified.kid),
            quote(client_id)
        )));
    }
    let claims = verified.claims;
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == client_id => {}
        Some(Value::String(iss)) => {
            return Err(refuse(format!(
                "iss {} is not the token's client id {}",
                quote(iss),
                quote(client_id)
            )));
        }
        _ => return Err(refuse("iss missing or not a string".into())),
    }
    if claims.contains_key("exp") {
        let exp = jws::numeric_date(&claims, "exp")
            .ok_or_else(|| refuse("exp is not a number".into()))?;
        if exp <= now {
            return Err(refuse(format!(
                "exp {exp} is in the past (sandbox time {now})"
            )));
        }
    }
    if claims.contains_key("iat") {
        let iat = jws::numeric_date(&claims, "iat")
            .ok_or_else(|| refuse("iat is not a number".into()))?;
        check_not_future("iat", iat, now, config.iat_tolerance_secs).map_err(refuse)?;
    }
    check_nbf(&claims, now, config.iat_tolerance_secs).map_err(refuse)?;
    Ok(claims)
}
