//! `--redis URL`: the token source shared by a fleet through Redis (`ibkr-oauth-redis`), for
//! `token` and `serve`. The encryption key comes from [`REDIS_KEY_VAR`], never a flag.

use std::sync::Arc;

use ibkr_oauth::provider::ClientFetch;
use ibkr_oauth::{Signer, TokenClient, TokenRequest};
use ibkr_oauth_redis::{EncryptionKey, RedisTokenSource, TokenIdentity};

use crate::error::Error;

/// The variable holding the fleet's 32-byte encryption key, base64.
pub const REDIS_KEY_VAR: &str = "IBKR_REDIS_KEY";

/// A Redis-shared source at `url` for `signer`'s client, asking for `scope`. The entry is
/// named after everything that makes two tokens differ (client id, key id, audience, base
/// URL, scope set), and each entry read is checked against this client id and scope set.
///
/// # Errors
/// [`Error::Config`] for a missing or bad key variable or a bad URL (the password is never
/// printed); the request's configuration errors.
pub fn source(
    url: &str,
    client: TokenClient,
    signer: Signer,
    scope: Option<&str>,
) -> Result<Arc<RedisTokenSource>, Error> {
    let key = key()?;
    let identity = TokenIdentity::new(
        signer.client_id(),
        signer.key_id(),
        signer.audience(),
        client.base_url(),
        scope,
    );
    let mut request = TokenRequest::builder().signer(signer);
    if let Some(scope) = scope {
        request = request.scope(scope);
    }
    let fetch = ClientFetch::new(client, request.build()?);
    let source = RedisTokenSource::builder(url, identity.cache_name(), key, fetch)
        .identity(identity)
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok(Arc::new(source))
}

/// The fleet's encryption key from [`REDIS_KEY_VAR`].
///
/// # Errors
/// [`Error::Config`] naming the variable when it is unset or not a key.
pub fn key() -> Result<EncryptionKey, Error> {
    EncryptionKey::from_env(REDIS_KEY_VAR).map_err(|e| {
        Error::Config(format!(
            "{e}; set {REDIS_KEY_VAR} to the fleet's key (32 random bytes in base64: `openssl \
             rand -base64 32`)"
        ))
    })
}
