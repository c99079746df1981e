//! The one error type of this crate.

/// Everything that can go wrong while getting a token.
///
/// Each variant's message says what happened and what to do about it. No variant ever holds or
/// prints a secret (access token, assertion, key).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- request, HTTP and response mapping (client, request, transport, problem, token) ---
    /// The request builder refused its input before any network I/O.
    #[error("invalid token request: {0}")]
    InvalidRequest(String),
    /// The client builder refused its configuration (base URL, timeouts, size cap, user
    /// agent, HTTP client), before any network I/O.
    #[error("invalid token client configuration: {0}")]
    InvalidConfig(String),
    /// The endpoint refused or failed the request with an RFC 9457 problem document
    /// (`application/problem+json`, or another JSON body on a 4xx/5xx that has no RFC 6749
    /// `error` member). The status is the response's real one: a 500 is a 500.
    #[error("{}", crate::error::problem_message(problem, response))]
    Problem {
        /// The problem document, with the HTTP status beside the body's own `status`.
        problem: Box<crate::problem::Problem>,
        /// The response's status and headers.
        response: Box<crate::problem::ResponseInfo>,
    },
    /// The endpoint refused the request with an RFC 6749 section 5.2 error body (an
    /// `application/json` 4xx/5xx with a string `error` member).
    #[error("{}", crate::error::oauth_message(error, response))]
    OAuth {
        /// The `error`, `error_description` and `error_uri` members.
        error: Box<crate::problem::OAuthError>,
        /// The response's status and headers.
        response: Box<crate::problem::ResponseInfo>,
    },
    /// A response the token API never sends: a redirect (never followed, so the assertion is
    /// not resent elsewhere), an HTML error page from a proxy, a non-JSON success...
    #[error("{}", crate::error::unexpected_message(excerpt, location, response))]
    UnexpectedResponse {
        /// A short sanitised excerpt of the body. `None` for a 2xx, whose body may be a
        /// credential in an unexpected format.
        excerpt: Option<String>,
        /// The `Location` header of a redirect (sanitised).
        location: Option<String>,
        /// The response's status and headers.
        response: Box<crate::problem::ResponseInfo>,
    },
    /// A success response that is not a usable token: not JSON, members of the wrong type, no
    /// or an empty `access_token`, a negative `expires_in`... The reason never quotes a value.
    #[error(
        "invalid token response ({}): {reason}; the endpoint does not answer like IBKR's token \
         API: check the base URL",
        crate::error::status_text(response.status)
    )]
    InvalidResponse {
        /// What is wrong with the body.
        reason: String,
        /// The response's status and headers.
        response: Box<crate::problem::ResponseInfo>,
    },
    /// The response body is larger than the client's cap; it was refused without being read
    /// whole.
    #[error(
        "the token endpoint's response ({}) is larger than the {limit}-byte cap and was refused \
         unread: check the base URL, or raise `max_response_bytes` if the endpoint is trusted",
        crate::error::status_text(response.status)
    )]
    ResponseTooLarge {
        /// The cap, in bytes.
        limit: usize,
        /// The response's status and headers.
        response: Box<crate::problem::ResponseInfo>,
    },
    /// No complete response arrived within the configured timeout (after connecting).
    #[error(
        "the token request timed out: no complete response within the configured timeout; \
         retry later, or raise the client's `timeout`"
    )]
    Timeout {
        /// The underlying HTTP error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The connection to the token endpoint could not be made (DNS, refused, TLS handshake,
    /// connect timeout).
    #[error(
        "could not connect to the token endpoint ({}); check the base URL, DNS and network, \
         then retry",
        crate::error::root_cause(source.as_ref())
    )]
    Connect {
        /// The underlying HTTP error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The exchange failed in transit for another reason (connection reset while reading...).
    #[error(
        "the token request failed in transit ({}); retry later",
        crate::error::root_cause(source.as_ref())
    )]
    Transport {
        /// The underlying HTTP error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    // --- keys and assertions (assertion/) ---
    /// A key file (named directly or by an environment variable) could not be read.
    #[error("could not read {origin}: {io}; check the path and that this process may read it")]
    KeyFileRead {
        /// The file.
        origin: crate::assertion::KeySource,
        /// The operating system's error.
        #[source]
        io: std::io::Error,
    },
    /// A key file is larger than any PEM private key.
    #[error(
        "{origin} is over {limit} bytes, far larger than a PEM private key; point to the key \
         file itself ({})",
        crate::assertion::key::EXPECTED_KEY
    )]
    KeyFileTooLarge {
        /// The file.
        origin: crate::assertion::KeySource,
        /// The size limit in bytes.
        limit: u64,
    },
    /// The environment variable that should hold the key (or its path) is unset or empty.
    #[error(
        "environment variable {name} is unset, empty or not Unicode; set it to the path of the \
         private key file or to the PEM text itself"
    )]
    KeyEnvVar {
        /// The variable's name.
        name: String,
    },
    /// The key file or string is empty.
    #[error("{origin} is empty; expected {}", crate::assertion::key::EXPECTED_KEY)]
    KeyEmpty {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The input holds no PEM block at all (garbage, binary DER, another format).
    #[error(
        "{origin} is not PEM text (no -----BEGIN line found); expected {}; a binary DER key \
         converts with `openssl pkey -in key.der -inform DER -out key.pem`",
        crate::assertion::key::EXPECTED_KEY
    )]
    KeyNotPem {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The input holds a public key, not the private key.
    #[error(
        "{origin} holds a public key (BEGIN PUBLIC KEY); the signer needs the private key that \
         belongs to it: expected {}",
        crate::assertion::key::EXPECTED_KEY
    )]
    KeyIsPublic {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The input holds a certificate (or certificate request), not a private key.
    #[error(
        "{origin} holds a certificate, not a private key; use the private key file that was \
         generated with it: expected {}",
        crate::assertion::key::EXPECTED_KEY
    )]
    KeyIsCertificate {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The input holds a PEM block of a kind this crate does not read (OpenSSH, DSA, ...).
    #[error(
        "{origin} holds a `{label}` PEM block, which is not a supported private key format; \
         expected {}; convert it with `openssl pkcs8 -topk8 -nocrypt -in OLD -out key.pem` (for \
         OpenSSH keys: `ssh-keygen -p -m PKCS8 -f KEY`)",
        crate::assertion::key::EXPECTED_KEY
    )]
    KeyFormatUnsupported {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
        /// The PEM label found (at most 64 characters).
        label: String,
    },
    /// The key is encrypted PKCS#8 and no passphrase was given.
    #[error(
        "{origin} is encrypted (BEGIN ENCRYPTED PRIVATE KEY); load it with \
         PrivateKey::from_encrypted_pem or from_encrypted_pem_file and its passphrase"
    )]
    KeyEncrypted {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The key uses OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`).
    #[error(
        "{origin} uses OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED), which is not \
         supported; re-encrypt it as PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD \
         -out key.pem`"
    )]
    KeyLegacyEncrypted {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The passphrase does not decrypt the key (or the encrypted key is damaged).
    #[error(
        "could not decrypt {origin}: the passphrase is wrong or the file is damaged; check the \
         passphrase"
    )]
    KeyPassphraseWrong {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The key is encrypted with a scheme this crate does not implement.
    #[error(
        "{origin} is encrypted with an unsupported scheme ({scheme}); expected PBES2 with AES-CBC \
         and PBKDF2-HMAC-SHA-256 or scrypt; re-encrypt it with `openssl pkcs8 -topk8 -v2 \
         aes-256-cbc -v2prf hmacWithSHA256 -in OLD -out key.pem`"
    )]
    KeyEncryptionUnsupported {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
        /// The scheme found (an OID or name).
        scheme: String,
    },
    /// A private-key PEM block whose base64 or DER content is damaged.
    #[error(
        "{origin} has a {format} block, but {reason}; the file is damaged or truncated: export \
         the key again"
    )]
    KeyMalformed {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
        /// The format its PEM label announced.
        format: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A well-formed private key of a type or curve that no supported algorithm signs with.
    #[error(
        "{origin} holds {found}, which cannot sign client assertions; expected an RSA key (2048 \
         to 8192 bits), an EC P-256 key or an Ed25519 key"
    )]
    KeyTypeUnsupported {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
        /// What the key is.
        found: String,
    },
    /// An RSA key shorter than 2048 bits.
    #[error(
        "{origin} holds an RSA key shorter than 2048 bits, which is too weak; generate a new key \
         of 2048 bits or more (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`) \
         and register its public key"
    )]
    KeyRsaTooSmall {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
    },
    /// The key cannot sign with the algorithm chosen for the signer.
    #[error(
        "the {key_type} key from {origin} cannot sign {algorithm}; choose an algorithm the key \
         supports ({}) or a key for {algorithm}",
        crate::assertion::algorithm::names(*key_type)
    )]
    KeyAlgorithmMismatch {
        /// Where the key was read from.
        origin: crate::assertion::KeySource,
        /// The key's type.
        key_type: crate::assertion::KeyType,
        /// The algorithm that was chosen.
        algorithm: crate::assertion::Algorithm,
    },
    /// An algorithm name that is not one of `RS256`, `PS256`, `ES256`, `EdDSA`.
    #[error("unknown signature algorithm `{name}`; use RS256 (IBKR's), PS256, ES256 or EdDSA")]
    UnknownAlgorithm {
        /// The name given (at most 32 characters).
        name: String,
    },
    /// The crypto backend could not generate a key.
    #[error("could not generate a {key_type} key: the crypto backend failed; retry")]
    KeyGeneration {
        /// The type of key asked for.
        key_type: crate::assertion::KeyType,
    },
    /// The crypto backend could not serialise a key.
    #[error("could not export the {key_type} key: the crypto backend failed; retry")]
    KeyExport {
        /// The key's type.
        key_type: crate::assertion::KeyType,
    },
    /// The signer builder refused a setting.
    #[error("invalid assertion signer: {0}")]
    InvalidSigner(String),
    /// The clock reads a time that cannot be put into `iat`/`exp`.
    #[error(
        "the clock reads a time before 1970 (or too far ahead) to stamp an assertion; fix the \
         system clock or the injected Clock"
    )]
    ClockOutOfRange,
    /// Signing failed in the crypto backend or the system random source.
    #[error(
        "could not sign the client assertion with {algorithm}: the crypto backend or the \
         system's random source failed; retry, and report it if it persists"
    )]
    SigningFailed {
        /// The algorithm used.
        algorithm: crate::assertion::Algorithm,
    },
    // --- token provider (provider/) ---
    /// The token provider had to start a fetch (or its refresher) outside a tokio runtime.
    #[error(
        "the token provider needs a tokio runtime to fetch a token, and none runs on this \
         thread; call it from async code running on tokio (for example under #[tokio::main])"
    )]
    NoRuntime,
    /// The provider's fetch task ended without an outcome: its tokio runtime shut down.
    #[error(
        "the token provider's fetch task ended without an answer (its tokio runtime shut \
         down); call access_token again from a running runtime"
    )]
    FetchAborted,
}

// --- request, HTTP and response mapping: queries and messages ---

impl Error {
    /// The HTTP status of the response this error comes from, if it comes from one.
    pub fn status(&self) -> Option<http::StatusCode> {
        self.response().map(|r| r.status)
    }

    /// The status and headers of the response this error comes from, if it comes from one.
    pub fn response(&self) -> Option<&crate::problem::ResponseInfo> {
        match self {
            Error::Problem { response, .. }
            | Error::OAuth { response, .. }
            | Error::UnexpectedResponse { response, .. }
            | Error::InvalidResponse { response, .. }
            | Error::ResponseTooLarge { response, .. } => Some(response),
            _ => None,
        }
    }

    /// The problem document, for [`Error::Problem`].
    pub fn problem(&self) -> Option<&crate::problem::Problem> {
        match self {
            Error::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The response's `Date` header (the server's clock), for errors that come from a
    /// response that had one.
    pub fn server_date(&self) -> Option<std::time::SystemTime> {
        self.response().and_then(|r| r.server_date)
    }

    /// Whether sending the same request again later may succeed: responses with status 5xx,
    /// 429 or 408 (whatever their body), timeouts, connect failures and failures in transit.
    /// Not: other 4xx, redirects, invalid success responses, refused input or configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Connect { .. } | Error::Transport { .. } => true,
            _ => self
                .response()
                .is_some_and(|r| crate::problem::retryable_status(r.status)),
        }
    }

    /// How long the server asked to wait before retrying (`Retry-After`, as seconds or an
    /// HTTP-date taken relative to the response's `Date`, or to the client's clock when the
    /// response arrived if it had no `Date`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.response().and_then(|r| r.retry_after)
    }
}

/// `400 Bad Request`, or `599` for a code without a reason phrase.
pub(crate) fn status_text(status: http::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn retry_hint(response: &crate::problem::ResponseInfo) -> String {
    match (response.is_retryable_status(), response.retry_after) {
        (true, Some(after)) => format!("; retry in {} s", after.as_secs()),
        (true, None) => "; retry later".to_owned(),
        (false, _) => String::new(),
    }
}

fn problem_message(
    problem: &crate::problem::Problem,
    response: &crate::problem::ResponseInfo,
) -> String {
    let verb = if response.status.is_server_error() {
        "token endpoint failed"
    } else {
        "token request rejected"
    };
    format!(
        "{verb} ({}): {problem}{}",
        status_text(response.status),
        retry_hint(response)
    )
}

fn oauth_message(
    error: &crate::problem::OAuthError,
    response: &crate::problem::ResponseInfo,
) -> String {
    format!(
        "token request rejected ({}): {error}{}",
        status_text(response.status),
        retry_hint(response)
    )
}

fn unexpected_message(
    excerpt: &Option<String>,
    location: &Option<String>,
    response: &crate::problem::ResponseInfo,
) -> String {
    let status = status_text(response.status);
    if response.status.is_redirection() {
        let to = location.as_deref().unwrap_or("no Location given");
        return format!(
            "the token endpoint redirected ({status}) to {to}; redirects are not followed so \
             the assertion is not resent elsewhere: set the base URL to the endpoint's real \
             address if you trust it"
        );
    }
    let content_type = response
        .content_type
        .as_deref()
        .unwrap_or("no content type");
    let body = match excerpt {
        Some(e) if e.is_empty() => ", empty body".to_owned(),
        Some(e) => format!(": \"{e}\""),
        None => ", body not shown".to_owned(),
    };
    format!(
        "unexpected response from the token endpoint ({status}, {content_type}){body}; check \
         the base URL{}{}",
        if response.is_retryable_status() {
            ", or retry later"
        } else {
            ""
        },
        response
            .retry_after
            .map(|d| format!(" (Retry-After {} s)", d.as_secs()))
            .unwrap_or_default()
    )
}

/// The innermost message of an error chain: the one that says what actually failed.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
