//! The access token the endpoint granted, built from the generated `TokenResponse`.

use std::fmt;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use serde_json::Value;

use crate::models::TokenResponse;

/// An access token granted by the token endpoint.
///
/// The token itself is a [`SecretString`]: read it with
/// [`ExposeSecret`](secrecy::ExposeSecret) (`token.access_token().expose_secret()`) only to put
/// it in an `Authorization` header. `Debug` prints it as `[redacted]`.
///
/// **A response without `expires_in`** gives a token whose lifetime is zero
/// ([`expires_in`](Self::expires_in) is zero, [`expires_at`](Self::expires_at) is the arrival
/// instant, [`expires_in_reported`](Self::expires_in_reported) is `false`): it is handed out for
/// the request at hand, and a cache treats it as already expired, because nothing says how
/// long the server honours it. IBKR always sends `expires_in`.
#[derive(Clone)]
pub struct Token {
    access_token: SecretString,
    token_type: Option<String>,
    scope: Option<String>,
    expires_in: Duration,
    expires_in_reported: bool,
    received_at: SystemTime,
    expires_at: SystemTime,
    server_date: Option<SystemTime>,
}

impl Token {
    /// Builds a token from a 200 body, or says (without quoting any value) why it is not one.
    pub(crate) fn from_json_body(
        body: &[u8],
        received_at: SystemTime,
        server_date: Option<SystemTime>,
    ) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let Value::Object(map) = value else {
            return Err("the body is JSON but not an object".into());
        };
        // Check member types by hand so that no message ever quotes a value (serde's would).
        for name in ["access_token", "token_type", "scope"] {
            if map
                .get(name)
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Err(format!("`{name}` is not a string"));
            }
        }
        if let Some(v) = map.get("expires_in").filter(|v| !v.is_null()) {
            if v.is_u64() && !v.is_i64() {
                return Err("`expires_in` is too large".into());
            }
            if !v.is_i64() {
                return Err("`expires_in` is not an integer number of seconds".into());
            }
        }
        let response: TokenResponse = serde_json::from_value(Value::Object(map))
            .map_err(|_| "the members do not have the types IBKR's spec gives".to_owned())?;
        Self::from_response(response, received_at, server_date)
    }

    /// Builds a token from the generated model. `received_at` is the client's clock when the
    /// response arrived; the expiry instant is counted from it.
    pub(crate) fn from_response(
        response: TokenResponse,
        received_at: SystemTime,
        server_date: Option<SystemTime>,
    ) -> Result<Self, String> {
        let access_token = match response.access_token {
            None => return Err("the response has no `access_token`".into()),
            Some(t) if t.trim().is_empty() => {
                return Err("the response's `access_token` is empty".into());
            }
            Some(t) => SecretString::from(t),
        };
        let (expires_in, expires_in_reported) = match response.expires_in {
            None => (Duration::ZERO, false),
            Some(s) => match u64::try_from(s) {
                Ok(s) => (Duration::from_secs(s), true),
                Err(_) => return Err(format!("`expires_in` is negative ({s})")),
            },
        };
        let expires_at = received_at.checked_add(expires_in).ok_or_else(|| {
            format!(
                "`expires_in` ({} s) is beyond what the system clock can represent",
                expires_in.as_secs()
            )
        })?;
        Ok(Self {
            access_token,
            token_type: response.token_type,
            scope: response.scope,
            expires_in,
            expires_in_reported,
            received_at,
            expires_at,
            server_date,
        })
    }

    /// The access token. Expose it only to put it on the wire.
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// The `token_type` the server sent (IBKR: `Bearer`), if any.
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// The granted scopes as the server sent them, space-delimited, if it sent any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The granted scopes one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split_whitespace()
    }

    /// The token's lifetime as the server stated it (`expires_in`); zero when it stated none.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// Whether the response carried `expires_in` (see the type's docs for what its absence
    /// means).
    pub fn expires_in_reported(&self) -> bool {
        self.expires_in_reported
    }

    /// The client's clock when the response arrived.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// When the token expires, by the client's clock: [`received_at`](Self::received_at) plus
    /// [`expires_in`](Self::expires_in).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The response's `Date` header: the server's clock when it answered, for measuring the
    /// skew between the two clocks.
    pub fn server_date(&self) -> Option<SystemTime> {
        self.server_date
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .field("expires_in_reported", &self.expires_in_reported)
            .field("received_at", &self.received_at)
            .field("expires_at", &self.expires_at)
            .field("server_date", &self.server_date)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn full_token() {
        let body = br#"{"access_token":"abc.def.ghi","token_type":"Bearer","scope":"echo.read echo.write","expires_in":86399}"#;
        let t = Token::from_json_body(body, at(), None).unwrap();
        assert_eq!(t.access_token().expose_secret(), "abc.def.ghi");
        assert_eq!(t.token_type(), Some("Bearer"));
        assert_eq!(t.scopes().collect::<Vec<_>>(), ["echo.read", "echo.write"]);
        assert_eq!(t.expires_in(), Duration::from_secs(86399));
        assert_eq!(t.expires_at(), at() + Duration::from_secs(86399));
        assert!(t.expires_in_reported());
    }

    #[test]
    fn missing_expires_in_means_zero_lifetime() {
        let t = Token::from_json_body(br#"{"access_token":"x"}"#, at(), None).unwrap();
        assert_eq!(t.expires_in(), Duration::ZERO);
        assert_eq!(t.expires_at(), at());
        assert!(!t.expires_in_reported());
    }

    #[test]
    fn refusals_never_quote_values() {
        for body in [
            &br#"{"access_token":"SECRET-1","expires_in":"SECRET-2"}"#[..],
            br#"{"access_token":"SECRET-1","expires_in":1.5}"#,
            br#"{"access_token":"SECRET-1","expires_in":-1}"#,
            br#"{"access_token":"SECRET-1","expires_in":18446744073709551615}"#,
            br#"{"access_token":"SECRET-1","expires_in":9223372036854775807}"#,
            br#"{"access_token":"SECRET-1","scope":["SECRET-2"]}"#,
            br#"{"access_token":["SECRET-1"]}"#,
            br#"{"access_token":""}"#,
            br#"{}"#,
            br#"["SECRET-1"]"#,
            br#"{"access_token":"SECRET-1""#,
        ] {
            let reason = Token::from_json_body(body, at(), None).unwrap_err();
            assert!(!reason.contains("SECRET"), "{reason}");
        }
    }
}
