//! The access token the endpoint granted, built from the generated `TokenResponse`.

use std::fmt;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
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
    ///
    /// One parse, straight into the generated model. Only a body that fails it is read again,
    /// as untyped JSON, to say which member is wrong (serde's own message would quote it).
    pub(crate) fn from_json_body(
        body: &[u8],
        received_at: SystemTime,
        server_date: Option<SystemTime>,
    ) -> Result<Self, String> {
        // serde would also take a JSON array for the struct, member by member: objects only.
        let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice::<TokenResponse>(body) {
            Ok(response) if is_object => Self::from_response(response, received_at, server_date),
            _ => Err(why_not_a_token(body)),
        }
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
            Some(t) if !is_b64token(&t) => {
                return Err(
                    "the response's `access_token` holds characters a bearer token \
                            cannot have (RFC 6750 b64token: letters, digits, -._~+/ and \
                            trailing =)"
                        .into(),
                );
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

    /// A token made by hand (a test double, a token read back from a shared cache). Its
    /// lifetime counts from [`received_at`](TokenBuilder::received_at) (default: now).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ibkr_oauth::{SecretString, Token};
    ///
    /// let token = Token::builder(SecretString::from("test-token"))
    ///     .token_type("Bearer")
    ///     .scope("echo.read")
    ///     .expires_in(Duration::from_secs(3600))
    ///     .build()?;
    /// assert_eq!(token.authorization_header().to_str().ok(), Some("Bearer test-token"));
    /// # Ok::<(), ibkr_oauth::Error>(())
    /// ```
    pub fn builder(access_token: SecretString) -> TokenBuilder {
        TokenBuilder {
            access_token,
            token_type: None,
            scope: None,
            expires_in: None,
            received_at: None,
        }
    }

    /// The access token. Expose it only to put it on the wire (or use
    /// [`authorization_header`](Self::authorization_header)).
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// The `Authorization: Bearer ...` value for an API call, marked sensitive (HTTP/2 and
    /// HTTP/3 stacks keep it out of their header compression tables, and `Debug` hides it).
    pub fn authorization_header(&self) -> http::HeaderValue {
        let value = format!("Bearer {}", self.access_token.expose_secret());
        // Every token was checked for b64token characters when it was made, so this parses.
        let mut header = http::HeaderValue::from_str(&value)
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer"));
        header.set_sensitive(true);
        header
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

/// RFC 6750 section 2.1's `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
/// "/" ) *"="`. What a bearer token may hold, so that it is safe in a header and on a terminal.
pub(crate) fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Builds a [`Token`] by hand; see [`Token::builder`].
#[must_use = "a builder does nothing until build() is called"]
pub struct TokenBuilder {
    access_token: SecretString,
    token_type: Option<String>,
    scope: Option<String>,
    expires_in: Option<Duration>,
    received_at: Option<SystemTime>,
}

impl TokenBuilder {
    /// The token type (IBKR: `Bearer`).
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = Some(token_type.into());
        self
    }

    /// The granted scopes, space-delimited.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The lifetime from [`received_at`](Self::received_at). Without it the token has a
    /// lifetime of zero (see [`Token`]).
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }

    /// When the token was received (default: the system clock when `build` runs).
    pub fn received_at(mut self, at: SystemTime) -> Self {
        self.received_at = Some(at);
        self
    }

    /// Checks the token's characters and builds it.
    ///
    /// # Errors
    /// [`ConfigError::Request`](crate::ConfigError::Request) when the token is not an RFC 6750
    /// `b64token` (letters, digits, `-._~+/`, trailing `=`).
    pub fn build(self) -> Result<Token, crate::Error> {
        if !is_b64token(self.access_token.expose_secret()) {
            return Err(crate::ConfigError::Request(
                crate::error::RequestSetting::AccessTokenCharacters,
            )
            .into());
        }
        let received_at = self.received_at.unwrap_or_else(SystemTime::now);
        let expires_in = self.expires_in.unwrap_or(Duration::ZERO);
        Ok(Token {
            access_token: self.access_token,
            token_type: self.token_type,
            scope: self.scope,
            expires_in,
            expires_in_reported: self.expires_in.is_some(),
            received_at,
            expires_at: received_at.checked_add(expires_in).unwrap_or(received_at),
            server_date: None,
        })
    }
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why a body that did not parse as a `TokenResponse` is not one, without quoting a value.
fn why_not_a_token(body: &[u8]) -> String {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => {
            return format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            );
        }
    };
    let Value::Object(map) = value else {
        return "the body is JSON but not an object".into();
    };
    for name in ["access_token", "token_type", "scope"] {
        if map
            .get(name)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return format!("`{name}` is not a string");
        }
    }
    match map.get("expires_in") {
        Some(v) if v.is_u64() && !v.is_i64() => "`expires_in` is too large".into(),
        Some(v) if !v.is_null() && !v.is_i64() => {
            "`expires_in` is not an integer number of seconds".into()
        }
        _ => "the members do not have the types IBKR's spec gives".into(),
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
mod tests;
