//! The client settings of `token` and `assertion`, from flags or the environment, turned into
//! the SDK's [`Signer`], [`TokenClient`] and [`TokenRequest`].
//!
//! | flag | environment | default |
//! |---|---|---|
//! | `--client-id` | `IBKR_CLIENT_ID` | required |
//! | `--key-id` (`--kid`) | `IBKR_KEY_ID` | `main` |
//! | `--private-key` | `IBKR_PRIVATE_KEY` (a path, or the PEM text) | required |
//! | `--scope` | `IBKR_SCOPE` (space-delimited) | none |
//! | `--base-url` | `IBKR_BASE_URL` | `https://api.ibkr.com` |
//! | `--audience` | `IBKR_AUDIENCE` | `/token` |
//! | `--alg` | `IBKR_ALG` | from the key type (RS256 for RSA) |
//!
//! A flag wins over its variable. Everything is checked before any network I/O; a missing or
//! invalid setting is a configuration error (exit code 2).

use std::time::Duration;

use ibkr_oauth::{ExposeSecret, PrivateKey, Signer, TokenClient, TokenRequest};

use crate::cli::ClientArgs;
use crate::error::Error;

/// The environment variable of the private key.
pub const PRIVATE_KEY_VAR: &str = "IBKR_PRIVATE_KEY";

/// The `User-Agent` of the command's token requests.
pub const USER_AGENT: &str = concat!("ibkr-oauth-cli/", env!("CARGO_PKG_VERSION"));

/// The signer the settings describe: client id, key id, key, audience and algorithm.
///
/// # Errors
/// [`Error::Config`] for a missing client id or private key; the SDK's key and signer errors
/// for a key that cannot be read or used.
pub fn signer(args: &ClientArgs) -> Result<Signer, Error> {
    let client_id = match args.client_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            return Err(Error::Config(
                "no client id: pass --client-id ID or set IBKR_CLIENT_ID to the client id IBKR \
                 gave you"
                    .into(),
            ));
        }
    };
    let key = match args.private_key.as_ref().map(ExposeSecret::expose_secret) {
        Some(value) if !value.trim().is_empty() => load_key(value)?,
        _ => {
            return Err(Error::Config(
                "no private key: pass --private-key PATH (or the PEM text) or set \
                 IBKR_PRIVATE_KEY; `ibkr-oauth keygen` makes a key pair"
                    .into(),
            ));
        }
    };
    let mut builder = Signer::builder(client_id, args.key_id.trim(), key).audience(&args.audience);
    if let Some(alg) = args.alg {
        builder = builder.algorithm(alg);
    }
    Ok(builder.build()?)
}

/// Reads the key from a path or PEM text. When the value is the one `IBKR_PRIVATE_KEY` holds,
/// the SDK reads the variable itself, so that its errors name the variable.
fn load_key(value: &str) -> Result<PrivateKey, Error> {
    let from_env = std::env::var(PRIVATE_KEY_VAR).is_ok_and(|v| v == value);
    let key = if from_env {
        PrivateKey::from_env(PRIVATE_KEY_VAR)
    } else if value.contains("-----BEGIN") {
        // `.env` files write line breaks as literal `\n`, as the SDK's from_env accepts.
        PrivateKey::from_pem(&value.replace("\\n", "\n"))
    } else {
        PrivateKey::from_pem_file(value)
    };
    Ok(key?)
}

/// The token client: base URL (checked: https, or http to loopback) and timeout.
///
/// # Errors
/// The SDK's [`ibkr_oauth::ConfigError::Client`] for a base URL it refuses.
pub fn client(args: &ClientArgs) -> Result<TokenClient, Error> {
    Ok(TokenClient::builder()
        .base_url(&args.base_url)
        .timeout(Duration::from_secs(args.timeout))
        .user_agent(USER_AGENT)
        .build()?)
}

/// The scopes to ask for, space-delimited, if any were given.
pub fn scope(args: &ClientArgs) -> Option<&str> {
    args.scope.as_deref().filter(|s| !s.is_empty())
}

/// A token request carrying a fresh assertion from `signer` and the scopes of `args`.
///
/// # Errors
/// The signer's errors; [`ibkr_oauth::ConfigError::Request`] for scopes the endpoint would
/// refuse (too short or long, control characters).
pub fn request(args: &ClientArgs, signer: &Signer) -> Result<TokenRequest, Error> {
    let mut builder = TokenRequest::builder().assertion(signer.sign()?);
    if let Some(scope) = scope(args) {
        builder = builder.scope(scope);
    }
    Ok(builder.build()?)
}
