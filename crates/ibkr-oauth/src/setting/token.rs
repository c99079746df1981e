//! What was wrong with a setting of the token path's builders: request, client, signer,
//! provider.

use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use super::ConfigError;

/// What was wrong with a token request ([`ConfigError::Request`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestSetting {
    /// Neither a signer nor an assertion was given.
    #[error("no client assertion: call `.signer(...)` or `.assertion(...)` on the request builder")]
    NoAssertion,
    /// The assertion given is empty.
    #[error("the client assertion is empty: pass the signed compact JWS")]
    EmptyAssertion,
    /// One of the scopes is empty.
    #[error("a scope is empty: pass scope names such as `echo.read`")]
    EmptyScope,
    /// The joined scopes hold a control character.
    #[error(
        "the scope contains a control character (at character {at}): scopes are printable \
         names joined by spaces"
    )]
    ScopeControlCharacter {
        /// Its position, in characters.
        at: usize,
    },
    /// The joined scopes are shorter or longer than the endpoint accepts.
    #[error(
        "the scope is {chars} characters long; the token endpoint accepts {min} to {max}: \
         request fewer or longer scopes"
    )]
    ScopeLength {
        /// The joined scopes' length, in characters.
        chars: usize,
        /// The shortest accepted ([`SCOPE_MIN_CHARS`](crate::constants::SCOPE_MIN_CHARS)).
        min: usize,
        /// The longest accepted ([`SCOPE_MAX_CHARS`](crate::constants::SCOPE_MAX_CHARS)).
        max: usize,
    },
    /// A token given to [`Token::builder`](crate::Token::builder) is not an RFC 6750 bearer
    /// token.
    #[error(
        "the access token holds characters a bearer token cannot have (RFC 6750 b64token: \
         letters, digits, -._~+/ and trailing =)"
    )]
    AccessTokenCharacters,
}

/// What was wrong with a client's configuration ([`ConfigError::Client`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientSetting {
    /// The base URL does not parse as an absolute URL.
    #[error(
        "the base URL is not a valid absolute URL ({reason}); give one such as \
         https://api.ibkr.com"
    )]
    BaseUrlNotUrl {
        /// Why it does not parse.
        reason: url::ParseError,
    },
    /// The base URL carries `user:password@`.
    #[error(
        "the base URL carries user info (user:password@); the token endpoint authenticates by \
         the assertion: remove it"
    )]
    BaseUrlUserInfo,
    /// The base URL has a query or a fragment.
    #[error("the base URL has a query or fragment; give only scheme, host, port and path")]
    BaseUrlQueryOrFragment,
    /// The base URL has no host.
    #[error("the base URL has no host; give one such as https://api.ibkr.com")]
    BaseUrlNoHost,
    /// The base URL is the whole token URL.
    #[error(
        "the base URL ends in {path}, the token endpoint's path, which the client adds itself; \
         give the server alone: {server}"
    )]
    BaseUrlIsTokenUrl {
        /// The token endpoint's path ([`TOKEN_PATH`](crate::constants::TOKEN_PATH)).
        path: &'static str,
        /// The server part, which is what to give.
        server: String,
    },
    /// Plain http to a host that is not loopback.
    #[error(
        "plain http to `{host}` is refused: the assertion and the token would travel \
         unencrypted; use https (http is allowed only to loopback hosts: 127.0.0.0/8, ::1, \
         localhost)"
    )]
    PlainHttp {
        /// The host.
        host: String,
    },
    /// A scheme other than https (or http to loopback).
    #[error("the base URL's scheme `{scheme}` is not supported; use https")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// A middleware's API base URL does not parse.
    #[error("the API base URL is not a URL ({reason}); pass e.g. https://api.ibkr.com")]
    ApiBaseUrlNotUrl {
        /// Why it does not parse.
        reason: url::ParseError,
    },
    /// A middleware's API base URL is plain http to a host that is not loopback.
    #[error(
        "the API base URL must be https (plain http only to a loopback host): the token would \
         cross the network in clear"
    )]
    ApiBaseUrlNotHttps,
    /// A timeout of zero.
    #[error("a timeout of zero would fail every request; give a positive duration")]
    ZeroTimeout,
    /// A response cap of zero bytes.
    #[error(
        "a response cap of zero bytes would refuse every response; leave the default (64 KiB) \
         or give a positive size"
    )]
    ZeroResponseCap,
    /// The user agent is not a valid header value.
    #[error("the user agent is not a valid HTTP header value: use visible ASCII characters")]
    UserAgent,
    /// reqwest could not build the HTTP client (TLS setup).
    #[error("the HTTP client could not be built ({reason}); check the reqwest settings")]
    HttpClient {
        /// What reqwest reported.
        reason: String,
    },
    /// A blocking wrapper could not start its runtime or its thread.
    #[error(
        "could not start the {worker}'s runtime or thread ({reason}); check the process's thread and file limits"
    )]
    Worker {
        /// The wrapper (`blocking client`, `blocking token provider`, `blocking session`).
        worker: &'static str,
        /// What the operating system reported.
        reason: String,
    },
}

/// A text setting of the signer ([`SignerSetting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignerField {
    /// The client id (`iss`, `sub`).
    ClientId,
    /// The key id (`kid`).
    KeyId,
    /// The audience (`aud`).
    Audience,
}

impl fmt::Display for SignerField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignerField::ClientId => "client id",
            SignerField::KeyId => "key id",
            SignerField::Audience => "audience",
        })
    }
}

/// What was wrong with a signer setting ([`ConfigError::Signer`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerSetting {
    /// A text setting is empty.
    #[error("the {field} is empty; pass the value registered with the server")]
    Empty {
        /// Which one.
        field: SignerField,
    },
    /// A text setting is over the length limit or holds control characters.
    #[error(
        "the {field} is over {max_bytes} bytes or holds control characters; pass the value \
         registered with the server"
    )]
    Malformed {
        /// Which one.
        field: SignerField,
        /// The limit, in bytes.
        max_bytes: usize,
    },
    /// The clock-skew allowance is over the maximum.
    #[error("clock skew {skew:?} is over the maximum of {max:?}; a few seconds is enough")]
    ClockSkew {
        /// The allowance given.
        skew: Duration,
        /// The maximum.
        max: Duration,
    },
    /// The assertion lifetime is out of range.
    #[error(
        "lifetime {lifetime:?} is outside {min:?} to {max:?}; assertions are meant to be short-lived"
    )]
    Lifetime {
        /// The lifetime given.
        lifetime: Duration,
        /// The shortest accepted.
        min: Duration,
        /// The longest accepted.
        max: Duration,
    },
}

/// What was wrong with a provider setting ([`ConfigError::Provider`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderSetting {
    /// The refresh fraction is out of range.
    #[error(
        "the refresh fraction {fraction} is outside 0.0 to {max}; a fraction near 1 makes every \
         fresh token due at once: use the default 0.2"
    )]
    RefreshFraction {
        /// The fraction given.
        fraction: f64,
        /// The largest accepted.
        max: f64,
    },
    /// Scopes were given to a provider around a custom fetch.
    #[error(
        "scopes were given to a provider around a custom fetch; the fetch decides which scopes \
         it asks for"
    )]
    ScopesWithCustomFetch,
}

// By bits, so that the error stays `Eq` (a fraction is never NaN here: NaN is refused as out
// of range, and compares equal to itself by bits, which is what a test wants).
impl PartialEq for ProviderSetting {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::RefreshFraction { fraction, max },
                Self::RefreshFraction {
                    fraction: f2,
                    max: m2,
                },
            ) => fraction.to_bits() == f2.to_bits() && max.to_bits() == m2.to_bits(),
            (Self::ScopesWithCustomFetch, Self::ScopesWithCustomFetch) => true,
            _ => false,
        }
    }
}

impl Eq for ProviderSetting {}
