//! The protected resource's side of RFC 6750: reading `Authorization: Bearer` and deciding
//! between 401 (no or bad token), 403 (scope missing) and 400 (a malformed request).

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::quote;
use crate::AccessTokenClaims;

/// Why a protected resource refuses a request (RFC 6750 section 3.1); the text is the
/// problem's `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denial {
    /// No credentials for the Bearer scheme: 401 with a bare challenge (no error code).
    Missing(String),
    /// A request RFC 6750 calls malformed: 400, `error="invalid_request"`.
    InvalidRequest(String),
    /// The token is not one the sandbox accepts: 401, `error="invalid_token"`.
    InvalidToken(String),
    /// The token lacks the scope: 403, `error="insufficient_scope"`, `scope=` the one needed.
    InsufficientScope {
        /// The scope the endpoint needs.
        scope: &'static str,
        /// The problem's detail.
        detail: String,
    },
}

/// The bearer token of a request, as sent (RFC 6750 section 2.1).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, Denial> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denial::Missing(
            "authorization: missing; send Authorization: Bearer <access token>".into(),
        ));
    };
    if values.next().is_some() {
        return Err(Denial::InvalidRequest(
            "authorization: given more than once".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| Denial::InvalidRequest("authorization: not visible ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Never quote the value: it is a credential of some other scheme.
        return Err(Denial::Missing(
            "authorization: the scheme is not Bearer; send Authorization: Bearer <access token>"
                .into(),
        ));
    }
    let token = token.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(Denial::InvalidToken(
            "access token: empty or not a b64token (RFC 6750 section 2.1)".into(),
        ));
    }
    Ok(token)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The token's scopes include `scope`.
pub(crate) fn require_scope(claims: &AccessTokenClaims, scope: &'static str) -> Result<(), Denial> {
    let granted = claims.scope.as_deref().unwrap_or_default();
    if granted.split(' ').any(|s| s == scope) {
        return Ok(());
    }
    Err(Denial::InsufficientScope {
        scope,
        detail: format!(
            "access token: scope {} is required; the token was granted {}",
            quote(scope),
            if granted.is_empty() {
                "no scope".to_owned()
            } else {
                quote(granted)
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn reads_the_bearer_token() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.DEF-_~+/=="])),
            Ok("abc.DEF-_~+/==")
        );
        assert_eq!(bearer_token(&headers(&["bearer  t"])), Ok("t"));
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(Denial::Missing(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic dXNlcg=="])),
            Err(Denial::Missing(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer"])),
            Err(Denial::InvalidToken(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a b"])),
            Err(Denial::InvalidToken(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer ="])),
            Err(Denial::InvalidToken(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(Denial::InvalidRequest(_))
        ));
    }
}
