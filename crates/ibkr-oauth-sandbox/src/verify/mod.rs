//! The checks IBKR makes, as pure functions of the request and the time: the token request
//! here; the bearer token and the Signed JWT body of an API call in their own modules.
//!
//! Every refusal is a `Refusal` whose text becomes the problem's `detail`: it names the field,
//! then the check that failed. The order is the order a reader of the request would check:
//! transport (content type), form, assertion structure, key, signature, claims, scope policy.
//! Replay is checked by the caller, atomically with recording the `jti`.

pub(crate) mod bearer;
pub(crate) mod form;
pub(crate) mod jws;
pub(crate) mod signed_body;
pub(crate) mod sso_body;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::protocol::{
    CLIENT_ASSERTION_TYPE, FORM_CONTENT_TYPE, GRANT_TYPE, SCOPE_LENGTH, fields, has_media_type,
};
use jws::numeric_date;

/// The `detail` of a 400 problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub(crate) String);

impl Refusal {
    fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}

/// What an accepted request is granted.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) jti: String,
    /// The assertion's `exp`: until then its `jti` is remembered.
    pub(crate) assertion_exp: i64,
}

/// Whether a `Content-Type` value is the urlencoded form type.
pub(crate) fn is_form_content_type(value: &str) -> bool {
    has_media_type(value, FORM_CONTENT_TYPE)
}

/// A value for a `detail`: quoted and escaped, and cut at 64 characters so that a hostile
/// input cannot make the answer large.
pub(crate) fn quote(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", value.get(..cut).unwrap_or_default()),
        None => format!("{value:?}"),
    }
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Checks a token request at the sandbox time `now` (seconds since the epoch).
pub(crate) fn check(
    config: &Config,
    now: i64,
    content_type: Option<&str>,
    form: &[(String, String)],
) -> Result<Grant, Refusal> {
    match content_type {
        None => {
            return Err(Refusal::new(format!(
                "content-type: missing; expected {FORM_CONTENT_TYPE}"
            )));
        }
        Some(value) if !is_form_content_type(value) => {
            return Err(Refusal::new(format!(
                "content-type: {} is not {FORM_CONTENT_TYPE}",
                quote(value)
            )));
        }
        Some(_) => {}
    }
    let field = |name: &str| -> Result<Option<&str>, Refusal> {
        let mut values = form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            // RFC 6749 section 3.2: request parameters must not be included more than once.
            return Err(Refusal::new(format!("{name}: given more than once")));
        }
        Ok(first)
    };
    let grant_type = field(fields::GRANT_TYPE)?;
    let assertion_type = field(fields::CLIENT_ASSERTION_TYPE)?;
    let assertion = field(fields::CLIENT_ASSERTION)?;
    let scope = field(fields::SCOPE)?;

    match grant_type {
        None => return Err(Refusal::new("grant_type: missing")),
        Some(GRANT_TYPE) => {}
        Some(other) => {
            return Err(Refusal::new(format!(
                "grant_type: {} is not \"{GRANT_TYPE}\"",
                quote(other)
            )));
        }
    }
    match assertion_type {
        None => return Err(Refusal::new("client_assertion_type: missing")),
        Some(CLIENT_ASSERTION_TYPE) => {}
        Some(other) => {
            return Err(Refusal::new(format!(
                "client_assertion_type: {} is not \"{CLIENT_ASSERTION_TYPE}\"",
                quote(other)
            )));
        }
    }
    let Some(assertion) = assertion else {
        return Err(Refusal::new("client_assertion: missing"));
    };
    let requested_scopes = match scope {
        None => None,
        Some(scope) => Some(check_scope_syntax(scope)?),
    };

    let verified = check_assertion(config, now, assertion)?;

    let Some(policy) = config.clients.get(&verified.client_id) else {
        // Keys are registered with their client, so this cannot happen; answer, don't panic.
        return Err(Refusal::new(format!(
            "client_assertion: client {} is not registered",
            quote(&verified.client_id)
        )));
    };
    let scopes = match requested_scopes {
        None => policy.default_scopes.clone(),
        Some(requested) => {
            if let Some(allowed) = &policy.allowed_scopes {
                if let Some(refused) = requested.iter().find(|s| !allowed.contains(s)) {
                    return Err(Refusal::new(format!(
                        "scope: {} is not allowed for client {}",
                        quote(refused),
                        quote(&verified.client_id)
                    )));
                }
            }
            requested
        }
    };
    Ok(Grant {
        client_id: verified.client_id,
        scopes,
        jti: verified.jti,
        assertion_exp: verified.exp,
    })
}

fn check_scope_syntax(scope: &str) -> Result<Vec<String>, Refusal> {
    let chars = scope.chars().count();
    if !SCOPE_LENGTH.contains(&chars) {
        return Err(Refusal::new(format!(
            "scope: must be {} to {} characters, got {chars}",
            SCOPE_LENGTH.start(),
            SCOPE_LENGTH.end()
        )));
    }
    if !scope.split(' ').all(is_scope_token) {
        return Err(Refusal::new(format!(
            "scope: {} is not a space-delimited list of scope tokens (RFC 6749 section 3.3)",
            quote(scope)
        )));
    }
    let mut scopes: Vec<String> = Vec::new();
    for token in scope.split(' ') {
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_owned());
        }
    }
    Ok(scopes)
}

struct VerifiedAssertion {
    client_id: String,
    jti: String,
    exp: i64,
}

fn check_assertion(config: &Config, now: i64, token: &str) -> Result<VerifiedAssertion, Refusal> {
    let refuse = |what: String| Refusal::new(format!("client_assertion: {what}"));
    // No wrong-kid diagnosis here: these details are a contract the SDK's tests quote
    // (`unknown kid "..."` and `signature does not verify ...` already tell the two apart).
    let verified = jws::verify(config, token, None).map_err(refuse)?;
    let claims = &verified.claims;
    let client_id = verified.key.client_id.as_str();
    for name in ["iss", "sub"] {
        match claims.get(name) {
            Some(Value::String(value)) if value == client_id => {}
            Some(Value::String(value)) => {
                return Err(refuse(format!(
                    "{name} {} is not the registered client id",
                    quote(value)
                )));
            }
            _ => return Err(refuse(format!("{name} missing or not a string"))),
        }
    }
    let audience = config.audience.as_str();
    match claims.get("aud") {
        Some(Value::String(aud)) if aud == audience => {}
        Some(Value::Array(auds)) if auds.iter().any(|a| a.as_str() == Some(audience)) => {}
        Some(Value::String(aud)) => {
            return Err(refuse(format!(
                "aud {} is not the expected audience {}",
                quote(aud),
                quote(audience)
            )));
        }
        Some(Value::Array(_)) => {
            return Err(refuse(format!(
                "aud does not contain the expected audience {}",
                quote(audience)
            )));
        }
        _ => return Err(refuse("aud missing or not a string".into())),
    }
    let exp =
        numeric_date(claims, "exp").ok_or_else(|| refuse("exp missing or not a number".into()))?;
    check_exp(exp, now, config.max_assertion_lifetime_secs).map_err(refuse)?;
    let iat =
        numeric_date(claims, "iat").ok_or_else(|| refuse("iat missing or not a number".into()))?;
    check_not_future("iat", iat, now, config.iat_tolerance_secs).map_err(refuse)?;
    check_nbf(claims, now, config.iat_tolerance_secs).map_err(refuse)?;
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() => jti.clone(),
        _ => return Err(refuse("jti missing or not a non-empty string".into())),
    };
    Ok(VerifiedAssertion {
        client_id: client_id.to_owned(),
        jti,
        exp,
    })
}

/// `exp` lies after `now`, and at most `max_lifetime` seconds after it.
pub(crate) fn check_exp(exp: i64, now: i64, max_lifetime: i64) -> Result<(), String> {
    if exp <= now {
        return Err(format!("exp {exp} is in the past (sandbox time {now})"));
    }
    if exp.saturating_sub(now) > max_lifetime {
        return Err(format!(
            "exp {exp} is more than {max_lifetime} seconds after the sandbox time {now}"
        ));
    }
    Ok(())
}

/// A time claim (`iat`, `nbf`) is not ahead of `now` by more than `tolerance` seconds.
pub(crate) fn check_not_future(
    name: &str,
    value: i64,
    now: i64,
    tolerance: i64,
) -> Result<(), String> {
    if value.saturating_sub(now) > tolerance {
        return Err(format!(
            "{name} {value} is in the future by more than {tolerance} seconds (sandbox time {now})"
        ));
    }
    Ok(())
}

/// `nbf`, when present, is a number not too far ahead of `now`.
pub(crate) fn check_nbf(
    claims: &Map<String, Value>,
    now: i64,
    tolerance: i64,
) -> Result<(), String> {
    if !claims.contains_key("nbf") {
        return Ok(());
    }
    let nbf = numeric_date(claims, "nbf").ok_or("nbf is not a number")?;
    check_not_future("nbf", nbf, now, tolerance)
}
