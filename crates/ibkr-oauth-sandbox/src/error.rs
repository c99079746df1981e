//! The one error type of the crate.

use std::net::SocketAddr;

/// What went wrong while configuring, starting or querying a sandbox.
///
/// Requests to a running sandbox never produce an `Error`: the sandbox answers them with a
/// problem response instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A registered public key could not be used.
    #[error(
        "public key {kid:?}: {reason}; register the client's public key as PEM \
         SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----)"
    )]
    InvalidPublicKey {
        /// The key id the key was registered under.
        kid: String,
        /// Why it was refused.
        reason: String,
    },
    /// A key was registered for an algorithm its type cannot verify.
    #[error(
        "public key {kid:?}: a {key_type} key cannot verify {algorithm}; register it for {fits} \
         or register a key of the right type"
    )]
    KeyAlgorithmMismatch {
        /// The key id.
        kid: String,
        /// The algorithm it was registered for.
        algorithm: crate::Algorithm,
        /// The key's type (`RSA`, `P-256`, `Ed25519`).
        key_type: &'static str,
        /// The algorithms that fit the key.
        fits: String,
    },
    /// Two keys were registered under the same key id.
    #[error("key id {kid:?} is registered twice; give every key its own kid")]
    DuplicateKid {
        /// The duplicated key id.
        kid: String,
    },
    /// Two clients were registered under the same client id.
    #[error("client id {client_id:?} is registered twice; register each client once")]
    DuplicateClient {
        /// The duplicated client id.
        client_id: String,
    },
    /// A client was registered without any public key.
    #[error("client {client_id:?} has no public key; add one with RegisteredClient::key")]
    ClientWithoutKey {
        /// The client id.
        client_id: String,
    },
    /// The sandbox was built without any client.
    #[error("no client is registered; register one with SandboxBuilder::client")]
    NoClient,
    /// A setting of the builder is out of range.
    #[error("invalid sandbox setting {setting}: {reason}; change it on the SandboxBuilder")]
    InvalidSetting {
        /// The setting's name.
        setting: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("could not listen on {addr}: {source}; pick another port or address")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system gave no randomness for the sandbox's signing secret.
    #[error(
        "no randomness available for the sandbox's token secret: {0}; check the operating \
         system's random source"
    )]
    Random(String),
    /// An algorithm name is not one the sandbox verifies.
    #[error("unknown algorithm {name:?}; use RS256, PS256, ES256 or EdDSA")]
    UnknownAlgorithm {
        /// The name given (cut at 1 KiB).
        name: String,
    },
    /// The TLS certificate or configuration could not be made.
    #[error("could not set up TLS for the sandbox: {0}; run it without TLS, or report this")]
    Tls(String),
    /// An access token was not one this sandbox issued, or is no longer valid.
    #[error("access token refused: {0}; get a new token from this sandbox")]
    InvalidAccessToken(String),
}
