//! What the sandbox knows of the protocol, written down from `openapi.yaml` and the RFCs it
//! builds on (not taken from the SDK: the sandbox checks the SDK independently).

/// The token endpoint's path (`POST`, operation `generateToken`).
pub const TOKEN_PATH: &str = "/oauth2/api/v1/token";
/// IBKR's echo endpoint with the HTTPS security policy (`GET`, scope [`ECHO_READ_SCOPE`]).
pub const ECHO_HTTPS_PATH: &str = "/gw/api/v1/echo/https";
/// IBKR's echo endpoint with the Signed JWT security policy (`POST`, scope
/// [`ECHO_WRITE_SCOPE`]): the body is a compact JWS signed with a key of the client.
pub const ECHO_SIGNED_JWT_PATH: &str = "/gw/api/v1/echo/signed-jwt";

/// The scope `GET` [`ECHO_HTTPS_PATH`] needs (`x-ib-gateway-allowed-scopes`).
pub const ECHO_READ_SCOPE: &str = "echo.read";
/// The scope `POST` [`ECHO_SIGNED_JWT_PATH`] needs (`x-ib-gateway-allowed-scopes`).
pub const ECHO_WRITE_SCOPE: &str = "echo.write";

/// `grant_type` of the client credentials flow (RFC 6749 section 4.4).
pub const GRANT_TYPE: &str = "client_credentials";
/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The only request content type the token endpoint reads.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The request content type of a Signed JWT body (`SignedJwtEchoRequestBody`).
pub const JWT_CONTENT_TYPE: &str = "application/jwt";
/// The `scope` bounds of `openapi.yaml`, in characters.
pub const SCOPE_LENGTH: std::ops::RangeInclusive<usize> = 4..=1024;

/// The response header that carries the id the sandbox gave a request (also in the request log
/// and on stderr), for a client to print. IBKR's document names no such header; this is the
/// common name.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The names of the token request's form fields (`TokenRequest` in `openapi.yaml`).
pub mod fields {
    /// `grant_type`: always [`GRANT_TYPE`](super::GRANT_TYPE).
    pub const GRANT_TYPE: &str = "grant_type";
    /// `client_assertion`: the compact JWS that authenticates the client.
    pub const CLIENT_ASSERTION: &str = "client_assertion";
    /// `client_assertion_type`: always [`CLIENT_ASSERTION_TYPE`](super::CLIENT_ASSERTION_TYPE).
    pub const CLIENT_ASSERTION_TYPE: &str = "client_assertion_type";
    /// `scope`: optional, space-delimited.
    pub const SCOPE: &str = "scope";
}

/// Whether a `Content-Type` value has the media type `essence` (parameters such as `charset`
/// allowed, case-insensitive).
pub(crate) fn has_media_type(value: &str, essence: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|found| found.trim().eq_ignore_ascii_case(essence))
}
