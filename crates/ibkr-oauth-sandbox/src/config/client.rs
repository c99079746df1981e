//! A registered client: its id, public keys and scope policy.

use std::fmt;

use crate::Algorithm;

/// A client as registered with IBKR: a client id, its public key(s) and what scopes it may get.
///
/// ```
/// use ibkr_oauth_sandbox::{Algorithm, RegisteredClient};
/// # let rsa_public_pem = "";
/// let client = RegisteredClient::new("my-client")
///     .key_with_algorithm("main", Algorithm::RS256, rsa_public_pem)
///     .allowed_scopes(["sso-sessions.write", "echo.read"])
///     .default_scopes(["sso-sessions.write"]);
/// ```
#[derive(Clone)]
#[must_use]
pub struct RegisteredClient {
    pub(super) id: String,
    pub(super) keys: Vec<KeySpec>,
    pub(super) allowed_scopes: Option<Vec<String>>,
    pub(super) default_scopes: Vec<String>,
}

#[derive(Clone)]
pub(super) struct KeySpec {
    pub(super) kid: String,
    pub(super) algorithm: Option<Algorithm>,
    pub(super) pem: String,
}

impl RegisteredClient {
    /// A client with this client id (the assertion's `iss` and `sub`), no key yet, allowed any
    /// scope, and granted no scope when it asks for none.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            id: client_id.into(),
            keys: Vec::new(),
            allowed_scopes: None,
            default_scopes: Vec::new(),
        }
    }

    /// Registers a public key under `kid`, bound to the algorithm its type implies: RS256 for
    /// RSA, ES256 for P-256, EdDSA for Ed25519. `public_key_pem` is PEM SubjectPublicKeyInfo
    /// (`-----BEGIN PUBLIC KEY-----`); it is checked by [`SandboxBuilder::build`](crate::SandboxBuilder::build).
    pub fn key(mut self, kid: impl Into<String>, public_key_pem: impl Into<String>) -> Self {
        self.keys.push(KeySpec {
            kid: kid.into(),
            algorithm: None,
            pem: public_key_pem.into(),
        });
        self
    }

    /// Registers a public key under `kid`, bound to `algorithm` (for instance PS256 for an RSA
    /// key). A key whose type does not fit the algorithm fails [`SandboxBuilder::build`](crate::SandboxBuilder::build).
    pub fn key_with_algorithm(
        mut self,
        kid: impl Into<String>,
        algorithm: Algorithm,
        public_key_pem: impl Into<String>,
    ) -> Self {
        self.keys.push(KeySpec {
            kid: kid.into(),
            algorithm: Some(algorithm),
            pem: public_key_pem.into(),
        });
        self
    }

    /// Limits the scopes this client may ask for. A token request that names any other scope
    /// is refused (400, the problem's detail names the scope): IBKR documents no partial grant,
    /// so the sandbox does not narrow a request down. Without this call every syntactically
    /// valid scope is granted.
    pub fn allowed_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The scopes granted when a request names none (no `scope` field).
    pub fn default_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.default_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("id", &self.id)
            .field(
                "kids",
                &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            )
            .field("allowed_scopes", &self.allowed_scopes)
            .field("default_scopes", &self.default_scopes)
            .finish()
    }
}
