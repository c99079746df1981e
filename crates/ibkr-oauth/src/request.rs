//! The token request: the client assertion, the scopes and the grant, validated before any
//! network I/O.

use std::sync::Arc;
use std::time::SystemTime;

use crate::assertion::{AssertionSigner, ClientAssertion};
use crate::error::RequestSetting;
use crate::error::{ConfigError, Error};

/// The grant type of the client credentials flow (RFC 6749 section 4.4): what IBKR takes.
const GRANT_TYPE_CLIENT_CREDENTIALS: &str = "client_credentials";

/// The client assertion type of a JWT bearer assertion (RFC 7523): what IBKR takes.
const CLIENT_ASSERTION_TYPE_JWT_BEARER: &str =
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
}

/// Where the assertion of each attempt comes from: one the caller signed, or a signer that
/// stamps a fresh one for every attempt (an assertion lives seconds and may carry a `jti` the
/// server refuses to see twice).
#[derive(Debug, Clone)]
enum AssertionSource {
    Fixed(ClientAssertion),
    Signer(Arc<dyn AssertionSigner>),
}

impl TokenRequest {
    /// A builder: no assertion, no scope. The grant type (`client_credentials`) and the
    /// assertion type (`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) are IBKR's
    /// and fixed.
    pub fn builder() -> TokenRequestBuilder {
        TokenRequestBuilder::default()
    }

    /// The scopes, space-delimited, as they go on the wire (`None`: no `scope` parameter).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The `grant_type` parameter: `client_credentials`.
    pub fn grant_type(&self) -> &str {
        GRANT_TYPE_CLIENT_CREDENTIALS
    }

    /// The `client_assertion_type` parameter: the JWT bearer assertion type of RFC 7523.
    pub fn client_assertion_type(&self) -> &str {
        CLIENT_ASSERTION_TYPE_JWT_BEARER
    }

    /// The assertion to send on one attempt: the fixed one, or a fresh one signed at `now`
    /// (the signer's clock, or the provider's corrected time).
    pub(crate) async fn assertion_at(
        &self,
        now: Option<SystemTime>,
    ) -> Result<ClientAssertion, Error> {
        match &self.assertion {
            AssertionSource::Fixed(assertion) => Ok(assertion.clone()),
            AssertionSource::Signer(signer) => {
                let now = now.unwrap_or_else(|| signer.clock().now());
                signer.sign_assertion(now).await
            }
        }
    }
}

/// Builds a [`TokenRequest`]; [`build`](Self::build) validates everything.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until build() is called"]
pub struct TokenRequestBuilder {
    assertion: Option<AssertionSource>,
    scopes: Vec<String>,
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
    ///
    /// Any [`AssertionSigner`] does: a [`Signer`](crate::Signer) with a key in this process,
    /// or a key held in a KMS or HSM.
    pub fn signer(mut self, signer: impl AssertionSigner) -> Self {
        self.assertion = Some(AssertionSource::Signer(Arc::new(signer)));
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

    /// Validates and builds the request.
    ///
    /// # Errors
    /// [`ConfigError::Request`] when the assertion is missing or empty, a scope is empty, or
    /// the joined scope is outside 4..=1024 characters or contains a control character.
    /// Messages never quote the refused value.
    pub fn build(self) -> Result<TokenRequest, ConfigError> {
        let assertion = match self.assertion {
            None => {
                return Err(ConfigError::Request(RequestSetting::NoAssertion));
            }
            Some(AssertionSource::Fixed(a)) if a.expose_secret().trim().is_empty() => {
                return Err(ConfigError::Request(RequestSetting::EmptyAssertion));
            }
            Some(source) => source,
        };
        let scope = if self.scopes.is_empty() {
            None
        } else {
            if self.scopes.iter().any(|s| s.trim().is_empty()) {
                return Err(ConfigError::Request(RequestSetting::EmptyScope));
            }
            let joined = self.scopes.join(" ");
            if let Some(i) = joined.chars().position(char::is_control) {
                return Err(ConfigError::Request(
                    RequestSetting::ScopeControlCharacter { at: i },
                ));
            }
            let chars = joined.chars().count();
            if !(SCOPE_MIN_CHARS..=SCOPE_MAX_CHARS).contains(&chars) {
                return Err(ConfigError::Request(RequestSetting::ScopeLength {
                    chars,
                    min: SCOPE_MIN_CHARS,
                    max: SCOPE_MAX_CHARS,
                }));
            }
            Some(joined)
        };
        Ok(TokenRequest { assertion, scope })
    }
}

#[cfg(test)]
mod tests;
