//! The checks IBKR makes on a token request, as one pure function of the request and the time.
//!
//! Every refusal is a `Refusal` whose text becomes the problem's `detail`: it names the field,
//! then the check that failed. The order is the order a reader of the request would check:
//! transport (content type), form, assertion structure, key, signature, claims, scope policy.
//! Replay is checked by the caller, atomically with recording the `jti`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{TokenData, Validation};
use serde_json::{Map, Value};

use crate::config::Config;

/// `grant_type` of the client credentials flow (RFC 6749 section 4.4).
pub const GRANT_TYPE: &str = "client_credentials";
/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The only request content type the endpoint reads.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The `scope` bounds of `openapi.yaml`, in characters.
pub const SCOPE_LENGTH: std::ops::RangeInclusive<usize> = 4..=1024;

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

/// Parses an urlencoded body; never fails (invalid UTF-8 becomes U+FFFD, as browsers do).
pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether a `Content-Type` value is the urlencoded form type (parameters such as `charset`
/// allowed, case-insensitive).
pub(crate) fn is_form_content_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE))
}

/// The three parts of a compact JWS, if it has exactly three.
fn split_jws(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s), None) => Some((h, c, s)),
        _ => None,
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The assertion's header and claims, decoded without any check, for the request log.
pub(crate) fn peek_assertion(token: &str) -> (Option<Value>, Option<Value>) {
    match split_jws(token) {
        Some((header, claims, _)) => (
            decode_object(header).map(Value::Object),
            decode_object(claims).map(Value::Object),
        ),
        None => (None, None),
    }
}

/// A value for a `detail`: quoted and escaped, and cut at 64 characters so that a hostile
/// input cannot make the answer large.
pub(crate) fn quote(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
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
    let grant_type = field("grant_type")?;
    let assertion_type = field("client_assertion_type")?;
    let assertion = field("client_assertion")?;
    let scope = field("scope")?;

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
    let Some((header_part, claims_part, _)) = split_jws(token) else {
        return Err(refuse(
            "not a compact JWS (expected three base64url parts separated by dots)".into(),
        ));
    };
    let header = decode_object(header_part)
        .ok_or_else(|| refuse("header is not a base64url-encoded JSON object".into()))?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err(refuse("header has no \"alg\" string".into())),
    };
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => kid.as_str(),
        _ => return Err(refuse("header has no \"kid\" string".into())),
    };
    let Some(entry) = config.keys.get(kid) else {
        return Err(refuse(format!("unknown kid {}", quote(kid))));
    };
    if alg != entry.algorithm.as_str() {
        return Err(refuse(format!(
            "alg {} is not allowed for kid {} (registered for {})",
            quote(alg),
            quote(kid),
            entry.algorithm
        )));
    }
    if decode_object(claims_part).is_none() {
        return Err(refuse(
            "claims are not a base64url-encoded JSON object".into(),
        ));
    }

    // Signature only: every time check below runs against the sandbox's clock, not the
    // library's wall clock, so the validation of jsonwebtoken is switched off.
    let mut validation = Validation::new(entry.algorithm.jwt());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    crate::crypto::ensure_provider();
    let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &entry.key, &validation) {
        Ok(TokenData { claims, .. }) => claims,
        Err(e) => {
            return Err(refuse(match e.kind() {
                ErrorKind::InvalidSignature => {
                    format!(
                        "signature does not verify with the public key of kid {}",
                        quote(kid)
                    )
                }
                ErrorKind::Base64(_) => "signature is not base64url".into(),
                ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    "header is not a valid JOSE header".into()
                }
                other => format!("could not be verified ({other:?})"),
            }));
        }
    };

    let client_id = entry.client_id.as_str();
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
        numeric_date(&claims, "exp").ok_or_else(|| refuse("exp missing or not a number".into()))?;
    if exp <= now {
        return Err(refuse(format!(
            "exp {exp} is in the past (sandbox time {now})"
        )));
    }
    let max_lifetime = config.max_assertion_lifetime_secs;
    if exp.saturating_sub(now) > max_lifetime {
        return Err(refuse(format!(
            "exp {exp} is more than {max_lifetime} seconds after the sandbox time {now}"
        )));
    }
    let iat =
        numeric_date(&claims, "iat").ok_or_else(|| refuse("iat missing or not a number".into()))?;
    let tolerance = config.iat_tolerance_secs;
    if iat.saturating_sub(now) > tolerance {
        return Err(refuse(format!(
            "iat {iat} is in the future by more than {tolerance} seconds (sandbox time {now})"
        )));
    }
    if claims.contains_key("nbf") {
        let nbf =
            numeric_date(&claims, "nbf").ok_or_else(|| refuse("nbf is not a number".into()))?;
        if nbf.saturating_sub(now) > tolerance {
            return Err(refuse(format!(
                "nbf {nbf} is in the future by more than {tolerance} seconds (sandbox time {now})"
            )));
        }
    }
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

/// A NumericDate claim (RFC 7519: seconds, possibly fractional) as whole seconds.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    // `as` saturates for out-of-range floats, which is what a time comparison wants.
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f.floor() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> Config {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let key = |name: &str| std::fs::read_to_string(format!("{dir}{name}")).unwrap();
        crate::Sandbox::builder()
            .client(
                crate::RegisteredClient::new("c")
                    .key("rsa", key("rsa_public.pem"))
                    .key("ec", key("ec_public.pem"))
                    .key("ed", key("ed25519_public.pem")),
            )
            .build()
            .unwrap()
            .config
    }

    /// base64url of a JSON object with the given members, for building near-valid assertions.
    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn assertion_like() -> impl Strategy<Value = String> {
        let header = prop_oneof![
            Just(b64(r#"{"alg":"RS256","kid":"rsa"}"#)),
            Just(b64(r#"{"alg":"ES256","kid":"ec"}"#)),
            Just(b64(r#"{"alg":"EdDSA","kid":"ed"}"#)),
            "[A-Za-z0-9_-]{0,40}",
            any::<String>().prop_map(|s| b64(&s)),
        ];
        let claims = prop_oneof![
            Just(b64(
                r#"{"iss":"c","sub":"c","aud":"/token","iat":0,"exp":1e300,"jti":"x"}"#
            )),
            "[A-Za-z0-9_-]{0,40}",
            any::<String>().prop_map(|s| b64(&s)),
        ];
        let signature = prop_oneof!["[A-Za-z0-9_-]{0,600}", any::<String>()];
        prop_oneof![
            (header, claims, signature).prop_map(|(h, c, s)| format!("{h}.{c}.{s}")),
            any::<String>(),
        ]
    }

    proptest! {
        /// No form, however hostile, makes the checks panic; every refusal has a detail.
        #[test]
        fn check_never_panics(
            assertion in assertion_like(),
            scope in proptest::option::of(any::<String>()),
            extra in proptest::collection::vec((any::<String>(), any::<String>()), 0..4),
            now in any::<i64>(),
        ) {
            let mut form = vec![
                ("grant_type".to_owned(), GRANT_TYPE.to_owned()),
                ("client_assertion_type".to_owned(), CLIENT_ASSERTION_TYPE.to_owned()),
                ("client_assertion".to_owned(), assertion),
            ];
            form.extend(scope.map(|s| ("scope".to_owned(), s)));
            form.extend(extra);
            if let Err(Refusal(detail)) = check(&config(), now, Some(FORM_CONTENT_TYPE), &form) {
                prop_assert!(!detail.is_empty());
            }
        }

        #[test]
        fn any_body_parses(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let form = parse_form(&body);
            let _ = check(&config(), 0, Some(FORM_CONTENT_TYPE), &form);
        }
    }

    #[test]
    fn quotes_and_cuts_long_values() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(64)));
        assert_eq!(quote(&"é".repeat(65)), format!("\"{}\"…", "é".repeat(64)));
    }

    #[test]
    fn scope_syntax() {
        assert_eq!(check_scope_syntax("a.b c.d a.b").unwrap(), ["a.b", "c.d"]);
        assert_eq!(
            check_scope_syntax("abc").unwrap_err().0,
            "scope: must be 4 to 1024 characters, got 3"
        );
        assert!(check_scope_syntax("ab  cd").is_err());
        assert!(check_scope_syntax("ab\"cd").is_err());
        assert!(check_scope_syntax(&"a".repeat(1024)).is_ok());
        assert!(check_scope_syntax(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn content_type_essence() {
        assert!(is_form_content_type("application/x-www-form-urlencoded"));
        assert!(is_form_content_type(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        ));
        assert!(!is_form_content_type("application/json"));
        assert!(!is_form_content_type(""));
    }

    #[test]
    fn jws_split_and_peek_never_panic_on_junk() {
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
            let _ = peek_assertion(junk);
        }
        assert_eq!(split_jws("a.b.c"), Some(("a", "b", "c")));
        assert_eq!(split_jws("a.b.c.d"), None);
        assert_eq!(split_jws("a.b"), None);
    }
}
