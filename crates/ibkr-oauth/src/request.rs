//! The token request: the client assertion, the scopes and the grant, validated before any
//! network I/O.

use crate::assertion::{ClientAssertion, Signer};
use crate::error::Error;

/// The grant type of the client credentials flow (RFC 6749 section 4.4), the default.
pub const GRANT_TYPE_CLIENT_CREDENTIALS: &str = "client_credentials";

/// The client assertion type of a JWT bearer assertion (RFC 7523), the default.
pub const CLIENT_ASSERTION_TYPE_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The shortest `scope` the token endpoint accepts, in characters.
pub const SCOPE_MIN_CHARS: usize = 4;
/// The longest `scope` the token endpoint accepts, in characters.
pub const SCOPE_MAX_CHARS: usize = 1024;

/// One token request, ready to send with
/// [`TokenClient::request_token`](crate::TokenClient::request_token).
///
/// Built with [`TokenRequest::builder`]; cheap to clone. `Debug` never shows the assertion.
///
/// ```
/// use ibkr_oauth::{ClientAssertion, TokenRequest};
///
/// let request = TokenRequest::builder()
///     .assertion(ClientAssertion::new("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"))
///     .scopes(["echo.read", "echo.write"])
///     .build()?;
/// assert_eq!(request.scope(), Some("echo.read echo.write"));
/// # Ok::<(), ibkr_oauth::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenRequest {
    assertion: AssertionSource,
    scope: Option<String>,
    grant_type: String,
    client_assertion_type: String,
}

/// Where the assertion of each attempt comes from: one the caller signed, or a signer that
/// stamps a fresh one for every attempt (an assertion lives seconds and may carry a `jti` the
/// server refuses to see twice).
#[derive(Debug, Clone)]
enum AssertionSource {
    Fixed(ClientAssertion),
    Signer(Signer),
}

impl TokenRequest {
    /// A builder with the defaults: grant type `client_credentials`, assertion type
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, no scope.
    pub fn builder() -> TokenRequestBuilder {
        TokenRequestBuilder::default()
    }

    /// The scopes, space-delimited, as they go on the wire (`None`: no `scope` parameter).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The `grant_type` parameter.
    pub fn grant_type(&self) -> &str {
        &self.grant_type
    }

    /// The `client_assertion_type` parameter.
    pub fn client_assertion_type(&self) -> &str {
        &self.client_assertion_type
    }

    /// This request with its assertion signed for `now` (a clock corrected by the server's
    /// offset): the token provider's attempts. A fixed assertion is kept as it is.
    #[cfg(feature = "provider")]
    pub(crate) fn signed_at(&self, now: std::time::SystemTime) -> Result<TokenRequest, Error> {
        let assertion = match &self.assertion {
            AssertionSource::Fixed(assertion) => assertion.clone(),
            AssertionSource::Signer(signer) => signer.sign_at(now)?,
        };
        Ok(TokenRequest {
            assertion: AssertionSource::Fixed(assertion),
            ..self.clone()
        })
    }

    /// The assertion to send on one attempt: the fixed one, or a fresh one signed now (with
    /// the signer's own clock, the one place that stamps assertion times).
    pub(crate) fn assertion_for_attempt(&self) -> Result<ClientAssertion, Error> {
        match &self.assertion {
            AssertionSource::Fixed(assertion) => Ok(assertion.clone()),
            AssertionSource::Signer(signer) => signer.sign(),
        }
    }
}

/// Builds a [`TokenRequest`]; [`build`](Self::build) validates everything.
#[derive(Debug, Clone, Default)]
pub struct TokenRequestBuilder {
    assertion: Option<AssertionSource>,
    scopes: Vec<String>,
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
}

impl TokenRequestBuilder {
    /// The signed client assertion to authenticate with (required).
    pub fn assertion(mut self, assertion: ClientAssertion) -> Self {
        self.assertion = Some(AssertionSource::Fixed(assertion));
        self
    }

    /// Signs a fresh assertion with `signer` for every attempt of this request, retries
    /// included (replaces [`assertion`](Self::assertion)).
    ///
    /// From a key file to a token (the visible lines are all a program needs):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("ibkr-oauth-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let key_file = dir.join("private.pem");
    /// # let pem = ibkr_oauth::PrivateKey::generate(ibkr_oauth::Algorithm::RS256)?.to_pkcs8_pem()?;
    /// # std::fs::write(&key_file, pem.as_bytes())?;
    /// # let mut server = mockito::Server::new_async().await;
    /// # let mock = server.mock("POST", "/oauth2/api/v1/token")
    /// #     .match_body(mockito::Matcher::Regex("client_assertion=ey".into()))
    /// #     .with_header("content-type", "application/json")
    /// #     .with_body(r#"{"access_token":"t0k3n","token_type":"Bearer","expires_in":86399}"#)
    /// #     .create_async().await;
    /// # let base_url = server.url();
    /// use ibkr_oauth::{PrivateKey, Signer, TokenClient, TokenRequest};
    ///
    /// let key = PrivateKey::from_pem_file(&key_file)?; // PKCS#8 or PKCS#1 PEM
    /// let signer = Signer::builder("my-client-id", "main", key).build()?;
    /// let client = TokenClient::builder().base_url(&base_url).build()?; // default: IBKR
    /// let request = TokenRequest::builder().signer(signer).scope("sso-sessions.write").build()?;
    /// let token = client.request_token(&request).await?;
    /// println!("{} token, expires at {:?}", token.token_type().unwrap_or("?"), token.expires_at());
    /// # mock.assert_async().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn signer(mut self, signer: Signer) -> Self {
        self.assertion = Some(AssertionSource::Signer(signer));
        self
    }

    /// Adds one scope (or several, already space-delimited). Scopes are joined by spaces.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Adds several scopes. Scopes are joined by spaces.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Overrides the `grant_type` (default `client_credentials`).
    pub fn grant_type(mut self, grant_type: impl Into<String>) -> Self {
        self.grant_type = Some(grant_type.into());
        self
    }

    /// Overrides the `client_assertion_type` (default
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`).
    pub fn client_assertion_type(mut self, assertion_type: impl Into<String>) -> Self {
        self.client_assertion_type = Some(assertion_type.into());
        self
    }

    /// Validates and builds the request.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the assertion is missing or empty, a scope is empty, the
    /// joined scope is outside 4..=1024 characters or contains a control character, or the
    /// grant or assertion type is empty or contains a control character. Messages never quote
    /// the refused value.
    pub fn build(self) -> Result<TokenRequest, Error> {
        let assertion = match self.assertion {
            None => {
                return Err(Error::InvalidRequest(
                    "no client assertion: call `.signer(...)` or `.assertion(...)` on the request \
                     builder"
                        .into(),
                ));
            }
            Some(AssertionSource::Fixed(a)) if a.expose_secret().trim().is_empty() => {
                return Err(Error::InvalidRequest(
                    "the client assertion is empty: pass the signed compact JWS".into(),
                ));
            }
            Some(source) => source,
        };
        let scope = if self.scopes.is_empty() {
            None
        } else {
            if self.scopes.iter().any(|s| s.trim().is_empty()) {
                return Err(Error::InvalidRequest(
                    "a scope is empty: pass scope names such as `echo.read`".into(),
                ));
            }
            let joined = self.scopes.join(" ");
            if let Some(i) = joined.chars().position(char::is_control) {
                return Err(Error::InvalidRequest(format!(
                    "the scope contains a control character (at character {i}): scopes are \
                     printable names joined by spaces"
                )));
            }
            let chars = joined.chars().count();
            if !(SCOPE_MIN_CHARS..=SCOPE_MAX_CHARS).contains(&chars) {
                return Err(Error::InvalidRequest(format!(
                    "the scope is {chars} characters long; the token endpoint accepts \
                     {SCOPE_MIN_CHARS} to {SCOPE_MAX_CHARS}: request fewer or longer scopes"
                )));
            }
            Some(joined)
        };
        let grant_type = parameter("grant_type", self.grant_type, GRANT_TYPE_CLIENT_CREDENTIALS)?;
        let client_assertion_type = parameter(
            "client_assertion_type",
            self.client_assertion_type,
            CLIENT_ASSERTION_TYPE_JWT_BEARER,
        )?;
        Ok(TokenRequest {
            assertion,
            scope,
            grant_type,
            client_assertion_type,
        })
    }
}

fn parameter(name: &str, value: Option<String>, default: &str) -> Result<String, Error> {
    let value = value.unwrap_or_else(|| default.to_owned());
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "`{name}` is empty or contains a control character: leave it at the default \
             `{default}` unless IBKR says otherwise"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> TokenRequestBuilder {
        TokenRequest::builder().assertion(ClientAssertion::new("a.b.c"))
    }

    #[test]
    fn defaults() {
        let r = builder().build().unwrap();
        assert_eq!(r.grant_type(), GRANT_TYPE_CLIENT_CREDENTIALS);
        assert_eq!(r.client_assertion_type(), CLIENT_ASSERTION_TYPE_JWT_BEARER);
        assert_eq!(r.scope(), None);
    }

    #[test]
    fn scope_and_scopes_join_with_spaces() {
        let r = builder()
            .scope("echo.read")
            .scopes(["echo.write", "sso-sessions.write"]);
        assert_eq!(
            r.build().unwrap().scope(),
            Some("echo.read echo.write sso-sessions.write")
        );
    }

    #[test]
    fn missing_or_empty_assertion_is_refused() {
        let e = TokenRequest::builder().build().unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
        let e = TokenRequest::builder()
            .assertion(ClientAssertion::new(" "))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    }

    #[test]
    fn empty_parameters_are_refused() {
        assert!(matches!(
            builder().grant_type("").build(),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            builder().client_assertion_type("a\nb").build(),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            builder().scope("").build(),
            Err(Error::InvalidRequest(_))
        ));
    }
}
